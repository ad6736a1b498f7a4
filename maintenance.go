package billing

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// This file is maintenance: the periodic jobs a deployment runs beside
// its server (CatchUp, and pruning what the store no longer needs), run
// once across replicas under a lease the Store holds.

// MaintenanceLease is the name of the lease [Billing.Maintain] and
// [Billing.MaintainOnce] take from a [Leaser] store.
const MaintenanceLease = "billing-maintenance"

// Errors of leases ([Leaser]).
var (
	// ErrLeaseHeld is returned (wrapped) by [Leaser.Lease] when another
	// holder has the lease, and by [Billing.MaintainOnce] when another
	// replica is maintaining.
	ErrLeaseHeld = errors.New("billing: lease held by another holder")

	// ErrLeaseLost is returned (wrapped) by [Lease.Check] once the lease
	// is no longer held: released, or lost with the database connection
	// that held it.
	ErrLeaseLost = errors.New("billing: lease lost")
)

// Leaser is what a Store may offer so that one replica at a time runs
// [Billing.Maintain]'s jobs: a named, exclusive lease, held until it is
// released or its holder dies. memstore implements it within its
// process; sqlstore with the database's own locks (a PostgreSQL session
// advisory lock, a MySQL/MariaDB named lock (GET_LOCK), both held by a
// connection of their own and freed with it, and, on SQLite, a lock
// within the process).
type Leaser interface {
	// Lease takes the lease called name and returns it held, or, at once
	// and without waiting, an error wrapping ErrLeaseHeld when another
	// holder has it (a second Lease of a held name fails, whoever calls
	// it). ctx bounds the taking only: the lease stays held until
	// released or lost.
	Lease(ctx context.Context, name string) (Lease, error)
}

// Lease is a lease taken from a [Leaser].
type Lease interface {
	// Check returns nil while the lease is held, and an error wrapping
	// ErrLeaseLost once it is not (released, or its database connection
	// died and another holder may have it). Any other error means the
	// store could not tell.
	Check(ctx context.Context) error

	// Release gives the lease up; another holder may take it at once.
	// Releasing it again does nothing. An error says the store could not
	// confirm the release; the lease is freed all the same, at the latest
	// when the database notices its connection closed.
	Release(ctx context.Context) error
}

// EventPruner is what a Store may offer to forget old processed events:
// PruneEvents deletes the records of the events processed longer ago
// than the store's retention (sqlstore's Options.EventRetention, 35 days
// by default, measured on the store's clock) and says how many.
// [Billing.Maintain] calls it daily when the store implements it
// (sqlstore and memstore do).
type EventPruner interface {
	PruneEvents(ctx context.Context) (int64, error)
}

// Defaults of [MaintenanceOptions]' zero fields.
const (
	DefaultCatchUpEvery  = time.Hour
	DefaultCatchUpWindow = 72 * time.Hour
	DefaultPruneEvery    = 24 * time.Hour
	DefaultKeepHooks     = 40 * 24 * time.Hour
	DefaultLeaseRetry    = time.Minute
)

// MaintenanceOptions configures [Billing.Maintain] and
// [Billing.MaintainOnce]. The zero value is the defaults.
type MaintenanceOptions struct {
	// CatchUpEvery is how often the replica holding the lease runs
	// CatchUp (default DefaultCatchUpEvery, an hour). Negative: never.
	CatchUpEvery time.Duration

	// CatchUpWindow is how far back each CatchUp looks (default
	// DefaultCatchUpWindow, 72 hours, as long as Stripe retries a
	// delivery). Stripe keeps 30 days of events.
	CatchUpWindow time.Duration

	// PruneEvery is how often the holder prunes (default
	// DefaultPruneEvery, a day): the processed events past the store's
	// retention (when the store is an [EventPruner]), the delivered
	// changes older than KeepHooks (with Config.Hooks), and the parked
	// events older than KeepParked (when set). Negative: never.
	PruneEvery time.Duration

	// KeepHooks is how long delivered changes are kept (default
	// DefaultKeepHooks, 40 days): keep them longer than processed events
	// (35 days in sqlstore), since a delivered change's key refuses a
	// second recording only while it is kept.
	KeepHooks time.Duration

	// KeepParked, when positive, prunes the events parked longer ago
	// than that. Zero (the default) keeps parked events until an
	// operator replays or discards them.
	KeepParked time.Duration

	// LeaseRetry is how often a replica without the lease tries to take
	// it, and the holder checks it still holds it (default
	// DefaultLeaseRetry, a minute).
	LeaseRetry time.Duration
}

