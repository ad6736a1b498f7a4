package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing"
)

// queries are the statements of one store: its dialect's SQL with its
// table names.
type queries struct {
	insertEvent, selectEvent, pruneEvents string

	customerByUser, userByCustomer, linksOf, insertCustomer string

	selectSub, selectSubForUpdate, subsByUser, insertSub, updateSub, updateInvoice string

	insertGrant, grantsByUser string

	upsertParked, selectParked, deleteParked string
}

// subCols are the columns of the subscriptions table, in the order scanSub
// reads them and subArgs gives them.
var subCols = []string{
	"id", "customer_id", "user_id", "status", "items", "cancel_at_period_end",
	"cancel_at", "canceled_at", "ended_at", "trial_start", "trial_end", "latest_invoice_id", "version",
	"invoice_id", "invoice_created", "invoice_paid", "invoice_attempt_count", "invoice_next_payment_attempt", "invoice_version",
}

// firstInvoiceCol is the index in subCols of the first invoice column.
const firstInvoiceCol = 13

var grantCols = []string{
	"checkout_session_id", "user_id", "customer_id", "price_id", "quantity", "credits", "amount_total", "currency", "granted_at",
}

var parkedCols = []string{"id", "type", "customer_id", "reason", "payload", "parked_at"}

// Table names without their prefix.
const (
	tableCustomers     = "customers"
	tableSubscriptions = "subscriptions"
	tableEvents        = "events"
	tableGrants        = "grants"
	tableParked        = "parked_events"
	tableMigrations    = "schema_migrations"
)

func newQueries(d dialect, prefix string) queries {
	var (
		customers = prefix + tableCustomers
		subs      = prefix + tableSubscriptions
		events    = prefix + tableEvents
		grants    = prefix + tableGrants
		parked    = prefix + tableParked
	)
	insert := func(table string, cols []string) string {
		return d.insertIfAbsent("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES (" + marks(len(cols)) + ")")
	}
	set := func(cols []string) string {
		return strings.Join(cols, " = ?, ") + " = ?"
	}
	allSub := strings.Join(subCols, ", ")
	q := queries{
		insertEvent: insert(events, []string{"id", "processed_at"}),
		selectEvent: "SELECT 1 FROM " + events + " WHERE id = ?",
		pruneEvents: d.pruneBatch(events),

		customerByUser: "SELECT customer_id FROM " + customers + " WHERE user_id = ?",
		userByCustomer: "SELECT user_id FROM " + customers + " WHERE customer_id = ?",
		linksOf:        "SELECT user_id, customer_id FROM " + customers + " WHERE user_id = ? OR customer_id = ?",
		insertCustomer: insert(customers, []string{"user_id", "customer_id", "linked_at"}),

		selectSub:          "SELECT " + allSub + " FROM " + subs + " WHERE id = ?",
		selectSubForUpdate: "SELECT " + allSub + " FROM " + subs + " WHERE id = ?" + d.forUpdate(),
		subsByUser:         "SELECT " + allSub + " FROM " + subs + " WHERE user_id = ?",
		insertSub:          insert(subs, subCols),
		updateSub:          "UPDATE " + subs + " SET " + set(subCols[1:firstInvoiceCol]) + " WHERE id = ?",
		updateInvoice:      "UPDATE " + subs + " SET " + set(subCols[firstInvoiceCol:]) + " WHERE id = ?",

		insertGrant:  insert(grants, grantCols),
		grantsByUser: "SELECT " + strings.Join(grantCols, ", ") + " FROM " + grants + " WHERE user_id = ?",

		upsertParked: d.upsert(parked, parkedCols),
		selectParked: "SELECT " + strings.Join(parkedCols, ", ") + " FROM " + parked + " ORDER BY parked_at",
		deleteParked: "DELETE FROM " + parked + " WHERE id = ?",
	}
	for _, p := range []*string{
		&q.insertEvent, &q.selectEvent, &q.pruneEvents,
		&q.customerByUser, &q.userByCustomer, &q.linksOf, &q.insertCustomer,
		&q.selectSub, &q.selectSubForUpdate, &q.subsByUser, &q.insertSub, &q.updateSub, &q.updateInvoice,
		&q.insertGrant, &q.grantsByUser,
		&q.upsertParked, &q.selectParked, &q.deleteParked,
	} {
		*p = d.bind(*p)
	}
	return q
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
		&s.Invoice.ID, &invCreated, &s.Invoice.Paid, &s.Invoice.AttemptCount, &invNext, &s.Invoice.Version)
	if err != nil {
		return billing.Subscription{}, err
	}
	if s.Items, err = decodeItems(items); err != nil {
		return billing.Subscription{}, fmt.Errorf("subscription %s: %w", s.ID, err)
	}
	s.Status = stripe.SubscriptionStatus(status)
	s.CancelAt, s.CanceledAt, s.EndedAt = fromUnix(cancelAt), fromUnix(canceledAt), fromUnix(endedAt)
	s.TrialStart, s.TrialEnd = fromUnix(trialStart), fromUnix(trialEnd)
	s.Version = fromUnix(version)
	s.Invoice.Created, s.Invoice.NextPaymentAttempt = fromUnix(invCreated), fromUnix(invNext)
	return s, nil
}

