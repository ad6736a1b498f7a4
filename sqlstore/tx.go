package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/gobilling/billing"
)

// queries are the statements of one store: its dialect's SQL with its
// table names.
type queries struct {
	insertEvent, selectEvent, pruneEvents, recentEvents string

	customerByUser, userByCustomer, linksOf, insertCustomer string

	lockUser, userByCustomerForUpdate string

	// upsertNewer is ApplyNewer's compare-and-swap (see newerUpsert), and
	// applyNewer the event's INSERT and it in one statement, where the
	// database can (see newerApply).
	upsertNewer, applyNewer, applyNewerPrev string

	selectSubForUpdate, subsByUser, insertSub, updateSub string

	insertGrant, grantsByUser string

	// The refunds': a payment's record read for update, created or
	// replaced (an upsert on the key), and a user's records.
	selectRefundForUpdate, upsertRefund, refundsByUser string

	upsertParked, selectParked, pageParked, countParked, deleteParked, pruneParked string

	// The outbox's (see outbox.go). claimOutbox is Claim in one
	// statement, where the database can (see dialect.claimOutbox);
	// otherwise Claim reads the heads with outboxHeads, then locks and
	// claims them with lockOutbox and setClaim, templates whose "IN (%s)"
	// takes a list of seqs.
	insertOutbox, claimOutbox, outboxHeads, outboxDelivered, outboxFailed, outboxDead string
	deadOutbox, requeueOutbox, discardOutbox, pruneOutbox, outboxStats                string
	lockOutbox, setClaim                                                              string

	// listing.go's: a checkpoint read, saved (an upsert on the name) and
	// removed; a page of subscriptions of any status, and the template of
	// one of some statuses, whose "IN (%s)" takes their list.
	selectCheckpoint, upsertCheckpoint, deleteCheckpoint, pageSubs, pageSubsOf string
}

// subZero are the zero values of subCols, for a row that is not there.
var subZero = func() map[string]string {
	z := map[string]string{}
	for _, c := range subCols {
		z[c] = "0"
	}
	for _, c := range []string{"id", "customer_id", "user_id", "status", "items", "latest_invoice_id", "invoice_id"} {
		z[c] = "''"
	}
	for _, c := range []string{"cancel_at_period_end", "invoice_paid", "invoice_closed"} {
		z[c] = "FALSE"
	}
	return z
}()

// subCols are the columns of the subscriptions table, in the order scanSub
// reads them and subArgs gives them.
var subCols = []string{
	"id", "customer_id", "user_id", "status", "items", "cancel_at_period_end",
	"cancel_at", "canceled_at", "ended_at", "trial_start", "trial_end", "latest_invoice_id", "version",
	"invoice_id", "invoice_created", "invoice_paid", "invoice_closed", "invoice_attempt_count", "invoice_next_payment_attempt",
	"order_key",
}

// stateCols are the columns of a subscription's state: what ApplyNewer
// replaces (not the owner, not the invoice facts).
var stateCols = []string{"status", "items", "cancel_at_period_end", "cancel_at", "canceled_at", "ended_at",
	"trial_start", "trial_end", "latest_invoice_id", "version", "order_key"}

var grantCols = []string{
	"checkout_session_id", "user_id", "customer_id", "price_id", "quantity", "credits", "amount_total", "currency", "granted_at",
	"payment_intent_id",
}

// refundCols are the columns of the refunds table, in the order scanRefund
// reads them and refundArgs gives them; the key first.
var refundCols = []string{"payment_intent_id", "charge_id", "user_id", "customer_id", "amount", "currency", "version"}

// eventCols are the columns of the events table, in the order
// insertEvent takes them and RecentEvents reads them (the last three
// from schema version 6).
var eventCols = []string{"id", "processed_at", "type", "object_id", "via"}

var parkedCols = []string{"id", "type", "customer_id", "reason", "payload", "parked_at"}

