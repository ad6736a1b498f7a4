package billingtest_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing/billingtest"
)

// trialWithoutCard starts a trial whose Checkout collected no payment
// method, with the given end behaviour.
func trialWithoutCard(t *testing.T, srv *billingtest.Stripe, sc *stripe.Client, behavior string) string {
	t.Helper()
	c := newCustomer(t, sc)
	p := &stripe.CheckoutSessionCreateParams{
		Mode: stripe.String("subscription"), Customer: stripe.String(c.ID), SuccessURL: stripe.String("https://app.test/ok"),
		PaymentMethodCollection: stripe.String("if_required"),
		LineItems:               []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_month"), Quantity: stripe.Int64(1)}},
		SubscriptionData: &stripe.CheckoutSessionCreateSubscriptionDataParams{TrialPeriodDays: stripe.Int64(7),
			TrialSettings: &stripe.CheckoutSessionCreateSubscriptionDataTrialSettingsParams{
				EndBehavior: &stripe.CheckoutSessionCreateSubscriptionDataTrialSettingsEndBehaviorParams{
					MissingPaymentMethod: stripe.String(behavior)}}},
	}
	cs, err := sc.V1CheckoutSessions.Create(ctx, p)
	require.NoError(t, err)
	assert.Equal(t, stripe.CheckoutSessionPaymentMethodCollectionIfRequired, cs.PaymentMethodCollection)
	paid, err := srv.Pay(cs.ID, "")
	require.NoError(t, err)
	assert.NotContains(t, types(paid.Events), "payment_method.attached", "no card collected")
	subID := srv.CheckoutSession(cs.ID).Subscription.ID
	assert.Nil(t, srv.Subscription(subID).DefaultPaymentMethod)
	return subID
}

// A trial that ends without a payment method pauses when its end
// behaviour says so, and resumes through the API once a card is saved.
func TestTrialEndsPausedThenResumes(t *testing.T) {
	srv, sc := setup(t)
	subID := trialWithoutCard(t, srv, sc, "pause")
	trialEnd := srv.Subscription(subID).TrialEnd

	evs := without(srv.Advance(8*24*time.Hour), paymentTypes...)
	assert.Equal(t, []string{"customer.subscription.trial_will_end", "customer.subscription.updated",
		"customer.subscription.paused"}, types(evs))
	assert.Equal(t, trialEnd, evs[1].Created)
	assert.Equal(t, map[string]any{"status": "trialing"}, decode(t, evs[1]).Data.PreviousAttributes)
	assert.Equal(t, stripe.SubscriptionStatusPaused, srv.Subscription(subID).Status)
	assert.Empty(t, srv.Advance(60*24*time.Hour), "a paused subscription neither renews nor invoices")

	// Resuming: only a paused subscription; a new period starts, charged now.
	_, err := sc.V1Subscriptions.Resume(ctx, "sub_missing", nil)
	assertStripeError(t, err, 404, "resource_missing")
	cus := srv.Subscription(subID).Customer.ID
	_, err = srv.UpdateCard(cus, billingtest.CardOK)
	require.NoError(t, err)
	n := len(srv.Events())
	resumed, err := sc.V1Subscriptions.Resume(ctx, subID, nil)
	require.NoError(t, err)
	assert.Equal(t, stripe.SubscriptionStatusActive, resumed.Status)
	now := srv.Now().Unix()
	assert.InDelta(t, now, resumed.Items.Data[0].CurrentPeriodStart, 2)
	assert.Equal(t, monthsAfter(resumed.Items.Data[0].CurrentPeriodStart, 1), resumed.Items.Data[0].CurrentPeriodEnd)
	got := without(srv.Events()[n:], paymentTypes...)
	assert.Equal(t, []string{"customer.subscription.updated", "customer.subscription.resumed", "invoice.created",
		"invoice.finalized", "invoice.paid", "invoice.payment_succeeded"}, types(got))
	assert.Equal(t, stripe.InvoiceBillingReasonSubscriptionUpdate, decodeAs[stripe.Invoice](t, got[2]).BillingReason)
	_, err = sc.V1Subscriptions.Resume(ctx, subID, nil)
	assertStripeError(t, err, 400, "")
}

