package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/sqlstore"
)

// The site's own users and sign-in sessions live in two tables of their
// own, in the same database as billing's tables. billing never reads them:
// it asks the site about a user through a billing.UserResolver (see
// users.billingUser).
//
// Sessions are random tokens: the browser holds the token in a cookie, the
// table holds its SHA-256 (a leaked table row cannot sign anyone in), the
// user, a per-session CSRF token that every signed-in form carries, and an
// expiry. Sessions use the wall clock, never the simulated clock of the
// offline Stripe, which may be months ahead.

// schema creates the tables; the statements work unchanged on PostgreSQL,
// MySQL/MariaDB and SQLite. Emails are stored lower-cased, so the unique
// index is case-insensitive everywhere.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS app_users (
		id            VARCHAR(40)  NOT NULL PRIMARY KEY,
		email         VARCHAR(254) NOT NULL UNIQUE,
		password_hash VARCHAR(100) NOT NULL,
		created_at    BIGINT       NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS app_sessions (
		token_hash  CHAR(64)    NOT NULL PRIMARY KEY,
		user_id     VARCHAR(40) NOT NULL,
		csrf_token  VARCHAR(64) NOT NULL,
		expires_at  BIGINT      NOT NULL,
		FOREIGN KEY (user_id) REFERENCES app_users (id) ON DELETE CASCADE
	)`,
}

// sessionLifetime is how long a sign-in lasts.
const sessionLifetime = 30 * 24 * time.Hour

// Password rules. bcrypt reads at most 72 bytes, so longer passwords are
// refused rather than silently cut.
const (
	minPasswordLen   = 8
	maxPasswordBytes = 72
)

var (
	errEmailTaken     = errors.New("an account with this email already exists")
	errBadCredentials = errors.New("wrong email or password")
)

// user is a signed-up user.
type user struct {
	ID    string
	Email string
}

// session is a signed-in browser.
type session struct {
	User user
	// CSRF is the token every POST form of a signed-in page carries.
	CSRF string
}

// users is the store of users and sessions.
type users struct {
	db      *sql.DB
	dialect sqlstore.Dialect
	cost    int // bcrypt cost
	// dummyHash is compared against when an email is unknown, so that a
	// sign-in takes as long whether the account exists or not.
	dummyHash []byte
}

func newUsers(db *sql.DB, dialect sqlstore.Dialect, bcryptCost int) (*users, error) {
	if bcryptCost == 0 {
		bcryptCost = bcrypt.DefaultCost
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("not a real password"), bcryptCost)
	if err != nil {
		return nil, err
	}
	return &users{db: db, dialect: dialect, cost: bcryptCost, dummyHash: dummy}, nil
}

// migrate creates the tables if they do not exist.
func (u *users) migrate(ctx context.Context) error {
	for _, stmt := range schema {
		if _, err := u.db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create the users tables: %w", err)
		}
	}
	return nil
}

// q adapts a query written with ? placeholders to the dialect: PostgreSQL
// numbers them ($1, $2, ...).
func (u *users) q(query string) string { return placeholders(u.dialect, query) }

// placeholders adapts a query written with ? placeholders to a dialect.
func placeholders(dialect sqlstore.Dialect, query string) string {
	if dialect != sqlstore.Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// create adds a user with a bcrypt hash of the password. The email must
// be valid and normalized (see validateSignup); errEmailTaken if it is in
// use.
func (u *users) create(ctx context.Context, email, password string) (user, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), u.cost)
	if err != nil {
		return user{}, fmt.Errorf("hash password: %w", err)
	}
	nu := user{ID: "u_" + randomToken(12), Email: email}
	_, err = u.db.ExecContext(ctx, u.q(`INSERT INTO app_users (id, email, password_hash, created_at) VALUES (?, ?, ?, ?)`),
		nu.ID, nu.Email, string(hash), time.Now().Unix())
	if err != nil {
		// Each driver reports a unique violation its own way; whether the
		// email now exists says the same without driver-specific code.
		if _, lookupErr := u.byEmail(ctx, email); lookupErr == nil {
			return user{}, errEmailTaken
		}
		return user{}, fmt.Errorf("insert user: %w", err)
	}
	return nu, nil
}

// authenticate returns the user with this email and password, or
// errBadCredentials.
func (u *users) authenticate(ctx context.Context, email, password string) (user, error) {
	var found user
	var hash string
	err := u.db.QueryRowContext(ctx, u.q(`SELECT id, email, password_hash FROM app_users WHERE email = ?`), email).
		Scan(&found.ID, &found.Email, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		_ = bcrypt.CompareHashAndPassword(u.dummyHash, []byte(password))
		return user{}, errBadCredentials
	}
	if err != nil {
		return user{}, fmt.Errorf("look up user: %w", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return user{}, errBadCredentials
	}
	return found, nil
}

func (u *users) byEmail(ctx context.Context, email string) (user, error) {
	var found user
	err := u.db.QueryRowContext(ctx, u.q(`SELECT id, email FROM app_users WHERE email = ?`), email).Scan(&found.ID, &found.Email)
	return found, err
}

// billingUser is the site's answer to billing's "who is this user?" (the
// email and name billing gives the Stripe customer it creates). With
// billing.UserResolverFunc it is the whole UserResolver: the session
// middleware puts the signed-in user's ID in each request's context with
// billing.WithUserID, which is where RequireMember finds it.
func (u *users) billingUser(ctx context.Context, id string) (billing.User, error) {
	var email string
	err := u.db.QueryRowContext(ctx, u.q(`SELECT email FROM app_users WHERE id = ?`), id).Scan(&email)
	if errors.Is(err, sql.ErrNoRows) {
		return billing.User{}, fmt.Errorf("user %q: %w", id, billing.ErrNotFound)
	}
	if err != nil {
		return billing.User{}, fmt.Errorf("look up user %q: %w", id, err)
	}
	return billing.User{ID: id, Email: email}, nil
}

// startSession signs a user in: it returns the token for the cookie.
func (u *users) startSession(ctx context.Context, userID string) (string, error) {
	now := time.Now()
	// Expired sessions are deleted as new ones start.
	if _, err := u.db.ExecContext(ctx, u.q(`DELETE FROM app_sessions WHERE expires_at < ?`), now.Unix()); err != nil {
		return "", fmt.Errorf("delete expired sessions: %w", err)
	}
	token := randomToken(32)
	_, err := u.db.ExecContext(ctx, u.q(`INSERT INTO app_sessions (token_hash, user_id, csrf_token, expires_at) VALUES (?, ?, ?, ?)`),
		hashToken(token), userID, randomToken(32), now.Add(sessionLifetime).Unix())
	if err != nil {
		return "", fmt.Errorf("insert session: %w", err)
	}
	return token, nil
}

// session returns the live session of a cookie's token, or sql.ErrNoRows.
func (u *users) session(ctx context.Context, token string) (session, error) {
	var s session
	err := u.db.QueryRowContext(ctx, u.q(`SELECT u.id, u.email, s.csrf_token FROM app_sessions s JOIN app_users u ON u.id = s.user_id
		WHERE s.token_hash = ? AND s.expires_at > ?`), hashToken(token), time.Now().Unix()).
		Scan(&s.User.ID, &s.User.Email, &s.CSRF)
	return s, err
}

// endSession signs a browser out.
func (u *users) endSession(ctx context.Context, token string) error {
	_, err := u.db.ExecContext(ctx, u.q(`DELETE FROM app_sessions WHERE token_hash = ?`), hashToken(token))
	return err
}

// list returns up to limit users, the first to sign up first (for the
// admin page).
func (u *users) list(ctx context.Context, limit int) ([]user, error) {
	rows, err := u.db.QueryContext(ctx, u.q(`SELECT id, email FROM app_users ORDER BY created_at, id LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []user
	for rows.Next() {
		var found user
		if err := rows.Scan(&found.ID, &found.Email); err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, found)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// count returns the number of users (for tests and the health check).
func (u *users) count(ctx context.Context) (int, error) {
	var n int
	err := u.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM app_users`).Scan(&n)
	return n, err
}

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
