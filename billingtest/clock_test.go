package billingtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testcatalog"
)

const hour = int64(3600)

// clkSetup starts a fake Stripe whose clock bills (Options.Manual unset),
// with monthly, weekly and pro prices, and a stripe-go client.
// billingEvents returns the subscription and invoice events emitted after
// the first before: what the clock's tests look at (the payment objects'
// events have a test of their own, TestPaymentEvents).
func billingEvents(srv *billingtest.Stripe, before int) []billingtest.Event {
	return without(srv.Events()[before:], paymentTypes...)
}

func clkSetup(t *testing.T) (*billingtest.Stripe, *stripe.Client) {
	t.Helper()
	srv := billingtest.New(billingtest.Options{Start: start})
	t.Cleanup(srv.Close)
	srv.AddPrice("price_month", "month", 1000)
	srv.AddPrice("price_week", "week", 300)
	srv.AddPrice("price_pro", "month", 2900)
	return srv, apiClient(srv)
}

// subscribeTo completes a Checkout for one unit of a price and returns the
// subscription and customer IDs.
func subscribeTo(t *testing.T, srv *billingtest.Stripe, sc *stripe.Client, price string) (sub, cus string) {
	t.Helper()
	cs, err := sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{
		Mode: stripe.String("subscription"), SuccessURL: stripe.String("https://app.test/ok"),
		CustomerEmail: stripe.String("b@example.com"),
		LineItems:     []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String(price), Quantity: stripe.Int64(1)}},
	})
	require.NoError(t, err)
	_, err = testcatalog.Pay(srv, cs.ID)
	require.NoError(t, err)
	done := srv.CheckoutSession(cs.ID)
	return done.Subscription.ID, done.Customer.ID
}

// advanceTo advances the clock to the unix second at (or just past it).
func advanceTo(srv *billingtest.Stripe, at int64) {
	srv.Advance(time.Duration(at-srv.Now().Unix()) * time.Second)
}

func periodOf(srv *billingtest.Stripe, sub string) (start, end int64) {
	it := srv.Subscription(sub).Items.Data[0]
	return it.CurrentPeriodStart, it.CurrentPeriodEnd
}

func createdTimes(evs []billingtest.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Created
	}
	return out
}

// subOf returns the subscription an event is about (a subscription's ID or
// an invoice's parent subscription).
func subOf(t *testing.T, ev billingtest.Event) string {
	t.Helper()
	var obj struct {
		ID     string `json:"id"`
		Object string `json:"object"`
		Parent *struct {
			SubscriptionDetails struct {
				Subscription string `json:"subscription"`
			} `json:"subscription_details"`
		} `json:"parent"`
	}
	require.NoError(t, json.Unmarshal(decode(t, ev).Data.Raw, &obj))
	if obj.Object == "invoice" {
		return obj.Parent.SubscriptionDetails.Subscription
	}
	return obj.ID
}

