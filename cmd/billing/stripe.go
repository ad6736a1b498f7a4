package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing/billingtest"
)

// The offline Stripe's defaults.
const (
	// defaultStripeAddr is where `billing stripe serve` listens, and where
	// the other stripe commands look for it, by default (stripe-mock's
	// port).
	defaultStripeAddr = "127.0.0.1:12111"
	// offlineKey is the key the stripe commands send when
	// STRIPE_SECRET_KEY is unset: billingtest takes any sk_test_ key.
	offlineKey = "sk_test_billingtest"
)

// stripeReady starts the last line serve prints once it is ready.
const stripeReady = "Ready."

func (a *app) stripeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stripe",
		Short: "An offline Stripe (billingtest) for any language: serve it, move its clock, list its events",
		Long: `billing stripe runs billingtest, the offline Stripe of github.com/gobilling/billing,
as a standalone server that apps in any language use as their Stripe (API
` + billingtest.APIVersion + `, test mode, state in memory), and moves its clock.

  billing stripe serve     run it on --addr (default ` + defaultStripeAddr + `) until Ctrl-C
  billing stripe advance   move its clock (renewals, retries, trial ends happen)
  billing stripe clock     read its clock and when something is next due
  billing stripe events    list its events (/v1/events)

advance, clock and events find the server at --api-base, else STRIPE_API_BASE,
else http://` + defaultStripeAddr + `, and send STRIPE_SECRET_KEY (any sk_test_ key works;
unset: ` + offlineKey + `). A live key is refused.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(a.io.err)
			_ = cmd.Help()
			return usagef("a stripe command is needed: serve, advance, clock or events")
		},
	}
	cmd.AddCommand(a.stripeServeCmd(), a.stripeAdvanceCmd(), a.stripeClockCmd(), a.stripeEventsCmd())
	return cmd
}

// serve

type serveOpts struct {
	addr, start, webhookURL, secretFile string
}

// serveResult is what serve --json prints once it is ready.
type serveResult struct {
	// URL is the API base URL.
	URL        string `json:"url"`
	APIVersion string `json:"api_version"`
	// Now is what the clock read when it started.
	Now time.Time `json:"now"`
	// WebhookEndpoint is the endpoint made for --webhook-url.
	WebhookEndpoint string `json:"webhook_endpoint,omitempty"`
	WebhookURL      string `json:"webhook_url,omitempty"`
	// SecretFile is where its signing secret was written.
	SecretFile string `json:"secret_file,omitempty"`
	// SecretWithheld is true when its signing secret was not shown (no
	// terminal, no --secret-file).
	SecretWithheld bool `json:"secret_withheld,omitempty"`
}

func (a *app) stripeServeCmd() *cobra.Command {
	var o serveOpts
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the offline Stripe on an address until Ctrl-C",
		Long: `serve runs billingtest on --addr until SIGINT (Ctrl-C) or SIGTERM. The first
line on stdout is its URL (with port 0, the port picked); then how to point
stripe-go, the Node SDK, curl and the example app at it. Any sk_test_ key is
accepted; live keys are refused. All state is in memory and ends with it.

Its clock starts at --start (default: now) and ticks in real time; move it
with 'billing stripe advance' or POST /_billingtest/clock/advance.
Checkout Sessions are paid on their hosted page (their url) with the card
4242 4242 4242 4242.

With --webhook-url it creates a webhook endpoint for that URL (every event,
API version ` + pinnedVersion + `) and POSTs each event to it, signed. Its
signing secret is shown only on a terminal, or written to --secret-file (a
new file, mode 0600); on a pipe it is withheld, never printed or logged.

With --json, stdout holds one JSON document once it is ready: the URL, the
endpoint, where the secret went.`,
		Example: `  billing stripe serve
  billing stripe serve --addr 127.0.0.1:0 --start 2026-01-01T00:00:00Z
  billing stripe serve --webhook-url http://127.0.0.1:8080/stripe/webhook --secret-file .whsec`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runServe(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", defaultStripeAddr, "where to listen (host:port; port 0 picks a free one)")
	f.StringVar(&o.start, "start", "", "what the clock reads at start (RFC 3339 or YYYY-MM-DD; default: now)")
	f.StringVar(&o.webhookURL, "webhook-url", "", "create a webhook endpoint that POSTs every event to this URL")
	f.StringVar(&o.secretFile, "secret-file", "", "write the endpoint's signing secret to this new file (mode 0600)")
	return cmd
}

