package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// This file is the dispatcher: it claims recorded changes from the
// Store's outbox and delivers them to the app's handler, at least once,
// in order per user, retrying with backoff on the Clock and
// dead-lettering what keeps failing. It never runs inside a webhook
// request: the webhook's answer waits for the commit only.

// Defaults of [Hooks]' zero fields.
const (
	DefaultHookAttempts   = 10
	DefaultHookBackoff    = 30 * time.Second
	DefaultHookMaxBackoff = time.Hour
	DefaultHookClaim      = 5 * time.Minute
	DefaultHookPoll       = 2 * time.Second
	DefaultHookBatch      = 32
)

// ChangeHandler receives the changes billing records (Config.Hooks). It
// may be called more than once for one change (after a crash, or when a
// delivery outlives its claim): use [Change].Key as the idempotency key
// of what it does. An error (or a panic) makes billing deliver the change
// again later; the user's later changes wait until this one is delivered
// or dead-lettered.
type ChangeHandler interface {
	HandleChange(ctx context.Context, c Change) error
}

// ChangeHandlerFunc adapts a function to a ChangeHandler.
type ChangeHandlerFunc func(ctx context.Context, c Change) error

// HandleChange calls f.
func (f ChangeHandlerFunc) HandleChange(ctx context.Context, c Change) error { return f(ctx, c) }

// Hooks configures the delivery of changes to the app ([Config].Hooks).
// With a Handler, billing records every change in the Store's outbox (the
// Store must implement [Outbox]) in the transaction that stores it, and
// [Billing.RunHooks] or [Billing.DispatchHooks] delivers them.
type Hooks struct {
	// Handler receives the changes. Nil: no changes are recorded.
	Handler ChangeHandler
	// MaxAttempts is how many deliveries of a change fail before it is
	// dead-lettered (default DefaultHookAttempts).
	MaxAttempts int
	// Backoff is the wait after a first failure; it doubles with each
	// failure, up to MaxBackoff (defaults DefaultHookBackoff and
	// DefaultHookMaxBackoff).
	Backoff, MaxBackoff time.Duration
	// Claim is how long one delivery may take before another replica may
	// deliver the change again (default DefaultHookClaim). The handler's
	// context ends then.
	Claim time.Duration
	// Poll is how often RunHooks looks for due changes besides being woken
	// by the webhook handler of its own process (default DefaultHookPoll).
	Poll time.Duration
	// Batch is how many changes one claim takes (default DefaultHookBatch).
	Batch int
}

// hooks is a Billing's delivery state.
type hooks struct {
	cfg   Hooks
	box   Outbox
	nudge chan struct{}
}

