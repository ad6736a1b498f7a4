package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/dburl"
	"github.com/gobilling/billing/plansfile"
	"github.com/gobilling/billing/sqlstore"
)

// dbEnv is an app's world for the database commands: an offline Stripe
// set up by billing setup, a plans file, and an SQLite DATABASE_URL.
type dbEnv struct {
	fake  *billingtest.Stripe
	plans string
	file  *plansfile.File
	env   map[string]string
	db    string // the SQLite file
}

func newDBEnv(t *testing.T) *dbEnv {
	t.Helper()
	fake, path, f := setUpAccount(t, billingtest.Options{})
	db := filepath.Join(t.TempDir(), "app.db")
	return &dbEnv{fake: fake, plans: path, file: f, db: db,
		env: map[string]string{"STRIPE_SECRET_KEY": "sk_test_ops", "DATABASE_URL": db}}
}

// run runs `billing args...` in process with the env's environment,
// pointed at its Stripe and plans file where the command takes them.
func (e *dbEnv) run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	full := append([]string{}, args...)
	if e.fake != nil && takesApp(args) {
		full = append(full, "--api-base", e.fake.URL(), "-f", e.plans)
	}
	code = run(full, stdio{in: strings.NewReader(""), out: &out, err: &errb, getenv: func(k string) string { return e.env[k] }})
	if strings.Contains(out.String()+errb.String(), "sk_test_ops") {
		t.Errorf("the key reached the output")
	}
	return code, out.String(), errb.String()
}

// takesApp says whether a command line builds a Billing (has the plans
// file and Stripe flags).
func takesApp(args []string) bool {
	if len(args) == 0 {
		return false
	}
	switch args[0] {
	case "sync", "catchup", "members", "prune":
		return true
	case "parked", "hooks":
		return len(args) > 1
	}
	return false
}

func (e *dbEnv) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := e.run(t, args...)
	require.Equal(t, exitOK, code, "billing %s: %s\n%s", strings.Join(args, " "), errs, out)
	return out
}

func decodeJSON(t *testing.T, out string) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &v), "one JSON document:\n%s", out)
	return v
}

// store opens the env's database as the app does.
func (e *dbEnv) store(t *testing.T) *sqlstore.Store {
	t.Helper()
	db, d, _, err := dburl.Open(t.Context(), e.db)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	st, err := sqlstore.New(t.Context(), db, d, sqlstore.Options{})
	require.NoError(t, err)
	return st
}

// app is the app's own Billing on the env's database and Stripe.
func (e *dbEnv) app(t *testing.T, st billing.Store, mod func(*billing.Config)) *billing.Billing {
	t.Helper()
	plans, _, err := plansfile.Load(e.plans)
	require.NoError(t, err)
	cfg := billing.Config{SecretKey: "sk_test_app", WebhookSecrets: []string{"whsec_app"}, SiteURL: "https://app.example",
		Plans: plans, StripeURL: e.fake.URL(), Clock: e.fake}
	if mod != nil {
		mod(&cfg)
	}
	b, err := billing.New(cfg, st, billing.UserResolverFunc(func(_ context.Context, id string) (billing.User, error) {
		return billing.User{ID: id}, nil
	}))
	require.NoError(t, err)
	return b
}

// subscribe makes n customers with a trialing Pro subscription each,
// through the API (no webhook delivered), and links the first linked of
// them to users u<i> in st. It returns the customers.
func (e *dbEnv) subscribe(t *testing.T, st billing.Store, n, linked int) []string {
	t.Helper()
	sc := client(e.fake)
	price := e.file.Plans[1].PriceID // Pro, monthly
	require.NotEmpty(t, price)
	var customers []string
	for i := range n {
		cus, err := sc.V1Customers.Create(t.Context(), &stripe.CustomerCreateParams{Email: stripe.String(fmt.Sprintf("u%d@example.com", i))})
		require.NoError(t, err)
		_, err = sc.V1Subscriptions.Create(t.Context(), &stripe.SubscriptionCreateParams{Customer: stripe.String(cus.ID),
			TrialPeriodDays: stripe.Int64(14), Items: []*stripe.SubscriptionCreateItemParams{{Price: stripe.String(price)}}})
		require.NoError(t, err)
		customers = append(customers, cus.ID)
		if i < linked {
			require.NoError(t, st.Apply(t.Context(), "", func(ctx context.Context, tx billing.Tx) error {
				return tx.LinkCustomer(ctx, fmt.Sprintf("u%d", i), cus.ID)
			}))
		}
	}
	return customers
}

