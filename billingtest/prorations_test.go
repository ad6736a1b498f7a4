package billingtest_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testcatalog"
)

// prorationSetup subscribes to 2 × price_month ($10) for a 30-day period
// (Sep 1 to Oct 1) and lets 10 days pass: 20 of 30 days are left.
func prorationSetup(t *testing.T) (*billingtest.Stripe, *stripe.Client, string) {
	t.Helper()
	srv, sc := setup(t)
	srv.AddPrice("price_pro", "month", 3000)
	subID, _ := subscribe(t, srv, sc, 0)
	srv.Advance(10 * 24 * time.Hour)
	return srv, sc, subID
}

func changeTo(t *testing.T, sc *stripe.Client, srv *billingtest.Stripe, subID, price, behavior string) []billingtest.Event {
	t.Helper()
	n := len(srv.Events())
	item := srv.Subscription(subID).Items.Data[0].ID
	p := &stripe.SubscriptionUpdateParams{Items: []*stripe.SubscriptionUpdateItemParams{{ID: stripe.String(item), Price: stripe.String(price)}}}
	if behavior != "" {
		p.ProrationBehavior = stripe.String(behavior)
	}
	_, err := sc.V1Subscriptions.Update(ctx, subID, p)
	require.NoError(t, err)
	return srv.Events()[n:]
}

func lineAmounts(in *stripe.Invoice) (amounts []int64, prorations []bool) {
	for _, l := range in.Lines.Data {
		amounts = append(amounts, l.Amount)
		prorations = append(prorations, l.Parent.SubscriptionItemDetails.Proration)
	}
	return amounts, prorations
}

// Upgrading $20 → $60 a month with 20 of 30 days left: a credit of
// -$13.33 (2000 × 20/30 = 1333.33, rounded) and a charge of $40.00.
func TestProrationsOnTheNextInvoice(t *testing.T) {
	srv, sc, subID := prorationSetup(t)

	// The preview before the change says what the next invoice will be.
	status, preview, _ := apiDo(t, srv, http.MethodPost, "/v1/invoices/create_preview",
		"subscription="+subID+"&subscription_details[items][0][id]="+srv.Subscription(subID).Items.Data[0].ID+
			"&subscription_details[items][0][price]=price_pro")
	require.Equal(t, 200, status, "%v", preview)
	assert.EqualValues(t, 6000-1333+4000, preview["amount_due"])

	evs := changeTo(t, sc, srv, subID, "price_pro", "")
	assert.Equal(t, []string{"customer.subscription.updated"}, types(evs), "create_prorations: nothing is charged now")
	evs, err := testcatalog.Renew(srv, subID)
	require.NoError(t, err)
	in := decodeAs[stripe.Invoice](t, pick(t, evs, "invoice.paid"))
	amounts, prorated := lineAmounts(in)
	assert.Equal(t, []int64{6000, -1333, 4000}, amounts, "the new price, then the credit and the charge")
	assert.Equal(t, []bool{false, true, true}, prorated)
	assert.Equal(t, int64(8667), in.AmountPaid)
	assert.Contains(t, in.Lines.Data[1].Description, "Unused time on 2 × price_month after 11 Sep 2025")
	assert.Contains(t, in.Lines.Data[2].Description, "Remaining time on 2 × price_pro after 11 Sep 2025")
	assert.Regexp(t, `^ii_`, in.Lines.Data[1].Parent.SubscriptionItemDetails.InvoiceItem)

	// The following renewal has no prorations left.
	evs, err = testcatalog.Renew(srv, subID)
	require.NoError(t, err)
	amounts, _ = lineAmounts(decodeAs[stripe.Invoice](t, pick(t, evs, "invoice.paid")))
	assert.Equal(t, []int64{6000}, amounts)
}