func TestTrialEndWithoutPaymentMethod(t *testing.T) {
	srv, sc := setup(t)
	canceled := trialWithoutCard(t, srv, sc, "cancel")
	invoiced := trialWithoutCard(t, srv, sc, "create_invoice")
	srv.Advance(8 * 24 * time.Hour)
	assert.Equal(t, stripe.SubscriptionStatusCanceled, srv.Subscription(canceled).Status)
	s := srv.Subscription(invoiced)
	assert.Equal(t, stripe.SubscriptionStatusPastDue, s.Status, "the first invoice cannot be charged")
	in := srv.Invoice(s.LatestInvoice.ID)
	assert.Equal(t, stripe.InvoiceStatusOpen, in.Status)
	assert.Equal(t, int64(1), in.AttemptCount)

	// A session that must collect a card cannot be paid without one.
	c := newCustomer(t, sc)
	_, err := srv.Pay(subSession(t, sc, c.ID, 7).ID, "")
	assert.ErrorIs(t, err, billingtest.ErrInvalidCardNumber)
}

// pause_collection keeps the subscription active and sends only
// customer.subscription.updated; its renewal invoices are voided, kept as
// drafts or marked uncollectible, and never charged.
func TestPauseCollection(t *testing.T) {
	for _, tc := range []struct {
		behavior string
		events   []string
		status   stripe.InvoiceStatus
	}{
		{"void", []string{"invoice.voided"}, stripe.InvoiceStatusVoid},
		{"keep_as_draft", nil, stripe.InvoiceStatusDraft},
		{"mark_uncollectible", []string{"invoice.finalized", "invoice.marked_uncollectible"}, stripe.InvoiceStatusUncollectible},
	} {
		t.Run(tc.behavior, func(t *testing.T) {
			srv, sc := setup(t)
			subID, _ := subscribe(t, srv, sc, 0)
			end := srv.Subscription(subID).Items.Data[0].CurrentPeriodEnd
			resumesAt := monthsAfter(end, 1) - 5*day
			n := len(srv.Events())
			s, err := sc.V1Subscriptions.Update(ctx, subID, &stripe.SubscriptionUpdateParams{
				PauseCollection: &stripe.SubscriptionUpdatePauseCollectionParams{Behavior: stripe.String(tc.behavior),
					ResumesAt: stripe.Int64(resumesAt)}})
			require.NoError(t, err)
			assert.Equal(t, stripe.SubscriptionStatusActive, s.Status)
			assert.Equal(t, tc.behavior, string(s.PauseCollection.Behavior))
			assert.Equal(t, []string{"customer.subscription.updated"}, types(srv.Events()[n:]))
			assert.Contains(t, decode(t, srv.Events()[n]).Data.PreviousAttributes, "pause_collection")

			evs := without(srv.Advance(time.Duration(end+3600-srv.Now().Unix())*time.Second), paymentTypes...)
			want := append([]string{"customer.subscription.updated", "invoice.created"}, tc.events...)
			assert.Equal(t, want, types(evs))
			renewal := srv.Subscription(subID).LatestInvoice.ID
			assert.Equal(t, tc.status, srv.Invoice(renewal).Status)
			assert.Zero(t, srv.Invoice(renewal).AmountPaid)
			assert.Equal(t, stripe.SubscriptionStatusActive, srv.Subscription(subID).Status)

			// At resumes_at collection resumes; the next renewal is charged.
			evs = srv.Advance(time.Duration(resumesAt-srv.Now().Unix()) * time.Second)
			require.NotEmpty(t, evs)
			last := evs[len(evs)-1]
			assert.Equal(t, "customer.subscription.updated", last.Type)
			assert.Equal(t, resumesAt, last.Created)
			assert.Nil(t, srv.Subscription(subID).PauseCollection)
			evs = srv.Advance(6 * 24 * time.Hour)
			assert.Contains(t, types(evs), "invoice.paid")
		})
	}
}

func TestPauseCollectionParameters(t *testing.T) {
	srv, sc := setup(t)
	subID, _ := subscribe(t, srv, sc, 0)
	for form, code := range map[string]string{
		"pause_collection[behavior]=sleep":         "parameter_invalid",
		"pause_collection[resumes_at]=99999999999": "parameter_missing",
		fmt.Sprintf("pause_collection[behavior]=void&pause_collection[resumes_at]=%d", srv.Now().Unix()-10): "parameter_invalid",
	} {
		status, body, _ := apiDo(t, srv, http.MethodPost, "/v1/subscriptions/"+subID, form)
		assert.Equal(t, 400, status, form)
		assert.Equal(t, code, errorOf(t, body)["code"], form)
	}
	assert.Nil(t, srv.Subscription(subID).PauseCollection, "refused: nothing changed")

	// pause_collection="" resumes collection.
	status, _, _ := apiDo(t, srv, http.MethodPost, "/v1/subscriptions/"+subID, "pause_collection[behavior]=void")
	require.Equal(t, 200, status)
	status, _, _ = apiDo(t, srv, http.MethodPost, "/v1/subscriptions/"+subID, "pause_collection=")
	require.Equal(t, 200, status)
	assert.Nil(t, srv.Subscription(subID).PauseCollection)
}
