package sqlstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/sqlstore"
)

// TestClaimSkipsLockedHead: while another transaction holds a user's
// first pending entry locked (a Claim of another replica, not committed
// yet), Claim skips it, and does not take the user's next entry for a
// head either; other users' entries are claimed. SQLite has one writer
// at a time, so it has no such moment.
func TestClaimSkipsLockedHead(t *testing.T) {
	for _, d := range []sqlstore.Dialect{sqlstore.Postgres, sqlstore.MySQL} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			tdb := database(t, d)
			db := tdb.open(t, 4)
			prefix := newPrefix(t)
			st := newStore(t, tdb, db, sqlstore.Options{TablePrefix: prefix})
			ctx := t.Context()
			t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
			require.NoError(t, st.Apply(ctx, "", func(ctx context.Context, tx billing.Tx) error {
				for _, e := range []billing.OutboxEntry{
					{Key: "a1", UserID: "alice", Kind: "k", Payload: []byte("1"), RecordedAt: t0},
					{Key: "a2", UserID: "alice", Kind: "k", Payload: []byte("2"), RecordedAt: t0},
					{Key: "b1", UserID: "bob", Kind: "k", Payload: []byte("3"), RecordedAt: t0},
				} {
					if _, err := tx.(billing.OutboxTx).Record(ctx, e); err != nil {
						return err
					}
				}
				return nil
			}))

			holder, err := db.BeginTx(ctx, nil)
			require.NoError(t, err)
			defer holder.Rollback() //nolint:errcheck // rolled back below
			var seq int64
			require.NoError(t, holder.QueryRowContext(ctx,
				"SELECT seq FROM "+prefix+"outbox WHERE entry_key = "+ph(d, 1)+" FOR UPDATE", "a1").Scan(&seq))

			now := t0.Add(time.Minute)
			es, err := st.Claim(ctx, now, now.Add(time.Minute), 10)
			require.NoError(t, err)
			require.Len(t, es, 1, "alice's first entry is locked, her second waits behind it")
			require.Equal(t, "b1", es[0].Key)

			require.NoError(t, holder.Rollback())
			es, err = st.Claim(ctx, now, now.Add(time.Minute), 10)
			require.NoError(t, err)
			require.Len(t, es, 1)
			require.Equal(t, "a1", es[0].Key, "unlocked, alice's first entry is claimed (bob's is claimed already)")
		})
	}
}

// TestRecordLongKeys: an entry whose key holds an ID as long as the
// other tables take (255 characters) and more, and whose queue is a
// prefix and such a user ID, is recorded and claimed.
func TestRecordLongKeys(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		st := newTestStore(t, d)
		ctx := t.Context()
		id := strings.Repeat("x", 255)
		e := billing.OutboxEntry{Key: "subscription.trial_ending/" + id + "/1740830400", UserID: "billing." + id,
			Kind: "subscription.trial_ending", Payload: []byte("{}"), RecordedAt: time.Unix(1740830400, 0)}
		require.NoError(t, st.Apply(ctx, "", func(ctx context.Context, tx billing.Tx) error {
			added, err := tx.(billing.OutboxTx).Record(ctx, e)
			require.True(t, added)
			return err
		}))
		es, err := st.Claim(ctx, e.RecordedAt, e.RecordedAt.Add(time.Minute), 10)
		require.NoError(t, err)
		require.Len(t, es, 1)
		require.Equal(t, e.Key, es[0].Key)
		require.Equal(t, e.UserID, es[0].UserID)
	})
}
