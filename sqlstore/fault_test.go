package sqlstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testcatalog"
	"github.com/gobilling/billing/internal/testenv"
	"github.com/gobilling/billing/sqlstore"
)

const webhookSecret = "whsec_sqlstore_test"

// newFake returns an offline Stripe with the prices the tests sell.
func newFake(t testing.TB) *billingtest.Stripe {
	t.Helper()
	fake := billingtest.New(billingtest.Options{Start: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)})
	t.Cleanup(fake.Close)
	fake.AddPrice("price_basic", "month", 900)
	fake.AddPrice("price_pro", "month", 2900)
	return fake
}

// newBilling returns a Billing on store against fake (one app replica).
func newBilling(t testing.TB, fake *billingtest.Stripe, store billing.Store) *billing.Billing {
	t.Helper()
	b, err := billing.New(billing.Config{
		SecretKey:      "sk_test_sqlstore",
		WebhookSecrets: []string{webhookSecret},
		SiteURL:        "https://app.example",
		Plans: []billing.Plan{
			{PriceID: "price_basic", Tier: "basic"},
			{PriceID: "price_pro", Tier: "pro"},
		},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Clock:      fake,
		StripeURL:  fake.URL(),
		MaxRetries: -1,
	}, store, billing.UserResolverFunc(func(ctx context.Context, id string) (billing.User, error) {
		return billing.User{ID: id, Email: id + "@example.com"}, nil
	}))
	require.NoError(t, err)
	return b
}

// subscribe has userID buy price at fake through b, and returns the
// events Stripe sends for it (not delivered yet).
func subscribe(t testing.TB, fake *billingtest.Stripe, b *billing.Billing, userID, price string) []billingtest.Event {
	t.Helper()
	cs, err := b.Checkout(context.Background(), userID, billing.CheckoutOptions{PriceID: price})
	require.NoError(t, err)
	evs, err := testcatalog.Pay(fake, cs.ID)
	require.NoError(t, err)
	require.NotEmpty(t, evs)
	return evs
}

// deliver posts e to h as Stripe would, and returns the status code and
// the outcome ("applied", "duplicate", "ignored", "parked"; "" for an
// error).
func deliver(h http.Handler, e billingtest.Event) (int, string) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, billingtest.SignedRequest(webhookSecret, e.JSON))
	var body struct{ Outcome string }
	if rec.Code == http.StatusOK {
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
	}
	return rec.Code, body.Outcome
}

// TestFaultMidTransaction makes each statement of an event's
// transaction fail in turn, then its commit, through a driver wrapper
// under the real driver: every failure answers 500 and leaves nothing
// (no facts, no event record); the redelivery then applies once.
func TestFaultMidTransaction(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		tdb := database(t, d)
		plan := &faultPlan{}
		db := sql.OpenDB(&faultConnector{inner: tdb.connector(t), plan: plan})
		db.SetMaxOpenConns(4)
		t.Cleanup(func() { db.Close() })
		st := newStore(t, tdb, db, sqlstore.Options{})

		fake := newFake(t)
		b := newBilling(t, fake, st)
		h := b.WebhookHandler()
		const user = "user_fault"
		evs := subscribe(t, fake, b, user, "price_pro")

		ctx := t.Context()
		faults := 0
		for _, e := range evs {
			before, err := st.Facts(ctx, user)
			require.NoError(t, err)

			// The commit fails (after the real transaction is rolled back).
			plan.arm(0, true)
			code, outcome := deliver(h, e)
			if outcome == "ignored" {
				require.Equal(t, http.StatusOK, code)
				assert.False(t, plan.fired(), "%s is not applied, so it has no transaction", e.Type)
				plan.arm(0, false)
				continue
			}
			require.True(t, plan.fired(), "%s %s: the commit was not reached", e.Type, e.ID)
			assert.Equal(t, http.StatusInternalServerError, code, "%s %s with a failed commit", e.Type, e.ID)
			assertUnchanged(t, st, user, e, before, "a failed commit")
			faults++

			// Each statement in turn, until the delivery runs out of
			// statements before the fault and succeeds.
			for n := 1; ; n++ {
				require.Less(t, n, 50, "%s: too many statements", e.Type)
				plan.arm(n, false)
				code, outcome := deliver(h, e)
				if !plan.fired() {
					require.Equal(t, http.StatusOK, code, "%s %s, no fault injected", e.Type, e.ID)
					assert.Equal(t, "applied", outcome, "%s %s: the redelivery after %d failures", e.Type, e.ID, n)
					break
				}
				assert.Equal(t, http.StatusInternalServerError, code, "%s %s, statement %d failed", e.Type, e.ID, n)
				assertUnchanged(t, st, user, e, before, "a failed statement")
				faults++
			}
			plan.arm(0, false)
			ok, err := st.Processed(ctx, e.ID)
			require.NoError(t, err)
			assert.True(t, ok, "%s %s is recorded once applied", e.Type, e.ID)
			code, outcome = deliver(h, e)
			assert.Equal(t, http.StatusOK, code)
			assert.Equal(t, "duplicate", outcome, "%s %s once more", e.Type, e.ID)
		}
		t.Logf("%s: %d deliveries failed by an injected fault, each answered 500 with nothing committed", d, faults)
		assert.Greater(t, faults, 10)

		m, err := b.Membership(ctx, user)
		require.NoError(t, err)
		assert.Equal(t, billing.StatusActive, m.Status)
		assert.Equal(t, "pro", m.Tier)
	})
}

