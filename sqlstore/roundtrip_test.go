package sqlstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/sqlstore"
)

// ---- the handler on a SQL store, beside the minimal consumer ----

const (
	rtSecret = "whsec_roundtrips"
	rtPrice  = "price_pro"
)

// sqlWorld is billing's webhook handler on a sqlstore, with users
// u0..u(n-1) linked to customers cus_0.. and each subscribed (sub_0..),
// and the minimal one-transaction consumer on the same pool.
type sqlWorld struct {
	d       sqlstore.Dialect
	db      *sql.DB
	st      *sqlstore.Store
	h       http.Handler
	created []atomic.Int64 // per user: the last event's created
	floor   *floorConsumer
	events  atomic.Int64
	// hooks: changes are recorded, and each payload flips
	// cancel_at_period_end, so that every applied event records one.
	hooks bool
}

func newSQLWorld(t testing.TB, d sqlstore.Dialect, db *sql.DB, users int, hooks ...billing.Hooks) *sqlWorld {
	return newSQLWorldLogging(t, d, db, users, slog.New(slog.DiscardHandler), hooks...)
}

// newSQLWorldLogging is newSQLWorld with a logger of the test's choice.
func newSQLWorldLogging(t testing.TB, d sqlstore.Dialect, db *sql.DB, users int, logger *slog.Logger, hooks ...billing.Hooks) *sqlWorld {
	t.Helper()
	var h billing.Hooks
	if len(hooks) > 0 {
		h = hooks[0]
	}
	ctx := context.Background()
	prefix := newPrefix(t)
	st, err := sqlstore.New(ctx, db, d, sqlstore.Options{TablePrefix: prefix})
	require.NoError(t, err)
	require.NoError(t, st.Migrate(ctx))
	t.Cleanup(func() { dropTables(t, database(t, d), db, prefix) })
	b, err := billing.New(billing.Config{
		SecretKey:      "sk_test_roundtrips",
		WebhookSecrets: []string{rtSecret},
		SiteURL:        "https://app.example",
		Plans:          []billing.Plan{{PriceID: rtPrice, Tier: "pro"}},
		// A logger above INFO (newSQLWorld): billing need not tell the
		// change of a write, so it takes the one-statement write; at INFO
		// it asks the store for the record it replaced as well (see
		// maxInfoRoundTrips); with hooks it records the change in the
		// write's transaction (see maxHookRoundTrips).
		Logger:     logger,
		StripeURL:  "http://127.0.0.1:1", // no Stripe: an applied newer state needs none
		MaxRetries: -1,
		Hooks:      h,
	}, st, billing.UserResolverFunc(func(ctx context.Context, id string) (billing.User, error) { return billing.User{ID: id}, nil }))
	require.NoError(t, err)
	w := &sqlWorld{d: d, db: db, st: st, h: b.WebhookHandler(), created: make([]atomic.Int64, users), hooks: h.Handler != nil}
	w.floor = newFloorConsumer(t, d, db, prefix)
	start := time.Now().Add(-time.Hour).Unix()
	for u := range users {
		require.NoError(t, st.Apply(ctx, "", func(ctx context.Context, tx billing.Tx) error {
			return tx.LinkCustomer(ctx, fmt.Sprintf("u%d", u), fmt.Sprintf("cus_%d", u))
		}))
		w.created[u].Store(start)
		code, body := w.deliver(w.payload(u))
		require.Equal(t, http.StatusOK, code, body)
		require.Contains(t, body, "applied")
	}
	return w
}