func TestAdvanceRenews(t *testing.T) {
	srv, sc := clkSetup(t)
	subID, _ := subscribe(t, srv, sc, 0)
	before := srv.Subscription(subID)
	end := before.Items.Data[0].CurrentPeriodEnd
	n := len(srv.Events())
	t0 := srv.Now()

	srv.Advance(31 * 24 * time.Hour)
	assert.WithinDuration(t, t0.Add(31*24*time.Hour), srv.Now(), 5*time.Second, "the clock reads start+d")
	evs := billingEvents(srv, n)
	require.Equal(t, []string{"customer.subscription.updated", "invoice.created", "invoice.finalized",
		"invoice.paid", "invoice.payment_succeeded"}, types(evs))
	assert.Equal(t, []int64{end, end, end + hour, end + hour, end + hour}, createdTimes(evs),
		"the period moves at its end, the invoice is charged an hour later")

	up := decode(t, evs[0])
	assert.Empty(t, up.Request.ID, "automatic")
	assert.Contains(t, up.Data.PreviousAttributes, "items")
	assert.Contains(t, up.Data.PreviousAttributes, "latest_invoice")
	assert.NotContains(t, up.Data.PreviousAttributes, "status", "the status stays active")
	sub := decodeAs[stripe.Subscription](t, evs[0])
	assert.Equal(t, stripe.SubscriptionStatusActive, sub.Status)
	assert.Equal(t, end, sub.Items.Data[0].CurrentPeriodStart)
	assert.Equal(t, monthsAfter(end, 1), sub.Items.Data[0].CurrentPeriodEnd)

	draft := decodeAs[stripe.Invoice](t, evs[1])
	assert.Equal(t, sub.LatestInvoice.ID, draft.ID)
	assert.Equal(t, stripe.InvoiceStatusDraft, draft.Status)
	assert.Equal(t, stripe.InvoiceBillingReasonSubscriptionCycle, draft.BillingReason)
	assert.Equal(t, end, draft.Created)
	assert.Equal(t, end+hour, draft.NextPaymentAttempt, "the draft says when it is charged")
	assert.Equal(t, monthsAfter(end, 1), draft.Lines.Data[0].Period.End)
	assert.Equal(t, stripe.InvoiceStatusOpen, decodeAs[stripe.Invoice](t, evs[2]).Status)
	paid := decodeAs[stripe.Invoice](t, evs[3])
	assert.Equal(t, stripe.InvoiceStatusPaid, paid.Status)
	assert.Equal(t, int64(1), paid.AttemptCount)
	assert.Equal(t, int64(2000), paid.AmountPaid)
	assert.Equal(t, end+hour, paid.StatusTransitions.PaidAt)

	now := srv.Subscription(subID)
	assert.Equal(t, stripe.SubscriptionStatusActive, now.Status)
	assert.Equal(t, monthsAfter(end, 1), now.Items.Data[0].CurrentPeriodEnd)
	assert.Len(t, srv.InvoicesOf(subID), 2)
	next, ok := srv.NextEvent()
	require.True(t, ok)
	assert.Equal(t, monthsAfter(end, 1)-3*day, next.Unix(), "next: invoice.upcoming, three days before the renewal")
}

func TestAdvanceRenewsEveryPeriod(t *testing.T) {
	srv, sc := clkSetup(t)
	subID, _ := subscribe(t, srv, sc, 0)
	_, end := periodOf(srv, subID)
	n := len(srv.Events())

	advanceTo(srv, monthsAfter(end, 2)+60)
	var renewals []int64
	for _, e := range billingEvents(srv, n) {
		if e.Type == "customer.subscription.updated" {
			renewals = append(renewals, e.Created)
		}
	}
	assert.Equal(t, []int64{end, monthsAfter(end, 1), monthsAfter(end, 2)}, renewals)
	_, newEnd := periodOf(srv, subID)
	assert.Equal(t, monthsAfter(end, 3), newEnd)
	invoices := srv.InvoicesOf(subID)
	require.Len(t, invoices, 4)
	assert.Equal(t, stripe.InvoiceStatusPaid, srv.Invoice(invoices[2]).Status)
	assert.Equal(t, stripe.InvoiceStatusDraft, srv.Invoice(invoices[3]).Status, "the third renewal's invoice waits an hour")

	srv.Advance(time.Hour)
	assert.Equal(t, stripe.InvoiceStatusPaid, srv.Invoice(invoices[3]).Status)
	assert.Equal(t, monthsAfter(end, 2)+hour, srv.Invoice(invoices[3]).StatusTransitions.PaidAt)
}

func TestAdvanceNothingDue(t *testing.T) {
	srv, sc := clkSetup(t)
	srv.SetUpcomingNotice(0) // nothing but the renewal is due
	subID, _ := subscribe(t, srv, sc, 0)
	_, end := periodOf(srv, subID)
	n := len(srv.Events())
	srv.Advance(0)
	srv.Advance(23 * time.Hour)
	assert.Empty(t, billingEvents(srv, n))
	next, ok := srv.NextEvent()
	require.True(t, ok)
	assert.Equal(t, end, next.Unix())
	advanceTo(srv, end-1)
	assert.Empty(t, billingEvents(srv, n), "a second before the period end")
	assert.Equal(t, stripe.SubscriptionStatusActive, srv.Subscription(subID).Status)
	srv.Advance(time.Second)
	assert.Equal(t, []string{"customer.subscription.updated", "invoice.created"}, types(billingEvents(srv, n)))
}

