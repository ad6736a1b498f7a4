package billing_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testcatalog"
)

// observed is a Billing whose metrics and spans go to in-memory readers.
type observed struct {
	*coEnv
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
}

func newObserved(t *testing.T, mod ...func(*billing.Config)) *observed {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	spans := tracetest.NewSpanRecorder()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() {
		_ = mp.Shutdown(context.Background())
		_ = tp.Shutdown(context.Background())
	})
	e := newCoEnv(t, append([]func(*billing.Config){func(c *billing.Config) {
		c.MeterProvider, c.TracerProvider = mp, tp
	}}, mod...)...)
	return &observed{coEnv: e, reader: reader, spans: spans}
}

// sums returns a metric's values by the given attribute's value ("" for
// the whole sum), counters and gauges alike.
func (o *observed) sums(t *testing.T, name string, key attribute.Key) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, o.reader.Collect(context.Background(), &rm))
	out := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			label := func(set attribute.Set) string {
				if key == "" {
					return ""
				}
				v, _ := set.Value(key)
				return v.String()
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					out[label(p.Attributes)] += float64(p.Value)
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					out[label(p.Attributes)] += float64(p.Value)
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					out[label(p.Attributes)] += p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out[label(p.Attributes)] += float64(p.Count)
				}
			}
		}
	}
	return out
}

// A whole life through the webhook, measured and traced: deliveries by
// outcome, Stripe calls by operation (a retry among them), changes by
// kind, new subscriptions, payments and cancellations, hook deliveries
// and their lag, parked and dead counts; one span per delivery and per
// Stripe call, with IDs and never a secret or an email.
func TestTelemetryThroughALife(t *testing.T) {
	t.Parallel()
	l := &hookLog{}
	o := newObserved(t, withHooks(l, billing.Hooks{}))
	ctx := context.Background()
	sub := buy(t, o.coEnv, "u1")
	cus := o.customerOf(t, "u1")
	o.deliver(t, must(testcatalog.Renew(o.fake, sub))...)
	require.NoError(t, testcatalog.SetCardFailing(o.fake, cus, true))
	evs := must(testcatalog.Renew(o.fake, sub))
	o.deliver(t, evs...)
	for _, e := range evs {
		if e.Type == "invoice.payment_failed" {
			o.deliver(t, e) // a duplicate
		}
	}
	require.NoError(t, testcatalog.SetCardFailing(o.fake, cus, false))
	o.deliver(t, must(testcatalog.Retry(o.fake, sub))...)
	o.deliver(t, must(o.fake.CancelNow(sub))...)
	stranger := o.fake.NewEvent("customer.subscription.updated", map[string]any{"id": "sub_x1", "object": "subscription", "customer": "cus_Unknown1", "status": "active"})
	o.deliver(t, stranger) // parked
	w := httptest.NewRecorder()
	o.h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/stripe/webhook", nil)) // refused
	require.Equal(t, http.StatusMethodNotAllowed, w.Code)
	o.fake.SetFail("GET /v1/subscriptions", http.StatusInternalServerError, 1)
	_, err := o.b.Sync(ctx, "u1") // a read retried once
	require.NoError(t, err)
	dispatch(t, o.b)

	outcomes := o.sums(t, "billing.webhook.deliveries", "billing.outcome")
	for _, out := range []string{"applied", "ignored", "duplicate", "parked", "refused"} {
		assert.Positive(t, outcomes[out], "deliveries %s: %v", out, outcomes)
	}
	assert.Positive(t, o.sums(t, "billing.webhook.duration", "billing.outcome")["applied"], "latency recorded")
	types := o.sums(t, "billing.webhook.deliveries", "stripe.event.type")
	assert.Positive(t, types["invoice.payment_failed"])

	calls := o.sums(t, "billing.stripe.calls", "stripe.operation")
	assert.Positive(t, calls["POST /v1/customers"], "%v", calls)
	assert.Positive(t, calls["POST /v1/checkout/sessions"], "%v", calls)
	assert.Positive(t, calls["GET /v1/subscriptions/{id}"], "%v", calls)
	results := o.sums(t, "billing.stripe.calls", "billing.result")
	assert.Equal(t, float64(1), results["5xx"], "the failed list: %v", results)
	assert.Equal(t, float64(1), o.sums(t, "billing.stripe.retries", "stripe.operation")["GET /v1/subscriptions"])

	kinds := o.sums(t, "billing.changes", "billing.change.kind")
	assert.Equal(t, map[string]float64{"activated": 1, "renewed": 2, "payment_failed": 1, "recovered": 1, "ended": 1}, kinds)
	assert.Equal(t, float64(1), o.sums(t, "billing.subscriptions.activated", "")[""])
	assert.Equal(t, float64(1), o.sums(t, "billing.subscriptions.canceled", "")[""])
	payments := o.sums(t, "billing.invoice.payments", "billing.result")
	assert.Equal(t, float64(1), payments["failed"])
	assert.Equal(t, float64(3), payments["succeeded"], "the first invoice, the renewal, the retry")

	hooks := o.sums(t, "billing.hooks.deliveries", "billing.result")
	assert.Equal(t, float64(len(l.all())+1), hooks["delivered"], "the changes and billing's own write")
	assert.Positive(t, o.sums(t, "billing.hooks.lag", "")[""])
	assert.Equal(t, float64(1), o.sums(t, "billing.parked", "")[""])
	assert.Equal(t, map[string]float64{"": 0}, o.sums(t, "billing.hooks.pending", ""))
	assert.Equal(t, map[string]float64{"": 0}, o.sums(t, "billing.hooks.dead", ""))

	var webhookSpans, stripeSpans int
	for _, s := range o.spans.Ended() {
		attrs := map[attribute.Key]string{}
		for _, kv := range s.Attributes() {
			attrs[kv.Key] = kv.Value.String()
			assert.NotContains(t, kv.Value.String(), "sk_test", "no secret in span %s", s.Name())
			assert.NotContains(t, kv.Value.String(), "@", "no email in span %s", s.Name())
		}
		switch {
		case s.Name() == "billing.webhook":
			webhookSpans++
			if attrs["billing.outcome"] == "applied" {
				assert.True(t, strings.HasPrefix(attrs["stripe.event.id"], "evt_"), "%v", attrs)
				assert.NotEmpty(t, attrs["stripe.object.id"])
			}
		case strings.HasPrefix(s.Name(), "stripe "):
			stripeSpans++
			assert.NotEmpty(t, attrs["stripe.operation"])
			assert.NotEmpty(t, attrs["http.response.status_code"])
		}
	}
	assert.Equal(t, int(outcomes["applied"]+outcomes["ignored"]+outcomes["duplicate"]+outcomes["parked"]+outcomes["refused"]), webhookSpans, "one span per delivery")
	assert.Equal(t, int(sum(calls)), stripeSpans, "one span per Stripe call")
}