// assertUnchanged checks that a failed delivery of e left the user's
// facts as before and e unrecorded.
func assertUnchanged(t *testing.T, st billing.Store, user string, e billingtest.Event, before billing.Facts, what string) {
	t.Helper()
	after, err := st.Facts(context.Background(), user)
	require.NoError(t, err)
	assert.Equal(t, before, after, "%s %s: %s changed the facts", e.Type, e.ID, what)
	ok, err := st.Processed(context.Background(), e.ID)
	require.NoError(t, err)
	assert.False(t, ok, "%s %s: %s recorded the event", e.Type, e.ID, what)
}

// TestReplicasDeliverSameEvents has 4 app replicas (4 pools, 4 stores,
// 4 Billings on one database) each take every event of a subscription's
// purchase and renewal 16 times at once: each event is applied exactly
// once, every delivery is answered 200, and the membership ends right.
func TestReplicasDeliverSameEvents(t *testing.T) {
	const replicas, goroutines = 4, 16
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		tdb := database(t, d)
		prefix := newPrefix(t)
		fake := newFake(t)
		var (
			hs     []http.Handler
			bs     []*billing.Billing
			stores []*sqlstore.Store
		)
		for range replicas {
			// Each replica migrates at start-up: the later ones find the
			// schema up to date.
			st := newStore(t, tdb, tdb.open(t, 8), sqlstore.Options{TablePrefix: prefix})
			b := newBilling(t, fake, st)
			stores = append(stores, st)
			bs = append(bs, b)
			hs = append(hs, b.WebhookHandler())
		}
		const user = "user_replicas"
		evs := subscribe(t, fake, bs[0], user, "price_pro")
		fake.Advance(30 * 24 * time.Hour)
		cus, err := stores[0].CustomerID(t.Context(), user)
		require.NoError(t, err)
		sub := fake.SubscriptionsOf(cus)
		require.Len(t, sub, 1)
		renewal, err := testcatalog.Renew(fake, sub[0])
		require.NoError(t, err)
		evs = append(evs, renewal...)

		type result struct {
			code    int
			outcome string
		}
		results := make([][]result, len(evs))
		for i := range results {
			results[i] = make([]result, replicas*goroutines)
		}
		start := make(chan struct{})
		done := make(chan struct{})
		var n int
		for r := range replicas {
			for g := range goroutines {
				n++
				go func() {
					defer func() { done <- struct{}{} }()
					<-start
					for k := range evs {
						i := (k + r*goroutines + g) % len(evs) // each goroutine starts elsewhere
						code, outcome := deliver(hs[r], evs[i])
						results[i][r*goroutines+g] = result{code, outcome}
					}
				}()
			}
		}
		close(start)
		for range n {
			<-done
		}

		applied := 0
		for i, e := range evs {
			counts := map[string]int{}
			for _, res := range results[i] {
				assert.Equal(t, http.StatusOK, res.code, "%s %s", e.Type, e.ID)
				counts[res.outcome]++
			}
			if counts["ignored"] == replicas*goroutines {
				continue
			}
			assert.Equal(t, 1, counts["applied"], "%s %s: applied exactly once, outcomes %v", e.Type, e.ID, counts)
			assert.Equal(t, replicas*goroutines-1, counts["duplicate"], "%s %s: outcomes %v", e.Type, e.ID, counts)
			applied++
		}
		assert.Positive(t, applied)
		t.Logf("%s: %d events (%d applied by billing) delivered %d times each by %d replicas: each applied once",
			d, len(evs), applied, goroutines, replicas)

		for _, b := range bs {
			m, err := b.Membership(t.Context(), user)
			require.NoError(t, err)
			assert.Equal(t, billing.StatusActive, m.Status)
			assert.Equal(t, "pro", m.Tier)
			assert.True(t, m.CurrentPeriodEnd.After(fake.Now().Add(20*24*time.Hour)), "the renewal's period is stored")
		}
	})
}

