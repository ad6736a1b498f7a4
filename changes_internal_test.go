package billing

import (
	"context"
	"strings"
	"testing"
	"time"
)

type capTx struct {
	Tx
	got []OutboxEntry
}

func (c *capTx) Record(_ context.Context, e OutboxEntry) (bool, error) {
	c.got = append(c.got, e)
	return true, nil
}

var (
	kt1 = time.Unix(1_700_000_000, 0).UTC()
	kt2 = kt1.Add(time.Hour)
)

func ksub(st SubscriptionStatus, v time.Time) Subscription {
	s := Subscription{ID: "sub_1", UserID: "u", CustomerID: "cus_1", Status: st, Version: v,
		Items: []Item{{PriceID: "price_x", CurrentPeriodEnd: kt1.Add(30 * 24 * time.Hour)}}}
	s.OrderKey = orderKey(s)
	return s
}

func kinds(cs []Change) []ChangeKind {
	out := []ChangeKind{}
	for _, c := range cs {
		out = append(out, c.Kind)
	}
	return out
}

func has(cs []Change, k ChangeKind) bool {
	for _, c := range cs {
		if c.Kind == k {
			return true
		}
	}
	return false
}

// mut 7: several attempts recorded in one write: only the last has the next try.
func TestEdgeNextAttemptOnlyLast(t *testing.T) {
	b := ksub(SubscriptionActive, kt1)
	a := b
	a.Invoice = Invoice{ID: "in_1", AttemptCount: 2, NextPaymentAttempt: kt2}
	cs := policy{}.subscriptionChanges(b, true, a, invoiceNews{})
	if len(cs) != 2 || !cs[0].NextPaymentAttempt.IsZero() || !cs[1].NextPaymentAttempt.Equal(kt2) {
		t.Fatalf("got %+v", cs)
	}
}

// mut 11: an older invoice paid while the latest still fails is no recovery.
func TestEdgeRecoveredNeedsAfterNotFailing(t *testing.T) {
	b := ksub(SubscriptionPastDue, kt1)
	b.LatestInvoiceID = "in_2"
	a := b
	a.Invoice = Invoice{ID: "in_1", Paid: true, AttemptCount: 1}
	if cs := (policy{}).subscriptionChanges(b, true, a, invoiceNews{}); has(cs, ChangeRecovered) {
		t.Fatalf("got %v", kinds(cs))
	}
}

// mut 14: a locked subscription's later state, still locked, is not locked again.
func TestEdgeAccessLockedOnce(t *testing.T) {
	b := ksub(SubscriptionPastDue, kt1)
	b.Invoice = Invoice{ID: "in_1", AttemptCount: 4}
	a := ksub(SubscriptionPastDue, kt2)
	a.Invoice, a.CancelAtPeriodEnd = b.Invoice, true
	if cs := (policy{grace: 3}).subscriptionChanges(b, true, a, invoiceNews{}); has(cs, ChangeAccessLocked) {
		t.Fatalf("got %v", kinds(cs))
	}
}

// mut 17: still scheduled in a later state: not scheduled again.
func TestEdgeScheduledOnce(t *testing.T) {
	b := ksub(SubscriptionActive, kt1)
	b.CancelAtPeriodEnd = true
	a := ksub(SubscriptionActive, kt2)
	a.CancelAtPeriodEnd = true
	if cs := (policy{}).subscriptionChanges(b, true, a, invoiceNews{}); len(cs) != 0 {
		t.Fatalf("got %v", kinds(cs))
	}
}

// mut 19: paused then canceled is ended, not resumed.
func TestEdgePausedThenCanceled(t *testing.T) {
	b, a := ksub(SubscriptionPaused, kt1), ksub(SubscriptionCanceled, kt2)
	if cs := (policy{}).subscriptionChanges(b, true, a, invoiceNews{}); len(cs) != 1 || cs[0].Kind != ChangeEnded {
		t.Fatalf("got %v", kinds(cs))
	}
}

