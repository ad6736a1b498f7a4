// Command quickstart is the README's quick start as a program: Stripe
// Checkout for a "pro" subscription, the Customer Portal, the webhook
// handler, and a page only pro members can see.
//
// Run it with a Stripe test account:
//
//	STRIPE_SECRET_KEY=sk_test_... STRIPE_WEBHOOK_SECRET=whsec_... PRO_PRICE_ID=price_... \
//	  go run ./examples/quickstart
//
// and forward webhooks to it (stripe listen --forward-to localhost:8080/stripe/webhook).
// For an example that runs with nothing configured, see examples/server.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/memstore"
)

func main() {
	h, err := newApp(os.Getenv, memstore.New())
	if err != nil {
		log.Fatal(err)
	}
	log.Println("listening on http://localhost:8080")
	log.Fatal(http.ListenAndServe(":8080", h))
}

// newApp is the quick start. getenv is os.Getenv outside tests.
func newApp(getenv func(string) string, store billing.Store) (http.Handler, error) {
	// quickstart:begin
	b, err := billing.New(billing.Config{
		SecretKey:      getenv("STRIPE_SECRET_KEY"),
		WebhookSecrets: []string{getenv("STRIPE_WEBHOOK_SECRET")},
		SiteURL:        "http://localhost:8080",
		Plans:          []billing.Plan{{PriceID: getenv("PRO_PRICE_ID"), Tier: "pro"}},
		StripeURL:      getenv("STRIPE_API_BASE"), // empty: api.stripe.com
	}, store, billing.UserResolverFunc(findUser))
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /stripe/webhook", b.WebhookHandler())
	mux.HandleFunc("POST /subscribe", func(w http.ResponseWriter, r *http.Request) {
		s, err := b.Checkout(r.Context(), userID(r), billing.CheckoutOptions{PriceID: getenv("PRO_PRICE_ID")})
		redirect(w, r, s.URL, err)
	})
	mux.HandleFunc("POST /billing", func(w http.ResponseWriter, r *http.Request) {
		url, err := b.Portal(r.Context(), userID(r), billing.PortalOptions{})
		redirect(w, r, url, err)
	})
	mux.Handle("GET /pro/", b.RequireMember("pro")(http.HandlerFunc(proPage)))
	return withUser(mux), nil
	// quickstart:end
}

// What follows stands in for the app's own code.

// findUser looks a user up in the app's database.
func findUser(ctx context.Context, id string) (billing.User, error) {
	return billing.User{ID: id, Email: id + "@example.com"}, nil
}

// withUser is the app's authentication middleware: it puts the signed-in
// user's ID in the request's context for billing. This demo trusts a
// "uid" cookie; a real app verifies its session.
func withUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie("uid"); err == nil && c.Value != "" {
			r = r.WithContext(billing.WithUserID(r.Context(), c.Value))
		}
		next.ServeHTTP(w, r)
	})
}

func userID(r *http.Request) string {
	id, _ := billing.UserIDFrom(r.Context())
	return id
}

func redirect(w http.ResponseWriter, r *http.Request, url string, err error) {
	if err != nil {
		log.Printf("billing: %v", err)
		http.Error(w, "billing is unavailable, try again", http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, url, http.StatusSeeOther)
}

func proPage(w http.ResponseWriter, r *http.Request) {
	m, _ := billing.MembershipFrom(r.Context())
	fmt.Fprintf(w, "Welcome, %s member (renews %s)\n", m.Tier, m.CurrentPeriodEnd.Format("2 Jan 2006"))
}
