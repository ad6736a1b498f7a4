package billingtest_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testcatalog"
)

// State that moves at Stripe moves here too: customer.delinquent, default
// payment methods, invoice payments.

func TestCustomerDelinquentWhilePastDue(t *testing.T) {
	srv, sc := setup(t)
	sub, c := subscribe(t, srv, sc, 0)
	assert.False(t, srv.Customer(c.ID).Delinquent)

	require.NoError(t, testcatalog.SetCardFailing(srv, c.ID, true))
	_, err := testcatalog.Renew(srv, sub)
	require.NoError(t, err)
	got, err := sc.V1Customers.Retrieve(ctx, c.ID, nil)
	require.NoError(t, err)
	assert.True(t, got.Delinquent, "an automatic payment failed")

	require.NoError(t, testcatalog.Err(srv.UpdateCard(c.ID, billingtest.CardOK)))
	_, err = testcatalog.Retry(srv, sub)
	require.NoError(t, err)
	assert.False(t, srv.Customer(c.ID).Delinquent, "the invoice was paid")
}

func TestDefaultPaymentMethods(t *testing.T) {
	srv, sc := setup(t)
	sub, c := subscribe(t, srv, sc, 14) // a trial collects the card too
	s := srv.Subscription(sub)
	require.NotNil(t, s.DefaultPaymentMethod, "Checkout saves the card on the subscription")
	first := s.DefaultPaymentMethod.ID
	assert.Regexp(t, `^pm_\w+$`, first)
	assert.Nil(t, srv.Customer(c.ID).InvoiceSettings.DefaultPaymentMethod, "Checkout does not set the customer's default")

	require.NoError(t, testcatalog.Err(srv.UpdateCard(c.ID, billingtest.CardOK)))
	cus := srv.Customer(c.ID)
	require.NotNil(t, cus.InvoiceSettings.DefaultPaymentMethod)
	updated := cus.InvoiceSettings.DefaultPaymentMethod.ID
	assert.NotEqual(t, first, updated)
	assert.Equal(t, updated, srv.Subscription(sub).DefaultPaymentMethod.ID, "the new card is the subscription's too")

	// A refused card changes nothing; an ended subscription keeps its card.
	require.Error(t, testcatalog.Err(srv.UpdateCard(c.ID, billingtest.CardDeclined)))
	assert.Equal(t, updated, srv.Customer(c.ID).InvoiceSettings.DefaultPaymentMethod.ID)
	_, err := srv.CancelNow(sub)
	require.NoError(t, err)
	require.NoError(t, testcatalog.Err(srv.UpdateCard(c.ID, billingtest.CardOK)))
	assert.Equal(t, updated, srv.Subscription(sub).DefaultPaymentMethod.ID)
	assert.NotEqual(t, updated, srv.Customer(c.ID).InvoiceSettings.DefaultPaymentMethod.ID)
}

