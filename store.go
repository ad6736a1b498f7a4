package billing

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Errors a Store returns. Callers test for them with [errors.Is].
var (
	// ErrNotFound is returned by lookups by ID that find nothing.
	ErrNotFound = errors.New("billing: not found")

	// ErrDuplicateEvent is returned by [Store.Apply] when the event ID has
	// already been recorded: the event was applied before and nothing changed.
	ErrDuplicateEvent = errors.New("billing: event already processed")

	// ErrCustomerConflict is returned by [Tx.LinkCustomer] when the user is
	// already linked to another Stripe customer, or the customer to another
	// user.
	ErrCustomerConflict = errors.New("billing: user and Stripe customer already linked elsewhere")

	// ErrRecordRaced is returned (wrapped) by [Tx.SaveSubscription] when it
	// would create a record that another transaction created after this
	// one found it absent. billing then runs the whole transaction again.
	ErrRecordRaced = errors.New("billing: record created concurrently")
)

// Store keeps what billing knows: which Stripe customer belongs to which
// user, each subscription's record, one-time grants, the IDs of the events
// applied, and the events parked for an operator. It holds no business
// rule: which state is newer is decided by billing, which reads a record,
// and saves the next one, in a transaction.
//
// Every method must be safe for concurrent use, also by several processes
// sharing one database. Run storetest.Run and storetest.RunLifecycles
// against any implementation.
type Store interface {
	// Apply runs fn in one transaction committed with the record of
	// eventID (none if empty), or not at all. A recorded eventID returns
	// ErrDuplicateEvent; of concurrent calls with one eventID one commits.
	// If fn fails, all is rolled back and its error returned (wrapped is
	// fine). fn may run more than once (say, after a deadlock); it uses
	// only its tx.
	Apply(ctx context.Context, eventID string, fn func(ctx context.Context, tx Tx) error) error
	// Processed reports whether eventID was recorded by a committed Apply.
	Processed(ctx context.Context, eventID string) (bool, error)
	// CustomerID returns the customer linked to userID, or ErrNotFound.
	CustomerID(ctx context.Context, userID string) (string, error)
	// Facts returns what is stored for userID (zero Facts with UserID
	// set for a user with nothing stored).
	Facts(ctx context.Context, userID string) (Facts, error)

	// Park keeps an event that could not be applied. Parking an ID again
	// replaces its fields but keeps its first ParkedAt.
	Park(ctx context.Context, ev ParkedEvent) error
	// ParkedEvent returns one parked event, payload included, or ErrNotFound.
	ParkedEvent(ctx context.Context, id string) (ParkedEvent, error)
	// ParkedEvents returns up to limit parked events after the cursor,
	// oldest first (ParkedAt, then ID byte-wise), without payloads.
	ParkedEvents(ctx context.Context, after ParkedCursor, limit int) ([]ParkedEvent, error)
	// CountParked returns how many events are parked.
	CountParked(ctx context.Context) (int64, error)
	// Unpark removes a parked event (one not parked is not an error).
	Unpark(ctx context.Context, id string) error
	// PruneParked removes the events parked before cutoff, and says how many.
	PruneParked(ctx context.Context, cutoff time.Time) (int64, error)
}

// Tx is a transaction of [Store.Apply]: reads see its own writes; writes
// commit or roll back with it.
type Tx interface {
	// UserID returns the user linked to customerID, or ErrNotFound, and
	// locks that user's records until the transaction ends.
	UserID(ctx context.Context, customerID string) (string, error)
	// LockUser locks userID's records until the transaction ends.
	LockUser(ctx context.Context, userID string) error
	// LinkCustomer links a user and a customer (a no-op if linked); a user
	// or customer linked elsewhere returns ErrCustomerConflict.
	LinkCustomer(ctx context.Context, userID, customerID string) error
	// Subscription reads a record for update (no other transaction may
	// change it before this one ends); found is false when there is none.
	Subscription(ctx context.Context, id string) (s Subscription, found bool, err error)
	// SaveSubscription creates or replaces s.ID's record with s as given.
	// Creating one that another transaction created since this one found
	// it absent returns ErrRecordRaced.
	SaveSubscription(ctx context.Context, s Subscription) error
	// Subscriptions returns userID's records as this transaction sees
	// them (its own saves included), in any order. billing calls it only
	// for a user this transaction has locked.
	Subscriptions(ctx context.Context, userID string) ([]Subscription, error)
	// AddGrant adds g unless its CheckoutSessionID has a grant; it
	// reports whether it added it.
	AddGrant(ctx context.Context, g Grant) (bool, error)
	// Refund reads the refund record of a PaymentIntent for update; found
	// is false when there is none.
	Refund(ctx context.Context, paymentIntentID string) (r Refund, found bool, err error)
	// SaveRefund creates or replaces r.PaymentIntentID's record with r as
	// given. billing calls it only with r.UserID locked.
	SaveRefund(ctx context.Context, r Refund) error
}

