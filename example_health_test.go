package billing_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/memstore"
)

func ExampleBilling_SelfCheck() {
	// An offline Stripe account that sells the pro plan, and has an
	// endpoint for the app's webhook URL, but listening to invoices only.
	fake := billingtest.New(billingtest.Options{Start: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)})
	defer fake.Close()
	fake.AddPrice("price_pro", "month", 2900)
	sc := stripe.NewClient("sk_test_admin", stripe.WithBackends(stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL: stripe.String(fake.URL()), LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull}})))
	if _, err := sc.V1WebhookEndpoints.Create(context.Background(), &stripe.WebhookEndpointCreateParams{
		URL:           stripe.String("https://app.example/stripe/webhook"),
		APIVersion:    stripe.String(stripe.APIVersion),
		EnabledEvents: stripe.StringSlice([]string{"invoice.paid", "invoice.payment_failed"}),
	}); err != nil {
		panic(err)
	}

	b, err := billing.New(billing.Config{
		SecretKey:      "sk_test_example",
		WebhookSecrets: []string{"whsec_example"},
		SiteURL:        "https://app.example",
		WebhookURL:     "https://app.example/stripe/webhook",
		Plans: []billing.Plan{
			{PriceID: "price_pro", Tier: "pro"},
			{PriceID: "price_max", Tier: "max"}, // not at Stripe
		},
		Logger:    slog.New(slog.DiscardHandler),
		Clock:     fake,
		StripeURL: fake.URL(),
	}, memstore.New(), exampleUsers)
	if err != nil {
		panic(err)
	}

	// At start-up: log what is wrong, or refuse to start.
	report, err := b.SelfCheck(context.Background())
	if err != nil {
		fmt.Println("could not check:", err)
		return
	}
	for _, p := range report.Plans {
		fmt.Printf("%s found=%v interval=%q\n", p.PriceID, p.Found, p.Interval)
	}
	for _, f := range report.Findings {
		fmt.Println(f.Severity, f.Code) // and f.Subject, f.Problem, f.Fix
	}
	fmt.Println("missing events:", len(report.Endpoints[0].MissingEvents))
	fmt.Println("ok:", report.OK())
	// Output:
	// price_pro found=true interval="month"
	// price_max found=false interval=""
	// error price_missing
	// error endpoint_events
	// missing events: 11
	// ok: false
}

func ExampleBilling_HealthHandler() {
	b, fake := exampleBilling()
	defer fake.Close()

	// On an internal port, where the load balancer and monitoring look.
	mux := http.NewServeMux()
	mux.Handle("GET /healthz/billing", b.HealthHandler())

	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz/billing", nil))
	fmt.Println(w.Code)

	h := b.Health(context.Background())
	fmt.Println(h.Status, h.StoreOK, h.Parked)
	// Output:
	// 200
	// ok true 0
}