// trialing counts the users u0..u<n-1> whose membership is trialing.
func trialing(t *testing.T, b *billing.Billing, n int) int {
	t.Helper()
	k := 0
	for i := range n {
		m, err := b.Membership(t.Context(), fmt.Sprintf("u%d", i))
		require.NoError(t, err)
		if m.Status == billing.StatusTrialing {
			k++
		}
	}
	return k
}

// TestMigrateCommands: status, sql and up on an empty SQLite database,
// then on PostgreSQL and MariaDB; a command needing the schema refuses a
// database behind it.
func TestMigrateCommands(t *testing.T) {
	for _, tc := range migrateTargets(t) {
		t.Run(tc.name, func(t *testing.T) {
			e := &dbEnv{env: map[string]string{"DATABASE_URL": tc.url}}
			prefix := []string{"--table-prefix", tc.prefix}
			out := e.mustRun(t, append([]string{"migrate", "status", "--json"}, prefix...)...)
			st := decodeJSON(t, out)
			migs := st["migrations"].([]any)
			require.GreaterOrEqual(t, len(migs), 7)
			assert.Equal(t, float64(len(migs)), st["pending"], "all pending on an empty database")
			for _, m := range migs {
				assert.Equal(t, false, m.(map[string]any)["applied"])
				assert.NotContains(t, m, "applied_at")
			}

			code, _, errs := e.run(t, append([]string{"members", "-f", filepath.Join(t.TempDir(), "none.yaml")}, prefix...)...)
			assert.Equal(t, exitFailure, code)
			assert.Contains(t, errs, "run `billing migrate` first")

			out = e.mustRun(t, append([]string{"migrate", "sql"}, prefix...)...)
			assert.Contains(t, out, "-- 0001_init.sql\n")
			assert.Contains(t, out, "CREATE TABLE IF NOT EXISTS "+tc.prefix+"customers (")
			assert.Contains(t, out, "-- 0007_checkpoints.sql\n")

			out = e.mustRun(t, append([]string{"migrate"}, prefix...)...)
			assert.Contains(t, out, "applied 0001_init.sql\n")
			assert.Contains(t, out, fmt.Sprintf("%d migration(s) applied", len(migs)))
			out = e.mustRun(t, append([]string{"migrate", "up"}, prefix...)...)
			assert.Contains(t, out, "the schema is current")
			assert.Contains(t, out, "nothing to do")

			for _, m := range decodeJSON(t, e.mustRun(t, append([]string{"migrate", "status", "--json"}, prefix...)...))["migrations"].([]any) {
				assert.Equal(t, true, m.(map[string]any)["applied"])
				assert.NotEmpty(t, m.(map[string]any)["applied_at"])
			}
			out = e.mustRun(t, append([]string{"migrate", "status"}, prefix...)...)
			assert.NotContains(t, out, "pending")
			assert.Contains(t, out, "0007_checkpoints.sql")
			code, out, _ = e.run(t, append([]string{"migrate", "sql"}, prefix...)...)
			assert.Equal(t, exitOK, code)
			assert.Empty(t, out, "nothing pending to print")
		})
	}
}

type migrateTarget struct{ name, url, prefix string }