// outboxCols are the columns of the outbox table that scanEntry reads, in
// its order.
var outboxCols = []string{"seq", "entry_key", "user_id", "kind", "payload", "recorded_at",
	"state", "attempts", "next_attempt_at", "last_error", "claim"}

// Table names without their prefix.
const (
	tableCustomers     = "customers"
	tableSubscriptions = "subscriptions"
	tableEvents        = "events"
	tableGrants        = "grants"
	tableParked        = "parked_events"
	tableOutbox        = "outbox"
	tableRefunds       = "refunds"
	tableMigrations    = "schema_migrations"
	tableCheckpoints   = "checkpoints"
)

// inTx are the statements transactions run.
func (q queries) inTx() []string {
	return []string{q.userByCustomerForUpdate, q.lockUser, q.insertCustomer, q.linksOf,
		q.selectSubForUpdate, q.updateSub, q.insertSub, q.insertGrant, q.upsertNewer,
		// Last, by schema version: a schema not migrated yet still
		// prepares the statements of the versions it has.
		q.insertOutbox, q.selectRefundForUpdate, q.upsertRefund, q.insertEvent, q.applyNewer, q.applyNewerPrev}
}

func newQueries(d dialect, prefix string) queries {
	var (
		customers = prefix + tableCustomers
		subs      = prefix + tableSubscriptions
		events    = prefix + tableEvents
		grants    = prefix + tableGrants
		parked    = prefix + tableParked
		outbox    = prefix + tableOutbox
		refunds   = prefix + tableRefunds
		points    = prefix + tableCheckpoints
	)
	insert := func(table string, cols []string) string {
		return d.insertIfAbsent("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES (" + marks(len(cols)) + ")")
	}
	set := func(cols []string) string {
		return strings.Join(cols, " = ?, ") + " = ?"
	}
	allSub := strings.Join(subCols, ", ")
	q := queries{
		insertEvent: insert(events, eventCols),
		selectEvent: "SELECT 1 FROM " + events + " WHERE id = ?",
		pruneEvents: d.deleteBatch(events, "id", "processed_at < ?", "processed_at"),
		// Newest first, on the processed_at index.
		recentEvents: "SELECT " + strings.Join(eventCols, ", ") + " FROM " + events +
			" ORDER BY processed_at DESC, id" + d.byteWise() + " DESC LIMIT ?",

		customerByUser: "SELECT customer_id FROM " + customers + " WHERE user_id = ?",
		userByCustomer: "SELECT user_id FROM " + customers + " WHERE customer_id = ?",
		// The user's link row is the lock of the user's records.
		userByCustomerForUpdate: "SELECT user_id FROM " + customers + " WHERE customer_id = ?" + d.forUpdate(),
		lockUser:                "SELECT 1 FROM " + customers + " WHERE user_id = ?" + d.forUpdate(),
		linksOf:                 "SELECT user_id, customer_id FROM " + customers + " WHERE user_id = ? OR customer_id = ?",
		insertCustomer:          insert(customers, []string{"user_id", "customer_id", "linked_at"}),

		selectSubForUpdate: "SELECT " + allSub + " FROM " + subs + " WHERE id = ?" + d.forUpdate(),
		subsByUser:         "SELECT " + allSub + " FROM " + subs + " WHERE user_id = ?",
		insertSub:          insert(subs, subCols),
		upsertNewer:        d.newerUpsert(subs, customers, subCols, stateCols),
		applyNewer:         d.newerApply(events, subs, customers, subCols, stateCols),
		applyNewerPrev:     d.newerApplyPrev(events, subs, customers, subCols, stateCols, subZero),
		updateSub:          "UPDATE " + subs + " SET " + set(subCols[1:]) + " WHERE id = ?",

		insertGrant:  insert(grants, grantCols),
		grantsByUser: "SELECT " + strings.Join(grantCols, ", ") + " FROM " + grants + " WHERE user_id = ?",

		selectRefundForUpdate: "SELECT " + strings.Join(refundCols, ", ") + " FROM " + refunds + " WHERE payment_intent_id = ?" + d.forUpdate(),
		// Every column but the key replaced.
		upsertRefund:  d.upsert(refunds, refundCols, len(refundCols)-1),
		refundsByUser: "SELECT " + strings.Join(refundCols, ", ") + " FROM " + refunds + " WHERE user_id = ?",

		// A parked event parked again keeps its parked_at (the last column).
		upsertParked: d.upsert(parked, parkedCols, len(parkedCols)-2),
		selectParked: "SELECT " + strings.Join(parkedCols, ", ") + " FROM " + parked + " WHERE id = ?",
		pageParked: "SELECT id, type, customer_id, reason, parked_at FROM " + parked +
			" WHERE parked_at > ? OR (parked_at = ? AND id" + d.byteWise() + " > ?)" +
			" ORDER BY parked_at, id" + d.byteWise() + " LIMIT ?",
		countParked:  "SELECT COUNT(*) FROM " + parked,
		deleteParked: "DELETE FROM " + parked + " WHERE id = ?",
		pruneParked:  "DELETE FROM " + parked + " WHERE parked_at < ?",

		// A new entry: pending, due when recorded, no attempts, no claim.
		insertOutbox: d.insertIfAbsent("INSERT INTO " + outbox + " (entry_key, user_id, kind, payload, recorded_at, next_attempt_at," +
			" state, attempts, claim, claimed_until, last_error, delivered_at) VALUES (?, ?, ?, ?, ?, ?, 0, 0, '', 0, '', 0)"),
		claimOutbox: d.claimOutbox(outbox, outboxHeads(outbox), outboxCols),
		outboxHeads: outboxHeads(outbox),
		lockOutbox: "SELECT " + strings.Join(outboxCols, ", ") + " FROM " + outbox +
			" WHERE seq IN (%s) AND state = 0 AND next_attempt_at <= ? AND claimed_until <= ?" + d.skipLocked(),
		setClaim:        "UPDATE " + outbox + " SET claim = ?, claimed_until = ? WHERE seq IN (%s)",
		outboxDelivered: "UPDATE " + outbox + " SET state = 1, delivered_at = ?, claim = '', claimed_until = 0 WHERE entry_key = ? AND state = 0",
		outboxFailed: "UPDATE " + outbox + " SET attempts = attempts + 1, last_error = ?, claim = '', claimed_until = 0, next_attempt_at = ?" +
			" WHERE entry_key = ? AND state = 0 AND claim = ?",
		outboxDead: "UPDATE " + outbox + " SET attempts = attempts + 1, last_error = ?, claim = '', claimed_until = 0, state = 2" +
			" WHERE entry_key = ? AND state = 0 AND claim = ?",
		deadOutbox: "SELECT " + strings.Join(outboxCols, ", ") + " FROM " + outbox + " WHERE state = 2 AND seq > ? ORDER BY seq LIMIT ?",
		requeueOutbox: "UPDATE " + outbox + " SET state = 0, attempts = 0, next_attempt_at = ?, last_error = '', claim = '', claimed_until = 0" +
			" WHERE entry_key = ? AND state = 2",
		discardOutbox: "DELETE FROM " + outbox + " WHERE entry_key = ? AND state = 2",
		pruneOutbox:   d.deleteBatch(outbox, "seq", "state = 1 AND delivered_at < ?", "delivered_at"),
		outboxStats:   "SELECT state, COUNT(*), MIN(recorded_at) FROM " + outbox + " WHERE state IN (0, 2) GROUP BY state",

		selectCheckpoint: "SELECT value FROM " + points + " WHERE name = ?",
		upsertCheckpoint: d.upsert(points, []string{"name", "value", "updated_at"}, 2),
		deleteCheckpoint: "DELETE FROM " + points + " WHERE name = ?",
		pageSubs: "SELECT " + allSub + " FROM " + subs + " WHERE id" + d.byteWise() + " > ?" +
			" ORDER BY id" + d.byteWise() + " LIMIT ?",
		pageSubsOf: "SELECT " + allSub + " FROM " + subs + " WHERE status IN (%s) AND id" + d.byteWise() + " > ?" +
			" ORDER BY id" + d.byteWise() + " LIMIT ?",
	}
	for _, p := range []*string{
		&q.insertEvent, &q.selectEvent, &q.pruneEvents, &q.recentEvents,
		&q.customerByUser, &q.userByCustomer, &q.linksOf, &q.insertCustomer,
		&q.lockUser, &q.userByCustomerForUpdate,
		&q.selectSubForUpdate, &q.subsByUser, &q.insertSub, &q.updateSub, &q.upsertNewer, &q.applyNewer, &q.applyNewerPrev,
		&q.insertGrant, &q.grantsByUser,
		&q.selectRefundForUpdate, &q.upsertRefund, &q.refundsByUser,
		&q.upsertParked, &q.selectParked, &q.pageParked, &q.countParked, &q.deleteParked, &q.pruneParked,
		&q.insertOutbox, &q.claimOutbox, &q.outboxHeads, &q.outboxDelivered, &q.outboxFailed, &q.outboxDead,
		&q.deadOutbox, &q.requeueOutbox, &q.discardOutbox, &q.pruneOutbox, &q.outboxStats,
		&q.selectCheckpoint, &q.upsertCheckpoint, &q.deleteCheckpoint, &q.pageSubs,
		// not lockOutbox, setClaim and pageSubsOf: bound once their lists are written
	} {
		*p = d.bind(*p)
	}
	return q
}

