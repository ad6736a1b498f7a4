package delivery

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestUnacknowledged checks what GET /v1/events?delivery_success=false
// would list: events that some endpoint has not acknowledged, pending or
// given up.
func TestUnacknowledged(t *testing.T) {
	e := New("2025-08-27.basil")
	t.Cleanup(e.Close)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	down := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	url := "https://in-process.invalid/hook"
	e.Add(Endpoint{ID: "we_ok", URL: url, Enabled: []string{"*"}, Secret: "whsec_1"}, ok, Options{})
	e.Add(Endpoint{ID: "we_bad", URL: url, Enabled: []string{"invoice.paid"}, Secret: "whsec_2"}, down,
		Options{RetryBase: time.Millisecond, MaxAttempts: 2})
	e.Add(Endpoint{ID: "we_shuffled", URL: url, Enabled: []string{"*"}, Secret: "whsec_3"}, ok, Options{Shuffle: true})

	paid := Event{ID: "evt_paid", Type: "invoice.paid", Created: 1, JSON: []byte(`{"id":"evt_paid"}`)}
	created := Event{ID: "evt_created", Type: "invoice.created", Created: 1, JSON: []byte(`{"id":"evt_created"}`)}
	e.Publish(paid)
	e.Publish(created)
	assert.True(t, e.Unacknowledged(created.ID), "pending: held for Flush by the shuffling endpoint")

	require.NoError(t, e.Flush(context.Background()))
	assert.True(t, e.Unacknowledged(paid.ID), "given up by one endpoint")
	assert.False(t, e.Unacknowledged(created.ID), "acknowledged by every endpoint it went to")
	assert.False(t, e.Unacknowledged("evt_unknown"))
	var forPaid []Record
	for _, r := range e.Records() {
		if r.EventID == paid.ID {
			forPaid = append(forPaid, r)
		}
	}
	require.Len(t, forPaid, 3)
	for _, r := range forPaid {
		assert.Equal(t, r.EndpointID == "we_bad", r.GaveUp, r.EndpointID)
	}
}

// The engine's lock is its own: publishing while a delivery is in flight
// (a handler that takes its time) does not wait for it.
func TestPublishDoesNotWaitForSends(t *testing.T) {
	e := New("2025-08-27.basil")
	t.Cleanup(e.Close)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
	})
	e.Add(Endpoint{ID: "we_slow", URL: "https://in-process.invalid/hook", Enabled: []string{"*"}, Secret: "whsec_1"}, slow, Options{})
	e.Publish(Event{ID: "evt_1", Type: "a.b", JSON: []byte(`{}`)})
	<-started
	e.Publish(Event{ID: "evt_2", Type: "a.b", JSON: []byte(`{}`)}) // returns although evt_1 is in flight
	assert.Len(t, e.Records(), 2)
	close(release)
	require.NoError(t, e.Flush(context.Background()))
	for _, r := range e.Records() {
		assert.True(t, r.Succeeded, r.EventID)
	}
}
