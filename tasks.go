package billing

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"strings"

	"github.com/stripe/stripe-go/v82"
)

// This file holds the Stripe writes billing makes because of a change:
// expiring a user's other open Checkout Sessions once a subscription is
// live, and canceling and refunding a second subscription. They are
// recorded in the outbox like the app's changes, in the transaction that
// stores the facts, and run from the dispatcher: never inside a webhook's
// transaction, retried like hooks, dead-lettered and replayable alike.

// SecondSubscriptionPolicy is what billing does about a second live
// subscription the app did not allow ([Config].SecondSubscription).
type SecondSubscriptionPolicy int

const (
	// ReportSecond logs a WARN line and records ChangeSecondSubscription.
	ReportSecond SecondSubscriptionPolicy = iota
	// CancelSecond also cancels the subscription that went live second,
	// at once, and refunds what its latest invoice charged. It runs from
	// the dispatcher ([Billing.RunHooks]), as hooks do.
	CancelSecond
)

// Billing's own kinds of outbox entries: run by billing, never given to
// the app's handler.
const (
	taskPrefix                    = "billing."
	taskExpireSessions ChangeKind = taskPrefix + "expire_sessions"
	taskCancelSecond   ChangeKind = taskPrefix + "cancel_second"
)

// tasks returns the Stripe writes the changes cs call for.
func (r *recorder) tasks(cs []Change) []Change {
	var out []Change
	for _, c := range cs {
		switch {
		case c.Kind == ChangeActivated:
			out = append(out, task(taskExpireSessions, c))
		case c.Kind == ChangeSecondSubscription && r.cancelSecond:
			out = append(out, task(taskCancelSecond, c))
		}
	}
	return out
}

// task is the internal entry of a change.
func task(kind ChangeKind, c Change) Change {
	return Change{Kind: kind, Key: string(kind) + "/" + c.SubscriptionID, UserID: c.UserID, CustomerID: c.CustomerID,
		SubscriptionID: c.SubscriptionID, At: c.At, OtherSubscriptions: c.OtherSubscriptions}
}

// runTask makes one of billing's own Stripe writes.
func (b *Billing) runTask(ctx context.Context, c Change) error {
	switch c.Kind {
	case taskExpireSessions:
		return b.expireOtherSessions(ctx, c.CustomerID)
	case taskCancelSecond:
		return b.cancelAndRefund(ctx, c.SubscriptionID, c.OtherSubscriptions)
	}
	return fmt.Errorf("billing: unknown task %q", c.Kind)
}

// expireOtherSessions expires the customer's open subscription-mode
// sessions, except those the app made with AllowAnotherSubscription: a
// subscription is live, so another Checkout would be a second one.
func (b *Billing) expireOtherSessions(ctx context.Context, customer string) error {
	open, err := b.openSubscriptionSessions(ctx, customer)
	if err != nil {
		return err
	}
	for _, s := range open {
		if s.Metadata[metaAllowAnother] == "true" {
			continue
		}
		if err := b.expireSession(ctx, s.ID); err != nil {
			return err
		}
		b.log.Info("billing: expired an open checkout session: the customer has a live subscription", "session", s.ID, "customer", customer)
	}
	return nil
}

