package memstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/memstore"
)

func rec(t *testing.T, s *memstore.Store, es ...billing.OutboxEntry) {
	require.NoError(t, s.Apply(context.Background(), "", func(ctx context.Context, tx billing.Tx) error {
		for _, e := range es {
			if _, err := tx.(billing.OutboxTx).Record(ctx, e); err != nil {
				return err
			}
		}
		return nil
	}))
}

var t0 = time.Unix(1_700_000_000, 0).UTC()

func ent(i int, user string) billing.OutboxEntry {
	return billing.OutboxEntry{Key: fmt.Sprintf("k%02d", i), UserID: user, Kind: "x", Payload: []byte("{}"), RecordedAt: t0.Add(time.Duration(i) * time.Second)}
}

// oldest heads first, at most limit.
func TestEdgeClaimOrderAndLimit(t *testing.T) {
	s := memstore.New()
	for i := range 10 {
		rec(t, s, ent(i, fmt.Sprintf("u%02d", i)))
	}
	es, err := s.Claim(context.Background(), t0.Add(time.Hour), t0.Add(2*time.Hour), 3)
	require.NoError(t, err)
	keys := []string{}
	for _, e := range es {
		keys = append(keys, e.Key)
	}
	assert.Equal(t, []string{"k00", "k01", "k02"}, keys)
	es, err = s.Claim(context.Background(), t0.Add(time.Hour), t0.Add(2*time.Hour), 100)
	require.NoError(t, err)
	keys = keys[:0]
	for _, e := range es {
		keys = append(keys, e.Key)
	}
	assert.Equal(t, []string{"k03", "k04", "k05", "k06", "k07", "k08", "k09"}, keys)
}

// Failed with no claim does nothing.
func TestEdgeFailedNeedsClaim(t *testing.T) {
	s := memstore.New()
	rec(t, s, ent(1, "u"))
	require.NoError(t, s.Failed(context.Background(), "k01", "", billing.DeliveryFailure{Error: "x", RetryAt: t0.Add(24 * time.Hour)}))
	es, err := s.Claim(context.Background(), t0.Add(time.Hour), t0.Add(2*time.Hour), 10)
	require.NoError(t, err)
	require.Len(t, es, 1)
	assert.Zero(t, es[0].Attempts)
}

// OldestPending is the oldest.
func TestEdgeOldestPending(t *testing.T) {
	s := memstore.New()
	rec(t, s, ent(1, "a"), ent(5, "b"))
	st, err := s.OutboxStats(context.Background())
	require.NoError(t, err)
	assert.True(t, st.OldestPending.Equal(t0.Add(time.Second)), "%v", st.OldestPending)
}
