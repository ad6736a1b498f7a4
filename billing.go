package billing

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults for the zero values of Config's fields.
const (
	DefaultGraceAttempts   = 3
	DefaultAccessLeeway    = 24 * time.Hour
	DefaultMaxWebhookBytes = 512 << 10
	DefaultSuccessPath     = "/checkout/return?session_id={CHECKOUT_SESSION_ID}"
	DefaultCancelPath      = "/pricing"
	DefaultReturnPath      = "/account"
	DefaultMaxRetries      = 2
)

// PlanKind says how a price is charged.
type PlanKind int

const (
	// Recurring prices start subscriptions (Checkout mode subscription).
	Recurring PlanKind = iota
	// OneTime prices are paid once (Checkout mode payment) and grant
	// Plan.Credits per unit.
	OneTime
)

// String names the kind: "recurring" or "one-time".
func (k PlanKind) String() string {
	if k == OneTime {
		return "one-time"
	}
	return "recurring"
}

// Plan is one Stripe price the app sells.
type Plan struct {
	// PriceID is the Stripe price ID (price_...).
	PriceID string
	// Tier is the membership tier the price gives, such as "basic" or
	// "pro". Plans are listed from the lowest tier to the highest: a tier
	// ranks by the position of its first plan. May be empty for OneTime.
	Tier string
	// Kind is Recurring (the default) or OneTime.
	Kind PlanKind
	// Credits is what one unit of a OneTime price grants.
	Credits int64
	// LookupKey names the price by its lookup key instead of its ID
	// (the keys `billing setup` gives them): ResolveLookupKeys fills in
	// PriceID from Stripe, before New.
	LookupKey string
}

// Config configures [New]. Only SecretKey, WebhookSecrets, SiteURL and
// Plans are required.
type Config struct {
	// SecretKey is the Stripe secret or restricted key (sk_test_, sk_live_,
	// rk_test_, rk_live_). Its mode decides which events are accepted.
	SecretKey string

	// WebhookSecrets are the endpoint signing secrets (whsec_...). A
	// delivery is accepted when any of them verifies it, so that a secret
	// can be rolled: add the new one, deploy, then drop the old one.
	WebhookSecrets []string

	// SiteURL is the app's public base URL (https://example.com). The
	// success, cancel and portal return URLs derive from it.
	SiteURL string

	// WebhookURL is the public URL Stripe delivers events to
	// (https://example.com/stripe/webhook): the self-check (SelfCheck)
	// looks for its endpoint at Stripe. Optional.
	WebhookURL string

	// SuccessPath, CancelPath and ReturnPath are joined to SiteURL; they
	// default to DefaultSuccessPath, DefaultCancelPath and
	// DefaultReturnPath. SuccessPath must contain {CHECKOUT_SESSION_ID}.
	SuccessPath, CancelPath, ReturnPath string

	// Plans are the prices the app sells, lowest tier first.
	Plans []Plan

	// GraceAttempts is how many failed payment attempts a past_due
	// subscription keeps access through while Stripe still retries
	// (default DefaultGraceAttempts).
	GraceAttempts int

	// AccessLeeway is how long past a period's end access lasts, so that a
	// renewal in flight never cuts access (default DefaultAccessLeeway).
	AccessLeeway time.Duration

	// MaxWebhookBytes caps a webhook body (default DefaultMaxWebhookBytes);
	// larger bodies are answered 413.
	MaxWebhookBytes int64

	// Logger receives billing's logs and stripe-go's own (default
	// slog.Default()). Secrets are never logged.
	Logger *slog.Logger

	// Clock tells the time and waits (default SystemClock{}): billing
	// waits on it between retries of Stripe calls and before a re-fetch.
	// Tests pass the offline Stripe of package billingtest, whose clock is
	// simulated, so that they never sleep for real.
	Clock Clock

	// StripeURL points the Stripe client at another API base URL (the
	// offline Stripe of package billingtest, or stripe-mock). Empty means
	// https://api.stripe.com. A live key is refused with a StripeURL.
	StripeURL string

	// HTTPClient is the client for Stripe API calls (default: a client
	// with an 80-second timeout).
	HTTPClient *http.Client

	// Hooks delivers each change of a user's billing (activated, payment
	// failed, renewed, ...) to the app, at least once: see [Hooks]. Off
	// when Hooks.Handler is nil.
	Hooks Hooks

	// KeepCreditsOnRefund keeps a one-time purchase's credits when its
	// payment is refunded. By default a refund takes back the credits in
	// proportion to the amount refunded (rounded down): all of them for a
	// full refund.
	KeepCreditsOnRefund bool

	// SecondSubscription is what billing does when a user the app did not
	// allow a second subscription has two live ones anyway (two devices
	// paying two Checkouts at once, the Dashboard, the API): ReportSecond
	// (the default) or CancelSecond. See "One subscription per user" in
	// the README.
	SecondSubscription SecondSubscriptionPolicy

	// MeterProvider receives billing's metrics and TracerProvider its
	// spans, through OpenTelemetry's API (README, "Operating it"). Nil:
	// none, at no cost.
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider

	// MaxRetries is how many times billing retries a Stripe call that
	// failed on the network, with 409 (a concurrent request with the same
	// idempotency key) or 429, or (for reads) with a 5xx, pausing on the
	// Clock between tries (default DefaultMaxRetries). Negative means 0.
	MaxRetries int
}

