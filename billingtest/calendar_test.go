package billingtest_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testcatalog"
)

// periodEnds subscribes to price at the Stripe's time and renews n times;
// it returns every period end, the first included.
func periodEnds(t *testing.T, srv *billingtest.Stripe, sc *stripe.Client, price string, n int) []string {
	t.Helper()
	c := newCustomer(t, sc)
	cs, err := sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{
		Mode: stripe.String("subscription"), Customer: stripe.String(c.ID),
		SuccessURL: stripe.String("https://app.test/ok"),
		LineItems:  []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String(price), Quantity: stripe.Int64(1)}},
	})
	require.NoError(t, err)
	evs, err := testcatalog.Pay(srv, cs.ID)
	require.NoError(t, err)
	sub := decodeAs[stripe.CheckoutSession](t, evs[len(evs)-1]).Subscription.ID
	var ends []string
	for i := 0; ; i++ {
		end := srv.Subscription(sub).Items.Data[0].CurrentPeriodEnd
		ends = append(ends, time.Unix(end, 0).UTC().Format("2006-01-02 15:04"))
		if i == n {
			return ends
		}
		_, err := testcatalog.Renew(srv, sub)
		require.NoError(t, err)
	}
}

// Stripe renews a monthly subscription on its billing anchor's day of the
// month, clamped to the month's last day, and a yearly one on the
// anchor's date (Feb 29: Feb 28 in other years); weeks are 7 days.
func TestCalendarPeriods(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, price string
		start       time.Time
		renewals    int
		want        []string
	}{
		{"monthly anchored on Jan 31", "price_month", time.Date(2027, 1, 31, 10, 0, 0, 0, time.UTC), 4,
			[]string{"2027-02-28 10:00", "2027-03-31 10:00", "2027-04-30 10:00", "2027-05-31 10:00", "2027-06-30 10:00"}},
		{"monthly anchored on Jan 31, leap year", "price_month", time.Date(2028, 1, 31, 10, 0, 0, 0, time.UTC), 2,
			[]string{"2028-02-29 10:00", "2028-03-31 10:00", "2028-04-30 10:00"}},
		{"monthly anchored on Mar 1", "price_month", time.Date(2027, 3, 1, 8, 30, 0, 0, time.UTC), 5,
			[]string{"2027-04-01 08:30", "2027-05-01 08:30", "2027-06-01 08:30", "2027-07-01 08:30", "2027-08-01 08:30", "2027-09-01 08:30"}},
		{"yearly anchored on Feb 29", "price_year", time.Date(2028, 2, 29, 12, 0, 0, 0, time.UTC), 4,
			[]string{"2029-02-28 12:00", "2030-02-28 12:00", "2031-02-28 12:00", "2032-02-29 12:00", "2033-02-28 12:00"}},
		{"weekly stays 7 days", "price_week", time.Date(2027, 2, 26, 9, 0, 0, 0, time.UTC), 2,
			[]string{"2027-03-05 09:00", "2027-03-12 09:00", "2027-03-19 09:00"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, sc := setupAt(t, tc.start, "week")
			assert.Equal(t, tc.want, periodEnds(t, srv, sc, tc.price, tc.renewals))
		})
	}
}

// A trial still lasts its days, and the first period after it is a
// calendar month from the trial's end.
func TestCalendarPeriodsAfterATrial(t *testing.T) {
	t.Parallel()
	srv, sc := setupAt(t, time.Date(2027, 1, 17, 10, 0, 0, 0, time.UTC))
	c := newCustomer(t, sc)
	cs, err := sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{
		Mode: stripe.String("subscription"), Customer: stripe.String(c.ID),
		SuccessURL:       stripe.String("https://app.test/ok"),
		LineItems:        []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_month"), Quantity: stripe.Int64(1)}},
		SubscriptionData: &stripe.CheckoutSessionCreateSubscriptionDataParams{TrialPeriodDays: stripe.Int64(14)},
	})
	require.NoError(t, err)
	evs, err := testcatalog.Pay(srv, cs.ID)
	require.NoError(t, err)
	sub := decodeAs[stripe.CheckoutSession](t, evs[len(evs)-1]).Subscription.ID
	s := srv.Subscription(sub)
	assert.Equal(t, "2027-01-31 10:00", time.Unix(s.TrialEnd, 0).UTC().Format("2006-01-02 15:04"), "14 days")
	srv.Advance(14 * 24 * time.Hour)
	_, err = testcatalog.EndTrial(srv, sub)
	require.NoError(t, err)
	s = srv.Subscription(sub)
	assert.Equal(t, "2027-02-28 10:00", time.Unix(s.Items.Data[0].CurrentPeriodEnd, 0).UTC().Format("2006-01-02 15:04"),
		"anchored at the trial's end, Jan 31: clamped to Feb 28")
}
