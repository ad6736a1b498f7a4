package sqlstore_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testcatalog"
	"github.com/gobilling/billing/sqlstore"
	"github.com/gobilling/billing/storetest"
)

// This file runs the hook dispatcher as app replicas do: four processes
// of this test binary on PostgreSQL and MariaDB (one of them killed with
// SIGKILL midway, and a "replica" that claimed changes and died before
// any started), four goroutine instances on one SQLite file. Every
// change recorded is delivered, each user's in order.

// replicaEnv names the environment of a replica process.
const (
	replicaEnv       = "BILLING_TEST_HOOK_REPLICA" // set: this process is a replica
	replicaDialect   = "BILLING_TEST_HOOK_DIALECT"
	replicaDriver    = "BILLING_TEST_HOOK_DRIVER"
	replicaDSN       = "BILLING_TEST_HOOK_DSN"
	replicaPrefix    = "BILLING_TEST_HOOK_PREFIX"
	replicaStripeURL = "BILLING_TEST_HOOK_STRIPE"
)

func TestMain(m *testing.M) {
	switch os.Getenv(replicaEnv) {
	case "":
		os.Exit(m.Run())
	case "serve":
		os.Exit(serveReplica())
	}
	os.Exit(runReplica())
}

// replicaHooks are the dispatcher's settings in these tests: claims short
// enough that one held by a dead replica expires within the test.
var replicaHooks = billing.Hooks{Claim: 2 * time.Second, Poll: 20 * time.Millisecond, Backoff: 100 * time.Millisecond}

// logTable is where the replicas' handler writes each delivery.
func logTable(prefix string) string { return prefix + "hooklog" }

// logDelivery is the replicas' handler: one row per delivery.
func logDelivery(db *sql.DB, d sqlstore.Dialect, prefix, replica string) billing.ChangeHandler {
	q := "INSERT INTO " + logTable(prefix) + " (change_key, user_id, kind, replica) VALUES (?, ?, ?, ?)"
	if d == sqlstore.Postgres {
		q = "INSERT INTO " + logTable(prefix) + " (change_key, user_id, kind, replica) VALUES ($1, $2, $3, $4)"
	}
	return billing.ChangeHandlerFunc(func(ctx context.Context, c billing.Change) error {
		_, err := db.ExecContext(ctx, q, c.Key, c.UserID, string(c.Kind), replica)
		return err
	})
}

// replicaBilling is one replica's Billing: its own pool, the system
// clock, the offline Stripe's URL for billing's own writes.
func replicaBilling(db *sql.DB, d sqlstore.Dialect, prefix, stripeURL, name string) (*billing.Billing, error) {
	st, err := sqlstore.New(context.Background(), db, d, sqlstore.Options{TablePrefix: prefix})
	if err != nil {
		return nil, err
	}
	hooks := replicaHooks
	hooks.Handler = logDelivery(db, d, prefix, name)
	return billing.New(replicaConfig("sk_test_sqlstore", webhookSecret, stripeURL, replicaPlans, hooks, nil), st, replicaUsers)
}

// replicaPlans are the plans of the dispatcher replicas' app.
var replicaPlans = []billing.Plan{{PriceID: "price_basic", Tier: "basic"}, {PriceID: "price_pro", Tier: "pro"}}

// replicaUsers resolves any user ID to a user with an email.
var replicaUsers = billing.UserResolverFunc(func(ctx context.Context, id string) (billing.User, error) {
	return billing.User{ID: id, Email: id + "@example.com", Name: "User " + id}, nil
})

// replicaConfig is the Config of a replica's Billing (and of the test's
// own, beside them): no logs, no retries, the clock given (nil: the
// system's).
func replicaConfig(key, secret, stripeURL string, plans []billing.Plan, hooks billing.Hooks, clock billing.Clock) billing.Config {
	return billing.Config{
		SecretKey: key, WebhookSecrets: []string{secret}, SiteURL: "https://app.example", Plans: plans,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), StripeURL: stripeURL, MaxRetries: -1, Hooks: hooks, Clock: clock,
	}
}