// parseStart reads --start.
func parseStart(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, usagef("--start %q: want RFC 3339 (2026-01-01T00:00:00Z) or a date (2026-01-01)", s)
}

func (a *app) runServe(ctx context.Context, o serveOpts) error {
	if ctx == nil {
		ctx = context.Background()
	}
	start, err := parseStart(o.start)
	if err != nil {
		return err
	}
	if o.webhookURL != "" {
		if u, err := url.Parse(o.webhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usagef("--webhook-url %q: want an http(s) URL", o.webhookURL)
		}
	} else if o.secretFile != "" {
		return usagef("--secret-file without --webhook-url: there is no endpoint to make a secret for")
	}
	host, _, err := net.SplitHostPort(o.addr)
	if err != nil {
		return usagef("--addr %q: want host:port (e.g. %s, or 127.0.0.1:0 for a free port)", o.addr, defaultStripeAddr)
	}
	var sink *secretSink
	if o.webhookURL != "" {
		// Opened first, so that no secret is made with nowhere to go.
		if sink, err = a.openSecretSink(o.secretFile); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := billingtest.Listen(o.addr, billingtest.Options{Start: start})
	if err != nil {
		if sink != nil {
			sink.abandon()
		}
		return err
	}
	defer srv.Close()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		fmt.Fprintf(a.io.err, "billing stripe: warning: %s is not a loopback address: whoever reaches it can use it (any sk_test_ key is accepted)\n", o.addr)
	}
	res := &serveResult{URL: srv.URL(), APIVersion: billingtest.APIVersion, Now: srv.Now().UTC().Truncate(time.Second)}
	w := a.io.out
	if !a.json {
		fmt.Fprintln(w, res.URL)
		fmt.Fprintln(w)
	}
	if o.webhookURL != "" {
		sc := stripe.NewClient(offlineKey, stripe.WithBackends(stripe.NewBackendsWithConfig(&stripe.BackendConfig{
			URL: stripe.String(srv.URL()), LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull}})))
		ep, err := sc.V1WebhookEndpoints.Create(ctx, &stripe.WebhookEndpointCreateParams{
			URL: stripe.String(o.webhookURL), APIVersion: stripe.String(pinnedVersion),
			EnabledEvents: []*string{stripe.String("*")}, Description: stripe.String("billing stripe serve")})
		if err != nil {
			sink.abandon()
			return fmt.Errorf("create webhook endpoint: %w", err)
		}
		res.WebhookEndpoint, res.WebhookURL = ep.ID, ep.URL
		if res.SecretFile, res.SecretWithheld, err = sink.deliver(ep.Secret); err != nil {
			return err
		}
	}
	if a.json {
		if err := a.printJSON(res); err != nil {
			return err
		}
	} else {
		a.printServe(w, res)
	}
	<-ctx.Done()
	stop() // a second Ctrl-C kills it
	fmt.Fprintln(a.io.err, "billing stripe: stopping; its state is discarded")
	return nil
}

