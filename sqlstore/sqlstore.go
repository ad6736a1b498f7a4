package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobilling/billing"
)

var (
	_ billing.Store       = (*Store)(nil)
	_ billing.EventLister = (*Store)(nil)
)

// Defaults for the zero values of Options' fields.
const (
	// DefaultTablePrefix starts the name of every table and index.
	DefaultTablePrefix = "billing_"

	// DefaultEventRetention is how long the record of a processed event
	// is kept: Stripe retries a delivery for up to 3 days and keeps
	// events for 30, so a record older than 35 days can no longer meet a
	// duplicate.
	DefaultEventRetention = 35 * 24 * time.Hour

	// DefaultMaxRetries is how often a transaction is retried after a
	// deadlock or serialization failure.
	DefaultMaxRetries = 10
)

// Options configures [New]. The zero value is the defaults.
type Options struct {
	// TablePrefix starts the name of every table and index of the store
	// (default DefaultTablePrefix, "billing_"): customers, subscriptions,
	// events, grants, parked_events, outbox, refunds and
	// schema_migrations. Several stores with different prefixes can share
	// a database. It must be at most 32 lowercase ASCII letters, digits
	// and underscores, starting with a letter or an underscore.
	TablePrefix string

	// EventRetention is the age past which [Store.PruneEvents] deletes the
	// record of a processed event (default DefaultEventRetention). An
	// event redelivered after its record is gone is applied again;
	// keep it longer than Stripe's 30 days.
	EventRetention time.Duration

	// MaxRetries is how many times a transaction that failed with a
	// deadlock or a serialization failure (PostgreSQL 40001 and 40P01,
	// MySQL 1213 and 1205, SQLite SQLITE_BUSY) is run again, after a short
	// random pause, before its error is returned (default
	// DefaultMaxRetries; negative means never).
	MaxRetries int

	// Now is the clock that stamps processed events and that PruneEvents
	// measures their age by (default time.Now).
	Now func() time.Time
}

// Store is a [billing.Store] on a SQL database. Create one with [New] and
// its tables with [Store.Migrate]. It holds no state but its settings,
// and is safe for concurrent use; any number of Stores, in any number of
// processes, may share the database.
//
// Times are kept as Unix seconds: a stored time comes back in UTC,
// without its fraction of a second (billing's are whole seconds).
type Store struct {
	db         *sql.DB
	d          dialect
	prefix     string
	q          queries
	retention  time.Duration
	maxRetries int
	now        func() time.Time

	// stmts holds the store's statements prepared on the pool, by query:
	// database/sql prepares each once on every connection that runs it,
	// so that a statement is one round trip (go-sql-driver/mysql would
	// otherwise prepare and close it around every call).
	stmts sync.Map
	// warm is set once every statement of a transaction is prepared: a
	// transaction prepares nothing itself (with a pool of one connection,
	// it would wait for its own).
	warm atomic.Bool
}

// warmUp prepares the statements transactions run, once, before a
// transaction begins. A failure (the tables not made yet, say) leaves the
// statements unprepared, to be tried again before the next transaction;
// transactions run them unprepared meanwhile.
func (s *Store) warmUp(ctx context.Context) {
	if s.warm.Load() {
		return
	}
	for _, q := range s.q.inTx() {
		if q == "" {
			continue
		}
		if _, err := s.prepared(ctx, q); err != nil {
			return
		}
	}
	s.warm.Store(true)
}

// prepared returns query prepared on the pool.
func (s *Store) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// forgetPrepared closes the prepared statements (after a migration has
// changed the tables they read).
func (s *Store) forgetPrepared() {
	s.warm.Store(false)
	s.stmts.Range(func(k, v any) bool {
		v.(*sql.Stmt).Close()
		s.stmts.Delete(k)
		return true
	})
}

