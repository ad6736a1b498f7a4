package billing

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

var (
	t0     = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	end    = t0.Add(30 * 24 * time.Hour) // the period's end
	day    = 24 * time.Hour
	testPl = policy{
		plans: map[string]Plan{
			"price_basic": {PriceID: "price_basic", Tier: "basic"},
			"price_pro":   {PriceID: "price_pro", Tier: "pro"},
			"price_pack":  {PriceID: "price_pack", Kind: OneTime, Credits: 100},
		},
		rank:   map[string]int{"basic": 1, "pro": 2},
		grace:  3,
		leeway: day,
	}
)

func sub(id string, st SubscriptionStatus, mods ...func(*Subscription)) Subscription {
	s := Subscription{
		ID: id, CustomerID: "cus_1", UserID: "u1", Status: st, Version: t0,
		Items: []Item{{PriceID: "price_pro", Quantity: 1, CurrentPeriodStart: t0, CurrentPeriodEnd: end}},
	}
	for _, m := range mods {
		m(&s)
	}
	return s
}

func failing(attempts int64, next time.Time) func(*Subscription) {
	return func(s *Subscription) {
		s.Invoice = Invoice{ID: "in_1", Created: end, AttemptCount: attempts, NextPaymentAttempt: next}
	}
}

// TestMembershipTable has one row per line of the membership table in
// DESIGN.md, with the expected Membership written out by hand.
func TestMembershipTable(t *testing.T) {
	t.Parallel()
	trialEnd := t0.Add(14 * day)
	cancelAt := t0.Add(10 * day)
	tests := []struct {
		name   string
		subs   []Subscription
		want   Membership
		active []time.Time // instants with access
		denied []time.Time // instants without
	}{
		{
			name: "trialing: until trial end + leeway",
			subs: []Subscription{sub("sub_1", "trialing", func(s *Subscription) { s.TrialStart, s.TrialEnd = t0, trialEnd; s.Items[0].CurrentPeriodEnd = trialEnd })},
			want: Membership{UserID: "u1", Status: StatusTrialing, Tier: "pro", PriceID: "price_pro", SubscriptionID: "sub_1", StripeStatus: "trialing",
				CurrentPeriodEnd: trialEnd, TrialEnd: trialEnd, AccessUntil: trialEnd.Add(day)},
			active: []time.Time{t0, trialEnd, trialEnd.Add(day - time.Second)},
			denied: []time.Time{trialEnd.Add(day)},
		},
		{
			name: "active: until current_period_end + leeway",
			subs: []Subscription{sub("sub_1", "active")},
			want: Membership{UserID: "u1", Status: StatusActive, Tier: "pro", PriceID: "price_pro", SubscriptionID: "sub_1", StripeStatus: "active",
				CurrentPeriodEnd: end, AccessUntil: end.Add(day)},
			active: []time.Time{t0, end, end.Add(day - time.Second)},
			denied: []time.Time{end.Add(day), end.Add(40 * day)},
		},
		{
			name: "active, cancel_at_period_end: until the period end, CancelAt set",
			subs: []Subscription{sub("sub_1", "active", func(s *Subscription) { s.CancelAtPeriodEnd = true })},
			want: Membership{UserID: "u1", Status: StatusActive, Tier: "pro", PriceID: "price_pro", SubscriptionID: "sub_1", StripeStatus: "active",
				CurrentPeriodEnd: end, CancelAt: end, AccessUntil: end},
			active: []time.Time{end.Add(-time.Second)},
			denied: []time.Time{end},
		},
		{
			name: "active, cancel_at set by the portal (cancel_at_period_end false): until cancel_at",
			subs: []Subscription{sub("sub_1", "active", func(s *Subscription) { s.CancelAt = cancelAt })},
			want: Membership{UserID: "u1", Status: StatusActive, Tier: "pro", PriceID: "price_pro", SubscriptionID: "sub_1", StripeStatus: "active",
				CurrentPeriodEnd: end, CancelAt: cancelAt, AccessUntil: cancelAt},
			active: []time.Time{cancelAt.Add(-time.Second)},
			denied: []time.Time{cancelAt},
		},
		{
			name: "trialing, cancel_at_period_end: until the trial end",
			subs: []Subscription{sub("sub_1", "trialing", func(s *Subscription) {
				s.TrialStart, s.TrialEnd, s.CancelAtPeriodEnd = t0, trialEnd, true
				s.Items[0].CurrentPeriodEnd = trialEnd
			})},
			want: Membership{UserID: "u1", Status: StatusTrialing, Tier: "pro", PriceID: "price_pro", SubscriptionID: "sub_1", StripeStatus: "trialing",
				CurrentPeriodEnd: trialEnd, TrialEnd: trialEnd, CancelAt: trialEnd, AccessUntil: trialEnd},
			active: []time.Time{trialEnd.Add(-time.Second)},
			denied: []time.Time{trialEnd},
		},
		{
			name: "past_due, 1 attempt < N, Stripe retries: active with FailedAttempts",
			subs: []Subscription{sub("sub_1", "past_due", failing(1, end.Add(3*day)))},
			want: Membership{UserID: "u1", Status: StatusActive, Tier: "pro", PriceID: "price_pro", SubscriptionID: "sub_1", StripeStatus: "past_due",
				CurrentPeriodEnd: end, AccessUntil: end.Add(day), FailedAttempts: 1},
			active: []time.Time{end.Add(day - time.Second)},
			denied: []time.Time{end.Add(day)},
		},
		{
			name: "past_due, 2 attempts < N, Stripe retries: still active",
			subs: []Subscription{sub("sub_1", "past_due", failing(2, end.Add(5*day)))},
			want: Membership{UserID: "u1", Status: StatusActive, Tier: "pro", PriceID: "price_pro", SubscriptionID: "sub_1", StripeStatus: "past_due",
				CurrentPeriodEnd: end, AccessUntil: end.Add(day), FailedAttempts: 2},
		},
		{
			name: "past_due, attempts = N: past_due, no access",
			subs: []Subscription{sub("sub_1", "past_due", failing(3, end.Add(7*day)))},
			want: Membership{UserID: "u1", Status: StatusPastDue, Tier: "pro", PriceID: "price_pro", SubscriptionID: "sub_1", StripeStatus: "past_due",
				CurrentPeriodEnd: end, FailedAttempts: 3},
			denied: []time.Time{t0, end},
		},
		{
			name: "past_due, 1 attempt but no retry left: past_due",
			subs: []Subscription{sub("sub_1", "past_due", failing(1, time.Time{}))},
			want: Membership{UserID: "u1", Status: StatusPastDue, Tier: "pro", PriceID: "price_pro", SubscriptionID: "sub_1", StripeStatus: "past_due",
				CurrentPeriodEnd: end, FailedAttempts: 1},
			denied: []time.Time{t0},
		},
		{
			name: "past_due with no invoice facts yet: past_due",
			subs: []Subscription{sub("sub_1", "past_due")},
			want: Membership{UserID: "u1", Status: StatusPastDue, Tier: "pro", PriceID: "price_pro", SubscriptionID: "sub_1", StripeStatus: "past_due",
				CurrentPeriodEnd: end},
			denied: []time.Time{t0},
		},
		{
			name: "unpaid: past_due",
			subs: []Subscription{sub("sub_1", "unpaid", failing(4, time.Time{}))},
			want: Membership{UserID: "u1", Status: StatusPastDue, Tier: "pro", PriceID: "price_pro", SubscriptionID: "sub_1", StripeStatus: "unpaid",
				CurrentPeriodEnd: end, FailedAttempts: 4},
			denied: []time.Time{t0},
		},
		{
			name: "paused: paused, no access",
			subs: []Subscription{sub("sub_1", "paused")},
			want: Membership{UserID: "u1", Status: StatusPaused, Tier: "pro", PriceID: "price_pro", SubscriptionID: "sub_1", StripeStatus: "paused",
				CurrentPeriodEnd: end},
			denied: []time.Time{t0},
		},
		{
			name: "incomplete: pending, no access",
			subs: []Subscription{sub("sub_1", "incomplete")},
			want: Membership{UserID: "u1", Status: StatusPending, Tier: "pro", PriceID: "price_pro", SubscriptionID: "sub_1", StripeStatus: "incomplete",
				CurrentPeriodEnd: end},
			denied: []time.Time{t0},
		},
		{
			name: "incomplete_expired: none",
			subs: []Subscription{sub("sub_1", "incomplete_expired")},
			want: Membership{UserID: "u1", Status: StatusNone, Tier: "pro", PriceID: "price_pro", SubscriptionID: "sub_1", StripeStatus: "incomplete_expired",
				CurrentPeriodEnd: end},
			denied: []time.Time{t0},
		},
		{
			name:   "nothing stored: none",
			want:   Membership{UserID: "u1"},
			denied: []time.Time{t0},
		},
		{
			name: "canceled: canceled, no access even inside the old period",
			subs: []Subscription{sub("sub_1", "canceled", func(s *Subscription) { s.CanceledAt, s.EndedAt = t0.Add(day), t0.Add(day) })},
			want: Membership{UserID: "u1", Status: StatusCanceled, Tier: "pro", PriceID: "price_pro", SubscriptionID: "sub_1", StripeStatus: "canceled",
				CurrentPeriodEnd: end},
			denied: []time.Time{t0.Add(2 * day)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := testPl.compute(Facts{UserID: "u1", Subscriptions: tt.subs}, t0)
			assert.Equal(t, tt.want, got)
			for _, at := range tt.active {
				assert.True(t, got.Active(at), "active at %s", at)
			}
			for _, at := range tt.denied {
				assert.False(t, got.Active(at), "denied at %s", at)
			}
		})
	}
}

