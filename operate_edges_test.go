package billing_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/memstore"
)

// observeWith is newObserved on a store of the test's.
func observeWith(t *testing.T, store billing.Store, mod ...func(*billing.Config)) *observed {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	spans := tracetest.NewSpanRecorder()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() {
		_ = mp.Shutdown(context.Background())
		_ = tp.Shutdown(context.Background())
	})
	e := newCoEnvWith(t, store, users, append([]func(*billing.Config){func(c *billing.Config) {
		c.MeterProvider, c.TracerProvider = mp, tp
	}}, mod...)...)
	return &observed{coEnv: e, reader: reader, spans: spans}
}

// reportingStore is memstore with the one-statement write of a newer state
// that also reports what it replaced (billing.PreviousReporter), made of
// one Apply; it counts the states it saved that way.
type reportingStore struct {
	*memstore.Store
	mu    sync.Mutex
	saved int
}

var errNotNewer = errors.New("not newer: left to the general way")

func (s *reportingStore) ApplyNewerReporting(ctx context.Context, eventID string, sub billing.Subscription) (billing.NewerResult, error) {
	var r billing.NewerResult
	err := s.Store.Apply(ctx, eventID, func(ctx context.Context, tx billing.Tx) error {
		user, err := tx.UserID(ctx, sub.CustomerID)
		if errors.Is(err, billing.ErrNotFound) {
			return errNotNewer
		}
		if err != nil {
			return err
		}
		prev, found, err := tx.Subscription(ctx, sub.ID)
		if err != nil {
			return err
		}
		if found && (prev.CustomerID != sub.CustomerID || prev.OrderKey >= sub.OrderKey) {
			return errNotNewer
		}
		next := sub
		next.UserID = user
		if found {
			next.Invoice = prev.Invoice
		}
		if err := tx.SaveSubscription(ctx, next); err != nil {
			return err
		}
		r = billing.NewerResult{Saved: true, Found: found, UserID: user}
		if found {
			r.Previous = prev
		}
		return nil
	})
	switch {
	case errors.Is(err, billing.ErrDuplicateEvent):
		return billing.NewerResult{Duplicate: true}, nil
	case errors.Is(err, errNotNewer):
		return billing.NewerResult{}, nil
	case err != nil:
		return billing.NewerResult{}, err
	}
	s.mu.Lock()
	s.saved++
	s.mu.Unlock()
	return r, nil
}

func (s *reportingStore) ApplyNewer(ctx context.Context, eventID string, sub billing.Subscription) (bool, bool, error) {
	r, err := s.ApplyNewerReporting(ctx, eventID, sub)
	return r.Saved, r.Duplicate, err
}

func (s *reportingStore) swaps() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saved
}

var _ billing.PreviousReporter = (*reportingStore)(nil)

// On a store that reports what its one statement replaced, a change that
// is only told (logged, counted) keeps the one statement, and is told
// with its user all the same.
func TestOneStatementChangesAreCountedAndLogged(t *testing.T) {
	t.Parallel()
	store := &reportingStore{Store: memstore.New()}
	o := observeWith(t, store)
	sub := buy(t, o.coEnv, "u1")
	before := store.swaps()
	o.deliver(t, must(o.fake.CancelNow(sub))...)
	assert.Greater(t, store.swaps(), before, "the end was saved in one statement")

	assert.Equal(t, float64(1), o.sums(t, "billing.changes", "billing.change.kind")["ended"])
	assert.Equal(t, float64(1), o.sums(t, "billing.subscriptions.canceled", "")[""])
	var ended string
	for _, l := range strings.Split(o.logs.String(), "\n") {
		if strings.Contains(l, `msg="billing: membership changed"`) && strings.Contains(l, "kind=ended") {
			ended = l
		}
	}
	require.NotEmpty(t, ended, o.logs.String())
	for _, want := range []string{"user=u1", "subscription=" + sub, "from=active", "to=canceled", "event=evt_"} {
		assert.Contains(t, ended, want)
	}
}

// With hooks, a change must be recorded in its write's transaction: the
// one statement (which records nothing) is not used, and the handler
// gets the change.
func TestOneStatementNotUsedWhenChangesAreRecorded(t *testing.T) {
	t.Parallel()
	store := &reportingStore{Store: memstore.New()}
	l := &hookLog{}
	e := newCoEnvWith(t, store, users, withHooks(l, billing.Hooks{}))
	sub := buy(t, e, "u1")
	e.deliver(t, must(e.fake.CancelNow(sub))...)
	dispatch(t, e.b)
	assert.Equal(t, []billing.ChangeKind{billing.ChangeActivated, billing.ChangeEnded}, l.kinds())
	assert.Zero(t, store.swaps())
}