func TestAdvanceTrial(t *testing.T) {
	srv, sc := clkSetup(t)
	subID, _ := subscribe(t, srv, sc, 14)
	trialEnd := srv.Subscription(subID).TrialEnd
	n := len(srv.Events())

	advanceTo(srv, trialEnd-3*day-1)
	assert.Empty(t, billingEvents(srv, n))
	srv.Advance(time.Minute)
	evs := billingEvents(srv, n)
	require.Equal(t, []string{"customer.subscription.trial_will_end"}, types(evs))
	assert.Equal(t, trialEnd-3*day, evs[0].Created, "three days before the trial ends")
	assert.Equal(t, stripe.SubscriptionStatusTrialing, decodeAs[stripe.Subscription](t, evs[0]).Status)

	n = len(srv.Events())
	srv.Advance(3*24*time.Hour + 2*time.Hour)
	evs = billingEvents(srv, n)
	require.Equal(t, []string{"customer.subscription.updated", "invoice.created", "invoice.finalized",
		"invoice.paid", "invoice.payment_succeeded"}, types(evs), "the notice is sent once")
	assert.Equal(t, []int64{trialEnd, trialEnd, trialEnd + hour, trialEnd + hour, trialEnd + hour}, createdTimes(evs))
	up := decode(t, evs[0])
	assert.Equal(t, "trialing", up.Data.PreviousAttributes["status"])
	sub := decodeAs[stripe.Subscription](t, evs[0])
	assert.Equal(t, stripe.SubscriptionStatusActive, sub.Status)
	assert.Equal(t, trialEnd, sub.Items.Data[0].CurrentPeriodStart)
	assert.Equal(t, monthsAfter(trialEnd, 1), sub.Items.Data[0].CurrentPeriodEnd)
	assert.Equal(t, trialEnd, sub.TrialEnd)
	paid := decodeAs[stripe.Invoice](t, evs[3])
	assert.Equal(t, stripe.InvoiceBillingReasonSubscriptionCycle, paid.BillingReason)
	assert.Equal(t, int64(2000), paid.AmountPaid)
	assert.Equal(t, sub.LatestInvoice.ID, paid.ID)
	assert.Equal(t, stripe.SubscriptionStatusActive, srv.Subscription(subID).Status)
}

func TestAdvanceTrialWithFailingCard(t *testing.T) {
	srv, sc := clkSetup(t)
	subID, c := subscribe(t, srv, sc, 7)
	require.NoError(t, testcatalog.SetCardFailing(srv, c.ID, true))
	trialEnd := srv.Subscription(subID).TrialEnd
	n := len(srv.Events())

	srv.Advance(7*24*time.Hour + time.Hour)
	evs := billingEvents(srv, n)
	require.Equal(t, []string{"customer.subscription.trial_will_end", "customer.subscription.updated",
		"invoice.created", "invoice.finalized", "invoice.updated", "invoice.payment_failed", "customer.subscription.updated"}, types(evs))
	failed := decodeAs[stripe.Invoice](t, evs[5])
	assert.Equal(t, int64(1), failed.AttemptCount)
	assert.Equal(t, trialEnd+hour+day, failed.NextPaymentAttempt)
	assert.Equal(t, map[string]any{"status": "active"}, decode(t, evs[6]).Data.PreviousAttributes)
	assert.Equal(t, stripe.SubscriptionStatusPastDue, srv.Subscription(subID).Status)

	n = len(srv.Events())
	srv.Advance(24 * time.Hour)
	evs = billingEvents(srv, n)
	require.Equal(t, []string{"invoice.updated", "invoice.payment_failed"}, types(evs), "the retry schedule applies")
	assert.Equal(t, int64(2), decodeAs[stripe.Invoice](t, evs[0]).AttemptCount)
}