// Billing is the library's entry point: checkout, portal, the webhook
// handler, and membership lookups. Make one with [New]; it is safe for
// concurrent use.
type Billing struct {
	cfg      Config
	sc       *stripe.Client
	api      stripe.Backend // sc's API backend, for the pages SyncAll reads whole
	store    Store
	users    UserResolver
	log      *slog.Logger
	now      func() time.Time
	clock    Clock
	retries  int
	livemode bool
	plans    map[string]Plan
	rank     map[string]int // tier → rank, higher is better
	site     *url.URL
	hooks    *hooks       // nil without Config.Hooks.Handler
	tel      *telemetry   // nil without Config.MeterProvider
	tracer   trace.Tracer // nil without Config.TracerProvider
	// logChanges: the Logger takes INFO lines, so each membership change
	// is logged (which needs the record before each write).
	logChanges bool
}

// New checks cfg and returns a Billing. Every error wraps ErrConfig and
// never contains a secret.
func New(cfg Config, store Store, users UserResolver) (*Billing, error) {
	if store == nil {
		return nil, fmt.Errorf("%w: nil Store", ErrConfig)
	}
	if users == nil {
		return nil, fmt.Errorf("%w: nil UserResolver", ErrConfig)
	}
	live, err := keyFor(cfg.SecretKey, cfg.StripeURL)
	if err != nil {
		return nil, err
	}
	if len(cfg.WebhookSecrets) == 0 {
		return nil, fmt.Errorf("%w: no WebhookSecrets: add the endpoint's signing secret (whsec_...)", ErrConfig)
	}
	for i, s := range cfg.WebhookSecrets {
		if !strings.HasPrefix(s, "whsec_") {
			return nil, fmt.Errorf("%w: WebhookSecrets[%d] is not a webhook signing secret (it must start with whsec_)", ErrConfig, i)
		}
	}
	site, err := url.Parse(cfg.SiteURL)
	if err != nil || (site.Scheme != "http" && site.Scheme != "https") || site.Host == "" {
		return nil, fmt.Errorf("%w: SiteURL %q is not an absolute http(s) URL", ErrConfig, cfg.SiteURL)
	}
	site.Path = strings.TrimSuffix(site.Path, "/")
	if cfg.SuccessPath == "" {
		cfg.SuccessPath = DefaultSuccessPath
	}
	if !strings.Contains(cfg.SuccessPath, "{CHECKOUT_SESSION_ID}") {
		return nil, fmt.Errorf("%w: SuccessPath %q lacks {CHECKOUT_SESSION_ID}", ErrConfig, cfg.SuccessPath)
	}
	if cfg.CancelPath == "" {
		cfg.CancelPath = DefaultCancelPath
	}
	if cfg.ReturnPath == "" {
		cfg.ReturnPath = DefaultReturnPath
	}
	plans, rank, err := checkPlans(cfg.Plans)
	if err != nil {
		return nil, err
	}
	if cfg.GraceAttempts < 0 {
		return nil, fmt.Errorf("%w: GraceAttempts %d is negative", ErrConfig, cfg.GraceAttempts)
	}
	if cfg.GraceAttempts == 0 {
		cfg.GraceAttempts = DefaultGraceAttempts
	}
	if cfg.AccessLeeway < 0 {
		return nil, fmt.Errorf("%w: AccessLeeway %v is negative", ErrConfig, cfg.AccessLeeway)
	}
	if cfg.AccessLeeway == 0 {
		cfg.AccessLeeway = DefaultAccessLeeway
	}
	if cfg.MaxWebhookBytes <= 0 {
		cfg.MaxWebhookBytes = DefaultMaxWebhookBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 80 * time.Second}
	}
	if cfg.SecondSubscription != ReportSecond && cfg.SecondSubscription != CancelSecond {
		return nil, fmt.Errorf("%w: unknown SecondSubscription %d", ErrConfig, cfg.SecondSubscription)
	}
	hooks, err := newHooks(cfg.Hooks, store, cfg.SecondSubscription == CancelSecond)
	if err != nil {
		return nil, err
	}
	retries := DefaultMaxRetries
	if cfg.MaxRetries != 0 {
		retries = max(cfg.MaxRetries, 0)
	}
	// billing's own transport logs, measures and traces each Stripe
	// request (observe.go); stripe-go's logger is silenced.
	hc := *cfg.HTTPClient
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	tr := &transport{base: base}
	hc.Transport = tr
	b := &Billing{
		cfg:      cfg,
		store:    store,
		users:    users,
		log:      cfg.Logger.With("component", "billing"),
		now:      cfg.Clock.Now,
		clock:    cfg.Clock,
		retries:  retries,
		livemode: live,
		plans:    plans,
		rank:     rank,
		site:     site,
		hooks:    hooks,
	}
	b.sc, b.api = newStripeClient(cfg.SecretKey, cfg.StripeURL, &hc)
	tr.b = b
	b.logChanges = b.log.Enabled(context.Background(), slog.LevelInfo)
	var box Outbox
	if hooks != nil {
		box = hooks.box
	}
	if b.tel, err = newTelemetry(cfg.MeterProvider, store, box); err != nil {
		return nil, err
	}
	if cfg.TracerProvider != nil {
		b.tracer = cfg.TracerProvider.Tracer(instrumentation)
	}
	return b, nil
}