// withDefaults checks o and fills its zero fields.
func (o MaintenanceOptions) withDefaults() (MaintenanceOptions, error) {
	if o.CatchUpWindow < 0 || o.KeepHooks < 0 || o.KeepParked < 0 || o.LeaseRetry < 0 {
		return o, fmt.Errorf("%w: MaintenanceOptions: CatchUpWindow, KeepHooks, KeepParked and LeaseRetry must not be negative", ErrInvalidArgument)
	}
	if o.CatchUpEvery == 0 {
		o.CatchUpEvery = DefaultCatchUpEvery
	}
	if o.CatchUpWindow == 0 {
		o.CatchUpWindow = DefaultCatchUpWindow
	}
	if o.PruneEvery == 0 {
		o.PruneEvery = DefaultPruneEvery
	}
	if o.KeepHooks == 0 {
		o.KeepHooks = DefaultKeepHooks
	}
	if o.LeaseRetry == 0 {
		o.LeaseRetry = DefaultLeaseRetry
	}
	return o, nil
}

// MaintenanceReport says what one round of maintenance did
// ([Billing.MaintainOnce]).
type MaintenanceReport struct {
	// CatchUpRan is set when CatchUp ran; CatchUp is its report.
	CatchUpRan bool
	CatchUp    CatchUpReport
	// PruneRan is set when pruning ran; the counts are what it removed:
	// processed events' records (an [EventPruner] store only), delivered
	// changes (with Config.Hooks) and parked events (with KeepParked).
	PruneRan     bool
	PrunedEvents int64
	PrunedHooks  int64
	PrunedParked int64
}

// Maintain runs billing's periodic jobs until ctx is done, then releases
// its lease and returns ctx's error. Run it beside the server in every
// replica: one at a time holds the Store's lease ([Leaser],
// MaintenanceLease) and does the work, and when it stops (or dies, and
// its database connection with it, which frees the lease) another takes
// over within opts.LeaseRetry. The holder runs [Billing.CatchUp] over the last
// CatchUpWindow when it takes the lease and every CatchUpEvery after
// (hourly by default), and prunes when it takes the lease and every
// PruneEvery after (daily): [EventPruner.PruneEvents],
// [Billing.PruneHooks] with KeepHooks (with Config.Hooks), and
// [Billing.PruneParked] with KeepParked (when set). Each run logs one
// line, at Info with its counts or at Warn with its error; a failed run
// is tried again at its next time, and the loop carries on. All waits are
// on Config.Clock.
//
// A Store that is not a Leaser has no lease to share: every replica that
// runs Maintain then does the work, which is harmless (CatchUp and the
// prunes are idempotent) but repeated. Bad options return an error
// wrapping ErrInvalidArgument at once.
func (b *Billing) Maintain(ctx context.Context, opts MaintenanceOptions) error {
	o, err := opts.withDefaults()
	if err != nil {
		return err
	}
	m := &maintainer{b: b, o: o}
	m.leaser, _ = b.store.(Leaser)
	if m.leaser == nil {
		b.log.Info("maintenance: the store has no lease (billing.Leaser): this replica maintains whether others do or not", "store", fmt.Sprintf("%T", b.store))
	}
	defer m.release(ctx)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		m.step(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.clock.Sleep(ctx, m.wait()); err != nil {
			if ctx.Err() == nil {
				// The clock would not wait past ctx's deadline: nothing is
				// due before it.
				<-ctx.Done()
			}
			return ctx.Err()
		}
	}
}

