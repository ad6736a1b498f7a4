package sqlstore_test

import (
	"testing"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/sqlstore"
	"github.com/gobilling/billing/storetest"
)

// TestConformance runs the store conformance suite, unchanged, on each
// database. Every subtest gets tables of its own.
func TestConformance(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		database(t, d) // skip here, once, when the database is not configured
		storetest.Run(t, func(t *testing.T) billing.Store { return newTestStore(t, d) })
	})
}

// TestLifecycles runs the hostile lifecycle suite, every delivery mode,
// through the webhook handler against the offline Stripe, on each
// database.
func TestLifecycles(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		database(t, d)
		storetest.RunLifecycles(t, func(t *testing.T) billing.Store { return newTestStore(t, d) }, storetest.LifecycleOptions{})
	})
}

// TestLifecyclesWithoutHooks runs the lifecycle suite with hooks off, so
// that subscription states take the one-statement write that also
// reports what it replaced (billing.PreviousReporter), and checks every
// story's changes from billing's INFO lines.
func TestLifecyclesWithoutHooks(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		database(t, d)
		storetest.RunLifecycles(t, func(t *testing.T) billing.Store { return newTestStore(t, d) }, storetest.LifecycleOptions{NoHooks: true})
	})
}
