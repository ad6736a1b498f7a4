package dburl

import (
	"context"
	"net"
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