func TestMembershipEdges(t *testing.T) {
	t.Parallel()
	t.Run("period is the earliest item end, tier the highest item tier", func(t *testing.T) {
		s := sub("sub_1", "active", func(s *Subscription) {
			s.Items = []Item{
				{PriceID: "price_pro", CurrentPeriodEnd: end.Add(5 * day)},
				{PriceID: "price_basic", CurrentPeriodEnd: end},
			}
		})
		m := testPl.compute(Facts{UserID: "u1", Subscriptions: []Subscription{s}}, t0)
		assert.Equal(t, "pro", m.Tier)
		assert.Equal(t, "price_pro", m.PriceID)
		assert.Equal(t, end, m.CurrentPeriodEnd)
		assert.Equal(t, end.Add(day), m.AccessUntil)
	})
	t.Run("cancel_at later than the period end: access still ends at period end + leeway", func(t *testing.T) {
		s := sub("sub_1", "active", func(s *Subscription) { s.CancelAt = end.Add(60 * day) })
		m := testPl.compute(Facts{UserID: "u1", Subscriptions: []Subscription{s}}, t0)
		assert.Equal(t, end.Add(60*day), m.CancelAt)
		assert.Equal(t, end.Add(day), m.AccessUntil)
	})
	t.Run("both cancel_at_period_end and an earlier cancel_at: the earlier wins", func(t *testing.T) {
		s := sub("sub_1", "active", func(s *Subscription) { s.CancelAtPeriodEnd, s.CancelAt = true, t0.Add(3*day) })
		m := testPl.compute(Facts{UserID: "u1", Subscriptions: []Subscription{s}}, t0)
		assert.Equal(t, t0.Add(3*day), m.CancelAt)
		assert.Equal(t, t0.Add(3*day), m.AccessUntil)
	})
	t.Run("past_due whose latest invoice is paid: access, as Stripe is about to say active", func(t *testing.T) {
		s := sub("sub_1", "past_due", func(s *Subscription) {
			s.LatestInvoiceID = "in_1"
			s.Invoice = Invoice{ID: "in_1", Paid: true, AttemptCount: 3}
		})
		m := testPl.compute(Facts{UserID: "u1", Subscriptions: []Subscription{s}}, t0)
		assert.Equal(t, StatusActive, m.Status)
		assert.Equal(t, 0, m.FailedAttempts)
		assert.Equal(t, end.Add(day), m.AccessUntil)
	})
	t.Run("past_due whose paid invoice is not the latest: no access", func(t *testing.T) {
		s := sub("sub_1", "past_due", func(s *Subscription) {
			s.LatestInvoiceID = "in_2"
			s.Invoice = Invoice{ID: "in_1", Paid: true, AttemptCount: 1}
		})
		m := testPl.compute(Facts{UserID: "u1", Subscriptions: []Subscription{s}}, t0)
		assert.Equal(t, StatusPastDue, m.Status)
	})
	t.Run("GraceAttempts 1 makes the first failure past_due", func(t *testing.T) {
		p := testPl
		p.grace = 1
		m := p.compute(Facts{UserID: "u1", Subscriptions: []Subscription{sub("sub_1", "past_due", failing(1, end.Add(day)))}}, t0)
		assert.Equal(t, StatusPastDue, m.Status)
		assert.False(t, m.Active(t0))
	})
	t.Run("leeway is configurable", func(t *testing.T) {
		p := testPl
		p.leeway = time.Hour
		m := p.compute(Facts{UserID: "u1", Subscriptions: []Subscription{sub("sub_1", "active")}}, t0)
		assert.Equal(t, end.Add(time.Hour), m.AccessUntil)
	})
	t.Run("several subscriptions: access beats none", func(t *testing.T) {
		old := sub("sub_old", "canceled")
		cur := sub("sub_new", "active", func(s *Subscription) { s.Items[0].PriceID = "price_basic" })
		m := testPl.compute(Facts{UserID: "u1", Subscriptions: []Subscription{cur, old}}, t0)
		assert.Equal(t, "sub_new", m.SubscriptionID)
		assert.Equal(t, StatusActive, m.Status)
		assert.Equal(t, "basic", m.Tier)
		m = testPl.compute(Facts{UserID: "u1", Subscriptions: []Subscription{old, cur}}, t0)
		assert.Equal(t, "sub_new", m.SubscriptionID)
	})
	t.Run("several live subscriptions: the higher tier, then the later access", func(t *testing.T) {
		// An annual basic plan and a monthly pro bought beside it: the
		// user gets pro pages.
		basicLong := sub("sub_a", "active", func(s *Subscription) {
			s.Items = []Item{{PriceID: "price_basic", CurrentPeriodEnd: end.Add(300 * day)}}
		})
		proShort := sub("sub_b", "active")
		m := testPl.compute(Facts{UserID: "u1", Subscriptions: []Subscription{basicLong, proShort}}, t0)
		assert.Equal(t, "sub_b", m.SubscriptionID)
		assert.Equal(t, "pro", m.Tier)
		proLong := sub("sub_c", "active", func(s *Subscription) { s.Items[0].CurrentPeriodEnd = end.Add(300 * day) })
		m = testPl.compute(Facts{UserID: "u1", Subscriptions: []Subscription{proShort, proLong}}, t0)
		assert.Equal(t, "sub_c", m.SubscriptionID)
	})
	t.Run("without access, past_due is shown before canceled", func(t *testing.T) {
		m := testPl.compute(Facts{UserID: "u1", Subscriptions: []Subscription{
			sub("sub_z", "canceled"), sub("sub_a", "past_due", failing(3, time.Time{})),
		}}, t0)
		assert.Equal(t, StatusPastDue, m.Status)
		assert.Equal(t, "sub_a", m.SubscriptionID)
	})
	t.Run("a row with only invoice facts is ignored", func(t *testing.T) {
		m := testPl.compute(Facts{UserID: "u1", Subscriptions: []Subscription{{ID: "sub_1", Invoice: Invoice{ID: "in_1", AttemptCount: 1}}}}, t0)
		assert.Equal(t, Membership{UserID: "u1"}, m)
	})
	t.Run("a price not in Plans gives no tier", func(t *testing.T) {
		m := testPl.compute(Facts{UserID: "u1", Subscriptions: []Subscription{sub("sub_1", "active", func(s *Subscription) { s.Items[0].PriceID = "price_gone" })}}, t0)
		assert.Equal(t, "", m.Tier)
		assert.Equal(t, "price_gone", m.PriceID)
		assert.True(t, m.Active(t0))
		assert.False(t, m.HasTier(t0, "pro"))
		assert.True(t, m.HasTier(t0))
	})
	t.Run("credits add up across grants; customer shown", func(t *testing.T) {
		m := testPl.compute(Facts{UserID: "u1", CustomerID: "cus_1", Grants: []Grant{{Credits: 100}, {Credits: 250}}}, t0)
		assert.Equal(t, int64(350), m.Credits)
		assert.True(t, m.HasCustomer)
		assert.Equal(t, StatusNone, m.Status)
		assert.False(t, m.Active(t0))
	})
	t.Run("HasTier checks access and tier", func(t *testing.T) {
		m := testPl.compute(Facts{UserID: "u1", Subscriptions: []Subscription{sub("sub_1", "active")}}, t0)
		assert.True(t, m.HasTier(t0, "basic", "pro"))
		assert.False(t, m.HasTier(t0, "basic"))
		assert.False(t, m.HasTier(end.Add(2*day), "pro"))
	})
}

