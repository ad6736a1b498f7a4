package main

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/internal/testenv"
	"github.com/gobilling/billing/sqlstore"
)

// The test databases of PostgreSQL and MySQL, as sqlstore's tests name
// them (.ci/run starts the servers).
const (
	envPostgres = "BILLING_TEST_POSTGRES_DSN"
	envMySQL    = "BILLING_TEST_MYSQL_DSN"
)

// testTablePrefix names billing's tables in the shared test databases.
const testTablePrefix = "example_server_"

// testDatabase opens the test database of a dialect through openDatabase,
// as DATABASE_URL would name it, with none of the site's tables in it.
// PostgreSQL and MySQL are skipped when their DSN is unset (and fail under
// CI=true).
func testDatabase(t *testing.T, d sqlstore.Dialect) *sql.DB {
	t.Helper()
	var dbURL string
	switch d {
	case sqlstore.SQLite:
		dbURL = filepath.Join(t.TempDir(), "site.db")
	case sqlstore.Postgres:
		dbURL = testenv.Service(t, envPostgres,
			"set it to a PostgreSQL database URL, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable, or run .ci/run, which starts the servers")
		if !strings.HasPrefix(dbURL, "postgres://") && !strings.HasPrefix(dbURL, "postgresql://") {
			t.Fatalf("%s must be a postgres:// URL here, as DATABASE_URL is", envPostgres)
		}
	case sqlstore.MySQL:
		dsn := testenv.Service(t, envMySQL,
			"set it to a MySQL or MariaDB DSN for github.com/go-sql-driver/mysql, e.g. root@tcp(127.0.0.1:3306)/test, or run .ci/run, which starts the servers")
		// DATABASE_URL's form of the same database: mysql://user:pass@host:port/db.
		cfg, err := mysql.ParseDSN(dsn)
		require.NoError(t, err)
		u := url.URL{Scheme: "mysql", User: url.UserPassword(cfg.User, cfg.Passwd), Host: cfg.Addr, Path: "/" + cfg.DBName}
		if cfg.Passwd == "" {
			u.User = url.User(cfg.User)
		}
		dbURL = u.String()
	}
	db, dialect, _, err := openDatabase(context.Background(), dbURL, false)
	require.NoError(t, err)
	require.Equal(t, d, dialect)
	dropSiteTables(t, db)
	t.Cleanup(func() {
		dropSiteTables(t, db)
		db.Close()
	})
	return db
}

// dropSiteTables drops the site's tables and billing's tables of the test
// prefix.
func dropSiteTables(t *testing.T, db *sql.DB) {
	t.Helper()
	tables := []string{"app_emails", "app_sessions", "app_users"}
	for _, name := range []string{"customers", "subscriptions", "events", "grants", "parked_events", "outbox", "refunds", "schema_migrations"} {
		tables = append(tables, testTablePrefix+name)
	}
	for _, name := range tables {
		_, err := db.Exec("DROP TABLE IF EXISTS " + name)
		require.NoError(t, err)
	}
}

// TestDatabases runs the users store, and the site, on each database
// DATABASE_URL can name.
func TestDatabases(t *testing.T) {
	for _, d := range []sqlstore.Dialect{sqlstore.SQLite, sqlstore.Postgres, sqlstore.MySQL} {
		t.Run(string(d), func(t *testing.T) {
			db := testDatabase(t, d)
			t.Run("users", func(t *testing.T) { testUsers(t, db, d) })
			t.Run("site", func(t *testing.T) { testSite(t, db, d) })
		})
	}
}