// newHooks checks Config.Hooks against the store.
func newHooks(cfg Hooks, store Store, tasks bool) (*hooks, error) {
	if cfg.Handler == nil && !tasks {
		return nil, nil
	}
	box, ok := store.(Outbox)
	if !ok {
		return nil, fmt.Errorf("%w: Hooks.Handler or SecondSubscription: CancelSecond is set but the Store (%T) keeps no outbox: use a Store that implements billing.Outbox (memstore, sqlstore)", ErrConfig, store)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{{"Backoff", &cfg.Backoff, DefaultHookBackoff}, {"MaxBackoff", &cfg.MaxBackoff, DefaultHookMaxBackoff}, {"Claim", &cfg.Claim, DefaultHookClaim}, {"Poll", &cfg.Poll, DefaultHookPoll}} {
		if *d.v < 0 {
			return nil, fmt.Errorf("%w: Hooks.%s %v is negative", ErrConfig, d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if cfg.MaxAttempts < 0 || cfg.Batch < 0 {
		return nil, fmt.Errorf("%w: Hooks.MaxAttempts and Hooks.Batch must not be negative", ErrConfig)
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultHookAttempts
	}
	if cfg.Batch == 0 {
		cfg.Batch = DefaultHookBatch
	}
	if cfg.MaxBackoff < cfg.Backoff {
		cfg.MaxBackoff = cfg.Backoff
	}
	return &hooks{cfg: cfg, box: box, nudge: make(chan struct{}, 1)}, nil
}

// ErrNoHooks is returned by the hook methods of a Billing whose Config
// has no Hooks.Handler.
var ErrNoHooks = errors.New("billing: no hooks configured (Config.Hooks.Handler)")

// backoff is the wait after the given number of failed deliveries.
func (h *hooks) backoff(failures int) time.Duration {
	d := h.cfg.Backoff
	for i := 1; i < failures && d < h.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, h.cfg.MaxBackoff)
}

// wake tells RunHooks in this process that changes were recorded.
func (b *Billing) wakeHooks() {
	if b.hooks == nil {
		return
	}
	select {
	case b.hooks.nudge <- struct{}{}:
	default:
	}
}

// DispatchHooks delivers the changes due now, until none is due, and
// returns how many it delivered. Failed deliveries are retried by a later
// call once their backoff has passed on the Clock. Call it from a job, or
// run [Billing.RunHooks]; any number of processes may call it at once.
func (b *Billing) DispatchHooks(ctx context.Context) (int, error) {
	h := b.hooks
	if h == nil {
		return 0, ErrNoHooks
	}
	delivered := 0
	for {
		now := b.now().UTC().Truncate(time.Second)
		es, err := h.box.Claim(ctx, now, now.Add(h.cfg.Claim), h.cfg.Batch)
		if err != nil {
			return delivered, fmt.Errorf("billing: claim changes: %w", err)
		}
		if len(es) == 0 {
			return delivered, nil
		}
		for _, e := range es {
			ok, err := b.deliver(ctx, e)
			if err != nil {
				return delivered, err
			}
			if ok {
				delivered++
			}
		}
	}
}

// deliver hands one claimed entry to the handler and settles it. Only a
// store error is returned.
func (b *Billing) deliver(ctx context.Context, e OutboxEntry) (bool, error) {
	h := b.hooks
	var c Change
	herr := json.Unmarshal(e.Payload, &c)
	if herr != nil {
		herr = fmt.Errorf("billing: undecodable change %s: %w", e.Key, herr)
	} else {
		c.Delivery = e.Attempts + 1
		herr = b.callHandler(ctx, c)
	}
	if herr != nil && strings.HasPrefix(e.Kind, taskPrefix) {
		herr = fmt.Errorf("%s: %w", e.Kind, herr)
	}
	if herr == nil {
		if err := h.box.Delivered(ctx, e.Key, b.now().UTC().Truncate(time.Second)); err != nil {
			return false, fmt.Errorf("billing: mark change %s delivered: %w", e.Key, err)
		}
		b.hookDone(ctx, e, "delivered")
		return true, nil
	}
	if ctx.Err() != nil {
		return false, ctx.Err() // shutting down: the claim expires and another delivery comes
	}
	failures := e.Attempts + 1
	f := DeliveryFailure{Error: herr.Error(), Dead: failures >= h.cfg.MaxAttempts || c.Key == ""}
	if !f.Dead {
		f.RetryAt = b.now().UTC().Add(h.backoff(failures)).Truncate(time.Second)
	}
	if err := h.box.Failed(ctx, e.Key, e.Claim, f); err != nil {
		return false, fmt.Errorf("billing: record failed delivery of change %s: %w", e.Key, err)
	}
	if f.Dead {
		b.hookDone(ctx, e, "dead")
	} else {
		b.hookDone(ctx, e, "failed")
	}
	if f.Dead {
		b.log.Warn("billing: change dead-lettered", "key", e.Key, "kind", e.Kind, "user", e.UserID,
			"attempts", failures, "error", herr.Error(), "hint", "fix the handler, then ReplayHook (or DiscardHook)")
	} else {
		b.log.Debug("change delivery failed; retrying", "key", e.Key, "attempt", failures, "retry_at", f.RetryAt, "error", herr.Error())
	}
	return false, nil
}

// callHandler runs the handler within the claim's time, a panic counted
// as a failure.
func (b *Billing) callHandler(ctx context.Context, c Change) (err error) {
	ctx, cancel := context.WithTimeout(ctx, b.hooks.cfg.Claim)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("billing: change handler panicked: %v", p)
		}
	}()
	if strings.HasPrefix(string(c.Kind), taskPrefix) {
		return b.runTask(ctx, c)
	}
	if b.hooks.cfg.Handler == nil {
		return nil // recorded before the app removed its handler
	}
	return b.hooks.cfg.Handler.HandleChange(ctx, c)
}

// RunHooks delivers changes until ctx is done: whenever the webhook
// handler of this process records one, and every Hooks.Poll on the Clock
// for the rest (other replicas' changes, retries). It returns ctx's error.
// Run it beside the server, in every replica: a change is delivered by
// one replica at a time.
func (b *Billing) RunHooks(ctx context.Context) error {
	h := b.hooks
	if h == nil {
		return ErrNoHooks
	}
	for {
		if _, err := b.DispatchHooks(ctx); err != nil && ctx.Err() == nil {
			b.log.Warn("billing: delivering changes failed; trying again", "error", err)
		}
		wait, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-h.nudge:
				cancel()
			case <-wait.Done():
			}
		}()
		err := b.clock.Sleep(wait, h.cfg.Poll)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
}

