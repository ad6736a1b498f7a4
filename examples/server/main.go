// Command server is a small membership site built on package billing:
// sign up, choose a plan on the pricing page, pay in Stripe Checkout,
// manage billing in the Customer Portal, read the members-only pages while
// the membership lasts, and buy packs of credits.
//
// It runs with nothing configured:
//
//	go run ./examples/server
//
// and prints the URL to open. Without STRIPE_SECRET_KEY it runs offline:
// the offline Stripe of package billingtest runs in the same process (its
// Checkout and portal pages, webhooks delivered to the site's own handler,
// a clock moved from the site's dev panel, and a dev mailbox at /dev/mailbox
// listing the emails the site would have sent), and the database is a fresh
// SQLite file, ./data/offline.db, since the offline Stripe keeps nothing
// across restarts. Pay with the test card 4242 4242 4242 4242. The dev
// panel is for signed-in users, and offline the site listens on a loopback
// address only (ADDR): it is a development tool, whose payments need no
// real card.
//
// With Stripe, the site reads its prices at start-up (amount, currency,
// interval, product name) for the pricing page, and refuses to start when
// a price is missing from the account or of the wrong kind. Every request
// is bounded by a deadline (20 seconds) below the server's WriteTimeout
// (30 seconds), Stripe calls and billing's retries of them included, so
// that a Stripe that does not answer gets the site's "Billing is
// unavailable" page rather than a dropped connection.
//
// The site's own users sign up with an email and a password (a bcrypt
// hash in the app_users table, next to billing's tables) and stay signed in
// with a random session token in an HttpOnly, SameSite=Lax cookie (only
// its SHA-256 is stored, in app_sessions). Every POST is checked against
// cross-site requests by net/http's CrossOriginProtection (the browser's
// Sec-Fetch-Site header, or Origin against Host), and the forms of
// signed-in pages also carry a per-session CSRF token. The Stripe webhook,
// at POST /stripe/webhook, is outside both: Stripe signs it instead.
//
// Files: main.go (configuration, database, server), app.go (wiring billing,
// routes, rendering, the safe redirect paths), auth.go (sign-up, sign-in,
// sessions), users.go (the users tables), catalog.go (the plans, and what
// Stripe says of their prices), handlers.go (pricing, Checkout and its
// return page, account, portal, members pages, health), mailbox.go
// (billing's hooks: the emails a change of a member's billing calls for,
// kept once per change in the app_emails table), dev.go (the offline dev
// panel and mailbox), ops.go (metrics, the start-up self-check,
// maintenance), admin.go (the admin page), templates/ and static/ (a
// stylesheet, and a few lines of script that disable the buttons leading
// to Stripe once clicked).
//
// billing records every change of a member's billing (a failed payment, a
// trial ending, a refund, ...) and delivers it to the site's handler: with
// Stripe, through billing's RunHooks, running beside the server; offline,
// the site dispatches after each webhook and request instead (see
// ops.go for why).
//
// Operating it (ops.go, admin.go). billing's metrics go through an
// OpenTelemetry MeterProvider whose reader is OpenTelemetry's Prometheus
// exporter, on a prometheus.Registry of the site's own (with the Go
// runtime's, the process's and the database pool's metrics). They are
// served in Prometheus's text format at /metrics in two places, neither of
// them public:
//
//   - on the site, to the admins only (a 404 for everyone else), to look
//     at in a browser;
//   - with METRICS_ADDR set, on a listener of its own, unauthenticated, for
//     Prometheus to scrape, with billing's health report (JSON) at
//     /healthz/billing for the monitoring and the load balancer.
//
// Why not unauthenticated on the site, as is common? The site is public,
// and the metrics tell how the business goes (subscriptions,
// cancellations, failed payments), while Prometheus cannot sign in. A
// listener of its own, on an address the public cannot reach (loopback, or
// a private network), keeps them off the site with nothing to configure
// but an address: the simplest safe default is that nothing
// unauthenticated is served on the public listener. METRICS_ADDR is unset
// by default (one fixed port would collide between replicas on one
// machine); offline it must be a loopback address, as ADDR.
//
// The admin page, /admin, is for the signed-in users whose email
// ADMIN_EMAILS lists; everyone else, signed in or not, gets the site's 404
// for it and its forms, whatever the method, so that it does not tell it
// exists. It shows billing's health, the four alerting rules' numbers (as
// counted by this process since it started), the members by status, the
// events applied lately, the parked events and the dead-lettered changes,
// with buttons to replay or discard them (CSRF-protected forms, as the
// site's others). The nav links to it for admins.
//
// With Stripe, the site checks the Stripe account at start-up (billing's
// SelfCheck: the key, each price, and the webhook endpoint at
// SITE_URL/stripe/webhook when SITE_URL is public). A problem that would
// break billing refuses the start, printing each finding with its fix
// (unless SELF_CHECK=warn); warnings are logged; Stripe out of reach is
// logged, and the site starts. And billing's Maintain runs beside the
// server until it stops: CatchUp hourly over the last 72 hours, pruning
// daily, one replica at a time. Offline it does not run (its waits would
// move the offline Stripe's clock): the dev panel runs MaintainOnce.
//
// Environment (all optional):
//
//	ADDR                   where to listen (default 127.0.0.1:8080); offline,
//	                       a loopback address (127.0.0.1, [::1], localhost)
//	SITE_URL               the public base URL (default http://ADDR)
//	DATABASE_URL           postgres://..., mysql://user:pass@host:port/db, or a
//	                       SQLite file path (default ./data/billing.db, or
//	                       ./data/offline.db offline)
//	STRIPE_SECRET_KEY      a Stripe secret key (sk_test_...): use Stripe itself
//	STRIPE_WEBHOOK_SECRET  the signing secret of the endpoint at /stripe/webhook
//	                       (required with STRIPE_SECRET_KEY)
//	STRIPE_API_BASE        another Stripe-compatible API base URL (stripe-mock)
//	PRICE_BASIC_MONTHLY, PRICE_BASIC_YEARLY, PRICE_PRO_MONTHLY, PRICE_PRO_YEARLY,
//	PRICE_CREDITS          the Stripe price IDs of the plans (recurring prices)
//	                       and of the credits pack (a one-time price; each
//	                       purchase grants 100 credits); with
//	                       STRIPE_SECRET_KEY, at least one
//	PLANS_FILE             a plans file (billing.yaml here) whose price IDs,
//	                       written by billing setup, fill the PRICE_ variables
//	                       not set, by lookup key (basic_monthly, basic_yearly,
//	                       pro_monthly, pro_yearly, credits_100)
//	SELF_CHECK             refuse (default): with Stripe, a start-up self-check
//	                       that finds an error (a missing price, no webhook
//	                       endpoint at SITE_URL/stripe/webhook, ...) refuses to
//	                       start; warn: log the errors and start anyway
//	ADMIN_EMAILS           comma-separated emails of the users who may open
//	                       /admin and /metrics on the site (default: nobody)
//	METRICS_ADDR           where to serve /metrics and /healthz/billing,
//	                       unauthenticated, for Prometheus and the monitoring
//	                       (default: unset, not served but to admins on the
//	                       site); offline, a loopback address
//	LOG_LEVEL              debug, info (default), warn or error: the least
//	                       severe log lines written, the site's and billing's
//	                       (debug shows each webhook event and Stripe retry)
//
// The Stripe variables (SELF_CHECK too) are refused without
// STRIPE_SECRET_KEY: the site would silently run offline instead.
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gobilling/billing/internal/dburl"
	"github.com/gobilling/billing/plansfile"
	"github.com/gobilling/billing/sqlstore"
)