func TestAdvanceFailedRenewal(t *testing.T) {
	for _, tc := range []struct {
		outcome billingtest.FailureOutcome
		last    []string
		final   stripe.SubscriptionStatus
	}{
		{"", []string{"invoice.updated", "invoice.payment_failed", "customer.subscription.deleted"}, stripe.SubscriptionStatusCanceled},
		{billingtest.OutcomeUnpaid, []string{"invoice.updated", "invoice.payment_failed", "customer.subscription.updated"}, stripe.SubscriptionStatusUnpaid},
		{billingtest.OutcomePastDue, []string{"invoice.updated", "invoice.payment_failed"}, stripe.SubscriptionStatusPastDue},
	} {
		t.Run(string(tc.final), func(t *testing.T) {
			t.Parallel()
			srv, sc := clkSetup(t)
			if tc.outcome != "" {
				srv.SetFailureOutcome(tc.outcome)
			}
			subID, c := subscribe(t, srv, sc, 0)
			require.NoError(t, testcatalog.SetCardFailing(srv, c.ID, true))
			_, end := periodOf(srv, subID)
			first := end + hour
			n := len(srv.Events())

			srv.Advance(30*24*time.Hour + time.Hour)
			evs := billingEvents(srv, n)
			require.Equal(t, []string{"customer.subscription.updated", "invoice.created", "invoice.finalized",
				"invoice.updated", "invoice.payment_failed", "customer.subscription.updated"}, types(evs))
			assert.Equal(t, []int64{end, end, first, first, first, first}, createdTimes(evs))
			in := decodeAs[stripe.Invoice](t, evs[4])
			assert.Equal(t, int64(1), in.AttemptCount)
			assert.Equal(t, first+day, in.NextPaymentAttempt)
			assert.Equal(t, stripe.InvoiceStatusOpen, in.Status)
			assert.Equal(t, stripe.SubscriptionStatusPastDue, decodeAs[stripe.Subscription](t, evs[5]).Status,
				"past_due from the first failure")

			retries := []int64{first + day, first + 3*day, first + 5*day, first + 7*day}
			for i, at := range retries {
				n = len(srv.Events())
				advanceTo(srv, at-60)
				require.Empty(t, billingEvents(srv, n), "nothing before the retry")
				srv.Advance(2 * time.Minute)
				evs = billingEvents(srv, n)
				attempt := int64(i + 2)
				if attempt < 5 {
					require.Equal(t, []string{"invoice.updated", "invoice.payment_failed"}, types(evs), "attempt %d", attempt)
				} else {
					require.Equal(t, tc.last, types(evs))
				}
				for _, e := range evs {
					assert.Equal(t, at, e.Created)
				}
				in = decodeAs[stripe.Invoice](t, evs[0])
				assert.Equal(t, attempt, in.AttemptCount)
				if attempt < 5 {
					assert.Equal(t, retries[i+1], in.NextPaymentAttempt)
					assert.Equal(t, stripe.SubscriptionStatusPastDue, srv.Subscription(subID).Status)
				} else {
					assert.Zero(t, in.NextPaymentAttempt, "no retry after the last")
				}
			}
			assert.Equal(t, stripe.InvoiceStatusOpen, in.Status, "the invoice is left open")
			s := srv.Subscription(subID)
			assert.Equal(t, tc.final, s.Status)
			if tc.final == stripe.SubscriptionStatusCanceled {
				assert.Equal(t, first+7*day, s.EndedAt)
				assert.Equal(t, stripe.SubscriptionCancellationDetailsReasonPaymentFailed, s.CancellationDetails.Reason)
			}

			// Later: a past_due subscription keeps renewing (and failing);
			// the others do nothing more.
			n = len(srv.Events())
			advanceTo(srv, monthsAfter(end, 1)+hour)
			evs = billingEvents(srv, n)
			if tc.final == stripe.SubscriptionStatusPastDue {
				assert.Equal(t, []string{"customer.subscription.updated", "invoice.created", "invoice.finalized",
					"invoice.updated", "invoice.payment_failed"}, types(evs))
				assert.Equal(t, monthsAfter(end, 1), evs[0].Created)
			} else {
				assert.Empty(t, evs)
			}
		})
	}
}

