package billing_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
)

// packBought has u1 buy two packs (200 credits) with card and returns the
// session's PaymentIntent and the purchase's events (not delivered).
func packBought(t *testing.T, e *coEnv, card string) (string, []billingtest.Event) {
	t.Helper()
	cs := e.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pack", Quantity: 2})
	evs := e.complete(t, cs.ID, card)
	return e.fake.CheckoutSession(cs.ID).PaymentIntent.ID, evs
}

// refundAtStripe refunds amount of a PaymentIntent (0: the rest) and
// returns the events Stripe sends.
func refundAtStripe(t *testing.T, e *coEnv, pi string, amount int64) []billingtest.Event {
	t.Helper()
	n := len(e.fake.Events())
	p := &stripe.RefundCreateParams{PaymentIntent: stripe.String(pi)}
	if amount > 0 {
		p.Amount = stripe.Int64(amount)
	}
	_, err := e.otherDevice().V1Refunds.Create(context.Background(), p)
	require.NoError(t, err)
	return e.fake.Events()[n:]
}

func credits(t *testing.T, e *coEnv) int64 {
	t.Helper()
	m, err := e.b.Membership(context.Background(), "u1")
	require.NoError(t, err)
	return m.Credits
}

// A partial refund takes back credits in proportion, rounded down; the
// rest takes back all of them; each refund is one change.
func TestRefundTakesCreditsBack(t *testing.T) {
	t.Parallel()
	l := &hookLog{}
	e := newCoEnv(t, withHooks(l, billing.Hooks{}))
	pi, evs := packBought(t, e, billingtest.CardOK)
	e.deliver(t, evs...)
	require.Equal(t, int64(200), credits(t, e))
	paid := e.fake.CheckoutSession(e.fake.SessionsOf(e.customerOf(t, "u1"))[0]).AmountTotal

	require.Equal(t, int64(1000), paid)
	third := int64(333)
	e.deliver(t, refundAtStripe(t, e, pi, third)...)
	assert.Equal(t, int64(134), credits(t, e), "200 × 333/1000 = 66.6 taken back, rounded down to 66")
	e.deliver(t, refundAtStripe(t, e, pi, 0)...)
	assert.Zero(t, credits(t, e), "all refunded: nothing left")

	dispatch(t, e.b)
	var refunds []billing.Change
	for _, c := range l.all() {
		if c.Kind == billing.ChangeRefunded {
			refunds = append(refunds, c)
		}
	}
	require.Len(t, refunds, 2)
	assert.Equal(t, third, refunds[0].Amount)
	assert.Equal(t, third, refunds[0].RefundedNow)
	assert.Equal(t, paid, refunds[1].Amount)
	assert.Equal(t, paid-third, refunds[1].RefundedNow)
	assert.Equal(t, pi, refunds[1].PaymentIntentID)
	assert.Equal(t, "u1", refunds[1].UserID)
}

// Refund events in any order, before the purchase's own events too: the
// greatest amount refunded is kept, and a redelivery changes nothing.
func TestRefundInAnyOrder(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t)
	pi, purchase := packBought(t, e, billingtest.CardOK)
	first := refundAtStripe(t, e, pi, 300)
	second := refundAtStripe(t, e, pi, 300)
	all := slices.Concat(second, first, purchase, first, second)
	e.deliver(t, all...)
	paid := e.fake.CheckoutSession(e.fake.SessionsOf(e.customerOf(t, "u1"))[0]).AmountTotal
	require.Equal(t, int64(1000), paid)
	assert.Equal(t, int64(80), credits(t, e), "600 of 1000 refunded: 120 of 200 credits taken back")
}

// KeepCreditsOnRefund keeps them.
func TestRefundKeepsCreditsWhenConfigured(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t, func(c *billing.Config) { c.KeepCreditsOnRefund = true })
	pi, evs := packBought(t, e, billingtest.CardOK)
	e.deliver(t, evs...)
	e.deliver(t, refundAtStripe(t, e, pi, 0)...)
	assert.Equal(t, int64(200), credits(t, e))
}