// migrateTargets are an SQLite file and, when their DSNs are set, the
// test PostgreSQL and MariaDB, each with a table prefix of its own.
func migrateTargets(t *testing.T) []migrateTarget {
	prefix := fmt.Sprintf("cli%d_", time.Now().UnixNano()%1_000_000_000)
	targets := []migrateTarget{{"sqlite", filepath.Join(t.TempDir(), "m.db"), prefix}}
	if dsn := os.Getenv("BILLING_TEST_POSTGRES_DSN"); dsn != "" {
		targets = append(targets, migrateTarget{"postgres", dsn, prefix})
	} else if os.Getenv("CI") == "true" {
		t.Fatal("BILLING_TEST_POSTGRES_DSN is not set (CI)")
	} else {
		t.Log("skipping PostgreSQL: set BILLING_TEST_POSTGRES_DSN=postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	}
	if dsn := os.Getenv("BILLING_TEST_MYSQL_DSN"); dsn != "" {
		cfg, err := mysql.ParseDSN(dsn)
		require.NoError(t, err)
		u := "mysql://" + cfg.User
		if cfg.Passwd != "" {
			u += ":" + cfg.Passwd
		}
		targets = append(targets, migrateTarget{"mysql", u + "@" + cfg.Addr + "/" + cfg.DBName, prefix})
	} else if os.Getenv("CI") == "true" {
		t.Fatal("BILLING_TEST_MYSQL_DSN is not set (CI)")
	} else {
		t.Log("skipping MariaDB: set BILLING_TEST_MYSQL_DSN=root@tcp(127.0.0.1:3306)/test")
	}
	t.Cleanup(func() { dropPrefixed(t, targets) })
	return targets
}

// dropPrefixed drops the tables the test made in the shared databases.
func dropPrefixed(t *testing.T, targets []migrateTarget) {
	for _, tc := range targets[1:] {
		db, _, _, err := dburl.Open(context.Background(), tc.url)
		if err != nil {
			t.Logf("drop %s tables: %v", tc.name, err)
			continue
		}
		for _, tb := range []string{"outbox", "refunds", "checkpoints", "grants", "parked_events", "events", "subscriptions", "customers", "schema_migrations"} {
			if _, err := db.Exec("DROP TABLE IF EXISTS " + tc.prefix + tb); err != nil {
				t.Logf("drop %s%s: %v", tc.prefix, tb, err)
			}
		}
		db.Close()
	}
}

func TestMigrateSQLWithoutADatabase(t *testing.T) {
	code, out, _ := cli(t, "migrate", "sql", "--dialect", "mysql", "--table-prefix", "shop_")
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "CREATE TABLE IF NOT EXISTS shop_customers (")
	assert.Contains(t, out, "ENGINE=InnoDB")
	assert.NotContains(t, out, "billing_")
	code, _, errs := cli(t, "migrate", "sql", "--dialect", "oracle")
	assert.Equal(t, exitUsage, code)
	code, _, _ = cli(t, "migrate", "sql", "--dialect", "postgres", "--table-prefix", "Bad-Prefix")
	assert.Equal(t, exitUsage, code, "a bad prefix is a usage error")
	assert.Contains(t, errs, "want postgres, mysql or sqlite")
	code, _, errs = cli(t, "migrate", "status")
	assert.Equal(t, exitUsage, code, "no DATABASE_URL")
	assert.Contains(t, errs, "set DATABASE_URL")
}

// TestSyncCommand: 250 subscriptions, no webhook delivered: billing sync
// stores them in ⌈250/100⌉ list requests; a sync interrupted by Stripe
// failing says how to resume, and the next run resumes after the last
// page it finished.
func TestSyncCommand(t *testing.T) {
	e := newDBEnv(t)
	e.mustRun(t, "migrate")
	st := e.store(t)
	e.subscribe(t, st, 250, 248)
	b := e.app(t, st, nil)
	require.Zero(t, trialing(t, b, 248))

	e.fake.ResetCalls()
	code, out, errs := e.run(t, "sync", "--json")
	require.Equal(t, exitOK, code, errs)
	assert.Empty(t, errs, "no progress on a pipe")
	rep := decodeJSON(t, out)["report"].(map[string]any)
	assert.Equal(t, float64(250), rep["Seen"])
	assert.Equal(t, float64(248), rep["Stored"])
	assert.Equal(t, float64(2), rep["Unlinked"])
	assert.Equal(t, float64(3), rep["Pages"])
	assert.Equal(t, true, rep["Done"])
	assert.Equal(t, 3, e.fake.Calls()["GET /v1/subscriptions"])
	assert.Equal(t, 3, e.fake.TotalCalls(), "the three pages, nothing else")
	assert.Equal(t, 248, trialing(t, b, 248))

	// Stripe fails past the retries: exit 1, and how to resume.
	e.fake.SetFail("GET /v1/subscriptions", http.StatusInternalServerError, 100)
	code, out, errs = e.run(t, "sync")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errs, "run billing sync again: it resumes")
	assert.NotContains(t, out, "Done.")
	code, out, _ = e.run(t, "sync", "--json")
	assert.Equal(t, exitFailure, code)
	dec := json.NewDecoder(strings.NewReader(out))
	var doc map[string]any
	require.NoError(t, dec.Decode(&doc))
	assert.Contains(t, doc["error"], "resumes")
	assert.NotNil(t, doc["report"])
	assert.False(t, dec.More(), "one JSON document, even on failure")
	e.fake.SetFail("GET /v1/subscriptions", 0, 0)

	// A checkpoint after the first page, as an interrupted run leaves it.
	first := 0
	var after string
	for sub, err := range client(e.fake).V1Subscriptions.List(t.Context(), &stripe.SubscriptionListParams{Status: stripe.String("all")}) {
		require.NoError(t, err)
		if first++; first == 100 {
			after = sub.ID
			break
		}
	}
	require.NoError(t, st.SaveCheckpoint(t.Context(), billing.SyncCheckpoint, after))
	e.fake.ResetCalls()
	out = e.mustRun(t, "sync")
	assert.Contains(t, out, "Resumed after "+after)
	assert.Contains(t, out, "150 subscription(s) in 2 page(s)")
	assert.Contains(t, out, "Done.")
	assert.Equal(t, 2, e.fake.TotalCalls(), "the pages after the checkpoint only")
	cp, err := st.Checkpoint(t.Context(), billing.SyncCheckpoint)
	require.NoError(t, err)
	assert.Empty(t, cp)

	// members lists them by status.
	out = e.mustRun(t, "members", "--status", "trialing", "--json")
	page := decodeJSON(t, out)
	subs := page["subscriptions"].([]any)
	assert.Len(t, subs, 100, "a page")
	assert.Equal(t, subs[99].(map[string]any)["subscription"], page["next_cursor"])
	one := subs[0].(map[string]any)
	assert.Equal(t, float64(0), one["failed_attempts"])
	assert.NotEmpty(t, one["current_period_end"])
	code, _, _ = e.run(t, "members", "--limit", "0")
	assert.Equal(t, exitUsage, code)

	// --restart ignores a checkpoint.
	require.NoError(t, st.SaveCheckpoint(t.Context(), billing.SyncCheckpoint, after))
	out = e.mustRun(t, "sync", "--restart")
	assert.NotContains(t, out, "Resumed")
	assert.Contains(t, out, "250 subscription(s) in 3 page(s)")

	// The plans file: required by the commands that call Stripe; one
	// that is there but broken is refused by all.
	good := e.plans
	e.plans = filepath.Join(t.TempDir(), "missing.yaml")
	code, _, errs = e.run(t, "sync")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errs, "no such file")
	e.plans = filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(e.plans, []byte("version: [\n"), 0o644))
	code, _, _ = e.run(t, "members")
	assert.Equal(t, exitFailure, code, "a broken plans file")
	e.plans = good
	out = e.mustRun(t, "members", "--status", "past_due")
	assert.Equal(t, "No subscription.\n", out)
	out = e.mustRun(t, "members", "--status", "trialing", "--limit", "1000")
	assert.Equal(t, 248+1, strings.Count(out, "\n"), "a header and a line each")
	assert.Contains(t, out, "USER")
	code, _, errs = e.run(t, "members", "--status", "late")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errs, "past_due")
	code, _, errs = e.run(t, "members", "--table-prefix", "Bad-Prefix")
	assert.Equal(t, exitUsage, code, errs)

	// On a production host STRIPE_SECRET_KEY is live: the commands that
	// do not call Stripe do not need it, nor --live.
	e.env["STRIPE_SECRET_KEY"] = "sk_live_" + strings.Repeat("z", 24)
	out = e.mustRun(t, "members", "--status", "trialing", "--limit", "1")
	assert.Contains(t, out, "More: billing members --cursor ")
	code, _, errs = e.run(t, "sync")
	assert.Equal(t, exitUsage, code, "sync calls Stripe: a live key needs --live")
	assert.Contains(t, errs, "--live")
	assert.NotContains(t, errs, e.env["STRIPE_SECRET_KEY"])
}

