package billing_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/internal/testcatalog"
	"github.com/gobilling/billing/internal/testenv"
	"github.com/gobilling/billing/memstore"
)

const testSecret = "whsec_test_secret"

// users is the app's user table for tests.
var users = billing.UserResolverFunc(func(ctx context.Context, id string) (billing.User, error) {
	if strings.HasPrefix(id, "ghost") {
		return billing.User{}, fmt.Errorf("user %s: %w", id, billing.ErrNotFound)
	}
	return billing.User{ID: id, Email: id + "@example.com", Name: "User " + id}, nil
})

type handlerEnv struct {
	b     *billing.Billing
	store billing.Store
	logs  *testenv.LogBuffer
	h     http.Handler
}

func newHandlerEnv(t testing.TB, store billing.Store, mod ...func(*billing.Config)) *handlerEnv {
	t.Helper()
	logs := &testenv.LogBuffer{}
	cfg := billing.Config{
		SecretKey:      "sk_test_handler",
		WebhookSecrets: []string{"whsec_old_rotated", testSecret},
		SiteURL:        "https://app.example",
		Plans:          testcatalog.Plans(),
		Logger:         slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		StripeURL:      "http://127.0.0.1:1", // nothing listens: any Stripe call fails
		// Retries of those failing calls and same-second waits take no
		// time (the fuzz target ran at 0 execs/s on real waits).
		Clock: instantClock{},
	}
	for _, m := range mod {
		m(&cfg)
	}
	b, err := billing.New(cfg, store, users)
	require.NoError(t, err)
	t.Cleanup(func() {
		out := logs.String()
		for _, s := range []string{testSecret, "whsec_old_rotated", cfg.SecretKey} {
			if strings.Contains(out, s) {
				t.Errorf("a secret reached the logs")
			}
		}
	})
	return &handlerEnv{b: b, store: store, logs: logs, h: b.WebhookHandler()}
}

// post signs payload with secret at ts and delivers it.
func (e *handlerEnv) post(t *testing.T, payload []byte, secret string, ts time.Time) *httptest.ResponseRecorder {
	t.Helper()
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: ts})
	r := httptest.NewRequest(http.MethodPost, "/stripe/webhook", bytes.NewReader(payload))
	r.Header.Set("Stripe-Signature", sp.Header)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

func (e *handlerEnv) deliver(t *testing.T, payload []byte) *httptest.ResponseRecorder {
	return e.post(t, payload, testSecret, time.Now())
}

// event builds a basil-shaped event around an object.
func event(id, typ string, created int64, object string) []byte {
	return []byte(fmt.Sprintf(`{"id":%q,"object":"event","api_version":"2025-08-27.basil","created":%d,"livemode":false,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null},"type":%q,"data":{"object":%s}}`,
		id, created, typ, object))
}

// subJSON is a basil subscription: the period lives on the item.
func subJSON(id, customer, status, price string, periodEnd int64) string {
	return fmt.Sprintf(`{"id":%q,"object":"subscription","customer":%q,"status":%q,"cancel_at_period_end":false,"cancel_at":null,"canceled_at":null,"ended_at":null,"trial_start":null,"trial_end":null,"latest_invoice":"in_1","livemode":false,"metadata":{"billing_user_id":"u1"},"items":{"object":"list","has_more":false,"url":"/v1/subscription_items?subscription=%s","data":[{"id":"si_1","object":"subscription_item","quantity":1,"current_period_start":%d,"current_period_end":%d,"price":{"id":%q,"object":"price","recurring":{"interval":"month"}}}]}}`,
		id, customer, status, id, periodEnd-30*86400, periodEnd, price)
}

func linked(t *testing.T, s billing.Store, user, customer string) {
	t.Helper()
	require.NoError(t, s.Apply(context.Background(), "", func(ctx context.Context, tx billing.Tx) error {
		return tx.LinkCustomer(ctx, user, customer)
	}))
}

func facts(t *testing.T, s billing.Store, user string) billing.Facts {
	t.Helper()
	f, err := s.Facts(context.Background(), user)
	require.NoError(t, err)
	return f
}

