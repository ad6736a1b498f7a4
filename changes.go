package billing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file decides which changes a write records: a pure function of the
// stored record before and after the write (subscriptionChanges), and the
// recorder that puts them in the outbox in the write's own transaction.
// The stored state only moves forward (reconcile.go), so a transition of
// it happens once; each change's key makes a second recording of it a
// no-op all the same.

// ChangeKind names a kind of [Change].
type ChangeKind string

// The kinds of change billing records. The README names each one's
// trigger.
const (
	// ChangeActivated: a subscription enters a live status with access
	// (trialing, active, or past_due within the grace attempts) from
	// none or incomplete: once per subscription.
	ChangeActivated ChangeKind = "activated"
	// ChangeRenewed: an invoice of a new period (billing reason
	// subscription_cycle) is paid.
	ChangeRenewed ChangeKind = "renewed"
	// ChangePlanChanged: the tier or price of a live subscription changed.
	ChangePlanChanged ChangeKind = "plan_changed"
	// ChangeTrialEnding: Stripe's customer.subscription.trial_will_end,
	// once per (subscription, trial end).
	ChangeTrialEnding ChangeKind = "trial_ending"
	// ChangePaymentFailed: an attempt to pay an invoice failed, once per
	// (invoice, attempt), with the next attempt when Stripe will retry.
	ChangePaymentFailed ChangeKind = "payment_failed"
	// ChangeAccessLocked: the membership lost access for non-payment
	// (past_due beyond the grace attempts, or unpaid).
	ChangeAccessLocked ChangeKind = "access_locked"
	// ChangeRecovered: a subscription that was failing (past_due or
	// unpaid) is paid again.
	ChangeRecovered ChangeKind = "recovered"
	// ChangeCancellationScheduled: a live subscription was set to end (at
	// its period's end, or at a chosen time).
	ChangeCancellationScheduled ChangeKind = "cancellation_scheduled"
	// ChangeCancellationUndone: a scheduled cancellation was cleared.
	ChangeCancellationUndone ChangeKind = "cancellation_undone"
	// ChangeEnded: a subscription was canceled (its final status).
	ChangeEnded ChangeKind = "ended"
	// ChangePaused: a subscription entered status paused.
	ChangePaused ChangeKind = "paused"
	// ChangeResumed: a subscription left status paused for a live one.
	ChangeResumed ChangeKind = "resumed"
	// ChangeCreditsGranted: a one-time purchase was granted.
	ChangeCreditsGranted ChangeKind = "credits_granted"
	// ChangeSecondSubscription: a user the app did not allow two
	// subscriptions has a second live one.
	ChangeSecondSubscription ChangeKind = "second_subscription"
)

