package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/plansfile"
)

// pinnedVersion is the API version billing speaks; a webhook endpoint is
// created at it (Stripe fixes an endpoint's version at creation).
const pinnedVersion = stripe.APIVersion

// appliedEventTypes are the event types billing's webhook handler applies.
var appliedEventTypes = billing.AppliedEventTypes()

// managedBy marks the portal configuration setup keeps (metadata).
const managedByKey, managedByValue = "managed_by", "billing setup"

// newProduct stands, in a dry run, for a product setup would create.
const newProduct = "(new)"

type setupOpts struct {
	file, webhookURL, returnURL string
	keyFile, apiBase            string
	secretFile                  string
	dryRun, live                bool
}

// Action kinds, as --json spells them.
const (
	actCreatePrice      = "create_price"
	actActivatePrice    = "activate_price"
	actArchivePrice     = "archive_price"
	actRenameProduct    = "rename_product"
	actWriteFile        = "write_plans_file"
	actCreateEndpoint   = "create_endpoint"
	actUpdateEndpoint   = "update_endpoint"
	actEndpointVersion  = "endpoint_version_mismatch"
	actCreatePortalConf = "create_portal_configuration"
	actUpdatePortalConf = "update_portal_configuration"
)

// setupAction is one change setup makes (or, with --dry-run, would make),
// or a problem it reports and will not fix.
type setupAction struct {
	Action string `json:"action"`
	// Target is what it is about: a lookup key, an endpoint URL, a price,
	// product or configuration ID.
	Target string `json:"target"`
	// Detail says it in words.
	Detail string `json:"detail"`
	// ID is the object made or changed, once done.
	ID string `json:"id,omitempty"`
	// Problem marks what setup reports and does not fix (exit 1).
	Problem bool `json:"problem,omitempty"`
	// Fix says how to fix a problem.
	Fix string `json:"fix,omitempty"`
	// Done is true once made (never with --dry-run).
	Done bool `json:"done"`
}

// setupResult is what --json prints.
type setupResult struct {
	DryRun      bool          `json:"dry_run"`
	Livemode    bool          `json:"livemode"`
	File        string        `json:"file"`
	NothingToDo bool          `json:"nothing_to_do"`
	Actions     []setupAction `json:"actions"`
	// Prices are the price IDs by lookup key (new ones: empty in a dry run).
	Prices map[string]string `json:"prices"`
	// WebhookEndpoint is the endpoint's ID, when --webhook-url was given.
	WebhookEndpoint string `json:"webhook_endpoint,omitempty"`
	// SecretFile is where a new endpoint's signing secret was written.
	SecretFile string `json:"secret_file,omitempty"`
	// SecretWithheld is true when a new endpoint's signing secret was not
	// shown (no terminal, no --secret-file).
	SecretWithheld bool `json:"secret_withheld,omitempty"`
	// PortalConfiguration is the Customer Portal configuration's ID
	// (PortalOptions.Configuration).
	PortalConfiguration string `json:"portal_configuration,omitempty"`
}

