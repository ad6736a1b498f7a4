package sqlstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gobilling/billing"
)

// The outbox is one table, outbox (migration 0004): one row per entry,
// seq its auto-increment primary key, entry_key unique. A row's state is
// pending, delivered or dead; a pending row is due at next_attempt_at,
// and claimed under the token claim until claimed_until (a claim that
// has expired, or was released, is claimed_until at or before now).

var (
	_ billing.Outbox   = (*Store)(nil)
	_ billing.OutboxTx = (*tx)(nil)
)

// The states of an outbox entry, its state column: 0 pending, 1
// delivered, 2 dead (the queries of tx.go write them as numbers).
const (
	outboxPending = 0
	outboxDead    = 2
)

// maxClaimList is the longest list of seqs one statement of Claim's locks
// or claims, where Claim takes more than one statement (MySQL, SQLite):
// the lists are padded to a power of two up to it, so that a few
// statements, prepared once, serve every limit.
const maxClaimList = 128

// Record implements [billing.OutboxTx.Record]: an INSERT into the outbox
// table that does nothing when the key is taken (ON CONFLICT DO NOTHING
// on PostgreSQL and SQLite; on MySQL, a plain INSERT whose duplicate-key
// error 1062 is expected). An INSERT racing another transaction's of the
// same key waits for it. The entry's Seq is the table's auto-increment,
// assigned by the database; its payload is kept byte for byte.
func (t *tx) Record(ctx context.Context, e billing.OutboxEntry) (bool, error) {
	payload := e.Payload
	if payload == nil {
		payload = []byte{}
	}
	recorded := toUnix(e.RecordedAt)
	ok, err := t.s.d.inserted(t.exec(ctx, t.s.q.insertOutbox, e.Key, e.UserID, e.Kind, payload, recorded, recorded))
	if err != nil {
		return false, fmt.Errorf("sqlstore: record outbox entry %s: %w", e.Key, err)
	}
	return ok, nil
}