// A signed subscription event naming a customer or subscription ID no
// database can hold (a NUL byte; PostgreSQL refuses it in any statement)
// is parked, on every dialect: nothing reads the store with it first.
func TestUnstorableCustomerIsParked(t *testing.T) {
	for _, field := range []string{"customer", "id"} {
		t.Run(field, func(t *testing.T) { testUnstorableIsParked(t, field) })
	}
}

func testUnstorableIsParked(t *testing.T, field string) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		tdb := database(t, d)
		st := newStore(t, tdb, tdb.open(t, 4), sqlstore.Options{})
		fake := newFake(t)
		b := newBilling(t, fake, st)
		evs := subscribe(t, fake, b, "user_nul", "price_pro")
		var sub billingtest.Event // the update that makes it active
		for _, e := range evs {
			if e.Type == "customer.subscription.updated" {
				sub = e
			}
		}
		require.NotEmpty(t, sub.ID)
		var obj struct {
			Data struct {
				Object struct{ ID, Customer string }
			}
		}
		require.NoError(t, json.Unmarshal(sub.JSON, &obj))
		old, bad := obj.Data.Object.Customer, `"cus_\u0000x"`
		if field == "id" {
			old, bad = obj.Data.Object.ID, `"sub_\u0000x"`
		}
		sub.JSON = bytes.ReplaceAll(sub.JSON, []byte(`"`+old+`"`), []byte(bad))
		code, outcome := deliver(b.WebhookHandler(), sub)
		assert.Equal(t, http.StatusOK, code)
		assert.Equal(t, "parked", outcome)
		p, err := b.ParkedEvent(t.Context(), sub.ID)
		require.NoError(t, err)
		assert.NotEmpty(t, p.Reason)
	})
}

// Two deliveries at the same moment, each making one of a user's two
// subscriptions live: the user's lock orders them, and the second reports
// the pair, once, on every dialect.
func TestConcurrentSecondSubscriptionReported(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		tdb := database(t, d)
		st := newStore(t, tdb, tdb.open(t, 8), sqlstore.Options{})
		fake := newFake(t)
		logs := &testenv.LogBuffer{}
		b := newBilling(t, fake, st)
		bl, err := billing.New(billing.Config{SecretKey: "sk_test_sqlstore", WebhookSecrets: []string{webhookSecret},
			SiteURL: "https://app.example", Plans: []billing.Plan{{PriceID: "price_basic", Tier: "basic"}, {PriceID: "price_pro", Tier: "pro"}},
			Logger: slog.New(slog.NewTextHandler(logs, nil)), Clock: fake, StripeURL: fake.URL(), MaxRetries: -1},
			st, billing.UserResolverFunc(func(ctx context.Context, id string) (billing.User, error) {
				return billing.User{ID: id, Email: id + "@example.com"}, nil
			}))
		require.NoError(t, err)
		sc := stripe.NewClient("sk_test_other", stripe.WithBackends(stripe.NewBackendsWithConfig(&stripe.BackendConfig{
			URL: stripe.String(fake.URL()), LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull}})))
		const users = 6
		for i := range users {
			user := fmt.Sprintf("user_two_%d", i)
			first := subscribe(t, fake, b, user, "price_basic")
			customer, err := st.CustomerID(t.Context(), user)
			require.NoError(t, err)
			cs, err := sc.V1CheckoutSessions.Create(t.Context(), &stripe.CheckoutSessionCreateParams{Mode: stripe.String("subscription"),
				Customer: stripe.String(customer), SuccessURL: stripe.String("https://app.example/ok"),
				LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_pro"), Quantity: stripe.Int64(1)}}})
			require.NoError(t, err)
			second, err := testcatalog.Pay(fake, cs.ID)
			require.NoError(t, err)
			var wg sync.WaitGroup
			for _, evs := range [][]billingtest.Event{first, second} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for _, e := range evs {
						if code, _ := deliver(bl.WebhookHandler(), e); code != http.StatusOK {
							t.Errorf("%s %s: %d", e.Type, e.ID, code)
						}
					}
				}()
			}
			wg.Wait()
			n := 0
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "second live subscription") && strings.Contains(l, "user="+user+" ") {
					n++
				}
			}
			assert.Equal(t, 1, n, "%s: one report", user)
		}
	})
}
