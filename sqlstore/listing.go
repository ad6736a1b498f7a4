package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gobilling/billing"
)

var (
	_ billing.Checkpointer       = (*Store)(nil)
	_ billing.SubscriptionLister = (*Store)(nil)
)

// Checkpoint returns the value saved under name, or "" (schema version
// 7). See [billing.Checkpointer].
func (s *Store) Checkpoint(ctx context.Context, name string) (string, error) {
	var v string
	err := s.queryRow(ctx, s.q.selectCheckpoint, []any{name}, &v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("sqlstore: read checkpoint %q: %w", name, err)
	}
	return v, nil
}

// SaveCheckpoint saves value under name, replacing the one saved before;
// "" removes it. See [billing.Checkpointer].
func (s *Store) SaveCheckpoint(ctx context.Context, name, value string) error {
	err := s.retry(ctx, func() error {
		var err error
		if value == "" {
			_, err = s.exec(ctx, s.q.deleteCheckpoint, name)
		} else {
			_, err = s.exec(ctx, s.q.upsertCheckpoint, s.d.upsertArgs([]any{name, value, s.now().Unix()}, 2)...)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlstore: save checkpoint %q: %w", name, err)
	}
	return nil
}

// ListSubscriptions returns the subscription records q selects, by ID
// (byte-wise), on the status index of schema version 7. See
// [billing.SubscriptionLister].
func (s *Store) ListSubscriptions(ctx context.Context, q billing.SubscriptionQuery) ([]billing.Subscription, error) {
	if q.Limit <= 0 {
		return nil, nil
	}
	query, args := s.q.pageSubs, []any{q.After, q.Limit}
	if len(q.Statuses) > 0 {
		query = s.d.bind(strings.Replace(s.q.pageSubsOf, "%s", marks(len(q.Statuses)), 1))
		args = make([]any, 0, len(q.Statuses)+2)
		for _, st := range q.Statuses {
			args = append(args, string(st))
		}
		args = append(args, q.After, q.Limit)
	}
	subs, err := readSubs(s.query(ctx, query, args...))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list subscriptions: %w", err)
	}
	return subs, nil
}

// MigrationState is one schema version of the store: a migration of this
// package, applied or not, or a version recorded in the database that
// this package does not know (from a newer release of it).
type MigrationState struct {
	Version int64
	// Name is the migration's file name ("0001_init.sql"); "" for a
	// version this package does not know.
	Name string
	// AppliedAt is when Migrate applied it; zero while it is pending.
	AppliedAt time.Time
}

// Pending reports whether the migration is still to be applied.
func (m MigrationState) Pending() bool { return m.AppliedAt.IsZero() }

// MigrationStatus returns every schema version, by version: the
// migrations of [Store.Migrations], each with the time it was applied
// (zero: pending), then any version the database records that this
// package does not know. It only reads: a database that was never
// migrated has every migration pending.
func (s *Store) MigrationStatus(ctx context.Context) ([]MigrationState, error) {
	ms, err := migrations(s.d.name(), s.prefix)
	if err != nil {
		return nil, err
	}
	table := s.prefix + tableMigrations
	applied := map[int64]time.Time{}
	exists, err := s.tableExists(ctx, table)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: migration status: %w", err)
	}
	if exists {
		rows, err := s.db.QueryContext(ctx, "SELECT version, applied_at FROM "+table)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: migration status: %w", err)
		}
		for rows.Next() {
			var v, at int64
			if err := rows.Scan(&v, &at); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlstore: migration status: %w", err)
			}
			applied[v] = fromUnix(at)
		}
		if err := closeRows(rows); err != nil {
			return nil, fmt.Errorf("sqlstore: migration status: %w", err)
		}
	}
	out := make([]MigrationState, 0, len(ms))
	for _, m := range ms {
		out = append(out, MigrationState{Version: m.version, Name: m.name, AppliedAt: applied[m.version]})
		delete(applied, m.version)
	}
	var newer []MigrationState
	for v, at := range applied {
		newer = append(newer, MigrationState{Version: v, AppliedAt: at})
	}
	slices.SortFunc(newer, func(a, b MigrationState) int { return cmp.Compare(a.Version, b.Version) })
	return append(out, newer...), nil
}

// tableExists reports whether the database has the table.
func (s *Store) tableExists(ctx context.Context, table string) (bool, error) {
	var q string
	switch s.d.name() {
	case Postgres:
		q = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1"
	case MySQL:
		q = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
	default:
		q = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
	}
	var n int
	if err := s.db.QueryRowContext(ctx, q, table).Scan(&n); err != nil {
		return false, err
	}
	return n > 0, nil
}