// Change is one transition of a user's billing, recorded once and
// delivered to the app's [ChangeHandler] at least once. Fields that do
// not apply to its Kind are zero.
type Change struct {
	// Key is stable across deliveries and unique per change: use it as
	// the idempotency key of what the handler does (an email's, say).
	Key  string     `json:"key"`
	Kind ChangeKind `json:"kind"`

	UserID         string `json:"user_id"`
	CustomerID     string `json:"customer_id,omitempty"`
	SubscriptionID string `json:"subscription_id,omitempty"`
	// EventID is the Stripe event whose application recorded the change;
	// empty when a fetch (Sync, the return page, a re-fetch) did.
	EventID string `json:"event_id,omitempty"`
	// At is Stripe's time of the state the change led to (the event's
	// creation, or the fetch's Date).
	At time.Time `json:"at,omitzero"`
	// RecordedAt is billing's clock when the change was recorded.
	RecordedAt time.Time `json:"recorded_at,omitzero"`

	// Membership is the subscription's membership status after the
	// change, PreviousMembership before it (as Membership computes them:
	// a past_due subscription within its grace attempts is active).
	Membership         Status `json:"membership"`
	PreviousMembership Status `json:"previous_membership"`

	// The subscription after the change, and before it where it tells
	// what changed (plan changed, paused, resumed, recovered, ended).
	Status           SubscriptionStatus `json:"status,omitempty"`
	PreviousStatus   SubscriptionStatus `json:"previous_status,omitempty"`
	Tier             string             `json:"tier,omitempty"`
	PriceID          string             `json:"price_id,omitempty"`
	PreviousTier     string             `json:"previous_tier,omitempty"`
	PreviousPriceID  string             `json:"previous_price_id,omitempty"`
	CurrentPeriodEnd time.Time          `json:"current_period_end,omitzero"`
	TrialEnd         time.Time          `json:"trial_end,omitzero"`
	// CancelAt is when a scheduled cancellation ends access.
	CancelAt time.Time `json:"cancel_at,omitzero"`

	// The invoice of a renewal, a failed payment, a lock or a recovery.
	InvoiceID string `json:"invoice_id,omitempty"`
	// Attempt is the failed attempt's number (1 for the first payment
	// attempt); for access locked, the attempts failed so far.
	Attempt int64 `json:"attempt,omitempty"`
	// NextPaymentAttempt is when Stripe tries again; zero when it will
	// not (the last attempt failed).
	NextPaymentAttempt time.Time `json:"next_payment_attempt,omitzero"`

	// A one-time purchase (credits granted).
	CheckoutSessionID string `json:"checkout_session_id,omitempty"`
	Credits           int64  `json:"credits,omitempty"`
	Amount            int64  `json:"amount,omitempty"`
	Currency          string `json:"currency,omitempty"`

	// A payment refunded or disputed: Amount is the total refunded so far
	// (refunded) or the disputed amount (disputes).
	PaymentIntentID string `json:"payment_intent_id,omitempty"`
	ChargeID        string `json:"charge_id,omitempty"`
	// RefundedNow is what this refund added to the amount refunded.
	RefundedNow   int64  `json:"refunded_now,omitempty"`
	DisputeID     string `json:"dispute_id,omitempty"`
	DisputeStatus string `json:"dispute_status,omitempty"`
	DisputeReason string `json:"dispute_reason,omitempty"`

	// OtherSubscriptions are the user's other live subscriptions (second
	// subscription).
	OtherSubscriptions []string `json:"other_subscriptions,omitempty"`

	// Delivery counts the deliveries of this change: 1 the first time.
	// It is not part of the recorded change.
	Delivery int `json:"-"`
}

// invoiceNews is what an incoming invoice fact says beyond the stored
// facts: why the invoice was made (a new period's is a renewal).
type invoiceNews struct {
	renewal bool
}

