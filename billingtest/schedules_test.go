package billingtest_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing/internal/testcatalog"
)

// downgradeAtPeriodEnd schedules 2 × price_month for the current period,
// then 1 × price_lite for one period, as the portal's "at period end"
// switch does.
func downgradeAtPeriodEnd(t *testing.T, sc *stripe.Client, subID string) *stripe.SubscriptionSchedule {
	t.Helper()
	sched, err := sc.V1SubscriptionSchedules.Create(ctx, &stripe.SubscriptionScheduleCreateParams{FromSubscription: stripe.String(subID)})
	require.NoError(t, err)
	require.Len(t, sched.Phases, 1)
	sched, err = sc.V1SubscriptionSchedules.Update(ctx, sched.ID, &stripe.SubscriptionScheduleUpdateParams{
		Phases: []*stripe.SubscriptionScheduleUpdatePhaseParams{
			{Items: []*stripe.SubscriptionScheduleUpdatePhaseItemParams{{Price: stripe.String("price_month"), Quantity: stripe.Int64(2)}},
				StartDate: stripe.Int64(sched.Phases[0].StartDate), EndDate: stripe.Int64(sched.Phases[0].EndDate)},
			{Items: []*stripe.SubscriptionScheduleUpdatePhaseItemParams{{Price: stripe.String("price_lite"), Quantity: stripe.Int64(1)}}},
		}})
	require.NoError(t, err)
	return sched
}

func TestScheduledDowngrade(t *testing.T) {
	srv, sc := setup(t)
	srv.AddPrice("price_lite", "month", 400)
	subID, _ := subscribe(t, srv, sc, 0)
	end := srv.Subscription(subID).Items.Data[0].CurrentPeriodEnd
	n := len(srv.Events())
	sched := downgradeAtPeriodEnd(t, sc, subID)
	assert.Equal(t, []string{"subscription_schedule.created", "customer.subscription.updated", "subscription_schedule.updated"},
		types(srv.Events()[n:]))
	assert.Equal(t, sched.ID, srv.Subscription(subID).Schedule.ID)
	require.Len(t, sched.Phases, 2)
	assert.Equal(t, end, sched.Phases[1].StartDate)
	assert.Equal(t, monthsAfter(end, 1), sched.Phases[1].EndDate)
	assert.Equal(t, stripe.SubscriptionScheduleStatusActive, sched.Status)
	assert.Equal(t, "price_month", srv.Subscription(subID).Items.Data[0].Price.ID, "nothing changes before the period ends")

	// At the period end the second phase starts: the renewal bills it.
	evs, err := testcatalog.Renew(srv, subID)
	require.NoError(t, err)
	evs = without(evs, paymentTypes...)
	assert.Equal(t, []string{"customer.subscription.updated", "invoice.created", "subscription_schedule.updated",
		"invoice.finalized", "invoice.paid", "invoice.payment_succeeded"}, types(evs))
	s := decodeAs[stripe.Subscription](t, evs[0])
	assert.Equal(t, "price_lite", s.Items.Data[0].Price.ID)
	assert.Equal(t, int64(1), s.Items.Data[0].Quantity)
	assert.Equal(t, int64(400), decodeAs[stripe.Invoice](t, pick(t, evs, "invoice.paid")).AmountPaid)

	// At the last phase's end the schedule releases the subscription,
	// which renews on the last phase's items.
	evs, err = testcatalog.Renew(srv, subID)
	require.NoError(t, err)
	assert.Contains(t, types(evs), "subscription_schedule.released")
	assert.Nil(t, srv.Subscription(subID).Schedule)
	got, err := sc.V1SubscriptionSchedules.Retrieve(ctx, sched.ID, nil)
	require.NoError(t, err)
	assert.Equal(t, stripe.SubscriptionScheduleStatusReleased, got.Status)
	require.NotNil(t, got.ReleasedSubscription)
	assert.Equal(t, subID, got.ReleasedSubscription.ID)
	evs, err = testcatalog.Renew(srv, subID)
	require.NoError(t, err)
	assert.Equal(t, int64(400), decodeAs[stripe.Invoice](t, pick(t, evs, "invoice.paid")).AmountPaid)
}

