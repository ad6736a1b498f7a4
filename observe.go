package billing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// This file is billing's telemetry, through OpenTelemetry's API: the
// app passes its MeterProvider and TracerProvider (Config), and billing
// never touches an SDK or an exporter. Without them every instrument is
// nil and each call site is one nil check: nothing is allocated.

// instrumentation is the scope name of billing's meter and tracer.
const instrumentation = "github.com/gobilling/billing"

// The metrics billing records (README, "Operating it").
const (
	metricWebhookDeliveries = "billing.webhook.deliveries"
	metricWebhookDuration   = "billing.webhook.duration"
	metricWebhookFetches    = "billing.webhook.fetches"
	metricStripeCalls       = "billing.stripe.calls"
	metricStripeDuration    = "billing.stripe.duration"
	metricStripeRetries     = "billing.stripe.retries"
	metricChanges           = "billing.changes"
	metricSubscriptionsNew  = "billing.subscriptions.activated"
	metricSubscriptionsEnd  = "billing.subscriptions.canceled"
	metricPayments          = "billing.invoice.payments"
	metricHookDeliveries    = "billing.hooks.deliveries"
	metricHookLag           = "billing.hooks.lag"
	metricParked            = "billing.parked"
	metricHooksPending      = "billing.hooks.pending"
	metricHooksDead         = "billing.hooks.dead"
	metricHooksOldest       = "billing.hooks.oldest_pending_age"
)

// telemetry holds billing's instruments; nil without a MeterProvider.
type telemetry struct {
	deliveries, fetches, stripeCalls, stripeRetries        metric.Int64Counter
	changes, activated, canceled, payments, hookDeliveries metric.Int64Counter
	deliveryDuration, stripeDuration, hookLag              metric.Float64Histogram
	registration                                           metric.Registration
}

// newTelemetry makes the instruments, and the gauges read from the store
// at each collection (counts only: no payload is read).
func newTelemetry(mp metric.MeterProvider, store Store, outbox Outbox) (*telemetry, error) {
	if mp == nil {
		return nil, nil
	}
	m := mp.Meter(instrumentation)
	t := &telemetry{}
	var errs []error
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	seconds := func(name, desc string) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600))
		errs = append(errs, err)
		return h
	}
	t.deliveries = counter(metricWebhookDeliveries, "{delivery}", "Webhook deliveries by event type and outcome (applied, duplicate, ignored, parked, refused, failed).")
	t.deliveryDuration = seconds(metricWebhookDuration, "Time to answer a webhook delivery, by event type and outcome.")
	t.fetches = counter(metricWebhookFetches, "{fetch}", "Subscriptions fetched from Stripe while applying an event whose order could not be told (a same-second tie, a past_due state ahead of its invoice).")
	t.stripeCalls = counter(metricStripeCalls, "{call}", "Stripe API requests by operation and result (an HTTP status class, or network).")
	t.stripeDuration = seconds(metricStripeDuration, "Duration of a Stripe API request, by operation and result.")
	t.stripeRetries = counter(metricStripeRetries, "{call}", "Stripe API requests that were retries, by operation.")
	t.changes = counter(metricChanges, "{change}", "Membership transitions billing recorded, by kind.")
	t.activated = counter(metricSubscriptionsNew, "{subscription}", "Subscriptions that became live with access.")
	t.canceled = counter(metricSubscriptionsEnd, "{subscription}", "Subscriptions that ended.")
	t.payments = counter(metricPayments, "{attempt}", "Invoice payment attempts by result (succeeded, failed).")
	t.hookDeliveries = counter(metricHookDeliveries, "{delivery}", "Deliveries of changes to the app's handler (and billing's own Stripe writes) by kind and result (delivered, failed, dead).")
	t.hookLag = seconds(metricHookLag, "Time from a change's recording to its delivery.")

	parked, err := m.Int64ObservableGauge(metricParked, metric.WithUnit("{event}"), metric.WithDescription("Events parked for an operator."))
	errs = append(errs, err)
	insts := []metric.Observable{parked}
	var pending, dead metric.Int64ObservableGauge
	var oldest metric.Float64ObservableGauge
	if outbox != nil {
		pending, err = m.Int64ObservableGauge(metricHooksPending, metric.WithUnit("{change}"), metric.WithDescription("Changes waiting for delivery."))
		errs = append(errs, err)
		dead, err = m.Int64ObservableGauge(metricHooksDead, metric.WithUnit("{change}"), metric.WithDescription("Changes dead-lettered."))
		errs = append(errs, err)
		oldest, err = m.Float64ObservableGauge(metricHooksOldest, metric.WithUnit("s"), metric.WithDescription("Age of the oldest change waiting for delivery (0 when none)."))
		errs = append(errs, err)
		insts = append(insts, pending, dead, oldest)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: MeterProvider: %w", ErrConfig, err)
	}
	t.registration, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		n, err := store.CountParked(ctx)
		if err != nil {
			return err
		}
		o.ObserveInt64(parked, n)
		if outbox == nil {
			return nil
		}
		st, err := outbox.OutboxStats(ctx)
		if err != nil {
			return err
		}
		o.ObserveInt64(pending, st.Pending)
		o.ObserveInt64(dead, st.Dead)
		age := 0.0
		if !st.OldestPending.IsZero() {
			age = max(time.Since(st.OldestPending).Seconds(), 0)
		}
		o.ObserveFloat64(oldest, age)
		return nil
	}, insts...)
	if err != nil {
		return nil, fmt.Errorf("%w: MeterProvider: %w", ErrConfig, err)
	}
	return t, nil
}