// subscriptionChanges returns the changes of one subscription's stored
// record going from before (found false: none) to after, in the order
// they happened. It reads no clock: what it returns depends on the two
// records, the plans and the grace attempts only, so the same write
// always records the same changes.
func (p policy) subscriptionChanges(before Subscription, found bool, after Subscription, news invoiceNews) []Change {
	if !found {
		before = Subscription{}
	}
	var out []Change
	mb, ma := p.one(before, time.Time{}), p.one(after, time.Time{})
	base := Change{
		UserID: after.UserID, CustomerID: after.CustomerID, SubscriptionID: after.ID,
		Status: after.Status, Tier: ma.Tier, PriceID: ma.PriceID, CurrentPeriodEnd: ma.CurrentPeriodEnd,
		At: after.Version, Membership: ma.Status, PreviousMembership: mb.Status,
	}
	add := func(kind ChangeKind, key string, edit func(c *Change)) {
		c := base
		c.Kind, c.Key = kind, string(kind)+"/"+after.ID+key
		if edit != nil {
			edit(&c)
		}
		out = append(out, c)
	}
	stateMoved := after.Status != "" && !after.Version.IsZero() && after.OrderKey != before.OrderKey
	stateKey := "/" + strconv.FormatInt(after.OrderKey, 10)

	// Invoice facts first: a payment is what moves a subscription's
	// status, so its failures, renewal and recovery come before the
	// state they lead to.
	prev := int64(0)
	if before.Invoice.ID == after.Invoice.ID {
		prev = before.Invoice.AttemptCount
	}
	failed := after.Invoice.AttemptCount
	if after.Invoice.Paid {
		failed-- // the last attempt succeeded
	}
	for n := prev + 1; n <= failed && after.Invoice.ID != ""; n++ {
		add(ChangePaymentFailed, "/"+after.Invoice.ID+"/"+strconv.FormatInt(n, 10), func(c *Change) {
			c.InvoiceID, c.Attempt = after.Invoice.ID, n
			if n == failed && !after.Invoice.Paid && !after.Invoice.Closed {
				c.NextPaymentAttempt = after.Invoice.NextPaymentAttempt
			}
		})
	}
	newlyPaid := after.Invoice.Paid && after.Invoice.ID != "" && (before.Invoice.ID != after.Invoice.ID || !before.Invoice.Paid)
	if newlyPaid && news.renewal {
		add(ChangeRenewed, "/"+after.Invoice.ID, func(c *Change) { c.InvoiceID = after.Invoice.ID })
	}
	// Recovered: an invoice paid after failed attempts (however the
	// events of its attempts were ordered), or a failing subscription
	// whose latest invoice is paid.
	if newlyPaid && (after.Invoice.AttemptCount > 1 || paymentFailing(before) && !paymentFailing(after)) {
		add(ChangeRecovered, "/"+after.Invoice.ID, func(c *Change) {
			c.PreviousStatus, c.InvoiceID = before.Status, after.Invoice.ID
		})
	}

	if after.Status == "" {
		return out // only invoice facts: no membership to speak of
	}
	switch {
	case !found || before.Status == "" || before.Status == SubscriptionIncomplete:
		if ma.Status == StatusActive || ma.Status == StatusTrialing {
			add(ChangeActivated, "", nil)
		}
	}
	if ma.Status == StatusPastDue && mb.Status != StatusPastDue {
		add(ChangeAccessLocked, "/"+after.Invoice.ID+stateKey, func(c *Change) {
			c.PreviousStatus, c.InvoiceID, c.Attempt = before.Status, after.Invoice.ID, int64(ma.FailedAttempts)
		})
	}
	if found && before.Status.Live() && after.Status.Live() && (mb.PriceID != ma.PriceID || mb.Tier != ma.Tier) && stateMoved {
		add(ChangePlanChanged, stateKey, func(c *Change) { c.PreviousTier, c.PreviousPriceID = mb.Tier, mb.PriceID })
	}
	scheduled := func(s Subscription) bool {
		return s.Status.Live() && (s.CancelAtPeriodEnd || !s.CancelAt.IsZero())
	}
	switch {
	case scheduled(after) && !scheduled(before):
		add(ChangeCancellationScheduled, stateKey, func(c *Change) { c.CancelAt = cancelTime(after, ma) })
	case scheduled(before) && !scheduled(after) && after.Status.Live():
		add(ChangeCancellationUndone, stateKey, nil)
	}
	switch {
	case after.Status == SubscriptionPaused && before.Status != SubscriptionPaused:
		add(ChangePaused, stateKey, func(c *Change) { c.PreviousStatus = before.Status })
	case before.Status == SubscriptionPaused && after.Status != SubscriptionPaused && after.Status.Live():
		add(ChangeResumed, stateKey, func(c *Change) { c.PreviousStatus = before.Status })
	}
	if after.Status == SubscriptionCanceled && before.Status != SubscriptionCanceled {
		add(ChangeEnded, "", func(c *Change) { c.PreviousStatus = before.Status })
	}
	return out
}

// paymentFailing reports whether a subscription's payment is failing: its
// latest invoice has failed attempts and is neither paid nor closed, or
// Stripe has marked it past_due or unpaid and no payment has come since.
func paymentFailing(s Subscription) bool {
	latest := s.LatestInvoiceID == "" || s.Invoice.ID == s.LatestInvoiceID
	if s.Invoice.Paid && latest {
		return false
	}
	unpaid := s.Invoice.ID != "" && latest && !s.Invoice.Paid && !s.Invoice.Closed && s.Invoice.AttemptCount > 0
	return unpaid || s.Status == SubscriptionPastDue || s.Status == SubscriptionUnpaid
}

// cancelTime is when a scheduled cancellation ends access.
func cancelTime(s Subscription, m Membership) time.Time {
	if s.CancelAtPeriodEnd {
		if s.Status == SubscriptionTrialing && !s.TrialEnd.IsZero() {
			return s.TrialEnd
		}
		if s.CancelAt.IsZero() || m.CurrentPeriodEnd.Before(s.CancelAt) {
			return m.CurrentPeriodEnd
		}
	}
	return s.CancelAt
}

