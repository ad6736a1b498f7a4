package mapstore_test

import (
	"testing"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/examples/mapstore"
	"github.com/gobilling/billing/storetest"
)

// The two suites every Store runs: the contract, and billing's real
// lifecycles through the webhook handler on the offline Stripe.
func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) billing.Store { return mapstore.New() })
}

func TestLifecycles(t *testing.T) {
	storetest.RunLifecycles(t, func(t *testing.T) billing.Store { return mapstore.New() }, storetest.LifecycleOptions{})
}
