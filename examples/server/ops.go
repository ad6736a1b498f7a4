package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/gobilling/billing"
)

// This file is what running the site in production takes besides serving
// pages: metrics, the start-up self-check, and billing's maintenance.

// Metrics.
//
// billing speaks OpenTelemetry's metrics API only (billing.Config's
// MeterProvider); the site picks the SDK and the exporter: a MeterProvider
// whose reader is OpenTelemetry's Prometheus exporter, registered on a
// prometheus.Registry of the site's own rather than the process-wide
// default one (nothing else in the process can add to it, and tests
// running several sites in one process keep them apart). The exporter
// names billing's metrics as Prometheus expects, and as the alerting rules
// of deploy/prometheus/billing.rules.yml read them:
// billing.webhook.deliveries becomes billing_webhook_deliveries_total,
// with the label billing_outcome. The registry also has the Go runtime's,
// the process's and the database pool's metrics.
//
// No TracerProvider: billing's spans need an exporter and a collector to
// go to (OTLP, say), which an app that has them adds the same way
// (Config.TracerProvider).

// metrics is the site's registry and the MeterProvider billing records on.
type metrics struct {
	registry *prometheus.Registry
	provider *sdkmetric.MeterProvider
	// handler serves the registry in Prometheus's text format.
	handler http.Handler
	// started is when the counters started: they count from zero at each
	// start of the process.
	started time.Time
}

func newMetrics(db *sql.DB, log *slog.Logger) (*metrics, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewDBStatsCollector(db, "site"),
	)
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("the Prometheus exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", "gopher-club")))
	if err != nil {
		return nil, fmt.Errorf("the metrics' resource: %w", err)
	}
	return &metrics{
		registry: reg,
		provider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter), sdkmetric.WithResource(res)),
		handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
			// A gauge billing reads from the store (parked events, the
			// outbox) fails while the store is down: serve the rest.
			ErrorHandling: promhttp.ContinueOnError,
		}),
		started: time.Now(),
	}, nil
}

// close flushes and stops the MeterProvider.
func (m *metrics) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = m.provider.Shutdown(ctx)
}

// counters sums the counters of the registry by name and, when label is
// set, by that label's value: counters("billing_invoice_payments_total",
// "billing_result") gives {"": all, "failed": n, "succeeded": m}.
func (m *metrics) counters(name, label string) map[string]float64 {
	sums := map[string]float64{"": 0}
	// Gather gives what it could read with its error (a gauge of the
	// store's, while the store is down): the counters are there.
	families, _ := m.registry.Gather()
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			v := s.GetCounter().GetValue()
			sums[""] += v
			for _, l := range s.GetLabel() {
				if l.GetName() == label {
					sums[l.GetValue()] += v
				}
			}
		}
	}
	return sums
}

// opsHandler is what METRICS_ADDR serves, unauthenticated: the metrics
// for Prometheus, and billing's health report (JSON: 200 while the store
// answers, 503 when it does not) for the monitoring and the load balancer.
// Neither is on the public site (see main.go's doc comment).
func (a *app) opsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metrics.handler)
	mux.Handle("/healthz/billing", a.b.HealthHandler())
	return mux
}

// newOpsServer is the server of METRICS_ADDR.
func newOpsServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// The start-up self-check (Stripe mode).

