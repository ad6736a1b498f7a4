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

// The events apps listen to, in Stripe's order on the same steps, and the
// objects behind them.
func TestPaymentEvents(t *testing.T) {
	srv, sc := setup(t)

	// API writes: customer.created, customer.updated (only what changed).
	c := newCustomer(t, sc)
	n := len(srv.Events())
	_, err := sc.V1Customers.Update(ctx, c.ID, &stripe.CustomerUpdateParams{Name: stripe.String("Ann B")})
	require.NoError(t, err)
	_, err = sc.V1Customers.Update(ctx, c.ID, &stripe.CustomerUpdateParams{Name: stripe.String("Ann B")})
	require.NoError(t, err)
	evs := srv.Events()[n:]
	require.Equal(t, []string{"customer.updated"}, types(evs), "an update that changes nothing sends nothing")
	assert.Equal(t, map[string]any{"name": "Ann"}, decode(t, evs[0]).Data.PreviousAttributes)
	assert.NotEmpty(t, decode(t, evs[0]).Request.ID, "caused by the request")

	// Checkout for an existing customer: the card is attached, the first
	// invoice's PaymentIntent created and charged.
	paid, err := srv.Pay(subSession(t, sc, c.ID, 0).ID, billingtest.CardOK)
	require.NoError(t, err)
	assert.Equal(t, []string{"payment_method.attached", "customer.subscription.created", "invoice.created",
		"invoice.finalized", "payment_intent.created", "charge.succeeded", "payment_intent.succeeded", "invoice.paid",
		"invoice.payment_succeeded", "customer.subscription.updated", "checkout.session.completed"}, types(paid.Events))
	pm := decodeAs[stripe.PaymentMethod](t, paid.Events[0])
	assert.Equal(t, c.ID, pm.Customer.ID)
	assert.Equal(t, "4242", pm.Card.Last4)
	pi := decodeAs[stripe.PaymentIntent](t, pick(t, paid.Events, "payment_intent.succeeded"))
	assert.Equal(t, int64(2000), pi.Amount)
	assert.Equal(t, int64(2000), pi.AmountReceived)
	assert.Equal(t, pm.ID, pi.PaymentMethod.ID)
	ch := decodeAs[stripe.Charge](t, pick(t, paid.Events, "charge.succeeded"))
	assert.Equal(t, pi.ID, ch.PaymentIntent.ID)
	assert.Equal(t, pi.LatestCharge.ID, ch.ID)
	assert.True(t, ch.Paid)
	assert.Nil(t, srv.CheckoutSession(pi.ID), "an ID of another kind of object")
	assert.Nil(t, srv.Subscription(c.ID))
	subID := srv.SubscriptionsOf(c.ID)[0]
	inv := srv.Subscription(subID).LatestInvoice.ID
	assert.Equal(t, []string{pi.ID}, piOf(t, sc, inv), "the invoice's payment is this PaymentIntent")

	// The objects behind the events can be retrieved.
	gotPI, err := sc.V1PaymentIntents.Retrieve(ctx, pi.ID, nil)
	require.NoError(t, err)
	assert.Equal(t, stripe.PaymentIntentStatusSucceeded, gotPI.Status)
	gotCh, err := sc.V1Charges.Retrieve(ctx, ch.ID, nil)
	require.NoError(t, err)
	assert.Equal(t, stripe.ChargeStatusSucceeded, gotCh.Status)
	gotPM, err := sc.V1PaymentMethods.Retrieve(ctx, pm.ID, nil)
	require.NoError(t, err)
	assert.Equal(t, stripe.PaymentMethodTypeCard, gotPM.Type)
	_, err = sc.V1PaymentIntents.Retrieve(ctx, "pi_missing", nil)
	assertStripeError(t, err, 404, "resource_missing")
	_, err = sc.V1Charges.Retrieve(ctx, "ch_missing", nil)
	assertStripeError(t, err, 404, "resource_missing")

	// A declined renewal: the charge fails, the customer is delinquent.
	require.NoError(t, testcatalog.SetCardFailing(srv, c.ID, true))
	evs, err = testcatalog.Renew(srv, subID)
	require.NoError(t, err)
	assert.Equal(t, []string{"invoice.upcoming", "customer.subscription.updated", "invoice.created", "invoice.finalized",
		"payment_intent.created", "charge.failed", "payment_intent.payment_failed", "customer.updated",
		"invoice.updated", "invoice.payment_failed", "customer.subscription.updated"}, types(evs))
	failed := decodeAs[stripe.PaymentIntent](t, pick(t, evs, "payment_intent.payment_failed"))
	require.NotNil(t, failed.LastPaymentError)
	assert.Equal(t, stripe.ErrorCodeCardDeclined, failed.LastPaymentError.Code)
	assert.Equal(t, stripe.PaymentIntentStatusRequiresPaymentMethod, failed.Status)
	assert.Equal(t, "card_declined", string(decodeAs[stripe.Charge](t, pick(t, evs, "charge.failed")).FailureCode))
	assert.Equal(t, map[string]any{"delinquent": false}, decode(t, pick(t, evs, "customer.updated")).Data.PreviousAttributes)
	upd := decode(t, pick(t, evs, "invoice.updated")).Data.PreviousAttributes
	assert.Contains(t, upd, "attempt_count")
	assert.Contains(t, upd, "next_payment_attempt")

	// A card update: attached, the customer's and subscription's default.
	evs, err = srv.UpdateCard(c.ID, billingtest.CardOK)
	require.NoError(t, err)
	assert.Equal(t, []string{"payment_method.attached", "customer.updated", "customer.subscription.updated"}, types(evs))
	newPM := decodeAs[stripe.PaymentMethod](t, evs[0])
	assert.Equal(t, newPM.ID, decodeAs[stripe.Customer](t, evs[1]).InvoiceSettings.DefaultPaymentMethod.ID)
	assert.Equal(t, newPM.ID, decodeAs[stripe.Subscription](t, evs[2]).DefaultPaymentMethod.ID)

	// The retry charges the same PaymentIntent with the new card.
	evs, err = testcatalog.Retry(srv, subID)
	require.NoError(t, err)
	assert.Equal(t, []string{"charge.succeeded", "payment_intent.succeeded", "customer.updated", "invoice.paid",
		"invoice.payment_succeeded", "customer.subscription.updated"}, types(evs))
	retried := decodeAs[stripe.PaymentIntent](t, evs[1])
	assert.Equal(t, failed.ID, retried.ID)
	assert.Equal(t, map[string]any{"delinquent": true}, decode(t, evs[2]).Data.PreviousAttributes)
}