// mut 21: invoice-only record (no latest invoice known): failed then paid out of band is recovered.
func TestEdgeRecoveredInvoiceOnly(t *testing.T) {
	b := Subscription{ID: "sub_1", UserID: "u", CustomerID: "cus_1", Invoice: Invoice{ID: "in_1", AttemptCount: 1, NextPaymentAttempt: kt2}}
	a := b
	a.Invoice = Invoice{ID: "in_1", AttemptCount: 1, Paid: true}
	if cs := (policy{}).subscriptionChanges(b, true, a, invoiceNews{}); len(cs) != 1 || cs[0].Kind != ChangeRecovered {
		t.Fatalf("got %v", kinds(cs))
	}
}

// mut 22: an open invoice not attempted yet, then paid at the first try, is no recovery.
func TestEdgeNotAttemptedIsNotFailing(t *testing.T) {
	b := ksub(SubscriptionActive, kt1)
	b.LatestInvoiceID, b.Invoice = "in_2", Invoice{ID: "in_2"}
	a := b
	a.Invoice = Invoice{ID: "in_2", AttemptCount: 1, Paid: true}
	if cs := (policy{}).subscriptionChanges(b, true, a, invoiceNews{renewal: true}); len(cs) != 1 || cs[0].Kind != ChangeRenewed {
		t.Fatalf("got %v", kinds(cs))
	}
}

// run2#10: the latest invoice paid (out of band, attempt 1) while Stripe still says past_due: recovered.
func TestEdgePaidLatestIsNotFailing(t *testing.T) {
	b := ksub(SubscriptionPastDue, kt1)
	b.LatestInvoiceID, b.Invoice = "in_1", Invoice{ID: "in_1", AttemptCount: 1}
	a := b
	a.Invoice = Invoice{ID: "in_1", AttemptCount: 1, Paid: true}
	if cs := (policy{}).subscriptionChanges(b, true, a, invoiceNews{}); !has(cs, ChangeRecovered) {
		t.Fatalf("got %v", kinds(cs))
	}
}

// mut 23: unpaid with no invoice facts, then its latest invoice paid: recovered.
func TestEdgeUnpaidStatusIsFailing(t *testing.T) {
	b := ksub(SubscriptionUnpaid, kt1)
	b.LatestInvoiceID = "in_2"
	a := b
	a.Invoice = Invoice{ID: "in_2", AttemptCount: 1, Paid: true}
	if cs := (policy{}).subscriptionChanges(b, true, a, invoiceNews{}); !has(cs, ChangeRecovered) {
		t.Fatalf("got %v", kinds(cs))
	}
}

// mut 24, 25
func TestEdgeCancelTime(t *testing.T) {
	end := kt1.Add(30 * 24 * time.Hour)
	m := Membership{CurrentPeriodEnd: end}
	s := Subscription{Status: SubscriptionActive, CancelAtPeriodEnd: true, TrialEnd: kt1}
	if got := cancelTime(s, m); !got.Equal(end) {
		t.Errorf("trial over: got %v want %v", got, end)
	}
	s = Subscription{Status: SubscriptionActive, CancelAtPeriodEnd: true, CancelAt: end.Add(5 * 24 * time.Hour)}
	if got := cancelTime(s, m); !got.Equal(end) {
		t.Errorf("cancel_at later than period end: got %v want %v", got, end)
	}
}

// mut 26: a late trial_will_end, once the trial is over, records nothing.
func TestEdgeLateTrialWillEnd(t *testing.T) {
	r := &recorder{trialEnding: true, app: true, now: func() time.Time { return kt2 }}
	b := ksub(SubscriptionActive, kt1)
	b.TrialEnd = kt1
	tx := &capTx{}
	if err := r.subscription(context.Background(), tx, b, true, b, invoiceNews{}); err != nil || len(tx.got) != 0 {
		t.Fatalf("got %v %v", tx.got, err)
	}
}

// mut 31
func TestEdgeBoundedKeyAt255(t *testing.T) {
	k := strings.Repeat("x", maxKeyLen)
	if boundedKey(ChangePaymentFailed, k) != k {
		t.Fatal("a key of exactly maxKeyLen is kept")
	}
}

// mut 20: invoice facts on an ended subscription do not end it again.
func TestEdgeEndedOnce(t *testing.T) {
	b := ksub(SubscriptionCanceled, kt1)
	a := b
	a.Invoice = Invoice{ID: "in_9", Closed: true}
	if cs := (policy{}).subscriptionChanges(b, true, a, invoiceNews{}); len(cs) != 0 {
		t.Fatalf("got %v", kinds(cs))
	}
}