// ConditionalStore is what a Store may offer for billing's most common
// write, a subscription state newer than the stored one, so that it costs
// one statement where it can: a compare-and-swap whose condition, the
// ordering key, billing computes and the store compares but never
// interprets. billing uses it when the Store implements it, and falls
// back to Apply whenever it does not save.
type ConditionalStore interface {
	// ApplyNewer, in one transaction, records eventID and saves s as
	// s.ID's record, with the UserID linked to s.CustomerID and, over an
	// existing record, that record's Invoice, if the customer is linked
	// and either there is no record or the record's CustomerID is
	// s.CustomerID and its OrderKey is less than s.OrderKey. Otherwise it
	// changes nothing and records nothing, and reports whether eventID
	// was recorded already (a duplicate). A store may also decline
	// (nothing saved, no duplicate reported) whenever it cannot tell.
	ApplyNewer(ctx context.Context, eventID string, s Subscription) (saved, duplicate bool, err error)
}

// PreviousReporter is a ConditionalStore that can also say what its
// compare-and-swap replaced, so that billing can tell (and log, and
// count) the change of a state it saved in one statement. billing uses
// it when it needs the record before the write only to tell the change
// (a logger at INFO, a MeterProvider), not to record it (hooks: the
// change goes to the outbox in the write's transaction).
type PreviousReporter interface {
	ConditionalStore
	// ApplyNewerReporting is ApplyNewer that also returns, when it saved,
	// the record it replaced (read with the row locked, so that it is the
	// one the swap compared) and the UserID of the record saved.
	ApplyNewerReporting(ctx context.Context, eventID string, s Subscription) (NewerResult, error)
}

// NewerResult is what [PreviousReporter.ApplyNewerReporting] did.
type NewerResult struct {
	Saved, Duplicate bool
	// Previous is the record Saved replaced; Found is false when there was
	// none. Both are zero unless Saved.
	Previous Subscription
	Found    bool
	// UserID is the saved record's user (the customer's link).
	UserID string
}

// Facts is everything a Store holds for one user.
type Facts struct {
	UserID        string
	CustomerID    string // empty when the user never had a Stripe customer
	Subscriptions []Subscription
	Grants        []Grant
	// Refunds are the user's refunded payments.
	Refunds []Refund
}

// Subscription is billing's record of one Stripe subscription: the facts
// Membership is computed from. A Store saves and returns it as it is.
type Subscription struct {
	ID         string
	CustomerID string
	UserID     string

	// Status is Stripe's status. It is empty while only invoice facts are
	// known (Version is zero).
	Status            SubscriptionStatus
	Items             []Item
	CancelAtPeriodEnd bool
	CancelAt          time.Time // zero when not set
	CanceledAt        time.Time
	EndedAt           time.Time
	TrialStart        time.Time
	TrialEnd          time.Time
	LatestInvoiceID   string

	// Version is Stripe's time for the state held, in whole seconds: the
	// event's created time for a webhook payload, the Date header of the
	// response for a fetched object. Never the local clock. Zero when no
	// subscription state is stored yet.
	Version time.Time

	// OrderKey is billing's ordering key of the state: a later state has
	// a greater key. A store keeps it as given and compares it only in
	// [ConditionalStore.ApplyNewer]; it never interprets it.
	OrderKey int64

	// Invoice holds the facts of the subscription's latest invoice, with a
	// version of their own.
	Invoice Invoice
}

// PeriodEnd is when the subscription's current period ends: its earliest
// item's (zero with no items), as [Membership].CurrentPeriodEnd reads it.
func (s Subscription) PeriodEnd() time.Time {
	var end time.Time
	for _, it := range s.Items {
		if end.IsZero() || it.CurrentPeriodEnd.Before(end) {
			end = it.CurrentPeriodEnd
		}
	}
	return end
}