// piOf returns the PaymentIntents of an invoice's payments.
func piOf(t *testing.T, sc *stripe.Client, invoice string) []string {
	t.Helper()
	var out []string
	for _, p := range payments(t, sc, invoice) {
		out = append(out, p.Payment.PaymentIntent.ID)
	}
	return out
}

// A card that always asks for authentication: Checkout authenticates it
// on the page; a renewal charged off-session needs the customer.
func TestPaymentActionRequired(t *testing.T) {
	srv, sc := setup(t)
	c := newCustomer(t, sc)
	_, err := srv.Pay(subSession(t, sc, c.ID, 0).ID, billingtest.CardAlwaysAuthenticate)
	require.NoError(t, err)
	subID := srv.SubscriptionsOf(c.ID)[0]
	assert.Equal(t, stripe.SubscriptionStatusActive, srv.Subscription(subID).Status)

	evs, err := testcatalog.Renew(srv, subID)
	require.NoError(t, err)
	assert.Equal(t, []string{"invoice.upcoming", "customer.subscription.updated", "invoice.created", "invoice.finalized",
		"payment_intent.created", "payment_intent.requires_action", "customer.updated",
		"invoice.payment_action_required", "invoice.updated", "invoice.payment_failed",
		"customer.subscription.updated"}, types(evs))
	pi := decodeAs[stripe.PaymentIntent](t, pick(t, evs, "payment_intent.requires_action"))
	assert.Equal(t, stripe.PaymentIntentStatusRequiresAction, pi.Status)
	require.NotNil(t, pi.NextAction)
	assert.Equal(t, stripe.SubscriptionStatusPastDue, srv.Subscription(subID).Status)

	// A card set up for off-session payments (3155) pays the retry.
	_, err = srv.UpdateCard(c.ID, billingtest.CardNeedsAuth)
	require.NoError(t, err)
	evs, err = testcatalog.Retry(srv, subID)
	require.NoError(t, err)
	assert.Contains(t, types(evs), "invoice.paid")
}

