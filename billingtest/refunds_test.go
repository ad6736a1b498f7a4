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

// onePurchase pays a one-time Checkout of 2 × price_once ($25) and returns
// its PaymentIntent.
func onePurchase(t *testing.T, srv *billingtest.Stripe, sc *stripe.Client, card string) (*stripe.PaymentIntent, []billingtest.Event) {
	t.Helper()
	c := newCustomer(t, sc)
	cs, err := sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{
		Mode: stripe.String("payment"), Customer: stripe.String(c.ID), SuccessURL: stripe.String("https://app.test/ok"),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_once"), Quantity: stripe.Int64(2)}}})
	require.NoError(t, err)
	paid, err := srv.Pay(cs.ID, card)
	require.NoError(t, err)
	pi, err := sc.V1PaymentIntents.Retrieve(ctx, srv.CheckoutSession(cs.ID).PaymentIntent.ID, nil)
	require.NoError(t, err)
	return pi, paid.Events
}

// Full and partial refunds, as Stripe answers and announces them.
func TestRefunds(t *testing.T) {
	srv, sc := setup(t)
	pi, _ := onePurchase(t, srv, sc, billingtest.CardOK)

	n := len(srv.Events())
	re, err := sc.V1Refunds.Create(ctx, &stripe.RefundCreateParams{PaymentIntent: stripe.String(pi.ID),
		Amount: stripe.Int64(1000), Reason: stripe.String("requested_by_customer")})
	require.NoError(t, err)
	assert.Equal(t, int64(1000), re.Amount)
	assert.Equal(t, stripe.RefundStatusSucceeded, re.Status)
	assert.Equal(t, pi.LatestCharge.ID, re.Charge.ID)
	evs := srv.Events()[n:]
	require.Equal(t, []string{"refund.created", "charge.refunded"}, types(evs))
	ch := decodeAs[stripe.Charge](t, evs[1])
	assert.Equal(t, int64(1000), ch.AmountRefunded)
	assert.False(t, ch.Refunded, "partly")
	assert.Equal(t, map[string]any{"amount_refunded": float64(0)}, decode(t, evs[1]).Data.PreviousAttributes)

	// The rest, by charge; then nothing is left.
	rest, err := sc.V1Refunds.Create(ctx, &stripe.RefundCreateParams{Charge: stripe.String(pi.LatestCharge.ID)})
	require.NoError(t, err)
	assert.Equal(t, int64(4000), rest.Amount)
	got, err := sc.V1Charges.Retrieve(ctx, pi.LatestCharge.ID, nil)
	require.NoError(t, err)
	assert.True(t, got.Refunded)
	assert.Equal(t, int64(5000), got.AmountRefunded)
	_, err = sc.V1Refunds.Create(ctx, &stripe.RefundCreateParams{Charge: stripe.String(pi.LatestCharge.ID)})
	assertStripeError(t, err, 400, "charge_already_refunded")
	again, err := sc.V1Refunds.Retrieve(ctx, re.ID, nil)
	require.NoError(t, err)
	assert.Equal(t, re.ID, again.ID)

	// Refused: too much, nothing to refund, both or neither given.
	pi2, _ := onePurchase(t, srv, sc, billingtest.CardOK)
	n = len(srv.Events())
	for form, code := range map[string]string{
		"payment_intent=" + pi2.ID + "&amount=5001":                   "parameter_invalid",
		"payment_intent=" + pi2.ID + "&charge=" + pi2.LatestCharge.ID: "parameters_exclusive",
		"amount=10":              "parameter_missing",
		"payment_intent=pi_nope": "resource_missing",
		"payment_intent=" + pi2.ID + "&reason=changed_mind":         "parameter_invalid",
		"payment_intent=" + pi2.ID + "&refund_application_fee=true": "parameter_not_modelled",
	} {
		status, body, _ := apiDo(t, srv, http.MethodPost, "/v1/refunds", form)
		assert.Equal(t, 400, status, form)
		assert.Equal(t, code, errorOf(t, body)["code"], form)
	}
	status, body, _ := apiDo(t, srv, http.MethodPost, "/v1/refunds", "payment_intent="+pi2.ID+"&amount=5001")
	assert.Equal(t, 400, status)
	assert.Equal(t, "Refund amount ($50.01) is greater than unrefunded amount on charge ($50.00)", errorOf(t, body)["message"])
	assert.Len(t, srv.Events(), n, "refused refunds change nothing")

	// A charged-back payment cannot be refunded as well.
	disputed, _ := onePurchase(t, srv, sc, billingtest.CardDisputed)
	n = len(srv.Events())
	_, err = sc.V1Refunds.Create(ctx, &stripe.RefundCreateParams{PaymentIntent: stripe.String(disputed.ID)})
	assertStripeError(t, err, 400, "charge_disputed")
	assert.Len(t, srv.Events(), n)
}

// A renewal's payment is refunded as basil finds it: invoice → invoice
// payments → PaymentIntent.
func TestRefundAnInvoice(t *testing.T) {
	srv, sc := setup(t)
	subID, _ := subscribe(t, srv, sc, 0)
	invoice := srv.Subscription(subID).LatestInvoice.ID
	pis := piOf(t, sc, invoice)
	require.Len(t, pis, 1)
	re, err := sc.V1Refunds.Create(ctx, &stripe.RefundCreateParams{PaymentIntent: stripe.String(pis[0])})
	require.NoError(t, err)
	assert.Equal(t, int64(2000), re.Amount)
}

// Stripe's 0259 card: paid, then disputed at once; evidence closes the
// dispute, won or lost.
func TestDisputes(t *testing.T) {
	for _, tc := range []struct {
		evidence string
		status   stripe.DisputeStatus
	}{{"winning_evidence", stripe.DisputeStatusWon}, {"losing_evidence", stripe.DisputeStatusLost}} {
		t.Run(tc.evidence, func(t *testing.T) {
			srv, sc := setup(t)
			pi, evs := onePurchase(t, srv, sc, billingtest.CardDisputed)
			assert.Equal(t, []string{"payment_intent.created", "charge.succeeded", "payment_intent.succeeded",
				"charge.dispute.created", "checkout.session.completed"}, types(evs))
			d := decodeAs[stripe.Dispute](t, evs[3])
			assert.Equal(t, stripe.DisputeStatusNeedsResponse, d.Status)
			assert.Equal(t, pi.LatestCharge.ID, d.Charge.ID)
			assert.Equal(t, int64(5000), d.Amount)
			ch, err := sc.V1Charges.Retrieve(ctx, pi.LatestCharge.ID, nil)
			require.NoError(t, err)
			assert.True(t, ch.Disputed)

			n := len(srv.Events())
			closed, err := sc.V1Disputes.Update(ctx, d.ID, &stripe.DisputeUpdateParams{
				Evidence: &stripe.DisputeUpdateEvidenceParams{UncategorizedText: stripe.String(tc.evidence),
					CustomerName: stripe.String("Ann")}})
			require.NoError(t, err)
			assert.Equal(t, tc.status, closed.Status)
			assert.Equal(t, []string{"charge.dispute.updated", "charge.dispute.closed"}, types(srv.Events()[n:]))
			_, err = sc.V1Disputes.Update(ctx, d.ID, &stripe.DisputeUpdateParams{
				Evidence: &stripe.DisputeUpdateEvidenceParams{UncategorizedText: stripe.String("more")}})
			assertStripeError(t, err, 400, "")
			got, err := sc.V1Disputes.Retrieve(ctx, d.ID, nil)
			require.NoError(t, err)
			assert.Equal(t, tc.status, got.Status)
			assert.Equal(t, "Ann", got.Evidence.CustomerName)
		})
	}
}

// Evidence is kept field by field: staged with submit=false, submitted
// with the next update; without test-mode text the dispute is under
// review.
func TestDisputeEvidence(t *testing.T) {
	srv, sc := setup(t)
	_, evs := onePurchase(t, srv, sc, billingtest.CardDisputed)
	d := decodeAs[stripe.Dispute](t, evs[3])
	staged, err := sc.V1Disputes.Update(ctx, d.ID, &stripe.DisputeUpdateParams{Submit: stripe.Bool(false),
		Evidence: &stripe.DisputeUpdateEvidenceParams{CustomerName: stripe.String("Ann")}})
	require.NoError(t, err)
	assert.Equal(t, stripe.DisputeStatusNeedsResponse, staged.Status)
	assert.True(t, staged.EvidenceDetails.HasEvidence)
	assert.Zero(t, staged.EvidenceDetails.SubmissionCount)
	assert.Equal(t, "Ann", staged.Evidence.CustomerName)

	sent, err := sc.V1Disputes.Update(ctx, d.ID, &stripe.DisputeUpdateParams{
		Evidence: &stripe.DisputeUpdateEvidenceParams{ProductDescription: stripe.String("A year of Pro")}})
	require.NoError(t, err)
	assert.Equal(t, stripe.DisputeStatusUnderReview, sent.Status)
	assert.Equal(t, int64(1), sent.EvidenceDetails.SubmissionCount)
	assert.Equal(t, "Ann", sent.Evidence.CustomerName, "staged evidence is kept")
	assert.Equal(t, "A year of Pro", sent.Evidence.ProductDescription)
}

// Refunds and disputes are listed newest first, by charge or PaymentIntent.
func TestRefundAndDisputeLists(t *testing.T) {
	srv, sc := setup(t)
	a, _ := onePurchase(t, srv, sc, billingtest.CardOK)
	b, _ := onePurchase(t, srv, sc, billingtest.CardOK)
	var ids []string
	for _, p := range []struct {
		pi     string
		amount int64
	}{{a.ID, 100}, {b.ID, 200}, {a.ID, 300}} {
		srv.Advance(time.Second)
		re, err := sc.V1Refunds.Create(ctx, &stripe.RefundCreateParams{PaymentIntent: stripe.String(p.pi), Amount: stripe.Int64(p.amount)})
		require.NoError(t, err)
		ids = append(ids, re.ID)
	}
	all := collect(t, sc.V1Refunds.List(ctx, &stripe.RefundListParams{}))
	assert.Equal(t, []string{ids[2], ids[1], ids[0]}, idsOf(all, func(r *stripe.Refund) string { return r.ID }))
	ofA := collect(t, sc.V1Refunds.List(ctx, &stripe.RefundListParams{PaymentIntent: stripe.String(a.ID)}))
	assert.Equal(t, []string{ids[2], ids[0]}, idsOf(ofA, func(r *stripe.Refund) string { return r.ID }))
	ofB := collect(t, sc.V1Refunds.List(ctx, &stripe.RefundListParams{Charge: stripe.String(b.LatestCharge.ID)}))
	assert.Equal(t, []string{ids[1]}, idsOf(ofB, func(r *stripe.Refund) string { return r.ID }))

	d, _ := onePurchase(t, srv, sc, billingtest.CardDisputed)
	disputes := collect(t, sc.V1Disputes.List(ctx, &stripe.DisputeListParams{PaymentIntent: stripe.String(d.ID)}))
	require.Len(t, disputes, 1)
	assert.Equal(t, d.LatestCharge.ID, disputes[0].Charge.ID)
	assert.Empty(t, collect(t, sc.V1Disputes.List(ctx, &stripe.DisputeListParams{Charge: stripe.String(a.LatestCharge.ID)})))
	status, body, _ := apiDo(t, srv, http.MethodGet, "/v1/refunds", "customer=cus_x")
	assert.Equal(t, 400, status)
	assert.Equal(t, "parameter_unknown", errorOf(t, body)["code"])
}

// Amounts in errors are written in the currency's own units.
func TestMoney(t *testing.T) {
	for _, tc := range []struct {
		currency string
		amount   int64
		want     string
	}{{"usd", 5001, "$50.01"}, {"eur", 900, "€9.00"}, {"jpy", 500, "¥500"}, {"kwd", 12345, "KWD 12.345"}, {"chf", 1250, "CHF 12.50"}} {
		assert.Equal(t, tc.want, billingtest.Money(tc.currency, tc.amount), tc.currency)
	}
}