// Claim implements [billing.Outbox.Claim]. The entries it may claim are
// the pending rows due at now, not claimed (or claimed until no later
// than now), with no pending row of the same user and a lower seq; it
// claims up to limit of them, lowest seq first, under a new random token.
//
// On PostgreSQL it is one statement: an UPDATE of the rows a SELECT ...
// FOR UPDATE SKIP LOCKED picks, so that concurrent Claims skip each
// other's rows. On MySQL it is a transaction that reads the heads, then
// locks them by seq with FOR UPDATE SKIP LOCKED (checking again that each
// is due and not claimed) and claims those: the heads need MySQL 8.0.1 or
// MariaDB 10.6. On SQLite the transaction holds the write lock from its
// BEGIN, so Claims run one at a time. Either way, a user's entry is a
// head only while the user's earlier entries are not pending, which an
// entry being claimed by another Claim still is: a user's entries are
// never claimed two at a time.
//
// Times are kept in whole seconds: an entry is due when its next attempt
// is at or before now, and its claim is kept until the first whole second
// at or after until.
func (s *Store) Claim(ctx context.Context, now, until time.Time, limit int) ([]billing.OutboxEntry, error) {
	if limit <= 0 {
		return nil, nil
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("sqlstore: claim outbox entries: %w", err)
	}
	token := hex.EncodeToString(b[:])
	at, till := now.Unix(), ceilUnix(until)
	var out []billing.OutboxEntry
	err := s.retry(ctx, func() error {
		var err error
		if s.q.claimOutbox != "" {
			out, err = readEntries(s.query(ctx, s.q.claimOutbox, at, at, limit, token, till))
		} else {
			out, err = s.claimInTx(ctx, at, till, limit, token)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: claim outbox entries: %w", err)
	}
	for i := range out {
		out[i].Claim = token
	}
	slices.SortFunc(out, func(a, b billing.OutboxEntry) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}

// claimInTx is Claim in a transaction: the heads (a plain read), then,
// by lists of seqs, the rows locked and read again (skipping those
// another transaction has locked, and those claimed or not due any more),
// then claimed.
func (s *Store) claimInTx(ctx context.Context, now, until int64, limit int, token string) ([]billing.OutboxEntry, error) {
	size := 1
	for size < min(limit, maxClaimList) {
		size *= 2
	}
	lock := s.d.bind(strings.Replace(s.q.lockOutbox, "%s", marks(size), 1))
	set := s.d.bind(strings.Replace(s.q.setClaim, "%s", marks(size), 1))
	// Prepared on the pool before the transaction begins (a transaction
	// prepares nothing itself); a failure leaves them unprepared.
	for _, q := range []string{s.q.outboxHeads, lock, set} {
		if _, err := s.prepared(ctx, q); err != nil {
			break
		}
	}

	sqlTx, err := s.db.BeginTx(ctx, s.d.txOptions())
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer sqlTx.Rollback() //nolint:errcheck // after Commit, a no-op
	t := &tx{s: s, q: sqlTx}

	rows, err := t.query(ctx, s.q.outboxHeads, now, now, limit)
	if err != nil {
		return nil, err
	}
	var heads []int64
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			rows.Close()
			return nil, err
		}
		heads = append(heads, seq)
	}
	if err := closeRows(rows); err != nil {
		return nil, err
	}
	if len(heads) == 0 {
		return nil, nil
	}

	var out []billing.OutboxEntry
	for chunk := range slices.Chunk(heads, size) {
		args := padSeqs(make([]any, 0, size+2), chunk, size)
		es, err := readEntries(t.query(ctx, lock, append(args, now, now)...))
		if err != nil {
			return nil, err
		}
		if len(es) == 0 {
			continue
		}
		seqs := make([]int64, len(es))
		for i, e := range es {
			seqs[i] = e.Seq
		}
		if _, err := t.exec(ctx, set, padSeqs(append(make([]any, 0, size+2), token, until), seqs, size)...); err != nil {
			return nil, err
		}
		out = append(out, es...)
	}
	if err := sqlTx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return out, nil
}

// padSeqs appends seqs to args, then the last of them again up to size
// (a seq twice in an IN list is harmless).
func padSeqs(args []any, seqs []int64, size int) []any {
	for i := range size {
		args = append(args, seqs[min(i, len(seqs)-1)])
	}
	return args
}

// Delivered implements [billing.Outbox.Delivered]: an UPDATE of the
// entry, if pending, to delivered at the given time (in whole seconds),
// its claim released.
func (s *Store) Delivered(ctx context.Context, key string, at time.Time) error {
	err := s.retry(ctx, func() error {
		_, err := s.exec(ctx, s.q.outboxDelivered, toUnix(at), key)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlstore: mark outbox entry %s delivered: %w", key, err)
	}
	return nil
}

// Failed implements [billing.Outbox.Failed]: an UPDATE of the entry if
// it is pending and its claim is the token given, which adds the attempt,
// keeps the error, releases the claim, and makes the entry due at
// f.RetryAt (the first whole second at or after it), or dead.
func (s *Store) Failed(ctx context.Context, key, claim string, f billing.DeliveryFailure) error {
	if claim == "" {
		return nil // no Claim returns an empty token: not claimed under it
	}
	query, args := s.q.outboxFailed, []any{f.Error, ceilUnix(f.RetryAt), key, claim}
	if f.Dead {
		query, args = s.q.outboxDead, []any{f.Error, key, claim}
	}
	err := s.retry(ctx, func() error {
		_, err := s.exec(ctx, query, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlstore: record failed delivery of outbox entry %s: %w", key, err)
	}
	return nil
}

// DeadEntries implements [billing.Outbox.DeadEntries]: one statement,
// dead entries by seq.
func (s *Store) DeadEntries(ctx context.Context, afterSeq int64, limit int) ([]billing.OutboxEntry, error) {
	if limit <= 0 {
		return nil, nil
	}
	es, err := readEntries(s.query(ctx, s.q.deadOutbox, afterSeq, limit))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: read dead outbox entries: %w", err)
	}
	return es, nil
}

// Requeue implements [billing.Outbox.Requeue]: an UPDATE of the entry, if
// dead, to pending, with no attempts and no error, due at the given time
// (the first whole second at or after it); [billing.ErrNotFound] when no
// dead entry has the key.
func (s *Store) Requeue(ctx context.Context, key string, at time.Time) error {
	n, err := s.execCount(ctx, s.q.requeueOutbox, ceilUnix(at), key)
	if err != nil {
		return fmt.Errorf("sqlstore: requeue outbox entry %s: %w", key, err)
	}
	if n == 0 {
		return billing.ErrNotFound
	}
	return nil
}

// DiscardDead implements [billing.Outbox.DiscardDead]: a DELETE of the
// entry, if dead; [billing.ErrNotFound] when no dead entry has the key.
func (s *Store) DiscardDead(ctx context.Context, key string) error {
	n, err := s.execCount(ctx, s.q.discardOutbox, key)
	if err != nil {
		return fmt.Errorf("sqlstore: discard dead outbox entry %s: %w", key, err)
	}
	if n == 0 {
		return billing.ErrNotFound
	}
	return nil
}

// PruneDelivered implements [billing.Outbox.PruneDelivered]: it deletes
// the entries delivered before cutoff (whole seconds), in batches of
// 1,000 rows, and returns how many it deleted. If ctx ends it stops, and
// returns what it deleted so far with the error.
func (s *Store) PruneDelivered(ctx context.Context, cutoff time.Time) (int64, error) {
	before := ceilUnix(cutoff)
	var total int64
	for {
		n, err := s.execCount(ctx, s.q.pruneOutbox, before, pruneBatchSize)
		if err != nil {
			return total, fmt.Errorf("sqlstore: prune delivered outbox entries: %w", err)
		}
		total += n
		if n < pruneBatchSize {
			return total, nil
		}
	}
}

// OutboxStats implements [billing.Outbox.OutboxStats]: one statement
// that counts the pending and dead entries by state.
func (s *Store) OutboxStats(ctx context.Context) (billing.OutboxStats, error) {
	var st billing.OutboxStats
	rows, err := s.query(ctx, s.q.outboxStats)
	if err != nil {
		return billing.OutboxStats{}, fmt.Errorf("sqlstore: count outbox entries: %w", err)
	}
	for rows.Next() {
		var (
			state    int
			n, since int64
		)
		if err := rows.Scan(&state, &n, &since); err != nil {
			rows.Close()
			return billing.OutboxStats{}, fmt.Errorf("sqlstore: count outbox entries: %w", err)
		}
		switch state {
		case outboxPending:
			st.Pending, st.OldestPending = n, fromUnix(since)
		case outboxDead:
			st.Dead = n
		}
	}
	if err := closeRows(rows); err != nil {
		return billing.OutboxStats{}, fmt.Errorf("sqlstore: count outbox entries: %w", err)
	}
	return st, nil
}

// execCount runs a statement of the store's on the pool, retried, and
// returns the rows it affected.
func (s *Store) execCount(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := s.retry(ctx, func() error {
		res, err := s.exec(ctx, query, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// readEntries reads the entries a query of outboxCols returned.
func readEntries(rows *sql.Rows, err error) ([]billing.OutboxEntry, error) {
	if err != nil {
		return nil, err
	}
	var out []billing.OutboxEntry
	for rows.Next() {
		var (
			e              billing.OutboxEntry
			recorded, next int64
			state          int
		)
		if err := rows.Scan(&e.Seq, &e.Key, &e.UserID, &e.Kind, &e.Payload, &recorded,
			&state, &e.Attempts, &next, &e.LastError, &e.Claim); err != nil {
			rows.Close()
			return nil, err
		}
		e.RecordedAt, e.NextAttempt = fromUnix(recorded), fromUnix(next)
		e.Dead = state == outboxDead
		out = append(out, e)
	}
	if err := closeRows(rows); err != nil {
		return nil, err
	}
	return out, nil
}

// ceilUnix is t in Unix seconds, rounded up to a whole second; 0 for the
// zero time.
func ceilUnix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix() + boolInt(t.Nanosecond() != 0)
}
