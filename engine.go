package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v82"
)

// This file is the write engine: every write of what Stripe says (webhook
// events, SyncCheckout, Sync, CatchUp, Replay) goes through it. Each runs
// one Store transaction that locks the user's records, reads the record,
// asks reconcile.go what to do, and saves; when reconcile cannot order
// two states the transaction is rolled back and the object is fetched
// from Stripe (never inside a transaction) and reconciled in turn.

// errUnknownCustomer makes an Apply roll back so the event is parked.
type errUnknownCustomer struct{ customer string }

func (e *errUnknownCustomer) Error() string {
	return fmt.Sprintf("no user is linked to Stripe customer %q", e.customer)
}

// errFetch rolls back a write whose order against the stored state
// cannot be told (or that needs the latest invoice's facts): the
// subscription is fetched instead.
var errFetch = errors.New("billing: fetch needed")

// maxRaces bounds how often a transaction is run again after its store
// reported ErrRecordRaced (another transaction created the record it was
// creating): the second run finds the record, so one rerun is the rule.
const maxRaces = 5

// apply runs fn in one store transaction recorded under eventID, and runs
// it again when the store reports that a record fn created was created
// concurrently.
func (b *Billing) apply(ctx context.Context, eventID string, fn func(ctx context.Context, tx Tx) error) error {
	for i := 0; ; i++ {
		err := b.store.Apply(ctx, eventID, fn)
		if !errors.Is(err, ErrRecordRaced) || i+1 == maxRaces {
			return err
		}
	}
}

// userOf returns the user linked to a customer inside a transaction, or
// an *errUnknownCustomer, and locks the user's records.
func userOf(ctx context.Context, tx Tx, customer string) (string, error) {
	if customer == "" {
		return "", &errUnknownCustomer{customer: customer}
	}
	u, err := tx.UserID(ctx, customer)
	if errors.Is(err, ErrNotFound) {
		return "", &errUnknownCustomer{customer: customer}
	}
	return u, err
}

// applyRefetched applies an event rendered at another API version (the
// account's default, as /v1/events renders them for CatchUp) without
// reading its object, whose layout may differ: the object is fetched
// anew, at this library's version, and applied as a fetched object.
func (b *Billing) applyRefetched(ctx context.Context, ev *wireEvent) error {
	obj := ev.Data.Object
	if obj.ID == "" {
		return &errUndecodable{what: "object", err: ev.objectErr}
	}
	switch ev.Type {
	case evInvoicePaid, evInvoiceFailed:
		var inv *stripe.Invoice
		err := b.call(ctx, read, func(ctx context.Context) (err error) {
			inv, err = b.sc.V1Invoices.Retrieve(ctx, obj.ID, nil)
			return err
		})
		if err != nil {
			return newStripeError("retrieve invoice "+obj.ID, err)
		}
		var w wireInvoice
		if err := decodeResponse(inv.LastResponse, &w); err != nil {
			return fmt.Errorf("billing: retrieve invoice %s: %w", obj.ID, err)
		}
		return b.applyInvoice(ctx, ev, &w)
	case evCheckoutDone, evCheckoutAsyncOK:
		p := &stripe.CheckoutSessionRetrieveParams{}
		p.AddExpand("line_items")
		var s *stripe.CheckoutSession
		err := b.call(ctx, read, func(ctx context.Context) (err error) {
			s, err = b.sc.V1CheckoutSessions.Retrieve(ctx, obj.ID, p)
			return err
		})
		if err != nil {
			return newStripeError("retrieve checkout session "+obj.ID, err)
		}
		var w wireSession
		if err := decodeResponse(s.LastResponse, &w); err != nil {
			return fmt.Errorf("billing: retrieve checkout session %s: %w", obj.ID, err)
		}
		return b.applyCheckout(ctx, ev, &w)
	case evChargeRefunded, evDisputeCreated, evDisputeClosed:
		var w wireObject
		err := b.call(ctx, read, func(ctx context.Context) error {
			var resp *stripe.APIResponse
			if ev.Type == evChargeRefunded {
				ch, err := b.sc.V1Charges.Retrieve(ctx, obj.ID, nil)
				if err != nil {
					return err
				}
				resp = ch.LastResponse
			} else {
				d, err := b.sc.V1Disputes.Retrieve(ctx, obj.ID, nil)
				if err != nil {
					return err
				}
				resp = d.LastResponse
			}
			return decodeResponse(resp, &w)
		})
		if err != nil {
			return newStripeError("retrieve "+obj.ID, err)
		}
		if ev.Type == evChargeRefunded {
			return b.applyRefund(ctx, ev, &w)
		}
		return b.applyDispute(ctx, ev, &w)
	default:
		return b.applyFetched(ctx, ev.ID, obj.ID, time.Unix(ev.Created, 0), b.eventRecorder(ev))
	}
}

