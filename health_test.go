package billing_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/internal/testcatalog"
	"github.com/gobilling/billing/internal/testenv"
	"github.com/gobilling/billing/memstore"
)

// hcStore is a Store with an outbox and nothing more (whatever memstore
// offers besides): it tells no time of its last event. A test that reads
// a payload through it fails: the health report reads counts only.
type hcStore struct {
	billing.Store
	billing.Outbox
	t *testing.T
}

func newHCStore(t *testing.T) *hcStore {
	m := memstore.New()
	return &hcStore{Store: m, Outbox: m, t: t}
}

func (s *hcStore) ParkedEvent(ctx context.Context, id string) (billing.ParkedEvent, error) {
	s.t.Errorf("the health report read parked event %s's payload", id)
	return s.Store.ParkedEvent(ctx, id)
}

func (s *hcStore) ParkedEvents(ctx context.Context, after billing.ParkedCursor, limit int) ([]billing.ParkedEvent, error) {
	s.t.Errorf("the health report listed parked events")
	return s.Store.ParkedEvents(ctx, after, limit)
}

func (s *hcStore) DeadEntries(ctx context.Context, afterSeq int64, limit int) ([]billing.OutboxEntry, error) {
	s.t.Errorf("the health report read dead changes")
	return s.Outbox.DeadEntries(ctx, afterSeq, limit)
}

// hcStatsStore is an hcStore that tells when it last recorded an event
// (billing.EventStats).
type hcStatsStore struct {
	*hcStore
	last time.Time
	err  error
}

var _ billing.EventStats = (*hcStatsStore)(nil)

func (s *hcStatsStore) LastProcessed(context.Context) (time.Time, error) { return s.last, s.err }

// hcDownStore is a store whose database does not answer.
type hcDownStore struct{ *hcStore }

// errHCDatabase is the down store's error: it names a host, which the
// handler must log but not serve.
var errHCDatabase = errors.New("dial tcp db.internal.example:5432: connect: connection refused")

func (hcDownStore) CountParked(context.Context) (int64, error) { return 0, errHCDatabase }

var hcStart = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)

type hcEnv struct {
	b     *billing.Billing
	clock *settableClock
	logs  *testenv.LogBuffer
}

// newHCEnv is a Billing on store that makes no Stripe call, on a clock
// the test moves; hooks are on unless noHooks.
func newHCEnv(t *testing.T, store billing.Store, noHooks bool) *hcEnv {
	t.Helper()
	clock := &settableClock{now: hcStart}
	logs := &testenv.LogBuffer{}
	cfg := billing.Config{
		SecretKey:      coSecretKey,
		WebhookSecrets: []string{testSecret},
		SiteURL:        "https://app.example",
		Plans:          testcatalog.Plans(),
		Logger:         slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:          clock,
		StripeURL:      "http://127.0.0.1:1", // never called
	}
	if !noHooks {
		cfg.Hooks.Handler = billing.ChangeHandlerFunc(func(context.Context, billing.Change) error { return nil })
	}
	b, err := billing.New(cfg, store, users)
	require.NoError(t, err)
	t.Cleanup(func() {
		if out := logs.String(); strings.Contains(out, coSecretKey) || strings.Contains(out, testSecret) {
			t.Errorf("a secret reached the logs")
		}
	})
	return &hcEnv{b: b, clock: clock, logs: logs}
}

// serve asks the health handler and decodes its JSON.
func (e *hcEnv) serve(t *testing.T, method string) (int, map[string]any, string) {
	t.Helper()
	w := httptest.NewRecorder()
	e.b.HealthHandler().ServeHTTP(w, httptest.NewRequest(method, "/healthz/billing", nil))
	body := w.Body.String()
	if method != http.MethodGet {
		return w.Code, nil, body
	}
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	assert.Equal(t, "no-store", w.Header().Get("Cache-Control"))
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &m), body)
	return w.Code, m, body
}

