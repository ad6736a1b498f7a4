package billingtest_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/memstore"
)

// The README's "Testing your app" shows this test verbatim (see
// TestReadmeShowsTheUserTest).

// readme:begin
func TestRenewal(t *testing.T) {
	ctx := context.Background()
	st := billingtest.New(billingtest.Options{})
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
	require.NoError(t, err)
	st.AddEndpoint(b.WebhookHandler(), billingtest.EndpointOptions{Secret: "whsec_app"})

	cs, err := b.Checkout(ctx, "ada", billing.CheckoutOptions{PriceID: "price_pro"})
	require.NoError(t, err)
	_, err = st.Pay(cs.ID, billingtest.CardOK)
	require.NoError(t, err)
	require.NoError(t, st.Flush(ctx))
	first, _ := b.Membership(ctx, "ada")
	require.Equal(t, billing.StatusActive, first.Status)

	st.Advance(31 * 24 * time.Hour) // the renewal is charged at the period end
	require.NoError(t, st.Flush(ctx))
	renewed, _ := b.Membership(ctx, "ada")
	require.True(t, renewed.Active(st.Now()))
	require.Equal(t, first.CurrentPeriodEnd.AddDate(0, 1, 0), renewed.CurrentPeriodEnd)
}

// readme:end

// TestReadmeShowsTheUserTest keeps the README's "Testing your app" test
// the code of TestRenewal above.
func TestReadmeShowsTheUserTest(t *testing.T) {
	src, err := os.ReadFile("readme_test.go")
	require.NoError(t, err)
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	s := string(src)
	block := strings.Trim(s[strings.Index(s, "// readme:begin")+len("// readme:begin"):strings.Index(s, "// readme:end")], "\n")
	require.Contains(t, string(readme), block)
	lines := 0
	for _, l := range strings.Split(block, "\n") {
		if strings.TrimSpace(l) != "" {
			lines++
		}
	}
	require.LessOrEqual(t, lines, 30)
}