// printServe writes how to use the server, for people.
func (a *app) printServe(w io.Writer, res *serveResult) {
	u, _ := url.Parse(res.URL)
	port, _ := strconv.Atoi(u.Port())
	fmt.Fprintf(w, "billingtest, an offline Stripe (API %s, test mode, state in memory), listens on %s.\n", res.APIVersion, res.URL)
	fmt.Fprintf(w, "Its clock reads %s and ticks in real time. Any sk_test_ key works, e.g. %s.\n\n", res.Now.Format(time.RFC3339), offlineKey)
	fmt.Fprintln(w, "Point a client at it:")
	fmt.Fprintf(w, "  environment  export STRIPE_API_BASE=%s STRIPE_SECRET_KEY=%s\n", res.URL, offlineKey)
	fmt.Fprintf(w, "  stripe-go    stripe.NewBackendsWithConfig(&stripe.BackendConfig{URL: stripe.String(%q)})\n", res.URL)
	fmt.Fprintf(w, "  Node         new Stripe(key, {host: %q, port: %d, protocol: \"http\"})\n", u.Hostname(), port)
	fmt.Fprintf(w, "  Python       stripe.api_base = %q\n", res.URL)
	fmt.Fprintf(w, "  curl         curl -u %s: %s/v1/customers -d email=a@example.com\n", offlineKey, res.URL)
	fmt.Fprintf(w, "  example app  billing init, then STRIPE_SECRET_KEY=%s billing setup --api-base %s \\\n", offlineKey, res.URL)
	fmt.Fprintln(w, "                 --webhook-url http://127.0.0.1:8080/stripe/webhook --secret-file .whsec  (prices, endpoint);")
	fmt.Fprintf(w, "               then run examples/server with STRIPE_API_BASE=%s STRIPE_SECRET_KEY=%s\n", res.URL, offlineKey)
	fmt.Fprintln(w, "               STRIPE_WEBHOOK_SECRET=$(cat .whsec) PRICE_PRO_MONTHLY=<a price ID setup printed>")
	fmt.Fprintln(w, "Pay a Checkout Session at its url with the card 4242 4242 4242 4242. Move the clock:")
	fmt.Fprintf(w, "  billing stripe advance 31d --api-base %s\n", res.URL)
	fmt.Fprintf(w, "  curl -u %s: -d by=31d %s/_billingtest/clock/advance\n", offlineKey, res.URL)
	fmt.Fprintf(w, "List its events: billing stripe events --api-base %s\n", res.URL)
	if res.WebhookEndpoint != "" {
		fmt.Fprintf(w, "\nWebhooks: every event is POSTed to %s (endpoint %s, API version %s).\n", res.WebhookURL, res.WebhookEndpoint, pinnedVersion)
		switch {
		case res.SecretFile != "":
			fmt.Fprintf(w, "Its signing secret (STRIPE_WEBHOOK_SECRET) is in %s (mode 0600).\n", res.SecretFile)
		case res.SecretWithheld:
			fmt.Fprintln(w, "Its signing secret (STRIPE_WEBHOOK_SECRET) was not shown: stdout is not a terminal.\n"+
				"  Run serve on a terminal, or with --secret-file PATH (written with mode 0600).")
		}
	}
	fmt.Fprintf(w, "\n%s Ctrl-C stops it.\n", stripeReady)
}

// The client of advance, clock and events.

// offlineStripe is a running offline Stripe, as the client commands reach it.
type offlineStripe struct {
	base, key string
	hc        *http.Client
}

// offlineClient finds the server (--api-base, STRIPE_API_BASE, the
// default address) and the key (STRIPE_SECRET_KEY, else offlineKey).
func (a *app) offlineClient(apiBase string) (*offlineStripe, error) {
	base := cmp.Or(apiBase, strings.TrimSpace(a.io.getenv("STRIPE_API_BASE")), "http://"+defaultStripeAddr)
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("API base %q: want an http(s) URL such as http://%s", base, defaultStripeAddr)
	}
	key := cmp.Or(strings.TrimSpace(a.io.getenv("STRIPE_SECRET_KEY")), offlineKey)
	if strings.HasPrefix(key, "sk_live_") || strings.HasPrefix(key, "rk_live_") {
		return nil, usagef("STRIPE_SECRET_KEY is a live key: billing stripe talks to the offline Stripe, which takes test keys only (unset it to use %s)", offlineKey)
	}
	return &offlineStripe{base: strings.TrimSuffix(base, "/"), key: key, hc: &http.Client{}}, nil
}

// call makes a request (form in the query for GET, in the body for POST)
// and decodes the JSON answer into out; an error answer becomes an error
// with Stripe's message.
func (c *offlineStripe) call(ctx context.Context, method, path string, form url.Values, out any) error {
	u := c.base + path
	var body io.Reader
	if method == http.MethodGet {
		if len(form) > 0 {
			u += "?" + form.Encode()
		}
	} else {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Stripe-Version", billingtest.APIVersion)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w (is 'billing stripe serve' running there?)", method, c.base+path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Type, Code, Param, Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) != nil || e.Error.Message == "" {
			return fmt.Errorf("%s %s: HTTP %d (is %s an offline Stripe from 'billing stripe serve'?)", method, path, resp.StatusCode, c.base)
		}
		msg := fmt.Sprintf("%s %s: %s (%d %s", method, path, e.Error.Message, resp.StatusCode, e.Error.Type)
		if e.Error.Code != "" {
			msg += " " + e.Error.Code
		}
		msg += ")"
		if resp.StatusCode == http.StatusNotFound && strings.HasPrefix(path, billingtest.ControlPrefix) {
			msg += fmt.Sprintf("; the clock routes are billingtest's own: is %s 'billing stripe serve'?", c.base)
		}
		return errors.New(msg)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not what billingtest sends: %w", method, path, err)
	}
	return nil
}

