package billing

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/stripe/stripe-go/v82"
)

// This file is the start-up self-check: what billing can learn from
// Stripe, with the app's own key, about its configuration: the key
// works and has the expected mode, each plan's price exists, is active
// and is of the configured kind, and the webhook endpoint for
// Config.WebhookURL exists, is enabled, at billing's API version and
// subscribed to every event type billing applies. It only reads; the
// CLI's doctor prints the same report.

// Severity says how much a [Finding] matters.
type Severity string

// The severities of a [Finding].
const (
	// SeverityError: billing will misbehave (checkouts fail, events are
	// refused or never sent) until it is fixed.
	SeverityError Severity = "error"
	// SeverityWarning: something could not be checked (the key may not
	// read it), or works but is fragile.
	SeverityWarning Severity = "warning"
)

// Finding is one thing [Billing.SelfCheck] found wrong: what, and how to
// fix it. It never holds a secret.
type Finding struct {
	Severity Severity `json:"severity"`
	// Code names the check, stably, for programs: key_rejected,
	// key_mode, prices_unreadable, price_missing, price_inactive,
	// product_inactive, price_kind, webhook_url_unset,
	// webhook_url_invalid, endpoints_unreadable, endpoint_missing,
	// endpoint_disabled, endpoint_version, endpoint_events,
	// endpoint_duplicate.
	Code string `json:"code"`
	// Subject is what it is about: a price ID, an endpoint ID, a URL
	// (empty for the key).
	Subject string `json:"subject,omitempty"`
	// Problem says what is wrong, for people.
	Problem string `json:"problem"`
	// Fix says what to do: the click in the Dashboard, or the Stripe
	// CLI command.
	Fix string `json:"fix"`
}

// String is the finding on one line: "error price_missing price_pro:
// <problem>; fix: <fix>".
func (f Finding) String() string {
	s := string(f.Severity) + " " + f.Code
	if f.Subject != "" {
		s += " " + f.Subject
	}
	return s + ": " + f.Problem + "; fix: " + f.Fix
}

// PlanCheck is what Stripe says of a configured plan's price.
type PlanCheck struct {
	PriceID string   `json:"price_id"`
	Kind    PlanKind `json:"-"` // as configured
	// Found is false when Stripe has no such price (or it could not be
	// read); the other fields are then zero.
	Found  bool `json:"found"`
	Active bool `json:"active"`
	// ProductActive is whether the price's product is active (true
	// when Stripe did not expand it).
	ProductActive bool `json:"product_active"`
	// Type is Stripe's: "recurring" or "one_time".
	Type string `json:"type,omitempty"`
	// Interval and IntervalCount are a recurring price's: "month" and 1
	// bill monthly.
	Interval      string `json:"interval,omitempty"`
	IntervalCount int64  `json:"interval_count,omitempty"`
	Currency      string `json:"currency,omitempty"`
	UnitAmount    int64  `json:"unit_amount,omitempty"`
	Livemode      bool   `json:"livemode"`
}

// EndpointCheck is one webhook endpoint delivering to Config.WebhookURL.
type EndpointCheck struct {
	ID  string `json:"id"`
	URL string `json:"url"`
	// Enabled is whether Stripe sends it events (status "enabled").
	Enabled bool `json:"enabled"`
	// APIVersion is the version its events are rendered at; empty when
	// it follows the account's default.
	APIVersion    string   `json:"api_version"`
	EnabledEvents []string `json:"enabled_events"`
	// MissingEvents are the event types billing applies that it does not
	// send.
	MissingEvents []string `json:"missing_events,omitempty"`
}

// SelfCheckReport is what [Billing.SelfCheck] found.
type SelfCheckReport struct {
	// Livemode is the key's mode: true for a live key.
	Livemode bool `json:"livemode"`
	// KeyOK is whether Stripe accepted the key. Without it nothing else
	// was checked.
	KeyOK bool `json:"key_ok"`
	// Plans are the configured plans' prices, in Config.Plans' order
	// (nil when the key may not read prices).
	Plans []PlanCheck `json:"plans"`
	// WebhookURL is Config.WebhookURL.
	WebhookURL string `json:"webhook_url,omitempty"`
	// Endpoints are the webhook endpoints delivering to WebhookURL (nil
	// when there is none, or they could not be listed).
	Endpoints []EndpointCheck `json:"endpoints"`
	// Findings are what is wrong, in the order checked. None: all is
	// well.
	Findings []Finding `json:"findings"`
}