func sum(m map[string]float64) float64 {
	s := 0.0
	for _, v := range m {
		s += v
	}
	return s
}

// Without providers, telemetry costs nothing; with a MeterProvider only,
// changes are counted without hooks, and nothing is recorded.
func TestTelemetryWithoutHooks(t *testing.T) {
	t.Parallel()
	o := newObserved(t)
	buy(t, o.coEnv, "u1")
	assert.Equal(t, float64(1), o.sums(t, "billing.changes", "billing.change.kind")["activated"])
	_, err := o.b.HookStats(context.Background())
	require.ErrorIs(t, err, billing.ErrNoHooks)
}

// Each Stripe call is one Debug log line from billing's transport, with
// the operation, status, request ID and duration; stripe-go logs nothing.
func TestStripeCallLogLines(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	buy(t, e, "u1")
	logs := e.logs.String()
	assert.NotContains(t, logs, "component=stripe-go", "stripe-go's own logger is silenced")
	var lines []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, `msg="stripe call"`) {
			lines = append(lines, l)
		}
	}
	require.NotEmpty(t, lines)
	assert.Contains(t, lines[0], `operation="POST /v1/customers"`)
	assert.Contains(t, lines[0], "status=200")
	assert.Contains(t, lines[0], "request_id=req_")
	for _, l := range lines {
		assert.Regexp(t, `duration=(\d+ms|0s|\d+(\.\d+)?s) `, l, "rounded to the millisecond")
		assert.NotRegexp(t, `duration=[\d.]+(µs|ns)`, l)
	}
	assert.NotContains(t, logs, "u1@example.com", "no body is logged")
}

var _ = billingtest.CardOK

// At INFO, one line per membership change tells the story: who, which
// subscription, from and to, and the event that caused it.
func TestMembershipChangesLogged(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	sub := buy(t, e, "u1")
	cus := e.customerOf(t, "u1")
	require.NoError(t, testcatalog.SetCardFailing(e.fake, cus, true))
	e.deliver(t, must(testcatalog.Renew(e.fake, sub))...)
	e.deliver(t, must(e.fake.CancelNow(sub))...)
	var lines []string
	for _, l := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(l, `msg="billing: membership changed"`) {
			require.Contains(t, l, "level=INFO")
			lines = append(lines, l)
		}
	}
	require.Len(t, lines, 3, e.logs.String())
	for _, want := range []string{"kind=activated", "user=u1", "customer=" + cus, "subscription=" + sub, "from=pending", "to=active", "tier=pro", "event=evt_"} {
		assert.Contains(t, lines[0], want)
	}
	for _, want := range []string{"kind=payment_failed", "attempt=1", "from=active", "to=active", "invoice=in_"} {
		assert.Contains(t, lines[1], want)
	}
	for _, want := range []string{"kind=ended", "from=active", "to=canceled"} {
		assert.Contains(t, lines[2], want)
	}
}