func main() {
	level, levelErr := parseLogLevel(os.Getenv("LOG_LEVEL"))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if levelErr != nil {
		log.Error(levelErr.Error())
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, log); err != nil {
		log.Error(err.Error())
		os.Exit(1)
	}
}

// parseLogLevel reads LOG_LEVEL: debug, info (also when empty), warn (or
// warning) or error, in any case.
func parseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return slog.LevelInfo, fmt.Errorf("LOG_LEVEL %q is not debug, info, warn or error", s)
}

// run starts the site and serves it until ctx ends (an interrupt or
// SIGTERM), then shuts down gracefully.
func run(ctx context.Context, getenv func(string) string, log *slog.Logger) error {
	env, err := loadEnv(getenv)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", env.Addr)
	if err != nil {
		return fmt.Errorf("listen on ADDR %s: %w", env.Addr, err)
	}
	defer ln.Close()
	var opsLn net.Listener
	if env.MetricsAddr != "" {
		if opsLn, err = net.Listen("tcp", env.MetricsAddr); err != nil {
			return fmt.Errorf("listen on METRICS_ADDR %s: %w", env.MetricsAddr, err)
		}
		defer opsLn.Close()
	}
	siteURL := env.SiteURL
	if siteURL == "" {
		siteURL = localURL(ln.Addr())
	}

	db, dialect, where, err := openDatabase(ctx, env.DatabaseURL, env.Offline())
	if err != nil {
		return err
	}
	defer db.Close()

	a, err := newApp(ctx, appConfig{
		SiteURL:     siteURL,
		WebhookURL:  webhookURL(env.SiteURL),
		DB:          db,
		Dialect:     dialect,
		Stripe:      env.Stripe,
		AdminEmails: env.AdminEmails,
		Logger:      log,
	})
	if err != nil {
		return err
	}
	defer a.Close()

	if a.offline != nil {
		log.Info("offline mode: STRIPE_SECRET_KEY is unset, so payments go to the offline Stripe in this process (pay with 4242 4242 4242 4242; move its clock at /dev)",
			"offline_stripe", a.offline.URL())
		if env.DatabaseURL != "" {
			log.Warn("the offline Stripe starts empty: Stripe customers stored in DATABASE_URL by an earlier run are unknown to it")
		}
	} else {
		log.Info("Stripe mode", "stripe_api", stripeAPI(env.Stripe.APIBase), "webhook", siteURL+"/stripe/webhook")
	}
	log.Info("database", string(dialect), where)
	if len(env.AdminEmails) == 0 {
		log.Info("no admin: set ADMIN_EMAILS to open /admin")
	}
	if opsLn != nil {
		ops := newOpsServer(a.opsHandler(), log)
		go func() {
			if err := ops.Serve(opsLn); !errors.Is(err, http.ErrServerClosed) {
				log.Error("the metrics listener stopped", "error", err.Error())
			}
		}()
		defer func() {
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = ops.Shutdown(shutdownCtx)
		}()
		base := localURL(opsLn.Addr())
		log.Info("metrics for Prometheus at "+base+"/metrics, billing's health at "+base+"/healthz/billing", "metrics_addr", opsLn.Addr().String())
	}
	log.Info("open " + siteURL)
	return serve(ctx, ln, newServer(a, a.writeTimeout, log), log)
}

