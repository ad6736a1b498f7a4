package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gobilling/billing/internal/testenv"
	"github.com/gobilling/billing/plansfile"
	"github.com/gobilling/billing/sqlstore"
)

// envOf is a getenv over a map.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadEnv(t *testing.T) {
	e, err := loadEnv(envOf(nil))
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:8080", e.Addr)
	assert.True(t, e.Offline())

	e, err = loadEnv(envOf(map[string]string{"ADDR": "localhost:9000", "SITE_URL": "https://club.example/", "DATABASE_URL": "x.db"}))
	require.NoError(t, err)
	assert.Equal(t, "localhost:9000", e.Addr)
	assert.Equal(t, "https://club.example", e.SiteURL)
	assert.Equal(t, "x.db", e.DatabaseURL)

	_, err = loadEnv(envOf(map[string]string{"SITE_URL": "club.example"}))
	assert.ErrorContains(t, err, `SITE_URL "club.example" is not an absolute http(s) URL`)

	// With a Stripe key, the webhook secret and a price are needed; the
	// message names them, and never the key.
	_, err = loadEnv(envOf(map[string]string{"STRIPE_SECRET_KEY": "sk_test_secret123"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "STRIPE_WEBHOOK_SECRET")
	assert.Contains(t, err.Error(), "PRICE_PRO_MONTHLY")
	assert.Contains(t, err.Error(), "unset STRIPE_SECRET_KEY to run offline")
	assert.NotContains(t, err.Error(), "secret123")

	_, err = loadEnv(envOf(map[string]string{"STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_WEBHOOK_SECRET": "whsec_x"}))
	assert.ErrorContains(t, err, "at least one price ID")
	assert.NotContains(t, err.Error(), "STRIPE_WEBHOOK_SECRET (")

	e, err = loadEnv(envOf(map[string]string{"STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_WEBHOOK_SECRET": "whsec_x",
		"PRICE_PRO_MONTHLY": "price_pm", "PRICE_CREDITS": "price_c", "STRIPE_API_BASE": "http://127.0.0.1:12111",
		"ADDR": ":9000"})) // with Stripe, any address
	require.NoError(t, err)
	assert.False(t, e.Offline())
	assert.Equal(t, ":9000", e.Addr)
	assert.Equal(t, prices{ProMonthly: "price_pm", Credits: "price_c"}, e.Stripe.Prices)
	assert.Equal(t, "http://127.0.0.1:12111", e.Stripe.APIBase)
	// Only the configured plans are sold; until Stripe says what they
	// cost, without amounts.
	plans := catalog(e.Stripe.Prices)
	require.Len(t, plans, 2)
	assert.Equal(t, "Monthly", plans[0].Label())
	assert.Equal(t, "Buy", plans[1].Label())
}

// TestLoadEnvOperations: ADMIN_EMAILS, METRICS_ADDR and SELF_CHECK.
func TestLoadEnvOperations(t *testing.T) {
	e, err := loadEnv(envOf(map[string]string{"ADMIN_EMAILS": " Root@Example.com, ,bob@example.com ", "METRICS_ADDR": "127.0.0.1:9464"}))
	require.NoError(t, err)
	assert.Equal(t, []string{"root@example.com", "bob@example.com"}, e.AdminEmails)
	assert.Equal(t, "127.0.0.1:9464", e.MetricsAddr)
	e, err = loadEnv(envOf(nil))
	require.NoError(t, err)
	assert.Empty(t, e.AdminEmails, "no admin by default")
	assert.Empty(t, e.MetricsAddr, "no metrics listener by default")

	_, err = loadEnv(envOf(map[string]string{"ADMIN_EMAILS": "root@example.com;bob@example.com"}))
	assert.ErrorContains(t, err, `ADMIN_EMAILS: "root@example.com;bob@example.com" is not an email address`)

	stripeEnv := map[string]string{"STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_WEBHOOK_SECRET": "whsec_x", "PRICE_PRO_MONTHLY": "price_pm",
		"METRICS_ADDR": "0.0.0.0:9464"} // with Stripe, any address
	for _, v := range []string{"", "refuse", "warn", " WARN "} {
		stripeEnv["SELF_CHECK"] = v
		_, err := loadEnv(envOf(stripeEnv))
		require.NoError(t, err, v)
	}
	stripeEnv["SELF_CHECK"] = "off"
	_, err = loadEnv(envOf(stripeEnv))
	assert.ErrorContains(t, err, `SELF_CHECK "off" is not refuse or warn`)
}

// TestLoadEnvRefusesStripeVarsWithoutKey: Stripe's variables without
// STRIPE_SECRET_KEY would run the site offline, silently; the start is
// refused, naming them (never their values).
func TestLoadEnvRefusesStripeVarsWithoutKey(t *testing.T) {
	_, err := loadEnv(envOf(map[string]string{"STRIPE_WEBHOOK_SECRET": "whsec_secret123"}))
	require.Error(t, err)
	assert.Equal(t, "STRIPE_WEBHOOK_SECRET is set, but STRIPE_SECRET_KEY is not: set STRIPE_SECRET_KEY (sk_test_...) to use Stripe, or unset it to run offline", err.Error())

	_, err = loadEnv(envOf(map[string]string{"PRICE_PRO_MONTHLY": "price_secret123", "PRICE_CREDITS": "price_c", "STRIPE_API_BASE": "http://127.0.0.1:12111"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "STRIPE_API_BASE, PRICE_PRO_MONTHLY, PRICE_CREDITS are set, but STRIPE_SECRET_KEY is not")
	assert.Contains(t, err.Error(), "unset them to run offline")
	assert.NotContains(t, err.Error(), "secret123")

	for _, name := range stripeVars {
		_, err := loadEnv(envOf(map[string]string{name: "x"}))
		assert.ErrorContains(t, err, name+" is set, but STRIPE_SECRET_KEY is not", name)
	}
	e, err := loadEnv(envOf(map[string]string{"STRIPE_SECRET_KEY": "", "LOG_LEVEL": "debug"}))
	require.NoError(t, err, "nothing of Stripe's: offline")
	assert.True(t, e.Offline())
}

// TestLoadEnvOfflineLoopbackOnly: offline, the site (its dev panel, its
// payments without a card) listens on this machine only.
func TestLoadEnvOfflineLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:8080", "127.0.0.1:0", "127.1.2.3:80", "[::1]:8080", "localhost:8080"} {
		e, err := loadEnv(envOf(map[string]string{"ADDR": addr}))
		require.NoError(t, err, addr)
		assert.Equal(t, addr, e.Addr)
	}
	for _, addr := range []string{":8080", "0.0.0.0:8080", "[::]:8080", "192.168.1.10:8080", "club.example:80", "localhost.evil.example:80", "127.0.0.1"} {
		_, err := loadEnv(envOf(map[string]string{"ADDR": addr}))
		require.Error(t, err, addr)
		assert.Contains(t, err.Error(), "ADDR", addr)
		if !strings.Contains(err.Error(), "host:port") {
			assert.Contains(t, err.Error(), "is not a loopback address", addr)
			assert.Contains(t, err.Error(), "or set STRIPE_SECRET_KEY", addr)
		}
	}
	// With Stripe, the site listens where it is told.
	_, err := loadEnv(envOf(map[string]string{"ADDR": "0.0.0.0:8080", "STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_WEBHOOK_SECRET": "whsec_x", "PRICE_PRO_MONTHLY": "price_pm"}))
	require.NoError(t, err)
}

func TestParseLogLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{
		"":        slog.LevelInfo,
		"info":    slog.LevelInfo,
		"debug":   slog.LevelDebug,
		"DEBUG":   slog.LevelDebug,
		" warn ":  slog.LevelWarn,
		"warning": slog.LevelWarn,
		"Error":   slog.LevelError,
	} {
		got, err := parseLogLevel(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"verbose", "trace", "4", "info+2", "debug,warn"} {
		_, err := parseLogLevel(in)
		require.Error(t, err, in)
		assert.Equal(t, fmt.Sprintf("LOG_LEVEL %q is not debug, info, warn or error", in), err.Error())
	}
}

func TestLocalURL(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:8080": "http://127.0.0.1:8080",
		"0.0.0.0:8080":   "http://localhost:8080",
		"[::]:8080":      "http://localhost:8080",
		"[::1]:8080":     "http://[::1]:8080",
	} {
		tcp, err := net.ResolveTCPAddr("tcp", addr)
		require.NoError(t, err)
		assert.Equal(t, want, localURL(tcp), addr)
	}
}