func TestProrationsInvoicedAtOnce(t *testing.T) {
	srv, sc, subID := prorationSetup(t)
	evs := without(changeTo(t, sc, srv, subID, "price_pro", "always_invoice"), paymentTypes...)
	assert.Equal(t, []string{"customer.subscription.updated", "invoice.created", "invoice.finalized", "invoice.paid",
		"invoice.payment_succeeded"}, types(evs))
	in := decodeAs[stripe.Invoice](t, evs[3])
	amounts, _ := lineAmounts(in)
	assert.Equal(t, []int64{-1333, 4000}, amounts)
	assert.Equal(t, int64(2667), in.AmountPaid)
	assert.Equal(t, stripe.InvoiceBillingReasonSubscriptionUpdate, in.BillingReason)
	assert.Equal(t, in.ID, srv.Subscription(subID).LatestInvoice.ID)

	// Nothing is left for the renewal but the new price.
	evs, err := testcatalog.Renew(srv, subID)
	require.NoError(t, err)
	amounts, _ = lineAmounts(decodeAs[stripe.Invoice](t, pick(t, evs, "invoice.paid")))
	assert.Equal(t, []int64{6000}, amounts)
}

func TestNoProrations(t *testing.T) {
	srv, sc, subID := prorationSetup(t)
	changeTo(t, sc, srv, subID, "price_pro", "none")
	evs, err := testcatalog.Renew(srv, subID)
	require.NoError(t, err)
	amounts, _ := lineAmounts(decodeAs[stripe.Invoice](t, pick(t, evs, "invoice.paid")))
	assert.Equal(t, []int64{6000}, amounts)
}

// A downgrade credits more than it charges; the portal's switch prorates
// too (create_prorations).
func TestDowngradeProrationsThroughThePortal(t *testing.T) {
	srv, _, subID := prorationSetup(t)
	srv.AddPrice("price_lite", "month", 400)
	_, err := srv.ChangePrice(subID, "price_lite")
	require.NoError(t, err)
	evs, err := testcatalog.Renew(srv, subID)
	require.NoError(t, err)
	in := decodeAs[stripe.Invoice](t, pick(t, evs, "invoice.paid"))
	amounts, _ := lineAmounts(in)
	assert.Equal(t, []int64{800, -1333, 533}, amounts, "800 × 20/30 = 533.33")
	assert.Equal(t, int64(0), in.AmountDue, "a negative total is due as zero")
}

func TestCreatePreviewErrors(t *testing.T) {
	srv, _, subID := prorationSetup(t)
	for form, code := range map[string]string{
		"":                               "parameter_missing",
		"subscription=sub_nope":          "resource_missing",
		"subscription=" + subID + "&x=1": "parameter_unknown",
		"subscription=" + subID + "&subscription_details[proration_behavior]=later": "parameter_invalid",
	} {
		status, body, _ := apiDo(t, srv, http.MethodPost, "/v1/invoices/create_preview", form)
		assert.Equal(t, 400, status, form)
		assert.Equal(t, code, errorOf(t, body)["code"], form)
	}
	// Without changes: the renewal as it stands.
	status, body, _ := apiDo(t, srv, http.MethodPost, "/v1/invoices/create_preview", "subscription="+subID)
	require.Equal(t, 200, status)
	assert.EqualValues(t, 2000, body["amount_due"])
	assert.Regexp(t, `^upcoming_in_`, body["id"])
}

// Each proration line is rounded to the minor unit, half away from zero:
// 2 → 1 seat of $10 with 20 of 30 days left credits -$13.33 (1333.33) and
// charges $6.67 (666.67).
func TestProrationRounding(t *testing.T) {
	srv, sc, subID := prorationSetup(t)
	item := srv.Subscription(subID).Items.Data[0].ID
	_, err := sc.V1Subscriptions.Update(ctx, subID, &stripe.SubscriptionUpdateParams{ProrationBehavior: stripe.String("always_invoice"),
		Items: []*stripe.SubscriptionUpdateItemParams{{ID: stripe.String(item), Quantity: stripe.Int64(1)}}})
	require.NoError(t, err)
	in := srv.Invoice(srv.Subscription(subID).LatestInvoice.ID)
	amounts, _ := lineAmounts(in)
	assert.Equal(t, []int64{-1333, 667}, amounts)
	assert.Equal(t, int64(0), in.AmountDue, "a credit larger than the charge is due as zero")
	assert.Equal(t, stripe.InvoiceStatusPaid, in.Status)
}
