package main

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/sqlstore"
)

// appConfig configures newApp.
type appConfig struct {
	// SiteURL is the site's public base URL: Checkout and the portal
	// return there.
	SiteURL string
	// WebhookURL is the public URL of the site's webhook handler, which
	// the start-up self-check (Stripe mode) looks for among the account's
	// webhook endpoints; empty: the endpoint is not checked (a local
	// site, whose events come through the Stripe CLI).
	WebhookURL string
	// DB is the database of both billing's tables and the site's users;
	// the caller closes it.
	DB      *sql.DB
	Dialect sqlstore.Dialect
	// Stripe is the Stripe to use; an empty SecretKey means the offline
	// Stripe, started in-process.
	Stripe stripeEnv
	Logger *slog.Logger
	// TablePrefix starts the names of billing's tables (default
	// sqlstore.DefaultTablePrefix, "billing_").
	TablePrefix string
	// AdminEmails are the emails of the users who may open /admin and
	// /metrics, in lower case.
	AdminEmails []string
	// HookAttempts is how many failed deliveries of a change dead-letter
	// it (zero: billing's default, DefaultHookAttempts).
	HookAttempts int

	// OfflineStart is where the offline Stripe's clock starts (zero: now).
	OfflineStart time.Time
	// BcryptCost is the cost of password hashes (zero: bcrypt.DefaultCost).
	BcryptCost int

	// StripeDeadline bounds each request, and so its Stripe calls,
	// billing's retries included; it is also the HTTP client's timeout of
	// every Stripe call, and bounds the reading of the prices at start-up
	// (zero: defaultStripeDeadline). It must be below WriteTimeout: a page
	// waiting for a Stripe that does not answer then still says "Billing
	// is unavailable" before the server drops the connection.
	StripeDeadline time.Duration
	// WriteTimeout is the server's http.Server.WriteTimeout (zero:
	// defaultWriteTimeout); see newServer.
	WriteTimeout time.Duration
}

// Defaults of appConfig's StripeDeadline and WriteTimeout. The deadline
// leaves the page ten seconds to render and reach the browser.
const (
	defaultStripeDeadline = 20 * time.Second
	defaultWriteTimeout   = 30 * time.Second
)

// The offline Stripe's key, webhook secret and prices. They are test-mode
// values of the right shapes, known only to this process.
const (
	offlineSecretKey     = "sk_test_offline_example"
	offlineWebhookSecret = "whsec_offline_example"
)

var offlinePrices = prices{
	BasicMonthly: "price_basic_monthly",
	BasicYearly:  "price_basic_yearly",
	ProMonthly:   "price_pro_monthly",
	ProYearly:    "price_pro_yearly",
	Credits:      "price_credits",
}

// graceAttempts is how many failed payments a membership keeps access
// through while Stripe retries (billing's default, made explicit).
const graceAttempts = billing.DefaultGraceAttempts

// app is the site: an http.Handler, and Close.
type app struct {
	http.Handler
	log     *slog.Logger
	db      *sql.DB
	dialect sqlstore.Dialect
	b       *billing.Billing
	users   *users
	mail    *mailbox
	plans   []plan
	siteURL string
	// stripeDeadline bounds each request (withDeadline); writeTimeout is
	// the server's WriteTimeout (newServer).
	stripeDeadline, writeTimeout time.Duration
	// webhook is billing's webhook handler; offline, it also delivers the
	// changes the event recorded (dispatchAfter).
	webhook http.Handler
	// stops stop what runs beside the server (RunHooks and Maintain, with
	// Stripe) and wait for it; none offline.
	stops []func()
	// metrics are the site's metrics, billing's among them.
	metrics *metrics
	// admins are the emails of the admins.
	admins map[string]bool
	// offline is the in-process offline Stripe, nil with a real one.
	offline *billingtest.Stripe
	// offlineSetup is how many events the offline Stripe made while the
	// site stocked it (product.created): the dev panel leaves them out.
	offlineSetup int
	// now is billing's clock: the offline Stripe's simulated time, or
	// the wall clock.
	now           func() time.Time
	secureCookies bool
}