func (a *app) setupCmd() *cobra.Command {
	var o setupOpts
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Make the Stripe account match the plans file: prices, webhook endpoint, Customer Portal",
		Long: `setup makes the Stripe account match the plans file, idempotently: a second
run changes nothing and says so.

  Prices, by lookup key: a missing one is created (with its product, one
    product per plan name); a changed amount, currency or interval makes a
    new price that takes the lookup key (transfer_lookup_key) and archives
    the old one. Nothing is deleted. The price IDs are written back into
    the plans file, so that plansfile.Load returns them.
  The webhook endpoint for --webhook-url, at API version ` + pinnedVersion + `,
    with exactly the event types billing applies. An endpoint for the URL
    at another version is reported (exit 1), never replaced: Stripe fixes
    an endpoint's version at creation.
  A Customer Portal configuration: payment method updates, cancellation at
    period end, switching between the plans' recurring prices, invoice
    history. Pass its ID as PortalOptions.Configuration.

The key comes from STRIPE_SECRET_KEY or --key-file, never from a flag; a
live key needs --live. A new endpoint's signing secret is shown only on a
terminal, or written to --secret-file (created with mode 0600); on a pipe
it is withheld, never printed or logged.

Exit codes: 0 done or nothing to do, 1 failure or a problem setup does not
fix, 2 usage.`,
		Example: `  STRIPE_SECRET_KEY=sk_test_... billing setup --webhook-url https://app.example/stripe/webhook --dry-run
  STRIPE_SECRET_KEY=sk_test_... billing setup --webhook-url https://app.example/stripe/webhook --secret-file .whsec
  billing setup --live --key-file /run/secrets/stripe --webhook-url https://app.example/stripe/webhook --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runSetup(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", "billing.yaml", "the plans file")
	f.StringVar(&o.webhookURL, "webhook-url", "", "the app's webhook URL (empty: the endpoint is left alone)")
	f.StringVar(&o.returnURL, "return-url", "", "the portal configuration's default return URL (optional)")
	f.StringVar(&o.keyFile, "key-file", "", "read the secret key from this file instead of STRIPE_SECRET_KEY")
	f.StringVar(&o.apiBase, "api-base", "", "Stripe's API base URL (tests: billingtest's URL)")
	f.StringVar(&o.secretFile, "secret-file", "", "write a new endpoint's signing secret to this new file (mode 0600)")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the plan; change nothing")
	f.BoolVar(&o.live, "live", false, "allow a live key")
	return cmd
}

// secretKey reads the key from --key-file or STRIPE_SECRET_KEY and checks
// its mode against --live.
func (a *app) secretKey(o setupOpts) (key string, live bool, err error) {
	if o.keyFile != "" {
		b, err := os.ReadFile(o.keyFile)
		if err != nil {
			return "", false, fmt.Errorf("--key-file: %w", err)
		}
		key = strings.TrimSpace(string(b))
	} else {
		key = strings.TrimSpace(a.io.getenv("STRIPE_SECRET_KEY"))
	}
	switch {
	case key == "":
		return "", false, usagef("no key: set STRIPE_SECRET_KEY or give --key-file")
	case strings.HasPrefix(key, "pk_"):
		return "", false, usagef("that is a publishable key (pk_...): use the secret key (sk_...) or a restricted key (rk_...)")
	case strings.HasPrefix(key, "sk_live_"), strings.HasPrefix(key, "rk_live_"):
		if !o.live {
			return "", false, usagef("a live key: add --live to set up the live account")
		}
		return key, true, nil
	case strings.HasPrefix(key, "sk_test_"), strings.HasPrefix(key, "rk_test_"):
		if o.live {
			return "", false, usagef("--live with a test key")
		}
		return key, false, nil
	}
	return "", false, usagef("the key is not a Stripe secret key (sk_test_..., sk_live_..., rk_...)")
}

// idemKey derives an idempotency key from what a create sends, so that a
// retried setup never makes the same object twice.
func idemKey(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return "billing-setup-" + hex.EncodeToString(h[:16])
}

// setupRun is one run's state.
type setupRun struct {
	a    *app
	o    setupOpts
	sc   *stripe.Client
	ctx  context.Context
	file *plansfile.File
	res  *setupResult
	// productOf is each known price's product.
	productOf map[string]string
}

func (a *app) runSetup(ctx context.Context, o setupOpts) error {
	if ctx == nil {
		ctx = context.Background()
	}
	key, live, err := a.secretKey(o)
	if err != nil {
		return err
	}
	_, f, err := plansfile.Load(o.file)
	if err != nil {
		return err
	}
	if o.webhookURL != "" {
		if !strings.HasPrefix(o.webhookURL, "https://") && !strings.HasPrefix(o.webhookURL, "http://") {
			return usagef("--webhook-url %q: want an http(s) URL", o.webhookURL)
		}
		if live && !strings.HasPrefix(o.webhookURL, "https://") {
			return usagef("--webhook-url %q: a live endpoint needs https", o.webhookURL)
		}
	}
	if o.secretFile != "" {
		if _, err := os.Lstat(o.secretFile); err == nil {
			return fmt.Errorf("--secret-file %s exists: setup writes a new file only (remove it, or name another)", o.secretFile)
		}
	}
	cfg := &stripe.BackendConfig{LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
		MaxNetworkRetries: stripe.Int64(2)}
	if o.apiBase != "" {
		cfg.URL = stripe.String(o.apiBase)
	}
	r := &setupRun{a: a, o: o, ctx: ctx, file: f, productOf: map[string]string{},
		sc:  stripe.NewClient(key, stripe.WithBackends(stripe.NewBackendsWithConfig(cfg))),
		res: &setupResult{DryRun: o.dryRun, Livemode: live, File: o.file, Prices: map[string]string{}, Actions: []setupAction{}}}

	err = r.catalog()
	if err == nil && o.webhookURL != "" {
		err = r.endpoint()
	}
	if err == nil {
		err = r.portal()
	}
	if err != nil {
		// What was done is printed before the error, so that the next
		// run's plan is no surprise.
		if len(r.res.Actions) > 0 && !a.json {
			r.print()
		}
		return err
	}
	r.res.NothingToDo = len(r.res.Actions) == 0
	if a.json {
		if err := a.printJSON(r.res); err != nil {
			return err
		}
	} else {
		r.print()
	}
	problems := 0
	for _, act := range r.res.Actions {
		if act.Problem {
			problems++
		}
	}
	if problems > 0 {
		// The result is stdout's one JSON document: the error goes to
		// stderr only.
		a.json = false
		return fmt.Errorf("%d problem(s) setup does not fix: see above", problems)
	}
	return nil
}

func (r *setupRun) add(act setupAction) *setupAction {
	r.res.Actions = append(r.res.Actions, act)
	return &r.res.Actions[len(r.res.Actions)-1]
}

// print writes the result for people.
func (r *setupRun) print() {
	w := r.a.io.out
	mode := "test mode"
	if r.res.Livemode {
		mode = "LIVE mode"
	}
	head := fmt.Sprintf("billing setup (%s, %s)", mode, r.res.File)
	if r.res.DryRun {
		head += ", dry run: nothing changed"
	}
	fmt.Fprintln(w, head+":")
	if len(r.res.Actions) == 0 {
		fmt.Fprintln(w, r.a.green(w, "  Nothing to do: the account matches the plans file."))
	}
	for _, act := range r.res.Actions {
		mark := "+"
		switch {
		case act.Problem:
			mark = "!"
		case r.res.DryRun:
			mark = "would"
		case act.Done:
			mark = "done"
		}
		line := fmt.Sprintf("  %-5s %s", mark, act.Detail)
		if act.ID != "" && act.ID != act.Target {
			line += " (" + act.ID + ")"
		}
		fmt.Fprintln(w, line)
		if act.Fix != "" {
			fmt.Fprintln(w, "        fix: "+act.Fix)
		}
	}
	if r.res.PortalConfiguration != "" {
		fmt.Fprintf(w, "Customer Portal configuration: %s (billing.PortalOptions{Configuration: %q})\n",
			r.res.PortalConfiguration, r.res.PortalConfiguration)
	}
	if r.res.SecretFile != "" {
		fmt.Fprintf(w, "The new endpoint's signing secret (STRIPE_WEBHOOK_SECRET) is in %s (mode 0600).\n", r.res.SecretFile)
	}
	if r.res.SecretWithheld {
		fmt.Fprintln(w, withheldMessage)
	}
}

const withheldMessage = `The new endpoint's signing secret (STRIPE_WEBHOOK_SECRET) was not shown: stdout is not a terminal.
  Reveal it in the Dashboard (Developers > Webhooks > the endpoint > Signing secret), or next time
  run setup on a terminal or with --secret-file PATH (written with mode 0600).`

// matches says whether a price is what the spec describes (what a price
// cannot change: amount, currency, type and interval).
func matches(p *stripe.Price, s plansfile.Spec) bool {
	if p.UnitAmount != s.Amount || string(p.Currency) != s.Currency {
		return false
	}
	if s.Kind == plansfile.KindOneTime {
		return p.Recurring == nil
	}
	return p.Recurring != nil && string(p.Recurring.Interval) == s.Interval && p.Recurring.IntervalCount == 1
}

func describePrice(p *stripe.Price) string {
	s := plansfile.Spec{Amount: p.UnitAmount, Currency: string(p.Currency), Kind: plansfile.KindOneTime}
	if p.Recurring != nil {
		s.Kind, s.Interval = plansfile.KindRecurring, string(p.Recurring.Interval)
	}
	return describe(s)
}

// catalog makes the prices (and their products) match the file and writes
// the price IDs back.
func (r *setupRun) catalog() error {
	holders := map[string]*stripe.Price{} // lookup key → the price holding it
	var keys []string
	for _, s := range r.file.Plans {
		keys = append(keys, s.LookupKey)
	}
	for chunk := range slices.Chunk(keys, 10) {
		p := &stripe.PriceListParams{}
		p.Limit = stripe.Int64(100)
		p.AddExpand("data.product")
		for _, k := range chunk {
			p.LookupKeys = append(p.LookupKeys, stripe.String(k))
		}
		for price, err := range r.sc.V1Prices.List(r.ctx, p) {
			if err != nil {
				return fmt.Errorf("list prices: %w", err)
			}
			holders[price.LookupKey] = price
			if price.Product != nil {
				r.productOf[price.ID] = price.Product.ID
			}
		}
	}
	// One product per plan name: the product of a price already made.
	products := map[string]string{}
	for _, s := range r.file.Plans {
		if h := holders[s.LookupKey]; h != nil && h.Product != nil && products[s.Name] == "" {
			products[s.Name] = h.Product.ID
		}
	}
	renamed := map[string]bool{}
	for _, s := range r.file.Plans {
		h := holders[s.LookupKey]
		if h != nil && h.Product != nil && h.Product.Name != "" && h.Product.Name != s.Name && !renamed[h.Product.ID] {
			renamed[h.Product.ID] = true
			act := r.add(setupAction{Action: actRenameProduct, Target: h.Product.ID,
				Detail: fmt.Sprintf("rename product %s from %q to %q", h.Product.ID, h.Product.Name, s.Name)})
			if !r.o.dryRun {
				p := &stripe.ProductUpdateParams{Name: stripe.String(s.Name)}
				if _, err := r.sc.V1Products.Update(r.ctx, h.Product.ID, p); err != nil {
					return fmt.Errorf("rename product %s: %w", h.Product.ID, err)
				}
				act.Done, act.ID = true, h.Product.ID
			}
		}
		switch {
		case h != nil && matches(h, s):
			r.res.Prices[s.LookupKey] = h.ID
			if !h.Active {
				act := r.add(setupAction{Action: actActivatePrice, Target: h.ID,
					Detail: fmt.Sprintf("reactivate price %s (%s: %s), archived in Stripe", h.ID, s.LookupKey, describe(s))})
				if !r.o.dryRun {
					if _, err := r.sc.V1Prices.Update(r.ctx, h.ID, &stripe.PriceUpdateParams{Active: stripe.Bool(true)}); err != nil {
						return fmt.Errorf("reactivate price %s: %w", h.ID, err)
					}
					act.Done, act.ID = true, h.ID
				}
			}
			continue
		}
		// A new price: the first of its product, or a change.
		p := &stripe.PriceCreateParams{Currency: stripe.String(s.Currency), UnitAmount: stripe.Int64(s.Amount),
			LookupKey: stripe.String(s.LookupKey), Nickname: stripe.String(s.LookupKey)}
		if s.Kind == plansfile.KindRecurring {
			p.Recurring = &stripe.PriceCreateRecurringParams{Interval: stripe.String(s.Interval)}
		}
		prod := products[s.Name]
		detail := fmt.Sprintf("create price %s: %s", s.LookupKey, describe(s))
		if prod == "" {
			p.ProductData = &stripe.PriceCreateProductDataParams{Name: stripe.String(s.Name)}
			detail += fmt.Sprintf(", with a new product %q", s.Name)
		} else if prod == newProduct { // a dry run's product to come
			detail += fmt.Sprintf(" on the new product %q", s.Name)
		} else {
			p.Product = stripe.String(prod)
			detail += " on product " + prod
		}
		from := ""
		if h != nil {
			from = h.ID
			p.TransferLookupKey = stripe.Bool(true)
			detail += fmt.Sprintf("; takes the lookup key from %s (%s) with transfer_lookup_key", h.ID, describePrice(h))
		}
		act := r.add(setupAction{Action: actCreatePrice, Target: s.LookupKey, Detail: detail})
		if !r.o.dryRun {
			p.SetIdempotencyKey(idemKey("price", s.LookupKey, s.Currency, fmt.Sprint(s.Amount), s.Kind, s.Interval,
				prod, s.Name, from))
			np, err := r.sc.V1Prices.Create(r.ctx, p)
			if err != nil {
				return fmt.Errorf("create price %s: %w", s.LookupKey, err)
			}
			act.Done, act.ID = true, np.ID
			r.res.Prices[s.LookupKey] = np.ID
			if np.Product != nil {
				r.productOf[np.ID] = np.Product.ID
			}
			if prod == "" && np.Product != nil {
				products[s.Name] = np.Product.ID
			}
		} else {
			r.res.Prices[s.LookupKey] = ""
			if prod == "" {
				products[s.Name] = newProduct
			}
		}
		if h != nil && h.Active {
			act := r.add(setupAction{Action: actArchivePrice, Target: h.ID,
				Detail: fmt.Sprintf("archive price %s (%s, was %s)", h.ID, s.LookupKey, describePrice(h))})
			if !r.o.dryRun {
				if _, err := r.sc.V1Prices.Update(r.ctx, h.ID, &stripe.PriceUpdateParams{Active: stripe.Bool(false)}); err != nil {
					return fmt.Errorf("archive price %s: %w", h.ID, err)
				}
				act.Done, act.ID = true, h.ID
			}
		}
	}
	return r.writeBack()
}

// writeBack sets each plan's price_id in the plans file.
func (r *setupRun) writeBack() error {
	var changed []string
	nf := *r.file
	nf.Plans = slices.Clone(r.file.Plans)
	for i, s := range nf.Plans {
		id := r.res.Prices[s.LookupKey]
		if id != s.PriceID && (id != "" || !r.o.dryRun) {
			changed = append(changed, s.LookupKey)
			nf.Plans[i].PriceID = id
		} else if id == "" && r.o.dryRun {
			changed = append(changed, s.LookupKey)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	act := r.add(setupAction{Action: actWriteFile, Target: r.o.file,
		Detail: fmt.Sprintf("write the price IDs of %s into %s", strings.Join(changed, ", "), r.o.file)})
	if r.o.dryRun {
		return nil
	}
	data, err := nf.Marshal()
	if err != nil {
		return err
	}
	if err := replaceFile(r.o.file, data); err != nil {
		return fmt.Errorf("write %s: %w", r.o.file, err)
	}
	*r.file = nf
	act.Done = true
	return nil
}

// replaceFile replaces path's content through a temporary file in the same
// directory, keeping its mode.
func replaceFile(path string, data []byte) error {
	mode := os.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	tmp, err := tempFile(path, data, mode)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	return os.Rename(tmp, path)
}

// endpoint makes the webhook endpoint for --webhook-url.
func (r *setupRun) endpoint() error {
	want := slices.Sorted(slices.Values(appliedEventTypes))
	var same, other []*stripe.WebhookEndpoint
	p := &stripe.WebhookEndpointListParams{}
	p.Limit = stripe.Int64(100)
	for ep, err := range r.sc.V1WebhookEndpoints.List(r.ctx, p) {
		if err != nil {
			return fmt.Errorf("list webhook endpoints: %w", err)
		}
		if ep.URL != r.o.webhookURL {
			continue
		}
		if ep.APIVersion == pinnedVersion {
			same = append(same, ep)
		} else {
			other = append(other, ep)
		}
	}
	if len(same) > 0 {
		ep := same[0]
		r.res.WebhookEndpoint = ep.ID
		have := slices.Sorted(slices.Values(ep.EnabledEvents))
		var changes []string
		up := &stripe.WebhookEndpointUpdateParams{}
		if !slices.Equal(have, want) {
			var missing, extra []string
			for _, t := range want {
				if !slices.Contains(have, t) {
					missing = append(missing, t)
				}
			}
			for _, t := range have {
				if !slices.Contains(want, t) {
					extra = append(extra, t)
				}
			}
			c := "set its event types"
			if len(missing) > 0 {
				c += " (adds " + strings.Join(missing, ", ") + ")"
			}
			if len(extra) > 0 {
				c += " (drops " + strings.Join(extra, ", ") + ")"
			}
			changes = append(changes, c)
			for _, t := range want {
				up.EnabledEvents = append(up.EnabledEvents, stripe.String(t))
			}
		}
		if ep.Status == "disabled" {
			changes = append(changes, "enable it")
			up.Disabled = stripe.Bool(false)
		}
		if len(changes) == 0 {
			return nil
		}
		act := r.add(setupAction{Action: actUpdateEndpoint, Target: ep.ID,
			Detail: fmt.Sprintf("update webhook endpoint %s for %s: %s", ep.ID, ep.URL, strings.Join(changes, "; "))})
		if r.o.dryRun {
			return nil
		}
		if _, err := r.sc.V1WebhookEndpoints.Update(r.ctx, ep.ID, up); err != nil {
			return fmt.Errorf("update webhook endpoint %s: %w", ep.ID, err)
		}
		act.Done, act.ID = true, ep.ID
		return nil
	}
	if len(other) > 0 {
		for _, ep := range other {
			v := cmp.Or(ep.APIVersion, "the account's default version")
			r.add(setupAction{Action: actEndpointVersion, Target: ep.ID, Problem: true,
				Detail: fmt.Sprintf("webhook endpoint %s for %s is at API version %s, not %s; Stripe fixes an endpoint's version at creation, so setup leaves it alone",
					ep.ID, ep.URL, v, pinnedVersion),
				Fix: fmt.Sprintf("create an endpoint at %s for a new URL (billing setup --webhook-url NEW_URL), move the app's "+
					"STRIPE_WEBHOOK_SECRET to it, then delete %s in the Dashboard (Developers > Webhooks) or "+
					"delete it there first and run billing setup again", pinnedVersion, ep.ID)})
		}
		return nil
	}
	act := r.add(setupAction{Action: actCreateEndpoint, Target: r.o.webhookURL,
		Detail: fmt.Sprintf("create webhook endpoint for %s at %s with %d event types", r.o.webhookURL, pinnedVersion, len(want))})
	if r.o.dryRun {
		return nil
	}
	sink, err := r.a.openSecretSink(r.o.secretFile)
	if err != nil {
		return err
	}
	cp := &stripe.WebhookEndpointCreateParams{URL: stripe.String(r.o.webhookURL), APIVersion: stripe.String(pinnedVersion),
		Description: stripe.String("github.com/gobilling/billing (billing setup)")}
	for _, t := range want {
		cp.EnabledEvents = append(cp.EnabledEvents, stripe.String(t))
	}
	cp.SetIdempotencyKey(idemKey(append([]string{"endpoint", r.o.webhookURL, pinnedVersion}, want...)...))
	ep, err := r.sc.V1WebhookEndpoints.Create(r.ctx, cp)
	if err != nil {
		sink.abandon()
		return fmt.Errorf("create webhook endpoint: %w", err)
	}
	act.Done, act.ID = true, ep.ID
	r.res.WebhookEndpoint = ep.ID
	r.res.SecretFile, r.res.SecretWithheld, err = sink.deliver(ep.Secret)
	return err
}

// secretSink is where a new endpoint's signing secret goes: a file made
// before the endpoint (so that a secret is never made with nowhere to
// go), the terminal, or nowhere.
type secretSink struct {
	f        *os.File
	terminal io.Writer
}

// openSecretSink opens the sink for a secret: the new file path (--secret-file)
// if set, else stdout if it is a terminal (and not --json), else nowhere.
func (a *app) openSecretSink(path string) (*secretSink, error) {
	if path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("--secret-file: %w", err)
		}
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, fmt.Errorf("--secret-file: %w", err)
		}
		return &secretSink{f: f}, nil
	}
	if !a.json && terminal(a.io.out) {
		return &secretSink{terminal: a.io.out}, nil
	}
	return &secretSink{}, nil
}

func (s *secretSink) abandon() {
	if s.f != nil {
		s.f.Close()
		os.Remove(s.f.Name())
	}
}

// deliver hands the secret over and says where it went: the file it was
// written to, or withheld when it went nowhere. The secret itself is never
// returned, so it is never put in a result.
func (s *secretSink) deliver(secret string) (file string, withheld bool, err error) {
	switch {
	case s.f != nil:
		_, err := s.f.WriteString(secret + "\n")
		if cerr := s.f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", false, fmt.Errorf("--secret-file: %w (the endpoint exists: reveal its secret in the Dashboard)", err)
		}
		return s.f.Name(), false, nil
	case s.terminal != nil:
		fmt.Fprintf(s.terminal, "The new endpoint's signing secret, for STRIPE_WEBHOOK_SECRET (shown once):\n\n\t%s\n\n", secret)
		return "", false, nil
	}
	return "", true, nil
}

// portalFeatures are the guide's 7.1 features for the recurring prices.
func (r *setupRun) portalFeatures() *stripe.BillingPortalConfigurationCreateFeaturesParams {
	f := &stripe.BillingPortalConfigurationCreateFeaturesParams{
		InvoiceHistory:      &stripe.BillingPortalConfigurationCreateFeaturesInvoiceHistoryParams{Enabled: stripe.Bool(true)},
		PaymentMethodUpdate: &stripe.BillingPortalConfigurationCreateFeaturesPaymentMethodUpdateParams{Enabled: stripe.Bool(true)},
		SubscriptionCancel: &stripe.BillingPortalConfigurationCreateFeaturesSubscriptionCancelParams{Enabled: stripe.Bool(true),
			Mode: stripe.String("at_period_end")},
		SubscriptionUpdate: &stripe.BillingPortalConfigurationCreateFeaturesSubscriptionUpdateParams{Enabled: stripe.Bool(false)},
	}
	for _, pp := range r.portalProducts() {
		su := f.SubscriptionUpdate
		su.Enabled = stripe.Bool(true)
		su.DefaultAllowedUpdates = []*string{stripe.String("price")}
		su.ProrationBehavior = stripe.String("create_prorations")
		prod := &stripe.BillingPortalConfigurationCreateFeaturesSubscriptionUpdateProductParams{Product: stripe.String(pp.product)}
		for _, id := range pp.prices {
			prod.Prices = append(prod.Prices, stripe.String(id))
		}
		su.Products = append(su.Products, prod)
	}
	return f
}

type productPrices struct {
	product string
	prices  []string
}

// portalProducts are the recurring prices of the file by product, in the
// file's order (known once the catalog is done).
func (r *setupRun) portalProducts() []productPrices {
	var out []productPrices
	idx := map[string]int{}
	for _, s := range r.file.Plans {
		id := r.res.Prices[s.LookupKey]
		if s.Kind != plansfile.KindRecurring {
			continue
		}
		prod := r.productOf[id]
		if id == "" || prod == "" {
			prod, id = "(new product "+s.Name+")", "(new price "+s.LookupKey+")"
		}
		i, ok := idx[prod]
		if !ok {
			i = len(out)
			idx[prod] = i
			out = append(out, productPrices{product: prod})
		}
		out[i].prices = append(out[i].prices, id)
	}
	return out
}

// portal makes the Customer Portal configuration setup keeps (marked in
// its metadata) match the plans.
func (r *setupRun) portal() error {
	pps := r.portalProducts()
	var found *stripe.BillingPortalConfiguration
	lp := &stripe.BillingPortalConfigurationListParams{Active: stripe.Bool(true)}
	lp.Limit = stripe.Int64(100)
	for c, err := range r.sc.V1BillingPortalConfigurations.List(r.ctx, lp) {
		if err != nil {
			return fmt.Errorf("list portal configurations: %w", err)
		}
		if c.Metadata[managedByKey] == managedByValue && found == nil {
			found = c
		}
	}
	if found != nil {
		r.res.PortalConfiguration = found.ID
		if portalMatches(found, pps, r.o.returnURL) {
			return nil
		}
	}
	var switching []string
	for _, pp := range pps {
		switching = append(switching, pp.prices...)
	}
	what := "payment method updates, cancellation at period end, invoice history"
	if len(switching) > 0 {
		what += ", switching between " + strings.Join(switching, ", ")
	}
	feats := r.portalFeatures()
	if found == nil {
		act := r.add(setupAction{Action: actCreatePortalConf, Target: "billing_portal.configuration",
			Detail: "create the Customer Portal configuration: " + what})
		if r.o.dryRun {
			return nil
		}
		p := &stripe.BillingPortalConfigurationCreateParams{Features: feats,
			Metadata: map[string]string{managedByKey: managedByValue}}
		if r.o.returnURL != "" {
			p.DefaultReturnURL = stripe.String(r.o.returnURL)
		}
		p.SetIdempotencyKey(idemKey(append([]string{"portal", r.o.returnURL}, switching...)...))
		c, err := r.sc.V1BillingPortalConfigurations.Create(r.ctx, p)
		if err != nil {
			return fmt.Errorf("create portal configuration: %w", err)
		}
		act.Done, act.ID = true, c.ID
		r.res.PortalConfiguration = c.ID
		return nil
	}
	act := r.add(setupAction{Action: actUpdatePortalConf, Target: found.ID,
		Detail: fmt.Sprintf("update Customer Portal configuration %s: %s", found.ID, what)})
	if r.o.dryRun {
		return nil
	}
	// The update's feature parameters have the create's fields.
	var uf stripe.BillingPortalConfigurationUpdateFeaturesParams
	b, err := json.Marshal(feats)
	if err == nil {
		err = json.Unmarshal(b, &uf)
	}
	if err != nil {
		return fmt.Errorf("portal configuration features: %w", err)
	}
	p := &stripe.BillingPortalConfigurationUpdateParams{Features: &uf}
	if r.o.returnURL != "" {
		p.DefaultReturnURL = stripe.String(r.o.returnURL)
	}
	if _, err := r.sc.V1BillingPortalConfigurations.Update(r.ctx, found.ID, p); err != nil {
		return fmt.Errorf("update portal configuration %s: %w", found.ID, err)
	}
	act.Done, act.ID = true, found.ID
	return nil
}

// portalMatches says whether c has the features setup makes.
func portalMatches(c *stripe.BillingPortalConfiguration, pps []productPrices, returnURL string) bool {
	f := c.Features
	if f == nil || f.InvoiceHistory == nil || f.PaymentMethodUpdate == nil || f.SubscriptionCancel == nil || f.SubscriptionUpdate == nil {
		return false
	}
	if !f.InvoiceHistory.Enabled || !f.PaymentMethodUpdate.Enabled || !f.SubscriptionCancel.Enabled ||
		f.SubscriptionCancel.Mode != "at_period_end" || (returnURL != "" && c.DefaultReturnURL != returnURL) {
		return false
	}
	su := f.SubscriptionUpdate
	if len(pps) == 0 {
		return !su.Enabled
	}
	if !su.Enabled || len(su.DefaultAllowedUpdates) != 1 || su.DefaultAllowedUpdates[0] != "price" ||
		su.ProrationBehavior != "create_prorations" || len(su.Products) != len(pps) {
		return false
	}
	for i, pp := range pps {
		if su.Products[i].Product != pp.product || !slices.Equal(slices.Sorted(slices.Values(su.Products[i].Prices)),
			slices.Sorted(slices.Values(pp.prices))) {
			return false
		}
	}
	return true
}