// outboxHeads selects the seqs of the entries Claim may claim: pending,
// due at ? (the first argument), not claimed or claimed until no later
// than ? (the second), and the first of their user's pending entries;
// lowest seq first, at most ? (the third). The head check reads the
// user's other entries without locking them: an entry claimed by a
// transaction still running is pending all the same, and holds its
// user's later entries back.
func outboxHeads(outbox string) string {
	return "SELECT o.seq FROM " + outbox + " o WHERE o.state = 0 AND o.next_attempt_at <= ? AND o.claimed_until <= ?" +
		" AND NOT EXISTS (SELECT 1 FROM " + outbox + " p WHERE p.state = 0 AND p.user_id = o.user_id AND p.seq < o.seq)" +
		" ORDER BY o.seq LIMIT ?"
}

// item is how a subscription item is kept in the items column (JSON).
type item struct {
	PriceID            string `json:"price_id"`
	Quantity           int64  `json:"quantity"`
	CurrentPeriodStart int64  `json:"current_period_start"`
	CurrentPeriodEnd   int64  `json:"current_period_end"`
}

func encodeItems(items []billing.Item) (string, error) {
	out := make([]item, len(items))
	for i, it := range items {
		out[i] = item{it.PriceID, it.Quantity, toUnix(it.CurrentPeriodStart), toUnix(it.CurrentPeriodEnd)}
	}
	b, err := json.Marshal(out)
	return string(b), err
}