// runReplica is a replica process: it runs the dispatcher until
// signaled.
func runReplica() int {
	d := sqlstore.Dialect(os.Getenv(replicaDialect))
	db, err := sql.Open(os.Getenv(replicaDriver), os.Getenv(replicaDSN))
	if err != nil {
		fmt.Fprintln(os.Stderr, "replica:", err)
		return 2
	}
	defer db.Close()
	b, err := replicaBilling(db, d, os.Getenv(replicaPrefix), os.Getenv(replicaStripeURL), strconv.Itoa(os.Getpid()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "replica:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	_ = b.RunHooks(ctx)
	return 0
}

// wantChanges is what each user's story records, in order.
var wantChanges = []billing.ChangeKind{billing.ChangeActivated, billing.ChangeRenewed, billing.ChangeCancellationScheduled, billing.ChangeEnded}

func TestHookReplicas(t *testing.T) {
	const users = 6
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		tdb := database(t, d)
		db := tdb.open(t, 8)
		prefix := newPrefix(t)
		st := newStore(t, tdb, db, sqlstore.Options{TablePrefix: prefix})
		_, err := db.Exec("CREATE TABLE " + logTable(prefix) + " (id " + autoIncrement(d) +
			", change_key VARCHAR(512) NOT NULL, user_id VARCHAR(320) NOT NULL, kind VARCHAR(64) NOT NULL, replica VARCHAR(64) NOT NULL)")
		require.NoError(t, err)
		if d != sqlstore.SQLite {
			t.Cleanup(func() { _, _ = db.Exec("DROP TABLE IF EXISTS " + logTable(prefix)) })
		}

		// The webhook side: every user's story applied and committed
		// before any replica runs (a server killed after its commits
		// loses nothing: the changes are in the store).
		fake := newFake(t)
		recorder := replicaHooks
		recorder.Handler = billing.ChangeHandlerFunc(func(context.Context, billing.Change) error { return nil })
		b, err := billing.New(replicaConfig("sk_test_sqlstore", webhookSecret, fake.URL(), replicaPlans, recorder, fake), st, replicaUsers)
		require.NoError(t, err)
		h := b.WebhookHandler()
		var subs []string
		for u := range users {
			user := fmt.Sprintf("user_replica_%d", u)
			evs := subscribe(t, fake, b, user, "price_pro")
			for _, e := range evs {
				code, _ := deliver(h, e)
				require.Equal(t, 200, code)
			}
			subs = append(subs, fake.SubscriptionsOf(customerOf(t, st, user))[0])
		}
		require.NoError(t, deliverAll(h, fake.Advance(32*24*time.Hour))) // every subscription renews, once
		for _, step := range []func(sub string) error{
			func(sub string) error { return deliverAll(h, must2(fake.CancelAtPeriodEnd(sub))) },
			func(sub string) error { return deliverAll(h, must2(fake.CancelNow(sub))) },
		} {
			for _, sub := range subs {
				require.NoError(t, step(sub))
			}
		}
		stats, err := b.HookStats(t.Context())
		require.NoError(t, err)

		require.Equal(t, int64(users*(len(wantChanges)+1)), stats.Pending, "each user's changes and billing's own write")

		// A replica that claimed changes and died before settling any.
		now := time.Now()
		held, err := st.Claim(t.Context(), now, now.Add(replicaHooks.Claim), 3)
		require.NoError(t, err)
		require.Len(t, held, 3)

		if d == sqlstore.SQLite {
			// SQLite: four instances in one process, on one file.
			ctx, cancel := context.WithCancel(t.Context())
			var wg sync.WaitGroup
			for r := range 4 {
				rb, err := replicaBilling(tdb.open(t, 4), d, prefix, fake.URL(), "goroutine"+strconv.Itoa(r))
				require.NoError(t, err)
				wg.Go(func() { _ = rb.RunHooks(ctx) })
			}
			waitDelivered(t, b)
			cancel()
			wg.Wait()
		} else {
			var procs []*exec.Cmd
			for range 4 {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), replicaEnv+"=1", replicaDialect+"="+string(d), replicaDriver+"="+tdb.driver,
					replicaDSN+"="+tdb.dsn, replicaPrefix+"="+prefix, replicaStripeURL+"="+fake.URL())
				cmd.Stderr = os.Stderr
				require.NoError(t, cmd.Start())
				procs = append(procs, cmd)
			}
			t.Cleanup(func() {
				for _, p := range procs {
					_ = p.Process.Kill()
					_ = p.Wait()
				}
			})
			// kill -9 one replica as soon as deliveries have begun.
			require.Eventually(t, func() bool { return logged(t, db, prefix) > 0 }, 30*time.Second, 5*time.Millisecond)
			require.NoError(t, procs[0].Process.Signal(syscall.SIGKILL))
			waitDelivered(t, b)
			for _, p := range procs[1:] {
				require.NoError(t, p.Process.Signal(syscall.SIGTERM))
			}
		}

		// Every change delivered; each user's in the order recorded
		// (a redelivery, after a replica died mid-delivery, comes
		// before the user's next change).
		rows, err := db.Query("SELECT change_key, user_id, kind FROM " + logTable(prefix) + " ORDER BY id")
		require.NoError(t, err)
		defer rows.Close()
		seen := map[string]int{}
		order := map[string][]billing.ChangeKind{}
		for rows.Next() {
			var key, user, kind string
			require.NoError(t, rows.Scan(&key, &user, &kind))
			seen[key]++
			if seen[key] == 1 {
				order[user] = append(order[user], billing.ChangeKind(kind))
			}
		}
		require.NoError(t, rows.Err())
		again := 0
		for _, n := range seen {
			again += n - 1
		}
		t.Logf("%s: %d changes delivered, %d redelivered", d, len(seen), again)
		require.Len(t, order, users)
		for u := range users {
			user := fmt.Sprintf("user_replica_%d", u)
			assert.Equal(t, wantChanges, order[user], "%s's changes, in order", user)
		}
		for _, e := range held {
			if !strings.HasPrefix(e.Kind, "billing.") { // billing's own writes are not the app's (pending 0 says they ran)
				assert.Positive(t, seen[e.Key], "%s, held by the dead replica, was delivered", e.Key)
			}
		}
	})
}

