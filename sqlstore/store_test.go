package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/sqlstore"
	"github.com/gobilling/billing/storetest"
)

// TestConformancePoolOfOne runs the conformance suite with a pool of one
// connection per store: nothing in the store waits for a second one.
func TestConformancePoolOfOne(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		database(t, d)
		storetest.Run(t, func(t *testing.T) billing.Store {
			tdb := database(t, d)
			return newStore(t, tdb, tdb.open(t, 1), sqlstore.Options{})
		})
	})
}

// clock is a settable clock for Options.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestPruneEvents deletes the records of events older than the
// retention, in batches, and keeps the others.
func TestPruneEvents(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		tdb := database(t, d)
		db := tdb.open(t, 4)
		clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		st := newStore(t, tdb, db, sqlstore.Options{Now: clk.Now})
		ctx := t.Context()
		record := func(id string) {
			require.NoError(t, st.Apply(ctx, id, func(context.Context, billing.Tx) error { return nil }))
		}
		processed := func(id string) bool {
			ok, err := st.Processed(ctx, id)
			require.NoError(t, err)
			return ok
		}

		record("evt_day0")
		clk.Advance(10 * 24 * time.Hour)
		record("evt_day10")
		clk.Advance(30 * 24 * time.Hour)
		record("evt_day40")

		// Many old rows, to be deleted in several batches.
		const old = 2345
		events := st.TablePrefix() + "events"
		for i := 0; i < old; i += 500 {
			var (
				vals []string
				args []any
			)
			for j := i; j < min(i+500, old); j++ {
				vals = append(vals, "("+ph(d, len(args)+1)+", "+ph(d, len(args)+2)+")")
				args = append(args, fmt.Sprintf("evt_ancient_%d", j), int64(1_600_000_000+j))
			}
			_, err := db.ExecContext(ctx, "INSERT INTO "+events+" (id, processed_at) VALUES "+strings.Join(vals, ", "), args...)
			require.NoError(t, err)
		}

		n, err := st.PruneEvents(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(old+1), n, "the ancient ones and the 40-day-old one")
		assert.False(t, processed("evt_day0"))
		assert.False(t, processed("evt_ancient_7"))
		assert.True(t, processed("evt_day10"), "30 days old: kept for the default 35")
		assert.True(t, processed("evt_day40"))
		assert.Equal(t, 2, count(t, db, "SELECT COUNT(*) FROM "+events))

		n, err = st.PruneEvents(ctx)
		require.NoError(t, err)
		assert.Zero(t, n, "nothing more to prune")

		daily, err := sqlstore.New(ctx, db, d, sqlstore.Options{TablePrefix: st.TablePrefix(), EventRetention: 24 * time.Hour, Now: clk.Now})
		require.NoError(t, err)
		n, err = daily.PruneEvents(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(1), n)
		assert.False(t, processed("evt_day10"))
		assert.True(t, processed("evt_day40"))
	})
}

// TestIDsAreCaseSensitive: Stripe IDs that differ only in case are
// different IDs, on every database.
func TestIDsAreCaseSensitive(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		st := newTestStore(t, d)
		ctx := t.Context()
		for _, id := range []string{"evt_Abc", "evt_aBC"} {
			require.NoError(t, st.Apply(ctx, id, func(ctx context.Context, tx billing.Tx) error {
				if err := tx.LinkCustomer(ctx, "user_"+id, "cus_"+id); err != nil {
					return err
				}
				ok, err := tx.AddGrant(ctx, billing.Grant{CheckoutSessionID: "cs_" + id, UserID: "user_" + id})
				if err == nil && !ok {
					err = fmt.Errorf("grant cs_%s not added", id)
				}
				return err
			}), id)
		}
		for _, id := range []string{"evt_Abc", "evt_aBC"} {
			c, err := st.CustomerID(ctx, "user_"+id)
			require.NoError(t, err)
			assert.Equal(t, "cus_"+id, c)
		}
		ok, err := st.Processed(ctx, "evt_abc")
		require.NoError(t, err)
		assert.False(t, ok)
	})
}