// One-time payments: a card, and bank debits that settle later.
func TestOneTimePaymentEvents(t *testing.T) {
	srv, sc := setup(t)
	c := newCustomer(t, sc)
	create := func() string {
		cs, err := sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{
			Mode: stripe.String("payment"), Customer: stripe.String(c.ID), SuccessURL: stripe.String("https://app.test/ok"),
			LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_once"), Quantity: stripe.Int64(1)}},
		})
		require.NoError(t, err)
		return cs.ID
	}
	paid, err := srv.Pay(create(), billingtest.CardOK)
	require.NoError(t, err)
	assert.Equal(t, []string{"payment_intent.created", "charge.succeeded", "payment_intent.succeeded",
		"checkout.session.completed"}, types(paid.Events))
	cs := decodeAs[stripe.CheckoutSession](t, paid.Events[3])
	assert.Equal(t, decodeAs[stripe.PaymentIntent](t, paid.Events[0]).ID, cs.PaymentIntent.ID)
	assert.Empty(t, srv.Customer(c.ID).InvoiceSettings.DefaultPaymentMethod, "a one-time payment saves no card")

	for _, tc := range []struct {
		method string
		settle []string
	}{
		{billingtest.BankDebit, []string{"charge.succeeded", "payment_intent.succeeded", "checkout.session.async_payment_succeeded"}},
		{billingtest.BankDebitFails, []string{"charge.failed", "payment_intent.payment_failed", "checkout.session.async_payment_failed"}},
	} {
		paid, err := srv.Pay(create(), tc.method)
		require.NoError(t, err)
		assert.Equal(t, []string{"payment_intent.created", "payment_intent.processing", "checkout.session.completed"},
			types(paid.Events), tc.method)
		evs := srv.Advance(3 * time.Minute)
		assert.Equal(t, tc.settle, types(evs), tc.method)
	}
}

// Catalog writes through the API send product.* and price.* events.
func TestCatalogEvents(t *testing.T) {
	srv, sc := setup(t)
	n := len(srv.Events())
	prod, err := sc.V1Products.Create(ctx, &stripe.ProductCreateParams{Name: stripe.String("Team")})
	require.NoError(t, err)
	first, err := sc.V1Prices.Create(ctx, &stripe.PriceCreateParams{Product: stripe.String(prod.ID),
		Currency: stripe.String("usd"), UnitAmount: stripe.Int64(900), LookupKey: stripe.String("team"),
		Recurring: &stripe.PriceCreateRecurringParams{Interval: stripe.String("month")}})
	require.NoError(t, err)
	_, err = sc.V1Prices.Create(ctx, &stripe.PriceCreateParams{ProductData: &stripe.PriceCreateProductDataParams{Name: stripe.String("Add-on")},
		Currency: stripe.String("usd"), UnitAmount: stripe.Int64(1200), LookupKey: stripe.String("team"), TransferLookupKey: stripe.Bool(true),
		Recurring: &stripe.PriceCreateRecurringParams{Interval: stripe.String("month")}})
	require.NoError(t, err)
	evs := srv.Events()[n:]
	assert.Equal(t, []string{"product.created", "price.created", "product.created", "price.updated", "price.created"}, types(evs))
	moved := decode(t, evs[3])
	assert.Equal(t, first.ID, decodeAs[stripe.Price](t, evs[3]).ID)
	assert.Equal(t, map[string]any{"lookup_key": "team"}, moved.Data.PreviousAttributes)

	// Refused writes send nothing.
	n = len(srv.Events())
	status, _, _ := apiDo(t, srv, http.MethodPost, "/v1/prices", "currency=usd&unit_amount=1")
	assert.Equal(t, 400, status)
	assert.Len(t, srv.Events(), n)
}