func TestAdvanceRetryRecovers(t *testing.T) {
	srv, sc := clkSetup(t)
	subID, c := subscribe(t, srv, sc, 0)
	require.NoError(t, testcatalog.SetCardFailing(srv, c.ID, true))
	_, end := periodOf(srv, subID)
	srv.Advance(30*24*time.Hour + time.Hour)
	require.Equal(t, stripe.SubscriptionStatusPastDue, srv.Subscription(subID).Status)

	require.NoError(t, testcatalog.SetCardFailing(srv, c.ID, false))
	n := len(srv.Events())
	srv.Advance(24 * time.Hour)
	evs := billingEvents(srv, n)
	require.Equal(t, []string{"invoice.paid", "invoice.payment_succeeded", "customer.subscription.updated"}, types(evs))
	for _, e := range evs {
		assert.Equal(t, end+hour+day, e.Created)
	}
	paid := decodeAs[stripe.Invoice](t, evs[0])
	assert.Equal(t, int64(2), paid.AttemptCount)
	assert.Zero(t, paid.NextPaymentAttempt)
	assert.Equal(t, map[string]any{"status": "past_due"}, decode(t, evs[2]).Data.PreviousAttributes)
	assert.Equal(t, stripe.SubscriptionStatusActive, srv.Subscription(subID).Status)

	n = len(srv.Events())
	advanceTo(srv, monthsAfter(end, 1)+hour)
	assert.Equal(t, []string{"customer.subscription.updated", "invoice.created", "invoice.finalized",
		"invoice.paid", "invoice.payment_succeeded"}, types(billingEvents(srv, n)), "the next renewal as usual")
}

// A past_due subscription renews; its status follows its latest invoice,
// and the older invoice is retried on its own schedule.
func TestAdvanceRenewsPastDue(t *testing.T) {
	srv, sc := clkSetup(t)
	subID, c := subscribeTo(t, srv, sc, "price_week")
	require.NoError(t, testcatalog.SetCardFailing(srv, c, true))
	_, end := periodOf(srv, subID)
	advanceTo(srv, end+6*day)
	invoices := srv.InvoicesOf(subID)
	require.Len(t, invoices, 2)
	old := invoices[1]
	assert.Equal(t, int64(4), srv.Invoice(old).AttemptCount)
	assert.Equal(t, end+hour+7*day, srv.Invoice(old).NextPaymentAttempt)
	assert.Equal(t, stripe.SubscriptionStatusPastDue, srv.Subscription(subID).Status)

	require.NoError(t, testcatalog.SetCardFailing(srv, c, false))
	n := len(srv.Events())
	advanceTo(srv, end+7*day+hour)
	evs := billingEvents(srv, n)
	require.Equal(t, []string{
		"customer.subscription.updated", "invoice.created", // the next period, at end+7d
		"invoice.finalized", "invoice.paid", "invoice.payment_succeeded", "customer.subscription.updated", // its invoice
		"invoice.paid", "invoice.payment_succeeded", // the old invoice's last retry
	}, types(evs))
	assert.Equal(t, []int64{end + 7*day, end + 7*day}, createdTimes(evs[:2]))
	assert.Equal(t, map[string]any{"status": "past_due"}, decode(t, evs[5]).Data.PreviousAttributes)
	assert.Equal(t, old, decodeAs[stripe.Invoice](t, evs[6]).ID)
	assert.Equal(t, int64(5), decodeAs[stripe.Invoice](t, evs[6]).AttemptCount)
	assert.Equal(t, stripe.SubscriptionStatusActive, srv.Subscription(subID).Status)
}

func TestAdvanceCancelAtPeriodEnd(t *testing.T) {
	srv, sc := clkSetup(t)
	subID, _ := subscribe(t, srv, sc, 0)
	_, end := periodOf(srv, subID)
	srv.Advance(5 * 24 * time.Hour)
	_, err := sc.V1Subscriptions.Update(ctx, subID, &stripe.SubscriptionUpdateParams{CancelAtPeriodEnd: stripe.Bool(true)})
	require.NoError(t, err)
	requested := srv.Now().Unix()
	n := len(srv.Events())

	srv.Advance(60 * 24 * time.Hour)
	evs := billingEvents(srv, n)
	require.Equal(t, []string{"customer.subscription.deleted"}, types(evs), "no renewal")
	assert.Equal(t, end, evs[0].Created)
	s := decodeAs[stripe.Subscription](t, evs[0])
	assert.Equal(t, stripe.SubscriptionStatusCanceled, s.Status)
	assert.Equal(t, end, s.EndedAt)
	assert.InDelta(t, requested, s.CanceledAt, 2, "canceled_at is the request time")
	assert.Len(t, srv.InvoicesOf(subID), 1)
	_, ok := srv.NextEvent()
	assert.False(t, ok, "nothing left to do")
}