func TestNewRejects(t *testing.T) {
	tdb := database(t, sqlstore.SQLite)
	db := tdb.open(t, 1)
	ctx := t.Context()

	_, err := sqlstore.New(ctx, nil, sqlstore.SQLite, sqlstore.Options{})
	assert.ErrorContains(t, err, "nil *sql.DB")
	_, err = sqlstore.New(ctx, db, "oracle", sqlstore.Options{})
	assert.ErrorContains(t, err, `unknown dialect "oracle"`)
	for _, p := range []string{"Billing_", "1billing_", "bill-ing_", "bill ing", strings.Repeat("a", 33)} {
		_, err = sqlstore.New(ctx, db, sqlstore.SQLite, sqlstore.Options{TablePrefix: p})
		assert.ErrorContains(t, err, "table prefix", "prefix %q", p)
	}
	_, err = sqlstore.New(ctx, db, sqlstore.SQLite, sqlstore.Options{EventRetention: -time.Hour})
	assert.ErrorContains(t, err, "EventRetention")

	st, err := sqlstore.New(ctx, db, sqlstore.SQLite, sqlstore.Options{})
	require.NoError(t, err)
	assert.Equal(t, sqlstore.DefaultTablePrefix, st.TablePrefix())
	assert.Equal(t, sqlstore.SQLite, st.Dialect())
}

// TestNewChecksSQLiteSettings: New says which of WAL, busy timeout and
// IMMEDIATE transactions the database lacks, and how to set them.
func TestNewChecksSQLiteSettings(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, params string
		missing      []string
	}{
		{"nothing", "", []string{"WAL", "busy timeout", "IMMEDIATE"}},
		{"no_txlock", "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)", []string{"IMMEDIATE"}},
		{"no_wal", "_pragma=busy_timeout(5000)&_txlock=immediate", []string{"WAL"}},
		{"no_busy_timeout", "_pragma=journal_mode(WAL)&_txlock=immediate", []string{"busy timeout"}},
		{"all", "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dsn := "file:" + filepath.Join(dir, tc.name+".db") + "?" + tc.params
			db, err := sql.Open("sqlite", dsn)
			require.NoError(t, err)
			defer db.Close()
			_, err = sqlstore.New(t.Context(), db, sqlstore.SQLite, sqlstore.Options{})
			if tc.missing == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			lacks, _, _ := strings.Cut(err.Error(), "; open it")
			for _, m := range []string{"WAL", "busy timeout", "IMMEDIATE"} {
				if slices.Contains(tc.missing, m) {
					assert.Contains(t, lacks, m, "missing %s", m)
				} else {
					assert.NotContains(t, lacks, m)
				}
			}
			assert.ErrorContains(t, err, "sqlstore.OpenSQLite")
			assert.ErrorContains(t, err, "_txlock=immediate")
		})
	}

	t.Run("memory", func(t *testing.T) {
		db, err := sql.Open("sqlite", ":memory:")
		require.NoError(t, err)
		defer db.Close()
		_, err = sqlstore.New(t.Context(), db, sqlstore.SQLite, sqlstore.Options{})
		assert.ErrorContains(t, err, "in-memory database")
	})
}

// TestNewChecksMySQLStrictMode: a MySQL session without a strict
// sql_mode would truncate IDs silently.
func TestNewChecksMySQLStrictMode(t *testing.T) {
	tdb := database(t, sqlstore.MySQL)
	loose := tdb
	sep := "?"
	if strings.Contains(loose.dsn, "?") {
		sep = "&"
	}
	loose.dsn += sep + "sql_mode=%27NO_ENGINE_SUBSTITUTION%27"
	_, err := sqlstore.New(t.Context(), loose.open(t, 1), sqlstore.MySQL, sqlstore.Options{})
	assert.ErrorContains(t, err, "STRICT_TRANS_TABLES")
	_, err = sqlstore.New(t.Context(), tdb.open(t, 1), sqlstore.MySQL, sqlstore.Options{})
	assert.NoError(t, err)
}

// TestOpenSQLite opens a file whose path has characters that mean
// something in a URI, sets it up as New wants, and refuses what is not a
// file path.
func TestOpenSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "odd?name#with%chars.db")
	db, err := sqlstore.OpenSQLite(path)
	require.NoError(t, err)
	defer db.Close()
	st, err := sqlstore.New(t.Context(), db, sqlstore.SQLite, sqlstore.Options{})
	require.NoError(t, err)
	require.NoError(t, st.Migrate(t.Context()))
	_, err = os.Stat(path)
	require.NoError(t, err, "the database file is at the path given")

	for _, p := range []string{"", ":memory:", "file:x.db"} {
		_, err := sqlstore.OpenSQLite(p)
		assert.ErrorContains(t, err, "path of a database file", "%q", p)
	}
}

// prefixedName matches the names in the migrations that carry the table
// prefix.
var prefixedName = regexp.MustCompile(`billing_[a-z_]+`)