// payload is a new customer.subscription.updated for user u's
// subscription, one second newer than the last: it is applied.
func (w *sqlWorld) payload(u int) []byte {
	created := w.created[u].Add(1)
	id := fmt.Sprintf("evt_rt%020d", w.events.Add(1))
	cancel := w.hooks && created%2 == 0
	return fmt.Appendf(nil, `{"id":%q,"object":"event","api_version":"2025-08-27.basil","created":%d,"livemode":false,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null},"type":"customer.subscription.updated","data":{"object":{"id":"sub_%d","object":"subscription","customer":"cus_%d","status":"active","cancel_at_period_end":%t,"cancel_at":null,"canceled_at":null,"ended_at":null,"trial_start":null,"trial_end":null,"latest_invoice":"in_%d","livemode":false,"metadata":{},"items":{"object":"list","has_more":false,"data":[{"id":"si_%d","object":"subscription_item","quantity":1,"current_period_start":%d,"current_period_end":%d,"price":{"id":%q,"object":"price","active":true,"currency":"usd","unit_amount":2900,"recurring":{"interval":"month","interval_count":1}}}]}}}}`,
		id, created, u, u, cancel, u, u, created, created+30*86400, rtPrice)
}

// deliver signs and posts one payload.
func (w *sqlWorld) deliver(payload []byte) (int, string) { return w.serve(signedRequest(payload)) }

// signedRequest is the webhook request of a payload, signed now.
func signedRequest(payload []byte) *http.Request {
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: rtSecret, Timestamp: time.Now()})
	r := httptest.NewRequest(http.MethodPost, "/stripe/webhook", bytes.NewReader(payload))
	r.Header.Set("Stripe-Signature", sp.Header)
	return r
}

func (w *sqlWorld) serve(r *http.Request) (int, string) {
	rec := httptest.NewRecorder()
	w.h.ServeHTTP(rec, r)
	return rec.Code, strings.TrimSpace(rec.Body.String())
}

// floorConsumer is the least a webhook consumer that applies each event
// once can do: one transaction that inserts the event ID and upserts one
// row, on the same pool.
type floorConsumer struct {
	db             *sql.DB
	insert, upsert string
	events         atomic.Int64
}

func newFloorConsumer(t testing.TB, d sqlstore.Dialect, db *sql.DB, prefix string) *floorConsumer {
	t.Helper()
	table, events := prefix+"floor_rows", prefix+"floor_events"
	text := map[sqlstore.Dialect]string{sqlstore.Postgres: "TEXT", sqlstore.MySQL: "VARCHAR(255)", sqlstore.SQLite: "TEXT"}[d]
	for _, ddl := range []string{
		"CREATE TABLE " + events + " (id " + text + " NOT NULL PRIMARY KEY, processed_at BIGINT NOT NULL)",
		"CREATE TABLE " + table + " (id " + text + " NOT NULL PRIMARY KEY, status " + text + " NOT NULL, version BIGINT NOT NULL)",
	} {
		_, err := db.ExecContext(context.Background(), ddl)
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		for _, tb := range []string{events, table} {
			_, _ = db.ExecContext(context.Background(), "DROP TABLE "+tb)
		}
	})
	f := &floorConsumer{db: db,
		insert: "INSERT INTO " + events + " (id, processed_at) VALUES (?, ?)",
		upsert: "INSERT INTO " + table + " (id, status, version) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET status = excluded.status, version = excluded.version",
	}
	switch d {
	case sqlstore.Postgres:
		f.insert = "INSERT INTO " + events + " (id, processed_at) VALUES ($1, $2)"
		f.upsert = "INSERT INTO " + table + " (id, status, version) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET status = excluded.status, version = excluded.version"
	case sqlstore.MySQL:
		f.upsert = "INSERT INTO " + table + " (id, status, version) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE status = VALUES(status), version = VALUES(version)"
	}
	return f
}

// apply is one event: BEGIN, INSERT the event ID, UPSERT the row, COMMIT.
func (f *floorConsumer) apply(ctx context.Context, u int) error {
	n := f.events.Add(1)
	tx, err := f.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // after Commit, a no-op
	if _, err := tx.ExecContext(ctx, f.insert, fmt.Sprintf("evt_floor%020d", n), time.Now().Unix()); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, f.upsert, fmt.Sprintf("sub_%d", u), "active", n); err != nil {
		return err
	}
	return tx.Commit()
}

