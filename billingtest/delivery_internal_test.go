package billingtest

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDeliveryFailed checks what GET /v1/events?delivery_success=false
// would list: events that some endpoint has not acknowledged, pending or
// given up.
func TestDeliveryFailed(t *testing.T) {
	s := New(Options{})
	t.Cleanup(s.Close)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	down := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	s.AddEndpoint(ok, EndpointOptions{})
	bad := s.AddEndpoint(down, EndpointOptions{EnabledEvents: []string{"invoice.paid"},
		Delivery: DeliveryOptions{RetryBase: time.Millisecond, MaxAttempts: 2}})
	s.AddEndpoint(ok, EndpointOptions{Delivery: DeliveryOptions{Chaos: Chaos{Shuffle: true}}})

	paid, created := s.NewEvent("invoice.paid", map[string]any{"id": "in_1"}), s.NewEvent("invoice.created", map[string]any{"id": "in_1"})
	s.mu.Lock()
	s.publish(paid)
	s.publish(created)
	assert.True(t, s.deliveryFailed(created.ID), "pending: held for Flush by the shuffling endpoint")
	s.mu.Unlock()

	require.NoError(t, s.Flush(context.Background()))
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.True(t, s.deliveryFailed(paid.ID), "given up by one endpoint")
	assert.False(t, s.deliveryFailed(created.ID), "acknowledged by every endpoint it went to")
	assert.False(t, s.deliveryFailed("evt_unknown"))
	require.Len(t, s.dl.byEvent[paid.ID], 3)
	for _, tk := range s.dl.byEvent[paid.ID] {
		assert.Equal(t, tk.ep.id == bad.ID, tk.rec.GaveUp)
	}
}