func TestWebhookBadInput(t *testing.T) {
	t.Parallel()
	now := time.Now().Unix()
	good := event("evt_good", "customer.subscription.updated", now, subJSON("sub_1", "cus_1", "active", "price_pro", now+86400*30))
	tests := []struct {
		name   string
		req    func(e *handlerEnv) *http.Request
		status int
		log    string
	}{
		{"GET is 405", func(e *handlerEnv) *http.Request { return httptest.NewRequest(http.MethodGet, "/", nil) }, 405, ""},
		{"PUT is 405", func(e *handlerEnv) *http.Request {
			return httptest.NewRequest(http.MethodPut, "/", bytes.NewReader(good))
		}, 405, ""},
		{"no signature is 400", func(e *handlerEnv) *http.Request {
			return httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(good))
		}, 400, "no Stripe-Signature"},
		{"malformed signature is 400", func(e *handlerEnv) *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(good))
			r.Header.Set("Stripe-Signature", "t=abc,v1")
			return r
		}, 400, "invalid Stripe-Signature"},
		{"wrong secret is 400", func(e *handlerEnv) *http.Request {
			return signed(good, "whsec_someone_else", time.Now())
		}, 400, "no valid signature"},
		{"tampered body is 400", func(e *handlerEnv) *http.Request {
			r := signed(good, testSecret, time.Now())
			r.Body = httpBody(bytes.Replace(good, []byte(`"active"`), []byte(`"trialing"`), 1))
			return r
		}, 400, "no valid signature"},
		{"stale timestamp is 400", func(e *handlerEnv) *http.Request {
			return signed(good, testSecret, time.Now().Add(-10*time.Minute))
		}, 400, "tolerance"},
		{"body over the cap is 413", func(e *handlerEnv) *http.Request {
			big := event("evt_big", "customer.subscription.updated", now, `{"id":"sub_1","object":"subscription","pad":"`+strings.Repeat("x", 600<<10)+`"}`)
			return signed(big, testSecret, time.Now())
		}, 413, "too large"},
		{"live event in test mode is 400", func(e *handlerEnv) *http.Request {
			return signed(bytes.Replace(good, []byte(`"livemode":false`), []byte(`"livemode":true`), 1), testSecret, time.Now())
		}, 400, "a live-mode event reached a setup whose SecretKey is a test-mode key"},
		{"other release train is 400", func(e *handlerEnv) *http.Request {
			return signed(bytes.Replace(good, []byte(`2025-08-27.basil`), []byte(`2025-09-30.clover`), 1), testSecret, time.Now())
		}, 400, `create the webhook endpoint with api_version`},
		{"pre-train API version is 400", func(e *handlerEnv) *http.Request {
			return signed(bytes.Replace(good, []byte(`2025-08-27.basil`), []byte(`2024-06-20`), 1), testSecret, time.Now())
		}, 400, `2024-06-20`},
		{"not JSON is 400", func(e *handlerEnv) *http.Request { return signed([]byte("{not json"), testSecret, time.Now()) }, 400, "not JSON"},
		{"event without id is 400", func(e *handlerEnv) *http.Request {
			return signed([]byte(`{"object":"event","api_version":"2025-08-27.basil","type":"customer.subscription.updated","data":{"object":{}}}`), testSecret, time.Now())
		}, 400, "no id or type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := memstore.New()
			linked(t, store, "u1", "cus_1")
			e := newHandlerEnv(t, store)
			w := httptest.NewRecorder()
			e.h.ServeHTTP(w, tt.req(e))
			assert.Equal(t, tt.status, w.Code, w.Body.String())
			if tt.log != "" {
				assert.Contains(t, e.logs.String(), tt.log)
			}
			// Nothing changed, nothing recorded.
			f := facts(t, store, "u1")
			assert.Empty(t, f.Subscriptions)
			for _, id := range []string{"evt_good", "evt_big"} {
				done, err := store.Processed(context.Background(), id)
				require.NoError(t, err)
				assert.False(t, done)
			}
		})
	}
}

func signed(payload []byte, secret string, ts time.Time) *http.Request {
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: ts})
	r := httptest.NewRequest(http.MethodPost, "/stripe/webhook", bytes.NewReader(payload))
	r.Header.Set("Stripe-Signature", sp.Header)
	return r
}

func httpBody(b []byte) *readCloser { return &readCloser{bytes.NewReader(b)} }

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