// webhookURL is the public URL of the site's webhook, which the start-up
// self-check looks for among the account's webhook endpoints: empty (not
// checked) when SITE_URL is unset or local, since Stripe cannot deliver
// to this machine: the events then come through the Stripe CLI (stripe
// listen --forward-to), which needs no endpoint.
func webhookURL(siteURL string) string {
	u, err := url.Parse(siteURL)
	if siteURL == "" || err != nil {
		return ""
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() == "localhost" || ip != nil && (ip.IsLoopback() || ip.IsUnspecified()) {
		return ""
	}
	return siteURL + "/stripe/webhook"
}

// newServer is the site's http.Server. Its WriteTimeout must be above the
// app's Stripe deadline (appConfig), so that a page that waited for Stripe
// still reaches the browser.
func newServer(h http.Handler, writeTimeout time.Duration, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// serve serves srv on ln until ctx ends, then stops accepting connections
// and waits (up to 15 seconds) for the requests in flight.
func serve(ctx context.Context, ln net.Listener, srv *http.Server, log *slog.Logger) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// env is the configuration read from the environment.
type env struct {
	Addr        string
	SiteURL     string
	DatabaseURL string
	Stripe      stripeEnv
	// AdminEmails may open /admin (lower-cased).
	AdminEmails []string
	// MetricsAddr, if set, is where /metrics and /healthz/billing are
	// served for Prometheus and the monitoring.
	MetricsAddr string
}

// stripeEnv says which Stripe to use. An empty SecretKey means the offline
// Stripe.
type stripeEnv struct {
	SecretKey     string
	WebhookSecret string
	APIBase       string
	Prices        prices
	// SelfCheck is what an error of the start-up self-check does:
	// selfCheckRefuse (the default, also when empty) or selfCheckWarn.
	SelfCheck string
}

// The values of SELF_CHECK.
const (
	selfCheckRefuse = "refuse"
	selfCheckWarn   = "warn"
)

// prices are the Stripe price IDs the site sells; empty ones are not
// offered.
type prices struct {
	BasicMonthly, BasicYearly, ProMonthly, ProYearly, Credits string
}

// Offline reports whether the site runs with the offline Stripe.
func (e env) Offline() bool { return e.Stripe.SecretKey == "" }

// loadEnv reads the environment and says clearly what is missing.
func loadEnv(getenv func(string) string) (env, error) {
	e := env{
		Addr:        getenv("ADDR"),
		SiteURL:     strings.TrimSuffix(getenv("SITE_URL"), "/"),
		DatabaseURL: getenv("DATABASE_URL"),
		Stripe: stripeEnv{
			SecretKey:     getenv("STRIPE_SECRET_KEY"),
			WebhookSecret: getenv("STRIPE_WEBHOOK_SECRET"),
			APIBase:       getenv("STRIPE_API_BASE"),
			SelfCheck:     strings.ToLower(strings.TrimSpace(getenv("SELF_CHECK"))),
			Prices: prices{
				BasicMonthly: getenv("PRICE_BASIC_MONTHLY"),
				BasicYearly:  getenv("PRICE_BASIC_YEARLY"),
				ProMonthly:   getenv("PRICE_PRO_MONTHLY"),
				ProYearly:    getenv("PRICE_PRO_YEARLY"),
				Credits:      getenv("PRICE_CREDITS"),
			},
		},
		MetricsAddr: getenv("METRICS_ADDR"),
	}
	if e.Addr == "" {
		e.Addr = "127.0.0.1:8080"
	}
	admins, err := parseAdminEmails(getenv("ADMIN_EMAILS"))
	if err != nil {
		return env{}, err
	}
	e.AdminEmails = admins
	if e.SiteURL != "" {
		if u, err := url.Parse(e.SiteURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return env{}, fmt.Errorf("SITE_URL %q is not an absolute http(s) URL", e.SiteURL)
		}
	}
	if e.Offline() {
		// Stripe's variables without a key are a mistake (a key left
		// unset, or misspelt): running offline instead would hide it.
		var set []string
		for _, name := range stripeVars {
			if getenv(name) != "" {
				set = append(set, name)
			}
		}
		if len(set) > 0 {
			verb, them := "are", "them"
			if len(set) == 1 {
				verb, them = "is", "it"
			}
			return env{}, fmt.Errorf("%s %s set, but STRIPE_SECRET_KEY is not: set STRIPE_SECRET_KEY (sk_test_...) to use Stripe, or unset %s to run offline",
				strings.Join(set, ", "), verb, them)
		}
		if err := checkLoopback("ADDR", e.Addr); err != nil {
			return env{}, err
		}
		if e.MetricsAddr != "" {
			if err := checkLoopback("METRICS_ADDR", e.MetricsAddr); err != nil {
				return env{}, err
			}
		}
		return e, nil
	}
	switch e.Stripe.SelfCheck {
	case "", selfCheckRefuse, selfCheckWarn:
	default:
		return env{}, fmt.Errorf("SELF_CHECK %q is not %s or %s", e.Stripe.SelfCheck, selfCheckRefuse, selfCheckWarn)
	}
	var missing []string
	if err := e.Stripe.Prices.fromFile(getenv("PLANS_FILE")); err != nil {
		return env{}, err
	}
	if e.Stripe.WebhookSecret == "" {
		missing = append(missing, "STRIPE_WEBHOOK_SECRET (the signing secret, whsec_..., of the webhook endpoint at <site>/stripe/webhook; with the Stripe CLI: stripe listen --forward-to <site>/stripe/webhook)")
	}
	if e.Stripe.Prices == (prices{}) {
		missing = append(missing, "at least one price ID (price_...): PLANS_FILE=billing.yaml after `billing setup -f billing.yaml`, or PRICE_BASIC_MONTHLY, PRICE_BASIC_YEARLY, PRICE_PRO_MONTHLY, PRICE_PRO_YEARLY or PRICE_CREDITS")
	}
	if len(missing) > 0 {
		return env{}, fmt.Errorf("STRIPE_SECRET_KEY is set, so the site uses Stripe, which also needs %s; or unset STRIPE_SECRET_KEY to run offline",
			strings.Join(missing, ", and "))
	}
	return e, nil
}

// stripeVars are the variables that configure Stripe, besides its key.
var stripeVars = []string{
	"STRIPE_WEBHOOK_SECRET", "STRIPE_API_BASE",
	"PRICE_BASIC_MONTHLY", "PRICE_BASIC_YEARLY", "PRICE_PRO_MONTHLY", "PRICE_PRO_YEARLY", "PRICE_CREDITS",
	"SELF_CHECK", "PLANS_FILE",
}

// planKeys are the lookup keys of the site's plans in a plans file
// (examples/server/billing.yaml).
var planKeys = []string{"basic_monthly", "basic_yearly", "pro_monthly", "pro_yearly", "credits_100"}

// fromFile fills the price IDs not set by their variables from a plans
// file (PLANS_FILE, "" for none), by lookup key: the file billing setup
// wrote the IDs into.
func (p *prices) fromFile(path string) error {
	if path == "" {
		return nil
	}
	_, f, err := plansfile.Load(path)
	if err != nil {
		return fmt.Errorf("PLANS_FILE: %w", err)
	}
	ids := map[string]*string{"basic_monthly": &p.BasicMonthly, "basic_yearly": &p.BasicYearly, "pro_monthly": &p.ProMonthly,
		"pro_yearly": &p.ProYearly, "credits_100": &p.Credits}
	for _, spec := range f.Plans {
		id, ok := ids[spec.LookupKey]
		if !ok {
			return fmt.Errorf("PLANS_FILE %s: plan %q: the site sells the plans with lookup keys %s only", path, spec.LookupKey, strings.Join(planKeys, ", "))
		}
		if *id == "" {
			*id = spec.PriceID
		}
	}
	return nil
}

// parseAdminEmails reads ADMIN_EMAILS: emails separated by commas,
// compared in lower case as the site stores them. An entry that is not an
// email is refused, rather than silently matching nobody.
func parseAdminEmails(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		email := strings.ToLower(strings.TrimSpace(f))
		if email == "" {
			continue
		}
		if addr, err := mail.ParseAddress(email); err != nil || addr.Address != email {
			return nil, fmt.Errorf("ADMIN_EMAILS: %q is not an email address (list them separated by commas: ada@example.com,bob@example.com)", email)
		}
		out = append(out, email)
	}
	return out, nil
}

// checkLoopback refuses an offline address (ADDR, METRICS_ADDR) that
// other machines could reach: the offline site's dev panel moves the
// offline Stripe's clock, and its payments need no real card.
func checkLoopback(name, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q is not host:port: %w", name, addr, err)
	}
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s %s is not a loopback address: offline (STRIPE_SECRET_KEY unset), the site is a development tool "+
		"(a dev panel moves the offline Stripe's clock, payments need no real card), so it listens on 127.0.0.1, [::1] or localhost only; or set STRIPE_SECRET_KEY", name, addr)
}

// Default SQLite files, relative to the working directory.
const (
	defaultDatabase = "data/billing.db"
	offlineDatabase = "data/offline.db"
)

// openDatabase opens DATABASE_URL (see package dburl) and names its
// dialect and where it is (without a password, for the log). Empty means
// an SQLite file under ./data: offline.db, created afresh, when offline.
func openDatabase(ctx context.Context, dbURL string, offline bool) (*sql.DB, sqlstore.Dialect, string, error) {
	if dbURL == "" {
		dbURL = defaultDatabase
		if offline {
			// The offline Stripe starts empty: so does its database.
			dbURL = offlineDatabase
			for _, f := range []string{dbURL, dbURL + "-wal", dbURL + "-shm"} {
				if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
					return nil, "", "", fmt.Errorf("reset %s: %w", dbURL, err)
				}
			}
		}
	}
	return dburl.Open(ctx, dbURL)
}

// localURL is the URL of a listener's address: a wildcard host becomes
// localhost.
func localURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func stripeAPI(base string) string {
	if base == "" {
		return "https://api.stripe.com"
	}
	return base
}