// TestMigrationsFS checks the exported migrations: a valid fs.FS of
// NNNN_name.sql files in goose's format, with the default prefix on
// every table, index and constraint name, or the store's own.
func TestMigrationsFS(t *testing.T) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			fsys := sqlstore.Migrations(d)
			require.NotNil(t, fsys)
			files := []string{"0001_init.sql", "0002_invoice_order.sql", "0003_order_key.sql", "0004_outbox.sql", "0005_refunds.sql", "0006_event_info.sql", "0007_checkpoints.sql"}
			require.NoError(t, fstest.TestFS(fsys, files...))
			names, err := fs.Glob(fsys, "*.sql")
			require.NoError(t, err)
			require.Equal(t, files, names)
			for i, f := range files {
				b, err := fs.ReadFile(fsys, f)
				require.NoError(t, err)
				sqlText := string(b)
				assert.True(t, strings.HasPrefix(sqlText, "-- +goose Up\n"), "goose's annotation first")
				assert.NotContains(t, sqlText, "+goose Down")
				if i == 0 {
					for _, tb := range tables[:5] {
						assert.Contains(t, sqlText, "CREATE TABLE IF NOT EXISTS billing_"+tb+" (")
					}
				}
				if f == "0004_outbox.sql" {
					assert.Contains(t, sqlText, "CREATE TABLE IF NOT EXISTS billing_outbox (")
				}
				if f == "0005_refunds.sql" {
					assert.Contains(t, sqlText, "CREATE TABLE IF NOT EXISTS billing_refunds (")
					assert.Regexp(t, `ALTER TABLE billing_grants ADD COLUMN (IF NOT EXISTS )?payment_intent_id `, sqlText)
				}
				if f == "0007_checkpoints.sql" {
					assert.Contains(t, sqlText, "CREATE TABLE IF NOT EXISTS billing_checkpoints (")
					assert.Contains(t, sqlText, "billing_subscriptions_status_idx")
				}
				if f == "0006_event_info.sql" {
					for _, col := range []string{"type", "object_id", "via"} {
						assert.Regexp(t, `ADD COLUMN (IF NOT EXISTS )?`+col+` +(TEXT|VARCHAR\(255\)) NOT NULL DEFAULT '`, sqlText)
					}
				}
				for _, name := range prefixedName.FindAllString(sqlText, -1) {
					ok := false
					for _, tb := range tables[:8] {
						ok = ok || name == "billing_"+tb || strings.HasPrefix(name, "billing_"+tb+"_")
					}
					assert.True(t, ok, "%s: every prefixed name starts with a table's", name)
				}
				if d == sqlstore.MySQL {
					assert.NotContains(t, sqlText, "CREATE INDEX", "MySQL 8 has no CREATE INDEX IF NOT EXISTS: indexes are declared in CREATE TABLE")
					assert.NotContains(t, sqlText, "RETURNING")
					for _, stmt := range sqlstore.SplitStatements(sqlText) {
						assert.NotContains(t, stmt, "ADD COLUMN IF NOT EXISTS", "MySQL 8 has no ADD COLUMN IF NOT EXISTS")
					}
				}
			}
		})
	}
	assert.Nil(t, sqlstore.Migrations("oracle"))

	db, err := sqlstore.OpenSQLite(filepath.Join(t.TempDir(), "x.db"))
	require.NoError(t, err)
	defer db.Close()
	st, err := sqlstore.New(t.Context(), db, sqlstore.SQLite, sqlstore.Options{TablePrefix: "app_"})
	require.NoError(t, err)
	b, err := fs.ReadFile(st.Migrations(), "0001_init.sql")
	require.NoError(t, err)
	assert.Contains(t, string(b), "CREATE TABLE IF NOT EXISTS app_customers (")
	assert.Contains(t, string(b), "app_subscriptions_user_id_idx")
	assert.NotContains(t, string(b), "billing_")
}