// selfCheck asks Stripe whether the account is set up as billing needs
// (billing's SelfCheck, with read requests only: the key works, each
// plan's price exists, is active and of its kind, and a webhook endpoint
// at cfg.WebhookURL is enabled, at billing's API version, and sends the
// events billing applies). A finding of severity error refuses the start,
// each with its fix (or, with SELF_CHECK=warn, is logged at Error and the
// site starts); a warning is logged. A check that could not run (Stripe
// out of reach, or too slow) is logged and the site starts: it would
// otherwise be down whenever Stripe is, and the pages say "Billing is
// unavailable" meanwhile.
func (a *app) selfCheck(ctx context.Context, cfg appConfig) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.StripeDeadline)
	defer cancel()
	report, err := a.b.SelfCheck(ctx)
	if err != nil {
		a.log.Warn("the billing self-check could not run (Stripe out of reach?): starting anyway; it runs again at the next start", "error", err.Error())
	}
	var problems []string
	warnings := 0
	for _, f := range report.Findings {
		line := f.String()
		if name := a.findingVar(f); name != "" {
			line = name + ": " + line
		}
		switch {
		case f.Code == "webhook_url_unset":
			// The site leaves WebhookURL unset when SITE_URL is unset or
			// local (see webhookURL in main.go): say why, rather than
			// billing's generic fix.
			a.log.Info("the webhook endpoint is not checked: SITE_URL is unset or local, so Stripe cannot deliver to it; use stripe listen --forward-to <site>/stripe/webhook")
		case f.Severity == billing.SeverityError:
			problems = append(problems, line)
		default:
			warnings++
			a.log.Warn("billing self-check: "+f.Code, "finding", line)
		}
	}
	switch {
	case len(problems) == 0:
		if err == nil {
			a.log.Info("billing self-check passed", "plans", len(report.Plans), "webhook_endpoints", len(report.Endpoints), "warnings", warnings)
		}
		return nil
	case cfg.Stripe.SelfCheck == selfCheckWarn:
		for _, p := range problems {
			a.log.Error("billing self-check: starting anyway (SELF_CHECK=warn)", "finding", p)
		}
		return nil
	}
	return fmt.Errorf("the billing self-check found %d problem(s) with the Stripe account that would break billing, so the site does not start "+
		"(fix them, or set SELF_CHECK=warn to start anyway): %s", len(problems), strings.Join(problems, " | "))
}

// findingVar names the variable a finding is about: a price's, or the key.
func (a *app) findingVar(f billing.Finding) string {
	switch f.Code {
	case "key_rejected", "key_mode":
		return "STRIPE_SECRET_KEY"
	}
	for _, p := range a.plans {
		if p.PriceID == f.Subject {
			return p.Var
		}
	}
	return ""
}

// Running beside the server.
//
// With Stripe, two loops of billing's run beside the server for the app's
// lifetime, each on a context of its own, so that what is in flight is not
// cut off at the first signal but ends as the server shuts down (Close):
//
//   - RunHooks delivers billing's changes to the site's handler
//     (emailChange): woken by each webhook this process applies, it polls
//     every Hooks.Poll for the rest (retries, the changes of other
//     replicas);
//   - Maintain, in every replica, one at a time holding the store's lease:
//     CatchUp hourly over the last 72 hours (so that no event is lost,
//     even after an outage longer than Stripe's retries) and pruning daily
//     (processed events, delivered changes). Each run logs one line.
//
// Offline, billing's Clock is the offline Stripe, whose Sleep does not
// wait but moves the simulated clock at once: both loops wait with
// Clock.Sleep, so they would spin, pushing the simulated time forward at
// every turn (Maintain by up to a minute, its LeaseRetry), renewing
// subscriptions by themselves. A Clock that reads the simulated time but
// really sleeps would keep the simulated time still, but it would be
// billing's Clock for everything (its retries of Stripe calls would take
// real time), and the emails would arrive some time after the request that
// caused them (a page could show the mailbox without them, and tests would
// have to wait for them). So offline:
//
//   - the site calls DispatchHooks itself, which only reads the clock:
//     after each webhook the offline Stripe delivers (its Checkout, portal
//     and clock act through webhooks; Flush waits for those, and so for
//     their emails), and around each request of the site (the return
//     page's SyncCheckout and the replays record changes too). A change
//     whose delivery failed is retried by a later dispatch once its
//     backoff has passed on the simulated clock;
//   - Maintain does not run: the dev panel's "Run maintenance" button runs
//     one round, MaintainOnce, which only reads the clock.

// startHooks runs RunHooks until Close (Stripe mode).
func (a *app) startHooks(ctx context.Context) {
	a.runBeside(ctx, "delivering billing's changes", a.b.RunHooks)
}

// startMaintenance runs Maintain until Close (Stripe mode).
func (a *app) startMaintenance(ctx context.Context) {
	a.runBeside(ctx, "billing's maintenance", func(ctx context.Context) error {
		return a.b.Maintain(ctx, billing.MaintenanceOptions{})
	})
}

// runBeside runs loop until Close, on a context of its own (see above),
// and logs it if it stops by itself.
func (a *app) runBeside(ctx context.Context, what string, loop func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := loop(ctx); err != nil && !errors.Is(err, context.Canceled) {
			a.log.Error(what+" stopped", "error", err.Error())
		}
	}()
	a.stops = append(a.stops, func() {
		cancel()
		<-done
	})
}