// OK reports whether no finding is an error (warnings may remain).
func (r SelfCheckReport) OK() bool {
	for _, f := range r.Findings {
		if f.Severity == SeverityError {
			return false
		}
	}
	return true
}

// SelfCheck checks, with the app's key and read requests only, what
// billing needs from the Stripe account:
//   - the key works, and the objects it reads are of its mode;
//   - each of Config.Plans' prices exists, is active, its product is
//     active, and it is recurring for a Recurring plan (its interval is
//     in the report) or one-time for a OneTime plan;
//   - a webhook endpoint delivers to Config.WebhookURL, enabled, at
//     billing's API version (stripe.APIVersion), subscribed to every
//     event type billing applies ("*" covers them).
//
// What is wrong is a [Finding] in the report, with its fix: a key Stripe
// refuses, and also a restricted key that may not read prices or webhook
// endpoints (a warning: that part is not checked). The error is for a
// check that could not be made: Stripe unreachable, or failing after
// billing's retries, or ctx done; the report then holds what was checked
// before. Call it at start-up (log the findings, or refuse to start
// unless OK) and from the CLI's doctor. It costs one request per plan
// and one per page of 100 webhook endpoints, plus one.
func (b *Billing) SelfCheck(ctx context.Context) (SelfCheckReport, error) {
	r := SelfCheckReport{Livemode: b.livemode, WebhookURL: b.cfg.WebhookURL}
	ok, err := b.checkKey(ctx, &r)
	if err != nil || !ok {
		return r, err
	}
	if err := b.checkPlans(ctx, &r); err != nil {
		return r, err
	}
	if err := b.checkEndpoint(ctx, &r); err != nil {
		return r, err
	}
	return r, nil
}

// stripeStatus is the HTTP status of a failed Stripe call, 0 for a
// network failure.
func stripeStatus(err error) int {
	var se *stripe.Error
	if errors.As(err, &se) {
		return se.HTTPStatusCode
	}
	return 0
}

// denied reports whether a Stripe call was refused for the key's
// permissions (a restricted key).
func denied(err error) bool {
	s := stripeStatus(err)
	return s == http.StatusUnauthorized || s == http.StatusForbidden
}

func (r *SelfCheckReport) add(sev Severity, code, subject, problem, fix string) {
	r.Findings = append(r.Findings, Finding{Severity: sev, Code: code, Subject: subject, Problem: problem, Fix: fix})
}

func modeName(live bool) string {
	if live {
		return "live"
	}
	return "test"
}

// checkMode adds a key_mode finding (once) when an object is not of the
// key's mode.
func (b *Billing) checkMode(r *SelfCheckReport, what string, livemode bool) {
	if livemode == b.livemode || slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Code == "key_mode" }) {
		return
	}
	r.add(SeverityError, "key_mode", "",
		fmt.Sprintf("the SecretKey is a %s-mode key but Stripe answered with %s-mode objects (%s): something between billing and Stripe (StripeURL, a proxy) serves the other mode", modeName(b.livemode), modeName(livemode), what),
		"point StripeURL (or the proxy) at the Stripe account of the key's mode, or use that mode's key (Dashboard → Developers → API keys)")
}

// checkKey lists one price: any answer but 401 shows the key works, and
// the price's livemode the mode it reads.
func (b *Billing) checkKey(ctx context.Context, r *SelfCheckReport) (ok bool, err error) {
	var sample *stripe.Price
	err = b.call(ctx, read, func(ctx context.Context) error {
		p := &stripe.PriceListParams{}
		p.Limit = stripe.Int64(1)
		for price, err := range b.sc.V1Prices.List(ctx, p) {
			if err != nil {
				return err
			}
			sample = price
			break
		}
		return nil
	})
	switch {
	case stripeStatus(err) == http.StatusUnauthorized:
		r.add(SeverityError, "key_rejected", "",
			fmt.Sprintf("Stripe refused the %s-mode SecretKey (401): it is mistyped, rolled or revoked, or belongs to no account", modeName(b.livemode)),
			"copy the secret key from Dashboard → Developers → API keys (or a restricted key made there) into Config.SecretKey")
		return false, nil
	case stripeStatus(err) == http.StatusForbidden:
		r.KeyOK = true // authenticated: the key may not read prices
		return true, nil
	case err != nil:
		return false, newStripeError("self-check: list prices", err)
	}
	r.KeyOK = true
	if sample != nil {
		b.checkMode(r, "price "+sample.ID, sample.Livemode)
	}
	return true, nil
}