// TestCatchUpAndParkedCommands: deliveries missed while the app was down
// are applied by billing catchup; the event of a customer linked to no
// user is parked, listed, shown, and applied once linked; another is
// discarded.
func TestCatchUpAndParkedCommands(t *testing.T) {
	e := newDBEnv(t)
	e.mustRun(t, "migrate")
	st := e.store(t)
	customers := e.subscribe(t, st, 4, 2) // u0, u1 linked; two customers unknown
	b := e.app(t, st, nil)

	out := e.mustRun(t, "catchup", "--since", "1h", "--json")
	rep := decodeJSON(t, out)["report"].(map[string]any)
	// Each trial sends customer.subscription.created and a zero invoice's
	// invoice.paid.
	assert.Equal(t, float64(4), rep["Applied"], "the two linked customers' events")
	assert.Equal(t, float64(4), rep["Parked"])
	assert.Equal(t, 2, trialing(t, b, 2))
	out = e.mustRun(t, "catchup", "--since", "1h")
	assert.Contains(t, out, "0 applied now (missed), 4 applied before, 4 parked")

	out = e.mustRun(t, "parked", "list", "--json", "--limit", "3")
	list := decodeJSON(t, out)
	assert.Equal(t, float64(4), list["total"])
	require.Len(t, list["events"].([]any), 3, "a page")
	next := list["next_cursor"].(string)
	require.NotEmpty(t, next)
	out = e.mustRun(t, "parked", "list", "--json", "--cursor", next)
	evs := append(list["events"].([]any), decodeJSON(t, out)["events"].([]any)...)
	require.Len(t, evs, 4)
	byCustomer := map[string][]string{}
	for _, ev := range evs {
		m := ev.(map[string]any)
		byCustomer[m["customer_id"].(string)] = append(byCustomer[m["customer_id"].(string)], m["id"].(string))
	}
	require.Len(t, byCustomer[customers[2]], 2)
	parkedEv := byCustomer[customers[2]][0]

	out = e.mustRun(t, "parked", "show", parkedEv)
	assert.Contains(t, out, "Customer: "+customers[2])
	assert.Contains(t, out, `"id": "`+parkedEv+`"`, "the payload, indented")

	out = e.mustRun(t, "parked", "link", "u2", customers[2])
	assert.Contains(t, out, "Linked "+customers[2]+" to user u2; 2 parked event(s) of it replayed.")
	assert.Contains(t, out, parkedEv+": applied")
	assert.Equal(t, 3, trialing(t, b, 3))

	other := byCustomer[customers[3]]
	code, out, _ := e.run(t, "parked", "replay", other[0])
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out, "parked again")
	e.mustRun(t, "parked", "discard", other[0])
	e.mustRun(t, "parked", "discard", other[1])
	out = e.mustRun(t, "parked", "list")
	assert.Equal(t, "No parked event.\n", out)
	code, _, _ = e.run(t, "parked", "discard", other[0])
	assert.Equal(t, exitFailure, code, "not parked any more")
	code, _, _ = e.run(t, "parked", "link", "u9", "not-a-customer")
	assert.Equal(t, exitUsage, code)
	code, _, errs := e.run(t, "catchup", "--since", "soon")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errs, "want a duration")
}