func TestWebhookAppliesAndRecords(t *testing.T) {
	t.Parallel()
	store := memstore.New()
	linked(t, store, "u1", "cus_1")
	e := newHandlerEnv(t, store)
	now := time.Now().Unix()
	ev := event("evt_1", "customer.subscription.updated", now, subJSON("sub_1", "cus_1", "active", "price_pro", now+86400*30))

	w := e.deliver(t, ev)
	require.Equal(t, 200, w.Code, w.Body.String())
	assert.JSONEq(t, `{"outcome":"applied"}`, w.Body.String())
	m, err := e.b.Membership(context.Background(), "u1")
	require.NoError(t, err)
	assert.Equal(t, billing.StatusActive, m.Status)
	assert.Equal(t, "pro", m.Tier)
	assert.Equal(t, time.Unix(now+86400*30, 0).UTC(), m.CurrentPeriodEnd)

	// A duplicate: 200, nothing changes, no Stripe call (StripeURL points
	// nowhere, so a call would fail with 500).
	w = e.deliver(t, ev)
	require.Equal(t, 200, w.Code)
	assert.JSONEq(t, `{"outcome":"duplicate"}`, w.Body.String())

	// The old rotated secret still verifies.
	ev2 := event("evt_2", "customer.subscription.deleted", now+5, subJSON("sub_1", "cus_1", "canceled", "price_pro", now+86400*30))
	w = e.post(t, ev2, "whsec_old_rotated", time.Now())
	require.Equal(t, 200, w.Code, w.Body.String())
	m, err = e.b.Membership(context.Background(), "u1")
	require.NoError(t, err)
	assert.Equal(t, billing.StatusCanceled, m.Status)
}

func TestWebhookIgnoresUnknownTypes(t *testing.T) {
	t.Parallel()
	store := memstore.New()
	e := newHandlerEnv(t, store)
	w := e.deliver(t, event("evt_x", "charge.captured", time.Now().Unix(), `{"id":"ch_1","object":"charge"}`))
	assert.Equal(t, 200, w.Code)
	assert.JSONEq(t, `{"outcome":"ignored"}`, w.Body.String())
	done, err := store.Processed(context.Background(), "evt_x")
	require.NoError(t, err)
	assert.False(t, done)
}

func TestWebhookParksUnknownCustomer(t *testing.T) {
	t.Parallel()
	store := memstore.New()
	e := newHandlerEnv(t, store)
	ctx := context.Background()
	now := time.Now().Unix()
	ev := event("evt_p", "customer.subscription.created", now, subJSON("sub_9", "cus_stranger", "active", "price_basic", now+86400*30))

	w := e.deliver(t, ev)
	require.Equal(t, 200, w.Code)
	assert.JSONEq(t, `{"outcome":"parked"}`, w.Body.String())
	parked, err := parkedOf(ctx, e.b)
	require.NoError(t, err)
	require.Len(t, parked, 1)
	assert.Equal(t, "evt_p", parked[0].ID)
	assert.Equal(t, "cus_stranger", parked[0].CustomerID)
	assert.Equal(t, "customer.subscription.created", parked[0].Type)
	assert.JSONEq(t, string(ev), string(parked[0].Payload))
	done, err := store.Processed(ctx, "evt_p")
	require.NoError(t, err)
	assert.False(t, done, "a parked event is not marked done")
	assert.Contains(t, e.logs.String(), "LinkCustomer")

	// Redelivery parks it again, once.
	require.Equal(t, 200, e.deliver(t, ev).Code)
	parked, err = parkedOf(ctx, e.b)
	require.NoError(t, err)
	assert.Len(t, parked, 1)

	// Still unknown: replay leaves it parked.
	out, err := e.b.Replay(ctx, "evt_p")
	require.NoError(t, err)
	assert.Equal(t, billing.OutcomeParked, out)

	// The operator links the customer and replays.
	require.NoError(t, e.b.LinkCustomer(ctx, "u9", "cus_stranger"))
	out, err = e.b.Replay(ctx, "evt_p")
	require.NoError(t, err)
	assert.Equal(t, billing.OutcomeApplied, out)
	parked, err = parkedOf(ctx, e.b)
	require.NoError(t, err)
	assert.Empty(t, parked)
	m, err := e.b.Membership(ctx, "u9")
	require.NoError(t, err)
	assert.Equal(t, billing.StatusActive, m.Status)
	assert.Equal(t, "basic", m.Tier)

	_, err = e.b.Replay(ctx, "evt_p")
	assert.ErrorIs(t, err, billing.ErrNotParked)
	assert.Error(t, e.b.LinkCustomer(ctx, "u9", "not-a-customer"))
}

// failingStore fails Apply (after running fn, so that fn's writes must be
// rolled back) a set number of times.
type failingStore struct {
	billing.Store
	mu    sync.Mutex
	fails int
}

var errInjected = errors.New("injected store failure")

func (s *failingStore) Apply(ctx context.Context, id string, fn func(context.Context, billing.Tx) error) error {
	s.mu.Lock()
	fail := s.fails > 0
	if fail {
		s.fails--
	}
	s.mu.Unlock()
	if !fail {
		return s.Store.Apply(ctx, id, fn)
	}
	return s.Store.Apply(ctx, id, func(ctx context.Context, tx billing.Tx) error {
		if err := fn(ctx, tx); err != nil {
			return err
		}
		return errInjected // fails before commit
	})
}