// newApp wires billing to the database and to Stripe (the offline one when
// no key is configured) and returns the site.
func newApp(ctx context.Context, cfg appConfig) (*app, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StripeDeadline == 0 {
		cfg.StripeDeadline = defaultStripeDeadline
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = defaultWriteTimeout
	}
	if cfg.StripeDeadline < 0 || cfg.StripeDeadline >= cfg.WriteTimeout {
		return nil, fmt.Errorf("the Stripe deadline (%v) must be positive and below the server's WriteTimeout (%v)", cfg.StripeDeadline, cfg.WriteTimeout)
	}
	a := &app{
		log:            cfg.Logger,
		db:             cfg.DB,
		dialect:        cfg.Dialect,
		siteURL:        cfg.SiteURL,
		stripeDeadline: cfg.StripeDeadline,
		writeTimeout:   cfg.WriteTimeout,
		now:            time.Now,
		secureCookies:  strings.HasPrefix(cfg.SiteURL, "https://"),
		admins:         make(map[string]bool),
	}
	for _, e := range cfg.AdminEmails {
		a.admins[strings.ToLower(e)] = true
	}

	// billing's tables, created or updated by the store's own migrations,
	// then the site's own tables.
	store, err := sqlstore.New(ctx, cfg.DB, cfg.Dialect, sqlstore.Options{
		TablePrefix: cfg.TablePrefix,
		// The time processed events are stamped with (the admin page's
		// recent events, the health's last event) and pruned by: billing's
		// clock, which offline is the offline Stripe's simulated time.
		Now: func() time.Time { return a.now() },
	})
	if err != nil {
		return nil, err
	}
	if err := store.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("migrate billing's tables: %w", err)
	}
	if a.users, err = newUsers(cfg.DB, cfg.Dialect, cfg.BcryptCost); err != nil {
		return nil, err
	}
	if err := a.users.migrate(ctx); err != nil {
		return nil, err
	}
	a.mail = &mailbox{db: cfg.DB, dialect: cfg.Dialect}
	if err := a.mail.migrate(ctx); err != nil {
		return nil, err
	}

	// Which Stripe: the real one (or another Stripe-compatible API), or
	// the offline Stripe with the site's prices. No Stripe call outlasts
	// the deadline: the HTTP client's timeout bounds each try, the
	// request's context (withDeadline) all of them, billing's retries
	// included.
	httpClient := &http.Client{Timeout: cfg.StripeDeadline}
	if a.metrics, err = newMetrics(cfg.DB, cfg.Logger); err != nil {
		return nil, err
	}
	bcfg := billing.Config{
		SecretKey:      cfg.Stripe.SecretKey,
		WebhookSecrets: []string{cfg.Stripe.WebhookSecret},
		StripeURL:      cfg.Stripe.APIBase,
		SiteURL:        cfg.SiteURL,
		WebhookURL:     cfg.WebhookURL,
		GraceAttempts:  graceAttempts,
		Logger:         cfg.Logger,
		HTTPClient:     httpClient,
		// billing's metrics (ops.go).
		MeterProvider: a.metrics.provider,
		// Every change of a user's billing is recorded in billing's outbox
		// and delivered to the site's handler, which sends the emails
		// (mailbox.go).
		Hooks: billing.Hooks{Handler: billing.ChangeHandlerFunc(a.emailChange), MaxAttempts: cfg.HookAttempts},
	}
	priceIDs := cfg.Stripe.Prices
	if cfg.Stripe.SecretKey == "" {
		a.offline = billingtest.New(billingtest.Options{Start: cfg.OfflineStart})
		priceIDs = offlinePrices
		bcfg.SecretKey = offlineSecretKey
		bcfg.WebhookSecrets = []string{offlineWebhookSecret}
		bcfg.StripeURL = a.offline.URL()
		bcfg.Clock = a.offline
		a.now = a.offline.Now
	}
	a.plans = catalog(priceIDs)
	for _, p := range a.plans {
		bp := billing.Plan{PriceID: p.PriceID, Tier: p.Tier}
		if p.Credits > 0 {
			bp.Kind, bp.Credits = billing.OneTime, p.Credits
		}
		bcfg.Plans = append(bcfg.Plans, bp)
	}
	a.b, err = billing.New(bcfg, store, billing.UserResolverFunc(a.users.billingUser))
	if err != nil {
		a.Close()
		return nil, err
	}
	if a.offline == nil {
		// Is the Stripe account set up as billing needs? (ops.go)
		if err := a.selfCheck(ctx, cfg); err != nil {
			a.Close()
			return nil, err
		}
	}

	// What the plans cost, and the names of their products, as Stripe
	// says (the offline Stripe first gets the site's products and prices).
	sc := newStripeClient(bcfg.SecretKey, bcfg.StripeURL, httpClient)
	stripeCtx, cancel := context.WithTimeout(ctx, cfg.StripeDeadline)
	defer cancel()
	if a.offline != nil {
		if err := stockOffline(stripeCtx, a.offline, sc, a.plans); err != nil {
			a.Close()
			return nil, err
		}
		a.offlineSetup = len(a.offline.Events())
	}
	if err := describePlans(stripeCtx, sc, a.plans, cfg.Logger); err != nil {
		a.Close()
		return nil, err
	}
	a.webhook = a.b.WebhookHandler()
	if a.offline != nil {
		a.webhook = a.dispatchAfter(a.webhook)
		// The offline Stripe delivers its webhooks straight to the
		// site's handler, signed with the secret billing checks.
		a.offline.AddEndpoint(a.webhook, billingtest.EndpointOptions{
			Secret: offlineWebhookSecret,
			URL:    cfg.SiteURL + "/stripe/webhook",
		})
	} else {
		// Beside the server, until Close (ops.go; offline, see there).
		a.startHooks(ctx)
		a.startMaintenance(ctx)
	}
	a.Handler = a.routes()
	return a, nil
}