// TestMigrationsIdempotent runs every statement of the migrations twice,
// as a migration tool (or a MySQL Migrate interrupted halfway, since
// MySQL commits each DDL statement) may; then Migrate finds the tables
// there and records them.
func TestMigrationsIdempotent(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		tdb := database(t, d)
		db := tdb.open(t, 1)
		prefix := newPrefix(t)
		st, err := sqlstore.New(t.Context(), db, d, sqlstore.Options{TablePrefix: prefix})
		require.NoError(t, err)
		dropTables(t, tdb, db, prefix)
		statements := func(name string) []string {
			b, err := fs.ReadFile(st.Migrations(), name)
			require.NoError(t, err)
			var stmts []string
			for _, s := range strings.Split(string(b), ";\n") {
				var lines []string
				for _, l := range strings.Split(s, "\n") {
					if !strings.HasPrefix(strings.TrimSpace(l), "--") {
						lines = append(lines, l)
					}
				}
				if s := strings.TrimSpace(strings.Join(lines, "\n")); s != "" {
					stmts = append(stmts, s)
				}
			}
			return stmts
		}
		stmts := statements("0001_init.sql")
		require.Len(t, stmts, map[sqlstore.Dialect]int{sqlstore.Postgres: 10, sqlstore.MySQL: 5, sqlstore.SQLite: 10}[d])
		if d == sqlstore.MySQL {
			// MySQL's DDL commits as it goes: 0002 must be safe to run
			// again from the top after a crash midway (PostgreSQL and
			// SQLite run it in one transaction).
			stmts = append(stmts, statements("0002_invoice_order.sql")...)
			stmts = append(stmts, statements("0003_order_key.sql")...)
		}
		stmts = append(stmts, statements("0004_outbox.sql")...) // CREATE ... IF NOT EXISTS in every dialect
		made := tables[:6]
		if d != sqlstore.SQLite {
			// CREATE ... IF NOT EXISTS, and the column added only if
			// missing (PostgreSQL's ADD COLUMN IF NOT EXISTS, MySQL's
			// check of information_schema). SQLite has no such check:
			// Migrate adds it in the transaction that records it.
			stmts = append(stmts, statements("0005_refunds.sql")...)
			stmts = append(stmts, statements("0006_event_info.sql")...)
			stmts = append(stmts, statements("0007_checkpoints.sql")...)
			made = tables[:8]
		}
		for round := range 2 {
			for _, s := range stmts {
				_, err := db.ExecContext(t.Context(), s)
				require.NoError(t, err, "round %d: %s", round, s)
			}
		}
		assert.ElementsMatch(t, made, tableNames(t, tdb, db, prefix))
		require.NoError(t, st.Migrate(t.Context()))
		assert.ElementsMatch(t, tables, tableNames(t, tdb, db, prefix))
		// The schema works, the refunds and the grants' new column too.
		at := time.Unix(1_770_000_000, 0).UTC()
		grant := billing.Grant{CheckoutSessionID: "cs_1", UserID: "user", CustomerID: "cus", PriceID: "price", Quantity: 1,
			Credits: 10, AmountTotal: 500, Currency: "eur", GrantedAt: at, PaymentIntentID: "pi_1"}
		refund := billing.Refund{PaymentIntentID: "pi_1", ChargeID: "ch_1", UserID: "user", CustomerID: "cus",
			Amount: 200, Currency: "eur", Version: at}
		require.NoError(t, st.Apply(t.Context(), "evt_1", func(ctx context.Context, tx billing.Tx) error {
			if err := tx.LinkCustomer(ctx, "user", "cus"); err != nil {
				return err
			}
			if _, err := tx.AddGrant(ctx, grant); err != nil {
				return err
			}
			return tx.SaveRefund(ctx, refund)
		}))
		f, err := st.Facts(t.Context(), "user")
		require.NoError(t, err)
		assert.Equal(t, []billing.Grant{grant}, f.Grants)
		assert.Equal(t, []billing.Refund{refund}, f.Refunds)
		// And the events' new columns.
		evs, err := st.RecentEvents(t.Context(), 10)
		require.NoError(t, err)
		require.Len(t, evs, 1)
		assert.Equal(t, "evt_1", evs[0].ID)
		assert.Empty(t, evs[0].Type+evs[0].ObjectID+evs[0].Via, "no info in the context")
	})
}

// TestRefundLongIDs: a refund record whose IDs are as long as the other
// tables take (255 characters), and a grant with such a PaymentIntent
// ID, are stored and read back whole.
func TestRefundLongIDs(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		st := newTestStore(t, d)
		ctx := t.Context()
		long := func(prefix string) string { return prefix + strings.Repeat("x", 255-len(prefix)) }
		r := billing.Refund{PaymentIntentID: long("pi_"), ChargeID: long("ch_"), UserID: long("user_"), CustomerID: long("cus_"),
			Amount: 1, Currency: "eur", Version: time.Unix(1_770_000_000, 0).UTC()}
		g := billing.Grant{CheckoutSessionID: long("cs_"), UserID: r.UserID, CustomerID: r.CustomerID, PriceID: long("price_"),
			Quantity: 1, Credits: 1, AmountTotal: 1, Currency: "eur", GrantedAt: r.Version, PaymentIntentID: r.PaymentIntentID}
		require.NoError(t, st.Apply(ctx, "", func(ctx context.Context, tx billing.Tx) error {
			if _, err := tx.AddGrant(ctx, g); err != nil {
				return err
			}
			return tx.SaveRefund(ctx, r)
		}))
		require.NoError(t, st.Apply(ctx, "", func(ctx context.Context, tx billing.Tx) error {
			got, found, err := tx.Refund(ctx, r.PaymentIntentID)
			require.True(t, found)
			assert.Equal(t, r, got)
			return err
		}))
		f, err := st.Facts(ctx, r.UserID)
		require.NoError(t, err)
		assert.Equal(t, []billing.Grant{g}, f.Grants)
		assert.Equal(t, []billing.Refund{r}, f.Refunds)
	})
}