// A refund of a subscription's payment is a change too, and leaves access
// to Stripe's subscription status.
func TestRefundOfASubscriptionPayment(t *testing.T) {
	t.Parallel()
	l := &hookLog{}
	e := newCoEnv(t, withHooks(l, billing.Hooks{}))
	sub := buy(t, e, "u1")
	inv := e.fake.Invoice(e.fake.Subscription(sub).LatestInvoice.ID)
	n := len(e.fake.Events())
	_, err := e.otherDevice().V1Refunds.Create(context.Background(), &stripe.RefundCreateParams{
		PaymentIntent: stripe.String(paymentIntentOf(t, e, inv.ID))})
	require.NoError(t, err)
	e.deliver(t, e.fake.Events()[n:]...)
	dispatch(t, e.b)
	assert.Contains(t, l.kinds(), billing.ChangeRefunded)
	m, err := e.b.Membership(context.Background(), "u1")
	require.NoError(t, err)
	assert.Equal(t, billing.StatusActive, m.Status, "access follows the subscription, not the refund")
}

// paymentIntentOf finds an invoice's PaymentIntent through its invoice
// payments, as basil has them.
func paymentIntentOf(t *testing.T, e *coEnv, invoiceID string) string {
	t.Helper()
	for ip, err := range e.otherDevice().V1InvoicePayments.List(context.Background(), &stripe.InvoicePaymentListParams{Invoice: stripe.String(invoiceID)}) {
		require.NoError(t, err)
		if ip.Payment != nil && ip.Payment.PaymentIntent != nil {
			return ip.Payment.PaymentIntent.ID
		}
	}
	t.Fatalf("invoice %s has no payment", invoiceID)
	return ""
}

// A dispute opened and closed is two changes, each once; access and
// credits are left as they are.
func TestDisputeOpenedAndClosed(t *testing.T) {
	t.Parallel()
	l := &hookLog{}
	e := newCoEnv(t, withHooks(l, billing.Hooks{}))
	_, evs := packBought(t, e, billingtest.CardDisputed)
	e.deliver(t, evs...)
	e.deliver(t, evs...) // redelivered
	var disputeID string
	for _, ev := range evs {
		if ev.Type == "charge.dispute.created" {
			disputeID = objectOfEvent(t, ev)
		}
	}
	require.NotEmpty(t, disputeID)
	n := len(e.fake.Events())
	_, err := e.otherDevice().V1Disputes.Update(context.Background(), disputeID, &stripe.DisputeUpdateParams{
		Evidence: &stripe.DisputeUpdateEvidenceParams{UncategorizedText: stripe.String("losing_evidence")}})
	require.NoError(t, err)
	e.deliver(t, e.fake.Events()[n:]...)
	dispatch(t, e.b)

	var got []billing.Change
	for _, c := range l.all() {
		if c.Kind == billing.ChangeDisputeOpened || c.Kind == billing.ChangeDisputeClosed {
			got = append(got, c)
		}
	}
	require.Len(t, got, 2)
	assert.Equal(t, billing.ChangeDisputeOpened, got[0].Kind)
	assert.Equal(t, "needs_response", got[0].DisputeStatus)
	assert.Equal(t, billing.ChangeDisputeClosed, got[1].Kind)
	assert.Equal(t, "lost", got[1].DisputeStatus)
	assert.Equal(t, disputeID, got[1].DisputeID)
	assert.Equal(t, "u1", got[1].UserID)
	assert.Equal(t, int64(200), credits(t, e), "a dispute takes nothing back by itself")
}

func objectOfEvent(t *testing.T, ev billingtest.Event) string {
	t.Helper()
	var d struct {
		Data struct {
			Object struct {
				ID string `json:"id"`
			} `json:"object"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(ev.JSON, &d))
	return d.Data.Object.ID
}
