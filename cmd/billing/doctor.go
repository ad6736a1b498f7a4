package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/memstore"
	"github.com/gobilling/billing/plansfile"
)

// The doctor: billing's own SelfCheck (key mode, prices, webhook endpoint)
// plus what the CLI checks beside it (the plans file's price IDs and
// intervals, events Stripe has not delivered, the Customer Portal
// configuration, Checkout sessions billing cannot link, the app's health
// URL). It only reads.

type doctorOpts struct {
	file, webhookURL, keyFile, apiBase string
	portalConf, healthURL              string
	live                               bool
	sessions                           int64
}

// doctorReport is what --json prints.
type doctorReport struct {
	File       string `json:"file"`
	Livemode   bool   `json:"livemode"`
	KeyOK      bool   `json:"key_ok"`
	WebhookURL string `json:"webhook_url,omitempty"`
	// Plans and Endpoints are SelfCheck's.
	Plans     []billing.PlanCheck     `json:"plans"`
	Endpoints []billing.EndpointCheck `json:"endpoints"`
	// PortalConfiguration is the configuration checked, if any.
	PortalConfiguration string `json:"portal_configuration,omitempty"`
	// PendingEvents counts events older than an hour still waiting for a
	// successful delivery (up to the first 100).
	PendingEvents int `json:"pending_events"`
	// SessionsChecked is how many recent Checkout Sessions were read.
	SessionsChecked int    `json:"sessions_checked"`
	HealthURL       string `json:"health_url,omitempty"`
	// OK is true when no finding is an error (exit 0).
	OK       bool              `json:"ok"`
	Findings []billing.Finding `json:"findings"`
}

// Doctor finding codes, beside SelfCheck's.
const (
	codePlanUnset         = "plan_unset"
	codePriceMismatch     = "price_mismatch"
	codeEventsPending     = "events_pending"
	codeEventsUnreadable  = "events_unreadable"
	codePortalMissing     = "portal_missing"
	codePortalInactive    = "portal_inactive"
	codePortalFeature     = "portal_feature"
	codePortalUnreadable  = "portal_unreadable"
	codeCheckoutUnlinked  = "checkout_unlinked"
	codeSessionsUnreadble = "sessions_unreadable"
	codeHealthFailed      = "health_failed"
	codeHealthDegraded    = "health_degraded"
	codeSelfCheckSkipped  = "selfcheck_skipped"
)

// pendingAge is how old an undelivered event must be to be reported.
const pendingAge = time.Hour