// maxRoundTrips bounds the database round trips of one applied
// customer.subscription.updated through the handler (BENCHMARKS.md). On
// PostgreSQL, ApplyNewer: one statement on its own (the compare-and-swap
// upsert and the event's INSERT, WITH ...); on SQLite BEGIN, the event's
// INSERT, the upsert, COMMIT. On MySQL, which declines it, Apply:
// SET TRANSACTION (its READ COMMITTED), BEGIN, INSERT the event, SELECT
// the subscription FOR UPDATE, UPDATE it, COMMIT. Statements are
// prepared once per connection.
var maxRoundTrips = map[sqlstore.Dialect]int64{sqlstore.Postgres: 1, sqlstore.MySQL: 5, sqlstore.SQLite: 4}

// floorRoundTrips are the minimal consumer's: BEGIN, INSERT, UPSERT,
// COMMIT; go-sql-driver/mysql prepares each statement with arguments
// first (the consumer uses database/sql as most code does).
var floorRoundTrips = map[sqlstore.Dialect]int64{sqlstore.Postgres: 4, sqlstore.MySQL: 6, sqlstore.SQLite: 4}

// TestRoundTripsPerAppliedEvent counts, through the fault driver's
// counting driver.Connector (see faultPlan), the round trips of applied events on one connection,
// once its statements are prepared, against the bounds above and beside
// the minimal consumer's.
func TestRoundTripsPerAppliedEvent(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		tdb := database(t, d)
		plan := &faultPlan{mysql: d == sqlstore.MySQL} // never armed: it only counts
		db := sql.OpenDB(&faultConnector{inner: tdb.connector(t), plan: plan})
		db.SetMaxOpenConns(1)
		t.Cleanup(func() { db.Close() })
		w := newSQLWorld(t, d, db, 1)
		ctx := context.Background()
		// Warm the connection's statements, then count.
		for range 2 {
			code, body := w.deliver(w.payload(0))
			require.Equal(t, http.StatusOK, code, body)
			require.NoError(t, w.floor.apply(ctx, 0))
		}
		const n = 10
		plan.calls.Store(0)
		for range n {
			code, body := w.deliver(w.payload(0))
			require.Equal(t, http.StatusOK, code, body)
			require.Equal(t, `{"outcome":"applied"}`, body)
		}
		handler := plan.calls.Load()
		plan.calls.Store(0)
		for range n {
			require.NoError(t, w.floor.apply(ctx, 0))
		}
		floor := plan.calls.Load()
		t.Logf("%s: %.1f round trips per applied event through the handler, %.1f for the minimal consumer", d, float64(handler)/n, float64(floor)/n)
		assert.LessOrEqual(t, handler, maxRoundTrips[d]*n, "round trips of %d applied events", n)
		assert.Equal(t, floorRoundTrips[d]*n, floor, "the minimal consumer: BEGIN, INSERT, UPSERT, COMMIT")

		// At INFO, each change is logged: the store also says what it
		// replaced (PostgreSQL in the same statement).
		var logs bytes.Buffer
		iw := newSQLWorldLogging(t, d, db, 1, slog.New(slog.NewTextHandler(&logs, nil)))
		iw.hooks = true // flip cancel_at_period_end: a change per event
		for range 2 {
			code, body := iw.deliver(iw.payload(0))
			require.Equal(t, http.StatusOK, code, body)
		}
		plan.calls.Store(0)
		for range n {
			code, body := iw.deliver(iw.payload(0))
			require.Equal(t, http.StatusOK, code, body)
		}
		info := plan.calls.Load()
		t.Logf("%s: %.1f round trips per applied event logged at INFO", d, float64(info)/n)
		assert.LessOrEqual(t, info, maxInfoRoundTrips[d]*n, "round trips of %d applied events at INFO", n)
		assert.GreaterOrEqual(t, strings.Count(logs.String(), `msg="billing: membership changed"`), n, "each change logged")
		assert.Contains(t, logs.String(), "kind=cancellation_scheduled user=u0 customer=cus_0 subscription=sub_0 from=active to=active")

		// With hooks on, each event (flipping cancel_at_period_end)
		// records one change: the general path, and the outbox's INSERT.
		hw := newSQLWorld(t, d, db, 1, billing.Hooks{Handler: billing.ChangeHandlerFunc(func(context.Context, billing.Change) error { return nil })})
		for range 2 {
			code, body := hw.deliver(hw.payload(0))
			require.Equal(t, http.StatusOK, code, body)
		}
		before, err := hw.st.OutboxStats(ctx)
		require.NoError(t, err)
		plan.calls.Store(0)
		for range n {
			code, body := hw.deliver(hw.payload(0))
			require.Equal(t, http.StatusOK, code, body)
		}
		hooks := plan.calls.Load()
		after, err := hw.st.OutboxStats(ctx)
		require.NoError(t, err)
		assert.Equal(t, before.Pending+n, after.Pending, "one change per event")
		t.Logf("%s: %.1f round trips per applied event that records a change", d, float64(hooks)/n)
		assert.LessOrEqual(t, hooks, maxHookRoundTrips[d]*n, "round trips of %d applied events with hooks", n)
	})
}