// oldClock is a clock two days back, for records old enough to
// prune.
type oldClock struct{ *billingtest.Stripe }

func (c oldClock) Now() time.Time { return c.Stripe.Now().Add(-48 * time.Hour) }

// TestHooksAndPruneCommands: a change whose deliveries all failed is
// listed, replayed (pending again) and discarded; prune deletes delivered
// changes and, when asked, parked events older than what it keeps.
func TestHooksAndPruneCommands(t *testing.T) {
	e := newDBEnv(t)
	e.mustRun(t, "migrate")
	st := e.store(t)
	customers := e.subscribe(t, st, 4, 2)
	failing := billing.ChangeHandlerFunc(func(context.Context, billing.Change) error { return fmt.Errorf("mail server down") })
	b := e.app(t, st, func(c *billing.Config) {
		c.Hooks = billing.Hooks{Handler: failing, MaxAttempts: 1}
		c.Clock = oldClock{e.fake}
	})
	_, err := b.SyncAll(t.Context(), billing.SyncAllOptions{})
	require.NoError(t, err)
	_, err = b.DispatchHooks(t.Context())
	require.NoError(t, err)

	out := e.mustRun(t, "hooks", "list", "--json")
	l := decodeJSON(t, out)
	assert.Equal(t, float64(2), l["dead"], "the two activations")
	changes := l["changes"].([]any)
	require.Len(t, changes, 2)
	key := changes[0].(map[string]any)["Change"].(map[string]any)["key"].(string)
	out = e.mustRun(t, "hooks", "list")
	assert.Contains(t, out, "0 change(s) waiting for delivery, 2 dead.")
	assert.Contains(t, out, "mail server down")

	out = e.mustRun(t, "hooks", "replay", key)
	assert.Contains(t, out, key+": requeued")
	out = e.mustRun(t, "hooks", "list")
	assert.Contains(t, out, "1 change(s) waiting for delivery, 1 dead.")
	second := changes[1].(map[string]any)["Change"].(map[string]any)["key"].(string)
	e.mustRun(t, "hooks", "discard", second)
	code, _, errs := e.run(t, "hooks", "discard", second)
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errs, "no dead change has this key")

	// u2's activation delivered two days ago on the app's clock (the
	// requeued change is due at the command's time, not yet on that
	// clock), and the last customer's two events parked then.
	require.NoError(t, st.Apply(t.Context(), "", func(ctx context.Context, tx billing.Tx) error {
		return tx.LinkCustomer(ctx, "u2", customers[2])
	}))
	delivered := e.app(t, st, func(c *billing.Config) {
		c.Hooks = billing.Hooks{Handler: billing.ChangeHandlerFunc(func(context.Context, billing.Change) error { return nil })}
		c.Clock = oldClock{e.fake}
	})
	_, err = delivered.SyncAll(t.Context(), billing.SyncAllOptions{})
	require.NoError(t, err)
	n, err := delivered.DispatchHooks(t.Context())
	require.NoError(t, err)
	require.Positive(t, n, "the activation (and billing's own task of it)")
	_, err = delivered.CatchUp(t.Context(), e.fake.Now().Add(-time.Hour))
	require.NoError(t, err)
	parked, err := delivered.CountParked(t.Context())
	require.NoError(t, err)
	require.Equal(t, int64(2), parked)

	out = e.mustRun(t, "prune", "--json")
	p := decodeJSON(t, out)
	assert.Equal(t, float64(0), p["hooks"], "delivered two days ago: kept 40 days")
	assert.Equal(t, float64(0), p["parked"], "parked events are kept unless asked")
	p = decodeJSON(t, e.mustRun(t, "prune", "--keep-hooks", "1d", "--keep-parked", "1d", "--json"))
	assert.GreaterOrEqual(t, p["hooks"], float64(n), "the delivered changes (and billing's tasks) of two days ago")
	assert.Equal(t, float64(2), p["parked"])
	out = e.mustRun(t, "prune", "--keep-hooks", "1d", "--keep-parked", "1d")
	assert.Equal(t, "Pruned 0 processed event record(s), 0 delivered change(s), 0 parked event(s).\n", out, "nothing left to prune")
	out = e.mustRun(t, "hooks", "list")
	assert.Contains(t, out, "1 change(s) waiting for delivery, 0 dead.", "pending changes are never pruned")
	code, _, _ = e.run(t, "prune", "--keep-hooks", "soon")
	assert.Equal(t, exitUsage, code)
}

