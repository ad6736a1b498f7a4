package billingtest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/memstore"
)

// A user's test of their app: mount billing's webhook handler on the
// offline Stripe, check out, pay with the 4242 card, let a month pass and
// see the renewal.
func Example() {
	ctx := context.Background()
	st := billingtest.New(billingtest.Options{Start: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)})
	defer st.Close()
	st.AddPrice("price_pro", "month", 2900)
	users := billing.UserResolverFunc(func(ctx context.Context, id string) (billing.User, error) {
		return billing.User{ID: id, Email: id + "@example.com"}, nil
	})
	b, err := billing.New(billing.Config{
		SecretKey: "sk_test_app", WebhookSecrets: []string{"whsec_app"}, SiteURL: "https://app.example",
		Plans:     []billing.Plan{{PriceID: "price_pro", Tier: "pro"}},
		StripeURL: st.URL(), Clock: st,
	}, memstore.New(), users)
	if err != nil {
		panic(err)
	}
	st.AddEndpoint(b.WebhookHandler(), billingtest.EndpointOptions{Secret: "whsec_app"})

	cs, _ := b.Checkout(ctx, "ada", billing.CheckoutOptions{PriceID: "price_pro"})
	if _, err := st.Pay(cs.ID, billingtest.CardOK); err != nil {
		panic(err)
	}
	_ = st.Flush(ctx)
	m, _ := b.Membership(ctx, "ada")
	fmt.Println(m.Status, m.Tier, "renews", m.CurrentPeriodEnd.Format("2006-01-02"))

	st.Advance(31 * 24 * time.Hour)
	_ = st.Flush(ctx)
	m, _ = b.Membership(ctx, "ada")
	fmt.Println(m.Status, m.Tier, "renews", m.CurrentPeriodEnd.Format("2006-01-02"))
	// Output:
	// active pro renews 2026-02-05
	// active pro renews 2026-03-05
}
