package sqlstore

import (
	"errors"
	"fmt"
	"testing"

	mysqldriver "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
)

// sqliteErr stands for modernc.org/sqlite's *sqlite.Error, whose fields
// are unexported: the classifier only needs its Code method.
type sqliteErr int

func (e sqliteErr) Error() string { return fmt.Sprintf("sqlite error %d", int(e)) }
func (e sqliteErr) Code() int     { return int(e) }

func wrap(err error) error { return fmt.Errorf("sqlstore: commit: %w", err) }

func TestRetryable(t *testing.T) {
	tests := []struct {
		d    dialect
		err  error
		want bool
	}{
		{&postgres{}, &pgconn.PgError{Code: "40001"}, true},
		{&postgres{}, wrap(&pgconn.PgError{Code: "40P01"}), true},
		{&postgres{}, errors.Join(errors.New("x"), wrap(&pgconn.PgError{Code: "40001"})), true},
		{&postgres{}, &pgconn.PgError{Code: "23505"}, false},
		{&postgres{}, &pgconn.PgError{Code: "25P02"}, false},
		{&postgres{}, errors.New("40001"), false},
		{&postgres{}, nil, false},

		{&mysql{}, &mysqldriver.MySQLError{Number: 1213}, true},
		{&mysql{}, wrap(&mysqldriver.MySQLError{Number: 1205}), true},
		{&mysql{}, &mysqldriver.MySQLError{Number: 1062}, false},
		{&mysql{}, mysqldriver.ErrInvalidConn, false},
		{&mysql{}, nil, false},

		{&sqlite{}, sqliteErr(5), true},   // SQLITE_BUSY
		{&sqlite{}, sqliteErr(517), true}, // SQLITE_BUSY_SNAPSHOT
		{&sqlite{}, wrap(sqliteErr(6)), true},
		{&sqlite{}, sqliteErr(2067), false}, // SQLITE_CONSTRAINT_UNIQUE
		{&sqlite{}, sqliteErr(1), false},
		{&sqlite{}, nil, false},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, tc.d.retryable(tc.err), "%s: %v", tc.d.name(), tc.err)
	}
}

func TestMySQLInserted(t *testing.T) {
	m := &mysql{}
	ok, err := m.inserted(nil, wrap(&mysqldriver.MySQLError{Number: 1062, Message: "Duplicate entry"}))
	assert.False(t, ok)
	assert.NoError(t, err, "a duplicate key is no error: the row exists")
	other := &mysqldriver.MySQLError{Number: 1406, Message: "Data too long"}
	_, err = m.inserted(nil, other)
	assert.ErrorIs(t, err, other)
	assert.Equal(t, uint16(0), mysqlNumber(errors.New("Error 1062: not a MySQLError")))
}

func TestDollarNumbers(t *testing.T) {
	assert.Equal(t, "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)", dollarNumbers("SELECT a FROM t WHERE b = ? AND c IN (?, ?)"))
}

func TestSplitStatements(t *testing.T) {
	got := splitStatements("-- +goose Up\n-- a comment\nCREATE TABLE a (\n    x INT -- inline\n);\n\nCREATE INDEX i ON a (x);\nSELECT 1")
	assert.Equal(t, []string{"CREATE TABLE a (\n    x INT -- inline\n)", "CREATE INDEX i ON a (x)", "SELECT 1"}, got)
}