// spanAttrs is a span's attributes by key.
func spanAttrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	out := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		out[kv.Key] = kv.Value
	}
	return out
}

// A Stripe request that failed (5xx) is an error span, its retry a span
// of its own with its try number; the failure is logged at Warn with the
// status, the retry at Debug with its number.
func TestStripeCallFailureAndRetryTraced(t *testing.T) {
	t.Parallel()
	o := newObserved(t)
	buy(t, o.coEnv, "u1")
	o.fake.SetFail("GET /v1/subscriptions", http.StatusInternalServerError, 1)
	_, err := o.b.Sync(context.Background(), "u1")
	require.NoError(t, err)

	var tries []sdktrace.ReadOnlySpan
	for _, s := range o.spans.Ended() {
		if s.Name() == "stripe GET /v1/subscriptions" {
			tries = append(tries, s)
		}
	}
	require.Len(t, tries, 2)
	first, retry := spanAttrs(tries[0]), spanAttrs(tries[1])
	assert.Equal(t, int64(500), first["http.response.status_code"].AsInt64())
	assert.Equal(t, int64(0), first["billing.retry"].AsInt64())
	assert.Equal(t, otelcodes.Error, tries[0].Status().Code)
	assert.Equal(t, int64(200), retry["http.response.status_code"].AsInt64())
	assert.Equal(t, int64(1), retry["billing.retry"].AsInt64())
	assert.Equal(t, otelcodes.Unset, tries[1].Status().Code)

	var failed, retried string
	for _, l := range strings.Split(o.logs.String(), "\n") {
		if !strings.Contains(l, `msg="stripe call"`) || !strings.Contains(l, `operation="GET /v1/subscriptions"`) {
			continue
		}
		switch {
		case strings.Contains(l, "status=500"):
			failed = l
		case strings.Contains(l, "retry="):
			retried = l
		}
	}
	assert.Contains(t, failed, "level=WARN")
	assert.Contains(t, retried, "level=DEBUG")
	assert.Contains(t, retried, "retry=1")
}

// A delivery that fails before its commit (answered 500) is a failed
// delivery in the metrics and an error span; an applied one is not.
func TestWebhookFailureTraced(t *testing.T) {
	t.Parallel()
	store := &failAtCommit{Store: memstore.New()}
	o := observeWith(t, store)
	sub := buy(t, o.coEnv, "u1")
	evs := must(o.fake.CancelNow(sub))
	store.fail = evs[0].ID
	code, _ := o.post(evs[0])
	require.Equal(t, http.StatusInternalServerError, code)

	assert.Equal(t, float64(1), o.sums(t, "billing.webhook.deliveries", "billing.outcome")["failed"])
	var failed, applied int
	for _, s := range o.spans.Ended() {
		if s.Name() != "billing.webhook" {
			continue
		}
		switch spanAttrs(s)["billing.outcome"].AsString() {
		case "failed":
			failed++
			assert.Equal(t, otelcodes.Error, s.Status().Code)
			assert.Contains(t, s.Status().Description, "the database went away")
			assert.Equal(t, evs[0].ID, spanAttrs(s)["stripe.event.id"].AsString())
		case "applied":
			applied++
			assert.Equal(t, otelcodes.Unset, s.Status().Code)
		}
	}
	assert.Equal(t, 1, failed)
	assert.Positive(t, applied)
}

// A handler's failures are counted by result (failed, then dead once its
// attempts are spent); the lag is measured on deliveries only.
func TestHookFailuresCountedByResult(t *testing.T) {
	t.Parallel()
	l := &hookLog{fail: map[billing.ChangeKind]int{billing.ChangeActivated: -1}}
	o := newObserved(t, withHooks(l, billing.Hooks{MaxAttempts: 2, Backoff: time.Minute}))
	buy(t, o.coEnv, "u1")
	dispatch(t, o.b)
	o.fake.Sleep(context.Background(), time.Minute)
	dispatch(t, o.b)

	results := o.sums(t, "billing.hooks.deliveries", "billing.result")
	assert.Equal(t, float64(1), results["failed"], "%v", results)
	assert.Equal(t, float64(1), results["dead"], "%v", results)
	assert.Equal(t, float64(1), results["delivered"], "billing's own write: %v", results)
	kinds := o.sums(t, "billing.hooks.deliveries", "billing.change.kind")
	assert.Equal(t, float64(2), kinds["activated"], "%v", kinds)
	assert.Equal(t, float64(1), o.sums(t, "billing.hooks.lag", "")[""], "one delivery, one lag")
}