// errNoOutboxTx is returned when a Store implements Outbox but its Tx
// cannot record.
var errNoOutboxTx = errors.New("billing: the Store implements Outbox but its Tx does not implement OutboxTx")

// recorder records the changes of one write in its transaction. A nil
// recorder records nothing (no hooks configured).
type recorder struct {
	p     policy
	event string // the event applied, "" for a fetch of billing's own
	now   func() time.Time
	// trialEnding is set while applying customer.subscription.trial_will_end.
	trialEnding bool
	// app: the app has a handler for its changes; cancelSecond: billing
	// cancels second subscriptions (tasks.go); write: the changes go to
	// the outbox (hooks on), else they are only counted (metrics on).
	app, cancelSecond, write bool
	// The changes and the invoices newly paid of the transaction's
	// current run, counted once it commits.
	run  []Change
	paid int
}

// applyWith is apply for a write whose changes rec records: each run of
// fn starts afresh, and the changes of the run that commits are counted.
func (b *Billing) applyWith(ctx context.Context, eventID string, rec *recorder, fn func(ctx context.Context, tx Tx) error) error {
	if rec == nil {
		return b.apply(ctx, eventID, fn)
	}
	err := b.apply(ctx, eventID, func(ctx context.Context, tx Tx) error {
		rec.run, rec.paid = rec.run[:0], 0
		return fn(ctx, tx)
	})
	if err == nil {
		b.tell(ctx, rec)
	}
	return err
}

// tell counts and logs the changes of a committed write, and empties
// the recorder for the next.
func (b *Billing) tell(ctx context.Context, rec *recorder) {
	b.countChanges(ctx, rec.run, rec.paid)
	b.logChangesOf(ctx, rec)
	rec.run, rec.paid = nil, 0
}

// logChangesOf logs, at INFO, one line per change a committed write made:
// the story of each user's membership.
func (b *Billing) logChangesOf(ctx context.Context, rec *recorder) {
	if !b.logChanges {
		return
	}
	for _, c := range rec.run {
		attrs := []slog.Attr{slog.String("kind", string(c.Kind)), slog.String("user", c.UserID), slog.String("customer", c.CustomerID)}
		if c.SubscriptionID != "" {
			attrs = append(attrs, slog.String("subscription", c.SubscriptionID),
				slog.String("from", c.PreviousMembership.String()), slog.String("to", c.Membership.String()))
		}
		for _, kv := range []struct{ k, v string }{{"tier", c.Tier}, {"invoice", c.InvoiceID}, {"session", c.CheckoutSessionID}, {"payment_intent", c.PaymentIntentID}, {"dispute", c.DisputeID}} {
			if kv.v != "" {
				attrs = append(attrs, slog.String(kv.k, kv.v))
			}
		}
		if c.Attempt > 0 {
			attrs = append(attrs, slog.Int64("attempt", c.Attempt))
		}
		event := rec.event
		if event == "" {
			event = "(fetched)"
		}
		attrs = append(attrs, slog.String("event", event))
		b.log.LogAttrs(ctx, slog.LevelInfo, "billing: membership changed", attrs...)
	}
}

// recorder returns the recorder of a write caused by eventID (empty for
// billing's own fetches), or nil when neither hooks nor metrics are on.
func (b *Billing) recorder(eventID string) *recorder {
	if b.hooks == nil && b.tel == nil && !b.logChanges {
		return nil
	}
	return &recorder{p: b.policy(), event: eventID, now: b.now, write: b.hooks != nil,
		app: b.hooks != nil && b.hooks.cfg.Handler != nil, cancelSecond: b.cfg.SecondSubscription == CancelSecond}
}