// eventLine is the part of an event the commands print.
type eventLine struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Created int64  `json:"created"`
	Data    struct {
		Object struct {
			ID string `json:"id"`
		} `json:"object"`
	} `json:"data"`
}

// printEvents writes one line per event: its time, type, object and ID.
func printEvents(w io.Writer, events []json.RawMessage) error {
	for _, raw := range events {
		var e eventLine
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("an event that is not one: %w", err)
		}
		fmt.Fprintf(w, "  %s  %-42s %-30s %s\n", unixTime(e.Created), e.Type, e.Data.Object.ID, e.ID)
	}
	return nil
}

func unixTime(sec int64) string { return time.Unix(sec, 0).UTC().Format(time.RFC3339) }

// nextLine says when the clock next has something to do.
func nextLine(next *int64) string {
	if next == nil {
		return "Nothing is scheduled."
	}
	return "Next due: " + unixTime(*next) + " (billing stripe advance --to-next)."
}

// advance

type advanceOpts struct {
	apiBase, to string
	toNext      bool
}

func (a *app) stripeAdvanceCmd() *cobra.Command {
	var o advanceOpts
	cmd := &cobra.Command{
		Use:   "advance [DURATION]",
		Short: "Move the offline Stripe's clock forward and print the events that caused",
		Long: `advance moves the clock of the offline Stripe ('billing stripe serve') forward:
by DURATION (Go's units plus d for days: 31d, 1d12h, 36h, 90m), to the next
due event (--to-next), or to a time (--to). Meanwhile it does what Stripe
does: renewals, payment retries, trial ends, scheduled cancellations, and
their webhooks. It prints the events that caused, oldest first (--json: the
control route's answer, events in full).

It calls POST /_billingtest/clock/advance at --api-base (else STRIPE_API_BASE,
else http://` + defaultStripeAddr + `) with STRIPE_SECRET_KEY (unset: ` + offlineKey + `).`,
		Example: `  billing stripe advance 31d
  billing stripe advance --to-next --api-base http://127.0.0.1:12111
  billing stripe advance --to 2026-03-01T00:00:00Z --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.runAdvance(cmd.Context(), o, args) },
	}
	f := cmd.Flags()
	f.StringVar(&o.apiBase, "api-base", "", "the offline Stripe's URL (default: STRIPE_API_BASE, else http://"+defaultStripeAddr+")")
	f.BoolVar(&o.toNext, "to-next", false, "advance to the next due event")
	f.StringVar(&o.to, "to", "", "advance to this time (RFC 3339 or YYYY-MM-DD)")
	return cmd
}

func (a *app) runAdvance(ctx context.Context, o advanceOpts, args []string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	form := url.Values{}
	n := 0
	if len(args) == 1 {
		n++
		d, err := billingtest.ParseDuration(args[0])
		if err != nil {
			return usagef("%q is not a duration: use Go's units (h, m, s) and d for days, e.g. 31d or 1d12h", args[0])
		}
		if d < 0 {
			return usagef("%q: the clock only moves forward", args[0])
		}
		form.Set("by", args[0])
	}
	if o.toNext {
		n++
		form.Set("to_next_event", "true")
	}
	if o.to != "" {
		n++
		t, err := parseStart(o.to)
		if err != nil {
			return usagef("--to %q: want RFC 3339 (2026-03-01T00:00:00Z) or a date (2026-03-01)", o.to)
		}
		form.Set("to", strconv.FormatInt(t.Unix(), 10))
	}
	if n != 1 {
		return usagef("say how far: a DURATION (31d), --to-next or --to TIME, one of them")
	}
	c, err := a.offlineClient(o.apiBase)
	if err != nil {
		return err
	}
	var res billingtest.ClockAdvance
	if err := c.call(ctx, http.MethodPost, billingtest.ControlPrefix+"clock/advance", form, &res); err != nil {
		return err
	}
	if res.Events == nil {
		res.Events = []json.RawMessage{}
	}
	if a.json {
		return a.printJSON(&res)
	}
	w := a.io.out
	d := time.Duration(res.Now-res.From) * time.Second
	fmt.Fprintf(w, "Clock: %s -> %s (%s); %d event(s):\n", unixTime(res.From), unixTime(res.Now), formatDays(d), len(res.Events))
	if err := printEvents(w, res.Events); err != nil {
		return err
	}
	fmt.Fprintln(w, nextLine(res.NextEvent))
	return nil
}

// formatDays writes d with days: 31d, 1d12h0m0s, 2h0m0s.
func formatDays(d time.Duration) string {
	days := d / (24 * time.Hour)
	rest := d % (24 * time.Hour)
	switch {
	case days == 0:
		return rest.String()
	case rest == 0:
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd%s", days, rest)
}

// clock

func (a *app) stripeClockCmd() *cobra.Command {
	var apiBase string
	cmd := &cobra.Command{
		Use:   "clock",
		Short: "Read the offline Stripe's clock and when something is next due",
		Long: `clock reads the clock of the offline Stripe ('billing stripe serve'): what it
reads, and when it next has something to do (a renewal, a retry, a trial's
end...). It calls GET /_billingtest/clock.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmp.Or(cmd.Context(), context.Background())
			c, err := a.offlineClient(apiBase)
			if err != nil {
				return err
			}
			var res billingtest.ClockState
			if err := c.call(ctx, http.MethodGet, billingtest.ControlPrefix+"clock", nil, &res); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(&res)
			}
			fmt.Fprintf(a.io.out, "Clock: %s (API %s)\n%s\n", unixTime(res.Now), res.APIVersion, nextLine(res.NextEvent))
			return nil
		},
	}
	cmd.Flags().StringVar(&apiBase, "api-base", "", "the offline Stripe's URL (default: STRIPE_API_BASE, else http://"+defaultStripeAddr+")")
	return cmd
}