// subArgs are the values of subCols' subscription columns (id to
// version) for s.
func subArgs(s billing.Subscription) ([]any, error) {
	items, err := encodeItems(s.Items)
	if err != nil {
		return nil, fmt.Errorf("encode items of subscription %s: %w", s.ID, err)
	}
	return []any{s.ID, s.CustomerID, s.UserID, string(s.Status), items, s.CancelAtPeriodEnd,
		toUnix(s.CancelAt), toUnix(s.CanceledAt), toUnix(s.EndedAt), toUnix(s.TrialStart), toUnix(s.TrialEnd),
		s.LatestInvoiceID, toUnix(s.Version)}, nil
}

// invoiceArgs are the values of subCols' invoice columns for inv.
func invoiceArgs(inv billing.Invoice) []any {
	return []any{inv.ID, toUnix(inv.Created), inv.Paid, inv.AttemptCount, toUnix(inv.NextPaymentAttempt), inv.Version}
}

// tx is the billing.Tx of one Apply. Every statement goes through the
// transaction, so reads see its own writes.
type tx struct {
	s *Store
	q *sql.Tx

	// locked holds, as stored, the subscription rows this transaction
	// has locked (read FOR UPDATE, or inserted; under SQLite's write lock
	// every row is): no other transaction can change them before this
	// one ends, so they are read from here, without a statement.
	locked map[string]billing.Subscription
}

// keep records a row the transaction holds locked, as it is stored.
func (t *tx) keep(s billing.Subscription) {
	if t.locked == nil {
		t.locked = make(map[string]billing.Subscription)
	}
	t.locked[s.ID] = stored(s)
}

// stored is s as a read of its row returns it: times in whole seconds,
// in UTC, and no empty Items slice.
func stored(s billing.Subscription) billing.Subscription {
	items := make([]billing.Item, len(s.Items))
	for i, it := range s.Items {
		it.CurrentPeriodStart, it.CurrentPeriodEnd = fromUnix(toUnix(it.CurrentPeriodStart)), fromUnix(toUnix(it.CurrentPeriodEnd))
		items[i] = it
	}
	s.Items = nil
	if len(items) > 0 {
		s.Items = items
	}
	for _, t := range []*time.Time{&s.CancelAt, &s.CanceledAt, &s.EndedAt, &s.TrialStart, &s.TrialEnd, &s.Version,
		&s.Invoice.Created, &s.Invoice.NextPaymentAttempt} {
		*t = fromUnix(toUnix(*t))
	}
	return s
}

var _ billing.Tx = (*tx)(nil)

// maxInsertRaces bounds the read-insert rounds of a write that lost the
// race to create a row to a concurrent transaction. Rows are never
// deleted, so the second round always finds the row.
const maxInsertRaces = 3

var errRowVanished = errors.New("sqlstore: a row seen by a unique conflict could not be read")

func (t *tx) UserID(ctx context.Context, customerID string) (string, error) {
	var u string
	err := t.q.QueryRowContext(ctx, t.s.q.userByCustomer, customerID).Scan(&u)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", billing.ErrNotFound
	case err != nil:
		return "", fmt.Errorf("sqlstore: look up user of customer %s: %w", customerID, err)
	}
	return u, nil
}