// applySubscriptionEvent applies a customer.subscription.* payload: if it
// is newer than what is stored it wins; if the order cannot be told, the
// subscription is fetched; if it is older, the event is recorded and
// nothing changes.
func (b *Billing) applySubscriptionEvent(ctx context.Context, ev *wireEvent, sub *wireSubscription) error {
	f := subFact{Sub: subscriptionFacts(sub, time.Unix(ev.Created, 0))}
	live := wentLive(ev)
	rec := b.eventRecorder(ev)
	// An event that may make a second live subscription, or whose changes
	// are recorded, takes the general way: the one-statement write does
	// not read the record it replaces.
	if !live && (rec == nil || !rec.write) {
		if done, err := b.applyNewer(ctx, ev.ID, f.Sub, rec); done || err != nil {
			return err
		}
	}
	var second siblings
	err := b.applyWith(ctx, ev.ID, rec, func(ctx context.Context, tx Tx) error {
		second = siblings{}
		if !live {
			return putSubscription(ctx, tx, f, rec)
		}
		return putLiveSubscription(ctx, tx, f, &second, rec)
	})
	if err == nil {
		second.report(b, ev.Data.Object.ID, string(ev.Data.Object.Customer), ev.ID)
	}
	if errors.Is(err, errFetch) {
		if b.tel != nil {
			b.tel.fetches.Add(ctx, 1)
		}
		return b.applyFetched(ctx, ev.ID, f.Sub.ID, f.Sub.Version, rec)
	}
	return err
}

// applyNewer is the one-statement path of a payload whose state is newer
// than the stored one, on a ConditionalStore: done when it saved (or the
// event is a duplicate). Whatever it does not save (an older state, a
// tie, an unknown customer, a past_due state that may need its invoice's
// facts) goes the general way, through reconcile.
func (b *Billing) applyNewer(ctx context.Context, eventID string, s Subscription, rec *recorder) (done bool, err error) {
	cs, ok := b.store.(ConditionalStore)
	if !ok || s.Status == SubscriptionPastDue || unstorableSub(s) != "" {
		return false, nil
	}
	s.OrderKey = orderKey(s)
	if rec != nil {
		// The change is to be told (logged, counted), not recorded: a
		// store that says what it replaced keeps the one statement.
		pr, ok := b.store.(PreviousReporter)
		if !ok {
			return false, nil
		}
		r, err := pr.ApplyNewerReporting(ctx, eventID, s)
		switch {
		case err != nil:
			return false, fmt.Errorf("save subscription %s: %w", s.ID, err)
		case r.Duplicate:
			return true, ErrDuplicateEvent
		case !r.Saved:
			return false, nil
		}
		after := s
		after.UserID = r.UserID
		if r.Found {
			after.Invoice = r.Previous.Invoice
		}
		rec.run, rec.paid = rec.run[:0], 0
		if err := rec.subscription(ctx, nil, r.Previous, r.Found, after, invoiceNews{}); err != nil {
			return true, err // never: nothing is written without a transaction
		}
		b.tell(ctx, rec)
		return true, nil
	}
	saved, dup, err := cs.ApplyNewer(ctx, eventID, s)
	switch {
	case err != nil:
		return false, fmt.Errorf("save subscription %s: %w", s.ID, err)
	case dup:
		return true, ErrDuplicateEvent
	}
	return saved, nil
}

