package billing

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// newerOnly is a ConditionalStore that says nothing of what it replaced:
// it saves (or not) as scripted and counts its calls.
type newerOnly struct {
	nopStore
	saved, dup bool
	calls      int
}

func (s *newerOnly) ApplyNewer(context.Context, string, Subscription) (bool, bool, error) {
	s.calls++
	return s.saved, s.dup, nil
}

func (s *newerOnly) CountParked(context.Context) (int64, error) { return 0, nil }

// reporting is a PreviousReporter answering a scripted result.
type reporting struct {
	*newerOnly
	result NewerResult
	calls  int
}

func (s *reporting) ApplyNewerReporting(context.Context, string, Subscription) (NewerResult, error) {
	s.calls++
	return s.result, nil
}

type logSink struct{ strings.Builder }

// newTold is a Billing on store whose changes are told (logged at INFO,
// counted) but not recorded: no hooks.
func newTold(t *testing.T, store Store) (*Billing, *logSink, *sdkmetric.ManualReader) {
	t.Helper()
	logs := &logSink{}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	cfg := goodConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg.MeterProvider = mp
	b, err := New(cfg, store, nopUsers)
	require.NoError(t, err)
	return b, logs, reader
}

// changeCounts is billing.changes by kind.
func changeCounts(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if d, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == metricChanges {
				for _, p := range d.DataPoints {
					v, _ := p.Attributes.Value(attrKind)
					out[v.AsString()] += p.Value
				}
			}
		}
	}
	return out
}

func changeLines(logs *logSink) []string {
	var out []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `msg="billing: membership changed"`) {
			out = append(out, l)
		}
	}
	return out
}

var told = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func toldSub(st SubscriptionStatus) Subscription {
	return Subscription{ID: "sub_1", CustomerID: "cus_1", Status: st, Version: told,
		Items: []Item{{PriceID: "price_pro", Quantity: 1, CurrentPeriodEnd: told.Add(720 * time.Hour)}}}
}

// A state saved in one statement by a store that reports what it replaced
// is told as the general path would tell it: the user the store linked,
// and the stored invoice's facts that the payload does not carry (an
// unpaid subscription locked after three failed attempts of in_1).
func TestOneStatementWriteToldWithStoredFacts(t *testing.T) {
	t.Parallel()
	before := toldSub(SubscriptionActive)
	before.UserID = "u1"
	before.Invoice = Invoice{ID: "in_1", AttemptCount: 3}
	store := &reporting{newerOnly: &newerOnly{}, result: NewerResult{Saved: true, Previous: before, Found: true, UserID: "u1"}}
	b, logs, reader := newTold(t, store)

	done, err := b.applyNewer(context.Background(), "evt_1", toldSub(SubscriptionUnpaid), b.recorder("evt_1"))
	require.NoError(t, err)
	assert.True(t, done)
	assert.Equal(t, 1, store.calls)
	assert.Zero(t, store.newerOnly.calls, "the reporting statement only")

	lines := changeLines(logs)
	require.Len(t, lines, 1, logs.String())
	for _, want := range []string{"kind=access_locked", "user=u1", "customer=cus_1", "subscription=sub_1", "from=active", "to=past_due", "invoice=in_1", "attempt=3", "event=evt_1"} {
		assert.Contains(t, lines[0], want)
	}
	assert.Equal(t, map[string]int64{"access_locked": 1}, changeCounts(t, reader))
}

// A duplicate the reporting statement finds is the event's duplicate; a
// state it did not save (older, a tie, an unknown customer) goes the
// general way, and nothing is told of it.
func TestOneStatementDuplicateAndDeclined(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	dup := &reporting{newerOnly: &newerOnly{}, result: NewerResult{Duplicate: true}}
	b, logs, _ := newTold(t, dup)
	done, err := b.applyNewer(ctx, "evt_1", toldSub(SubscriptionCanceled), b.recorder("evt_1"))
	require.ErrorIs(t, err, ErrDuplicateEvent)
	assert.True(t, done)
	assert.Empty(t, changeLines(logs))

	declined := &reporting{newerOnly: &newerOnly{}, result: NewerResult{}}
	b, logs, reader := newTold(t, declined)
	done, err = b.applyNewer(ctx, "evt_2", toldSub(SubscriptionCanceled), b.recorder("evt_2"))
	require.NoError(t, err)
	assert.False(t, done, "left to the general way")
	assert.Empty(t, changeLines(logs), "nothing saved, nothing told")
	assert.Empty(t, changeCounts(t, reader))
}

// A ConditionalStore that cannot say what it replaced is not used while
// changes are told: its write would leave them untold, so the general way
// (which reads the record it replaces) takes the event.
func TestOneStatementSkippedWhenTheStoreCannotReport(t *testing.T) {
	t.Parallel()
	store := &newerOnly{saved: true}
	b, logs, _ := newTold(t, store)
	done, err := b.applyNewer(context.Background(), "evt_1", toldSub(SubscriptionCanceled), b.recorder("evt_1"))
	require.NoError(t, err)
	assert.False(t, done)
	assert.Zero(t, store.calls, "ApplyNewer not called")
	assert.Empty(t, changeLines(logs))
}

// Without anything to tell (no hooks, no metrics, a logger above INFO)
// the plain one statement is used.
func TestOneStatementWithNothingToTell(t *testing.T) {
	t.Parallel()
	store := &newerOnly{saved: true}
	cfg := goodConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(&logSink{}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := New(cfg, store, nopUsers)
	require.NoError(t, err)
	require.Nil(t, b.recorder("evt_1"))
	done, err := b.applyNewer(context.Background(), "evt_1", toldSub(SubscriptionCanceled), nil)
	require.NoError(t, err)
	assert.True(t, done)
	assert.Equal(t, 1, store.calls)
}

// A Stripe request's operation names its path with each object ID
// replaced, whether the ID's random part has digits or capitals only,
// and keeps resource names that have an underscore.
func TestOperationReplacesIDsOnly(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]string{
		"/v1/checkout/sessions/cs_test_aBcDeF/expire":   "/v1/checkout/sessions/{id}/expire",
		"/v1/subscriptions/sub_1Qx":                     "/v1/subscriptions/{id}",
		"/v1/invoice_payments":                          "/v1/invoice_payments",
		"/v1/invoices/create_preview":                   "/v1/invoices/create_preview",
		"/v1/customers/cus_ABCDEF/balance_transactions": "/v1/customers/{id}/balance_transactions",
	} {
		assert.Equal(t, "GET "+want, operation("GET", path), path)
	}
}

type unreachable struct{}

func (unreachable) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("dial tcp api.stripe.test:443: connection refused")
}

// A Stripe request that never reached Stripe is logged at Warn with its
// error and no status.
func TestStripeCallNetworkFailureLogged(t *testing.T) {
	t.Parallel()
	logs := &logSink{}
	cfg := goodConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := New(cfg, &newerOnly{}, nopUsers)
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(withAttempt(context.Background(), 2), http.MethodGet, "https://api.stripe.test/v1/customers/cus_1A", nil)
	require.NoError(t, err)
	_, err = transport{base: unreachable{}, b: b}.RoundTrip(req)
	require.Error(t, err)
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `msg="stripe call"`) {
			line = l
		}
	}
	for _, want := range []string{"level=WARN", `operation="GET /v1/customers/{id}"`, "status=0", "retry=2", `error="dial tcp api.stripe.test:443: connection refused"`} {
		assert.Contains(t, line, want)
	}
	assert.NotContains(t, line, "request_id=")
}