// LinkCustomer inserts the link unless the user or the customer is
// taken (both are unique keys); then it reads who took them.
func (t *tx) LinkCustomer(ctx context.Context, userID, customerID string) error {
	for range maxInsertRaces {
		ok, err := t.s.d.inserted(t.q.ExecContext(ctx, t.s.q.insertCustomer, userID, customerID, t.s.now().Unix()))
		if err != nil {
			return fmt.Errorf("sqlstore: link user %s to customer %s: %w", userID, customerID, err)
		}
		if ok {
			return nil
		}
		rows, err := t.q.QueryContext(ctx, t.s.q.linksOf, userID, customerID)
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

func (t *tx) Subscription(ctx context.Context, subscriptionID string) (billing.Subscription, error) {
	if s, ok := t.locked[subscriptionID]; ok {
		s.Items = slices.Clone(s.Items)
		return s, nil
	}
	s, err := scanSub(t.q.QueryRowContext(ctx, t.s.q.selectSub, subscriptionID))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return billing.Subscription{}, billing.ErrNotFound
	case err != nil:
		return billing.Subscription{}, fmt.Errorf("sqlstore: read subscription %s: %w", subscriptionID, err)
	}
	return s, nil
}

// lockSub reads the subscription's row, locking it until the transaction
// ends (SELECT ... FOR UPDATE; SQLite's transaction holds the write lock
// already), unless the transaction holds it already. found is false when
// there is no row. The caller must not change s.Items.
func (t *tx) lockSub(ctx context.Context, id string) (s billing.Subscription, found bool, err error) {
	if s, ok := t.locked[id]; ok {
		return s, true, nil
	}
	s, err = scanSub(t.q.QueryRowContext(ctx, t.s.q.selectSubForUpdate, id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return billing.Subscription{}, false, nil
	case err != nil:
		return billing.Subscription{}, false, err
	}
	t.keep(s)
	return s, true, nil
}

// PutSubscription locks the stored row, decides in Go by the rule of
// [billing.Tx.PutSubscription], and writes: an INSERT when there is no
// row, an UPDATE of every column but the invoice's when s wins. Versions
// are compared in whole seconds, as they are stored.
func (t *tx) PutSubscription(ctx context.Context, s billing.Subscription) (bool, error) {
	args, err := subArgs(s)
	if err != nil {
		return false, fmt.Errorf("sqlstore: %w", err)
	}
	for range maxInsertRaces {
		old, found, err := t.lockSub(ctx, s.ID)
		if err != nil {
			return false, fmt.Errorf("sqlstore: read subscription %s: %w", s.ID, err)
		}
		if !found {
			ok, err := t.s.d.inserted(t.q.ExecContext(ctx, t.s.q.insertSub, append(args, invoiceArgs(billing.Invoice{})...)...))
			if err != nil {
				return false, fmt.Errorf("sqlstore: write subscription %s: %w", s.ID, err)
			}
			if ok {
				s.Invoice = billing.Invoice{}
				t.keep(s)
				return true, nil
			}
			continue // created meanwhile by a transaction that has committed: read it
		}
		if !newer(s, old) {
			return false, nil
		}
		if _, err := t.q.ExecContext(ctx, t.s.q.updateSub, append(args[1:], s.ID)...); err != nil {
			return false, fmt.Errorf("sqlstore: write subscription %s: %w", s.ID, err)
		}
		s.Invoice = old.Invoice
		t.keep(s)
		return true, nil
	}
	return false, errRowVanished
}

// newer reports whether s overwrites the stored old, by the rule of
// [billing.Tx.PutSubscription].
func newer(s, old billing.Subscription) bool {
	if old.Version.IsZero() {
		return true // only invoice facts are stored
	}
	if old.Final() {
		return false
	}
	if s.Phase() != old.Phase() {
		return s.Phase() > old.Phase()
	}
	return toUnix(s.Version) > toUnix(old.Version)
}

// PutInvoice locks the stored row and writes the invoice columns if
// inv.Version is greater, byte-wise (compared in Go, whatever the
// database's collation), or inserts a row with only these facts.
func (t *tx) PutInvoice(ctx context.Context, subscriptionID, userID, customerID string, inv billing.Invoice) (bool, error) {
	for range maxInsertRaces {
		old, found, err := t.lockSub(ctx, subscriptionID)
		if err != nil {
			return false, fmt.Errorf("sqlstore: read subscription %s: %w", subscriptionID, err)
		}
		if inv.Version <= old.Invoice.Version { // also when nothing is stored and inv.Version is empty
			return false, nil
		}
		if !found {
			row := billing.Subscription{ID: subscriptionID, UserID: userID, CustomerID: customerID, Invoice: inv}
			args, err := subArgs(row)
			if err != nil {
				return false, fmt.Errorf("sqlstore: %w", err)
			}
			ok, err := t.s.d.inserted(t.q.ExecContext(ctx, t.s.q.insertSub, append(args, invoiceArgs(inv)...)...))
			if err != nil {
				return false, fmt.Errorf("sqlstore: write invoice of subscription %s: %w", subscriptionID, err)
			}
			if ok {
				t.keep(row)
				return true, nil
			}
			continue // created meanwhile by a transaction that has committed: read it
		}
		if _, err := t.q.ExecContext(ctx, t.s.q.updateInvoice, append(invoiceArgs(inv), subscriptionID)...); err != nil {
			return false, fmt.Errorf("sqlstore: write invoice of subscription %s: %w", subscriptionID, err)
		}
		old.Invoice = inv
		t.keep(old)
		return true, nil
	}
	return false, errRowVanished
}

// AddGrant inserts the grant unless its Checkout Session ID (the primary
// key) is taken. An insert racing another transaction's waits for it.
func (t *tx) AddGrant(ctx context.Context, g billing.Grant) (bool, error) {
	ok, err := t.s.d.inserted(t.q.ExecContext(ctx, t.s.q.insertGrant, g.CheckoutSessionID, g.UserID, g.CustomerID,
		g.PriceID, g.Quantity, g.Credits, g.AmountTotal, g.Currency, toUnix(g.GrantedAt)))
	if err != nil {
		return false, fmt.Errorf("sqlstore: add grant %s: %w", g.CheckoutSessionID, err)
	}
	return ok, nil
}