func TestStatusText(t *testing.T) {
	t.Parallel()
	for s := StatusNone; s <= StatusCanceled; s++ {
		b, err := s.MarshalText()
		assert.NoError(t, err)
		var back Status
		assert.NoError(t, back.UnmarshalText(b))
		assert.Equal(t, s, back)
	}
	assert.Equal(t, "past_due", StatusPastDue.String())
	assert.Equal(t, "Status(42)", Status(42).String())
	var s Status
	assert.Error(t, s.UnmarshalText([]byte("gold")))
}

// Credits add up without wrapping around: past the largest int64 they
// stay there.
func TestCreditsSaturate(t *testing.T) {
	t.Parallel()
	f := Facts{UserID: "u1", Grants: []Grant{
		{CheckoutSessionID: "cs_1", Credits: math.MaxInt64 - 5},
		{CheckoutSessionID: "cs_2", Credits: 10},
		{CheckoutSessionID: "cs_3", Credits: 7},
	}}
	assert.Equal(t, int64(math.MaxInt64), testPl.compute(f, t0).Credits)
	f.Grants = f.Grants[1:]
	assert.Equal(t, int64(17), testPl.compute(f, t0).Credits)
}

// Refunds take a grant's credits back in proportion, rounded down, with
// no overflow, and only from the grant their payment bought.
func TestCreditsLeftAfterRefunds(t *testing.T) {
	big := int64(math.MaxInt64 / 2)
	for _, tc := range []struct {
		credits, paid, refunded, want int64
	}{
		{200, 1000, 0, 200},
		{200, 1000, 333, 134},
		{200, 1000, 999, 1},
		{200, 1000, 1000, 0},
		{200, 1000, 5000, 0},
		{7, 3, 1, 5},              // 7 × 1/3 = 2.33 taken back
		{big, 10, 5, big - big/2}, // no overflow
		{200, 0, 10, 0},           // a free grant refunded: nothing left
		{0, 1000, 500, 0},
	} {
		got := creditsLeft(Grant{Credits: tc.credits, AmountTotal: tc.paid}, tc.refunded)
		assert.Equal(t, tc.want, got, "%d credits, %d paid, %d refunded", tc.credits, tc.paid, tc.refunded)
	}
	p := policy{}
	f := Facts{UserID: "u", Grants: []Grant{
		{CheckoutSessionID: "cs_1", Credits: 100, AmountTotal: 500, PaymentIntentID: "pi_1"},
		{CheckoutSessionID: "cs_2", Credits: 100, AmountTotal: 500, PaymentIntentID: "pi_2"},
		{CheckoutSessionID: "cs_old", Credits: 100, AmountTotal: 500},
	}, Refunds: []Refund{{PaymentIntentID: "pi_1", Amount: 250}, {PaymentIntentID: "pi_other", Amount: 500}}}
	assert.Equal(t, int64(250), p.compute(f, time.Time{}).Credits)
	p.keepCredits = true
	assert.Equal(t, int64(300), p.compute(f, time.Time{}).Credits)
}