// maxInfoRoundTrips bounds the round trips of an applied event whose
// change is logged: PostgreSQL's one statement also returns the row it
// replaced; SQLite and MySQL read it FOR UPDATE in the transaction.
var maxInfoRoundTrips = map[sqlstore.Dialect]int64{sqlstore.Postgres: 1, sqlstore.MySQL: 6, sqlstore.SQLite: 5}

// maxHookRoundTrips bounds the round trips of an applied event that
// records a change: BEGIN, INSERT the event, SELECT the customer's link
// FOR UPDATE (the user's lock), SELECT the subscription FOR UPDATE,
// UPDATE it, INSERT the change, COMMIT (and MySQL's SET TRANSACTION).
var maxHookRoundTrips = map[sqlstore.Dialect]int64{sqlstore.Postgres: 7, sqlstore.MySQL: 8, sqlstore.SQLite: 7}

// BenchmarkWebhookSQL measures applied events per second through the
// handler on a sqlstore, beside the minimal one-transaction consumer on
// the same pool, at 1 and 16 concurrent deliveries (each worker on a
// user of its own). The handler's requests are made and signed before
// the timer starts: verifying them is the handler's work, making them is
// not.
func BenchmarkWebhookSQL(b *testing.B) {
	for _, d := range dialects {
		b.Run(string(d), func(b *testing.B) {
			tdb := database(b, d)
			db := tdb.open(b, 16)
			const users = 16
			w := newSQLWorld(b, d, db, users)
			hw := newSQLWorld(b, d, db, users, billing.Hooks{Handler: billing.ChangeHandlerFunc(func(context.Context, billing.Change) error { return nil })})
			for _, conc := range []int{1, 16} {
				b.Run(fmt.Sprintf("handler/%d", conc), func(b *testing.B) { benchHandler(b, w, conc) })
				// The same events with hooks on: each records one change
				// (cancellation scheduled or undone) in the outbox.
				b.Run(fmt.Sprintf("hooks/%d", conc), func(b *testing.B) { benchHandler(b, hw, conc) })
				b.Run(fmt.Sprintf("floor/%d", conc), func(b *testing.B) {
					runWorkers(b, conc, func(u int) error { return w.floor.apply(context.Background(), u) })
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
				})
			}
		})
	}
}

// benchHandler delivers b.N applied events through w's handler from conc
// workers.
func benchHandler(b *testing.B, w *sqlWorld, conc int) {
	// Worker u takes the requests i with i%conc == u, in order.
	reqs := make([]*http.Request, b.N)
	for i := range reqs {
		reqs[i] = signedRequest(w.payload(i % conc))
	}
	next := make([]atomic.Int64, conc)
	runWorkers(b, conc, func(u int) error {
		i := int(next[u].Add(1)-1)*conc + u
		if i >= len(reqs) {
			return nil // another worker took one more
		}
		code, body := w.serve(reqs[i])
		if code != http.StatusOK || body != `{"outcome":"applied"}` {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
