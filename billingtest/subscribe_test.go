package billingtest_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing/billingtest"
)

// A subscription made through the API, outside Checkout: charged to the
// customer's default card at once, with the events Checkout's
// subscriptions send.
func TestCreateSubscription(t *testing.T) {
	srv, sc := setup(t)
	c := newCustomer(t, sc)
	_, err := srv.UpdateCard(c.ID, billingtest.CardOK)
	require.NoError(t, err)
	n := len(srv.Events())
	sub, err := sc.V1Subscriptions.Create(ctx, &stripe.SubscriptionCreateParams{Customer: stripe.String(c.ID),
		Items:    []*stripe.SubscriptionCreateItemParams{{Price: stripe.String("price_month"), Quantity: stripe.Int64(2)}},
		Metadata: map[string]string{"user_id": "u1"}, Description: stripe.String("Team")})
	require.NoError(t, err)
	assert.Equal(t, stripe.SubscriptionStatusActive, sub.Status)
	assert.Equal(t, map[string]string{"user_id": "u1"}, sub.Metadata)
	require.Len(t, sub.Items.Data, 1)
	assert.Equal(t, int64(2), sub.Items.Data[0].Quantity)
	assert.Equal(t, start.AddDate(0, 1, 0).Unix(), sub.Items.Data[0].CurrentPeriodEnd)
	evs := types(srv.Events()[n:])
	assert.Equal(t, "customer.subscription.created", evs[0])
	assert.Subset(t, evs, []string{"invoice.created", "invoice.finalized", "invoice.paid", "invoice.payment_succeeded"})
	assert.Equal(t, "customer.subscription.updated", evs[len(evs)-1])
	created := decodeAs[stripe.Subscription](t, srv.Events()[n])
	assert.Equal(t, stripe.SubscriptionStatusIncomplete, created.Status)
	inv, err := sc.V1Invoices.Retrieve(ctx, sub.LatestInvoice.ID, nil)
	require.NoError(t, err)
	assert.Equal(t, stripe.InvoiceStatusPaid, inv.Status)
	assert.Equal(t, int64(2000), inv.AmountPaid)
	assert.Equal(t, stripe.InvoiceBillingReasonSubscriptionCreate, inv.BillingReason)

	// It renews like any other.
	evsRenew := srv.Advance(32 * 24 * time.Hour)
	assert.Contains(t, types(evsRenew), "invoice.paid")
}

// A trial needs no card; without one and without a trial, or with a
// card that fails, nothing is made.
func TestCreateSubscriptionRefusals(t *testing.T) {
	srv, sc := apiSetup(t)
	c := newCustomer(t, sc)
	trial, err := sc.V1Subscriptions.Create(ctx, &stripe.SubscriptionCreateParams{Customer: stripe.String(c.ID),
		Items: []*stripe.SubscriptionCreateItemParams{{Price: stripe.String("price_month")}}, TrialPeriodDays: stripe.Int64(14)})
	require.NoError(t, err)
	assert.Equal(t, stripe.SubscriptionStatusTrialing, trial.Status)
	assert.Equal(t, start.Add(14*24*time.Hour).Unix(), trial.TrialEnd)

	n := len(srv.Events())
	_, err = sc.V1Subscriptions.Create(ctx, &stripe.SubscriptionCreateParams{Customer: stripe.String(c.ID),
		Items: []*stripe.SubscriptionCreateItemParams{{Price: stripe.String("price_month")}}})
	assertStripeError(t, err, 400, "resource_missing")
	assert.Len(t, srv.Events(), n)

	// Another customer's card is not this customer's to charge.
	owner := newCustomer(t, sc)
	_, err = srv.UpdateCard(owner.ID, billingtest.CardOK)
	require.NoError(t, err)
	n = len(srv.Events())
	_, err = sc.V1Subscriptions.Create(ctx, &stripe.SubscriptionCreateParams{Customer: stripe.String(c.ID),
		DefaultPaymentMethod: stripe.String(srv.Customer(owner.ID).InvoiceSettings.DefaultPaymentMethod.ID),
		Items:                []*stripe.SubscriptionCreateItemParams{{Price: stripe.String("price_month")}}})
	assertStripeError(t, err, 400, "parameter_invalid")
	assert.Len(t, srv.Events(), n)

	_, err = srv.UpdateCard(c.ID, billingtest.CardChargeFails)
	require.NoError(t, err)
	n = len(srv.Events())
	_, err = sc.V1Subscriptions.Create(ctx, &stripe.SubscriptionCreateParams{Customer: stripe.String(c.ID),
		Items:           []*stripe.SubscriptionCreateItemParams{{Price: stripe.String("price_month")}},
		PaymentBehavior: stripe.String("error_if_incomplete")})
	assertStripeError(t, err, 402, "card_declined")
	var se *stripe.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, stripe.DeclineCode("generic_decline"), se.DeclineCode)
	for form, code := range map[string]string{
		"customer=" + c.ID + "&items[0][price]=price_month":                                     "parameter_not_modelled",
		"customer=" + c.ID + "&items[0][price]=price_month&payment_behavior=default_incomplete": "parameter_not_modelled",
		"customer=" + c.ID:                                                             "parameter_missing",
		"items[0][price]=price_month":                                                  "parameter_missing",
		"customer=cus_nope&items[0][price]=price_month":                                "resource_missing",
		"customer=" + c.ID + "&items[0][price]=price_once":                             "parameter_invalid",
		"customer=" + c.ID + "&items[0][price]=price_month&items[1][price]=price_year": "parameter_invalid",
		"customer=" + c.ID + "&items[0][price]=price_month&items[0][quantity]=0":       "parameter_invalid_integer",
		"customer=" + c.ID + "&items[0][price]=price_month&trial_period_days=-1":       "parameter_invalid_integer",
		"customer=" + c.ID + "&items[0][price]=price_month&cancel_at_period_end=true":  "parameter_not_modelled",
	} {
		status, body, _ := apiDo(t, srv, http.MethodPost, "/v1/subscriptions", form)
		assert.Equal(t, 400, status, form)
		assert.Equal(t, code, errorOf(t, body)["code"], form)
	}
	assert.Len(t, srv.Events(), n, "refused requests make nothing")
	assert.Len(t, srv.SubscriptionsOf(c.ID), 1, "the trial only")
}