// putSubscription reconciles a subscription fact with the stored record
// and saves what reconcileSubscription decides, or returns errFetch; rec
// records the changes of the write (nil: none).
func putSubscription(ctx context.Context, tx Tx, f subFact, rec *recorder) error {
	if rec == nil {
		_, _, _, err := reconcileAndSave(ctx, tx, f)
		return err
	}
	if err := lockUserFirst(ctx, tx, f.Sub); err != nil {
		return err
	}
	before, found, after, err := reconcileAndSave(ctx, tx, f)
	if err != nil {
		return err
	}
	return rec.subscription(ctx, tx, before, found, after, f.News)
}

// lockUserFirst locks the user of a subscription's customer before its
// record is read, as the invoice path orders its locks: the changes of
// one user are then recorded one transaction at a time, in the order
// they happen, and two writes of one user's subscriptions never wait on
// each other's locks in opposite orders. An unstorable subscription is
// refused before any statement (it is parked).
func lockUserFirst(ctx context.Context, tx Tx, s Subscription) error {
	if bad := unstorableSub(s); bad != "" {
		return &errUnstorable{bad}
	}
	if _, err := tx.UserID(ctx, s.CustomerID); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("lock the user of %s: %w", s.CustomerID, err)
	}
	return nil
}

// reconcileAndSave is putSubscription that also returns the record as it
// was (found false: none) and as it is now.
func reconcileAndSave(ctx context.Context, tx Tx, f subFact) (cur Subscription, found bool, now Subscription, err error) {
	if bad := unstorableSub(f.Sub); bad != "" {
		return cur, false, now, &errUnstorable{bad}
	}
	if f.Invoice != nil && !storable(f.Invoice.ID) {
		return cur, false, now, &errUnstorable{fmt.Sprintf("cannot store the invoice %q", f.Invoice.ID)}
	}
	// The record, read for update, locks what this transaction writes and
	// names its user; a subscription new to billing finds its user by its
	// customer, and locks that user.
	cur, found, err = tx.Subscription(ctx, f.Sub.ID)
	if err != nil {
		return cur, false, now, fmt.Errorf("read subscription %s: %w", f.Sub.ID, err)
	}
	if found && cur.UserID != "" && cur.CustomerID == f.Sub.CustomerID {
		f.Sub.UserID = cur.UserID
	} else {
		user, err := userOf(ctx, tx, f.Sub.CustomerID)
		if err != nil {
			return cur, found, now, err
		}
		f.Sub.UserID = user
	}
	d := reconcileSubscription(cur, found, f)
	switch {
	case d.Fetch:
		return cur, found, now, errFetch
	case !d.Write:
		return cur, found, cur, nil
	}
	if err := tx.SaveSubscription(ctx, d.Next); err != nil {
		return cur, found, now, fmt.Errorf("save subscription %s: %w", f.Sub.ID, err)
	}
	return cur, found, d.Next, nil
}

// maxFetches bounds the re-fetches of one subscription while Stripe's
// clock has not passed the stored version's second.
const maxFetches = 3

// applyFetched fetches the subscription with its latest invoice and
// applies it with the response's Date as its version (at least since,
// the version of the fact that asked for the fetch: see fetchedVersion).
// A fetched object that ties the stored version is fetched again once
// Stripe's clock has moved to the next second: only a strictly later
// Date proves it newer.
func (b *Billing) applyFetched(ctx context.Context, eventID, subID string, since time.Time, rec *recorder) error {
	for i := 0; ; i++ {
		f, err := b.fetchSubscription(ctx, subID)
		if err != nil {
			return err
		}
		f.Sub.Version = fetchedVersion(f.Sub.Version, since)
		err = b.applyWith(ctx, eventID, rec, func(ctx context.Context, tx Tx) error {
			return putSubscription(ctx, tx, f, rec)
		})
		if !errors.Is(err, errFetch) {
			return err
		}
		if i+1 == maxFetches {
			return fmt.Errorf("billing: subscription %s: Stripe's Date stayed at the stored version %s after %d fetches", subID, f.Sub.Version.Format(time.RFC3339), maxFetches)
		}
		if err := b.waitNextSecond(ctx); err != nil {
			return err
		}
	}
}

