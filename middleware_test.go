package billing_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/memstore"
)

// brokenResolver cannot tell who the request's user is.
type brokenResolver struct{ billing.UserResolverFunc }

func (brokenResolver) RequestUser(*http.Request) (string, error) {
	return "", errors.New("session store down")
}

func TestRequireMember(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	store := memstore.New()
	ctx := context.Background()
	put := func(user, customer, sub string, st billing.SubscriptionStatus, price string) {
		linked(t, store, user, customer)
		require.NoError(t, store.Apply(ctx, "", func(ctx context.Context, tx billing.Tx) error {
			return tx.SaveSubscription(ctx, billing.Subscription{
				ID: sub, CustomerID: customer, UserID: user, Status: st, Version: now.Add(-time.Hour),
				Items: []billing.Item{{PriceID: price, Quantity: 1, CurrentPeriodStart: now.Add(-24 * time.Hour), CurrentPeriodEnd: now.Add(29 * 24 * time.Hour)}},
			})
		}))
	}
	put("basic_user", "cus_b", "sub_b", "active", "price_basic")
	put("pro_user", "cus_p", "sub_p", "active", "price_pro")
	put("gone_user", "cus_g", "sub_g", "canceled", "price_pro")

	e := newHandlerEnv(t, store, func(c *billing.Config) { c.Clock = fixedClock(now) })
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, found := billing.MembershipFrom(r.Context())
		if !found {
			http.Error(w, "no membership in context", 500)
			return
		}
		w.Write([]byte(m.Tier))
	})
	anyTier := e.b.RequireMember()(ok)
	proOnly := e.b.RequireMember("pro")(ok)

	call := func(h http.Handler, user string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/members", nil)
		if user != "" {
			r = r.WithContext(billing.WithUserID(r.Context(), user))
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	tests := []struct {
		h      http.Handler
		user   string
		status int
		body   string
	}{
		{anyTier, "", 401, ""},
		{anyTier, "nobody", 403, ""},
		{anyTier, "gone_user", 403, ""},
		{anyTier, "basic_user", 200, "basic"},
		{anyTier, "pro_user", 200, "pro"},
		{proOnly, "basic_user", 403, ""},
		{proOnly, "pro_user", 200, "pro"},
		{proOnly, "", 401, ""},
	}
	for _, tt := range tests {
		w := call(tt.h, tt.user)
		assert.Equal(t, tt.status, w.Code, "user %q", tt.user)
		if tt.body != "" {
			assert.Equal(t, tt.body, w.Body.String())
		}
	}

	// A resolver failure is a 500, not a 401.
	b2, err := billing.New(billing.Config{
		SecretKey: "sk_test_x", WebhookSecrets: []string{"whsec_x"}, SiteURL: "https://a.example",
		Plans: []billing.Plan{{PriceID: "price_pro", Tier: "pro"}},
	}, store, brokenResolver{})
	require.NoError(t, err)
	w := call(b2.RequireMember()(ok), "pro_user")
	assert.Equal(t, 500, w.Code)
}

// fixedClock is a billing.Clock that stays at one instant and never waits.
type fixedClock time.Time

func (c fixedClock) Now() time.Time                                   { return time.Time(c) }
func (c fixedClock) Sleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }
