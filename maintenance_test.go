package billing_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testcatalog"
	"github.com/gobilling/billing/memstore"
)

// stepClock is a billing.Clock whose Sleep waits until the test moves
// time past its end: the maintenance loops run only when the test
// advances the clock, and never sleep for real. Its time is the offline
// Stripe's, which advancing moves.
type stepClock struct {
	fake *billingtest.Stripe

	mu       sync.Mutex
	sleepers []*sleeper
	changed  chan struct{} // closed, and replaced, whenever sleepers change
}

type sleeper struct {
	until time.Time
	wake  chan struct{}
}

func newStepClock(fake *billingtest.Stripe) *stepClock {
	return &stepClock{fake: fake, changed: make(chan struct{})}
}

func (c *stepClock) Now() time.Time { return c.fake.Now() }

func (c *stepClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	s := &sleeper{until: c.Now().Add(d), wake: make(chan struct{})}
	c.mu.Lock()
	c.sleepers = append(c.sleepers, s)
	c.notifyLocked()
	c.mu.Unlock()
	select {
	case <-s.wake:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		for i, o := range c.sleepers {
			if o == s {
				c.sleepers = append(c.sleepers[:i], c.sleepers[i+1:]...)
				break
			}
		}
		c.notifyLocked()
		c.mu.Unlock()
		return ctx.Err()
	}
}

func (c *stepClock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// waitSleepers waits until n goroutines sleep on the clock: every loop
// has finished what it was doing.
func (c *stepClock) waitSleepers(t *testing.T, n int) []*sleeper {
	t.Helper()
	timeout := time.After(10 * time.Second) // a hang, not a wait
	for {
		c.mu.Lock()
		if len(c.sleepers) == n {
			ss := append([]*sleeper(nil), c.sleepers...)
			c.mu.Unlock()
			return ss
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("waiting for %d sleepers on the clock", n)
		}
	}
}

// advance moves the clock d forward, waking the sleepers as their time
// comes, in order, each time after the n running loops are all asleep
// again; it returns with the n loops asleep.
func (c *stepClock) advance(t *testing.T, n int, d time.Duration) {
	t.Helper()
	target := c.Now().Add(d)
	for {
		ss := c.waitSleepers(t, n)
		next := ss[0].until
		for _, s := range ss[1:] {
			if s.until.Before(next) {
				next = s.until
			}
		}
		if next.After(target) {
			c.moveTo(target)
			return
		}
		c.moveTo(next)
		now := c.Now()
		c.mu.Lock()
		kept := c.sleepers[:0]
		for _, s := range c.sleepers {
			if s.until.After(now) {
				kept = append(kept, s)
			} else {
				close(s.wake)
			}
		}
		c.sleepers = kept
		c.notifyLocked()
		c.mu.Unlock()
	}
}

func (c *stepClock) moveTo(at time.Time) {
	if d := at.Sub(c.Now()); d > 0 {
		_ = c.fake.Sleep(context.Background(), d)
	}
}

// leaseWatch follows who holds the maintenance lease among replicas, and
// counts what each replica's store was asked to prune.
type leaseWatch struct {
	t *testing.T

	mu          sync.Mutex
	holder      string
	takes       []string
	eventPrunes map[string]int
	hookPrunes  map[string]int
	hookCutoff  time.Time
	failPrune   bool
}

func (w *leaseWatch) took(replica string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.holder != "" {
		w.t.Errorf("replica %s took the lease while %s held it", replica, w.holder)
	}
	w.holder = replica
	w.takes = append(w.takes, replica)
}

func (w *leaseWatch) released(replica string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.holder == replica {
		w.holder = ""
	}
}

func (w *leaseWatch) state() (holder string, takes []string, eventPrunes, hookPrunes map[string]int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.holder, append([]string(nil), w.takes...), clone(w.eventPrunes), clone(w.hookPrunes)
}

func clone(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// replicaStore is one replica's view of a shared memstore: its leases
// and prunes are watched. It is a billing.EventPruner (memstore is not).
type replicaStore struct {
	*memstore.Store
	name string
	w    *leaseWatch
}

func (s *replicaStore) Lease(ctx context.Context, name string) (billing.Lease, error) {
	l, err := s.Store.Lease(ctx, name)
	if err != nil {
		return nil, err
	}
	s.w.took(s.name)
	return &watchedLease{Lease: l, s: s}, nil
}

func (s *replicaStore) PruneEvents(ctx context.Context) (int64, error) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if s.w.failPrune {
		s.w.failPrune = false
		return 0, errors.New("the database is down")
	}
	s.w.eventPrunes[s.name]++
	return 3, nil
}

func (s *replicaStore) PruneDelivered(ctx context.Context, cutoff time.Time) (int64, error) {
	s.w.mu.Lock()
	s.w.hookPrunes[s.name]++
	s.w.hookCutoff = cutoff
	s.w.mu.Unlock()
	return s.Store.PruneDelivered(ctx, cutoff)
}

type watchedLease struct {
	billing.Lease
	s *replicaStore
}

func (l *watchedLease) Release(ctx context.Context) error {
	l.s.w.released(l.s.name) // before another may take it
	return l.Lease.Release(ctx)
}

// maintWorld is replicas of one app on one store and one offline Stripe,
// on a clock the test moves.
type maintWorld struct {
	fake  *billingtest.Stripe
	clock *stepClock
	store *memstore.Store
	watch *leaseWatch
}

func newMaintWorld(t *testing.T) *maintWorld {
	fake := testcatalog.NewStripe(t, coStart)
	return &maintWorld{
		fake:  fake,
		clock: newStepClock(fake),
		store: memstore.New(),
		watch: &leaseWatch{t: t, eventPrunes: map[string]int{}, hookPrunes: map[string]int{}},
	}
}

// replica returns a Billing (with hooks) of the app, on the world's
// store, Stripe and clock.
func (w *maintWorld) replica(t *testing.T, name string) *coEnv {
	e := newCoEnvWith(t, &replicaStore{Store: w.store, name: name, w: w.watch}, users, func(c *billing.Config) {
		c.StripeURL = w.fake.URL()
		c.Clock = w.clock
		c.Hooks = billing.Hooks{Handler: billing.ChangeHandlerFunc(func(context.Context, billing.Change) error { return nil })}
	})
	e.fake = w.fake
	return e
}

// maintaining is a running Maintain.
type maintaining struct {
	stop context.CancelFunc
	done chan error
}

func startMaintain(b *billing.Billing, opts billing.MaintenanceOptions) *maintaining {
	ctx, stop := context.WithCancel(context.Background())
	m := &maintaining{stop: stop, done: make(chan error, 1)}
	go func() { m.done <- b.Maintain(ctx, opts) }()
	return m
}

func (m *maintaining) halt(t *testing.T) {
	t.Helper()
	m.stop()
	select {
	case err := <-m.done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("Maintain did not return after its context ended")
	}
}

func countLines(logs, msg string) int { return strings.Count(logs, `msg="`+msg) }

// Two replicas maintain: one at a time holds the lease and does the work
// (CatchUp hourly, pruning daily), the other waits; when the holder
// stops, the other takes over within a minute.
func TestMaintainLeaseHeldByOneReplicaAtATime(t *testing.T) {
	t.Parallel()
	w := newMaintWorld(t)
	a, b := w.replica(t, "a"), w.replica(t, "b")
	events := func() int { return w.fake.Calls()["GET /v1/events"] }

	ma := startMaintain(a.b, billing.MaintenanceOptions{})
	w.clock.advance(t, 1, time.Second)
	holder, _, eventPrunes, hookPrunes := w.watch.state()
	require.Equal(t, "a", holder)
	require.Equal(t, 1, events(), "the holder catches up when it takes the lease")
	require.Equal(t, map[string]int{"a": 1}, eventPrunes, "and prunes")
	require.Equal(t, map[string]int{"a": 1}, hookPrunes)
	w.watch.mu.Lock()
	cutoff := w.watch.hookCutoff
	w.watch.mu.Unlock()
	assert.WithinDuration(t, w.clock.Now().Add(-billing.DefaultKeepHooks), cutoff, time.Minute, "delivered changes are kept 40 days")

	mb := startMaintain(b.b, billing.MaintenanceOptions{})
	w.clock.advance(t, 2, time.Second)
	holder, _, _, _ = w.watch.state()
	require.Equal(t, "a", holder, "the second replica waits")
	require.Equal(t, 1, events())

	// A purchase whose webhooks are all lost: the next hourly catch-up
	// applies it.
	buyer := newCoEnvWith(t, w.store, users, func(c *billing.Config) { c.StripeURL = w.fake.URL(); c.Clock = w.fake })
	buyer.fake = w.fake
	cs := buyer.checkout(t, "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	buyer.complete(t, cs.ID, billingtest.CardOK)
	m, err := a.b.Membership(t.Context(), "u1")
	require.NoError(t, err)
	require.Equal(t, billing.StatusNone, m.Status, "nothing delivered")

	w.clock.advance(t, 2, 90*time.Minute) // 1.5 h in
	assert.Equal(t, 2, events(), "hourly: at 0 and 1 h")
	m, err = a.b.Membership(t.Context(), "u1")
	require.NoError(t, err)
	assert.Equal(t, billing.StatusActive, m.Status, "the catch-up applied the lost events")

	w.clock.advance(t, 2, 24*time.Hour) // 25.5 h in
	holder, takes, eventPrunes, hookPrunes := w.watch.state()
	assert.Equal(t, 26, events(), "hourly, from 0 to 25 h")
	assert.Equal(t, map[string]int{"a": 2}, eventPrunes, "daily: at 0 and 24 h")
	assert.Equal(t, map[string]int{"a": 2}, hookPrunes)
	assert.Equal(t, "a", holder)
	assert.Equal(t, []string{"a"}, takes, "the waiting replica never took it")

	ma.halt(t) // a stops: it releases the lease
	holder, _, _, _ = w.watch.state()
	require.Empty(t, holder)
	w.clock.advance(t, 1, 90*time.Second)
	holder, takes, eventPrunes, _ = w.watch.state()
	assert.Equal(t, "b", holder, "b took over within a minute")
	assert.Equal(t, []string{"a", "b"}, takes)
	assert.Equal(t, 27, events(), "and caught up at once")
	assert.Equal(t, map[string]int{"a": 2, "b": 1}, eventPrunes)

	w.clock.advance(t, 1, 2*time.Hour)
	assert.Equal(t, 29, events(), "hourly again, in b")
	mb.halt(t)
	holder, _, _, _ = w.watch.state()
	assert.Empty(t, holder, "released")
	lease, err := w.store.Lease(t.Context(), billing.MaintenanceLease)
	require.NoError(t, err, "free")
	require.NoError(t, lease.Release(t.Context()))

	la, lb := a.logs.String(), b.logs.String()
	assert.Equal(t, 26, countLines(la, "maintenance: caught up"))
	assert.Equal(t, 2, countLines(la, "maintenance: pruned"))
	assert.Equal(t, 1, countLines(la, "maintenance: this replica holds the lease"))
	assert.Equal(t, 1, countLines(la, "maintenance: lease released"))
	assert.Equal(t, 1, countLines(lb, "maintenance: another replica holds the lease"), "logged once, however often it retried")
	assert.Equal(t, 3, countLines(lb, "maintenance: caught up"))
	assert.Equal(t, 1, countLines(lb, "maintenance: this replica holds the lease"))
	assert.NotContains(t, la+lb, "level=WARN")
}

// A failed run is logged at WARN and tried again at its next time; the
// loop carries on.
func TestMaintainCarriesOnAfterFailures(t *testing.T) {
	t.Parallel()
	w := newMaintWorld(t)
	a := w.replica(t, "a")
	w.fake.SetFail("GET /v1/events", 500, 1+billing.DefaultMaxRetries)
	w.watch.failPrune = true

	ma := startMaintain(a.b, billing.MaintenanceOptions{CatchUpEvery: 30 * time.Minute, PruneEvery: 2 * time.Hour})
	w.clock.advance(t, 1, 10*time.Second) // past billing's retries of the listing, on the clock
	logs := a.logs.String()
	assert.Equal(t, 1, countLines(logs, "maintenance: catch-up failed; the next run tries again"))
	assert.Equal(t, 1, countLines(logs, "maintenance: pruning failed; the next run tries again"))
	assert.Contains(t, logs, "the database is down")

	w.clock.advance(t, 1, 150*time.Minute) // 2.5 h in
	logs = a.logs.String()
	assert.Equal(t, 5, countLines(logs, "maintenance: caught up"), "every 30 minutes after the failure")
	assert.Equal(t, 1, countLines(logs, "maintenance: pruned"), "at 2 h")
	_, _, eventPrunes, _ := w.watch.state()
	assert.Equal(t, map[string]int{"a": 1}, eventPrunes)
	assert.Contains(t, logs, "events=3", "the counts are logged")
	ma.halt(t)
}

// The lease lost under the holder (its database connection died, say):
// it notices at its next check, and takes the lease again when free.
func TestMaintainNoticesALostLease(t *testing.T) {
	t.Parallel()
	w := newMaintWorld(t)
	events := func() int { return w.fake.Calls()["GET /v1/events"] }
	ls := &losingStore{replicaStore: &replicaStore{Store: w.store, name: "a", w: w.watch}}
	a2 := newCoEnvWith(t, ls, users, func(c *billing.Config) { c.StripeURL = w.fake.URL(); c.Clock = w.clock })

	ma := startMaintain(a2.b, billing.MaintenanceOptions{})
	w.clock.advance(t, 1, time.Second)
	require.Equal(t, 1, events())
	ls.lose()
	w.clock.advance(t, 1, 90*time.Second)
	logs := a2.logs.String()
	assert.Equal(t, 1, countLines(logs, "maintenance: lost the lease; trying to take it again"))
	assert.Equal(t, 2, countLines(logs, "maintenance: this replica holds the lease"), "taken again")
	assert.Equal(t, 2, events(), "and caught up again at once")
	ma.halt(t)
}

// losingStore's leases can be lost on demand.
type losingStore struct {
	*replicaStore
	mu   sync.Mutex
	lost bool
}

func (s *losingStore) Lease(ctx context.Context, name string) (billing.Lease, error) {
	l, err := s.replicaStore.Lease(ctx, name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.lost = false
	s.mu.Unlock()
	return &losingLease{Lease: l, s: s}, nil
}

func (s *losingStore) lose() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lost = true
}

type losingLease struct {
	billing.Lease
	s *losingStore
}

func (l *losingLease) Check(ctx context.Context) error {
	l.s.mu.Lock()
	lost := l.s.lost
	l.s.mu.Unlock()
	if lost {
		_ = l.Lease.Release(ctx) // as the database would have
		return billing.ErrLeaseLost
	}
	return l.Lease.Check(ctx)
}

// A store without a lease: every replica that runs Maintain does the
// work.
func TestMaintainWithoutLeaser(t *testing.T) {
	t.Parallel()
	w := newMaintWorld(t)
	store := struct{ billing.Store }{memstore.New()} // no Leaser
	var rs []*coEnv
	for range 2 {
		e := newCoEnvWith(t, store, users, func(c *billing.Config) { c.StripeURL = w.fake.URL(); c.Clock = w.clock })
		rs = append(rs, e)
	}
	m0 := startMaintain(rs[0].b, billing.MaintenanceOptions{})
	m1 := startMaintain(rs[1].b, billing.MaintenanceOptions{})
	w.clock.advance(t, 2, 90*time.Minute)
	assert.Equal(t, 4, w.fake.Calls()["GET /v1/events"], "both, at 0 and 1 h")
	assert.Contains(t, rs[0].logs.String(), "the store has no lease")
	m0.halt(t)
	m1.halt(t)

	rep, err := rs[0].b.MaintainOnce(t.Context(), billing.MaintenanceOptions{})
	require.NoError(t, err)
	assert.Equal(t, billing.MaintenanceReport{CatchUpRan: true, PruneRan: true}, rep)
}

// MaintainOnce is one round for a cron job: refused while another
// replica holds the lease, then CatchUp and the prunes, and the lease
// released.
func TestMaintainOnce(t *testing.T) {
	t.Parallel()
	e := newCoEnv(t, func(c *billing.Config) {
		c.Hooks = billing.Hooks{Handler: billing.ChangeHandlerFunc(func(context.Context, billing.Change) error { return nil })}
	})
	ctx := t.Context()
	st := e.store.(*memstore.Store)
	now := e.fake.Now().UTC().Truncate(time.Second)
	require.NoError(t, st.Park(ctx, billing.ParkedEvent{ID: "evt_old", Type: "invoice.paid", Reason: "test", ParkedAt: now.Add(-10 * 24 * time.Hour)}))
	require.NoError(t, st.Park(ctx, billing.ParkedEvent{ID: "evt_new", Type: "invoice.paid", Reason: "test", ParkedAt: now.Add(-time.Hour)}))

	held, err := st.Lease(ctx, billing.MaintenanceLease)
	require.NoError(t, err)
	_, err = e.b.MaintainOnce(ctx, billing.MaintenanceOptions{})
	require.ErrorIs(t, err, billing.ErrLeaseHeld)
	assert.Zero(t, e.calls("GET /v1/events"), "nothing done")
	require.NoError(t, held.Release(ctx))

	rep, err := e.b.MaintainOnce(ctx, billing.MaintenanceOptions{KeepParked: 7 * 24 * time.Hour})
	require.NoError(t, err)
	assert.Equal(t, billing.MaintenanceReport{CatchUpRan: true, PruneRan: true, PrunedParked: 1}, rep)
	assert.Equal(t, 1, e.calls("GET /v1/events"))
	n, err := e.b.CountParked(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n, "the event parked an hour ago is kept")

	rep, err = e.b.MaintainOnce(ctx, billing.MaintenanceOptions{CatchUpEvery: -1})
	require.NoError(t, err)
	assert.Equal(t, billing.MaintenanceReport{PruneRan: true}, rep, "no catch-up; parked events kept by default")
	rep, err = e.b.MaintainOnce(ctx, billing.MaintenanceOptions{PruneEvery: -1})
	require.NoError(t, err)
	assert.Equal(t, billing.MaintenanceReport{CatchUpRan: true}, rep)

	l, err := st.Lease(ctx, billing.MaintenanceLease)
	require.NoError(t, err, "released")
	require.NoError(t, l.Release(ctx))

	for _, bad := range []billing.MaintenanceOptions{{CatchUpWindow: -1}, {KeepHooks: -1}, {KeepParked: -1}, {LeaseRetry: -1}} {
		_, err := e.b.MaintainOnce(ctx, bad)
		assert.ErrorIs(t, err, billing.ErrInvalidArgument)
		assert.ErrorIs(t, e.b.Maintain(ctx, bad), billing.ErrInvalidArgument)
	}
}

// The next catch-up is due CatchUpEvery after the last one began, not
// after it ended: a catch-up slowed by Stripe (a retry on the clock) does
// not push the hourly schedule later and later.
func TestMaintainSchedulesFromEachRunsStart(t *testing.T) {
	t.Parallel()
	w := newMaintWorld(t)
	a := w.replica(t, "a")
	w.fake.SetFail("GET /v1/events", 500, 1) // the first listing is retried after a pause

	ma := startMaintain(a.b, billing.MaintenanceOptions{CatchUpEvery: 30 * time.Minute, PruneEvery: -1})
	w.clock.advance(t, 1, 10*time.Second) // through the retry's pause
	require.Equal(t, 1, countLines(a.logs.String(), "maintenance: caught up"))
	require.Equal(t, 2, w.fake.Calls()["GET /v1/events"], "the failed listing and its retry")

	// 30 minutes and a quarter of a second after the first run began (the
	// offline Stripe's clock also ticks in real time: a margin), before
	// 30 minutes after it ended (the retry paused half a second).
	w.clock.advance(t, 1, 30*time.Minute-10*time.Second+250*time.Millisecond)
	assert.Equal(t, 2, countLines(a.logs.String(), "maintenance: caught up"), "due 30 minutes after the start")
	ma.halt(t)
}

// stealingStore's lease is lost on demand to another holder, which takes
// it at once, as a replica on another machine would.
type stealingStore struct {
	*replicaStore
	mu     sync.Mutex
	steal  bool
	thief  billing.Lease
	leaser billing.Leaser
}

func (s *stealingStore) Lease(ctx context.Context, name string) (billing.Lease, error) {
	l, err := s.replicaStore.Lease(ctx, name)
	if err != nil {
		return nil, err
	}
	return &stolenLease{Lease: l, s: s}, nil
}

type stolenLease struct {
	billing.Lease
	s *stealingStore
}

func (l *stolenLease) Check(ctx context.Context) error {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if !l.s.steal {
		return l.Lease.Check(ctx)
	}
	l.s.steal = false
	_ = l.Lease.Release(ctx)
	thief, err := l.s.leaser.Lease(ctx, billing.MaintenanceLease)
	if err != nil {
		return err
	}
	l.s.thief = thief
	return billing.ErrLeaseLost
}

// A replica that waited, held the lease, and lost it to another waits
// again, and says so again: once per wait, not once per life.
func TestMaintainSaysEachTimeItWaits(t *testing.T) {
	t.Parallel()
	w := newMaintWorld(t)
	other, err := w.store.Lease(context.Background(), billing.MaintenanceLease) // another replica holds it
	require.NoError(t, err)
	ss := &stealingStore{replicaStore: &replicaStore{Store: w.store, name: "a", w: w.watch}, leaser: w.store}
	a := newCoEnvWith(t, ss, users, func(c *billing.Config) { c.StripeURL = w.fake.URL(); c.Clock = w.clock })
	waiting := func() int {
		return countLines(a.logs.String(), "maintenance: another replica holds the lease; waiting to take over")
	}

	ma := startMaintain(a.b, billing.MaintenanceOptions{})
	w.clock.advance(t, 1, 3*time.Minute)
	assert.Equal(t, 1, waiting(), "said once while it waits")
	require.NoError(t, other.Release(context.Background()))
	w.clock.advance(t, 1, time.Minute)
	require.Equal(t, 1, countLines(a.logs.String(), "maintenance: this replica holds the lease"))

	ss.mu.Lock()
	ss.steal = true
	ss.mu.Unlock()
	w.clock.advance(t, 1, 3*time.Minute)
	assert.Equal(t, 1, countLines(a.logs.String(), "maintenance: lost the lease; trying to take it again"))
	assert.Equal(t, 2, waiting(), "said again: a new wait")
	ss.mu.Lock()
	require.NotNil(t, ss.thief)
	require.NoError(t, ss.thief.Release(context.Background()))
	ss.mu.Unlock()
	ma.halt(t)
}