// MaintainOnce runs one round of maintenance now, for a cron job: it
// takes the lease (an error wrapping ErrLeaseHeld when another replica
// holds it, which a job run on every replica may ignore), runs CatchUp
// (unless opts.CatchUpEvery is negative) and prunes (unless
// opts.PruneEvery is negative) as [Billing.Maintain] does, and releases
// the lease. A failed job does not stop the others: the error joins
// their failures, and the report says what was done.
func (b *Billing) MaintainOnce(ctx context.Context, opts MaintenanceOptions) (MaintenanceReport, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return MaintenanceReport{}, err
	}
	m := &maintainer{b: b, o: o}
	m.leaser, _ = b.store.(Leaser)
	if m.leaser != nil {
		l, err := m.leaser.Lease(ctx, MaintenanceLease)
		if err != nil {
			return MaintenanceReport{}, fmt.Errorf("billing: maintenance: take the lease: %w", err)
		}
		m.lease = l
		defer m.release(ctx)
	}
	var rep MaintenanceReport
	var errs []error
	if o.CatchUpEvery > 0 {
		rep.CatchUpRan = true
		rep.CatchUp, err = m.catchUp(ctx)
		errs = append(errs, err)
	}
	if o.PruneEvery > 0 {
		rep.PruneRan = true
		rep.PrunedEvents, rep.PrunedHooks, rep.PrunedParked, err = m.prune(ctx)
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

// maintainer is one replica's maintenance state.
type maintainer struct {
	b      *Billing
	o      MaintenanceOptions
	leaser Leaser // nil: the store has none, and this replica always maintains
	lease  Lease  // held, when leaser is set
	// nextCatchUp and nextPrune are when the jobs are due, while this
	// replica maintains (zero: at once).
	nextCatchUp, nextPrune time.Time
	// waiting is set once "another replica holds the lease" was logged.
	waiting bool
}

// maintaining reports whether this replica does the work now.
func (m *maintainer) maintaining() bool { return m.leaser == nil || m.lease != nil }

// step makes sure of the lease, takes it if it is free, and runs the
// jobs due.
func (m *maintainer) step(ctx context.Context) {
	b := m.b
	if m.lease != nil {
		if err := m.lease.Check(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			b.log.Warn("maintenance: lost the lease; trying to take it again", "lease", MaintenanceLease, "error", err.Error())
			m.release(ctx)
		}
	}
	if m.leaser != nil && m.lease == nil {
		l, err := m.leaser.Lease(ctx, MaintenanceLease)
		switch {
		case err == nil:
			m.lease, m.waiting = l, false
			m.nextCatchUp, m.nextPrune = time.Time{}, time.Time{}
			b.log.Info("maintenance: this replica holds the lease and maintains", "lease", MaintenanceLease)
		case errors.Is(err, ErrLeaseHeld):
			if !m.waiting {
				m.waiting = true
				b.log.Info("maintenance: another replica holds the lease; waiting to take over", "lease", MaintenanceLease, "retry", m.o.LeaseRetry.String())
			}
		case ctx.Err() == nil:
			b.log.Warn("maintenance: could not take the lease; trying again", "lease", MaintenanceLease, "error", err.Error(), "retry", m.o.LeaseRetry.String())
		}
	}
	if !m.maintaining() {
		return
	}
	if m.o.CatchUpEvery > 0 && !b.now().Before(m.nextCatchUp) {
		start := b.now()
		m.catchUp(ctx) //nolint:errcheck // logged
		m.nextCatchUp = start.Add(m.o.CatchUpEvery)
	}
	if ctx.Err() != nil {
		return
	}
	if m.o.PruneEvery > 0 && !b.now().Before(m.nextPrune) {
		start := b.now()
		m.prune(ctx) //nolint:errcheck // logged
		m.nextPrune = start.Add(m.o.PruneEvery)
	}
}

// wait is how long to sleep after a step: until the next job is due,
// at most LeaseRetry (the holder checks its lease that often).
func (m *maintainer) wait() time.Duration {
	d := m.o.LeaseRetry
	if !m.maintaining() {
		return d
	}
	now := m.b.now()
	if m.o.CatchUpEvery > 0 {
		d = min(d, m.nextCatchUp.Sub(now))
	}
	if m.o.PruneEvery > 0 {
		d = min(d, m.nextPrune.Sub(now))
	}
	return max(d, 0)
}

// release gives the lease up, if held, even when ctx is done.
func (m *maintainer) release(ctx context.Context) {
	if m.lease == nil {
		return
	}
	l := m.lease
	m.lease = nil
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := l.Release(rctx); err != nil {
		m.b.log.Warn("maintenance: releasing the lease failed; it is freed when its connection closes", "lease", MaintenanceLease, "error", err.Error())
		return
	}
	m.b.log.Info("maintenance: lease released", "lease", MaintenanceLease)
}

// catchUp runs CatchUp over the window and logs one line.
func (m *maintainer) catchUp(ctx context.Context) (CatchUpReport, error) {
	b := m.b
	since := b.now().Add(-m.o.CatchUpWindow)
	rep, err := b.CatchUp(ctx, since)
	args := []any{"since", since.UTC().Format(time.RFC3339), "seen", rep.Seen, "applied", rep.Applied,
		"duplicates", rep.Duplicates, "parked", rep.Parked, "skipped", rep.Skipped, "failed", rep.Failed}
	switch {
	case err != nil && ctx.Err() != nil:
		// Stopping: not a failure.
	case err != nil:
		b.log.Warn("maintenance: catch-up failed; the next run tries again", append(args, "error", err.Error())...)
	default:
		b.log.Info("maintenance: caught up", args...)
	}
	return rep, err
}

// prune prunes what is due and logs one line.
func (m *maintainer) prune(ctx context.Context) (events, hooks, parked int64, err error) {
	b := m.b
	var errs []error
	if p, ok := b.store.(EventPruner); ok {
		n, err := p.PruneEvents(ctx)
		events = n
		if err != nil {
			errs = append(errs, fmt.Errorf("billing: prune processed events: %w", err))
		}
	}
	if b.hooks != nil {
		n, err := b.PruneHooks(ctx, b.now().Add(-m.o.KeepHooks))
		hooks = n
		errs = append(errs, err)
	}
	if m.o.KeepParked > 0 {
		n, err := b.PruneParked(ctx, b.now().Add(-m.o.KeepParked))
		parked = n
		errs = append(errs, err)
	}
	err = errors.Join(errs...)
	args := []any{"events", events, "hooks", hooks, "parked", parked}
	switch {
	case err != nil && ctx.Err() != nil:
	case err != nil:
		b.log.Warn("maintenance: pruning failed; the next run tries again", append(args, "error", err.Error())...)
	default:
		b.log.Info("maintenance: pruned", args...)
	}
	return events, hooks, parked, err
}
