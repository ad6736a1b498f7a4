package billing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// SubscriptionLister is a Store that lists its subscription records by
// Stripe status, for an operator (`billing members --status past_due`)
// or a report. memstore and sqlstore implement it.
type SubscriptionLister interface {
	// ListSubscriptions returns up to q.Limit records whose status is one
	// of q.Statuses (any status when none is given) and whose ID is
	// byte-wise greater than q.After, by ID.
	ListSubscriptions(ctx context.Context, q SubscriptionQuery) ([]Subscription, error)
}

// SubscriptionQuery selects subscription records: see
// [SubscriptionLister].
type SubscriptionQuery struct {
	Statuses []SubscriptionStatus
	// After is the ID the page starts after: the last one of the page
	// before ("" for the first page).
	After string
	// Limit is the most records returned; zero or less returns none.
	Limit int
}

// DefaultSubscriptionPage is the page size of [Billing.ListSubscriptions]
// when the query gives none.
const DefaultSubscriptionPage = 100

// knownStatuses are Stripe's subscription statuses.
var knownStatuses = []SubscriptionStatus{
	SubscriptionIncomplete, SubscriptionIncompleteExpired, SubscriptionTrialing, SubscriptionActive,
	SubscriptionPastDue, SubscriptionCanceled, SubscriptionUnpaid, SubscriptionPaused,
}

// ListSubscriptions lists the stored subscription records: by status
// (every status Stripe has when none is given),
// a page at a time (q.Limit, DefaultSubscriptionPage when zero, at most
// 1000), by ID. It returns the records and the cursor of the next page
// ("" after the last). A status Stripe does not have is an
// ErrInvalidArgument; a Store that is not a [SubscriptionLister] answers
// errors.ErrUnsupported.
func (b *Billing) ListSubscriptions(ctx context.Context, q SubscriptionQuery) ([]Subscription, string, error) {
	lister, ok := b.store.(SubscriptionLister)
	if !ok {
		return nil, "", fmt.Errorf("billing: list subscriptions: the Store is not a SubscriptionLister: %w", errors.ErrUnsupported)
	}
	// Each status once (a list of eight at most); none is every status
	// (a record that holds only invoice facts has none, and is not
	// listed).
	statuses := slices.Clone(q.Statuses)
	slices.Sort(statuses)
	q.Statuses = slices.Compact(statuses)
	if len(q.Statuses) == 0 {
		q.Statuses = knownStatuses
	}
	for _, st := range q.Statuses {
		if !slices.Contains(knownStatuses, st) {
			names := make([]string, len(knownStatuses))
			for i, k := range knownStatuses {
				names[i] = string(k)
			}
			return nil, "", fmt.Errorf("%w: subscription status %q: want one of %s", ErrInvalidArgument, st, strings.Join(names, ", "))
		}
	}
	switch {
	case q.Limit == 0:
		q.Limit = DefaultSubscriptionPage
	case q.Limit < 0 || q.Limit > 1000:
		return nil, "", fmt.Errorf("%w: list subscriptions: limit %d: want 1 to 1000", ErrInvalidArgument, q.Limit)
	}
	// One more than the page, to know whether another follows.
	limit := q.Limit
	q.Limit++
	subs, err := lister.ListSubscriptions(ctx, q)
	if err != nil {
		return nil, "", fmt.Errorf("billing: list subscriptions: %w", err)
	}
	if len(subs) <= limit {
		return subs, "", nil
	}
	subs = subs[:limit]
	return subs, subs[limit-1].ID, nil
}