// waitDelivered waits until nothing is pending or dead.
func waitDelivered(t *testing.T, b *billing.Billing) {
	t.Helper()
	require.Eventually(t, func() bool {
		st, err := b.HookStats(context.Background())
		require.NoError(t, err)
		require.Zero(t, st.Dead, "nothing is dead-lettered")
		return st.Pending == 0
	}, 60*time.Second, 20*time.Millisecond, "every change delivered")
}

func logged(t *testing.T, db *sql.DB, prefix string) int {
	var n int
	require.NoError(t, db.QueryRow("SELECT COUNT(*) FROM "+logTable(prefix)).Scan(&n))
	return n
}

func autoIncrement(d sqlstore.Dialect) string {
	switch d {
	case sqlstore.Postgres:
		return "BIGSERIAL PRIMARY KEY"
	case sqlstore.MySQL:
		return "BIGINT AUTO_INCREMENT PRIMARY KEY"
	}
	return "INTEGER PRIMARY KEY AUTOINCREMENT"
}

func deliverAll(h http.Handler, evs []billingtest.Event) error {
	for _, e := range evs {
		if code, _ := deliver(h, e); code != 200 {
			return fmt.Errorf("%s %s: %d", e.Type, e.ID, code)
		}
	}
	return nil
}

func must2(evs []billingtest.Event, err error) []billingtest.Event {
	if err != nil {
		panic(err)
	}
	return evs
}

func customerOf(t *testing.T, st *sqlstore.Store, user string) string {
	t.Helper()
	c, err := st.CustomerID(t.Context(), user)
	require.NoError(t, err)
	return c
}

// ---- the lifecycle suite on four handler replicas ----

// Headers by which a replica server learns which app a delivery is for:
// each lifecycle world has a store (a table prefix) and an offline
// Stripe of its own.
const (
	hdrPrefix  = "X-Test-Prefix"
	hdrStripe  = "X-Test-Stripe"
	hdrKey     = "X-Test-Key"
	hdrSecret  = "X-Test-Webhook-Secret"
	hdrRecords = "X-Test-Records"
	hdrNow     = "X-Test-Now" // the world's time (its offline Stripe's), in nanoseconds
)

// followClock is a replica process's clock: the time of the world whose
// delivery it serves (as the offline Stripe's, real time plus an offset
// each delivery sets), waiting in real time.
type followClock struct {
	billing.SystemClock
	offset atomic.Int64
}