// racedOnce is memstore whose transaction for one event loses a race
// once, after its fn ran: billing runs the write again.
type racedOnce struct {
	*memstore.Store
	mu    sync.Mutex
	race  string
	raced bool
}

func (s *racedOnce) Apply(ctx context.Context, eventID string, fn func(context.Context, billing.Tx) error) error {
	s.mu.Lock()
	race := eventID != "" && eventID == s.race && !s.raced
	s.raced = s.raced || race
	s.mu.Unlock()
	if race {
		err := s.Store.Apply(ctx, eventID, func(ctx context.Context, tx billing.Tx) error {
			if err := fn(ctx, tx); err != nil {
				return err
			}
			return billing.ErrRecordRaced // rolled back
		})
		if !errors.Is(err, billing.ErrRecordRaced) {
			return err
		}
	}
	return s.Store.Apply(ctx, eventID, fn)
}

// changeLogLines are the INFO lines of the membership changes.
func changeLogLines(logs string) []string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, `msg="billing: membership changed"`) {
			out = append(out, l)
		}
	}
	return out
}

// The changes of a write are told once, for the run that committed: not
// for a run rolled back by a race, nor for a write that failed (its
// redelivery tells them).
func TestChangesToldForTheCommittedRunOnly(t *testing.T) {
	t.Parallel()
	store := &racedOnce{Store: memstore.New()}
	o := observeWith(t, store)
	sub := buy(t, o.coEnv, "u1")
	evs := must(o.fake.CancelNow(sub))
	store.race = evs[0].ID
	o.deliver(t, evs...)
	assert.Equal(t, map[string]float64{"activated": 1, "ended": 1}, o.sums(t, "billing.changes", "billing.change.kind"))
	assert.Len(t, changeLogLines(o.logs.String()), 2)

	failing := &failAtCommit{Store: memstore.New()}
	f := observeWith(t, failing)
	sub = buy(t, f.coEnv, "u2")
	evs = must(f.fake.CancelNow(sub))
	failing.fail = evs[0].ID
	code, _ := f.post(evs[0])
	require.Equal(t, http.StatusInternalServerError, code)
	assert.Equal(t, map[string]float64{"activated": 1}, f.sums(t, "billing.changes", "billing.change.kind"), "nothing told of the failed write")
	assert.Zero(t, f.sums(t, "billing.subscriptions.canceled", "")[""])
	failing.fail = ""
	f.deliver(t, evs[0])
	assert.Equal(t, map[string]float64{"activated": 1, "ended": 1}, f.sums(t, "billing.changes", "billing.change.kind"))
	assert.Len(t, changeLogLines(f.logs.String()), 2)
}

// A change billing learned from its own fetch (Sync) is logged as
// fetched; a change without an attempt logs none.
func TestFetchedChangeLogged(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	sub := buy(t, e, "u1")
	_, err := e.fake.CancelNow(sub) // its events are never delivered
	require.NoError(t, err)
	_, err = e.b.Sync(context.Background(), "u1")
	require.NoError(t, err)
	lines := changeLogLines(e.logs.String())
	require.Len(t, lines, 2, e.logs.String())
	assert.Contains(t, lines[0], "kind=activated")
	assert.Contains(t, lines[0], "event=evt_")
	assert.NotContains(t, lines[0], "attempt=")
	assert.Contains(t, lines[1], "kind=ended")
	assert.Contains(t, lines[1], "event=(fetched)")
	assert.NotContains(t, lines[1], "attempt=")
}