// newStripeClient is billing's stripe-go client: stripe-go's logger
// silenced (billing's transport logs each request) and its retries off
// (billing retries on its Clock, stripecall.go: stripe-go's own sleep for
// real and ignore the context's deadline).
func newStripeClient(key, stripeURL string, hc *http.Client) (*stripe.Client, stripe.Backend) {
	bc := &stripe.BackendConfig{
		HTTPClient:        hc,
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
		MaxNetworkRetries: stripe.Int64(0),
	}
	if stripeURL != "" {
		bc.URL = stripe.String(strings.TrimSuffix(stripeURL, "/"))
	}
	backends := stripe.NewBackendsWithConfig(bc)
	return stripe.NewClient(key, stripe.WithBackends(backends)), backends.API
}

// keyFor checks a secret key's shape and that a live one goes to Stripe
// itself (no StripeURL), and says whether it is live. The error never
// contains the key.
func keyFor(key, stripeURL string) (live bool, err error) {
	if live, err = keyMode(key); err != nil {
		return false, err
	}
	if live && stripeURL != "" {
		return false, fmt.Errorf("%w: a live secret key must not be sent to StripeURL %q; use a test key (sk_test_...) with the offline Stripe or stripe-mock", ErrConfig, stripeURL)
	}
	return live, nil
}