// Keys stay short enough for every store, and distinct.
func TestBoundedKey(t *testing.T) {
	long := strings.Repeat("x", 255)
	short := "payment_failed/sub_1/in_1/2"
	assert.Equal(t, short, boundedKey(ChangePaymentFailed, short))
	a := boundedKey(ChangePaymentFailed, "payment_failed/sub_"+long+"/in_"+long+"/2")
	b := boundedKey(ChangePaymentFailed, "payment_failed/sub_"+long+"/in_"+long+"/3")
	assert.LessOrEqual(t, len(a), maxKeyLen)
	assert.NotEqual(t, a, b)
	assert.True(t, strings.HasPrefix(a, "payment_failed/"))
	assert.Equal(t, a, boundedKey(ChangePaymentFailed, "payment_failed/sub_"+long+"/in_"+long+"/2"), "stable")
}

func TestSubscriptionPeriodEnd(t *testing.T) {
	t1 := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	s := Subscription{Items: []Item{{CurrentPeriodEnd: t1.AddDate(0, 1, 0)}, {CurrentPeriodEnd: t1}, {CurrentPeriodEnd: t1.AddDate(1, 0, 0)}}}
	if got := s.PeriodEnd(); !got.Equal(t1) {
		t.Errorf("PeriodEnd = %v, want the earliest item's, %v", got, t1)
	}
	if got := (Subscription{}).PeriodEnd(); !got.IsZero() {
		t.Errorf("no items: %v, want zero", got)
	}
}