func TestWebhookFailureIs5xxAndRetrySucceeds(t *testing.T) {
	t.Parallel()
	inner := memstore.New()
	linked(t, inner, "u1", "cus_1")
	store := &failingStore{Store: inner, fails: 1}
	e := newHandlerEnv(t, store)
	now := time.Now().Unix()
	ev := event("evt_f", "customer.subscription.created", now, subJSON("sub_1", "cus_1", "active", "price_pro", now+86400*30))

	w := e.deliver(t, ev)
	assert.Equal(t, 500, w.Code)
	assert.Empty(t, facts(t, inner, "u1").Subscriptions, "nothing half-applied")
	done, err := inner.Processed(context.Background(), "evt_f")
	require.NoError(t, err)
	assert.False(t, done, "a failed event is not marked done")

	w = e.deliver(t, ev) // Stripe's retry
	assert.Equal(t, 200, w.Code)
	assert.Len(t, facts(t, inner, "u1").Subscriptions, 1)
}

func TestWebhookStripeFailureIs5xx(t *testing.T) {
	t.Parallel()
	// Two live states in one second tie and need a fetch; Stripe is
	// unreachable: 500, and the event stays unrecorded.
	store := memstore.New()
	linked(t, store, "u1", "cus_1")
	e := newHandlerEnv(t, store, func(c *billing.Config) { c.MaxRetries = -1 })
	now := time.Now().Unix()
	require.Equal(t, 200, e.deliver(t, event("evt_a", "customer.subscription.created", now, subJSON("sub_1", "cus_1", "active", "price_pro", now+86400*30))).Code)
	w := e.deliver(t, event("evt_b", "customer.subscription.updated", now, subJSON("sub_1", "cus_1", "active", "price_basic", now+86400*30)))
	assert.Equal(t, 500, w.Code)
	done, err := store.Processed(context.Background(), "evt_b")
	require.NoError(t, err)
	assert.False(t, done)
	f := facts(t, store, "u1")
	require.Len(t, f.Subscriptions, 1)
	assert.Equal(t, "price_pro", f.Subscriptions[0].Items[0].PriceID)
}

func TestWebhookEventShapes(t *testing.T) {
	t.Parallel()
	// Invoice events read basil's parent.subscription_details; a
	// payment-mode session grants only when paid.
	store := memstore.New()
	linked(t, store, "u1", "cus_1")
	e := newHandlerEnv(t, store)
	ctx := context.Background()
	now := time.Now().Unix()
	inv := func(id, status string, attempts int64, next string) string {
		return fmt.Sprintf(`{"id":%q,"object":"invoice","customer":"cus_1","status":%q,"attempt_count":%d,"next_payment_attempt":%s,"created":%d,"billing_reason":"subscription_cycle","parent":{"type":"subscription_details","quote_details":null,"subscription_details":{"metadata":{},"subscription":"sub_1"}},"lines":{"object":"list","data":[],"has_more":false,"url":"/v1/invoices/x/lines"}}`,
			id, status, attempts, next, now)
	}
	// The failed invoice first (Stripe's usual order), so no fetch is needed.
	require.Equal(t, 200, e.deliver(t, event("evt_i1", "invoice.payment_failed", now, inv("in_1", "open", 1, fmt.Sprint(now+86400)))).Code)
	require.Equal(t, 200, e.deliver(t, event("evt_s", "customer.subscription.updated", now, subJSON("sub_1", "cus_1", "past_due", "price_pro", now+86400*30))).Code)
	m, err := e.b.Membership(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, billing.StatusActive, m.Status)
	assert.Equal(t, 1, m.FailedAttempts)
	require.Equal(t, 200, e.deliver(t, event("evt_i3", "invoice.payment_failed", now, inv("in_1", "open", 3, fmt.Sprint(now+86400*3)))).Code)
	require.Equal(t, 200, e.deliver(t, event("evt_i2", "invoice.payment_failed", now, inv("in_1", "open", 2, fmt.Sprint(now+86400*2)))).Code)
	m, err = e.b.Membership(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, billing.StatusPastDue, m.Status, "the highest attempt_count counts, whatever the order")
	assert.Equal(t, 3, m.FailedAttempts)

	session := func(id, payment string) string {
		return fmt.Sprintf(`{"id":%q,"object":"checkout.session","mode":"payment","status":"complete","payment_status":%q,"customer":"cus_1","client_reference_id":"u1","amount_total":900,"currency":"usd","metadata":{"billing_user_id":"u1","billing_price_id":"price_pack","billing_quantity":"2"},"subscription":null}`, id, payment)
	}
	require.Equal(t, 200, e.deliver(t, event("evt_c1", "checkout.session.completed", now, session("cs_unpaid", "unpaid"))).Code)
	assert.Empty(t, facts(t, store, "u1").Grants, "an unpaid session grants nothing")
	require.Equal(t, 200, e.deliver(t, event("evt_c2", "checkout.session.async_payment_succeeded", now, session("cs_unpaid", "paid"))).Code)
	require.Equal(t, 200, e.deliver(t, event("evt_c3", "checkout.session.completed", now, session("cs_paid", "paid"))).Code)
	require.Equal(t, 200, e.deliver(t, event("evt_c4", "checkout.session.completed", now, session("cs_paid", "paid"))).Code)
	f := facts(t, store, "u1")
	require.Len(t, f.Grants, 2)
	for _, g := range f.Grants {
		assert.Equal(t, int64(200), g.Credits)
		assert.Equal(t, "price_pack", g.PriceID)
		assert.Equal(t, int64(2), g.Quantity)
	}
	m, err = e.b.Membership(ctx, "u1")
	require.NoError(t, err)
	assert.Equal(t, int64(400), m.Credits)

	// An event without data.object is parked, not applied, and not
	// answered 500 for the three days Stripe would retry it.
	w := e.deliver(t, []byte(`{"id":"evt_empty","object":"event","api_version":"2025-08-27.basil","created":1,"livemode":false,"type":"invoice.paid","data":{}}`))
	assert.Equal(t, 200, w.Code)
	assert.JSONEq(t, `{"outcome":"parked"}`, w.Body.String())
	done, err := store.Processed(ctx, "evt_empty")
	require.NoError(t, err)
	assert.False(t, done)
}