// dispatchTimeout bounds one offline dispatch.
const dispatchTimeout = 20 * time.Second

// dispatchHooks delivers the changes due now (offline mode: see ops.go).
// It runs to its end even if the request that called it is gone: a
// delivery cut off midway would hold its change until its claim expires.
func (a *app) dispatchHooks(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dispatchTimeout)
	defer cancel()
	if _, err := a.b.DispatchHooks(ctx); err != nil {
		a.log.Warn("deliver billing's changes", "error", err.Error())
	}
}

// dispatchAfter runs a handler, then delivers the changes it recorded
// (offline mode).
func (a *app) dispatchAfter(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		a.dispatchHooks(r.Context())
	})
}

// Close stops what runs beside the server (delivering billing's changes,
// maintenance), the metrics, and the offline Stripe, if any.
func (a *app) Close() {
	for _, stop := range a.stops {
		stop()
	}
	a.stops = nil
	if a.metrics != nil {
		a.metrics.close()
	}
	if a.offline != nil {
		a.offline.Close()
	}
}

// routes is the site's route table.
func (a *app) routes() http.Handler {
	site := http.NewServeMux()
	site.HandleFunc("GET /{$}", a.home)
	site.HandleFunc("GET /signup", a.signupPage)
	site.HandleFunc("POST /signup", a.signup)
	site.HandleFunc("GET /signin", a.signinPage)
	site.HandleFunc("POST /signin", a.signin)
	site.Handle("POST /signout", a.signedInForm(a.signout))
	site.HandleFunc("GET /pricing", a.pricing)
	site.Handle("POST /checkout", a.signedInForm(a.checkout))
	site.Handle("GET /checkout/return", a.signedIn(a.checkoutReturn))
	site.Handle("GET /account", a.signedIn(a.account))
	site.Handle("POST /billing/portal", a.signedInForm(a.portal))
	site.Handle("GET /members", a.membersOnly(a.members))
	site.Handle("GET /members/pro", a.membersOnly(a.proMembers, "pro"))
	site.HandleFunc("GET /healthz", a.healthz)
	for _, name := range []string{"site.css", "site.js"} {
		site.HandleFunc("GET /static/"+name, func(w http.ResponseWriter, r *http.Request) {
			http.ServeFileFS(w, r, staticFiles, "static/"+name)
		})
	}
	if a.offline != nil {
		// The dev panel, for signed-in users only: its forms, like every
		// signed-in form, carry the session's CSRF token.
		site.Handle("GET /dev", a.signedIn(a.devPanel))
		site.Handle("POST /dev/advance", a.signedInForm(a.devAdvance))
		site.Handle("POST /dev/replay", a.signedInForm(a.devReplay))
		site.Handle("POST /dev/maintain", a.signedInForm(a.devMaintain))
		site.Handle("GET /dev/mailbox", a.signedIn(a.devMailbox))
	}
	// The admin page and the metrics, for the admins only (admin.go): a
	// 404 for everyone else, whatever the method. The patterns take every
	// method, so that ServeMux's 405 does not tell they exist.
	site.Handle("/admin", a.adminOnly(http.MethodGet, a.adminPage))
	site.Handle("/metrics", a.adminOnly(http.MethodGet, a.metrics.handler.ServeHTTP))
	site.Handle("/admin/parked/replay", a.adminOnly(http.MethodPost, a.adminReplay))
	site.Handle("/admin/parked/discard", a.adminOnly(http.MethodPost, a.adminDiscard))
	site.Handle("/admin/hooks/replay", a.adminOnly(http.MethodPost, a.adminReplayHook))
	site.Handle("/admin/hooks/discard", a.adminOnly(http.MethodPost, a.adminDiscardHook))

	// Every POST is checked against cross-site requests (the browser's
	// Sec-Fetch-Site header, or Origin against Host); the forms of
	// signed-in pages also carry the session's CSRF token (signedInForm);
	// cookies are SameSite=Lax.
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.renderError(w, r, http.StatusForbidden, "Request refused",
			"This form was sent from another site. Go back to the site, reload the page and try again.")
	}))

	root := http.NewServeMux()
	// The webhook is outside the session and CSRF middleware: Stripe signs
	// its requests instead. It is mounted for every method, so that
	// billing's handler answers 405 to anything but a POST (a pattern of
	// POST only would leave a GET to the site's 404).
	root.Handle("/stripe/webhook", a.webhook)
	root.Handle("/", securityHeaders(a.withSession(csrf.Handler(a.settleOffline(a.styledErrors(site))))))
	return a.withDeadline(root)
}