// subscription records the changes of a subscription's record going from
// before to after. The caller holds the user's lock.
func (r *recorder) subscription(ctx context.Context, tx Tx, before Subscription, found bool, after Subscription, news invoiceNews) error {
	if r == nil {
		return nil
	}
	cs := r.p.subscriptionChanges(before, found, after, news)
	if after.Invoice.Paid && after.Invoice.ID != "" && (!found || before.Invoice.ID != after.Invoice.ID || !before.Invoice.Paid) {
		r.paid++
	}
	// A trial_will_end that arrives once the trial is over (a late
	// delivery, CatchUp) announces nothing.
	if r.trialEnding && after.UserID != "" && !after.TrialEnd.IsZero() && after.Status == SubscriptionTrialing {
		m := r.p.one(after, time.Time{})
		cs = append(cs, Change{
			Kind: ChangeTrialEnding, Key: string(ChangeTrialEnding) + "/" + after.ID + "/" + strconv.FormatInt(after.TrialEnd.Unix(), 10),
			UserID: after.UserID, CustomerID: after.CustomerID, SubscriptionID: after.ID, Status: after.Status,
			Tier: m.Tier, PriceID: m.PriceID, CurrentPeriodEnd: m.CurrentPeriodEnd, TrialEnd: after.TrialEnd, At: after.Version,
		})
	}
	return r.record(ctx, tx, cs...)
}

// record puts changes in the outbox (a change whose key is there already
// is skipped).
func (r *recorder) record(ctx context.Context, tx Tx, cs ...Change) error {
	if r == nil || len(cs) == 0 {
		return nil
	}
	r.run = append(r.run, cs...)
	if !r.write {
		return nil // counted only
	}
	cs = append(cs, r.tasks(cs)...)
	if !r.app {
		cs = slices.DeleteFunc(cs, func(c Change) bool { return !strings.HasPrefix(string(c.Kind), taskPrefix) })
	}
	otx, ok := tx.(OutboxTx)
	if !ok {
		return errNoOutboxTx
	}
	now := r.now().UTC().Truncate(time.Second)
	for _, c := range cs {
		if c.UserID == "" {
			continue // nobody to tell (never the case for a stored record)
		}
		c.Key = boundedKey(c.Kind, c.Key)
		c.EventID, c.RecordedAt = r.event, now
		c.At = c.At.UTC()
		payload, err := json.Marshal(c)
		if err != nil {
			return fmt.Errorf("billing: encode change %s: %w", c.Key, err)
		}
		queue := c.UserID
		if strings.HasPrefix(string(c.Kind), taskPrefix) {
			// billing's own writes keep an order of their own: a failing
			// app handler never holds back a refund.
			queue = taskPrefix + c.UserID
		}
		if _, err := otx.Record(ctx, OutboxEntry{Key: c.Key, UserID: queue, Kind: string(c.Kind), Payload: payload, RecordedAt: now}); err != nil {
			return fmt.Errorf("record change %s: %w", c.Key, err)
		}
	}
	return nil
}

// maxKeyLen bounds a change's key, so that every store can keep it
// (IDs are up to maxStoredLen bytes each, and a key may join two).
const maxKeyLen = 255

// boundedKey is key, or, when it is longer than maxKeyLen, its kind and
// the SHA-256 of the whole key: as stable and as unique.
func boundedKey(kind ChangeKind, key string) string {
	if len(key) <= maxKeyLen {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return string(kind) + "/sha256:" + hex.EncodeToString(sum[:])
}

// eventRecorder is the recorder of an event's write.
func (b *Billing) eventRecorder(ev *wireEvent) *recorder {
	r := b.recorder(ev.ID)
	if r != nil {
		r.trialEnding = ev.Type == evSubTrialWillEnd
	}
	return r
}

// policyOne is the membership of one record, with no clock (nil
// recorder: zero).
func (r *recorder) policyOne(s Subscription) Membership {
	if r == nil {
		return Membership{}
	}
	return r.p.one(s, time.Time{})
}

// grantChange is the change of a one-time purchase granted.
func grantChange(g Grant) Change {
	return Change{
		Kind: ChangeCreditsGranted, Key: string(ChangeCreditsGranted) + "/" + g.CheckoutSessionID,
		UserID: g.UserID, CustomerID: g.CustomerID, CheckoutSessionID: g.CheckoutSessionID, PriceID: g.PriceID,
		Credits: g.Credits, Amount: g.AmountTotal, Currency: g.Currency, At: g.GrantedAt,
	}
}
