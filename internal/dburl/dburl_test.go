package dburl

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing/sqlstore"
)

func TestMySQLDSN(t *testing.T) {
	dsn, err := MySQLDSN("mysql://app:p%40ss%2Fw@db.example:3307/club?tls=skip-verify&timeout=5s")
	require.NoError(t, err)
	cfg, err := mysql.ParseDSN(dsn)
	require.NoError(t, err)
	assert.Equal(t, "app", cfg.User)
	assert.Equal(t, "p@ss/w", cfg.Passwd)
	assert.Equal(t, "tcp", cfg.Net)
	assert.Equal(t, "db.example:3307", cfg.Addr)
	assert.Equal(t, "club", cfg.DBName)
	assert.True(t, cfg.ParseTime)
	assert.Equal(t, "skip-verify", cfg.TLSConfig)
	assert.Equal(t, 5*time.Second, cfg.Timeout)

	dsn, err = MySQLDSN("mysql://root@localhost/club")
	require.NoError(t, err)
	cfg, err = mysql.ParseDSN(dsn)
	require.NoError(t, err)
	assert.Equal(t, "localhost:3306", cfg.Addr)
	dsn, err = MySQLDSN("mysql://root@[::1]/club")
	require.NoError(t, err)
	cfg, err = mysql.ParseDSN(dsn)
	require.NoError(t, err)
	assert.Equal(t, "[::1]:3306", cfg.Addr, "the default port beside an IPv6 address")

	for _, bad := range []string{"mysql://root@localhost", "mysql:///club", "mysql://h/db?tls=nonsense"} {
		_, err := MySQLDSN(bad)
		assert.Error(t, err, bad)
	}
	_, err = MySQLDSN("mysql://root:hunter2@localhost")
	assert.NotContains(t, err.Error(), "hunter2")
}

func TestRedact(t *testing.T) {
	assert.Equal(t, "postgres://app:xxxxx@db:5432/club", Redact("postgres://app:hunter2@db:5432/club"))
	assert.Equal(t, "(unparsable URL)", Redact("postgres://app:hunter2@db:5432/club\x7f"))
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	_, _, _, err := Open(ctx, "")
	require.Error(t, err, "no URL")

	// Any other value is an SQLite path, its directories created.
	path := filepath.Join(t.TempDir(), "var", "lib", "club.db")
	db, dialect, where, err := Open(ctx, path)
	require.NoError(t, err)
	assert.Equal(t, sqlstore.SQLite, dialect)
	assert.Equal(t, path, where)
	require.NoError(t, db.Close())
	assert.FileExists(t, path)

	// A server that is not there: an error naming it, without the password.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, _, _, err = Open(cctx, "postgres://app:hunter2@"+addr+"/club?connect_timeout=2")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "connect to the postgres database postgres://app:xxxxx@"+addr)
	assert.NotContains(t, err.Error(), "hunter2")
	_, _, _, err = Open(cctx, "mysql://root:hunter2@"+addr+"/club?timeout=2s")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "connect to the mysql database mysql://root:xxxxx@"+addr)
	assert.NotContains(t, err.Error(), "hunter2")
}

func TestRedactQueryPasswords(t *testing.T) {
	got := Redact("postgres://app@db:5432/club?sslmode=disable&password=S3cretPW&sslpassword=K3y")
	assert.NotContains(t, got, "S3cretPW")
	assert.NotContains(t, got, "K3y")
	assert.Contains(t, got, "sslmode=disable")
	assert.Equal(t, "data/billing.db", Redact("data/billing.db"), "a path is shown")
	assert.NotContains(t, Redact("root:S3cretPW@tcp(127.0.0.1:3306)/db"), "S3cretPW", "a DSN is hidden")
	assert.NotContains(t, Redact("postgres://h/db?PASSWORD=S3cretPW"), "S3cretPW", "whatever the case")
	assert.NotContains(t, Redact("data/app.db?password=S3cretPW"), "S3cretPW", "not a URL, not plainly a path")
}

// Values that are not a path are refused, never opened as an SQLite file
// named after their credentials; schemes match whatever their case.
func TestOpenRefusesWhatIsNotADatabaseURL(t *testing.T) {
	t.Chdir(t.TempDir())
	ctx := context.Background()
	for _, bad := range []string{
		"root:S3cretPW@tcp(127.0.0.1:3306)/db", // go-sql-driver's DSN
		"mariadb://root:S3cretPW@127.0.0.1/db",
		"redis://:S3cretPW@127.0.0.1:6379/0",
		"mariadb://127.0.0.1/db", // no credentials: still not a path
		"redis://127.0.0.1:6379/0",
	} {
		_, _, _, err := Open(ctx, bad)
		require.Error(t, err, bad)
		assert.NotContains(t, err.Error(), "S3cretPW")
		assert.Contains(t, err.Error(), "want postgres://")
	}
	entries, err := os.ReadDir(".")
	require.NoError(t, err)
	assert.Empty(t, entries, "no file or directory made")

	// Upper case is the same scheme: a server that is not there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	_, _, _, err = Open(ctx, "POSTGRES://app:S3cretPW@"+addr+"/club?connect_timeout=2")
	require.ErrorContains(t, err, "connect to the postgres database")
	assert.NotContains(t, err.Error(), "S3cretPW")
	_, _, _, err = Open(ctx, "postgresql://app:S3cretPW@"+addr+"/club?connect_timeout=2")
	require.ErrorContains(t, err, "connect to the postgres database postgresql://app:xxxxx@")

	abs := filepath.Join(t.TempDir(), "abs.db")
	adb, _, awhere, err := Open(ctx, "sqlite://"+abs) // sqlite:///tmp/...: absolute
	require.NoError(t, err)
	adb.Close()
	assert.Equal(t, abs, awhere)

	db, d, where, err := Open(ctx, "sqlite://var/app.db")
	require.NoError(t, err)
	defer db.Close()
	assert.Equal(t, sqlstore.SQLite, d)
	assert.Equal(t, "var/app.db", where)
	assert.FileExists(t, filepath.Join("var", "app.db"))
}