// withDeadline bounds each request by the Stripe deadline: the Stripe
// calls it makes (billing's retries included) give up then, and the page
// says that billing is unavailable, before the server's WriteTimeout cuts
// the connection. (Without an answer the browser shows ERR_EMPTY_RESPONSE,
// and may send the form again.) The webhook too: past the deadline it
// answers 500, and Stripe delivers the event again later.
func (a *app) withDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), a.stripeDeadline)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// styledErrors answers what no route of the site matches with the site's
// own page, in its layout: 404 for an unknown URL, 405 (with ServeMux's
// Allow header) for a known one asked with another method, rather than
// ServeMux's plain text.
func (a *app) styledErrors(site *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := site.Handler(r)
		if pattern != "" {
			site.ServeHTTP(w, r)
			return
		}
		// ServeMux's own answer: a 404, a 405, or a redirect to a
		// cleaned path, which goes through.
		ew := &errorWriter{ResponseWriter: w}
		h.ServeHTTP(ew, r)
		switch ew.code {
		case http.StatusNotFound:
			a.renderError(w, r, http.StatusNotFound, "Page not found",
				"There is no page at this address. It may have moved, or the link may be mistyped.")
		case http.StatusMethodNotAllowed:
			a.renderError(w, r, http.StatusMethodNotAllowed, "Method not allowed",
				"This page cannot be used that way. Go back to the site and use its links and buttons.")
		}
	})
}

// errorWriter passes a response through, except a 404 or a 405, which it
// swallows (and records) for the caller to answer; headers set before
// (Allow) stay.
type errorWriter struct {
	http.ResponseWriter
	code int
}

func (ew *errorWriter) WriteHeader(code int) {
	if code == http.StatusNotFound || code == http.StatusMethodNotAllowed {
		ew.code = code
		return
	}
	ew.ResponseWriter.WriteHeader(code)
}

func (ew *errorWriter) Write(b []byte) (int, error) {
	if ew.code != 0 {
		return len(b), nil
	}
	return ew.ResponseWriter.Write(b)
}

// settleOffline, in offline mode, lets the offline Stripe's webhooks in
// flight reach the site before a page is shown, so that the account page
// shows at once what was just done in its portal, and the mailbox its
// emails. (With Stripe itself, a webhook may arrive a moment after the
// user is back.) After each request it delivers the changes the request
// recorded (see "Running beside the server" in ops.go).
func (a *app) settleOffline(next http.Handler) http.Handler {
	if a.offline == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
			if err := a.offline.Flush(ctx); err != nil {
				a.log.Warn("offline Stripe webhooks still in flight", "error", err.Error())
			}
			cancel()
			a.dispatchHooks(r.Context())
		}
		next.ServeHTTP(w, r)
		a.dispatchHooks(r.Context())
	})
}

// securityHeaders sets the headers every page gets.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// Templates and static files, embedded in the binary.
var (
	//go:embed templates/*.html
	templateFiles embed.FS
	//go:embed static/site.css static/site.js
	staticFiles embed.FS
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// templateFuncs are the helpers the templates use.
var templateFuncs = template.FuncMap{
	// date is how pages show a day: "June 10, 2031" (UTC).
	"date": func(t time.Time) string { return t.UTC().Format("January 2, 2006") },
	// datetime adds the time: "June 10, 2031 12:00 UTC".
	"datetime": func(t time.Time) string { return t.UTC().Format("January 2, 2006 15:04 MST") },
	// round is a duration to the second: "1h2m3s".
	"round": func(d time.Duration) string { return d.Round(time.Second).String() },
	// iso is the machine-readable form for <time datetime>.
	"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
}

// pages are the templates, each page's "content" in the shared layout.
var pages = func() map[string]*template.Template {
	names := must(fs.Glob(templateFiles, "templates/*.html"))
	m := make(map[string]*template.Template, len(names))
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		m[name] = template.Must(template.New(name).Funcs(templateFuncs).ParseFS(templateFiles, "templates/layout.html", n))
	}
	return m
}()