// TestReadsInTxMatchReadsAfter: what a transaction reads of the rows it
// wrote is exactly what a read of the committed rows returns, sub-second
// times and empty slices included.
func TestReadsInTxMatchReadsAfter(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		st := newTestStore(t, d)
		ctx := t.Context()
		odd := time.Date(2026, 3, 1, 12, 0, 0, 987654321, time.FixedZone("X", 3600))
		var inTx []billing.Subscription
		require.NoError(t, st.Apply(ctx, "evt_1", func(ctx context.Context, tx billing.Tx) error {
			for _, s := range []billing.Subscription{
				{ID: "sub_a", UserID: "u", CustomerID: "c", Status: "active", Items: []billing.Item{}, TrialEnd: odd, Version: odd,
					Invoice: billing.Invoice{ID: "in_1", Created: odd}},
				{ID: "sub_b", UserID: "u2", CustomerID: "c2", Status: "past_due",
					Items: []billing.Item{{PriceID: "p", Quantity: 1, CurrentPeriodEnd: odd}}, Version: odd,
					Invoice: billing.Invoice{ID: "in_2", NextPaymentAttempt: odd, Closed: true}},
			} {
				if err := tx.SaveSubscription(ctx, s); err != nil {
					return err
				}
			}
			for _, id := range []string{"sub_a", "sub_b"} {
				s, found, err := tx.Subscription(ctx, id)
				if err != nil {
					return err
				}
				if !found {
					return fmt.Errorf("%s not found in its own transaction", id)
				}
				inTx = append(inTx, s)
			}
			return nil
		}))
		for i, id := range []string{"sub_a", "sub_b"} {
			var after billing.Subscription
			require.NoError(t, st.Apply(ctx, "", func(ctx context.Context, tx billing.Tx) error {
				var err error
				after, _, err = tx.Subscription(ctx, id)
				return err
			}))
			assert.Equal(t, after, inTx[i], id)
		}
	})
}

// TestApplyNewerOnMySQLCountsChangedRows: ApplyNewer tells a write from
// none by the rows MySQL reports; with clientFoundRows=true in the DSN it
// cannot, so it declines (saves and records nothing) and billing takes the
// general path. Without it, it saves.
func TestApplyNewerOnMySQLCountsChangedRows(t *testing.T) {
	t.Parallel()
	tdb := database(t, sqlstore.MySQL)
	for _, tc := range []struct {
		name, param string
		saves       bool
	}{{"changed rows (the default)", "", true}, {"found rows", "clientFoundRows=true", false}} {
		t.Run(tc.name, func(t *testing.T) {
			d := tdb
			if tc.param != "" {
				sep := "?"
				if strings.Contains(d.dsn, "?") {
					sep = "&"
				}
				d.dsn += sep + tc.param
			}
			db := d.open(t, 2)
			st := newStore(t, d, db, sqlstore.Options{})
			ctx := t.Context()
			require.NoError(t, st.Apply(ctx, "", func(ctx context.Context, tx billing.Tx) error {
				return tx.LinkCustomer(ctx, "u1", "cus_1")
			}))
			s := billing.Subscription{ID: "sub_1", CustomerID: "cus_1", Status: "active", Version: time.Unix(1_800_000_000, 0), OrderKey: 7}
			saved, dup, err := st.ApplyNewer(ctx, "evt_1", s)
			require.NoError(t, err)
			assert.False(t, dup)
			assert.Equal(t, tc.saves, saved)
			recorded, err := st.Processed(ctx, "evt_1")
			require.NoError(t, err)
			assert.Equal(t, tc.saves, recorded, "the event is recorded only with the write")
			f, err := st.Facts(ctx, "u1")
			require.NoError(t, err)
			assert.Len(t, f.Subscriptions, map[bool]int{true: 1, false: 0}[tc.saves])
		})
	}
}