// The example site's plans file (examples/server/billing.yaml), as its
// README sets it up: billing setup writes a price ID for each of its
// plans, and the site reads them with PLANS_FILE.
func TestSetupTheExampleSitesPlans(t *testing.T) {
	fake := billingtest.New(billingtest.Options{})
	defer fake.Close()
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "server", "billing.yaml"))
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "billing.yaml")
	require.NoError(t, os.WriteFile(path, data, 0o644))
	code, out, errs := setupCLI(t, testEnv, "--api-base", fake.URL(), "-f", path)
	require.Equal(t, exitOK, code, "%s\n%s", errs, out)
	_, f, err := plansfile.Load(path)
	require.NoError(t, err)
	assert.Empty(t, f.Missing(), "every plan has its price")
	for _, p := range f.Plans {
		price := fake.Price(p.PriceID)
		require.NotNil(t, price, p.LookupKey)
		assert.Equal(t, p.Amount, price.UnitAmount, p.LookupKey)
	}
	code, out, _ = setupCLI(t, testEnv, "--api-base", fake.URL(), "-f", path)
	require.Equal(t, exitOK, code)
	assert.Contains(t, strings.ToLower(out), "nothing to do")
}

// The Billing the commands build records the changes the app's would:
// its grace attempts decide when a failing payment locks access
// (--grace-attempts), and its second-subscription policy whether a second
// live subscription is cancelled (--cancel-second).
func TestCommandsRecordAsTheAppIsConfigured(t *testing.T) {
	// kinds runs a story, then the command, and returns the kinds of
	// the entries the command recorded in the outbox.
	kinds := func(t *testing.T, story func(e *dbEnv, st *sqlstore.Store), args ...string) []string {
		e := newDBEnv(t)
		e.mustRun(t, "migrate")
		st := e.store(t)
		story(e, st)
		// What the story recorded is delivered: only the command's is read.
		drain := func() []string {
			var out []string
			for {
				// Claim takes the head of each user's queue.
				entries, err := st.Claim(t.Context(), time.Now().Add(time.Hour), time.Now().Add(2*time.Hour), 100)
				require.NoError(t, err)
				if len(entries) == 0 {
					return out
				}
				for _, en := range entries {
					out = append(out, en.Kind)
					require.NoError(t, st.Delivered(t.Context(), en.Key, time.Now()))
				}
			}
		}
		drain()
		e.mustRun(t, args...)
		return drain()
	}
	// A trial, known to the app, whose card is then replaced by one whose
	// charges fail, ends: its invoice's payment fails, and its first retry.
	failing := func(e *dbEnv, st *sqlstore.Store) {
		hooked := e.app(t, st, func(c *billing.Config) { c.Hooks.Handler = cliChanges })
		cs, err := hooked.Checkout(t.Context(), "u0", billing.CheckoutOptions{PriceID: e.file.Plans[1].PriceID, TrialDays: 14})
		require.NoError(t, err)
		_, err = e.fake.Pay(cs.ID, billingtest.CardOK)
		require.NoError(t, err)
		_, err = e.fake.UpdateCard(e.fake.CheckoutSession(cs.ID).Customer.ID, billingtest.CardChargeFails)
		require.NoError(t, err)
		_, err = hooked.SyncAll(t.Context(), billing.SyncAllOptions{})
		require.NoError(t, err)
		e.fake.Advance(15*24*time.Hour + 2*time.Hour) // attempts 1 and 2
	}
	dflt := kinds(t, failing, "catchup", "--since", "20d")
	assert.Contains(t, dflt, string(billing.ChangePaymentFailed))
	assert.NotContains(t, dflt, string(billing.ChangeAccessLocked), "within the default grace attempts")
	strict := kinds(t, failing, "catchup", "--since", "20d", "--grace-attempts", "1")
	assert.Contains(t, strict, string(billing.ChangeAccessLocked), "past one grace attempt")

	// One user, two live subscriptions, made through the API.
	second := func(e *dbEnv, st *sqlstore.Store) {
		cus := e.subscribe(t, st, 1, 1)[0]
		_, err := client(e.fake).V1Subscriptions.Create(t.Context(), &stripe.SubscriptionCreateParams{Customer: stripe.String(cus),
			TrialPeriodDays: stripe.Int64(7), Items: []*stripe.SubscriptionCreateItemParams{{Price: stripe.String(e.file.Plans[0].PriceID)}}})
		require.NoError(t, err)
	}
	reported := kinds(t, second, "sync")
	assert.Contains(t, reported, string(billing.ChangeSecondSubscription))
	assert.NotContains(t, reported, "billing.cancel_second", "the default policy reports")
	cancelled := kinds(t, second, "sync", "--cancel-second")
	assert.Contains(t, cancelled, "billing.cancel_second")
}

