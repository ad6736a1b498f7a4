package billing

import (
	"context"
	"time"
)

// This file is the outbox's contract with a Store: its own small
// interfaces, so that the core Store stays small and a Store without
// hooks need not implement them. billing records each change (see
// changes.go) in the transaction that stores the facts it follows from,
// and the dispatcher (hooks.go) delivers it to the app.

// OutboxTx is what a [Tx] offers when its Store keeps an outbox: the
// transaction's Tx must implement it when the Store implements [Outbox].
type OutboxTx interface {
	// Record adds e to the outbox unless an entry with e.Key exists
	// (pending, delivered and not yet pruned, or dead), and reports
	// whether it added it. The entry commits or rolls back with the
	// transaction. The store sets e.Seq, greater than every Seq recorded
	// before (billing records a user's entries with the user locked, so
	// their Seq order is the order they happened in); Attempts, Claim
	// and LastError start empty and NextAttempt at e.RecordedAt.
	Record(ctx context.Context, e OutboxEntry) (added bool, err error)
}

// Outbox is the delivery side of a Store's outbox: the dispatcher claims
// entries, settles them, and an operator lists, requeues and discards the
// dead ones. Every method must be safe for concurrent use, also by
// several processes sharing one database. Run storetest.Run, whose
// Outbox group runs when the Store implements Outbox.
type Outbox interface {
	// Claim claims and returns up to limit entries, oldest Seq first:
	// for each user, the pending entry with the lowest Seq (a user's
	// later entries wait behind it), when its NextAttempt is at or
	// before now and it is not claimed, or its claim has expired (its
	// claim's until is at or before now). Each is claimed until the
	// given time under a new token in its Claim field, unique to this
	// call. Concurrent calls never return one entry twice before its
	// claim expires (FOR UPDATE SKIP LOCKED, or a single writer).
	Claim(ctx context.Context, now, until time.Time, limit int) ([]OutboxEntry, error)

	// Delivered marks a pending entry delivered at the given time; it
	// stays, refusing its key to Record, until pruned. An entry not
	// pending (delivered, dead or unknown) is left as it is.
	Delivered(ctx context.Context, key string, at time.Time) error

	// Failed records a failed delivery of a pending entry still claimed
	// under claim: Attempts grows by one, LastError is set and the claim
	// is released; then the entry waits until f.RetryAt, or is dead when
	// f.Dead. An entry not pending or claimed under another token (its
	// claim expired and another took it) is left as it is.
	Failed(ctx context.Context, key, claim string, f DeliveryFailure) error

	// DeadEntries returns up to limit dead entries with Seq greater than
	// afterSeq, lowest Seq first, payloads included.
	DeadEntries(ctx context.Context, afterSeq int64, limit int) ([]OutboxEntry, error)

	// Requeue makes a dead entry pending again, with no attempts, due
	// at the given time; ErrNotFound when no dead entry has the key.
	Requeue(ctx context.Context, key string, at time.Time) error

	// DiscardDead removes a dead entry; ErrNotFound when no dead entry
	// has the key.
	DiscardDead(ctx context.Context, key string) error

	// PruneDelivered removes the entries delivered before cutoff and
	// says how many.
	PruneDelivered(ctx context.Context, cutoff time.Time) (int64, error)

	// OutboxStats counts the pending and the dead entries, and gives the
	// RecordedAt of the oldest pending one (zero when none is pending).
	OutboxStats(ctx context.Context) (OutboxStats, error)
}

// OutboxEntry is one recorded change as an [Outbox] keeps it. The store
// keeps Key, UserID, Kind, Payload and RecordedAt as given and never
// interprets them; it sets the other fields.
type OutboxEntry struct {
	// Key is unique in the outbox: the change's idempotency key, at most
	// 255 bytes.
	Key string
	// UserID orders the entries: one user's are delivered one at a time,
	// in Seq order. (billing's own Stripe writes for a user have a queue
	// of their own, "billing." and the user's ID.)
	UserID string
	Kind   string
	// Payload is billing's encoding of the [Change].
	Payload []byte
	// RecordedAt is when billing recorded it (whole seconds).
	RecordedAt time.Time

	// Seq orders the entries: a later Record has a greater Seq.
	Seq int64
	// Attempts counts the failed deliveries.
	Attempts int
	// NextAttempt is when the entry is due (again).
	NextAttempt time.Time
	// LastError is the last failed delivery's error.
	LastError string
	// Claim is the token of the claim that returned the entry (Claim's
	// results only).
	Claim string
	// Dead is set once the entry was dead-lettered.
	Dead bool
}

// DeliveryFailure is what [Outbox.Failed] records.
type DeliveryFailure struct {
	// Error is the handler's error, as text.
	Error string
	// RetryAt is when the entry is due again (ignored when Dead).
	RetryAt time.Time
	// Dead dead-letters the entry: it is not delivered again unless
	// requeued, and the user's later entries no longer wait for it.
	Dead bool
}

// OutboxStats counts an outbox's undelivered entries.
type OutboxStats struct {
	Pending int64
	Dead    int64
	// OldestPending is the RecordedAt of the oldest pending entry, zero
	// when none is pending.
	OldestPending time.Time
}