// checkPlans reads each configured price.
func (b *Billing) checkPlans(ctx context.Context, r *SelfCheckReport) error {
	const dashboard = "Dashboard → Product catalog"
	for _, plan := range b.cfg.Plans {
		var price *stripe.Price
		err := b.call(ctx, read, func(ctx context.Context) (err error) {
			p := &stripe.PriceRetrieveParams{}
			p.AddExpand("product")
			price, err = b.sc.V1Prices.Retrieve(ctx, plan.PriceID, p)
			return err
		})
		if denied(err) {
			r.Plans = nil
			r.add(SeverityWarning, "prices_unreadable", "",
				"the key may not read prices (a restricted key): the plans were not checked",
				"give the restricted key Read access to Prices and Products (Dashboard → Developers → API keys → the key → Edit), or check each price in "+dashboard)
			return nil
		}
		pc := PlanCheck{PriceID: plan.PriceID, Kind: plan.Kind}
		if stripeStatus(err) == http.StatusNotFound {
			r.Plans = append(r.Plans, pc)
			b.priceMissing(r, plan, err)
			continue
		}
		if err != nil {
			return newStripeError("self-check: retrieve price "+plan.PriceID, err)
		}
		pc.Found, pc.Active, pc.Type, pc.Livemode = true, price.Active, string(price.Type), price.Livemode
		pc.Currency, pc.UnitAmount = string(price.Currency), price.UnitAmount
		expanded := price.Product != nil && price.Product.Object == "product"
		pc.ProductActive = !expanded || price.Product.Active
		if price.Recurring != nil {
			pc.Interval, pc.IntervalCount = string(price.Recurring.Interval), price.Recurring.IntervalCount
		}
		r.Plans = append(r.Plans, pc)
		b.checkMode(r, "price "+price.ID, price.Livemode)
		if !price.Active {
			r.add(SeverityError, "price_inactive", plan.PriceID,
				"the price is archived (inactive): Checkout refuses it",
				"unarchive it ("+dashboard+" → the product → the price → ⋯ → Unarchive, or `stripe prices update "+plan.PriceID+" -d active=true`), or configure the price that replaced it")
		}
		if !pc.ProductActive {
			r.add(SeverityError, "product_inactive", plan.PriceID,
				fmt.Sprintf("the price's product %s is archived: Checkout refuses its prices", price.Product.ID),
				"unarchive the product ("+dashboard+" → the product → ⋯ → Unarchive, or `stripe products update "+price.Product.ID+" -d active=true`)")
		}
		recurring := price.Type == stripe.PriceTypeRecurring
		switch {
		case plan.Kind == Recurring && !recurring:
			r.add(SeverityError, "price_kind", plan.PriceID,
				"the plan is Recurring (a subscription) but the price is one-time: Checkout in subscription mode refuses it",
				"configure the plan with Kind: billing.OneTime, or create a recurring price ("+dashboard+" → the product → Add another price → Recurring) and configure its ID")
		case plan.Kind == OneTime && recurring:
			r.add(SeverityError, "price_kind", plan.PriceID,
				fmt.Sprintf("the plan is OneTime but the price is recurring (every %d %s): Checkout in payment mode refuses it", pc.IntervalCount, pc.Interval),
				"configure the plan as Recurring with a Tier, or create a one-time price ("+dashboard+" → the product → Add another price → One-off) and configure its ID")
		}
	}
	return nil
}

// priceMissing adds the finding of a price Stripe does not have, telling
// apart the price of the other mode (Stripe says "a similar object
// exists in live mode").
func (b *Billing) priceMissing(r *SelfCheckReport, plan Plan, err error) {
	var se *stripe.Error
	errors.As(err, &se)
	other := modeName(!b.livemode)
	if se != nil && strings.Contains(se.Msg, "exists in "+other+" mode") {
		r.add(SeverityError, "price_missing", plan.PriceID,
			fmt.Sprintf("the price exists in %s mode only, and the SecretKey is a %s-mode key", other, modeName(b.livemode)),
			fmt.Sprintf("configure the %s-mode price's ID (Dashboard, %s mode → Product catalog; `stripe prices list`), or copy the product to %s mode (the product → ⋯ → Copy to %s mode)", modeName(b.livemode), modeName(b.livemode), modeName(b.livemode), modeName(b.livemode)))
		return
	}
	r.add(SeverityError, "price_missing", plan.PriceID,
		fmt.Sprintf("Stripe has no such price in %s mode: Checkout for it fails", modeName(b.livemode)),
		"create it (Dashboard → Product catalog → Add product) and configure its ID, or remove the plan from Config.Plans")
}

