package billing_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/memstore"
)

// exampleUsers is the app's user table in the examples.
var exampleUsers = billing.UserResolverFunc(func(ctx context.Context, id string) (billing.User, error) {
	return billing.User{ID: id, Email: id + "@example.com", Name: "User " + id}, nil
})

// exampleBilling returns a Billing that talks to an offline fake Stripe
// (instead of https://api.stripe.com) selling a basic and a pro plan and a
// one-time pack of 100 credits.
func exampleBilling() (*billing.Billing, *billingtest.Stripe) {
	fake := billingtest.New(billingtest.Options{Start: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)})
	fake.AddPrice("price_basic", "month", 900)
	fake.AddPrice("price_pro", "month", 2900)
	fake.AddPrice("price_pack", "", 500)
	b, err := billing.New(billing.Config{
		SecretKey:      "sk_test_example",
		WebhookSecrets: []string{"whsec_example"},
		SiteURL:        "https://app.example",
		Plans: []billing.Plan{
			{PriceID: "price_basic", Tier: "basic"},
			{PriceID: "price_pro", Tier: "pro"},
			{PriceID: "price_pack", Kind: billing.OneTime, Credits: 100},
		},
		Logger:     slog.New(slog.DiscardHandler),
		Clock:      fake,
		StripeURL:  fake.URL(),
		MaxRetries: -1,
	}, memstore.New(), exampleUsers)
	if err != nil {
		panic(err)
	}
	return b, fake
}

func ExampleNew() {
	cfg := billing.Config{
		SecretKey:      "sk_test_123",
		WebhookSecrets: []string{"whsec_123"},
		SiteURL:        "https://app.example",
		Plans: []billing.Plan{
			{PriceID: "price_basic", Tier: "basic"},
			{PriceID: "price_pro", Tier: "pro"},
		},
	}
	b, err := billing.New(cfg, memstore.New(), exampleUsers)
	fmt.Println("live:", b.Livemode(), "error:", err)

	// The publishable key by mistake: refused, without echoing the key.
	cfg.SecretKey = "pk_test_123"
	_, err = billing.New(cfg, memstore.New(), exampleUsers)
	fmt.Println(err)
	// Output:
	// live: false error: <nil>
	// billing: invalid config: SecretKey is a publishable key (pk_...): use the secret key (sk_...) from the same Dashboard page
}

func ExampleBilling_Checkout() {
	b, fake := exampleBilling()
	defer fake.Close()
	ctx := context.Background()

	cs, err := b.Checkout(ctx, "user_1", billing.CheckoutOptions{PriceID: "price_pro"})
	if err != nil {
		fmt.Println(err)
		return
	}
	// Redirect the user to cs.URL with 303 See Other. On the return page:
	res, err := b.CheckoutStatus(ctx, "user_1", cs.ID)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cs.ID[:len("cs_test_")], res.Mode, res.Status)

	// Nobody else can look at the session.
	_, err = b.CheckoutStatus(ctx, "user_2", cs.ID)
	fmt.Println(err)
	// Output:
	// cs_test_ subscription open
	// billing: checkout session belongs to another user: user "user_2" has no customer
}

func ExampleBilling_Membership() {
	b, fake := exampleBilling()
	defer fake.Close()
	ctx := context.Background()

	m, _ := b.Membership(ctx, "user_1")
	fmt.Println("before:", m.Status)

	cs, err := b.Checkout(ctx, "user_1", billing.CheckoutOptions{PriceID: "price_pro"})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The user pays at Stripe ...
	if _, err := fake.Pay(cs.ID, billingtest.CardOK); err != nil {
		fmt.Println(err)
		return
	}
	// ... and comes back to the return page before any webhook arrives.
	res, _, err := b.SyncCheckout(ctx, "user_1", cs.ID)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("checkout:", res.Status, res.PaymentStatus, res.Settled())

	m, err = b.Membership(ctx, "user_1")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("after:", m.Status, m.Tier, m.HasTier(fake.Now(), "pro"))
	// Output:
	// before: none
	// checkout: complete paid true
	// after: active pro true
}

func ExampleBilling_WebhookHandler() {
	b, fake := exampleBilling()
	defer fake.Close()
	ctx := context.Background()

	mux := http.NewServeMux()
	mux.Handle("POST /stripe/webhook", b.WebhookHandler())

	// Stripe signs every delivery with the endpoint's secret.
	deliver := func(payload []byte, secret string) {
		sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: time.Now()})
		r := httptest.NewRequest(http.MethodPost, "/stripe/webhook", bytes.NewReader(payload))
		r.Header.Set("Stripe-Signature", sp.Header)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		fmt.Println(w.Code, strings.TrimSpace(w.Body.String()))
	}

	cs, err := b.Checkout(ctx, "user_1", billing.CheckoutOptions{PriceID: "price_pack", Quantity: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	paid, err := fake.Pay(cs.ID, billingtest.CardOK)
	if err != nil {
		fmt.Println(err)
		return
	}
	completed := paid.Events[len(paid.Events)-1].JSON // checkout.session.completed
	deliver(completed, "whsec_example")               // applied: the credits are granted
	deliver(completed, "whsec_example")               // Stripe's retry: nothing more
	deliver(completed, "whsec_forged")                // not signed by Stripe

	m, _ := b.Membership(ctx, "user_1")
	fmt.Println("credits:", m.Credits)
	// Output:
	// 200 {"outcome":"applied"}
	// 200 {"outcome":"duplicate"}
	// 400 bad request
	// credits: 200
}