func TestHealthOK(t *testing.T) {
	t.Parallel()
	e := newHCEnv(t, newHCStore(t), false)
	h := e.b.Health(context.Background())
	assert.Equal(t, billing.HealthOK, h.Status)
	assert.True(t, h.OK)
	assert.True(t, h.StoreOK)
	assert.Empty(t, h.StoreError)
	assert.Equal(t, hcStart, h.CheckedAt)
	assert.False(t, h.LastEventKnown, "the store implements no EventStats")
	assert.True(t, h.LastEventAt.IsZero())
	assert.True(t, h.Hooks)
	assert.Zero(t, h.Parked+h.HooksPending+h.HooksDead)
	assert.Zero(t, h.HookLag)
	assert.Empty(t, h.Problems)

	code, m, _ := e.serve(t, http.MethodGet)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok", m["status"])
	assert.Equal(t, true, m["ok"])
	assert.Equal(t, true, m["store_ok"])
	assert.NotContains(t, m, "store_error")
	assert.Equal(t, false, m["last_event_known"])
	assert.Nil(t, m["last_event_at"], "unknown")
	assert.Nil(t, m["last_event_age_seconds"], "unknown")
	assert.Equal(t, float64(0), m["parked"])
	assert.Equal(t, map[string]any{"pending": float64(0), "dead": float64(0), "lag_seconds": float64(0)}, m["hooks"])
	assert.Equal(t, []any{}, m["problems"])
	assert.Equal(t, hcStart.Format(time.RFC3339), m["checked_at"])

	code, _, body := e.serve(t, http.MethodHead)
	assert.Equal(t, http.StatusOK, code)
	assert.Empty(t, body)
	code, _, _ = e.serve(t, http.MethodPost)
	assert.Equal(t, http.StatusMethodNotAllowed, code)
}

func TestHealthWithoutHooks(t *testing.T) {
	t.Parallel()
	e := newHCEnv(t, newHCStore(t), true)
	h := e.b.Health(context.Background())
	assert.True(t, h.OK)
	assert.False(t, h.Hooks)
	code, m, _ := e.serve(t, http.MethodGet)
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, m, "hooks")
	assert.Nil(t, m["hooks"], "no outbox: hooks is null")
}

// The age of the last applied event, from a store that tells it, on the
// injected clock.
func TestHealthLastEventAge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := &hcStatsStore{hcStore: newHCStore(t)}
	e := newHCEnv(t, store, false)

	h := e.b.Health(ctx)
	assert.True(t, h.LastEventKnown, "known: none applied yet")
	assert.True(t, h.LastEventAt.IsZero())
	assert.Zero(t, h.LastEventAge)
	assert.True(t, h.OK)

	store.last = hcStart.Add(-5 * time.Minute)
	h = e.b.Health(ctx)
	assert.True(t, h.OK)
	assert.Equal(t, store.last, h.LastEventAt)
	assert.Equal(t, 5*time.Minute, h.LastEventAge)

	e.clock.now = hcStart.Add(time.Hour)
	h = e.b.Health(ctx)
	assert.Equal(t, 65*time.Minute, h.LastEventAge, "measured on Config.Clock")
	assert.True(t, h.OK, "an old last event is a number to alert on, not a degradation")
	raw, err := json.Marshal(h)
	require.NoError(t, err)
	var back billing.Health
	require.NoError(t, json.Unmarshal(raw, &back))
	assert.Equal(t, h, back)
	_, m, _ := e.serve(t, http.MethodGet)
	assert.Equal(t, true, m["last_event_known"])
	assert.Equal(t, store.last.Format(time.RFC3339), m["last_event_at"])
	assert.Equal(t, float64(65*60), m["last_event_age_seconds"])

	// A store clock a little ahead: no negative age.
	store.last = e.clock.now.Add(time.Second)
	assert.Zero(t, e.b.Health(ctx).LastEventAge)

	// Reading it fails: degraded, the error logged, not served.
	store.err = errors.New("stats: db.internal.example timed out")
	h = e.b.Health(ctx)
	assert.Equal(t, billing.HealthDegraded, h.Status)
	assert.False(t, h.OK)
	assert.True(t, h.StoreOK)
	assert.False(t, h.LastEventKnown)
	assert.Contains(t, h.StoreError, "db.internal.example")
	require.Len(t, h.Problems, 1)
	assert.Contains(t, h.Problems[0], "last applied event")
	code, m, body := e.serve(t, http.MethodGet)
	assert.Equal(t, http.StatusOK, code, "degraded is still up")
	assert.Equal(t, "degraded", m["status"])
	assert.NotContains(t, body, "db.internal.example")
	assert.Contains(t, e.logs.String(), "db.internal.example")
}