// fetchSubscription retrieves a subscription with its latest invoice. The
// version is the response's Date header: Stripe's time, never ours.
func (b *Billing) fetchSubscription(ctx context.Context, id string) (subFact, error) {
	p := &stripe.SubscriptionRetrieveParams{}
	p.AddExpand("latest_invoice")
	var sub *stripe.Subscription
	err := b.call(ctx, read, func(ctx context.Context) (err error) {
		sub, err = b.sc.V1Subscriptions.Retrieve(ctx, id, p)
		return err
	})
	if err != nil {
		return subFact{}, newStripeError("retrieve subscription "+id, err)
	}
	version, err := responseTime(sub.LastResponse)
	if err != nil {
		return subFact{}, fmt.Errorf("billing: retrieve subscription %s: %w", id, err)
	}
	var w wireSubscription
	if err := decodeResponse(sub.LastResponse, &w); err != nil {
		return subFact{}, fmt.Errorf("billing: retrieve subscription %s: %w", id, err)
	}
	return fetchedFact(&w, version), nil
}

// decodeResponse reads a response's raw JSON into one of billing's wire
// structs: the same decoder as for event payloads.
func decodeResponse(r *stripe.APIResponse, v any) error {
	if r == nil || len(r.RawJSON) == 0 {
		return errors.New("the response has no body to read")
	}
	if err := json.Unmarshal(r.RawJSON, v); err != nil {
		return fmt.Errorf("read the response: %w", err)
	}
	return nil
}

// responseTime reads Stripe's Date header.
func responseTime(r *stripe.APIResponse) (time.Time, error) {
	if r == nil || r.Header.Get("Date") == "" {
		return time.Time{}, errors.New("response has no Date header to version it by")
	}
	t, err := http.ParseTime(r.Header.Get("Date"))
	if err != nil {
		return time.Time{}, fmt.Errorf("response Date header: %w", err)
	}
	return t.UTC(), nil
}

// applyInvoice stores an invoice's payment facts on its subscription's
// record. It makes no Stripe call: the subscription's own state arrives
// with its own customer.subscription.* events.
func (b *Billing) applyInvoice(ctx context.Context, ev *wireEvent, inv *wireInvoice) error {
	subID := invoiceSubscriptionID(inv)
	customer := string(inv.Customer)
	facts := invoiceFacts(inv)
	if bad := unstorable("subscription", subID, "customer", customer, "invoice", facts.ID); bad != "" {
		return &errUnstorable{"cannot store the " + bad}
	}
	rec := b.eventRecorder(ev)
	return b.applyWith(ctx, ev.ID, rec, func(ctx context.Context, tx Tx) error {
		if subID == "" {
			return nil // an invoice outside subscriptions: nothing to keep
		}
		user, err := userOf(ctx, tx, customer)
		if err != nil {
			return err
		}
		cur, found, err := tx.Subscription(ctx, subID)
		if err != nil {
			return fmt.Errorf("read subscription %s: %w", subID, err)
		}
		next, write := reconcileInvoice(cur, found, subID, user, customer, facts)
		if !write {
			return nil
		}
		if err := tx.SaveSubscription(ctx, next); err != nil {
			return fmt.Errorf("save invoice %s of subscription %s: %w", inv.ID, subID, err)
		}
		return rec.subscription(ctx, tx, cur, found, next, newsOf(inv))
	})
}