// cancelAndRefund cancels a second subscription at once and refunds the
// payments of its latest invoice (in basil an invoice's PaymentIntents
// are its invoice payments). Every write has an idempotency key of its
// own, and what is done already (canceled, refunded) is skipped, so a
// retry after a failure halfway does the rest only.
//
// The siblings it was found beside are read at Stripe first: a record
// can be stale (its cancellation's webhook not in yet, or a sync that
// has not reached it), and a subscription is canceled only while one of
// them is still live at Stripe; otherwise it is the user's only one, and
// is left alone. (Tasks recorded without their siblings skip the check.)
func (b *Billing) cancelAndRefund(ctx context.Context, subID string, siblings []string) error {
	p := &stripe.SubscriptionRetrieveParams{}
	var sub *stripe.Subscription
	err := b.call(ctx, read, func(ctx context.Context) (err error) {
		sub, err = b.sc.V1Subscriptions.Retrieve(ctx, subID, p)
		return err
	})
	if err != nil {
		return newStripeError("retrieve subscription "+subID, err)
	}
	if sub.Status != stripe.SubscriptionStatusCanceled && sub.Status != stripe.SubscriptionStatusIncompleteExpired {
		if len(siblings) > 0 {
			live, err := b.anyLive(ctx, siblings)
			if err != nil {
				return err
			}
			if !live {
				b.log.Warn("billing: a subscription reported second was not canceled: the others ended at Stripe",
					"subscription", subID, "others", siblings)
				return nil
			}
		}
		cp := &stripe.SubscriptionCancelParams{}
		cp.SetIdempotencyKey("billing-cancel-second-" + subID)
		err := b.call(ctx, write, func(ctx context.Context) (err error) {
			_, err = b.sc.V1Subscriptions.Cancel(ctx, subID, cp)
			return err
		})
		if err != nil {
			return newStripeError("cancel second subscription "+subID, err)
		}
	}
	if sub.LatestInvoice == nil || sub.LatestInvoice.ID == "" {
		return nil
	}
	inv := sub.LatestInvoice.ID
	lp := &stripe.InvoicePaymentListParams{Invoice: stripe.String(inv)}
	lp.Limit = stripe.Int64(100)
	page := func(ctx context.Context, after string) iter.Seq2[*stripe.InvoicePayment, error] {
		startAfter(&lp.ListParams, after)
		return iter.Seq2[*stripe.InvoicePayment, error](b.sc.V1InvoicePayments.List(ctx, lp))
	}
	refunded := 0
	for ip, err := range list(ctx, b, page, func(ip *stripe.InvoicePayment) string { return ip.ID }) {
		if err != nil {
			return newStripeError("list the payments of invoice "+inv, err)
		}
		if ip.Status != "paid" || ip.Payment == nil || ip.Payment.PaymentIntent == nil || ip.Payment.PaymentIntent.ID == "" {
			continue
		}
		pi := ip.Payment.PaymentIntent.ID
		rp := &stripe.RefundCreateParams{PaymentIntent: stripe.String(pi), Reason: stripe.String(string(stripe.RefundReasonDuplicate))}
		rp.AddMetadata("billing_reason", "second_subscription")
		rp.AddMetadata("billing_subscription", subID)
		rp.SetIdempotencyKey("billing-refund-second-" + subID + "-" + pi)
		err := b.call(ctx, write, func(ctx context.Context) error {
			_, err := b.sc.V1Refunds.Create(ctx, rp)
			return err
		})
		var se *stripe.Error
		if errors.As(err, &se) && se.HTTPStatusCode == http.StatusBadRequest && strings.Contains(string(se.Code), "already_refunded") {
			continue // refunded before (by an earlier try, or by hand)
		}
		if err != nil {
			return newStripeError("refund "+pi+" of second subscription "+subID, err)
		}
		refunded++
	}
	b.log.Warn("billing: canceled a second live subscription and refunded it", "subscription", subID, "invoice", inv, "refunds", refunded)
	return nil
}

// anyLive reports whether one of the subscriptions is live at Stripe.
func (b *Billing) anyLive(ctx context.Context, ids []string) (bool, error) {
	for _, id := range ids {
		var sub *stripe.Subscription
		err := b.call(ctx, read, func(ctx context.Context) (err error) {
			sub, err = b.sc.V1Subscriptions.Retrieve(ctx, id, &stripe.SubscriptionRetrieveParams{})
			return err
		})
		if err != nil {
			return false, newStripeError("retrieve subscription "+id, err)
		}
		if SubscriptionStatus(sub.Status).Live() {
			return true, nil
		}
	}
	return false, nil
}