func TestInvoicePayments(t *testing.T) {
	srv, sc := setup(t)
	sub, c := subscribe(t, srv, sc, 0)
	first := srv.Subscription(sub).LatestInvoice.ID

	// The paid first invoice has one payment, paid, with its PaymentIntent.
	inv, err := sc.V1Invoices.Retrieve(ctx, first, &stripe.InvoiceRetrieveParams{
		Expand: []*string{stripe.String("payments")}})
	require.NoError(t, err)
	require.NotNil(t, inv.Payments)
	require.Len(t, inv.Payments.Data, 1)
	p := inv.Payments.Data[0]
	assert.Equal(t, "paid", p.Status)
	assert.Equal(t, int64(2000), p.AmountPaid)
	assert.Equal(t, int64(2000), p.AmountRequested)
	assert.True(t, p.IsDefault)
	assert.Equal(t, stripe.InvoicePaymentPaymentTypePaymentIntent, p.Payment.Type)
	pi := p.Payment.PaymentIntent.ID
	assert.Regexp(t, `^pi_\w+$`, pi)
	assert.Equal(t, inv.StatusTransitions.PaidAt, p.StatusTransitions.PaidAt)

	// Unexpanded, an invoice has no payments key (it is includable only).
	var raw map[string]any
	require.NoError(t, json.Unmarshal(srv.Object(first), &raw))
	assert.NotContains(t, raw, "payments")

	// Found from its PaymentIntent (how a refund finds its invoice) and by ID.
	var found []string
	for ip, err := range sc.V1InvoicePayments.List(ctx, &stripe.InvoicePaymentListParams{
		Payment: &stripe.InvoicePaymentListPaymentParams{Type: stripe.String("payment_intent"), PaymentIntent: stripe.String(pi)}}) {
		require.NoError(t, err)
		found = append(found, ip.Invoice.ID)
	}
	assert.Equal(t, []string{first}, found)
	got, err := sc.V1InvoicePayments.Retrieve(ctx, p.ID, nil)
	require.NoError(t, err)
	assert.Equal(t, first, got.Invoice.ID)

	// A failed renewal: one open payment, retried on the same
	// PaymentIntent, paid on recovery.
	require.NoError(t, testcatalog.SetCardFailing(srv, c.ID, true))
	_, err = testcatalog.Renew(srv, sub)
	require.NoError(t, err)
	second := srv.Subscription(sub).LatestInvoice.ID
	open := payments(t, sc, second)
	require.Len(t, open, 1)
	assert.Equal(t, "open", open[0].Status)
	assert.Zero(t, open[0].AmountPaid)
	require.NoError(t, testcatalog.SetCardFailing(srv, c.ID, false))
	_, err = testcatalog.Retry(srv, sub)
	require.NoError(t, err)
	paid := payments(t, sc, second)
	require.Len(t, paid, 1)
	assert.Equal(t, "paid", paid[0].Status)
	assert.Equal(t, open[0].Payment.PaymentIntent.ID, paid[0].Payment.PaymentIntent.ID)
	assert.NotEqual(t, pi, paid[0].Payment.PaymentIntent.ID)

	// A $0 trial invoice charges nothing: no payment.
	trialSub, _ := subscribe(t, srv, sc, 7)
	assert.Empty(t, payments(t, sc, srv.Subscription(trialSub).LatestInvoice.ID))

	// Bad input is refused.
	_, err = sc.V1InvoicePayments.Retrieve(ctx, "inpay_missing", nil)
	assertStripeError(t, err, 404, "resource_missing")
	for _, err := range sc.V1InvoicePayments.List(ctx, &stripe.InvoicePaymentListParams{
		Payment: &stripe.InvoicePaymentListPaymentParams{Type: stripe.String("charge")}}) {
		assertStripeError(t, err, 400, "parameter_invalid")
	}
}

func payments(t *testing.T, sc *stripe.Client, invoice string) []*stripe.InvoicePayment {
	t.Helper()
	var out []*stripe.InvoicePayment
	for ip, err := range sc.V1InvoicePayments.List(ctx, &stripe.InvoicePaymentListParams{Invoice: stripe.String(invoice)}) {
		require.NoError(t, err)
		out = append(out, ip)
	}
	return out
}

func assertStripeError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var se *stripe.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, status, se.HTTPStatusCode)
	assert.Equal(t, code, string(se.Code))
}

func TestCheckoutSessionKeysAsStripeSendsThem(t *testing.T) {
	srv, sc := setup(t)
	c := newCustomer(t, sc)
	hosted := subSession(t, sc, c.ID, 0)
	var o map[string]any
	require.NoError(t, json.Unmarshal(srv.Object(hosted.ID), &o))
	assert.NotContains(t, o, "return_url", "Stripe omits return_url without one")
	for _, k := range []string{"automatic_tax", "custom_fields", "custom_text", "shipping_options"} {
		assert.Contains(t, o, k)
	}

	embedded, err := sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{
		Mode: stripe.String("payment"), UIMode: stripe.String("embedded"),
		ReturnURL: stripe.String("https://app.test/back"),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_once"), Quantity: stripe.Int64(1)}},
	})
	require.NoError(t, err)
	assert.Equal(t, "https://app.test/back", embedded.ReturnURL)

	for li, err := range sc.V1CheckoutSessions.ListLineItems(ctx, &stripe.CheckoutSessionListLineItemsParams{Session: stripe.String(hosted.ID)}) {
		require.NoError(t, err)
		assert.Equal(t, "price_month", li.Price.ID)
	}
	var items map[string]any
	resp, err := sc.V1CheckoutSessions.Retrieve(ctx, hosted.ID, &stripe.CheckoutSessionRetrieveParams{
		Expand: []*string{stripe.String("line_items")}})
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(resp.LastResponse.RawJSON, &items))
	item := items["line_items"].(map[string]any)["data"].([]any)[0].(map[string]any)
	assert.NotContains(t, item, "metadata", "a Checkout line item has no metadata")
}