// events

// eventList is what events --json prints: a Stripe list, its pages joined.
type eventList struct {
	Object  string            `json:"object"`
	URL     string            `json:"url"`
	HasMore bool              `json:"has_more"`
	Data    []json.RawMessage `json:"data"`
}

func (a *app) stripeEventsCmd() *cobra.Command {
	var (
		apiBase, typ string
		limit        int
	)
	cmd := &cobra.Command{
		Use:   "events",
		Short: "List the offline Stripe's events, newest first",
		Long: `events lists the events of the offline Stripe ('billing stripe serve') from
GET /v1/events, newest first, as Stripe lists them: up to --limit, of --type
(an event type, or a pattern such as invoice.*). --json prints them in full,
as one Stripe list.`,
		Example: `  billing stripe events --type 'invoice.*'
  billing stripe events --type invoice.paid --limit 100 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmp.Or(cmd.Context(), context.Background())
			if limit < 1 || limit > 10000 {
				return usagef("--limit %d: want 1 to 10000", limit)
			}
			c, err := a.offlineClient(apiBase)
			if err != nil {
				return err
			}
			out := eventList{Object: "list", URL: "/v1/events", Data: []json.RawMessage{}}
			form := url.Values{}
			if typ != "" {
				form.Set("type", typ)
			}
			for {
				form.Set("limit", strconv.Itoa(min(100, limit-len(out.Data))))
				var page eventList
				if err := c.call(ctx, http.MethodGet, "/v1/events", form, &page); err != nil {
					return err
				}
				out.Data = append(out.Data, page.Data...)
				out.HasMore = page.HasMore
				if !page.HasMore || len(page.Data) == 0 || len(out.Data) >= limit {
					break
				}
				var last eventLine
				if err := json.Unmarshal(page.Data[len(page.Data)-1], &last); err != nil {
					return fmt.Errorf("GET /v1/events: %w", err)
				}
				form.Set("starting_after", last.ID)
			}
			if a.json {
				return a.printJSON(&out)
			}
			more := ""
			if out.HasMore {
				more = " (more: raise --limit)"
			}
			fmt.Fprintf(a.io.out, "%d event(s), newest first%s:\n", len(out.Data), more)
			return printEvents(a.io.out, out.Data)
		},
	}
	f := cmd.Flags()
	f.StringVar(&apiBase, "api-base", "", "the offline Stripe's URL (default: STRIPE_API_BASE, else http://"+defaultStripeAddr+")")
	f.StringVar(&typ, "type", "", "only events of this type (invoice.paid, or a pattern: invoice.*)")
	f.IntVar(&limit, "limit", 10, "at most this many events")
	return cmd
}