// DeadHook is a change whose deliveries all failed.
type DeadHook struct {
	Change    Change
	Attempts  int
	LastError string
}

// DeadHooks returns up to limit dead-lettered changes after the cursor
// ("" for the first page), oldest first, and the cursor of the next page
// ("" when there is none).
func (b *Billing) DeadHooks(ctx context.Context, cursor string, limit int) ([]DeadHook, string, error) {
	if b.hooks == nil {
		return nil, "", ErrNoHooks
	}
	var after int64
	if cursor != "" {
		n, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || n < 0 {
			return nil, "", fmt.Errorf("%w: DeadHooks: bad cursor %q", ErrInvalidArgument, cursor)
		}
		after = n
	}
	if limit <= 0 {
		limit = 100
	}
	es, err := b.hooks.box.DeadEntries(ctx, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("billing: list dead changes: %w", err)
	}
	next := ""
	if len(es) > limit {
		es = es[:limit]
		next = strconv.FormatInt(es[limit-1].Seq, 10)
	}
	out := make([]DeadHook, 0, len(es))
	for _, e := range es {
		var c Change
		if err := json.Unmarshal(e.Payload, &c); err != nil {
			c = Change{Key: e.Key, Kind: ChangeKind(e.Kind), UserID: e.UserID}
		}
		c.Delivery = e.Attempts
		out = append(out, DeadHook{Change: c, Attempts: e.Attempts, LastError: e.LastError})
	}
	return out, next, nil
}

// ReplayHook makes a dead-lettered change due again now, with its
// attempts counted afresh; ErrNotFound when no dead change has the key.
func (b *Billing) ReplayHook(ctx context.Context, key string) error {
	if b.hooks == nil {
		return ErrNoHooks
	}
	if err := b.hooks.box.Requeue(ctx, key, b.now().UTC().Truncate(time.Second)); err != nil {
		return fmt.Errorf("billing: replay change %q: %w", key, err)
	}
	b.wakeHooks()
	return nil
}

// DiscardHook drops a dead-lettered change; ErrNotFound when no dead
// change has the key.
func (b *Billing) DiscardHook(ctx context.Context, key string) error {
	if b.hooks == nil {
		return ErrNoHooks
	}
	if err := b.hooks.box.DiscardDead(ctx, key); err != nil {
		return fmt.Errorf("billing: discard change %q: %w", key, err)
	}
	return nil
}

// PruneHooks removes the changes delivered before cutoff and says how
// many. Keep them at least as long as processed events (PruneEvents):
// a delivered change's key refuses a second recording while it is kept.
func (b *Billing) PruneHooks(ctx context.Context, cutoff time.Time) (int64, error) {
	if b.hooks == nil {
		return 0, ErrNoHooks
	}
	n, err := b.hooks.box.PruneDelivered(ctx, cutoff)
	if err != nil {
		return n, fmt.Errorf("billing: prune delivered changes: %w", err)
	}
	return n, nil
}

// HookStats counts the changes waiting for delivery and the dead ones.
func (b *Billing) HookStats(ctx context.Context) (OutboxStats, error) {
	if b.hooks == nil {
		return OutboxStats{}, ErrNoHooks
	}
	s, err := b.hooks.box.OutboxStats(ctx)
	if err != nil {
		return s, fmt.Errorf("billing: count changes: %w", err)
	}
	return s, nil
}