// invoice.upcoming comes a configurable time before each renewal (and a
// trial's end), once per period, with a preview of the invoice.
func TestInvoiceUpcoming(t *testing.T) {
	srv, sc := setup(t)
	subID, _ := subscribe(t, srv, sc, 0)
	end := srv.Subscription(subID).Items.Data[0].CurrentPeriodEnd

	evs := srv.Advance(time.Duration(end-3*day-srv.Now().Unix()-1) * time.Second)
	assert.Empty(t, evs, "not before three days ahead")
	evs = srv.Advance(time.Second)
	require.Equal(t, []string{"invoice.upcoming"}, types(evs))
	assert.Equal(t, end-3*day, evs[0].Created)
	preview := decodeAs[stripe.Invoice](t, evs[0])
	assert.Regexp(t, `^upcoming_in_`, preview.ID)
	assert.Equal(t, int64(2000), preview.AmountDue)
	assert.Equal(t, stripe.InvoiceStatusDraft, preview.Status)
	assert.Equal(t, end, preview.Lines.Data[0].Period.Start, "the period the renewal bills")
	assert.Equal(t, monthsAfter(end, 1), preview.Lines.Data[0].Period.End)
	assert.Nil(t, srv.Invoice(preview.ID), "a preview is not an invoice")
	assert.NotContains(t, types(srv.Advance(2*24*time.Hour)), "invoice.upcoming", "once per period")

	// Another notice; none for a subscription set to cancel; none at all.
	srv.SetUpcomingNotice(7 * 24 * time.Hour)
	next := monthsAfter(end, 1)
	evs = srv.Advance(time.Duration(next-7*day-srv.Now().Unix()) * time.Second)
	require.Equal(t, "invoice.upcoming", evs[len(evs)-1].Type)
	assert.Equal(t, next-7*day, evs[len(evs)-1].Created)

	other, _ := subscribe(t, srv, sc, 0)
	_, err := srv.CancelAtPeriodEnd(other)
	require.NoError(t, err)
	srv.SetUpcomingNotice(0)
	for _, ev := range srv.Advance(40 * 24 * time.Hour) {
		assert.NotEqual(t, "invoice.upcoming", ev.Type)
	}

	// A trial: announced with its trial_will_end, three days before it ends.
	srv.SetUpcomingNotice(3 * 24 * time.Hour)
	trial, _ := subscribe(t, srv, sc, 14)
	evs = srv.Advance(11 * 24 * time.Hour)
	assert.Equal(t, []string{"invoice.upcoming", "customer.subscription.trial_will_end"}, types(evs))
	assert.Equal(t, srv.Subscription(trial).TrialEnd-3*day, evs[0].Created)
	assert.Equal(t, int64(2000), decodeAs[stripe.Invoice](t, evs[0]).AmountDue, "the first paid period")
}