func decodeItems(s string) ([]billing.Item, error) {
	var in []item
	if s != "" {
		if err := json.Unmarshal([]byte(s), &in); err != nil {
			return nil, fmt.Errorf("decode items: %w", err)
		}
	}
	if len(in) == 0 {
		return nil, nil
	}
	items := make([]billing.Item, len(in))
	for i, it := range in {
		items[i] = billing.Item{PriceID: it.PriceID, Quantity: it.Quantity,
			CurrentPeriodStart: fromUnix(it.CurrentPeriodStart), CurrentPeriodEnd: fromUnix(it.CurrentPeriodEnd)}
	}
	return items, nil
}

type scanner interface{ Scan(dest ...any) error }

// scanSub reads a row of subCols.
func scanSub(r scanner) (billing.Subscription, error) {
	var (
		s                                                   billing.Subscription
		status, items                                       string
		cancelAt, canceledAt, endedAt, trialStart, trialEnd int64
		version, invCreated, invNext                        int64
	)
	err := r.Scan(&s.ID, &s.CustomerID, &s.UserID, &status, &items, &s.CancelAtPeriodEnd,
		&cancelAt, &canceledAt, &endedAt, &trialStart, &trialEnd, &s.LatestInvoiceID, &version,
		&s.Invoice.ID, &invCreated, &s.Invoice.Paid, &s.Invoice.Closed, &s.Invoice.AttemptCount, &invNext, &s.OrderKey)
	if err != nil {
		return billing.Subscription{}, err
	}
	if s.Items, err = decodeItems(items); err != nil {
		return billing.Subscription{}, fmt.Errorf("subscription %s: %w", s.ID, err)
	}
	s.Status = billing.SubscriptionStatus(status)
	s.CancelAt, s.CanceledAt, s.EndedAt = fromUnix(cancelAt), fromUnix(canceledAt), fromUnix(endedAt)
	s.TrialStart, s.TrialEnd = fromUnix(trialStart), fromUnix(trialEnd)
	s.Version = fromUnix(version)
	s.Invoice.Created, s.Invoice.NextPaymentAttempt = fromUnix(invCreated), fromUnix(invNext)
	return s, nil
}

