package sqlstore_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/gobilling/billing/internal/testenv"
	"github.com/gobilling/billing/sqlstore"
)

// The environment variables that name the test databases.
const (
	envPostgres = "BILLING_TEST_POSTGRES_DSN"
	envMySQL    = "BILLING_TEST_MYSQL_DSN"
)

// dialects are the dialects every test runs on, as subtests named after
// them.
var dialects = []sqlstore.Dialect{sqlstore.Postgres, sqlstore.MySQL, sqlstore.SQLite}

// tables are the store's tables, without their prefix: 0001_init.sql's
// five, 0004_outbox.sql's, 0005_refunds.sql's, then Migrate's own.
var tables = []string{"customers", "subscriptions", "events", "grants", "parked_events", "outbox", "refunds", "checkpoints", "schema_migrations"}

// testDB is a database tests can open pools on: a server's database for
// PostgreSQL and MySQL (every store in it gets tables of its own), a
// fresh file for SQLite.
type testDB struct {
	dialect sqlstore.Dialect
	driver  string
	dsn     string
}

// database returns the test database of dialect d, skipping the test
// (failing it under CI=true) when the server's DSN is not set.
func database(t testing.TB, d sqlstore.Dialect) testDB {
	t.Helper()
	switch d {
	case sqlstore.Postgres:
		return testDB{d, "pgx", testenv.Service(t, envPostgres,
			"set it to a PostgreSQL database URL, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable, or run .ci/run, which starts the servers")}
	case sqlstore.MySQL:
		return testDB{d, "mysql", testenv.Service(t, envMySQL,
			"set it to a MySQL or MariaDB DSN for github.com/go-sql-driver/mysql, e.g. root@tcp(127.0.0.1:3306)/test, or run .ci/run, which starts the servers")}
	case sqlstore.SQLite:
		path := filepath.Join(t.TempDir(), "billing.db")
		return testDB{d, "sqlite", "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate"}
	}
	t.Fatalf("unknown dialect %q", d)
	return testDB{}
}

// open opens a pool of at most maxConns connections, closed when the test
// ends.
func (tdb testDB) open(t testing.TB, maxConns int) *sql.DB {
	t.Helper()
	db, err := sql.Open(tdb.driver, tdb.dsn)
	require.NoError(t, err)
	db.SetMaxOpenConns(maxConns)
	t.Cleanup(func() { db.Close() })
	require.NoError(t, db.PingContext(context.Background()), "connect to the %s test database", tdb.dialect)
	return db
}

// connector returns a driver.Connector for the database, for wrapping.
func (tdb testDB) connector(t testing.TB) driver.Connector {
	t.Helper()
	db, err := sql.Open(tdb.driver, tdb.dsn)
	require.NoError(t, err)
	defer db.Close()
	if dc, ok := db.Driver().(driver.DriverContext); ok {
		c, err := dc.OpenConnector(tdb.dsn)
		require.NoError(t, err)
		return c
	}
	return dsnConnector{db.Driver(), tdb.dsn}
}

type dsnConnector struct {
	drv driver.Driver
	dsn string
}

func (c dsnConnector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c dsnConnector) Driver() driver.Driver                        { return c.drv }

// newPrefix returns a table prefix no other test uses.
func newPrefix(t testing.TB) string {
	b := make([]byte, 5)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return "t" + hex.EncodeToString(b) + "_"
}

// newStore returns a store on db with opts, with tables of its own
// (a fresh prefix unless opts has one), created by Migrate and dropped
// when the test ends.
func newStore(t testing.TB, tdb testDB, db *sql.DB, opts sqlstore.Options) *sqlstore.Store {
	t.Helper()
	if opts.TablePrefix == "" {
		opts.TablePrefix = newPrefix(t)
	}
	st, err := sqlstore.New(context.Background(), db, tdb.dialect, opts)
	require.NoError(t, err)
	dropTables(t, tdb, db, opts.TablePrefix)
	require.NoError(t, st.Migrate(context.Background()))
	return st
}

// dropTables drops the tables with prefix when the test ends (SQLite's
// test databases are files in the test's temporary directory).
func dropTables(t testing.TB, tdb testDB, db *sql.DB, prefix string) {
	t.Helper()
	if tdb.dialect == sqlstore.SQLite {
		return
	}
	names := make([]string, len(tables))
	for i, tb := range tables {
		names[i] = prefix + tb
	}
	t.Cleanup(func() {
		_, err := db.ExecContext(context.Background(), "DROP TABLE IF EXISTS "+strings.Join(names, ", "))
		if err != nil {
			t.Errorf("drop the test tables %s*: %v", prefix, err)
		}
	})
}

// newTestStore returns an empty store of dialect d on a pool of its own.
func newTestStore(t testing.TB, d sqlstore.Dialect) *sqlstore.Store {
	t.Helper()
	tdb := database(t, d)
	return newStore(t, tdb, tdb.open(t, 4), sqlstore.Options{})
}

// forEachDialect runs f as a parallel subtest per dialect.
func forEachDialect(t *testing.T, f func(t *testing.T, d sqlstore.Dialect)) {
	t.Helper()
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			f(t, d)
		})
	}
}

// tableNames lists the tables of db whose name starts with prefix.
func tableNames(t testing.TB, tdb testDB, db *sql.DB, prefix string) []string {
	t.Helper()
	var q string
	switch tdb.dialect {
	case sqlstore.Postgres:
		q = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
	case sqlstore.MySQL:
		q = "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
	case sqlstore.SQLite:
		q = "SELECT name FROM sqlite_master WHERE type = 'table'"
	}
	rows, err := db.QueryContext(context.Background(), q)
	require.NoError(t, err)
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		if strings.HasPrefix(n, prefix) {
			names = append(names, strings.TrimPrefix(n, prefix))
		}
	}
	require.NoError(t, rows.Err())
	return names
}

func count(t testing.TB, db *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRowContext(context.Background(), query, args...).Scan(&n), "%s", query)
	return n
}

func ph(d sqlstore.Dialect, n int) string {
	if d == sqlstore.Postgres {
		return fmt.Sprintf("$%d", n)
	}
	return "?"
}