func TestOpenDatabase(t *testing.T) {
	t.Chdir(t.TempDir())
	ctx := context.Background()

	// Offline, the default file starts afresh at each start.
	require.NoError(t, os.MkdirAll("data", 0o755))
	require.NoError(t, os.WriteFile(offlineDatabase, []byte("left over from an earlier run"), 0o644))
	db, dialect, where, err := openDatabase(ctx, "", true)
	require.NoError(t, err)
	assert.Equal(t, sqlstore.SQLite, dialect)
	assert.Equal(t, "data/offline.db", where)
	_, err = db.Exec("CREATE TABLE t (x INTEGER)")
	require.NoError(t, err, "a fresh database")
	require.NoError(t, db.Close())

	// With Stripe, ./data/billing.db, kept across starts.
	for range 2 {
		db, _, where, err = openDatabase(ctx, "", false)
		require.NoError(t, err)
		assert.Equal(t, "data/billing.db", where)
		_, err = db.Exec("CREATE TABLE IF NOT EXISTS kept (x INTEGER)")
		require.NoError(t, err)
		_, err = db.Exec("INSERT INTO kept VALUES (1)")
		require.NoError(t, err)
		require.NoError(t, db.Close())
	}
	db, _, _, err = openDatabase(ctx, "", false)
	require.NoError(t, err)
	var n int
	require.NoError(t, db.QueryRow("SELECT COUNT(*) FROM kept").Scan(&n))
	assert.Equal(t, 2, n)
	require.NoError(t, db.Close())

	// Any other value is an SQLite path, its directories created.
	db, dialect, where, err = openDatabase(ctx, filepath.Join("var", "lib", "club.db"), true)
	require.NoError(t, err)
	assert.Equal(t, sqlstore.SQLite, dialect)
	assert.Equal(t, filepath.Join("var", "lib", "club.db"), where)
	require.NoError(t, db.Close())
	assert.FileExists(t, filepath.Join("var", "lib", "club.db"))
}