// checkEndpoint looks for the endpoints delivering to Config.WebhookURL.
func (b *Billing) checkEndpoint(ctx context.Context, r *SelfCheckReport) error {
	const dashboard = "Dashboard → Developers → Webhooks"
	if b.cfg.WebhookURL == "" {
		r.add(SeverityWarning, "webhook_url_unset", "",
			"Config.WebhookURL is not set: the webhook endpoint was not checked",
			"set Config.WebhookURL to the public URL the webhook handler is mounted at (https://example.com/stripe/webhook)")
		return nil
	}
	want, ok := endpointKey(b.cfg.WebhookURL)
	if !ok {
		r.add(SeverityError, "webhook_url_invalid", b.cfg.WebhookURL,
			"Config.WebhookURL is not an absolute http(s) URL",
			"set it to the public URL the webhook handler is mounted at (https://example.com/stripe/webhook)")
		return nil
	}
	if b.livemode && strings.HasPrefix(want, "http:") {
		r.add(SeverityError, "webhook_url_invalid", b.cfg.WebhookURL,
			"a live-mode endpoint must use HTTPS",
			"serve the webhook handler over HTTPS and set Config.WebhookURL to its https:// URL")
	}
	page := func(ctx context.Context, after string) iter.Seq2[*stripe.WebhookEndpoint, error] {
		p := &stripe.WebhookEndpointListParams{}
		p.Limit = stripe.Int64(100)
		startAfter(&p.ListParams, after)
		return iter.Seq2[*stripe.WebhookEndpoint, error](b.sc.V1WebhookEndpoints.List(ctx, p))
	}
	var matched []*stripe.WebhookEndpoint
	var sameHost []string
	for ep, err := range list(ctx, b, page, func(ep *stripe.WebhookEndpoint) string { return ep.ID }) {
		if denied(err) {
			r.add(SeverityWarning, "endpoints_unreadable", b.cfg.WebhookURL,
				"the key may not read webhook endpoints (a restricted key): the endpoint was not checked",
				"give the restricted key Read access to Webhook Endpoints (Dashboard → Developers → API keys → the key → Edit), or check the endpoint in "+dashboard+": enabled, API version "+stripe.APIVersion+", listening to "+strings.Join(appliedTypes, ", "))
			return nil
		}
		if err != nil {
			return newStripeError("self-check: list webhook endpoints", err)
		}
		key, _ := endpointKey(ep.URL)
		switch {
		case key == want:
			matched = append(matched, ep)
		case sameOrigin(key, want) && len(sameHost) < 5:
			sameHost = append(sameHost, ep.URL+" ("+ep.ID+")")
		}
	}
	if len(matched) == 0 {
		problem := "no webhook endpoint delivers to this URL: Stripe sends billing no event"
		if len(sameHost) > 0 {
			problem += "; endpoints on the same host deliver to " + strings.Join(sameHost, ", ") + ": is Config.WebhookURL right?"
		}
		r.add(SeverityError, "endpoint_missing", b.cfg.WebhookURL, problem,
			fmt.Sprintf("create it (%s → Add endpoint: this URL, API version %s, the events %s) and add its signing secret (whsec_...) to Config.WebhookSecrets; or `%s`",
				dashboard, stripe.APIVersion, strings.Join(appliedTypes, ", "), b.createEndpointCommand()))
		return nil
	}
	// Disabled endpoints beside an enabled one are only noise: check
	// the enabled ones then.
	enabled := slices.ContainsFunc(matched, func(ep *stripe.WebhookEndpoint) bool { return ep.Status == "enabled" })
	live := 0
	for _, ep := range matched {
		ec := EndpointCheck{ID: ep.ID, URL: ep.URL, Enabled: ep.Status == "enabled", APIVersion: ep.APIVersion,
			EnabledEvents: slices.Clone(ep.EnabledEvents), MissingEvents: missingEvents(ep.EnabledEvents)}
		r.Endpoints = append(r.Endpoints, ec)
		if enabled && !ec.Enabled {
			continue
		}
		b.checkMode(r, "webhook endpoint "+ep.ID, ep.Livemode)
		if !ec.Enabled {
			r.add(SeverityError, "endpoint_disabled", ep.ID,
				fmt.Sprintf("the endpoint for %s is disabled (status %q): Stripe sends it no event", ep.URL, ep.Status),
				fmt.Sprintf("enable it (%s → the endpoint → ⋯ → Enable), or `stripe webhook_endpoints update %s -d disabled=false%s`", dashboard, ep.ID, b.liveFlag()))
		} else {
			live++
		}
		b.checkVersion(r, ep)
		if len(ec.MissingEvents) > 0 {
			all := append(slices.Clone(ep.EnabledEvents), ec.MissingEvents...)
			r.add(SeverityError, "endpoint_events", ep.ID,
				"the endpoint does not send "+strings.Join(ec.MissingEvents, ", ")+", which billing applies: those changes are missed until CatchUp or Sync",
				fmt.Sprintf("add them (%s → the endpoint → ⋯ → Update details → Select events), or `stripe webhook_endpoints update %s%s%s` (the update replaces the list: this is all of them)",
					dashboard, ep.ID, eventFlags(all), b.liveFlag()))
		}
	}
	if live > 1 {
		r.add(SeverityWarning, "endpoint_duplicate", b.cfg.WebhookURL,
			fmt.Sprintf("%d enabled endpoints deliver to this URL: each event comes %d times (billing applies it once), each signed with its own endpoint's secret, which Config.WebhookSecrets must all hold", live, live),
			"delete the extra endpoints ("+dashboard+" → the endpoint → ⋯ → Delete), keeping the one whose secret is configured")
	}
	return nil
}