// exec runs a statement of the store's on the pool, prepared.
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := s.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// query runs a query of the store's on the pool, prepared.
func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := s.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRow scans the first row of a query of the store's into dest
// (sql.ErrNoRows when there is none).
func (s *Store) queryRow(ctx context.Context, query string, args []any, dest ...any) error {
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return err
	}
	return scanOne(rows, dest...)
}

// scanOne scans the first of rows into dest, then closes them.
func scanOne(rows *sql.Rows, dest ...any) error {
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	return rows.Close()
}

var prefixRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,31}$`)

// New returns a Store that keeps its data in db, a database of dialect d,
// in the tables named by opts.TablePrefix. The caller opens and closes
// db, and sizes its pool as it likes (one connection works).
//
// New checks the database's settings where they matter: for SQLite, WAL,
// a busy timeout and IMMEDIATE transactions (see [OpenSQLite]); for
// MySQL, a strict sql_mode. Its error says what is missing and how to
// set it. It does not create the tables: call [Store.Migrate], or apply
// [Migrations] with your own tool.
func New(ctx context.Context, db *sql.DB, d Dialect, opts Options) (*Store, error) {
	if db == nil {
		return nil, errors.New("sqlstore: New: nil *sql.DB")
	}
	dl, err := dialectOf(d)
	if err != nil {
		return nil, err
	}
	prefix := cmp.Or(opts.TablePrefix, DefaultTablePrefix)
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	if opts.EventRetention < 0 {
		return nil, fmt.Errorf("sqlstore: negative EventRetention %s", opts.EventRetention)
	}
	s := &Store{
		db:         db,
		d:          dl,
		prefix:     prefix,
		q:          newQueries(dl, prefix),
		retention:  cmp.Or(opts.EventRetention, DefaultEventRetention),
		maxRetries: opts.MaxRetries,
		now:        opts.Now,
	}
	switch {
	case s.maxRetries == 0:
		s.maxRetries = DefaultMaxRetries
	case s.maxRetries < 0:
		s.maxRetries = 0
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := dl.check(ctx, db); err != nil {
		return nil, err
	}
	s.q = newQueries(dl, prefix) // check may have learnt what the database can do
	return s, nil
}

// Dialect returns the store's dialect.
func (s *Store) Dialect() Dialect { return s.d.name() }

// TablePrefix returns the prefix of the store's table names.
func (s *Store) TablePrefix() string { return s.prefix }

// Apply runs fn in one database transaction that first records eventID
// and commits fn's writes with it, or nothing. See [billing.Store.Apply].
//
// The record is an INSERT into the events table, whose primary key is
// the event ID: if the ID is recorded, Apply returns
// [billing.ErrDuplicateEvent] without calling fn; if another transaction
// is recording it at the same moment (another goroutine, or another
// process on the same database), the INSERT waits for that transaction,
// and returns the duplicate once it commits (or goes on, if it rolls
// back). An empty eventID records nothing. The same INSERT keeps what
// billing tells of the event in ctx ([billing.EventInfoFrom]: its type,
// object ID and how it came; empty when ctx tells nothing), for
// [Store.RecentEvents].
//
// When the transaction fails with a deadlock or a serialization failure,
// Apply rolls it back and runs it again, fn included, up to
// Options.MaxRetries times; then it returns the error, wrapped. So fn
// may run more than once: it must do nothing outside tx that cannot be
// repeated. An error of fn's own is returned unchanged, with everything
// rolled back.
//
// fn must make its reads and writes through tx. With a pool of one
// connection, calling the Store's other methods from fn waits forever.
func (s *Store) Apply(ctx context.Context, eventID string, fn func(ctx context.Context, tx billing.Tx) error) error {
	return s.retry(ctx, func() error { return s.applyOnce(ctx, eventID, fn) })
}

func (s *Store) applyOnce(ctx context.Context, eventID string, fn func(ctx context.Context, tx billing.Tx) error) error {
	s.warmUp(ctx)
	sqlTx, err := s.db.BeginTx(ctx, s.d.txOptions())
	if err != nil {
		return fmt.Errorf("sqlstore: begin: %w", err)
	}
	t := &tx{s: s, q: sqlTx}
	committed := false
	defer func() {
		if !committed { // an error, or a panic in fn
			_ = sqlTx.Rollback()
		}
	}()
	if eventID != "" {
		ok, err := s.d.inserted(t.exec(ctx, s.q.insertEvent, s.eventArgs(ctx, eventID)...))
		if err != nil {
			return fmt.Errorf("sqlstore: record event %s: %w", eventID, err)
		}
		if !ok {
			return billing.ErrDuplicateEvent
		}
	}
	if err := fn(ctx, t); err != nil {
		return err
	}
	committed = true // whatever Commit returns, the transaction is over
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("sqlstore: commit: %w", err)
	}
	return nil
}

// ApplyNewer is [billing.ConditionalStore.ApplyNewer] in one transaction:
// the event's INSERT, then an INSERT ... SELECT from the customer's link
// whose ON CONFLICT DO UPDATE is the compare-and-swap on order_key. On
// PostgreSQL it is one statement on its own (WITH ... INSERT), which
// writes the subscription unless the event is recorded and records the
// event only if it wrote. Nothing it does not save is kept. On MySQL it declines (see billing.ConditionalStore) when
// its connections count found rows (clientFoundRows=true in the DSN):
// then it cannot tell a write from none. The event's INSERT keeps what
// ctx tells of the event, as Apply's does.
func (s *Store) ApplyNewer(ctx context.Context, eventID string, sub billing.Subscription) (saved, duplicate bool, err error) {
	args, ok, err := s.newerArgs(eventID, sub)
	if !ok || err != nil {
		return false, false, err
	}
	if s.q.applyNewer != "" {
		// One statement, on its own: one round trip.
		err = s.retry(ctx, func() error {
			saved, duplicate = false, false
			var written, recorded, before int64
			err := s.queryRow(ctx, s.q.applyNewer, slices.Concat(args, []any{eventID}, s.eventArgs(ctx, eventID), []any{eventID}),
				&written, &recorded, &before)
			if err != nil {
				return fmt.Errorf("sqlstore: record event %s and save subscription %s: %w", eventID, sub.ID, err)
			}
			saved = written > 0 && recorded > 0
			duplicate = !saved && (before > 0 || written > 0)
			return nil
		})
		return saved, duplicate, err
	}
	r, err := s.applyNewerTx(ctx, eventID, sub, args, false)
	return r.Saved, r.Duplicate, err
}

// newerArgs are the arguments of upsertNewer for sub (its user comes
// from the customer's link), or ok false when the store declines.
func (s *Store) newerArgs(eventID string, sub billing.Subscription) (args []any, ok bool, err error) {
	if s.q.upsertNewer == "" || eventID == "" {
		return nil, false, nil
	}
	if args, err = subArgs(sub); err != nil {
		return nil, false, fmt.Errorf("sqlstore: %w", err)
	}
	return append(append(args[:2:2], args[3:]...), sub.CustomerID), true, nil
}

// applyNewerTx is ApplyNewer in a transaction of its own, for the
// databases that cannot do it in one statement: INSERT the event, then
// the compare-and-swap. With report, it also reads the row it swaps FOR
// UPDATE first, and says what it replaced and the saved row's user.
func (s *Store) applyNewerTx(ctx context.Context, eventID string, sub billing.Subscription, args []any, report bool) (billing.NewerResult, error) {
	var r billing.NewerResult
	err := s.retry(ctx, func() error {
		r = billing.NewerResult{}
		s.warmUp(ctx)
		sqlTx, err := s.db.BeginTx(ctx, s.d.txOptions())
		if err != nil {
			return fmt.Errorf("sqlstore: begin: %w", err)
		}
		defer sqlTx.Rollback() //nolint:errcheck // after Commit, a no-op
		t := &tx{s: s, q: sqlTx}
		ok, err := s.d.inserted(t.exec(ctx, s.q.insertEvent, s.eventArgs(ctx, eventID)...))
		if err != nil {
			return fmt.Errorf("sqlstore: record event %s: %w", eventID, err)
		}
		if !ok {
			r.Duplicate = true
			return nil
		}
		var prev billing.Subscription
		var found bool
		if report {
			if prev, found, err = t.Subscription(ctx, sub.ID); err != nil {
				return err
			}
		}
		res, err := t.exec(ctx, s.q.upsertNewer, args...)
		if err != nil {
			return fmt.Errorf("sqlstore: save subscription %s: %w", sub.ID, err)
		}
		n, err := res.RowsAffected()
		if err != nil || n == 0 {
			return err // not newer, or no such customer: rolled back
		}
		if report && !found && s.d.name() == MySQL && n != 1 {
			// Created by a concurrent transaction after this one found it
			// absent (ON DUPLICATE KEY UPDATE counts 2): the previous row
			// is not known, so nothing is kept and billing takes the
			// general path.
			return nil
		}
		user := prev.UserID
		if report && (!found || prev.CustomerID != sub.CustomerID || user == "") {
			if user, err = t.UserID(ctx, sub.CustomerID); err != nil {
				return fmt.Errorf("sqlstore: the user of %s: %w", sub.CustomerID, err)
			}
		}
		if err := sqlTx.Commit(); err != nil {
			return fmt.Errorf("sqlstore: commit: %w", err)
		}
		r = billing.NewerResult{Saved: true, Previous: prev, Found: found, UserID: user}
		return nil
	})
	return r, err
}

var (
	_ billing.ConditionalStore = (*Store)(nil)
	_ billing.PreviousReporter = (*Store)(nil)
)

// ApplyNewerReporting is ApplyNewer that also returns the record it
// replaced and the saved record's user: on PostgreSQL in the same one
// statement (the previous row read FOR UPDATE in a CTE); elsewhere with
// one more statement in its transaction (the row read FOR UPDATE before
// the swap). See [billing.PreviousReporter].
func (s *Store) ApplyNewerReporting(ctx context.Context, eventID string, sub billing.Subscription) (billing.NewerResult, error) {
	args, ok, err := s.newerArgs(eventID, sub)
	if !ok || err != nil {
		return billing.NewerResult{}, err
	}
	if s.q.applyNewerPrev == "" {
		return s.applyNewerTx(ctx, eventID, sub, args, true)
	}
	var r billing.NewerResult
	err = s.retry(ctx, func() error {
		var err error
		r, err = s.applyNewerPrev(ctx, eventID, sub, args)
		if racedPrevious(err) {
			r = billing.NewerResult{} // undone: nothing saved, billing takes the general path
			return nil
		}
		if err != nil {
			return fmt.Errorf("sqlstore: record event %s and save subscription %s: %w", eventID, sub.ID, err)
		}
		return nil
	})
	return r, err
}

// applyNewerPrev runs PostgreSQL's one statement of ApplyNewerReporting;
// its self-abort (racedPrevious) is the caller's to read.
func (s *Store) applyNewerPrev(ctx context.Context, eventID string, sub billing.Subscription, args []any) (billing.NewerResult, error) {
	var r billing.NewerResult
	rows, err := s.query(ctx, s.q.applyNewerPrev, slices.Concat([]any{sub.ID}, args, []any{eventID}, s.eventArgs(ctx, eventID), []any{eventID})...)
	if err != nil {
		return r, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return r, err
		}
		return r, sql.ErrNoRows
	}
	var written, recorded, before, found, raced int64
	prev, err := scanSub(prefixedSuffixed{rows, []any{&written, &recorded, &before, &r.UserID, &found}, []any{&raced}})
	if err != nil {
		return billing.NewerResult{}, err
	}
	if err := rows.Close(); err != nil {
		return billing.NewerResult{}, err
	}
	r.Saved = written > 0 && recorded > 0
	r.Duplicate = !r.Saved && (before > 0 || written > 0)
	if r.Saved && found > 0 {
		r.Previous, r.Found = prev, true
	}
	if !r.Saved {
		r.UserID = ""
	}
	return r, nil
}

// prefixedSuffixed scans a row whose first columns are pre's, whose last
// are post's, and the rest in between.
type prefixedSuffixed struct {
	rows      *sql.Rows
	pre, post []any
}

func (p prefixedSuffixed) Scan(dest ...any) error {
	return p.rows.Scan(slices.Concat(p.pre, dest, p.post)...)
}

// eventArgs are the values of eventCols for recording eventID now, with
// what billing tells of the event in ctx ("" for what it does not tell),
// made storable.
func (s *Store) eventArgs(ctx context.Context, eventID string) []any {
	info, _ := billing.EventInfoFrom(ctx)
	return []any{eventID, s.now().Unix(), storableText(info.Type), storableText(info.ObjectID), storableText(info.Via)}
}

// maxTextLen is the longest event type, object ID or "via" kept, in
// bytes: the IDs' length (VARCHAR(255) on MySQL, which counts
// characters).
const maxTextLen = 255

// storableText is s as every database keeps it: valid UTF-8 without NUL
// bytes (PostgreSQL's text refuses both; each becomes U+FFFD), cut to
// maxTextLen bytes on a rune boundary. billing's are storable already:
// recording an event never fails on what it tells of it.
func storableText(s string) string {
	if len(s) <= maxTextLen && utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	for len(s) > maxTextLen {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// RecentEvents returns up to limit recorded events, newest first (by
// processed_at, in whole seconds by Options.Now, then ID byte-wise
// descending): one statement on the processed_at index. See
// [billing.EventLister]. Events recorded before schema version 6 have an
// empty type, object ID and via; those PruneEvents deleted are gone.
func (s *Store) RecentEvents(ctx context.Context, limit int) ([]billing.ProcessedEvent, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.query(ctx, s.q.recentEvents, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: read recent events: %w", err)
	}
	var evs []billing.ProcessedEvent
	for rows.Next() {
		var (
			ev billing.ProcessedEvent
			at int64
		)
		if err := rows.Scan(&ev.ID, &at, &ev.Type, &ev.ObjectID, &ev.Via); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlstore: read recent events: %w", err)
		}
		ev.ProcessedAt = fromUnix(at)
		evs = append(evs, ev)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("sqlstore: read recent events: %w", err)
	}
	return evs, nil
}

// retry runs op until it succeeds, fails with an error that is not worth
// retrying, or has been retried s.maxRetries times.
func (s *Store) retry(ctx context.Context, op func() error) error {
	for attempt := 0; ; attempt++ {
		err := op()
		if err == nil || !s.d.retryable(err) {
			return err
		}
		if attempt >= s.maxRetries {
			return fmt.Errorf("sqlstore: gave up after %d attempts: %w", attempt+1, err)
		}
		// A random pause, growing with the attempts (2ms, 4ms, ... up to
		// 256ms), so that the transactions that collided do not collide
		// again.
		ceiling := 2 * time.Millisecond << min(attempt, 7)
		t := time.NewTimer(ceiling/2 + rand.N(ceiling/2))
		select {
		case <-ctx.Done():
			t.Stop()
			return errCanceled(ctx, "retry after a deadlock or serialization failure", err)
		case <-t.C:
		}
	}
}

// Processed reports whether eventID was recorded by a committed Apply:
// one lookup by primary key.
func (s *Store) Processed(ctx context.Context, eventID string) (bool, error) {
	if eventID == "" {
		return false, nil
	}
	var one int
	err := s.queryRow(ctx, s.q.selectEvent, []any{eventID}, &one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("sqlstore: look up event %s: %w", eventID, err)
	}
	return true, nil
}

// CustomerID returns the Stripe customer linked to userID, or
// [billing.ErrNotFound].
func (s *Store) CustomerID(ctx context.Context, userID string) (string, error) {
	c, err := customerOf(ctx, s.db, s.q, userID)
	if err != nil {
		return "", err
	}
	if c == "" {
		return "", billing.ErrNotFound
	}
	return c, nil
}

// customerOf returns the customer linked to userID, or "".
func customerOf(ctx context.Context, q querier, qs queries, userID string) (string, error) {
	var c string
	err := q.QueryRowContext(ctx, qs.customerByUser, userID).Scan(&c)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("sqlstore: look up customer of user %s: %w", userID, err)
	}
	return c, nil
}

// Facts returns everything stored for userID, subscriptions sorted by
// ID, grants by GrantedAt then CheckoutSessionID, and refunds by
// PaymentIntentID (IDs compared byte-wise). A user with nothing stored
// gets zero Facts with UserID set, and a nil error. Each table is read
// with one statement.
func (s *Store) Facts(ctx context.Context, userID string) (billing.Facts, error) {
	f := billing.Facts{UserID: userID}
	var err error
	if f.CustomerID, err = customerOf(ctx, s.db, s.q, userID); err != nil {
		return billing.Facts{}, err
	}

	if f.Subscriptions, err = readSubs(s.query(ctx, s.q.subsByUser, userID)); err != nil {
		return billing.Facts{}, fmt.Errorf("sqlstore: read subscriptions of user %s: %w", userID, err)
	}

	rows, err := s.query(ctx, s.q.grantsByUser, userID)
	if err != nil {
		return billing.Facts{}, fmt.Errorf("sqlstore: read grants of user %s: %w", userID, err)
	}
	for rows.Next() {
		g, err := scanGrant(rows)
		if err != nil {
			rows.Close()
			return billing.Facts{}, fmt.Errorf("sqlstore: read grants of user %s: %w", userID, err)
		}
		f.Grants = append(f.Grants, g)
	}
	if err := closeRows(rows); err != nil {
		return billing.Facts{}, fmt.Errorf("sqlstore: read grants of user %s: %w", userID, err)
	}

	if f.Refunds, err = readRefunds(s.query(ctx, s.q.refundsByUser, userID)); err != nil {
		return billing.Facts{}, fmt.Errorf("sqlstore: read refunds of user %s: %w", userID, err)
	}

	slices.SortFunc(f.Subscriptions, func(a, b billing.Subscription) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(f.Grants, func(a, b billing.Grant) int {
		if c := a.GrantedAt.Compare(b.GrantedAt); c != 0 {
			return c
		}
		return strings.Compare(a.CheckoutSessionID, b.CheckoutSessionID)
	})
	slices.SortFunc(f.Refunds, func(a, b billing.Refund) int { return strings.Compare(a.PaymentIntentID, b.PaymentIntentID) })
	return f, nil
}

// closeRows closes rows and returns the error that ended their
// iteration, if any.
func closeRows(rows *sql.Rows) error {
	err := rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	return err
}

// Park keeps ev. Parking an ID again replaces its fields but keeps its
// first ParkedAt (in whole seconds).
func (s *Store) Park(ctx context.Context, ev billing.ParkedEvent) error {
	payload := ev.Payload
	if payload == nil {
		payload = []byte{}
	}
	args := s.d.upsertArgs([]any{ev.ID, ev.Type, ev.CustomerID, ev.Reason, payload, toUnix(ev.ParkedAt)}, len(parkedCols)-2)
	err := s.retry(ctx, func() error {
		_, err := s.exec(ctx, s.q.upsertParked, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlstore: park event %s: %w", ev.ID, err)
	}
	return nil
}

// ParkedEvent returns the parked event with ID id, payload included, or
// [billing.ErrNotFound].
func (s *Store) ParkedEvent(ctx context.Context, id string) (billing.ParkedEvent, error) {
	var (
		ev       billing.ParkedEvent
		parkedAt int64
	)
	err := s.queryRow(ctx, s.q.selectParked, []any{id}, &ev.ID, &ev.Type, &ev.CustomerID, &ev.Reason, &ev.Payload, &parkedAt)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return billing.ParkedEvent{}, billing.ErrNotFound
	case err != nil:
		return billing.ParkedEvent{}, fmt.Errorf("sqlstore: read parked event %s: %w", id, err)
	}
	ev.ParkedAt = fromUnix(parkedAt)
	return ev, nil
}

// ParkedEvents returns up to limit parked events after the cursor, oldest
// first (by ParkedAt, then ID compared byte-wise), without their payloads:
// one statement on the parked_at index.
func (s *Store) ParkedEvents(ctx context.Context, after billing.ParkedCursor, limit int) ([]billing.ParkedEvent, error) {
	if limit <= 0 {
		return nil, nil
	}
	at := toUnix(after.ParkedAt)
	rows, err := s.query(ctx, s.q.pageParked, at, at, after.ID, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: read parked events: %w", err)
	}
	var evs []billing.ParkedEvent
	for rows.Next() {
		var (
			ev       billing.ParkedEvent
			parkedAt int64
		)
		if err := rows.Scan(&ev.ID, &ev.Type, &ev.CustomerID, &ev.Reason, &parkedAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlstore: read parked events: %w", err)
		}
		ev.ParkedAt = fromUnix(parkedAt)
		evs = append(evs, ev)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("sqlstore: read parked events: %w", err)
	}
	return evs, nil
}

// CountParked returns how many events are parked, reading no payload.
func (s *Store) CountParked(ctx context.Context) (int64, error) {
	var n int64
	if err := s.queryRow(ctx, s.q.countParked, nil, &n); err != nil {
		return 0, fmt.Errorf("sqlstore: count parked events: %w", err)
	}
	return n, nil
}

// Unpark removes the parked event with ID id, if there is one.
func (s *Store) Unpark(ctx context.Context, id string) error {
	err := s.retry(ctx, func() error {
		_, err := s.exec(ctx, s.q.deleteParked, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlstore: unpark event %s: %w", id, err)
	}
	return nil
}

// PruneParked removes the events parked before cutoff (whole seconds).
func (s *Store) PruneParked(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	err := s.retry(ctx, func() error {
		res, err := s.exec(ctx, s.q.pruneParked, cutoff.Unix()+boolInt(cutoff.Truncate(time.Second).Before(cutoff)))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlstore: prune parked events: %w", err)
	}
	return n, nil
}

// boolInt is 1 for true.
func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// pruneBatchSize is how many event records one statement of PruneEvents
// deletes, so that no statement holds its locks for long.
const pruneBatchSize = 1000

// PruneEvents deletes the records of the events processed more than
// Options.EventRetention ago (by the store's clock), in batches of 1,000
// rows, and returns how many it deleted. Call it now and then, for
// instance daily from a cron job or a ticker in one replica (running it
// in several at once is harmless). If ctx ends it stops, and returns what
// it deleted so far with the error.
func (s *Store) PruneEvents(ctx context.Context) (int64, error) {
	cutoff := s.now().Add(-s.retention).Unix()
	var total int64
	for {
		var n int64
		err := s.retry(ctx, func() error {
			res, err := s.exec(ctx, s.q.pruneEvents, cutoff, pruneBatchSize)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("sqlstore: prune events: %w", err)
		}
		total += n
		if n < pruneBatchSize {
			return total, nil
		}
	}
}

// toUnix is t in Unix seconds, 0 for the zero time.
func toUnix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// fromUnix is the UTC time of Unix seconds sec, the zero time for 0.
func fromUnix(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0).UTC()
}