func TestServeShutsDownGracefully(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		_, _ = w.Write([]byte("finished"))
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, newServer(h, defaultWriteTimeout, testLogger(t)), testLogger(t)) }()

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		res, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer res.Body.Close()
		var b bytes.Buffer
		_, err = b.ReadFrom(res.Body)
		got <- result{b.String(), err}
	}()
	<-started
	cancel() // as on SIGTERM, while a request is in flight

	r := <-got
	require.NoError(t, r.err)
	assert.Equal(t, "finished", r.body, "the request in flight completes")
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after its context ended")
	}
	_, err = http.Get("http://" + ln.Addr().String() + "/")
	assert.Error(t, err, "no longer listening")
}

// startRun runs the command's run function with the environment and
// returns the URL it logs, its log, and a stop function that returns
// run's error.
func startRun(t *testing.T, env map[string]string) (string, *testenv.LogBuffer, func() error) {
	t.Helper()
	var logs testenv.LogBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, envOf(env), log) }()
	stop := func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			return errors.New("run did not return")
		}
	}
	openLine := regexp.MustCompile(`msg="open (http://[^"]+)"`)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := openLine.FindStringSubmatch(logs.String()); m != nil {
			return m[1], &logs, stop
		}
		select {
		case err := <-done:
			t.Fatalf("run returned %v before serving; log:\n%s", err, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	_ = stop()
	t.Fatalf("no URL logged; log:\n%s", logs.String())
	return "", nil, nil
}

func TestRunOffline(t *testing.T) {
	t.Chdir(t.TempDir())
	url, logs, stop := startRun(t, map[string]string{"ADDR": "127.0.0.1:0"})
	res, err := http.Get(url + "/healthz")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
	require.NoError(t, stop())

	log := logs.String()
	assert.Contains(t, log, "offline mode")
	assert.Regexp(t, `offline_stripe=http://127\.0\.0\.1:\d+`, log)
	assert.Contains(t, log, "sqlite=data/offline.db")
	assert.Contains(t, log, "shutting down")
	assert.NotContains(t, log, offlineSecretKey)
	assert.FileExists(t, offlineDatabase)
}

func TestRunRefusesBadConfig(t *testing.T) {
	t.Chdir(t.TempDir())
	for name, env := range map[string]map[string]string{
		"incomplete Stripe":  {"STRIPE_SECRET_KEY": "sk_test_secret123"},
		"Stripe without key": {"ADDR": "127.0.0.1:0", "STRIPE_WEBHOOK_SECRET": "whsec_secret123", "PRICE_PRO_MONTHLY": "price_x"},
		"offline, public":    {"ADDR": "0.0.0.0:0"},
		"publishable key":    {"STRIPE_SECRET_KEY": "pk_test_secret123", "STRIPE_WEBHOOK_SECRET": "whsec_x", "PRICE_PRO_MONTHLY": "price_x", "ADDR": "127.0.0.1:0"},
		"bad address":        {"ADDR": "256.0.0.1:1"},
		"no database server": {"ADDR": "127.0.0.1:0", "DATABASE_URL": "mysql://root:secret123@127.0.0.1:1/db?timeout=1s"},
	} {
		err := run(context.Background(), envOf(env), testLogger(t))
		require.Error(t, err, name)
		assert.NotContains(t, err.Error(), "secret123", name)
	}
}

// TestOnlineModeWithStripeMock runs the site against stripe-mock (Stripe's
// official mock, which .ci/run starts), as with a real Stripe account:
// the pricing buttons create real-shaped Checkout Sessions.
func TestOnlineModeWithStripeMock(t *testing.T) {
	mock := testenv.Service(t, "BILLING_TEST_STRIPE_MOCK",
		"set it to the URL of a running stripe-mock (go install github.com/stripe/stripe-mock@v0.195.0; stripe-mock -http-port 12111), or run .ci/run")
	t.Chdir(t.TempDir())
	url, logs, stop := startRun(t, map[string]string{
		"ADDR":                  "127.0.0.1:0",
		"STRIPE_SECRET_KEY":     "sk_test_123",
		"STRIPE_WEBHOOK_SECRET": "whsec_online",
		"STRIPE_API_BASE":       mock,
		"PRICE_PRO_MONTHLY":     "price_1",
	})
	defer func() { require.NoError(t, stop()) }()
	assert.Contains(t, logs.String(), "stripe_api="+mock)
	assert.Contains(t, logs.String(), "sqlite=data/billing.db")
	// The self-check at start: stripe-mock's price and key pass; SITE_URL
	// is local, so no webhook endpoint is looked for (stripe-mock keeps
	// none).
	assert.Contains(t, logs.String(), `msg="billing self-check passed" plans=1 webhook_endpoints=0 warnings=0`)
	assert.Contains(t, logs.String(), "the webhook endpoint is not checked: SITE_URL is unset or local")

	c := newClient(t, url)
	c.signUp("ada@example.com")
	page := c.get("/pricing")
	// stripe-mock's price: $20 a month, of a product named T-shirt.
	assert.Contains(t, logs.String(), `msg=plan plan=pro-monthly price=price_1 product=T-shirt amount="$20 / month"`)
	assert.Equal(t, "$20 / month", text(page.Body, "buy-pro-monthly"))
	assert.Equal(t, "T-shirt", text(page.Body, "product-pro"))
	assert.NotContains(t, page.Body, `id="devbar"`)
	assert.Equal(t, http.StatusNotFound, c.get("/dev").Status)
	res := c.postForm("/checkout", map[string][]string{"plan": {"pro-monthly"}})
	require.Equal(t, http.StatusSeeOther, res.Status, res.Body)
	assert.True(t, strings.HasPrefix(res.Location, "https://"), "stripe-mock's Checkout URL: %s", res.Location)
}

// PLANS_FILE: the price IDs billing setup wrote into the plans file fill
// the PRICE_ variables not set, by lookup key.
func TestPlansFile(t *testing.T) {
	_, f, err := plansfile.Load("billing.yaml")
	require.NoError(t, err, "the site's own plans file")
	require.Len(t, f.Plans, len(planKeys))
	for i := range f.Plans {
		assert.Equal(t, planKeys[i], f.Plans[i].LookupKey)
		f.Plans[i].PriceID = "price_file_" + f.Plans[i].LookupKey
	}
	data, err := f.Marshal()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "billing.yaml")
	require.NoError(t, os.WriteFile(path, data, 0o644))

	vars := map[string]string{"STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_WEBHOOK_SECRET": "whsec_x", "PLANS_FILE": path,
		"PRICE_PRO_MONTHLY": "price_from_env"}
	e, err := loadEnv(envOf(vars))
	require.NoError(t, err)
	assert.Equal(t, prices{BasicMonthly: "price_file_basic_monthly", BasicYearly: "price_file_basic_yearly",
		ProMonthly: "price_from_env", ProYearly: "price_file_pro_yearly", Credits: "price_file_credits_100"}, e.Stripe.Prices,
		"the file fills what the variables leave unset")

	f.Plans[0].LookupKey = "enterprise_monthly"
	data, err = f.Marshal()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o644))
	_, err = loadEnv(envOf(vars))
	require.ErrorContains(t, err, `plan "enterprise_monthly"`)

	vars["PLANS_FILE"] = filepath.Join(t.TempDir(), "missing.yaml")
	_, err = loadEnv(envOf(vars))
	require.ErrorContains(t, err, "PLANS_FILE")

	_, err = loadEnv(envOf(map[string]string{"PLANS_FILE": path}))
	require.ErrorContains(t, err, "PLANS_FILE is set, but STRIPE_SECRET_KEY is not")
}