// view is what the layout needs, with the page's own data in Page.
type view struct {
	Title string
	// Session is the signed-in user's session, nil for a visitor.
	Session *session
	Flash   string
	// Refresh, when set, reloads the page after that many seconds.
	Refresh int
	// Admin is set for an admin: the nav links to /admin.
	Admin bool
	// Dev is the offline Stripe's bar, nil with a real Stripe.
	Dev  *devBar
	Page any
}

// flashes are the one-line messages a redirect can ask for (?msg=key), so
// that no text from the URL reaches the page.
var flashes = map[string]string{
	"signed-out":         "You are signed out.",
	"welcome":            "Welcome! Your account is ready: choose a plan.",
	"already-subscribed": "You already have a subscription: change plans or cancel in Manage billing.",
	"no-customer":        "You have no billing account yet: choose a plan first.",
	"nothing-scheduled":  "The offline Stripe has nothing scheduled, so the clock did not move.",
	"replayed":           "The parked event was replayed.",
	"still-parked":       "The event is still parked: its customer is linked to no user.",
	"discarded":          "The parked event was discarded.",
	"hook-replayed":      "The change is due again: it is delivered in a moment.",
	"hook-discarded":     "The dead-lettered change was discarded.",
	"maintained":         "Maintenance ran once: CatchUp over the last 72 hours, then pruning (the log has the counts).",
}

// render writes a page. It is rendered into a buffer first, so that a
// template error is a clean 500 rather than half a page.
func (a *app) render(w http.ResponseWriter, r *http.Request, status int, name, title string, page any) {
	a.renderView(w, r, status, name, view{Title: title, Page: page})
}

func (a *app) renderView(w http.ResponseWriter, r *http.Request, status int, name string, v view) {
	if s, ok := sessionFrom(r.Context()); ok {
		v.Session = &s
		v.Admin = a.admins[s.User.Email]
	}
	if v.Flash == "" {
		v.Flash = flashes[r.URL.Query().Get("msg")]
	}
	if a.offline != nil {
		v.Dev = a.devBar(r)
	}
	var buf bytes.Buffer
	if err := pages[name].ExecuteTemplate(&buf, "layout", v); err != nil {
		a.log.Error("render page", "page", name, "error", err.Error())
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorView is the data of the error page.
type errorView struct{ Heading, Message string }

// renderError shows the error page with a heading and a message.
func (a *app) renderError(w http.ResponseWriter, r *http.Request, status int, heading, message string) {
	a.render(w, r, status, "error", heading, errorView{Heading: heading, Message: message})
}

// billingUnavailable is the page for a failed call to Stripe or to the
// database: the details go to the log, not to the user.
func (a *app) billingUnavailable(w http.ResponseWriter, r *http.Request, what string, err error) {
	a.log.Error(what, "error", err.Error())
	a.renderError(w, r, http.StatusBadGateway, "Billing is unavailable",
		"We could not reach our payment provider. Nothing was charged. Please try again in a minute.")
}

// maxPathLen bounds a path safePath accepts.
const maxPathLen = 2048

// safePath returns p if it is safe to redirect to, as a path on this site
// (the ?next= of the sign-in and sign-up pages, the return= of the dev
// bar), else "". Only printable ASCII is accepted, and no backslash:
// browsers drop tabs and newlines from a URL and read a backslash as a
// slash, so that "/\t/evil.example" or "/\evil.example", which look like
// paths, lead to //evil.example, another site. Then p must be an absolute
// path (one leading slash, not two: "//host" is another site), with no
// scheme ("javascript:", "https:") and no host. A site's own paths and
// queries are percent-encoded ASCII: nothing legitimate is refused.
func safePath(p string) string {
	if p == "" || len(p) > maxPathLen || p[0] != '/' || strings.HasPrefix(p, "//") {
		return ""
	}
	for i := range len(p) {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return ""
		}
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
		return ""
	}
	return p
}