func TestWebhookParksWhatItCannotRead(t *testing.T) {
	t.Parallel()
	store := memstore.New()
	linked(t, store, "u1", "cus_1")
	e := newHandlerEnv(t, store)
	ctx := context.Background()
	// Verified, of a used type, but its object has no ID: retrying cannot
	// help, so it is kept for an operator rather than answered 500.
	w := e.deliver(t, event("evt_noid", "customer.subscription.updated", time.Now().Unix(), `{"object":"subscription","status":"active"}`))
	assert.Equal(t, 200, w.Code)
	assert.JSONEq(t, `{"outcome":"parked"}`, w.Body.String())
	parked, err := parkedOf(ctx, e.b)
	require.NoError(t, err)
	require.Len(t, parked, 1)
	assert.Contains(t, parked[0].Reason, "no ID")

	out, err := e.b.Replay(ctx, "evt_unknown")
	assert.ErrorIs(t, err, billing.ErrNotParked)
	assert.Equal(t, billing.OutcomeNone, out, "errors come with the zero Outcome")
}

// A guest purchase (a Payment Link) has no customer: its
// client_reference_id names the user it is for.
func TestWebhookGrantsGuestPurchaseToItsReference(t *testing.T) {
	t.Parallel()
	store := memstore.New()
	e := newHandlerEnv(t, store)
	w := e.deliver(t, event("evt_guest", "checkout.session.completed", time.Now().Unix(),
		`{"id":"cs_guest","object":"checkout.session","mode":"payment","status":"complete","payment_status":"paid","customer":null,"client_reference_id":"u5","amount_total":500,"currency":"usd","metadata":{"billing_price_id":"price_pack","billing_quantity":"1"}}`))
	require.Equal(t, 200, w.Code, w.Body.String())
	assert.JSONEq(t, `{"outcome":"applied"}`, w.Body.String())
	m, err := e.b.Membership(context.Background(), "u5")
	require.NoError(t, err)
	assert.Equal(t, int64(100), m.Credits)
}

// parkedOf reads every parked event, payloads included, as an operator
// would: page by page, then each one.
func parkedOf(ctx context.Context, b *billing.Billing) ([]billing.ParkedEvent, error) {
	var out []billing.ParkedEvent
	cursor := ""
	for {
		page, next, err := b.ParkedEvents(ctx, cursor, 2)
		if err != nil {
			return nil, err
		}
		for _, p := range page {
			full, err := b.ParkedEvent(ctx, p.ID)
			if err != nil {
				return nil, err
			}
			out = append(out, full)
		}
		if next == "" {
			return out, nil
		}
		cursor = next
	}
}

// instantClock is a billing.Clock on the real time whose waits return at
// once.
type instantClock struct{}

func (instantClock) Now() time.Time                                   { return time.Now() }
func (instantClock) Sleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }
