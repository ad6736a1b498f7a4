package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// This file is billing's health report: what a load balancer needs (is
// the store reachable: 200 or 503) and what an operator watches (the age
// of the last applied event, parked events, undelivered and dead
// changes), from counts only: no payload is read. The CLI's doctor
// reports the same [Health].

// EventStats is what a Store may offer the health report: when it last
// recorded an event. billing uses it when the Store implements it (or,
// failing that, [EventLister]); without either, the age of the last
// applied event is reported unknown.
type EventStats interface {
	// LastProcessed returns when the most recent event ID was recorded
	// by a committed Store.Apply (or ConditionalStore.ApplyNewer), by
	// the store's clock, or the zero time when none is recorded. It must
	// be cheap (an indexed maximum, a kept value): health checks call
	// it every few seconds.
	LastProcessed(ctx context.Context) (time.Time, error)
}

// HealthStatus sums up a [Health].
type HealthStatus string

// The statuses of a [Health].
const (
	// HealthOK: the store answers and nothing waits for an operator.
	HealthOK HealthStatus = "ok"
	// HealthDegraded: the store answers, but events are parked, changes
	// are dead-lettered, or a count could not be read. Billing works;
	// someone should look (Health.Problems says at what).
	HealthDegraded HealthStatus = "degraded"
	// HealthDown: the store does not answer; webhook deliveries fail
	// (Stripe retries them) and memberships cannot be read.
	HealthDown HealthStatus = "down"
)

// Health is billing's state as [Billing.Health] reads it: counts and
// ages, never a payload. A count that could not be read is zero, and
// Problems says so.
type Health struct {
	// Status sums it up: HealthOK, HealthDegraded or HealthDown.
	Status HealthStatus
	// OK is Status == HealthOK: the store answers and nothing waits for
	// an operator.
	OK bool
	// CheckedAt is when the report was made, on the Config.Clock.
	CheckedAt time.Time

	// StoreOK says whether the store answered (it counted the parked
	// events). HealthHandler answers 503 when it did not, 200 otherwise.
	StoreOK bool
	// StoreError is the store's error: the one that made it down, or
	// those that left a count unread. HealthHandler does not serve it
	// (it may name hosts or databases): the handler logs it.
	StoreError string

	// LastEventKnown is false when the Store tells no time of its last
	// recorded event (it implements neither EventStats nor EventLister),
	// or reading it failed.
	LastEventKnown bool
	// LastEventAt is when the store recorded the last applied event:
	// zero when unknown, or when no event was ever applied.
	LastEventAt time.Time
	// LastEventAge is CheckedAt less LastEventAt (zero when LastEventAt
	// is). How old is too old depends on the app's traffic: a busy shop
	// applies events every minute, a quiet one every few days.
	LastEventAge time.Duration

	// Parked counts the events parked for an operator ([Billing.Replay]).
	Parked int64

	// Hooks says whether billing delivers changes from an outbox
	// (Config.Hooks.Handler, or SecondSubscription: CancelSecond); the
	// three fields below are zero without.
	Hooks bool
	// HooksPending counts the changes waiting for delivery.
	HooksPending int64
	// HooksDead counts the changes dead-lettered ([Billing.DeadHooks]).
	HooksDead int64
	// HookLag is how long the oldest pending change has waited since it
	// was recorded (zero when none is pending). It grows when RunHooks
	// does not run, or the handler keeps failing.
	HookLag time.Duration

	// Problems say, for an operator, what made the status degraded or
	// down, with what to do. Empty when OK.
	Problems []string
}

// Health reads billing's state from the store: whether it answers, the
// age of the last applied event, and the parked, pending and dead counts
// (counts only: no payload is read). Ages are measured on Config.Clock.
// It never fails: what could not be read is in the report.
func (b *Billing) Health(ctx context.Context) Health {
	now := b.now()
	h := Health{CheckedAt: now.UTC(), Hooks: b.hooks != nil}
	n, err := b.store.CountParked(ctx)
	if err != nil {
		h.Status = HealthDown
		h.StoreError = err.Error()
		h.Problems = append(h.Problems, "the store does not answer (Health.StoreError has the error; HealthHandler logs it): webhook deliveries fail (Stripe retries them, in live mode for up to three days) and memberships cannot be read; check the database and the app's connection to it")
		return h
	}
	h.StoreOK = true
	h.Parked = n
	if n > 0 {
		h.Problems = append(h.Problems, fmt.Sprintf("%d event(s) parked: list them (ParkedEvents), link their customers (LinkCustomer) and Replay them, or Discard them", n))
	}

	var errs []error
	at, known, err := b.lastEventAt(ctx)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("last applied event: %w", err))
		h.Problems = append(h.Problems, "the time of the last applied event could not be read (Health.StoreError has the error; HealthHandler logs it)")
	case known:
		h.LastEventKnown = true
		if !at.IsZero() {
			h.LastEventAt = at.UTC()
			h.LastEventAge = max(now.Sub(at), 0)
		}
	}

	if b.hooks != nil {
		st, err := b.hooks.box.OutboxStats(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("outbox counts: %w", err))
			h.Problems = append(h.Problems, "the outbox's counts could not be read (Health.StoreError has the error; HealthHandler logs it)")
		} else {
			h.HooksPending, h.HooksDead = st.Pending, st.Dead
			if !st.OldestPending.IsZero() {
				h.HookLag = max(now.Sub(st.OldestPending), 0)
			}
			if st.Dead > 0 {
				h.Problems = append(h.Problems, fmt.Sprintf("%d change(s) dead-lettered: fix the handler, then ReplayHook them (or DiscardHook)", st.Dead))
			}
		}
	}

	if err := errors.Join(errs...); err != nil {
		h.StoreError = err.Error()
	}
	h.Status = HealthOK
	if len(h.Problems) > 0 {
		h.Status = HealthDegraded
	}
	h.OK = h.Status == HealthOK
	return h
}

// lastEventAt asks the store when it last recorded an event: known is
// false when the store cannot tell.
func (b *Billing) lastEventAt(ctx context.Context) (at time.Time, known bool, err error) {
	switch s := b.store.(type) {
	case EventStats:
		at, err = s.LastProcessed(ctx)
		return at, err == nil, err
	case EventLister:
		evs, err := s.RecentEvents(ctx, 1)
		if err != nil {
			return time.Time{}, false, err
		}
		if len(evs) > 0 {
			at = evs[0].ProcessedAt
		}
		return at, true, nil
	}
	return time.Time{}, false, nil
}

// healthJSON is the JSON of a Health: durations in whole seconds, an
// unknown time or age null.
type healthJSON struct {
	Status              HealthStatus `json:"status"`
	OK                  bool         `json:"ok"`
	CheckedAt           time.Time    `json:"checked_at"`
	StoreOK             bool         `json:"store_ok"`
	StoreError          string       `json:"store_error,omitempty"`
	LastEventKnown      bool         `json:"last_event_known"`
	LastEventAt         *time.Time   `json:"last_event_at"`
	LastEventAgeSeconds *int64       `json:"last_event_age_seconds"`
	Parked              int64        `json:"parked"`
	Hooks               *hooksJSON   `json:"hooks"`
	Problems            []string     `json:"problems"`
}

type hooksJSON struct {
	Pending    int64 `json:"pending"`
	Dead       int64 `json:"dead"`
	LagSeconds int64 `json:"lag_seconds"`
}

// MarshalJSON encodes h as HealthHandler serves it (with store_error,
// which the handler leaves out):
//
//	{"status": "degraded", "ok": false, "checked_at": "2026-03-02T10:00:00Z",
//	 "store_ok": true, "last_event_known": true,
//	 "last_event_at": "2026-03-02T09:58:20Z", "last_event_age_seconds": 100,
//	 "parked": 2, "hooks": {"pending": 1, "dead": 0, "lag_seconds": 30},
//	 "problems": ["2 event(s) parked: ..."]}
//
// last_event_at and last_event_age_seconds are null when unknown or when
// no event was applied yet; hooks is null without hooks; problems is
// always a list.
func (h Health) MarshalJSON() ([]byte, error) {
	j := healthJSON{Status: h.Status, OK: h.OK, CheckedAt: h.CheckedAt, StoreOK: h.StoreOK, StoreError: h.StoreError,
		LastEventKnown: h.LastEventKnown, Parked: h.Parked, Problems: h.Problems}
	if j.Problems == nil {
		j.Problems = []string{}
	}
	if !h.LastEventAt.IsZero() {
		at, age := h.LastEventAt, int64(h.LastEventAge/time.Second)
		j.LastEventAt, j.LastEventAgeSeconds = &at, &age
	}
	if h.Hooks {
		j.Hooks = &hooksJSON{Pending: h.HooksPending, Dead: h.HooksDead, LagSeconds: int64(h.HookLag / time.Second)}
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes what MarshalJSON encodes (a HealthHandler's
// body, say, for a monitor written in Go).
func (h *Health) UnmarshalJSON(data []byte) error {
	var j healthJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*h = Health{Status: j.Status, OK: j.OK, CheckedAt: j.CheckedAt, StoreOK: j.StoreOK, StoreError: j.StoreError,
		LastEventKnown: j.LastEventKnown, Parked: j.Parked, Problems: j.Problems}
	if j.LastEventAt != nil {
		h.LastEventAt = *j.LastEventAt
	}
	if j.LastEventAgeSeconds != nil {
		h.LastEventAge = time.Duration(*j.LastEventAgeSeconds) * time.Second
	}
	if j.Hooks != nil {
		h.Hooks, h.HooksPending, h.HooksDead = true, j.Hooks.Pending, j.Hooks.Dead
		h.HookLag = time.Duration(j.Hooks.LagSeconds) * time.Second
	}
	if len(h.Problems) == 0 {
		h.Problems = nil
	}
	return nil
}

// HealthHandler returns an http.Handler that serves [Billing.Health] as
// JSON to GET and HEAD (405 otherwise), never cached. It answers 200
// while the store answers, degraded or not, and 503 when it does not:
// a load balancer or an orchestrator's readiness probe reads the status
// code only, and takes a replica out of service only when it cannot
// apply webhooks at all (a parked event or a dead change is no reason to
// stop serving). An operator, a monitor or the CLI reads the body: the
// status ("ok", "degraded", "down"), the ages and counts to alert on, and
// the problems with what to do. The store's error is logged at Warn, not
// served. The body holds counts only, no user or payload; still, mount it
// where the app's monitoring reaches it rather than on the public site,
// say "GET /healthz/billing" on an internal port.
func (b *Billing) HealthHandler() http.Handler { return healthHandler{b} }

type healthHandler struct{ b *Billing }

func (hh healthHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := hh.b.Health(r.Context())
	if h.StoreError != "" {
		hh.b.log.Warn("billing: health check: store error", "status", string(h.Status), "error", h.StoreError)
		h.StoreError = ""
	}
	body, err := json.Marshal(h)
	if err != nil {
		http.Error(w, "cannot encode health", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	code := http.StatusOK
	if !h.StoreOK {
		code = http.StatusServiceUnavailable
	}
	w.WriteHeader(code)
	if r.Method == http.MethodHead {
		return
	}
	w.Write(append(body, '\n'))
}