// checkVersion checks an endpoint's API version against billing's: an
// event of another release train is refused (400), another version of
// the same train is accepted.
func (b *Billing) checkVersion(r *SelfCheckReport, ep *stripe.WebhookEndpoint) {
	if ep.APIVersion == stripe.APIVersion {
		return
	}
	fix := fmt.Sprintf("an endpoint's API version is fixed when it is created: create a new one at %s (Dashboard → Developers → Webhooks → Add endpoint, or `%s`), add its signing secret to Config.WebhookSecrets, then delete %s",
		stripe.APIVersion, b.createEndpointCommand(), ep.ID)
	switch {
	case ep.APIVersion == "":
		r.add(SeverityWarning, "endpoint_version", ep.ID,
			fmt.Sprintf("the endpoint follows the account's default API version: billing refuses its events (400) whenever that default is not of the %s release train (%s)", train(stripe.APIVersion), stripe.APIVersion), fix)
	case train(ep.APIVersion) != train(stripe.APIVersion):
		r.add(SeverityError, "endpoint_version", ep.ID,
			fmt.Sprintf("the endpoint's API version is %s, not of billing's release train (%s): billing refuses every event it sends (400)", ep.APIVersion, stripe.APIVersion), fix)
	default:
		r.add(SeverityWarning, "endpoint_version", ep.ID,
			fmt.Sprintf("the endpoint's API version is %s: billing accepts its events (same release train) but is built for %s", ep.APIVersion, stripe.APIVersion), fix)
	}
}

// missingEvents are the types billing applies that enabled does not
// select ("*" selects all).
func missingEvents(enabled []string) []string {
	if slices.Contains(enabled, "*") {
		return nil
	}
	var out []string
	for _, t := range appliedTypes {
		if !slices.Contains(enabled, t) {
			out = append(out, t)
		}
	}
	return out
}

// endpointKey normalizes a URL for comparison: scheme and host in lower
// case, the scheme's default port and a trailing slash dropped.
func endpointKey(raw string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", false
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	host = strings.TrimSuffix(host, map[string]string{"http": ":80", "https": ":443"}[scheme])
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	key := scheme + "://" + host + path
	if u.RawQuery != "" {
		key += "?" + u.RawQuery
	}
	return key, true
}

// sameOrigin reports whether two endpoint keys share scheme and host.
func sameOrigin(a, b string) bool {
	origin := func(k string) string {
		rest, _ := strings.CutPrefix(k, "https://")
		if rest == k {
			rest, _ = strings.CutPrefix(k, "http://")
		}
		host, _, _ := strings.Cut(rest, "/")
		host, _, _ = strings.Cut(host, "?")
		return host
	}
	return a != "" && origin(a) == origin(b)
}

// createEndpointCommand is the Stripe CLI command that creates the
// endpoint billing needs.
func (b *Billing) createEndpointCommand() string {
	return "stripe webhook_endpoints create -d url=" + b.cfg.WebhookURL + " -d api_version=" + stripe.APIVersion + eventFlags(appliedTypes) + b.liveFlag()
}

func eventFlags(types []string) string {
	var s strings.Builder
	for _, t := range types {
		s.WriteString(` -d "enabled_events[]=` + t + `"`)
	}
	return s.String()
}

// liveFlag is the Stripe CLI's flag for a live-mode request.
func (b *Billing) liveFlag() string {
	if b.livemode {
		return " --live"
	}
	return ""
}
