package billing

import (
	"fmt"
	"math"
	"time"
)

// Status is a membership's status, derived from Stripe's subscription
// status. The zero value is StatusNone.
type Status int

// Membership statuses.
const (
	StatusNone     Status = iota // nothing bought, or the subscription never started
	StatusPending                // the first payment is not through yet (Stripe: incomplete)
	StatusTrialing               // in a trial
	StatusActive                 // paid up, or failing but still within the grace attempts
	StatusPastDue                // payment failed past the grace attempts, or unpaid
	StatusPaused                 // paused (a trial ended without a payment method)
	StatusCanceled               // ended
)

var statusNames = [...]string{"none", "pending", "trialing", "active", "past_due", "paused", "canceled"}

// String names the status: "none", "active", "past_due", ...
func (s Status) String() string {
	if s >= 0 && int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// MarshalText encodes the status as its name.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a status name.
func (s *Status) UnmarshalText(b []byte) error {
	for i, n := range statusNames {
		if n == string(b) {
			*s = Status(i)
			return nil
		}
	}
	return fmt.Errorf("billing: unknown membership status %q", b)
}

// Membership is what a user has paid for, computed from the stored facts.
// The zero Membership is a user with nothing (StatusNone).
type Membership struct {
	UserID string
	Status Status
	// Tier is the highest configured tier among the subscription's prices.
	Tier string
	// PriceID is the price that gives Tier.
	PriceID        string
	SubscriptionID string
	// StripeStatus is Stripe's own status of the subscription.
	StripeStatus SubscriptionStatus
	// CurrentPeriodEnd is when the current period ends (the renewal date),
	// the earliest among the subscription's items.
	CurrentPeriodEnd time.Time
	// TrialEnd is when the trial ends, while trialing.
	TrialEnd time.Time
	// CancelAt is when the subscription will end, when it is set to cancel
	// (at the period end, or at a chosen time).
	CancelAt time.Time
	// AccessUntil is the instant access ends; zero when there is none.
	AccessUntil time.Time
	// FailedAttempts counts the failed payment attempts of the latest
	// invoice while the subscription is past_due.
	FailedAttempts int
	// Credits is the sum of the credits of the user's one-time purchases.
	Credits int64
	// HasCustomer reports whether the user has a Stripe customer (and so
	// can open the Customer Portal).
	HasCustomer bool
}

// Active reports whether the membership gives access at now.
func (m Membership) Active(now time.Time) bool {
	return now.Before(m.AccessUntil)
}

// HasTier reports whether the membership gives access at now to one of the
// tiers (to any tier when none is given).
func (m Membership) HasTier(now time.Time, tiers ...string) bool {
	if !m.Active(now) {
		return false
	}
	if len(tiers) == 0 {
		return true
	}
	for _, t := range tiers {
		if t == m.Tier {
			return true
		}
	}
	return false
}

// policy holds what the membership function needs from Config.
type policy struct {
	plans  map[string]Plan
	rank   map[string]int
	grace  int
	leeway time.Duration
	// keepCredits: refunds take no credits back.
	keepCredits bool
}

func (b *Billing) policy() policy {
	return policy{plans: b.plans, rank: b.rank, grace: b.cfg.GraceAttempts, leeway: b.cfg.AccessLeeway, keepCredits: b.cfg.KeepCreditsOnRefund}
}

// compute is the one pure function from stored facts and now to a
// Membership (DESIGN.md's table).
func (p policy) compute(f Facts, now time.Time) Membership {
	var best Membership
	found := false
	for _, s := range f.Subscriptions {
		if s.Version.IsZero() || s.Status == "" {
			continue // only invoice facts so far
		}
		m := p.one(s, now)
		if !found || p.better(m, best, now) {
			best, found = m, true
		}
	}
	best.UserID = f.UserID
	best.HasCustomer = f.CustomerID != ""
	refunded := map[string]int64{}
	if !p.keepCredits {
		for _, r := range f.Refunds {
			refunded[r.PaymentIntentID] = r.Amount
		}
	}
	for _, g := range f.Grants {
		credits := g.Credits
		if g.PaymentIntentID != "" {
			credits = creditsLeft(g, refunded[g.PaymentIntentID])
		}
		// Saturating: each grant's credits are checked when granted, their
		// sum can still pass the largest int64.
		if credits > 0 && best.Credits > math.MaxInt64-credits {
			best.Credits = math.MaxInt64
			continue
		}
		best.Credits += credits
	}
	return best
}

// one maps one subscription.
func (p policy) one(s Subscription, now time.Time) Membership {
	m := Membership{SubscriptionID: s.ID, StripeStatus: s.Status, CurrentPeriodEnd: s.PeriodEnd()}
	for _, it := range s.Items {
		r, ok := p.rank[p.plans[it.PriceID].Tier]
		if ok && (m.Tier == "" || r > p.rank[m.Tier]) {
			m.Tier, m.PriceID = p.plans[it.PriceID].Tier, it.PriceID
		}
	}
	if m.PriceID == "" && len(s.Items) > 0 {
		m.PriceID = s.Items[0].PriceID // a price the config does not know: no tier
	}
	periodAccess := m.CurrentPeriodEnd.Add(p.leeway)
	if m.CurrentPeriodEnd.IsZero() {
		periodAccess = time.Time{}
	}
	switch s.Status {
	case SubscriptionTrialing:
		m.Status, m.TrialEnd = StatusTrialing, s.TrialEnd
		end := s.TrialEnd
		if end.IsZero() {
			end = m.CurrentPeriodEnd
		}
		if !end.IsZero() {
			m.AccessUntil = end.Add(p.leeway)
		}
		p.cancel(&m, s)
	case SubscriptionActive:
		m.Status, m.AccessUntil = StatusActive, periodAccess
		p.cancel(&m, s)
	case SubscriptionPastDue:
		attempts := int(s.Invoice.AttemptCount)
		if s.Invoice.Paid {
			attempts = 0
		}
		willRetry := !s.Invoice.Paid && !s.Invoice.NextPaymentAttempt.IsZero()
		// The latest invoice paid: Stripe is about to mark the subscription
		// active again (its customer.subscription.updated may come later).
		paid := s.Invoice.Paid && (s.LatestInvoiceID == "" || s.Invoice.ID == s.LatestInvoiceID)
		if paid || (attempts < p.grace && willRetry) {
			m.Status, m.AccessUntil, m.FailedAttempts = StatusActive, periodAccess, attempts
			p.cancel(&m, s)
		} else {
			m.Status, m.FailedAttempts = StatusPastDue, attempts
		}
	case SubscriptionUnpaid:
		m.Status = StatusPastDue
		if !s.Invoice.Paid {
			m.FailedAttempts = int(s.Invoice.AttemptCount)
		}
	case SubscriptionPaused:
		m.Status = StatusPaused
	case SubscriptionIncomplete:
		m.Status = StatusPending
	case SubscriptionCanceled:
		m.Status = StatusCanceled
	default: // incomplete_expired, or a status this version does not know
		m.Status = StatusNone
	}
	return m
}

// cancel applies a scheduled cancellation: access ends at the cancel time
// (or at the period's access end, whichever comes first).
func (p policy) cancel(m *Membership, s Subscription) {
	var at time.Time
	if s.CancelAtPeriodEnd {
		at = m.CurrentPeriodEnd
		if s.Status == SubscriptionTrialing && !s.TrialEnd.IsZero() {
			at = s.TrialEnd
		}
	}
	if !s.CancelAt.IsZero() && (at.IsZero() || s.CancelAt.Before(at)) {
		at = s.CancelAt
	}
	if at.IsZero() {
		return
	}
	m.CancelAt = at
	if m.AccessUntil.IsZero() || at.Before(m.AccessUntil) {
		m.AccessUntil = at
	}
}

// better reports whether a gives more than b: access now first; among
// memberships with access, the higher tier, then the later end of access;
// among those without, the more pressing status (the one that asks the
// user to act).
func (p policy) better(a, b Membership, now time.Time) bool {
	aa, ba := a.Active(now), b.Active(now)
	if aa != ba {
		return aa
	}
	ra, rb := p.rank[a.Tier], p.rank[b.Tier]
	if !aa {
		if sa, sb := statusWeight[a.Status], statusWeight[b.Status]; sa != sb {
			return sa > sb
		}
	}
	if ra != rb {
		return ra > rb
	}
	if !a.AccessUntil.Equal(b.AccessUntil) {
		return a.AccessUntil.After(b.AccessUntil)
	}
	return a.SubscriptionID > b.SubscriptionID
}

// statusWeight orders memberships without access: the one that asks the
// user to act comes first.
var statusWeight = map[Status]int{
	StatusActive: 6, StatusTrialing: 5, StatusPastDue: 4, StatusPaused: 3, StatusPending: 2, StatusCanceled: 1, StatusNone: 0,
}