func TestAdvanceCancelAt(t *testing.T) {
	srv, sc := clkSetup(t)
	subID, _ := subscribe(t, srv, sc, 0)
	at := srv.Now().Add(10 * 24 * time.Hour).Truncate(time.Second)
	_, err := testcatalog.CancelAt(srv, subID, at)
	require.NoError(t, err)
	n := len(srv.Events())

	srv.Advance(40 * 24 * time.Hour)
	evs := billingEvents(srv, n)
	require.Equal(t, []string{"customer.subscription.deleted"}, types(evs))
	assert.Equal(t, at.Unix(), evs[0].Created)
	s := srv.Subscription(subID)
	assert.Equal(t, stripe.SubscriptionStatusCanceled, s.Status)
	assert.Equal(t, at.Unix(), s.EndedAt)
	assert.Len(t, srv.InvoicesOf(subID), 1)
}

func TestAdvanceInterleavesSubscriptions(t *testing.T) {
	srv, sc := clkSetup(t)
	a, _ := subscribeTo(t, srv, sc, "price_month")
	c, _ := subscribeTo(t, srv, sc, "price_month") // same second as a, or the next
	srv.Advance(10 * 24 * time.Hour)
	b, _ := subscribeTo(t, srv, sc, "price_week")
	_, endA := periodOf(srv, a)
	_, endB := periodOf(srv, b)
	n := len(srv.Events())

	srv.Advance(40 * 24 * time.Hour)
	evs := billingEvents(srv, n)
	assert.IsNonDecreasing(t, createdTimes(evs), "events in time order")
	var order []string
	var at []int64
	for _, e := range evs {
		if e.Type == "customer.subscription.updated" {
			order = append(order, subOf(t, e))
			at = append(at, e.Created)
		}
	}
	assert.Equal(t, []string{b, b, a, c, b, b, b}, order)
	assert.Equal(t, []int64{endB, endB + 7*day, endA, srv.Subscription(c).Items.Data[0].CurrentPeriodStart,
		endB + 14*day, endB + 21*day, endB + 28*day}, at)
	for i, e := range evs {
		if e.Type == "invoice.finalized" {
			assert.Equal(t, subOf(t, e), subOf(t, evs[i+1]), "an invoice's charge follows its finalization")
			assert.Equal(t, e.Created, evs[i+1].Created)
		}
	}
}

func TestAdvanceExpiresSessionsInTimeOrder(t *testing.T) {
	srv, sc := clkSetup(t)
	subID, _ := subscribe(t, srv, sc, 0)
	_, end := periodOf(srv, subID)
	cs := subSession(t, sc, srv.Subscription(subID).Customer.ID, 0)
	n := len(srv.Events())
	next, ok := srv.NextEvent()
	require.True(t, ok)
	assert.Equal(t, cs.ExpiresAt, next.Unix())

	srv.Advance(31 * 24 * time.Hour)
	evs := billingEvents(srv, n)
	require.Equal(t, []string{"checkout.session.expired", "customer.subscription.updated", "invoice.created",
		"invoice.finalized", "invoice.paid", "invoice.payment_succeeded"}, types(evs))
	assert.Equal(t, cs.ExpiresAt, evs[0].Created)
	assert.Equal(t, end, evs[1].Created)
}

