// Package dburl opens the database a DATABASE_URL names, in the forms the
// example app and the billing command share: postgres://... (or
// postgresql://), mysql://user:password@host:port/database?params,
// sqlite://path (sqlite:///abs/path for an absolute one), or a plain path
// of an SQLite file. Schemes are matched
// whatever their case; any other scheme, or a driver's DSN, is refused.
package dburl

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // the "sqlite" driver, for sqlstore.OpenSQLite

	"github.com/gobilling/billing/sqlstore"
)

// Open opens and pings the database dbURL names, and returns it with its
// dialect and where it is (the URL without its password, or the SQLite
// path), for logs and errors. An SQLite file's directories are created.
// No error contains the password.
func Open(ctx context.Context, dbURL string) (*sql.DB, sqlstore.Dialect, string, error) {
	var (
		db      *sql.DB
		dialect sqlstore.Dialect
		where   string
		err     error
	)
	scheme := ""
	if m := schemeRE.FindStringSubmatch(dbURL); m != nil {
		// The drivers take the scheme in lower case only.
		scheme = strings.ToLower(m[1])
		dbURL = scheme + dbURL[len(m[1]):]
	}
	switch {
	case dbURL == "":
		return nil, "", "", fmt.Errorf("no database: want %s", forms)
	case scheme == "postgres" || scheme == "postgresql":
		dialect, where = sqlstore.Postgres, Redact(dbURL)
		db, err = sql.Open("pgx", dbURL)
	case scheme == "mysql":
		var dsn string
		if dsn, err = MySQLDSN(dbURL); err != nil {
			return nil, "", "", err
		}
		dialect, where = sqlstore.MySQL, Redact(dbURL)
		db, err = sql.Open("mysql", dsn)
	case scheme == "sqlite":
		// What follows sqlite:// is the path: sqlite://data/app.db is
		// relative, sqlite:///var/app.db absolute.
		return Open(ctx, dbURL[len(scheme)+3:])
	case scheme != "" || strings.Contains(dbURL, "@"):
		// Not a file's path: a URL of another scheme, or a driver's DSN
		// (user:password@tcp(host:port)/db), which would otherwise become
		// an SQLite file named after its credentials.
		return nil, "", "", fmt.Errorf("DATABASE_URL %s: want %s", Redact(dbURL), forms)
	default:
		if err := os.MkdirAll(filepath.Dir(dbURL), 0o755); err != nil {
			return nil, "", "", fmt.Errorf("create the database's directory: %w", err)
		}
		dialect, where = sqlstore.SQLite, dbURL
		db, err = sqlstore.OpenSQLite(dbURL)
	}
	if err != nil {
		return nil, "", "", fmt.Errorf("open the %s database %s: %w", dialect, where, err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return nil, "", "", fmt.Errorf("connect to the %s database %s: %w", dialect, where, err)
	}
	return db, dialect, where, nil
}

// MySQLDSN turns mysql://user:pass@host:port/db?params into the DSN of
// github.com/go-sql-driver/mysql: user:pass@tcp(host:port)/db?params&parseTime=true.
func MySQLDSN(dbURL string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil || u.Host == "" || strings.Trim(u.Path, "/") == "" {
		return "", fmt.Errorf("DATABASE_URL %s is not mysql://user:password@host:port/database", Redact(dbURL))
	}
	cfg := mysql.NewConfig()
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.Net = "tcp"
	cfg.Addr = u.Host
	if u.Port() == "" {
		cfg.Addr = net.JoinHostPort(u.Hostname(), "3306")
	}
	cfg.DBName = strings.Trim(u.Path, "/")
	cfg.ParseTime = true
	dsn := cfg.FormatDSN()
	// Parameters of the URL (tls=true, ...) pass through to the driver,
	// whose parser checks them.
	if u.RawQuery != "" {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		dsn += sep + u.RawQuery
		if _, err := mysql.ParseDSN(dsn); err != nil {
			return "", fmt.Errorf("DATABASE_URL %s: %w", Redact(dbURL), err)
		}
	}
	return dsn, nil
}

// forms are the forms Open takes, for its errors.
const forms = "postgres://user:password@host:port/database, mysql://user:password@host:port/database, " +
	"or an SQLite file's path (or sqlite://path)"

// schemeRE finds a URL's scheme.
var schemeRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)://`)

// secretParams are the query parameters that hold a password.
var secretParams = []string{"password", "sslpassword", "passwd"}

// Redact hides a URL's password, in its user information and in its
// query (password=, as pgx takes it too). A value that is not a URL is
// hidden whole unless it is plainly a path.
func Redact(s string) string {
	if !schemeRE.MatchString(s) {
		if strings.ContainsAny(s, "@?") {
			return "(a value that is not a URL, hidden)"
		}
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			for _, secret := range secretParams {
				if strings.EqualFold(k, secret) {
					q.Set(k, "xxxxx")
				}
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
