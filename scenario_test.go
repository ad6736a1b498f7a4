package billing_test

import (
	"testing"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/internal/scenario"
	"github.com/gobilling/billing/memstore"
)

// TestScenarios runs every lifecycle scenario in every delivery mode on
// memstore; sqlstore runs the same on each database.
func TestScenarios(t *testing.T) {
	scenario.Run(t, func(t *testing.T) billing.Store { return memstore.New() })
}