// A Billing receiving the clock's events follows a failing renewal: grace
// for two attempts, past_due from the third (GraceAttempts 3), canceled
// after the last.
func TestAdvanceWithBilling(t *testing.T) {
	srv, _ := clkSetup(t)
	const secret = "whsec_clock"
	b := dlBilling(t, srv, secret)
	srv.AddEndpoint(b.WebhookHandler(), billingtest.EndpointOptions{Secret: secret})
	sub := dlBuy(t, srv, b, "u1")
	member := func() billing.Membership {
		t.Helper()
		dlFlush(t, srv)
		m, err := b.Membership(context.Background(), "u1")
		require.NoError(t, err)
		return m
	}
	m := member()
	require.Equal(t, billing.StatusActive, m.Status)
	require.NoError(t, testcatalog.SetCardFailing(srv, srv.Subscription(sub).Customer.ID, true))
	_, end := periodOf(srv, sub)

	srv.Advance(30 * 24 * time.Hour)
	m = member()
	assert.Equal(t, billing.StatusActive, m.Status, "renewing: the period moved, the invoice waits")
	assert.Equal(t, time.Unix(monthsAfter(end, 1), 0).UTC(), m.CurrentPeriodEnd)
	assert.Zero(t, m.FailedAttempts)

	for i, step := range []struct {
		d      time.Duration
		status billing.Status
		stripe billing.SubscriptionStatus
	}{
		{time.Hour, billing.StatusActive, "past_due"},
		{24 * time.Hour, billing.StatusActive, "past_due"},
		{48 * time.Hour, billing.StatusPastDue, "past_due"},
		{48 * time.Hour, billing.StatusPastDue, "past_due"},
		{48 * time.Hour, billing.StatusCanceled, "canceled"},
	} {
		srv.Advance(step.d)
		m = member()
		attempt := i + 1
		assert.Equal(t, step.status, m.Status, "after attempt %d", attempt)
		assert.Equal(t, step.stripe, m.StripeStatus, "after attempt %d", attempt)
		if step.status == billing.StatusActive {
			assert.Equal(t, attempt, m.FailedAttempts)
			assert.True(t, m.Active(srv.Now()), "grace after attempt %d", attempt)
		} else {
			assert.False(t, m.Active(srv.Now()), "no access after attempt %d", attempt)
		}
	}
	assert.Empty(t, srv.Failed(), "billing answered every delivery")
}

// Advance is safe alongside API requests and simulator steps; it runs one
// at a time, so events come in time order.
func TestAdvanceConcurrent(t *testing.T) {
	srv, sc := clkSetup(t)
	subID, c := subscribeTo(t, srv, sc, "price_week")
	t0 := srv.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 10 {
				srv.Advance(24 * time.Hour)
			}
		}()
		go func() {
			defer wg.Done()
			for range 10 {
				_, err := sc.V1Subscriptions.Retrieve(ctx, subID, nil)
				assert.NoError(t, err)
				_, _ = srv.NextEvent()
				assert.NoError(t, testcatalog.SetCardFailing(srv, c, false))
			}
		}()
	}
	wg.Wait()
	assert.WithinDuration(t, t0.Add(40*24*time.Hour), srv.Now(), 10*time.Second)
	assert.IsNonDecreasing(t, createdTimes(srv.Events()))
	invoices := srv.InvoicesOf(subID)
	assert.Len(t, invoices, 6, "five weekly renewals in 40 days")
	for _, id := range invoices {
		assert.Equal(t, stripe.InvoiceStatusPaid, srv.Invoice(id).Status, id)
	}
}

// Advance runs a month of Stripe's work; the events reach the endpoints.
func ExampleStripe_NextEvent() {
	srv := billingtest.New(billingtest.Options{Start: time.Date(2025, 9, 1, 12, 0, 0, 0, time.UTC)})
	defer srv.Close()
	srv.AddPrice("price_month", "month", 1000)
	sc := apiClient(srv)
	cs, err := sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{
		Mode: stripe.String("subscription"), SuccessURL: stripe.String("https://app.test/ok"),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_month"), Quantity: stripe.Int64(1)}},
	})
	if err != nil {
		panic(err)
	}
	if _, err := testcatalog.Pay(srv, cs.ID); err != nil {
		panic(err)
	}
	n := len(srv.Events())
	next, _ := srv.NextEvent()
	fmt.Println("next:", next.Format(time.DateOnly))
	srv.Advance(31 * 24 * time.Hour)
	for _, ev := range srv.Events()[n:] {
		fmt.Println(time.Unix(ev.Created, 0).UTC().Format(time.TimeOnly), ev.Type)
	}
	// Output:
	// next: 2025-09-28
	// 12:00:00 invoice.upcoming
	// 12:00:00 customer.subscription.updated
	// 12:00:00 invoice.created
	// 13:00:00 invoice.finalized
	// 13:00:00 payment_intent.created
	// 13:00:00 charge.succeeded
	// 13:00:00 payment_intent.succeeded
	// 13:00:00 invoice.paid
	// 13:00:00 invoice.payment_succeeded
}

// monthsAfter is n calendar months after Unix second t: the renewals of a
// monthly price anchored at t (whose day of the month every month has).
func monthsAfter(t int64, n int) int64 { return time.Unix(t, 0).UTC().AddDate(0, n, 0).Unix() }