// subArgs are the values of subCols for s.
func subArgs(s billing.Subscription) ([]any, error) {
	items, err := encodeItems(s.Items)
	if err != nil {
		return nil, fmt.Errorf("encode items of subscription %s: %w", s.ID, err)
	}
	inv := s.Invoice
	return []any{s.ID, s.CustomerID, s.UserID, string(s.Status), items, s.CancelAtPeriodEnd,
		toUnix(s.CancelAt), toUnix(s.CanceledAt), toUnix(s.EndedAt), toUnix(s.TrialStart), toUnix(s.TrialEnd),
		s.LatestInvoiceID, toUnix(s.Version),
		inv.ID, toUnix(inv.Created), inv.Paid, inv.Closed, inv.AttemptCount, toUnix(inv.NextPaymentAttempt), s.OrderKey}, nil
}

// tx is the billing.Tx of one Apply. Every statement goes through the
// transaction, so reads see its own writes.
type tx struct {
	s *Store
	q *sql.Tx

	// locked holds the IDs of the subscription rows this transaction has
	// read for update (true when the row exists): an existing row is
	// updated, an absent one inserted.
	locked map[string]bool
}

var _ billing.Tx = (*tx)(nil)

// stmt returns query in the transaction: prepared, when the store has
// prepared it on the pool (database/sql then prepares it once on this
// connection), else nil.
func (t *tx) stmt(ctx context.Context, query string) *sql.Stmt {
	if st, ok := t.s.stmts.Load(query); ok {
		return t.q.StmtContext(ctx, st.(*sql.Stmt))
	}
	return nil
}

func (t *tx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.q.ExecContext(ctx, query, args...)
}

func (t *tx) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.q.QueryContext(ctx, query, args...)
}

func (t *tx) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.q.QueryRowContext(ctx, query, args...)
}

// maxInsertRaces bounds the read-insert rounds of a link that lost the
// race to create a row to a concurrent transaction. Rows are never
// deleted, so the second round always finds the row.
const maxInsertRaces = 3

var errRowVanished = errors.New("sqlstore: a row seen by a unique conflict could not be read")

// UserID reads the customer's link row for update: that row is the lock
// of the user's records.
func (t *tx) UserID(ctx context.Context, customerID string) (string, error) {
	var u string
	err := t.queryRow(ctx, t.s.q.userByCustomerForUpdate, customerID).Scan(&u)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", billing.ErrNotFound
	case err != nil:
		return "", fmt.Errorf("sqlstore: look up user of customer %s: %w", customerID, err)
	}
	return u, nil
}

