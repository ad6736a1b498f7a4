package sqlstore_test

import (
	"io/fs"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing/sqlstore"
)

// TestMigrationStatus: every migration pending on an empty database
// (which MigrationStatus leaves empty), applied after Migrate, and a
// version a newer release recorded listed after them, unnamed.
func TestMigrationStatus(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		tdb := database(t, d)
		prefix := newPrefix(t)
		db := tdb.open(t, 2)
		st, err := sqlstore.New(t.Context(), db, d, sqlstore.Options{TablePrefix: prefix})
		require.NoError(t, err)
		files, err := fs.Glob(st.Migrations(), "*.sql")
		require.NoError(t, err)
		require.NotEmpty(t, files)

		states, err := st.MigrationStatus(t.Context())
		require.NoError(t, err)
		require.Len(t, states, len(files))
		for i, s := range states {
			assert.Equal(t, files[i], s.Name)
			assert.Equal(t, int64(i+1), s.Version)
			assert.True(t, s.Pending(), "%s pending before Migrate", s.Name)
		}
		assert.Empty(t, tableNames(t, tdb, db, prefix), "MigrationStatus creates nothing")

		before := time.Now().Add(-time.Second)
		require.NoError(t, st.Migrate(t.Context()))
		_, err = db.ExecContext(t.Context(), "INSERT INTO "+prefix+"schema_migrations (version, applied_at) VALUES (99, 1700000000)")
		require.NoError(t, err)
		states, err = st.MigrationStatus(t.Context())
		require.NoError(t, err)
		require.Len(t, states, len(files)+1)
		for _, s := range states[:len(files)] {
			assert.False(t, s.Pending(), "%s applied", s.Name)
			assert.False(t, s.AppliedAt.Before(before.Truncate(time.Second)), "%s applied now", s.Name)
		}
		assert.Equal(t, sqlstore.MigrationState{Version: 99, AppliedAt: time.Unix(1700000000, 0).UTC()}, states[len(files)],
			"a version this package does not know, last")
	})
}
