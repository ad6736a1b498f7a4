package billing

import (
	"context"
	"fmt"
	"math/big"
	"strconv"
	"time"

	"github.com/stripe/stripe-go/v82"
)

// This file applies refunds and disputes. A refund is kept per payment
// (its PaymentIntent), apart from the grant it may undo, as the amount
// refunded so far: that only grows, so charge.refunded events in any
// order keep the greatest. Membership takes a one-time purchase's credits
// back in proportion (Config.KeepCreditsOnRefund keeps them). A dispute
// changes no stored fact: access stays Stripe's subscription status; it
// is a change for the app's hooks.

const (
	evChargeRefunded = "charge.refunded"
	evDisputeCreated = "charge.dispute.created"
	evDisputeClosed  = "charge.dispute.closed"
)

// The kinds of change refunds and disputes record.
const (
	// ChangeRefunded: more of a payment was refunded; Amount is the total
	// refunded so far, RefundedNow what this refund added.
	ChangeRefunded ChangeKind = "refunded"
	// ChangeDisputeOpened: the customer disputed a payment.
	ChangeDisputeOpened ChangeKind = "dispute_opened"
	// ChangeDisputeClosed: a dispute was decided; DisputeStatus is its
	// outcome (won, lost, warning_closed, ...).
	ChangeDisputeClosed ChangeKind = "dispute_closed"
)

// applyRefund keeps the refunded amount of a charge's payment.
func (b *Billing) applyRefund(ctx context.Context, ev *wireEvent, ch *wireObject) error {
	pi, customer := string(ch.PaymentIntent), string(ch.Customer)
	if bad := unstorable("charge", ch.ID, "payment intent", pi, "customer", customer, "currency", ch.Currency); bad != "" {
		return &errUnstorable{"cannot store the " + bad}
	}
	if pi == "" || ch.AmountRefunded <= 0 {
		return b.apply(ctx, ev.ID, func(context.Context, Tx) error { return nil }) // nothing billing keeps
	}
	rec := b.eventRecorder(ev)
	at := time.Unix(ev.Created, 0).UTC()
	return b.applyWith(ctx, ev.ID, rec, func(ctx context.Context, tx Tx) error {
		user, err := userOf(ctx, tx, customer)
		if err != nil {
			return err
		}
		cur, found, err := tx.Refund(ctx, pi)
		if err != nil {
			return fmt.Errorf("read refund of %s: %w", pi, err)
		}
		if found && cur.Amount >= ch.AmountRefunded {
			return nil // an older or repeated refund fact
		}
		next := Refund{PaymentIntentID: pi, ChargeID: ch.ID, UserID: user, CustomerID: customer,
			Amount: ch.AmountRefunded, Currency: ch.Currency, Version: at}
		if err := tx.SaveRefund(ctx, next); err != nil {
			return fmt.Errorf("save refund of %s: %w", pi, err)
		}
		return rec.record(ctx, tx, Change{
			Kind: ChangeRefunded, Key: string(ChangeRefunded) + "/" + pi + "/" + strconv.FormatInt(next.Amount, 10),
			UserID: user, CustomerID: customer, PaymentIntentID: pi, ChargeID: ch.ID,
			Amount: next.Amount, RefundedNow: next.Amount - cur.Amount, Currency: ch.Currency, At: at,
		})
	})
}

// applyDispute records a dispute's change. The dispute names its charge,
// whose customer names the user: with hooks on, the charge is fetched.
func (b *Billing) applyDispute(ctx context.Context, ev *wireEvent, d *wireObject) error {
	rec := b.eventRecorder(ev)
	charge := string(d.Charge)
	if bad := unstorable("dispute", d.ID, "charge", charge, "payment intent", string(d.PaymentIntent), "currency", d.Currency,
		"status", d.Status, "reason", d.Reason); bad != "" {
		return &errUnstorable{"cannot store the " + bad}
	}
	if rec == nil || charge == "" {
		return b.apply(ctx, ev.ID, func(context.Context, Tx) error { return nil }) // nothing to keep
	}
	var ch *stripe.Charge
	err := b.call(ctx, read, func(ctx context.Context) (err error) {
		ch, err = b.sc.V1Charges.Retrieve(ctx, charge, nil)
		return err
	})
	if err != nil {
		return newStripeError("retrieve charge "+charge, err)
	}
	customer := ""
	if ch.Customer != nil {
		customer = ch.Customer.ID
	}
	if !storable(customer) {
		return &errUnstorable{fmt.Sprintf("cannot store the customer %q", customer)}
	}
	kind := ChangeDisputeOpened
	if ev.Type == evDisputeClosed {
		kind = ChangeDisputeClosed
	}
	return b.applyWith(ctx, ev.ID, rec, func(ctx context.Context, tx Tx) error {
		user, err := userOf(ctx, tx, customer)
		if err != nil {
			return err
		}
		return rec.record(ctx, tx, Change{
			Kind: kind, Key: string(kind) + "/" + d.ID, UserID: user, CustomerID: customer,
			PaymentIntentID: string(d.PaymentIntent), ChargeID: charge, DisputeID: d.ID, DisputeStatus: d.Status,
			DisputeReason: d.Reason, Amount: d.Amount, Currency: d.Currency, At: time.Unix(ev.Created, 0).UTC(),
		})
	})
}

// creditsLeft is what a grant still gives once a refund has taken back
// its share: credits × refunded / paid, rounded down; all of them once
// all is refunded.
func creditsLeft(g Grant, refunded int64) int64 {
	if refunded <= 0 || g.Credits <= 0 {
		return g.Credits
	}
	if g.AmountTotal <= 0 || refunded >= g.AmountTotal {
		return 0
	}
	taken := new(big.Int).Mul(big.NewInt(g.Credits), big.NewInt(refunded))
	taken.Quo(taken, big.NewInt(g.AmountTotal))
	return g.Credits - taken.Int64()
}