// LockUser reads the user's link row for update, if there is one (a user
// without a customer has no row, and nothing of theirs but grants, which
// are added once by their unique key).
func (t *tx) LockUser(ctx context.Context, userID string) error {
	rows, err := t.query(ctx, t.s.q.lockUser, userID)
	if err == nil {
		err = closeRows(rows)
	}
	if err != nil {
		return fmt.Errorf("sqlstore: lock user %s: %w", userID, err)
	}
	return nil
}

// LinkCustomer inserts the link unless the user or the customer is
// taken (both are unique keys); then it reads who took them.
func (t *tx) LinkCustomer(ctx context.Context, userID, customerID string) error {
	for range maxInsertRaces {
		ok, err := t.s.d.inserted(t.exec(ctx, t.s.q.insertCustomer, userID, customerID, t.s.now().Unix()))
		if err != nil {
			return fmt.Errorf("sqlstore: link user %s to customer %s: %w", userID, customerID, err)
		}
		if ok {
			return nil
		}
		rows, err := t.query(ctx, t.s.q.linksOf, userID, customerID)
		if err != nil {
			return fmt.Errorf("sqlstore: link user %s to customer %s: %w", userID, customerID, err)
		}
		found, same := false, false
		for rows.Next() {
			var u, c string
			if err := rows.Scan(&u, &c); err != nil {
				rows.Close()
				return fmt.Errorf("sqlstore: link user %s to customer %s: %w", userID, customerID, err)
			}
			found = true
			same = same || (u == userID && c == customerID)
		}
		if err := closeRows(rows); err != nil {
			return fmt.Errorf("sqlstore: link user %s to customer %s: %w", userID, customerID, err)
		}
		switch {
		case same:
			return nil
		case found:
			return billing.ErrCustomerConflict
		}
	}
	return errRowVanished
}

// Subscription reads the row with SELECT ... FOR UPDATE (SQLite's
// transaction holds the write lock already), so that no other
// transaction changes it before this one ends.
func (t *tx) Subscription(ctx context.Context, id string) (billing.Subscription, bool, error) {
	s, err := scanSub(t.queryRow(ctx, t.s.q.selectSubForUpdate, id))
	found := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return billing.Subscription{}, false, fmt.Errorf("sqlstore: read subscription %s: %w", id, err)
	}
	if t.locked == nil {
		t.locked = make(map[string]bool)
	}
	t.locked[id] = found
	return s, found, nil
}

// SaveSubscription updates the row this transaction read, or inserts
// one: an insert that meets a row created meanwhile by another
// transaction returns billing.ErrRecordRaced.
func (t *tx) SaveSubscription(ctx context.Context, s billing.Subscription) error {
	args, err := subArgs(s)
	if err != nil {
		return fmt.Errorf("sqlstore: %w", err)
	}
	if t.locked[s.ID] {
		if _, err := t.exec(ctx, t.s.q.updateSub, append(args[1:], s.ID)...); err != nil {
			return fmt.Errorf("sqlstore: save subscription %s: %w", s.ID, err)
		}
		return nil
	}
	ok, err := t.s.d.inserted(t.exec(ctx, t.s.q.insertSub, args...))
	if err != nil {
		return fmt.Errorf("sqlstore: save subscription %s: %w", s.ID, err)
	}
	if !ok {
		return fmt.Errorf("sqlstore: save subscription %s: %w", s.ID, billing.ErrRecordRaced)
	}
	if t.locked == nil {
		t.locked = make(map[string]bool)
	}
	t.locked[s.ID] = true
	return nil
}

// Subscriptions reads userID's records in the transaction (one
// statement; billing has locked the user).
func (t *tx) Subscriptions(ctx context.Context, userID string) ([]billing.Subscription, error) {
	out, err := readSubs(t.query(ctx, t.s.q.subsByUser, userID))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: read subscriptions of user %s: %w", userID, err)
	}
	return out, nil
}