// Parked events and dead changes degrade the report; pending changes and
// their lag are numbers on the injected clock. Counts only: hcStore fails
// the test on a payload read.
func TestHealthCounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := newHCStore(t)
	e := newHCEnv(t, store, false)

	for _, id := range []string{"evt_parkA", "evt_parkB"} {
		require.NoError(t, store.Park(ctx, billing.ParkedEvent{ID: id, Type: "invoice.paid", CustomerID: "cus_x",
			Reason: "unknown customer", Payload: []byte(`{"id":"` + id + `"}`), ParkedAt: hcStart.Add(-time.Hour)}))
	}
	record := func(key, user string, at time.Time) {
		require.NoError(t, store.Apply(ctx, "", func(ctx context.Context, tx billing.Tx) error {
			_, err := tx.(billing.OutboxTx).Record(ctx, billing.OutboxEntry{Key: key, UserID: user, Kind: "activated",
				Payload: []byte(`{}`), RecordedAt: at})
			return err
		}))
	}
	record("chg_dead", "user_1", hcStart.Add(-3*time.Minute))
	record("chg_wait", "user_2", hcStart.Add(-90*time.Second))
	claimed, err := store.Claim(ctx, hcStart, hcStart.Add(time.Minute), 1)
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	require.Equal(t, "chg_dead", claimed[0].Key)
	require.NoError(t, store.Failed(ctx, "chg_dead", claimed[0].Claim, billing.DeliveryFailure{Error: "boom", Dead: true}))

	h := e.b.Health(ctx)
	assert.Equal(t, billing.HealthDegraded, h.Status)
	assert.False(t, h.OK)
	assert.True(t, h.StoreOK)
	assert.Equal(t, int64(2), h.Parked)
	assert.Equal(t, int64(1), h.HooksPending)
	assert.Equal(t, int64(1), h.HooksDead)
	assert.Equal(t, 90*time.Second, h.HookLag)
	require.Len(t, h.Problems, 2)
	assert.Contains(t, h.Problems[0], "2 event(s) parked")
	assert.Contains(t, h.Problems[1], "1 change(s) dead-lettered")
	assert.Empty(t, h.StoreError)

	e.clock.now = hcStart.Add(30 * time.Second)
	assert.Equal(t, 2*time.Minute, e.b.Health(ctx).HookLag, "the lag grows on the clock")

	// The JSON decodes back (whole seconds).
	h = e.b.Health(ctx)
	raw, err := json.Marshal(h)
	require.NoError(t, err)
	var back billing.Health
	require.NoError(t, json.Unmarshal(raw, &back))
	assert.Equal(t, h, back)

	code, m, body := e.serve(t, http.MethodGet)
	assert.Equal(t, http.StatusOK, code, "degraded is still up: a load balancer keeps the replica")
	assert.Equal(t, "degraded", m["status"])
	assert.Equal(t, float64(2), m["parked"])
	assert.Equal(t, map[string]any{"pending": float64(1), "dead": float64(1), "lag_seconds": float64(120)}, m["hooks"])
	assert.Len(t, m["problems"], 2)
	for _, leak := range []string{"evt_parkA", "unknown customer", "boom", "user_1"} {
		assert.NotContains(t, body, leak, "no payload, reason or user in the health report")
	}
}

// A store that does not answer: down, 503, the error logged and not
// served.
func TestHealthStoreDown(t *testing.T) {
	t.Parallel()
	e := newHCEnv(t, hcDownStore{newHCStore(t)}, false)
	h := e.b.Health(context.Background())
	assert.Equal(t, billing.HealthDown, h.Status)
	assert.False(t, h.OK)
	assert.False(t, h.StoreOK)
	assert.Equal(t, errHCDatabase.Error(), h.StoreError)
	require.Len(t, h.Problems, 1)
	assert.Contains(t, h.Problems[0], "the store does not answer")

	code, m, body := e.serve(t, http.MethodGet)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "down", m["status"])
	assert.Equal(t, false, m["store_ok"])
	assert.NotContains(t, m, "store_error")
	assert.NotContains(t, body, "db.internal.example", "the store's error is not served")
	assert.Contains(t, e.logs.String(), "db.internal.example", "it is logged")

	code, _, body = e.serve(t, http.MethodHead)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Empty(t, body)

	// Marshalled by the app (or the CLI), the report keeps the error.
	raw, err := json.Marshal(h)
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"store_error":"dial tcp db.internal.example`)
}

// A store that lists its recent events (billing.EventLister, as memstore
// and sqlstore do) tells the last one's time without EventStats.
func TestHealthLastEventFromEventLister(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := memstore.New()
	if _, ok := any(store).(billing.EventLister); !ok {
		t.Skip("memstore lists no events")
	}
	e := newHCEnv(t, store, true)
	e.clock.now = time.Now() // memstore records on the real clock
	h := e.b.Health(ctx)
	assert.True(t, h.LastEventKnown)
	assert.True(t, h.LastEventAt.IsZero(), "none applied yet")

	require.NoError(t, store.Apply(ctx, "evt_health1", func(context.Context, billing.Tx) error { return nil }))
	e.clock.now = e.clock.now.Add(10 * time.Minute)
	h = e.b.Health(ctx)
	assert.True(t, h.OK)
	assert.True(t, h.LastEventKnown)
	assert.False(t, h.LastEventAt.IsZero())
	assert.InDelta(t, (10 * time.Minute).Seconds(), h.LastEventAge.Seconds(), 5)
}