// members shows a subscription's period end as its earliest item's (the
// subscription's period, as billing reads it), whether it cancels then,
// and the failed attempts of an unpaid latest invoice.
func TestMembersShowsPeriodCancellationAndFailures(t *testing.T) {
	e := newDBEnv(t)
	e.mustRun(t, "migrate")
	st := e.store(t)
	t1 := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	t2 := t1.AddDate(0, 1, 0)
	require.NoError(t, st.Apply(t.Context(), "", func(ctx context.Context, tx billing.Tx) error {
		if err := tx.LinkCustomer(ctx, "u1", "cus_members"); err != nil {
			return err
		}
		if _, _, err := tx.Subscription(ctx, "sub_members"); err != nil {
			return err
		}
		return tx.SaveSubscription(ctx, billing.Subscription{ID: "sub_members", CustomerID: "cus_members", UserID: "u1",
			Status: billing.SubscriptionPastDue, CancelAtPeriodEnd: true, Version: t1.AddDate(0, 0, -20),
			Items:   []billing.Item{{PriceID: "price_b", Quantity: 1, CurrentPeriodEnd: t2}, {PriceID: "price_a", Quantity: 1, CurrentPeriodEnd: t1}},
			Invoice: billing.Invoice{ID: "in_members", Created: t1.AddDate(0, 0, -20), AttemptCount: 2}})
	}))
	out := e.mustRun(t, "members", "--status", "past_due", "--json")
	subs := decodeJSON(t, out)["subscriptions"].([]any)
	require.Len(t, subs, 1)
	m := subs[0].(map[string]any)
	assert.Equal(t, t1.Format(time.RFC3339), m["current_period_end"], "the earliest item's")
	assert.Equal(t, true, m["cancel_at_period_end"])
	assert.Equal(t, float64(2), m["failed_attempts"])
	assert.Equal(t, []any{"price_b", "price_a"}, m["prices"])
	out = e.mustRun(t, "members", "--status", "past_due")
	assert.Contains(t, out, t1.Format(time.RFC3339)+" (cancels)")
}