// With a MeterProvider and no hooks, changes are counted, whatever the
// logger's level, and nothing goes to the store's outbox: nobody would
// deliver it.
func TestChangesCountedNotRecordedWithoutHooks(t *testing.T) {
	t.Parallel()
	o := newObserved(t, func(c *billing.Config) {
		c.Logger = slog.New(slog.NewTextHandler(o11yDiscard{}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	sub := buy(t, o.coEnv, "u1")
	o.deliver(t, must(o.fake.CancelNow(sub))...)
	assert.Equal(t, map[string]float64{"activated": 1, "ended": 1}, o.sums(t, "billing.changes", "billing.change.kind"))
	st, err := o.store.(billing.Outbox).OutboxStats(context.Background())
	require.NoError(t, err)
	assert.Equal(t, billing.OutboxStats{}, st)
}

type o11yDiscard struct{}

func (o11yDiscard) Write(p []byte) (int, error) { return len(p), nil }

// hcListerStore lists recent events (billing.EventLister), or fails to.
type hcListerStore struct {
	*hcStore
	err error
}

func (s *hcListerStore) RecentEvents(context.Context, int) ([]billing.ProcessedEvent, error) {
	return nil, s.err
}

// One parked event is enough to degrade the report; a change recorded by
// a store clock a little ahead has no negative lag; a store that fails to
// list its events leaves the last event's time unknown, degraded.
func TestHealthEdges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := newHCStore(t)
	e := newHCEnv(t, store, false)
	require.NoError(t, store.Park(ctx, billing.ParkedEvent{ID: "evt_park1", Type: "invoice.paid", Reason: "unknown customer",
		Payload: []byte(`{}`), ParkedAt: hcStart.Add(-time.Minute)}))
	require.NoError(t, store.Apply(ctx, "", func(ctx context.Context, tx billing.Tx) error {
		_, err := tx.(billing.OutboxTx).Record(ctx, billing.OutboxEntry{Key: "chg_ahead", UserID: "user_1", Kind: "activated",
			Payload: []byte(`{}`), RecordedAt: hcStart.Add(time.Minute)})
		return err
	}))
	h := e.b.Health(ctx)
	assert.Equal(t, billing.HealthDegraded, h.Status)
	assert.Equal(t, []string{"1 event(s) parked: list them (ParkedEvents), link their customers (LinkCustomer) and Replay them, or Discard them"}, h.Problems)
	assert.Equal(t, int64(1), h.HooksPending)
	assert.Zero(t, h.HookLag)

	lister := &hcListerStore{hcStore: newHCStore(t), err: errors.New("events: db.internal.example timed out")}
	e = newHCEnv(t, lister, true)
	h = e.b.Health(ctx)
	assert.Equal(t, billing.HealthDegraded, h.Status)
	assert.True(t, h.StoreOK)
	assert.False(t, h.LastEventKnown)
	assert.Contains(t, h.StoreError, "db.internal.example")
	code, _, body := e.serve(t, http.MethodGet)
	assert.Equal(t, http.StatusOK, code)
	assert.NotContains(t, body, "db.internal.example")
}

// A test-mode setup may take its events over plain HTTP (a tunnel, the
// Stripe CLI); only live mode requires HTTPS.
func TestSelfCheckPlainHTTPInTestMode(t *testing.T) {
	t.Parallel()
	const local = "http://localhost:8080/stripe/webhook"
	e := newSCEnv(t)
	e.endpoint(t, local, stripe.APIVersion)
	r := e.check(t, e.billing(t, func(c *billing.Config) { c.WebhookURL = local }))
	assert.Empty(t, r.Findings)
	require.Len(t, r.Endpoints, 1)
	assert.True(t, r.OK())
}

// An endpoint of the other mode than the key's (prices of the right one)
// is a key_mode finding that names the endpoint.
func TestSelfCheckEndpointOfTheOtherMode(t *testing.T) {
	t.Parallel()
	e := newSCEnv(t)
	ep := e.endpoint(t, scWebhookURL, stripe.APIVersion)
	live := scRewriter{edit: func(r *http.Request, body []byte) (int, []byte) {
		if !strings.HasPrefix(r.URL.Path, "/v1/webhook_endpoints") {
			return 0, body
		}
		return 0, bytes.ReplaceAll(body, []byte(`"livemode":false`), []byte(`"livemode":true`))
	}}
	r := e.check(t, e.billing(t, func(c *billing.Config) { c.HTTPClient = &http.Client{Transport: live, Timeout: 30 * time.Second} }))
	assert.Equal(t, []string{"error key_mode "}, codes(r))
	assert.Contains(t, r.Findings[0].Problem, "webhook endpoint "+ep.ID)
}

// A missing endpoint's finding names at most five endpoints of the same
// host.
func TestSelfCheckMissingEndpointNamesFiveNeighbours(t *testing.T) {
	t.Parallel()
	e := newSCEnv(t)
	for i := range 7 {
		e.endpoint(t, fmt.Sprintf("https://app.example/hooks/%d", i), stripe.APIVersion)
	}
	r := e.check(t, e.billing(t))
	f := finding(t, r, "endpoint_missing")
	assert.Equal(t, 5, strings.Count(f.Problem, "https://app.example/hooks/"), f.Problem)
}

// maintClock is a billing.Clock on the offline Stripe's time whose Sleep
// returns at once after moving that time d forward, up to a horizon;
// there it stops the loop: Maintain runs a day of its schedule in no
// time.
type maintClock struct {
	fake    *billingtest.Stripe
	horizon time.Time
	stop    context.CancelFunc
}

func (c *maintClock) Now() time.Time { return c.fake.Now() }

func (c *maintClock) Sleep(ctx context.Context, d time.Duration) error {
	if c.fake.Now().Add(d).After(c.horizon) {
		c.stop()
		return context.Canceled
	}
	return c.fake.Sleep(ctx, d)
}

// runMaintain runs Maintain with opts on a store that counts its prunes,
// for span of the clock's time, and returns the prunes and the logs.
func runMaintain(t *testing.T, opts billing.MaintenanceOptions, span time.Duration) (prunes int, logs string) {
	t.Helper()
	w := newMaintWorld(t)
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	clock := &maintClock{fake: w.fake, horizon: w.fake.Now().Add(span), stop: stop}
	e := newCoEnvWith(t, &replicaStore{Store: w.store, name: "a", w: w.watch}, users, func(c *billing.Config) {
		c.StripeURL = w.fake.URL()
		c.Clock = clock
	})
	require.ErrorIs(t, e.b.Maintain(ctx, opts), context.Canceled)
	_, _, eventPrunes, _ := w.watch.state()
	return eventPrunes["a"], e.logs.String()
}

// Pruning runs on its own schedule, however long the lease's checks are
// apart; a negative PruneEvery never prunes.
func TestMaintainPruneSchedule(t *testing.T) {
	t.Parallel()
	prunes, _ := runMaintain(t, billing.MaintenanceOptions{CatchUpEvery: -1, PruneEvery: 10 * time.Minute, LeaseRetry: time.Hour}, 25*time.Minute)
	assert.Equal(t, 3, prunes, "at 0, 10 and 20 minutes")
	prunes, logs := runMaintain(t, billing.MaintenanceOptions{PruneEvery: -1}, 3*time.Hour)
	assert.Zero(t, prunes)
	assert.Zero(t, countLines(logs, "maintenance: pruned"))
	assert.Equal(t, 3, countLines(logs, "maintenance: caught up"), "at 0, 1 and 2 h")
}

// CatchUp looks back over CatchUpWindow.
func TestMaintainCatchUpWindow(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	now := e.fake.Now()
	_, err := e.b.MaintainOnce(t.Context(), billing.MaintenanceOptions{CatchUpWindow: 24 * time.Hour, PruneEvery: -1})
	require.NoError(t, err)
	since := now.Add(-24 * time.Hour).UTC()
	logs := e.logs.String()
	ok := strings.Contains(logs, "since="+since.Format(time.RFC3339)) || strings.Contains(logs, "since="+since.Add(time.Second).Format(time.RFC3339))
	assert.True(t, ok, "a day back: %s", logs)
}

// cancelOnEvents ends the maintenance's context when CatchUp lists
// events: the app is stopping mid-run.
type cancelOnEvents struct {
	base http.RoundTripper
	stop context.CancelFunc
}

func (c cancelOnEvents) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == "/v1/events" {
		c.stop()
		return nil, r.Context().Err()
	}
	return c.base.RoundTrip(r)
}

// Stopping in the middle of a catch-up is not a failure: no Warn line.
func TestMaintainStoppedMidCatchUpIsNoFailure(t *testing.T) {
	t.Parallel()
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	e := newCoEnv(t, func(c *billing.Config) {
		c.HTTPClient = &http.Client{Transport: cancelOnEvents{base: http.DefaultTransport, stop: stop}, Timeout: 30 * time.Second}
	})
	require.ErrorIs(t, e.b.Maintain(ctx, billing.MaintenanceOptions{PruneEvery: -1}), context.Canceled)
	logs := e.logs.String()
	assert.Zero(t, countLines(logs, "maintenance: catch-up failed"), logs)
	assert.Equal(t, 1, countLines(logs, "maintenance: lease released"))
}