// Dunning as an account configures it: a retry schedule (Smart Retries'
// shape, spread evenly), no retry after a hard decline or without a
// payment method, and a new card attempted at once.
func TestDunning(t *testing.T) {
	assert.Equal(t, []time.Duration{42 * time.Hour, 84 * time.Hour, 126 * time.Hour, 168 * time.Hour,
		210 * time.Hour, 252 * time.Hour, 294 * time.Hour, 336 * time.Hour}, billingtest.SmartRetries(8, 14*24*time.Hour))
	assert.Panics(t, func() { billingtest.SmartRetries(9, time.Hour) }, "Stripe allows up to 8")
	assert.Panics(t, func() { billingtest.SmartRetries(0, time.Hour) })

	srv, sc := setup(t)
	srv.SetRetrySchedule(billingtest.SmartRetries(2, 4*24*time.Hour)...)
	subID, c := subscribe(t, srv, sc, 0)
	require.NoError(t, testcatalog.SetCardFailing(srv, c.ID, true))
	_, err := testcatalog.Renew(srv, subID)
	require.NoError(t, err)
	in := srv.Invoice(srv.Subscription(subID).LatestInvoice.ID)
	first := in.StatusTransitions.FinalizedAt
	assert.Equal(t, first+2*day, in.NextPaymentAttempt, "2 retries over 4 days: the first after 2")
	_, err = testcatalog.Retry(srv, subID)
	require.NoError(t, err)
	assert.Equal(t, first+4*day, srv.Invoice(in.ID).NextPaymentAttempt)

	// A hard decline is not retried; the subscription stays past_due.
	srv2, sc2 := setup(t)
	sub2, c2 := subscribe(t, srv2, sc2, 0)
	_, err = srv2.UpdateCard(c2.ID, billingtest.CardLost)
	require.NoError(t, err)
	evs, err := testcatalog.Renew(srv2, sub2)
	require.NoError(t, err)
	ch := decodeAs[stripe.Charge](t, pick(t, evs, "charge.failed"))
	assert.Equal(t, "lost_card", ch.Outcome.Reason)
	hard := srv2.Invoice(srv2.Subscription(sub2).LatestInvoice.ID)
	assert.Zero(t, hard.NextPaymentAttempt, "no retry after a hard decline")
	assert.Equal(t, stripe.SubscriptionStatusPastDue, srv2.Subscription(sub2).Status)
	_, ok := srv2.NextEvent()
	require.True(t, ok)
	for _, ev := range srv2.Advance(10 * 24 * time.Hour) {
		assert.NotContains(t, []string{"invoice.payment_failed", "customer.subscription.deleted"}, ev.Type)
	}

	// A new card: attempted at the clock's next step, and paid.
	_, err = srv2.UpdateCard(c2.ID, billingtest.CardOK)
	require.NoError(t, err)
	evs = srv2.Advance(0)
	assert.Contains(t, types(evs), "invoice.paid")
	assert.Equal(t, stripe.SubscriptionStatusActive, srv2.Subscription(sub2).Status)

	// Checkout refuses the lost card.
	_, err = srv2.Pay(subSession(t, sc2, c2.ID, 0).ID, billingtest.CardLost)
	var ce *billingtest.CardError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "lost_card", ce.DeclineCode)
}

// A renewal's invoice is finalized an hour after its invoice.created was
// delivered; while the deliveries fail, Stripe waits up to 72 hours.
func TestFinalizationWaitsForInvoiceCreatedDeliveries(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		wait    int64
	}{
		{"delivered", func(w http.ResponseWriter, r *http.Request) {}, 3600},
		{"failing", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) }, 72 * 3600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, sc := setup(t)
			subID, _ := subscribe(t, srv, sc, 0)
			srv.AddEndpoint(tc.handler, billingtest.EndpointOptions{EnabledEvents: []string{"invoice.created"},
				Delivery: billingtest.DeliveryOptions{RetryBase: time.Millisecond, MaxAttempts: 2}})
			end := srv.Subscription(subID).Items.Data[0].CurrentPeriodEnd
			evs := srv.Advance(time.Duration(end-srv.Now().Unix()+4*24*3600) * time.Second)
			created := pick(t, evs, "invoice.created")
			finalized := pick(t, evs, "invoice.finalized")
			assert.Equal(t, end, created.Created)
			assert.Equal(t, end+tc.wait, finalized.Created)
			assert.Contains(t, types(evs), "invoice.paid", "charged once finalized")
		})
	}
}

// Time a receiver sleeps on the Stripe's clock while Advance waits for
// its deliveries is kept, not overwritten by Advance's end.
func TestSleepDuringAdvanceIsKept(t *testing.T) {
	srv, sc := setup(t)
	subID, _ := subscribe(t, srv, sc, 0)
	srv.AddEndpoint(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = srv.Sleep(r.Context(), time.Hour) // a receiver's retry wait
	}), billingtest.EndpointOptions{EnabledEvents: []string{"invoice.created"}})
	end := srv.Subscription(subID).Items.Data[0].CurrentPeriodEnd
	before := srv.Now()
	d := time.Duration(end-before.Unix()+2*3600) * time.Second
	srv.Advance(d)
	assert.WithinDuration(t, before.Add(d+time.Hour), srv.Now(), 5*time.Second)
}