// Attribute keys of billing's metrics and spans. Only IDs and kinds:
// never a secret, an email or an amount's owner.
const (
	attrEventID   = attribute.Key("stripe.event.id")
	attrEventType = attribute.Key("stripe.event.type")
	attrObjectID  = attribute.Key("stripe.object.id")
	attrOutcome   = attribute.Key("billing.outcome")
	attrOperation = attribute.Key("stripe.operation")
	attrResult    = attribute.Key("billing.result")
	attrStatus    = attribute.Key("http.response.status_code")
	attrRequestID = attribute.Key("stripe.request_id")
	attrRetry     = attribute.Key("billing.retry")
	attrKind      = attribute.Key("billing.change.kind")
)

// webhookDone records a delivery's outcome: its metrics, and its span's
// attributes and status.
func (b *Billing) webhookDone(ctx context.Context, span trace.Span, start time.Time, ev *wireEvent, outcome string, err error) {
	typ := "unknown"
	if ev != nil && ev.Type != "" {
		typ = ev.Type
	}
	if t := b.tel; t != nil {
		attrs := metric.WithAttributes(attrEventType.String(typ), attrOutcome.String(outcome))
		t.deliveries.Add(ctx, 1, attrs)
		t.deliveryDuration.Record(ctx, time.Since(start).Seconds(), attrs)
	}
	if span == nil {
		return
	}
	span.SetAttributes(attrEventType.String(typ), attrOutcome.String(outcome))
	if ev != nil {
		span.SetAttributes(attrEventID.String(ev.ID))
		if ev.Data.Object != nil {
			span.SetAttributes(attrObjectID.String(ev.Data.Object.ID))
		}
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// startSpan starts a span when billing has a tracer.
func (b *Billing) startSpan(ctx context.Context, name string, kind trace.SpanKind) (context.Context, trace.Span) {
	if b.tracer == nil {
		return ctx, nil
	}
	return b.tracer.Start(ctx, name, trace.WithSpanKind(kind))
}

// countChanges counts the changes of a committed write.
func (b *Billing) countChanges(ctx context.Context, cs []Change, paid int) {
	t := b.tel
	if t == nil {
		return
	}
	for _, c := range cs {
		if strings.HasPrefix(string(c.Kind), taskPrefix) {
			continue
		}
		t.changes.Add(ctx, 1, metric.WithAttributes(attrKind.String(string(c.Kind))))
		switch c.Kind {
		case ChangeActivated:
			t.activated.Add(ctx, 1)
		case ChangeEnded:
			t.canceled.Add(ctx, 1)
		case ChangePaymentFailed:
			t.payments.Add(ctx, 1, metric.WithAttributes(attrResult.String("failed")))
		}
	}
	if paid > 0 {
		t.payments.Add(ctx, int64(paid), metric.WithAttributes(attrResult.String("succeeded")))
	}
}

// hookDone records a delivery of a change.
func (b *Billing) hookDone(ctx context.Context, e OutboxEntry, result string) {
	t := b.tel
	if t == nil {
		return
	}
	t.hookDeliveries.Add(ctx, 1, metric.WithAttributes(attrKind.String(e.Kind), attrResult.String(result)))
	if result == "delivered" {
		t.hookLag.Record(ctx, max(b.now().Sub(e.RecordedAt).Seconds(), 0))
	}
}

// attemptKey carries the try number of a Stripe call (0 for the first)
// to the transport, for its span, metrics and log line.
type attemptKey struct{}

func withAttempt(ctx context.Context, attempt int) context.Context {
	if attempt == 0 {
		return ctx
	}
	return context.WithValue(ctx, attemptKey{}, attempt)
}

func attemptOf(ctx context.Context) int {
	n, _ := ctx.Value(attemptKey{}).(int)
	return n
}

// transport is billing's http.RoundTripper under stripe-go: one span, a
// metric and a log line per Stripe request, with the operation (method
// and path, IDs replaced by {id}), the status, Stripe's request ID, the
// duration and the try number. Never the body, the key or a header but
// Request-Id.
type transport struct {
	base http.RoundTripper
	b    *Billing
}

func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
	b := t.b
	op := operation(req.Method, req.URL.Path)
	ctx := req.Context()
	attempt := attemptOf(ctx)
	ctx, span := b.startSpan(ctx, "stripe "+op, trace.SpanKindClient)
	if span != nil {
		req = req.WithContext(ctx)
	}
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	d := time.Since(start)
	result, status, requestID := "network", 0, ""
	if err == nil {
		status, requestID = resp.StatusCode, resp.Header.Get("Request-Id")
		result = strconv.Itoa(status/100) + "xx"
	}
	if tel := b.tel; tel != nil {
		attrs := metric.WithAttributes(attrOperation.String(op), attrResult.String(result))
		tel.stripeCalls.Add(ctx, 1, attrs)
		tel.stripeDuration.Record(ctx, d.Seconds(), attrs)
		if attempt > 0 {
			tel.stripeRetries.Add(ctx, 1, metric.WithAttributes(attrOperation.String(op)))
		}
	}
	if span != nil {
		span.SetAttributes(attrOperation.String(op), attrStatus.Int(status), attrRequestID.String(requestID), attrRetry.Int(attempt))
		if err != nil || status >= 500 {
			span.SetStatus(codes.Error, result)
		}
		span.End()
	}
	b.logStripeCall(ctx, op, status, requestID, d, attempt, err)
	return resp, err
}

// operation names a Stripe request by its method and path, each ID
// replaced by {id}: "POST /v1/checkout/sessions/{id}/expire".
func operation(method, path string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if looksLikeID(p) {
			parts[i] = "{id}"
		}
	}
	return method + " " + strings.Join(parts, "/")
}

// looksLikeID reports whether a path segment is an object ID: a prefix,
// an underscore, and a random part with a digit or a capital
// ("sub_1Qx", "cs_test_a1B2"), unlike a resource's name
// ("invoice_payments", "create_preview").
func looksLikeID(s string) bool {
	i := strings.IndexByte(s, '_')
	return i > 0 && i < len(s)-1 && strings.ContainsAny(s[i:], "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
}

// logStripeCall is the log line of one Stripe request: Debug, or Warn
// when Stripe failed (5xx) or could not be reached.
func (b *Billing) logStripeCall(ctx context.Context, op string, status int, requestID string, d time.Duration, attempt int, err error) {
	level := slog.LevelDebug
	if err != nil || status >= 500 {
		level = slog.LevelWarn
	}
	if !b.log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{slog.String("operation", op), slog.Int("status", status), slog.Duration("duration", d.Round(time.Millisecond))}
	if requestID != "" {
		attrs = append(attrs, slog.String("request_id", requestID))
	}
	if attempt > 0 {
		attrs = append(attrs, slog.Int("retry", attempt))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	b.log.LogAttrs(ctx, level, "stripe call", attrs...)
}