func (a *app) doctorCmd() *cobra.Command {
	o := doctorOpts{}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the Stripe account against the plans file and the app; print each problem and its fix",
		Long: `doctor checks, with read requests only, what billing needs from Stripe and
prints each finding (severity, code, subject, problem, fix):

  the key works, and its mode matches the prices' and the endpoint's;
  each plan of the plans file has a price ID (else: run billing setup), the
    price exists, is active, its product too, and it has the file's type,
    interval, amount and currency;
  an enabled webhook endpoint for --webhook-url, HTTPS in live mode, at API
    version ` + pinnedVersion + `, subscribed to every event type billing applies
    (the missing ones are listed);
  events older than an hour that Stripe still has to deliver (a heuristic
    for failing deliveries);
  the Customer Portal configuration (--portal-configuration, or the one
    billing setup keeps, or the account's default): payment method updates,
    cancellation at period end, switching between the plans' prices, invoice
    history;
  recent Checkout Sessions made without billing's client_reference_id and
    metadata (made outside billing: their payments are not linked to a user);
  --health-url answers 200 with billing's health JSON status "ok".

doctor never verifies webhook signatures: it needs no signing secret.
The key comes from STRIPE_SECRET_KEY or --key-file, never from a flag; a
live key needs --live.

Exit codes: 0 no error finding (warnings may remain), 1 an error finding
or a failure, 2 usage.`,
		Example: `  STRIPE_SECRET_KEY=sk_test_... billing doctor --webhook-url https://app.example/stripe/webhook
  billing doctor --live --key-file /run/secrets/stripe --webhook-url https://app.example/stripe/webhook \
      --health-url https://app.example/healthz --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runDoctor(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", "billing.yaml", "the plans file")
	f.StringVar(&o.webhookURL, "webhook-url", "", "the app's webhook URL (Config.WebhookURL; empty: the endpoint is not checked)")
	f.StringVar(&o.portalConf, "portal-configuration", "", "the Customer Portal configuration the app uses (PortalOptions.Configuration)")
	f.StringVar(&o.healthURL, "health-url", "", "the app's health URL (billing's HealthHandler), checked when given")
	f.Int64Var(&o.sessions, "sessions", 100, "how many recent Checkout Sessions to check for billing's linkage (0: none)")
	f.StringVar(&o.keyFile, "key-file", "", "read the secret key from this file instead of STRIPE_SECRET_KEY")
	f.StringVar(&o.apiBase, "api-base", "", "Stripe's API base URL (tests: billingtest's URL)")
	f.BoolVar(&o.live, "live", false, "allow a live key")
	return cmd
}

// doctorRun is one run's state.
type doctorRun struct {
	o    doctorOpts
	ctx  context.Context
	sc   *stripe.Client
	file *plansfile.File
	rep  *doctorReport
}

func (r *doctorRun) add(sev billing.Severity, code, subject, problem, fix string) {
	r.rep.Findings = append(r.rep.Findings, billing.Finding{Severity: sev, Code: code, Subject: subject, Problem: problem, Fix: fix})
}

// denied reports whether a Stripe call was refused for the key's
// permissions (a restricted key).
func denied(err error) bool {
	var se *stripe.Error
	return errors.As(err, &se) && (se.HTTPStatusCode == http.StatusUnauthorized || se.HTTPStatusCode == http.StatusForbidden)
}

func (a *app) runDoctor(ctx context.Context, o doctorOpts) error {
	if ctx == nil {
		ctx = context.Background()
	}
	key, live, err := a.secretKey(setupOpts{keyFile: o.keyFile, live: o.live})
	if err != nil {
		return err
	}
	if o.webhookURL != "" && !strings.HasPrefix(o.webhookURL, "https://") && !strings.HasPrefix(o.webhookURL, "http://") {
		return usagef("--webhook-url %q: want an http(s) URL", o.webhookURL)
	}
	if o.healthURL != "" && !strings.HasPrefix(o.healthURL, "https://") && !strings.HasPrefix(o.healthURL, "http://") {
		return usagef("--health-url %q: want an http(s) URL", o.healthURL)
	}
	if o.sessions < 0 || o.sessions > 1000 {
		return usagef("--sessions %d: want 0 to 1000", o.sessions)
	}
	plans, f, err := plansfile.Load(o.file)
	if err != nil {
		return err
	}
	cfg := &stripe.BackendConfig{LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
		MaxNetworkRetries: stripe.Int64(2)}
	if o.apiBase != "" {
		cfg.URL = stripe.String(o.apiBase)
	}
	r := &doctorRun{o: o, ctx: ctx, file: f,
		sc:  stripe.NewClient(key, stripe.WithBackends(stripe.NewBackendsWithConfig(cfg))),
		rep: &doctorReport{File: o.file, Livemode: live, WebhookURL: o.webhookURL, HealthURL: o.healthURL, Findings: []billing.Finding{}}}

	for _, lk := range f.Missing() {
		r.add(billing.SeverityError, codePlanUnset, lk,
			"the plan has no price_id in "+o.file+": the app cannot sell it",
			"run `billing setup -f "+o.file+"`, which creates the price and writes its ID into the file")
	}
	keyOK, err := r.selfCheck(key, plans)
	if err != nil {
		return err
	}
	if keyOK {
		for _, check := range []func() error{r.pendingEvents, r.portal, r.checkouts} {
			if err := check(); err != nil {
				return err
			}
		}
	}
	if o.healthURL != "" {
		r.health()
	}
	rep := r.rep
	rep.OK = !slices.ContainsFunc(rep.Findings, func(f billing.Finding) bool { return f.Severity == billing.SeverityError })
	if a.json {
		if err := a.printJSON(rep); err != nil {
			return err
		}
	} else {
		a.printDoctor(rep)
	}
	if !rep.OK {
		n := 0
		for _, f := range rep.Findings {
			if f.Severity == billing.SeverityError {
				n++
			}
		}
		a.json = false // stdout already holds the one JSON document
		return fmt.Errorf("%d error finding(s): see above", n)
	}
	return nil
}

// selfCheck runs billing's SelfCheck with a Billing built from the plans
// file. WebhookSecrets and SiteURL are placeholders: doctor verifies no
// signature and makes no Checkout.
func (r *doctorRun) selfCheck(key string, plans []billing.Plan) (keyOK bool, err error) {
	if len(plans) == 0 {
		r.add(billing.SeverityWarning, codeSelfCheckSkipped, "",
			"no plan has a price ID: the key, the prices and the webhook endpoint were not checked",
			"run `billing setup -f "+r.o.file+"`, then `billing doctor` again")
		return false, nil
	}
	site := "https://doctor.invalid"
	if u, err := url.Parse(r.o.webhookURL); err == nil && u.Host != "" {
		site = u.Scheme + "://" + u.Host
	}
	b, err := billing.New(billing.Config{SecretKey: key, WebhookSecrets: []string{"whsec_doctor_verifies_no_signature"},
		SiteURL: site, WebhookURL: r.o.webhookURL, StripeURL: r.o.apiBase, Plans: plans,
		Logger: slog.New(slog.DiscardHandler)},
		memstore.New(), billing.UserResolverFunc(func(context.Context, string) (billing.User, error) { return billing.User{}, nil }))
	if err != nil {
		return false, err
	}
	sr, err := b.SelfCheck(r.ctx)
	if err != nil {
		return false, err
	}
	r.rep.KeyOK, r.rep.Plans, r.rep.Endpoints = sr.KeyOK, sr.Plans, sr.Endpoints
	if r.rep.Plans == nil {
		r.rep.Plans = []billing.PlanCheck{}
	}
	if r.rep.Endpoints == nil {
		r.rep.Endpoints = []billing.EndpointCheck{}
	}
	r.rep.Findings = append(r.rep.Findings, sr.Findings...)
	r.comparePlans(sr.Plans)
	return sr.KeyOK, nil
}

// comparePlans checks each found price against the file: SelfCheck checks
// the kind; the interval, amount and currency are the file's.
func (r *doctorRun) comparePlans(checks []billing.PlanCheck) {
	for _, pc := range checks {
		if !pc.Found {
			continue
		}
		i := slices.IndexFunc(r.file.Plans, func(s plansfile.Spec) bool { return s.PriceID == pc.PriceID })
		if i < 0 {
			continue
		}
		s := r.file.Plans[i]
		var diffs []string
		if s.Kind == plansfile.KindRecurring && pc.Type == "recurring" && (pc.Interval != s.Interval || pc.IntervalCount != 1) {
			diffs = append(diffs, fmt.Sprintf("bills every %d %s, the file says every 1 %s", pc.IntervalCount, pc.Interval, s.Interval))
		}
		if pc.UnitAmount != s.Amount || pc.Currency != s.Currency {
			diffs = append(diffs, fmt.Sprintf("costs %d %s, the file says %d %s", pc.UnitAmount, pc.Currency, s.Amount, s.Currency))
		}
		if len(diffs) > 0 {
			r.add(billing.SeverityError, codePriceMismatch, pc.PriceID,
				fmt.Sprintf("the price of %s %s", s.LookupKey, strings.Join(diffs, "; ")),
				"run `billing setup -f "+r.o.file+"` (it makes a price matching the file, moves the lookup key and writes the new ID), or correct the file")
		}
	}
}

// pendingEvents lists the events Stripe has not delivered successfully
// that are older than an hour: a heuristic for failing deliveries.
func (r *doctorRun) pendingEvents() error {
	p := &stripe.EventListParams{DeliverySuccess: stripe.Bool(false),
		CreatedRange: &stripe.RangeQueryParams{LesserThan: time.Now().Add(-pendingAge).Unix()}}
	p.Limit = stripe.Int64(100)
	p.Context = r.ctx
	var oldest *stripe.Event
	types := map[string]int{}
	n := 0
	for ev, err := range r.sc.V1Events.List(r.ctx, p) {
		if denied(err) {
			r.add(billing.SeverityWarning, codeEventsUnreadable, "",
				"the key may not read events (a restricted key): pending deliveries were not checked",
				"give the key Read access to Events (Dashboard → Developers → API keys → the key → Edit), or look at Dashboard → Developers → Webhooks → the endpoint → Event deliveries")
			return nil
		}
		if err != nil {
			return fmt.Errorf("list events: %w", err)
		}
		if ev.PendingWebhooks > 0 {
			n++
			types[string(ev.Type)]++
			if oldest == nil || ev.Created < oldest.Created {
				oldest = ev
			}
		}
		if n >= 100 {
			break
		}
	}
	r.rep.PendingEvents = n
	if n == 0 {
		return nil
	}
	var ts []string
	for _, t := range slices.Sorted(func(yield func(string) bool) {
		for t := range types {
			if !yield(t) {
				return
			}
		}
	}) {
		ts = append(ts, fmt.Sprintf("%s ×%d", t, types[t]))
	}
	more := ""
	if n >= 100 {
		more = " (at least)"
	}
	r.add(billing.SeverityWarning, codeEventsPending, oldest.ID,
		fmt.Sprintf("%d event(s)%s older than an hour still wait for a successful webhook delivery (%s; the oldest %s, %s): a heuristic, but most likely the endpoint fails (wrong signing secret, a 4xx/5xx, a timeout, an unreachable URL)",
			n, more, strings.Join(ts, ", "), oldest.ID, time.Unix(oldest.Created, 0).UTC().Format(time.RFC3339)),
		"look at Dashboard → Developers → Webhooks → the endpoint → Event deliveries for the error; fix the app (STRIPE_WEBHOOK_SECRET must be that endpoint's signing secret), then resend, or let billing catch up (Billing.CatchUp)")
	return nil
}

// portalConfiguration finds the configuration to check.
func (r *doctorRun) portalConfiguration() (*stripe.BillingPortalConfiguration, error) {
	if r.o.portalConf != "" {
		return r.sc.V1BillingPortalConfigurations.Retrieve(r.ctx, r.o.portalConf, nil)
	}
	lp := &stripe.BillingPortalConfigurationListParams{Active: stripe.Bool(true)}
	lp.Limit = stripe.Int64(100)
	var managed, def *stripe.BillingPortalConfiguration
	for c, err := range r.sc.V1BillingPortalConfigurations.List(r.ctx, lp) {
		if err != nil {
			return nil, err
		}
		if c.Metadata[managedByKey] == managedByValue && managed == nil {
			managed = c
		}
		if c.IsDefault && def == nil {
			def = c
		}
	}
	if managed != nil {
		return managed, nil
	}
	return def, nil
}

// portal checks the Customer Portal configuration allows what billing's
// portal promises (the guide's 7.1).
func (r *doctorRun) portal() error {
	const dashboard = "Dashboard → Settings → Billing → Customer portal"
	c, err := r.portalConfiguration()
	switch {
	case denied(err):
		r.add(billing.SeverityWarning, codePortalUnreadable, r.o.portalConf,
			"the key may not read Customer Portal configurations (a restricted key): the portal was not checked",
			"give the key Read access to Customer portal (Dashboard → Developers → API keys → the key → Edit), or check "+dashboard)
		return nil
	case err != nil:
		var se *stripe.Error
		if errors.As(err, &se) && se.HTTPStatusCode == http.StatusNotFound {
			r.add(billing.SeverityError, codePortalMissing, r.o.portalConf,
				"Stripe has no such Customer Portal configuration: portal sessions made with it fail",
				"run `billing setup -f "+r.o.file+"` and pass the configuration it prints as PortalOptions.Configuration (and --portal-configuration)")
			return nil
		}
		return fmt.Errorf("portal configuration: %w", err)
	case c == nil:
		r.add(billing.SeverityWarning, codePortalMissing, "",
			"no Customer Portal configuration made by billing setup, and no default one: Stripe refuses portal sessions until the portal is configured",
			"run `billing setup -f "+r.o.file+"` (it makes the configuration of the guide's 7.1), or configure it in "+dashboard)
		return nil
	}
	r.rep.PortalConfiguration = c.ID
	fix := "run `billing setup -f " + r.o.file + "` (it updates the configuration it keeps), or in " + dashboard + ": "
	if !c.Active {
		r.add(billing.SeverityError, codePortalInactive, c.ID,
			"the Customer Portal configuration is inactive: portal sessions made with it fail",
			"reactivate it (`stripe billing_portal configurations update "+c.ID+" -d active=true`), or run `billing setup -f "+r.o.file+"`")
	}
	ft := c.Features
	if ft == nil {
		ft = &stripe.BillingPortalConfigurationFeatures{}
	}
	if ft.PaymentMethodUpdate == nil || !ft.PaymentMethodUpdate.Enabled {
		r.add(billing.SeverityError, codePortalFeature, c.ID,
			"the portal does not let customers update their payment method: a failed payment cannot be fixed by the customer",
			fix+"Payment methods → allow customers to update")
	}
	switch {
	case ft.SubscriptionCancel == nil || !ft.SubscriptionCancel.Enabled:
		r.add(billing.SeverityError, codePortalFeature, c.ID,
			"the portal does not let customers cancel their subscription",
			fix+"Cancellations → allow customers to cancel subscriptions, at the end of the billing period")
	case ft.SubscriptionCancel.Mode != "at_period_end":
		r.add(billing.SeverityWarning, codePortalFeature, c.ID,
			fmt.Sprintf("the portal cancels %s, not at the end of the billing period: customers lose what they paid for", ft.SubscriptionCancel.Mode),
			fix+"Cancellations → cancel at end of billing period")
	}
	if ft.InvoiceHistory == nil || !ft.InvoiceHistory.Enabled {
		r.add(billing.SeverityWarning, codePortalFeature, c.ID,
			"the portal does not show the invoice history",
			fix+"Invoices → show invoice history")
	}
	var recurring []string
	for _, s := range r.file.Plans {
		if s.Kind == plansfile.KindRecurring && s.PriceID != "" {
			recurring = append(recurring, s.PriceID)
		}
	}
	if len(recurring) > 1 {
		var allowed []string
		su := ft.SubscriptionUpdate
		if su != nil && su.Enabled {
			for _, p := range su.Products {
				allowed = append(allowed, p.Prices...)
			}
		}
		var missing []string
		for _, id := range recurring {
			if !slices.Contains(allowed, id) {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			r.add(billing.SeverityWarning, codePortalFeature, c.ID,
				"the portal does not offer switching to "+strings.Join(missing, ", ")+": customers cannot change plan there",
				fix+"Subscriptions → allow customers to switch plans, with these prices")
		}
	}
	return nil
}

// checkouts reads recent Checkout Sessions and reports those billing could
// not link to a user: no client_reference_id and no billing_user_id.
func (r *doctorRun) checkouts() error {
	if r.o.sessions == 0 {
		return nil
	}
	p := &stripe.CheckoutSessionListParams{}
	p.Limit = stripe.Int64(min(r.o.sessions, 100))
	var unlinked []string
	n := 0
	for s, err := range r.sc.V1CheckoutSessions.List(r.ctx, p) {
		if denied(err) {
			r.add(billing.SeverityWarning, codeSessionsUnreadble, "",
				"the key may not read Checkout Sessions (a restricted key): their metadata was not checked",
				"give the key Read access to Checkout Sessions (Dashboard → Developers → API keys → the key → Edit)")
			return nil
		}
		if err != nil {
			return fmt.Errorf("list checkout sessions: %w", err)
		}
		n++
		if (s.Mode == stripe.CheckoutSessionModeSubscription || s.Mode == stripe.CheckoutSessionModePayment) &&
			s.ClientReferenceID == "" && s.Metadata["billing_user_id"] == "" {
			unlinked = append(unlinked, s.ID)
		}
		if int64(n) >= r.o.sessions {
			break
		}
	}
	r.rep.SessionsChecked = n
	if len(unlinked) == 0 {
		return nil
	}
	ids := unlinked
	if len(ids) > 5 {
		ids = append(slices.Clone(ids[:5]), "…")
	}
	r.add(billing.SeverityWarning, codeCheckoutUnlinked, unlinked[0],
		fmt.Sprintf("%d of the last %d Checkout Sessions have neither client_reference_id nor metadata billing_user_id (%s): they were made outside billing (a Payment Link, the Dashboard, other code), so billing cannot link their payments to a user and parks their events",
			len(unlinked), n, strings.Join(ids, ", ")),
		"make Checkout Sessions with Billing.Checkout (it sets client_reference_id and billing's metadata); for sessions already paid, link their customer to the user (Billing.LinkCustomer) and replay the parked events (Billing.ParkedEvents, Billing.Replay)")
	return nil
}

// health GETs --health-url and expects 200 with status "ok".
func (r *doctorRun) health() {
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	fix := "look at the app's logs; the health JSON's problems say what is wrong (the store, the last event's age, parked events, hooks)"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.o.healthURL, nil)
	if err != nil {
		r.add(billing.SeverityError, codeHealthFailed, r.o.healthURL, "the health URL is invalid: "+err.Error(), "give the URL the app mounts Billing.HealthHandler at")
		return
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.add(billing.SeverityError, codeHealthFailed, r.o.healthURL, "the app does not answer: "+err.Error(),
			"start the app, or check the URL (the one Billing.HealthHandler is mounted at) and that it is reachable from here")
		return
	}
	defer resp.Body.Close()
	var h struct {
		Status   string   `json:"status"`
		Problems []string `json:"problems"`
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	isJSON := json.Unmarshal(body, &h) == nil && h.Status != ""
	detail := ""
	if isJSON && len(h.Problems) > 0 {
		detail = ": " + strings.Join(h.Problems, "; ")
	}
	switch {
	case resp.StatusCode != http.StatusOK:
		st := ""
		if isJSON {
			st = fmt.Sprintf(", status %q", h.Status)
		}
		r.add(billing.SeverityError, codeHealthFailed, r.o.healthURL,
			fmt.Sprintf("the health URL answered %d%s%s", resp.StatusCode, st, detail), fix)
	case isJSON && h.Status == "degraded":
		r.add(billing.SeverityWarning, codeHealthDegraded, r.o.healthURL, "the app reports itself degraded"+detail, fix)
	case isJSON && h.Status != "ok":
		r.add(billing.SeverityError, codeHealthFailed, r.o.healthURL, fmt.Sprintf("the app reports status %q%s", h.Status, detail), fix)
	}
}

// printDoctor writes the report for people.
func (a *app) printDoctor(rep *doctorReport) {
	w := a.io.out
	mode := "test mode"
	if rep.Livemode {
		mode = "LIVE mode"
	}
	fmt.Fprintf(w, "billing doctor (%s, %s):\n", mode, rep.File)
	if len(rep.Findings) == 0 {
		fmt.Fprintln(w, a.green(w, "  No findings: the account matches the plans file."))
		return
	}
	errs, warns := 0, 0
	for _, f := range rep.Findings {
		sev, paint := "warning", "\x1b[33m"
		if f.Severity == billing.SeverityError {
			sev, paint = "error", "\x1b[31m"
			errs++
		} else {
			warns++
		}
		if a.colour(w) {
			sev = paint + sev + "\x1b[0m"
		}
		head := "  " + sev + " " + f.Code
		if f.Subject != "" {
			head += " " + f.Subject
		}
		fmt.Fprintln(w, head)
		fmt.Fprintln(w, "      problem: "+f.Problem)
		fmt.Fprintln(w, "      fix:     "+f.Fix)
	}
	fmt.Fprintf(w, "%d error(s), %d warning(s)\n", errs, warns)
}