// applyCheckout links nothing new (the customer was linked before the
// session existed) but grants one-time purchases once paid.
func (b *Billing) applyCheckout(ctx context.Context, ev *wireEvent, s *wireSession) error {
	customer := string(s.Customer)
	if bad := unstorable("customer", customer, "client_reference_id", s.ClientReferenceID); bad != "" {
		return &errUnstorable{"cannot store the " + bad}
	}
	paid := s.PaymentStatus == string(PaymentPaid) || ev.Type == evCheckoutAsyncOK
	var grant *Grant
	if s.Mode == string(ModePayment) && paid {
		g, err := b.grantOf(ctx, s, time.Unix(ev.Created, 0))
		if err != nil {
			return err
		}
		grant = &g
	}
	var user string
	rec := b.eventRecorder(ev)
	err := b.applyWith(ctx, ev.ID, rec, func(ctx context.Context, tx Tx) error {
		var err error
		user, err = userOf(ctx, tx, customer)
		if customer == "" && grant != nil && s.ClientReferenceID != "" {
			// A guest purchase (a Payment Link, say) names its user only
			// by client_reference_id: the payer pays for that user.
			user = s.ClientReferenceID
			err = tx.LockUser(ctx, user)
		}
		if err != nil || grant == nil {
			return err
		}
		g := *grant
		g.UserID = user
		added, err := tx.AddGrant(ctx, g)
		if err != nil {
			return fmt.Errorf("write grant %s: %w", s.ID, err)
		}
		if added {
			return rec.record(ctx, tx, grantChange(g))
		}
		return nil
	})
	if err == nil && s.ClientReferenceID != "" && s.ClientReferenceID != user {
		b.log.Warn("checkout session's client_reference_id differs from the customer's user; the customer link wins",
			"session", s.ID, "customer", customer)
	}
	return err
}

// grantOf builds the grant of a paid payment-mode session, fetching its
// line items first when the session does not carry billing's metadata
// (a Payment Link's, say) and they are not expanded.
func (b *Billing) grantOf(ctx context.Context, s *wireSession, at time.Time) (Grant, error) {
	if s.Metadata[metaPriceID] == "" && s.LineItems == nil {
		p := &stripe.CheckoutSessionRetrieveParams{}
		p.AddExpand("line_items")
		var full *stripe.CheckoutSession
		err := b.call(ctx, read, func(ctx context.Context) (err error) {
			full, err = b.sc.V1CheckoutSessions.Retrieve(ctx, s.ID, p)
			return err
		})
		if err != nil {
			return Grant{}, newStripeError("retrieve checkout session "+s.ID, err)
		}
		var w wireSession
		if err := decodeResponse(full.LastResponse, &w); err != nil {
			return Grant{}, fmt.Errorf("billing: retrieve checkout session %s: %w", s.ID, err)
		}
		withItems := *s
		withItems.LineItems = w.LineItems
		s = &withItems
	}
	g, known, err := grantFacts(s, at, b.plans)
	if err != nil {
		return Grant{}, err
	}
	if !known {
		b.log.Warn("one-time purchase of a price not in Plans: granted with no credits", "session", s.ID, "price", g.PriceID)
	}
	return g, nil
}

// addGrant adds a one-time grant for a user outside any event (the
// return page's SyncCheckout).
func (b *Billing) addGrant(ctx context.Context, g Grant) error {
	rec := b.recorder("")
	return b.applyWith(ctx, "", rec, func(ctx context.Context, tx Tx) error {
		if err := tx.LockUser(ctx, g.UserID); err != nil {
			return err
		}
		added, err := tx.AddGrant(ctx, g)
		if err != nil || !added {
			return err
		}
		return rec.record(ctx, tx, grantChange(g))
	})
}

// linkCustomer links a user to a Stripe customer in a transaction of its
// own.
func (b *Billing) linkCustomer(ctx context.Context, userID, customerID string) error {
	return b.apply(ctx, "", func(ctx context.Context, tx Tx) error {
		return tx.LinkCustomer(ctx, userID, customerID)
	})
}
