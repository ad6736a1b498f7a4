// Package dburl opens the database a DATABASE_URL names, in the forms the
// example app and the billing command share: postgres://... (or
// postgresql://), mysql://user:password@host:port/database?params, or
// else the path of an SQLite file.
package dburl

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
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
	switch {
	case dbURL == "":
		return nil, "", "", fmt.Errorf("no database: want postgres://..., mysql://user:password@host:port/database or an SQLite file's path")
	case strings.HasPrefix(dbURL, "postgres://"), strings.HasPrefix(dbURL, "postgresql://"):
		dialect, where = sqlstore.Postgres, Redact(dbURL)
		db, err = sql.Open("pgx", dbURL)
	case strings.HasPrefix(dbURL, "mysql://"):
		var dsn string
		if dsn, err = MySQLDSN(dbURL); err != nil {
			return nil, "", "", err
		}
		dialect, where = sqlstore.MySQL, Redact(dbURL)
		db, err = sql.Open("mysql", dsn)
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

// Redact hides a URL's password.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