func (c *followClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

func (c *followClock) set(worldNow int64) { c.offset.Store(worldNow - time.Now().UnixNano()) }

// worldBilling is a replica's Billing for one world's configuration, on
// the replica's own pool and the system clock.
func worldBilling(db *sql.DB, d sqlstore.Dialect, clock billing.Clock, prefix, stripeURL, key, secret string, records bool) (*billing.Billing, error) {
	st, err := sqlstore.New(context.Background(), db, d, sqlstore.Options{TablePrefix: prefix})
	if err != nil {
		return nil, err
	}
	var hooks billing.Hooks
	if records {
		hooks.Handler = billing.ChangeHandlerFunc(func(context.Context, billing.Change) error { return nil }) // delivered by the world
	}
	return billing.New(replicaConfig(key, secret, stripeURL, testcatalog.Plans(), hooks, clock), st, replicaUsers)
}

// serveReplica is a replica process serving webhook deliveries for any
// number of worlds; it prints its address, then serves until signaled.
func serveReplica() int {
	d := sqlstore.Dialect(os.Getenv(replicaDialect))
	db, err := sql.Open(os.Getenv(replicaDriver), os.Getenv(replicaDSN))
	if err != nil {
		fmt.Fprintln(os.Stderr, "replica:", err)
		return 2
	}
	db.SetMaxOpenConns(8)
	defer db.Close()
	type app struct {
		h     http.Handler
		clock *followClock
	}
	var mu sync.Mutex
	apps := map[string]app{}
	mux := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := r.Header.Get(hdrPrefix) + " " + r.Header.Get(hdrStripe)
		mu.Lock()
		a, ok := apps[k]
		if !ok {
			a.clock = &followClock{}
			b, err := worldBilling(db, d, a.clock, r.Header.Get(hdrPrefix), r.Header.Get(hdrStripe), r.Header.Get(hdrKey),
				r.Header.Get(hdrSecret), r.Header.Get(hdrRecords) == "1")
			if err != nil {
				mu.Unlock()
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			a.h = b.WebhookHandler()
			apps[k] = a
		}
		mu.Unlock()
		now, err := strconv.ParseInt(r.Header.Get(hdrNow), 10, 64)
		if err != nil {
			http.Error(w, "no world time", http.StatusBadRequest)
			return
		}
		a.clock.set(now)
		a.h.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "replica:", err)
		return 2
	}
	fmt.Println(ln.Addr().String())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	_ = srv.Serve(ln)
	return 0
}

// startReplicaServers starts n replica server processes and returns
// their base URLs.
func startReplicaServers(t *testing.T, tdb testDB, n int) []string {
	t.Helper()
	var urls []string
	for range n {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), replicaEnv+"=serve", replicaDialect+"="+string(tdb.dialect), replicaDriver+"="+tdb.driver, replicaDSN+"="+tdb.dsn)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		})
		addr, err := bufio.NewReader(out).ReadString('\n')
		require.NoError(t, err, "the replica's address")
		urls = append(urls, "http://"+strings.TrimSpace(addr))
	}
	return urls
}

// forward is a webhook handler that passes each delivery to a replica
// server, with the world's configuration in headers.
func forward(base, prefix string, cfg billing.Config) http.Handler {
	client := &http.Client{Timeout: 60 * time.Second}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), r.Method, base+"/stripe/webhook", bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		req.Header = r.Header.Clone()
		req.Header.Set(hdrPrefix, prefix)
		req.Header.Set(hdrStripe, cfg.StripeURL)
		req.Header.Set(hdrKey, cfg.SecretKey)
		req.Header.Set(hdrSecret, cfg.WebhookSecrets[0])
		req.Header.Set(hdrNow, strconv.FormatInt(cfg.Clock.Now().UnixNano(), 10))
		if cfg.Hooks.Handler != nil {
			req.Header.Set(hdrRecords, "1")
		}
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
}

// TestLifecyclesOnReplicas runs the hostile lifecycle suite, every mode,
// with its deliveries spread over four app replicas recording changes:
// four processes on PostgreSQL and MariaDB, four instances on one SQLite
// file. Each story's changes are then delivered and checked: every kind
// once per transition.
func TestLifecyclesOnReplicas(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d sqlstore.Dialect) {
		tdb := database(t, d)
		var urls []string
		if d != sqlstore.SQLite {
			urls = startReplicaServers(t, tdb, 4)
		}
		var prefixes sync.Map // *sqlstore.Store → its world's testDB and prefix
		type world struct {
			tdb    testDB
			prefix string
		}
		newWorldStore := func(t *testing.T) billing.Store {
			w := world{tdb: database(t, d), prefix: newPrefix(t)}
			st := newStore(t, w.tdb, w.tdb.open(t, 4), sqlstore.Options{TablePrefix: w.prefix})
			prefixes.Store(st, w)
			return st
		}
		replicas := func(t *testing.T, store billing.Store, cfg billing.Config) []http.Handler {
			v, ok := prefixes.Load(store)
			require.True(t, ok)
			w := v.(world)
			var hs []http.Handler
			if d == sqlstore.SQLite {
				for range 4 {
					b, err := worldBilling(w.tdb.open(t, 4), d, cfg.Clock, w.prefix, cfg.StripeURL, cfg.SecretKey, cfg.WebhookSecrets[0], cfg.Hooks.Handler != nil)
					require.NoError(t, err)
					hs = append(hs, b.WebhookHandler())
				}
				return hs
			}
			for _, u := range urls {
				hs = append(hs, forward(u, w.prefix, cfg))
			}
			return hs
		}
		storetest.RunLifecycles(t, newWorldStore, storetest.LifecycleOptions{Replicas: replicas})
	})
}