func testUsers(t *testing.T, db *sql.DB, d sqlstore.Dialect) {
	ctx := context.Background()
	u, err := newUsers(db, d, bcrypt.MinCost)
	require.NoError(t, err)
	require.NoError(t, u.migrate(ctx))
	require.NoError(t, u.migrate(ctx), "migrate is idempotent")

	ada, err := u.create(ctx, "ada@example.com", "correct horse")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(ada.ID, "u_"), ada.ID)
	_, err = u.create(ctx, "ada@example.com", "another horse")
	assert.ErrorIs(t, err, errEmailTaken)
	n, err := u.count(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n)

	// The password is stored as a bcrypt hash.
	var hash string
	require.NoError(t, db.QueryRow(u.q("SELECT password_hash FROM app_users WHERE id = ?"), ada.ID).Scan(&hash))
	assert.True(t, strings.HasPrefix(hash, "$2a$"), hash)

	got, err := u.authenticate(ctx, "ada@example.com", "correct horse")
	require.NoError(t, err)
	assert.Equal(t, ada, got)
	_, err = u.authenticate(ctx, "ada@example.com", "wrong horse")
	assert.ErrorIs(t, err, errBadCredentials)
	_, err = u.authenticate(ctx, "bob@example.com", "correct horse")
	assert.ErrorIs(t, err, errBadCredentials)

	// What billing learns about a user.
	bu, err := u.billingUser(ctx, ada.ID)
	require.NoError(t, err)
	assert.Equal(t, billing.User{ID: ada.ID, Email: "ada@example.com"}, bu)
	_, err = u.billingUser(ctx, "u_nobody")
	assert.ErrorIs(t, err, billing.ErrNotFound)

	// Sessions: the table keeps the token's hash, never the token.
	token, err := u.startSession(ctx, ada.ID)
	require.NoError(t, err)
	s, err := u.session(ctx, token)
	require.NoError(t, err)
	assert.Equal(t, ada, s.User)
	assert.Len(t, s.CSRF, 43)
	var stored int
	require.NoError(t, db.QueryRow(u.q("SELECT COUNT(*) FROM app_sessions WHERE token_hash = ?"), token).Scan(&stored))
	assert.Zero(t, stored)
	_, err = u.session(ctx, "not-a-token")
	assert.ErrorIs(t, err, sql.ErrNoRows)

	// An expired session is gone, and deleted when a new one starts.
	_, err = db.Exec("UPDATE app_sessions SET expires_at = 1")
	require.NoError(t, err)
	_, err = u.session(ctx, token)
	assert.ErrorIs(t, err, sql.ErrNoRows)
	token2, err := u.startSession(ctx, ada.ID)
	require.NoError(t, err)
	var left int
	require.NoError(t, db.QueryRow("SELECT COUNT(*) FROM app_sessions").Scan(&left))
	assert.Equal(t, 1, left)

	require.NoError(t, u.endSession(ctx, token2))
	_, err = u.session(ctx, token2)
	assert.True(t, errors.Is(err, sql.ErrNoRows))
}

// testSite runs the site's main path on the database: sign up, buy Pro,
// see it on the account page (and on the admin page); buy credits, and
// get one email for it, however often it is sent.
func testSite(t *testing.T, db *sql.DB, d sqlstore.Dialect) {
	a, srv := newTestSiteWrapped(t, db, d, testTablePrefix, nil, withAdmins("grace@example.com"))
	c := newClient(t, srv.URL)
	c.signUp("grace@example.com") // ada signed up in testUsers
	res := c.buy(a, "pro-monthly")
	assert.Contains(t, res.Body, `id="checkout-success"`)
	page := c.get("/account")
	assert.Equal(t, "Active", text(page.Body, "status"))
	assert.Equal(t, "Pro, monthly", text(page.Body, "plan"))
	health := c.get("/healthz")
	assert.Contains(t, health.Body, `"database":"`+string(d)+`"`)
	admin := c.get("/admin")
	require.Equal(t, http.StatusOK, admin.Status)
	assert.Equal(t, "Active (1)", text(admin.Body, "members-active"))
	assert.Equal(t, "No membership (1)", text(admin.Body, "members-none"), "ada, of testUsers")
	assert.Contains(t, text(admin.Body, "recent-events"), "checkout.session.completed")

	c.buy(a, "credits")
	got := c.mailboxPage()
	require.Equal(t, []string{"100 credits added to your account"}, subjects(got))
	assert.Equal(t, "grace@example.com", got[0].To)
	ctx := context.Background()
	stored, err := a.mail.list(ctx, 10)
	require.NoError(t, err)
	require.Len(t, stored, 1)
	e := stored[0]
	sent, err := a.mail.send(ctx, email{Key: e.Key, UserID: e.UserID, To: e.To, Kind: e.Kind, Subject: "again", Body: "again", SentAt: time.Now()})
	require.NoError(t, err)
	assert.False(t, sent, "a key is sent once")
	// Keys differ in case only: Stripe IDs are case-sensitive.
	sent, err = a.mail.send(ctx, email{Key: strings.ToUpper(e.Key), UserID: e.UserID, To: e.To, Kind: e.Kind, Subject: "other", Body: "other", SentAt: time.Now()})
	require.NoError(t, err)
	assert.True(t, sent, "another key")
	stored, err = a.mail.list(ctx, 10)
	require.NoError(t, err)
	require.Len(t, stored, 2)
	assert.Equal(t, []string{"other", "100 credits added to your account"}, []string{stored[0].Subject, stored[1].Subject})
}

func TestPlaceholders(t *testing.T) {
	pg := &users{dialect: sqlstore.Postgres}
	assert.Equal(t, "SELECT a FROM t WHERE b = $1 AND c = $2", pg.q("SELECT a FROM t WHERE b = ? AND c = ?"))
	my := &users{dialect: sqlstore.MySQL}
	assert.Equal(t, "SELECT a FROM t WHERE b = ?", my.q("SELECT a FROM t WHERE b = ?"))
}