// keyMode checks a secret key's shape and says whether it is live. The
// error never contains the key.
func keyMode(key string) (live bool, err error) {
	switch {
	case key == "":
		return false, fmt.Errorf("%w: SecretKey is empty: set it to your Stripe secret key (sk_test_... or sk_live_...)", ErrConfig)
	case strings.HasPrefix(key, "pk_"):
		return false, fmt.Errorf("%w: SecretKey is a publishable key (pk_...): use the secret key (sk_...) from the same Dashboard page", ErrConfig)
	case strings.HasPrefix(key, "whsec_"):
		return false, fmt.Errorf("%w: SecretKey is a webhook signing secret (whsec_...): put it in WebhookSecrets and use the API secret key (sk_...)", ErrConfig)
	case strings.HasPrefix(key, "sk_live_"), strings.HasPrefix(key, "rk_live_"):
		return true, nil
	case strings.HasPrefix(key, "sk_test_"), strings.HasPrefix(key, "rk_test_"):
		return false, nil
	}
	return false, fmt.Errorf("%w: SecretKey is not a Stripe secret key (it must start with sk_test_, sk_live_, rk_test_ or rk_live_)", ErrConfig)
}

func checkPlans(ps []Plan) (map[string]Plan, map[string]int, error) {
	if len(ps) == 0 {
		return nil, nil, fmt.Errorf("%w: no Plans: list the Stripe prices the app sells", ErrConfig)
	}
	plans := make(map[string]Plan, len(ps))
	rank := make(map[string]int)
	for i, p := range ps {
		switch {
		case p.PriceID == "" && p.LookupKey != "":
			return nil, nil, fmt.Errorf("%w: Plans[%d] names its price by the lookup key %q: call ResolveLookupKeys before New", ErrConfig, i, p.LookupKey)
		case !strings.HasPrefix(p.PriceID, "price_"):
			return nil, nil, fmt.Errorf("%w: Plans[%d].PriceID %q is not a Stripe price ID (price_...)", ErrConfig, i, p.PriceID)
		case p.Kind != Recurring && p.Kind != OneTime:
			return nil, nil, fmt.Errorf("%w: Plans[%d] (%s) has an unknown Kind %d", ErrConfig, i, p.PriceID, p.Kind)
		case p.Kind == Recurring && p.Tier == "":
			return nil, nil, fmt.Errorf("%w: Plans[%d] (%s) is recurring but has no Tier", ErrConfig, i, p.PriceID)
		case p.Credits < 0:
			return nil, nil, fmt.Errorf("%w: Plans[%d] (%s) has negative Credits", ErrConfig, i, p.PriceID)
		}
		if _, dup := plans[p.PriceID]; dup {
			return nil, nil, fmt.Errorf("%w: price %s is listed twice in Plans", ErrConfig, p.PriceID)
		}
		plans[p.PriceID] = p
		if _, ok := rank[p.Tier]; !ok && p.Tier != "" {
			rank[p.Tier] = len(rank) + 1
		}
	}
	return plans, rank, nil
}

// Plan returns the configured plan of a price, or an error wrapping
// ErrUnknownPrice.
func (b *Billing) Plan(priceID string) (Plan, error) {
	p, ok := b.plans[priceID]
	if !ok {
		return Plan{}, fmt.Errorf("%w: %q", ErrUnknownPrice, priceID)
	}
	return p, nil
}

// Livemode reports whether the secret key is a live-mode key.
func (b *Billing) Livemode() bool { return b.livemode }

// siteURL joins a configured path (which may carry a query) to SiteURL.
func (b *Billing) siteURL(path string) string {
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		return path
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return b.site.String() + path
}

// Membership returns the user's membership now. A user with nothing
// stored gets the zero Membership (status none), not an error.
func (b *Billing) Membership(ctx context.Context, userID string) (Membership, error) {
	if userID == "" {
		return Membership{}, fmt.Errorf("%w: Membership: empty user ID", ErrInvalidArgument)
	}
	f, err := b.store.Facts(ctx, userID)
	if err != nil {
		return Membership{}, fmt.Errorf("billing: read facts of user %q: %w", userID, err)
	}
	return b.policy().compute(f, b.now()), nil
}
