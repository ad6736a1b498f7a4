package sqlstore_test

import (
	"context"
	"errors"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/sqlstore"
	"github.com/gobilling/billing/storetest"
)

// icuDatabase is a PostgreSQL database whose default collation is ICU's
// root locale, a language's order (sub_a < sub_B < sub_b), unlike the
// test database's C.UTF-8: created once, kept for the next runs.
const icuDatabase = "billing_test_icu"

// TestConformanceOnALanguageCollation runs the conformance suite on a
// PostgreSQL database with a language's collation, where only the
// store's own COLLATE "C" keeps pages of parked events, subscriptions and
// events in byte-wise order (the suite's IDs sort otherwise there).
func TestConformanceOnALanguageCollation(t *testing.T) {
	tdb := database(t, sqlstore.Postgres)
	admin := tdb.open(t, 1)
	_, err := admin.ExecContext(t.Context(), "CREATE DATABASE "+icuDatabase+
		" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'und' LOCALE 'C.UTF-8'")
	var pgErr *pgconn.PgError
	if err != nil && !(errors.As(err, &pgErr) && (pgErr.Code == "42P04" || pgErr.Code == "23505")) { // made by an earlier run
		require.NoError(t, err, "create the ICU database")
	}
	u, err := url.Parse(tdb.dsn)
	require.NoError(t, err)
	u.Path = "/" + icuDatabase
	icu := testDB{sqlstore.Postgres, "pgx", u.String()}

	// The database sorts as a language does.
	db := icu.open(t, 1)
	var order string
	require.NoError(t, db.QueryRowContext(context.Background(),
		"SELECT string_agg(x, ',' ORDER BY x) FROM (VALUES ('sub_b'), ('sub_B'), ('sub_a'), ('sub_Z')) v(x)").Scan(&order))
	require.Equal(t, "sub_a,sub_b,sub_B,sub_Z", order, "not byte-wise")

	storetest.Run(t, func(t *testing.T) billing.Store { return newStore(t, icu, icu.open(t, 4), sqlstore.Options{}) })
}