// readSubs reads the subscriptions a query returned.
func readSubs(rows *sql.Rows, err error) ([]billing.Subscription, error) {
	if err != nil {
		return nil, err
	}
	var out []billing.Subscription
	for rows.Next() {
		sub, err := scanSub(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, sub)
	}
	if err := closeRows(rows); err != nil {
		return nil, err
	}
	return out, nil
}

// AddGrant inserts the grant unless its Checkout Session ID (the primary
// key) is taken. An insert racing another transaction's waits for it.
func (t *tx) AddGrant(ctx context.Context, g billing.Grant) (bool, error) {
	ok, err := t.s.d.inserted(t.exec(ctx, t.s.q.insertGrant, g.CheckoutSessionID, g.UserID, g.CustomerID,
		g.PriceID, g.Quantity, g.Credits, g.AmountTotal, g.Currency, toUnix(g.GrantedAt), g.PaymentIntentID))
	if err != nil {
		return false, fmt.Errorf("sqlstore: add grant %s: %w", g.CheckoutSessionID, err)
	}
	return ok, nil
}

// scanGrant reads a row of grantCols.
func scanGrant(r scanner) (billing.Grant, error) {
	var (
		g         billing.Grant
		grantedAt int64
	)
	if err := r.Scan(&g.CheckoutSessionID, &g.UserID, &g.CustomerID, &g.PriceID, &g.Quantity,
		&g.Credits, &g.AmountTotal, &g.Currency, &grantedAt, &g.PaymentIntentID); err != nil {
		return billing.Grant{}, err
	}
	g.GrantedAt = fromUnix(grantedAt)
	return g, nil
}

// scanRefund reads a row of refundCols.
func scanRefund(r scanner) (billing.Refund, error) {
	var (
		rf      billing.Refund
		version int64
	)
	if err := r.Scan(&rf.PaymentIntentID, &rf.ChargeID, &rf.UserID, &rf.CustomerID, &rf.Amount, &rf.Currency, &version); err != nil {
		return billing.Refund{}, err
	}
	rf.Version = fromUnix(version)
	return rf, nil
}

// refundArgs are the values of refundCols for r.
func refundArgs(r billing.Refund) []any {
	return []any{r.PaymentIntentID, r.ChargeID, r.UserID, r.CustomerID, r.Amount, r.Currency, toUnix(r.Version)}
}

// Refund reads the payment's refund record with SELECT ... FOR UPDATE
// (SQLite's transaction holds the write lock already), so that no other
// transaction changes it before this one ends.
func (t *tx) Refund(ctx context.Context, paymentIntentID string) (billing.Refund, bool, error) {
	r, err := scanRefund(t.queryRow(ctx, t.s.q.selectRefundForUpdate, paymentIntentID))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return billing.Refund{}, false, nil
	case err != nil:
		return billing.Refund{}, false, fmt.Errorf("sqlstore: read refund of payment %s: %w", paymentIntentID, err)
	}
	return r, true, nil
}

// SaveRefund creates or replaces the payment's refund record in one
// statement, an upsert on its primary key (INSERT ... ON CONFLICT DO
// UPDATE, or ON DUPLICATE KEY UPDATE on MySQL): a record another
// transaction created since this one found none is replaced, not a
// conflict (billing calls it holding the user's lock).
func (t *tx) SaveRefund(ctx context.Context, r billing.Refund) error {
	if _, err := t.exec(ctx, t.s.q.upsertRefund, t.s.d.upsertArgs(refundArgs(r), len(refundCols)-1)...); err != nil {
		return fmt.Errorf("sqlstore: save refund of payment %s: %w", r.PaymentIntentID, err)
	}
	return nil
}

// readRefunds reads the refunds a query returned.
func readRefunds(rows *sql.Rows, err error) ([]billing.Refund, error) {
	if err != nil {
		return nil, err
	}
	var out []billing.Refund
	for rows.Next() {
		r, err := scanRefund(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, r)
	}
	if err := closeRows(rows); err != nil {
		return nil, err
	}
	return out, nil
}