func TestScheduleReleaseCancelAndErrors(t *testing.T) {
	srv, sc := setup(t)
	srv.AddPrice("price_lite", "month", 400)
	subID, _ := subscribe(t, srv, sc, 0)
	sched := downgradeAtPeriodEnd(t, sc, subID)

	_, err := sc.V1SubscriptionSchedules.Create(ctx, &stripe.SubscriptionScheduleCreateParams{FromSubscription: stripe.String(subID)})
	assertStripeError(t, err, 400, "parameter_invalid")
	status, body, _ := apiDo(t, srv, http.MethodPost, "/v1/subscription_schedules", "customer=cus_x")
	assert.Equal(t, 400, status)
	e := errorOf(t, body)
	assert.Equal(t, "parameter_not_modelled", e["code"])
	assert.Contains(t, e["message"], "valid at Stripe")
	status, body, _ = apiDo(t, srv, http.MethodPost, "/v1/subscription_schedules/"+sched.ID,
		url.Values{"phases[0][items][0][price]": {"price_month"}, "phases[0][start_date]": {fmt.Sprint(sched.Phases[0].StartDate + 1)}}.Encode())
	assert.Equal(t, 400, status)
	assert.Equal(t, "phases[0][start_date]", errorOf(t, body)["param"])
	_, err = sc.V1SubscriptionSchedules.Retrieve(ctx, "sub_sched_nope", nil)
	assertStripeError(t, err, 404, "resource_missing")

	// Released now: the subscription keeps its items, nothing switches.
	n := len(srv.Events())
	released, err := sc.V1SubscriptionSchedules.Release(ctx, sched.ID, nil)
	require.NoError(t, err)
	assert.Equal(t, stripe.SubscriptionScheduleStatusReleased, released.Status)
	assert.Equal(t, []string{"subscription_schedule.released", "customer.subscription.updated"}, types(srv.Events()[n:]))
	evs, err := testcatalog.Renew(srv, subID)
	require.NoError(t, err)
	assert.Equal(t, int64(2000), decodeAs[stripe.Invoice](t, pick(t, evs, "invoice.paid")).AmountPaid)
	_, err = sc.V1SubscriptionSchedules.Release(ctx, sched.ID, nil)
	assertStripeError(t, err, 400, "")

	// Canceling a schedule cancels its subscription.
	other, _ := subscribe(t, srv, sc, 0)
	s2, err := sc.V1SubscriptionSchedules.Create(ctx, &stripe.SubscriptionScheduleCreateParams{FromSubscription: stripe.String(other)})
	require.NoError(t, err)
	n = len(srv.Events())
	_, err = sc.V1SubscriptionSchedules.Cancel(ctx, s2.ID, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"customer.subscription.deleted", "subscription_schedule.canceled"}, types(srv.Events()[n:]))
	assert.Equal(t, stripe.SubscriptionStatusCanceled, srv.Subscription(other).Status)
}

// end_behavior=cancel cancels the subscription at the last phase's end.
func TestScheduleEndsInCancel(t *testing.T) {
	srv, sc := setup(t)
	srv.AddPrice("price_lite", "month", 400)
	subID, _ := subscribe(t, srv, sc, 0)
	sched := downgradeAtPeriodEnd(t, sc, subID)
	_, err := sc.V1SubscriptionSchedules.Update(ctx, sched.ID, &stripe.SubscriptionScheduleUpdateParams{
		EndBehavior: stripe.String("cancel")})
	require.NoError(t, err)
	assert.Equal(t, sched.Phases[1].EndDate, srv.Subscription(subID).CancelAt)
	_, err = testcatalog.Renew(srv, subID)
	require.NoError(t, err)
	srv.Advance(40 * 24 * 3600 * 1e9)
	assert.Equal(t, stripe.SubscriptionStatusCanceled, srv.Subscription(subID).Status)
	assert.Equal(t, sched.Phases[1].EndDate, srv.Subscription(subID).EndedAt)
}