// Item is one subscription item: a price and its current period.
type Item struct {
	PriceID            string
	Quantity           int64
	CurrentPeriodStart time.Time
	CurrentPeriodEnd   time.Time
}

// Invoice is what billing keeps of a subscription's latest invoice.
// billing orders two of them by creation, then ID, then progress
// (attempts, then closed, then paid).
type Invoice struct {
	ID      string
	Created time.Time
	Paid    bool
	// Closed is true for a void or uncollectible invoice: no payment
	// will come and Stripe will not retry.
	Closed bool
	// AttemptCount is the highest attempt_count Stripe reported for the
	// invoice: the first attempt plus automatic retries.
	AttemptCount int64
	// NextPaymentAttempt is zero when Stripe will not retry again.
	NextPaymentAttempt time.Time
}

// Grant is a one-time purchase: a paid Checkout Session in payment mode.
type Grant struct {
	CheckoutSessionID string
	UserID            string
	CustomerID        string
	PriceID           string
	Quantity          int64
	// Credits is the plan's credits times the quantity.
	Credits     int64
	AmountTotal int64
	Currency    string
	// GrantedAt is Stripe's time of the payment (the event's created time,
	// or the session's for a return-page sync).
	GrantedAt time.Time
	// PaymentIntentID is the session's payment, by which a refund finds
	// the grant (empty for a grant made before billing kept it).
	PaymentIntentID string
}

// Refund is what billing keeps of the refunds of one payment: how much
// of it was refunded so far. It is stored apart from the grant the
// payment bought, so that a refund arriving before its purchase is kept.
type Refund struct {
	PaymentIntentID string
	ChargeID        string
	UserID          string
	CustomerID      string
	// Amount is the amount refunded so far (the charge's
	// amount_refunded), in the currency's smallest unit.
	Amount   int64
	Currency string
	// Version is Stripe's time of the latest refund fact kept.
	Version time.Time
}

// ParkedEvent is an event that could not be applied and is kept, verified,
// for an operator to replay with [Billing.Replay].
type ParkedEvent struct {
	ID         string
	Type       string
	CustomerID string
	Reason     string
	// Payload is the event's JSON exactly as Stripe sent it (nil in
	// pages of [Store.ParkedEvents]).
	Payload []byte
	// ParkedAt is when it was first parked (whole seconds).
	ParkedAt time.Time
}

// ParkedCursor is where a page of parked events starts: after the event
// with this ParkedAt and ID. The zero cursor starts at the oldest.
type ParkedCursor struct {
	ParkedAt time.Time
	ID       string
}

// Cursor is the cursor of the page that starts after ev.
func (ev ParkedEvent) Cursor() ParkedCursor { return ParkedCursor{ParkedAt: ev.ParkedAt, ID: ev.ID} }

// User is who a user is, as far as Stripe needs to know.
type User struct {
	ID    string
	Email string
	Name  string
}

// UserResolver tells billing about the app's users: who a user is, and
// who made a request.
type UserResolver interface {
	// User returns the user with the given ID, or an error wrapping
	// ErrNotFound.
	User(ctx context.Context, userID string) (User, error)

	// RequestUser returns the ID of the signed-in user who made r, or an
	// error wrapping ErrNoUser when nobody is signed in.
	RequestUser(r *http.Request) (string, error)
}

// UserResolverFunc adapts a function that looks users up by ID to a
// UserResolver. Its RequestUser reads the user ID that the app's own
// authentication put in the request's context with [WithUserID].
type UserResolverFunc func(ctx context.Context, userID string) (User, error)

// User calls f.
func (f UserResolverFunc) User(ctx context.Context, userID string) (User, error) {
	return f(ctx, userID)
}

// RequestUser returns the user ID stored in r's context by [WithUserID],
// or ErrNoUser.
func (f UserResolverFunc) RequestUser(r *http.Request) (string, error) {
	if id, ok := UserIDFrom(r.Context()); ok {
		return id, nil
	}
	return "", ErrNoUser
}

type userIDKey struct{}

// WithUserID returns a copy of ctx carrying the signed-in user's ID, for
// [UserResolverFunc.RequestUser]. Call it in the app's authentication
// middleware.
func WithUserID(ctx context.Context, userID string) context.Context {
	return context.WithValue(ctx, userIDKey{}, userID)
}

// UserIDFrom returns the user ID stored by [WithUserID].
func UserIDFrom(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(userIDKey{}).(string)
	return id, ok && id != ""
}
