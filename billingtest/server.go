// Package billingtest is an offline Stripe for testing apps that use
// package billing, and for running them without a Stripe account: a
// stateful fake of the Stripe API subset billing calls, served over HTTP
// in Stripe's shapes (form-encoded requests, JSON responses, API
// 2025-08-27.basil) so that a stripe-go v82 client pointed at [Stripe.URL]
// works unchanged.
//
// It keeps state (customers, products, prices, Checkout Sessions, portal
// sessions, subscriptions, invoices, events), honours idempotency keys as
// Stripe does, and answers with Stripe-shaped errors. Its simulated clock
// keeps ticking in real time from [Options].Start and moves forward with
// [Stripe.Advance], which does what Stripe does meanwhile: renewals, payment
// retries, trial ends, scheduled cancellations. Pass the Stripe itself as
// billing.Config.Clock ([Stripe.Now] and [Stripe.Sleep]). Every response
// carries a Date header in simulated time, a Request-Id and a
// Stripe-Version.
//
// Periods follow Stripe's calendar: a monthly price renews on the billing
// anchor's day of the month, clamped to the month's last day (anchored on
// Jan 31: Feb 28 or 29, then Mar 31); a yearly one on the anchor's date
// (Feb 29: Feb 28 in other years); weekly and daily prices last 7 days and
// 1 day. Trials, payment retries and trial_will_end count days. The
// anchor is the subscription's start, or its trial's end.
//
// # Endpoints
//
//	POST   /v1/customers                          email, name, metadata, description, phone,
//	                                              address[line1|line2|city|state|postal_code|country]
//	GET    /v1/customers                          email, created; pagination
//	GET    /v1/customers/{id}
//	POST   /v1/customers/{id}                     email, name, metadata, description, phone, address
//	POST   /v1/products                           name, id, active, description, metadata
//	GET    /v1/products                           active, ids[], created; pagination
//	GET    /v1/products/{id}
//	POST   /v1/products/{id}                      name, active, description, metadata
//	POST   /v1/prices                             product or product_data[name], unit_amount,
//	                                              currency, recurring[interval],
//	                                              recurring[interval_count], lookup_key,
//	                                              transfer_lookup_key, nickname, active, metadata
//	GET    /v1/prices                             lookup_keys[], active, type, product, currency,
//	                                              recurring[interval], created; pagination
//	GET    /v1/prices/{id}                        expand[]=product
//	POST   /v1/prices/{id}                        active, lookup_key ("" to remove),
//	                                              transfer_lookup_key, nickname, metadata
//	POST   /v1/checkout/sessions                  mode (payment, subscription, setup), ui_mode,
//	                                              customer, customer_email, client_reference_id,
//	                                              success_url, cancel_url, return_url, currency,
//	                                              line_items[i][price|quantity], line_items[i]
//	                                              [price_data][currency|product|product_data[name|
//	                                              description]|unit_amount|recurring[interval|
//	                                              interval_count]], billing_address_collection,
//	                                              subscription_data[description],
//	                                              metadata, subscription_data[metadata],
//	                                              subscription_data[trial_period_days],
//	                                              allow_promotion_codes, expires_at,
//	                                              payment_method_collection (always, if_required),
//	                                              subscription_data[trial_settings][end_behavior]
//	                                              [missing_payment_method]
//	GET    /v1/checkout/sessions                  customer, status, subscription,
//	                                              payment_intent, created; pagination
//	GET    /v1/checkout/sessions/{id}             expand[]=line_items, subscription,
//	                                              subscription.latest_invoice, customer, invoice
//	POST   /v1/checkout/sessions/{id}/expire
//	GET    /v1/checkout/sessions/{id}/line_items  pagination
//	POST   /v1/billing_portal/sessions            customer, return_url, configuration, locale
//	GET    /v1/subscriptions                      customer, price, status (default: all but
//	                                              canceled; "all", "ended"), created; pagination
//	GET    /v1/subscriptions/{id}                 expand[]=latest_invoice, customer
//	POST   /v1/subscriptions                      customer, items[i][price|quantity],
//	                                              default_payment_method, trial_period_days,
//	                                              metadata, description, payment_behavior
//	                                              (allow_incomplete, error_if_incomplete)
//	POST   /v1/subscriptions/{id}                 cancel_at_period_end, cancel_at (unix,
//	                                              max_period_end, min_period_end, or "" to
//	                                              clear), items[i][id|price|quantity],
//	                                              proration_behavior, metadata,
//	                                              cancellation_details[comment|feedback],
//	                                              pause_collection[behavior|resumes_at] ("" to
//	                                              resume), description
//	DELETE /v1/subscriptions/{id}                 invoice_now, prorate (ignored),
//	                                              cancellation_details[comment|feedback]
//	POST   /v1/subscriptions/{id}/resume          billing_cycle_anchor (now, unchanged),
//	                                              proration_behavior, proration_date (ignored)
//	POST   /v1/subscription_schedules             from_subscription, metadata
//	GET    /v1/subscription_schedules/{id}
//	POST   /v1/subscription_schedules/{id}        phases[i][items][j][price|quantity],
//	                                              phases[i][start_date|end_date|iterations|
//	                                              proration_behavior], end_behavior (release,
//	                                              cancel), metadata
//	POST   /v1/subscription_schedules/{id}/release
//	POST   /v1/subscription_schedules/{id}/cancel
//	GET    /v1/invoices                           customer, subscription, status,
//	                                              collection_method, created; pagination
//	GET    /v1/invoices/{id}                      expand[]=customer, payments
//	POST   /v1/invoices/create_preview            subscription, customer,
//	                                              subscription_details[items][i][id|price|quantity],
//	                                              subscription_details[proration_behavior|proration_date]
//	GET    /v1/invoice_payments                   invoice, payment[type]=payment_intent,
//	                                              payment[payment_intent], status; pagination
//	GET    /v1/invoice_payments/{id}
//	GET    /v1/payment_intents/{id}
//	GET    /v1/charges/{id}
//	POST   /v1/refunds                            payment_intent or charge, amount, reason,
//	                                              metadata
//	GET    /v1/refunds                            charge, payment_intent, created; pagination
//	GET    /v1/refunds/{id}
//	GET    /v1/disputes                           charge, payment_intent, created; pagination
//	GET    /v1/disputes/{id}
//	POST   /v1/disputes/{id}                      evidence[...] (uncategorized_text decides),
//	                                              submit, metadata
//	GET    /v1/payment_methods/{id}
//	GET    /v1/events                             type (with * wildcards), types[], created,
//	                                              delivery_success; pagination
//	GET    /v1/events/{id}
//	       /v1/webhook_endpoints[/{id}]           webhook endpoints and delivery: see
//	                                              Stripe.AddEndpoint
//
// Every API request needs a test secret key (Bearer or Basic auth): any
// sk_test_ or rk_test_ key is the one account's. No key, a publishable key
// or a malformed one is refused as Stripe refuses it (401, Stripe's
// message, the key redacted); a live key is refused with a billingtest
// error (it is test mode only). A Stripe-Version header of a basil version
// is served and echoed (without one, 2025-08-27.basil); any other release
// train is refused (400) with an error saying billingtest models only
// 2025-08-27.basil: Stripe would serve it, but an app on another SDK must
// fail its tests rather than pass them with shapes it will never get.
//
// Lists are newest first and take limit (1 to 100, default 10),
// starting_after and ending_before, and answer has_more; created filters take
// created=<unix> or created[gt|gte|lt|lte]. expand[] takes the properties
// listed (data.<property> on lists); others are refused.
//
// A parameter Stripe accepts that the fake does not model is refused with
// 400 parameter_not_modelled, naming it and saying it is valid at Stripe
// (the table of Stripe's parameters per route is checked against Stripe's
// schema); one Stripe does not know is refused as Stripe refuses it (400
// parameter_unknown), as are bad values (400
// parameter_invalid..., or parameter_missing for a required one); an
// unknown ID in the path is a 404 resource_missing, an unknown ID in a
// parameter a 400 resource_missing naming it.
//
// Events are kept for 30 simulated days, as /v1/events keeps them: older ones
// are neither listed nor retrievable (but stay in [Stripe.Events]). Checkout
// Sessions expire at their expires_at (24 hours after creation unless set):
// the fake notices it on the next API request, accessor call, simulator call
// or [Stripe.Advance], and emits checkout.session.expired then (Advance at
// expires_at itself).
//
// Idempotency (POST and DELETE): the first response to a key is saved and
// replayed, with the headers Idempotent-Replayed: true and Original-Request
// (the first request's ID), for 24 simulated hours; the same key with other
// parameters or on another endpoint is a 400 idempotency_error, and a key whose first request is still running a 409
// idempotency_error (code idempotency_key_in_use). Results are saved once the
// endpoint starts executing: invalid requests (invalid_request_error) and
// injected failures ([Stripe.SetFail]) are not saved and can be retried with
// the same key.
//
// Of the API's mutations, expiring a session, updating and canceling a
// subscription emit the events the simulator's methods for the same changes
// emit (customer.subscription.updated, once per request and only if
// something changed, or .deleted; checkout.session.expired), with the
// request's ID and idempotency key in their request field. Creating a
// customer emits customer.created, updating one customer.updated (with
// previous_attributes, only if something changed); creating a product
// product.created, a price price.created (and price.updated for the price
// a transfer_lookup_key took the key from). [Stripe.AddPrice] is a fixture
// and emits nothing.
//
// # Events
//
// Each step emits what Stripe sends for it, in Stripe's order. A paid
// subscription Checkout: customer.created (for a customer Checkout made),
// payment_method.attached, customer.subscription.created, invoice.created,
// invoice.finalized, payment_intent.created, charge.succeeded,
// payment_intent.succeeded, invoice.paid, invoice.payment_succeeded,
// customer.subscription.updated, checkout.session.completed (a trial: no
// payment). A renewal: customer.subscription.updated and invoice.created at
// the period end, then an hour later invoice.finalized,
// payment_intent.created and the attempt: charge.succeeded,
// payment_intent.succeeded, invoice.paid, invoice.payment_succeeded; or
// charge.failed, payment_intent.payment_failed, customer.updated (the
// customer becomes delinquent), invoice.updated, invoice.payment_failed,
// customer.subscription.updated (past_due); with [CardAlwaysAuthenticate]
// payment_intent.requires_action and invoice.payment_action_required
// instead of the charge. A one-time Checkout: payment_intent.created,
// charge.succeeded, payment_intent.succeeded, checkout.session.completed
// (a bank debit: payment_intent.processing, then at settlement the charge,
// the PaymentIntent and checkout.session.async_payment_succeeded or
// _failed). A card saved in the portal: payment_method.attached,
// customer.updated, customer.subscription.updated. invoice.upcoming comes
// three days before each renewal and trial end ([Stripe.SetUpcomingNotice]),
// with a preview of the invoice (ID upcoming_in_…, not retrievable).
//
// Pausing: a trial whose Checkout collected no card
// (payment_method_collection=if_required, paid with [Stripe.Pay] and "")
// ends as its trial_settings say: pause (status paused,
// customer.subscription.updated and customer.subscription.paused; nothing
// renews until POST /v1/subscriptions/{id}/resume, which sends
// customer.subscription.updated, customer.subscription.resumed and charges
// a new period), cancel, or create_invoice (its charge fails: past_due).
// pause_collection is different, as at Stripe: the status stays active and
// only customer.subscription.updated is sent; renewal invoices are voided
// (invoice.voided), kept as drafts, or marked uncollectible
// (invoice.finalized, invoice.marked_uncollectible), never charged, until
// resumes_at or pause_collection="".
//
// # Hosted pages
//
// Checkout Session URLs point at /pay/{id}: a page that lists the line
// items and takes a test card ([CardOK] pays and redirects to the success
// URL, [CardDeclined] declines, [CardChargeFails] attaches to the customer
// but fails every charge, [CardNeedsAuth] asks for a confirm step first).
// Portal session URLs point at /portal/{id}: cancel at period end, cancel
// now, switch plan among the recurring prices, update the card, return.
// [Stripe.Pay] and [Stripe.UpdateCard] do the same from Go, and
// [Stripe.CancelAtPeriodEnd], [Stripe.Uncancel], [Stripe.CancelNow] and
// [Stripe.ChangePrice] what the portal's buttons do.
//
// # One way to do each thing
//
// A Checkout is completed by paying it ([Stripe.Pay], or the page). Time
// passes only through [Stripe.Advance], which renews, retries, ends trials
// and scheduled cancellations and settles bank debits when the clock
// reaches them, and returns the events (a card that fails is a card:
// [CardChargeFails] through [Stripe.UpdateCard]). What an app does through
// the API (cancel_at, expiring a session, changing items) it does through
// the API. Each of these returns the events it caused, so a test can
// deliver them itself, in any order ([Stripe.Events] has them all).
//
// # Time
//
// [Stripe.Advance] runs what Stripe would do as time passes: renewals
// (announced by invoice.upcoming), trial_will_end three days before a trial
// ends, trial ends, scheduled
// cancellations, and failed payments retried 1, 3, 5 and 7 days after the
// first attempt, then [Stripe.SetFailureOutcome]; [Stripe.NextEvent] says
// when the clock next has something to do.
//
// # Webhooks
//
// Events go to endpoints created through /v1/webhook_endpoints (POSTed to
// their URL) and to in-process handlers added with [Stripe.AddEndpoint],
// signed with the endpoint's secret at the real time, retried with backoff;
// [Stripe.Flush] waits for them. [Chaos] shuffles, duplicates, drops and
// delays deliveries.
//
// # Standalone server
//
// [Listen] (or [Options].Listener) serves the fake on a chosen address, so
// that an app in any language, or any process besides the test's, uses it
// as its Stripe; `billing stripe serve` runs one. Point an SDK's API base
// at [Stripe.URL] (stripe-go: BackendConfig.URL; Stripe's Node SDK: host,
// port and protocol "http"; others: their api_base) with any sk_test_ key.
// Webhook endpoints created through /v1/webhook_endpoints are POSTed to
// over HTTP, and the hosted pages' URLs use the listener's address. State
// is kept in memory only, until [Stripe.Close].
//
// Its clock moves over HTTP through billingtest's own control routes (not
// Stripe's: [Stripe.Calls] does not count them; failure injection and
// idempotency keys do not apply). They take the API's test keys, refuse
// the others as the API does, and answer errors in Stripe's error shape
// (400 parameter_missing, parameter_invalid, parameter_unknown,
// parameters_exclusive; 404; 405):
//
//	GET  /_billingtest/clock          {"object": "billingtest.clock", "now": <unix>,
//	                                   "next_event": <unix> or null,
//	                                   "api_version": "2025-08-27.basil"} ([ClockState])
//	POST /_billingtest/clock/advance  exactly one of by=<duration> ([ParseDuration]:
//	                                  Go's units and d for days, e.g. 31d, 1d12h),
//	                                  to=<unix seconds>, to_next_event=true;
//	                                  {"object": "billingtest.clock_advance",
//	                                   "from": <unix>, "now": <unix>,
//	                                   "next_event": <unix> or null,
//	                                   "events": [each event object it emitted,
//	                                   oldest first]} ([ClockAdvance])
//
// An advance is [Stripe.Advance] (it answers once the advance is done,
// renewals' waits for webhook deliveries included); to_next_event moves the
// clock to [Stripe.NextEvent] (with nothing scheduled it only catches up).
// The clock never moves back: a negative by, or a to before the clock's
// time, is refused. For example:
//
//	curl -u sk_test_billingtest: http://127.0.0.1:12111/_billingtest/clock
//	curl -u sk_test_billingtest: -d by=31d http://127.0.0.1:12111/_billingtest/clock/advance
//
// # Prorations and schedules
//
// A price or quantity change (POST /v1/subscriptions/{id} items, or the
// portal's switch) prorates by the second: a credit for the unused time
// of the old price and a charge for the rest of the period at the new one,
// each rounded to the minor unit. create_prorations (the default) adds
// them to the next invoice; always_invoice invoices and charges them at
// once; none changes the price only. POST /v1/invoices/create_preview
// answers what the next invoice would be, with or without a change. A
// subscription schedule made from a subscription switches items at a
// period end (a downgrade at the end of the period): the renewal bills
// the new phase (subscription_schedule.updated), and the last phase's end
// releases the subscription (subscription_schedule.released) or cancels it.
//
// # Fidelity
//
// Every object it serves (responses, list items, expansions, event
// payloads) carries the fields Stripe's OpenAPI schema marks required, with
// Stripe's types, and no field Stripe does not have; its tests check a
// full lifecycle against the schema in stripe-mock's module. State moves as
// it does at Stripe: an automatic payment failure makes the customer
// delinquent until an invoice is paid; the card entered in Checkout is the
// subscription's default_payment_method, and a card update (portal,
// [Stripe.UpdateCard]) the customer's invoice_settings.default_payment_method
// and its live subscriptions'; a charged invoice gets one invoice payment
// (its PaymentIntent, retried by every attempt) when finalized, paid with
// the invoice, as basil finds an invoice's PaymentIntent.
//
// # Where it is not Stripe
//
// Its answers stop being Stripe's here; a test that depends on one of
// these needs Stripe's test mode:
//   - Test mode only, API version 2025-08-27.basil only (other basil
//     versions are answered in its shapes), one account (no Connect, no
//     test clocks: its own clock stands in for them).
//   - No taxes, discounts, coupons or promotion codes (allow_promotion_codes
//     is recorded, no code can be entered), shipping, or currencies beyond
//     each price's own.
//   - A subscription made through the API is paid at once or trialing:
//     one its first payment leaves incomplete (and incomplete_expired a
//     day later) is not modelled.
//   - PaymentIntents, Charges and PaymentMethods can be retrieved, not
//     created, confirmed or listed through the API. Refunds succeed at
//     once (none fails or waits); a dispute opens only with [CardDisputed]
//     and closes only by its test-mode evidence (no balance transactions,
//     files or deadlines).
//   - Prorations are invoice lines, not invoice items: no invoiceitem
//     objects or events; a negative total is due as zero (no customer
//     balance). Schedules are made from a subscription only, their phases
//     meet at period ends.
//   - Line items' prices share a currency, recurring ones an interval; a
//     setup-mode Checkout's SetupIntent cannot be retrieved.
//   - Retry times are the schedule set ([Stripe.SetRetrySchedule]; 1, 3, 5
//     and 7 days by default; [SmartRetries] spreads N tries evenly over a
//     window), not Smart Retries' predictions; only [CardLost] is a hard
//     decline. A renewal's invoice is finalized an hour after it is
//     drafted (deliveries take no simulated time), or 72 hours after when
//     an endpoint gave up on its invoice.created.
//   - No emails, receipts or hosted invoice pages (hosted_invoice_url is
//     a placeholder).
//
// It needs no testing.T: the example site runs it in-process.
package billingtest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/gobilling/billing/billingtest/internal/httpapi"

	"github.com/gobilling/billing/billingtest/internal/delivery"
)

// APIVersion is the Stripe API version the fake speaks and stamps on events.
const APIVersion = "2025-08-27.basil"

// FailureOutcome is what happens to a subscription after the last automatic
// payment retry of an invoice has failed (Stripe's "subscription status"
// setting for failed payments).
type FailureOutcome string

// The possible failure outcomes.
const (
	OutcomeCancel  FailureOutcome = "cancel"   // the subscription is canceled (default)
	OutcomeUnpaid  FailureOutcome = "unpaid"   // the subscription is marked unpaid
	OutcomePastDue FailureOutcome = "past_due" // the subscription is left past_due
)

// Stripe is the fake Stripe. Create it with [New]; it is safe for concurrent
// use.
type Stripe struct {
	ts  *httptest.Server
	mux *http.ServeMux

	// advanceMu serializes Advance, which releases mu while it waits for
	// deliveries; advancing and sleptInAdvance (under mu) keep the time
	// Sleep adds meanwhile.
	advanceMu      sync.Mutex
	advancing      bool
	sleptInAdvance time.Duration

	mu     sync.Mutex    // guards all below but dl, which has its own lock
	offset time.Duration // simulated time = real time + offset
	objects
	settings
	api *httpapi.Router // the HTTP API's plumbing (its state under mu)
	clk clock           // the clock's own state (clock.go)

	dl *delivery.Engine // webhook delivery (delivery.go), made by deliveryRoutes
}

// objects are the account's objects, each kind by ID with its creation
// order, and the events.
type objects struct {
	products   map[string]*product
	prodOrder  []string
	prices     map[string]*price
	priceOrder []string
	customers  map[string]*customer
	custOrder  []string
	sessions   map[string]*session
	sessOrder  []string
	portals    map[string]*portalSession
	subs       map[string]*subscription
	subOrder   []string
	invoices   map[string]*invoice
	invOrder   []string
	invoiceSeq int // invoice numbers
	pms        map[string]*paymentMethod
	pis        map[string]*paymentIntent
	charges    map[string]*charge
	schedules  map[string]*schedule
	refunds    []*refund
	disputes   map[string]*dispute
	dispOrder  []string
	events     []Event
	eventIndex map[string]int
}

// settings are the account's billing settings.
type settings struct {
	outcome  FailureOutcome  // after the last failed retry
	retries  []time.Duration // the retry schedule
	upcoming time.Duration   // invoice.upcoming notice; 0: none
}

// Options configures [New].
type Options struct {
	// Start is what the simulated clock reads at New; it then ticks in
	// real time. Zero means the real current time.
	Start time.Time

	// Listener, if set, is where the fake serves (see [Listen]), and its
	// address is the one in [Stripe.URL] and in the hosted pages' URLs;
	// [Stripe.Close] closes it. Nil means a new random port on the
	// loopback interface.
	Listener net.Listener
}

// New starts an offline Stripe on opts.Listener, or on a random local
// port. Call [Stripe.Close] when done.
func New(opts Options) *Stripe {
	start := opts.Start
	s := &Stripe{
		mux: http.NewServeMux(),
		objects: objects{
			products: map[string]*product{}, prices: map[string]*price{}, customers: map[string]*customer{},
			sessions: map[string]*session{}, portals: map[string]*portalSession{}, subs: map[string]*subscription{},
			invoices: map[string]*invoice{}, pms: map[string]*paymentMethod{}, pis: map[string]*paymentIntent{},
			charges: map[string]*charge{}, schedules: map[string]*schedule{}, eventIndex: map[string]int{},
			disputes: map[string]*dispute{},
		},
		settings: settings{outcome: OutcomeCancel, retries: defaultRetries(), upcoming: defaultUpcoming},
		clk:      clock{},
	}
	if !start.IsZero() {
		s.offset = time.Until(start)
	}
	s.api = httpapi.NewRouter(s.mux, &s.mu, s.now, s.expireDueSessions, validParams)
	s.routes()
	s.controlRoutes()
	s.ts = serve(s.mux, opts.Listener)
	return s
}

// URL is the base URL of the fake API (for stripe.BackendConfig.URL).
func (s *Stripe) URL() string { return s.ts.URL }

// Close stops webhook delivery and shuts the HTTP server down.
func (s *Stripe) Close() {
	s.dl.Close()
	s.ts.Close()
}

// Now returns the simulated current time.
func (s *Stripe) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now()
}

// Sleep lets d pass on the simulated clock at once, without waiting: it
// moves the clock forward by d (a negative or zero d does nothing). As when
// the clock ticks in real time, what falls due meanwhile waits for the next
// [Stripe.Advance]. It returns ctx's error if ctx is done. With it a Stripe
// is a billing.Clock (Config.Clock), so that billing's retries and waits
// take no real time in tests.
func (s *Stripe) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d > 0 {
		s.mu.Lock()
		s.offset += d
		if s.advancing {
			s.sleptInAdvance += d
		}
		s.mu.Unlock()
	}
	return nil
}

func (s *Stripe) now() time.Time { return time.Now().Add(s.offset) }
func (s *Stripe) unix() int64    { return s.now().Unix() }

// Calls returns how many requests each route received, keyed by method and
// route pattern, e.g. "GET /v1/subscriptions/{id}". Requests to unknown
// routes are keyed by their method and literal path.
func (s *Stripe) Calls() map[string]int { return s.api.Calls() }

// TotalCalls returns the number of API requests received since the last
// [Stripe.ResetCalls].
func (s *Stripe) TotalCalls() int {
	n := 0
	for _, v := range s.api.Calls() {
		n += v
	}
	return n
}

// ResetCalls clears the request counters.
func (s *Stripe) ResetCalls() { s.api.ResetCalls() }

// SetFail makes the next n requests to route (a key as in [Stripe.Calls],
// e.g. "POST /v1/checkout/sessions") fail with a Stripe-style api_error of
// the given HTTP status (429 gets code rate_limit). An injected failure
// happens before the endpoint runs, so it is not saved for idempotent
// replay: a retry with the same key executes. n <= 0 clears the injection.
func (s *Stripe) SetFail(route string, status int, n int) { s.api.SetFail(route, status, n) }

// routes registers the API.
func (s *Stripe) routes() {
	s.api.Handle("POST /v1/customers", s.createCustomer)
	s.api.Handle("GET /v1/customers", s.listCustomers)
	s.api.Handle("GET /v1/customers/{id}", s.getCustomer)
	s.api.Handle("POST /v1/customers/{id}", s.updateCustomer)
	s.api.Handle("POST /v1/products", s.createProduct)
	s.api.Handle("GET /v1/products", s.listProducts)
	s.api.Handle("GET /v1/products/{id}", s.getProduct)
	s.api.Handle("POST /v1/products/{id}", s.updateProduct)
	s.api.Handle("POST /v1/prices", s.createPrice)
	s.api.Handle("GET /v1/prices", s.listPrices)
	s.api.Handle("GET /v1/prices/{id}", s.getPrice)
	s.api.Handle("POST /v1/prices/{id}", s.updatePrice)
	s.api.Handle("POST /v1/checkout/sessions", s.createSession)
	s.api.Handle("GET /v1/checkout/sessions", s.listSessions)
	s.api.Handle("GET /v1/checkout/sessions/{id}", s.getSession)
	s.api.Handle("POST /v1/checkout/sessions/{id}/expire", s.expireSessionAPI)
	s.api.Handle("GET /v1/checkout/sessions/{id}/line_items", s.listLineItems)
	s.api.Handle("POST /v1/billing_portal/sessions", s.createPortal)
	s.api.Handle("GET /v1/subscriptions", s.listSubscriptions)
	s.api.Handle("GET /v1/subscriptions/{id}", s.getSubscription)
	s.api.Handle("POST /v1/subscriptions", s.createSubscription)
	s.api.Handle("POST /v1/subscriptions/{id}", s.updateSubscription)
	s.api.Handle("DELETE /v1/subscriptions/{id}", s.cancelSubscription)
	s.api.Handle("POST /v1/subscriptions/{id}/resume", s.resumeSubscription)
	s.api.Handle("POST /v1/refunds", s.createRefund)
	s.api.Handle("GET /v1/refunds", s.listRefunds)
	s.api.Handle("GET /v1/refunds/{id}", s.getRefund)
	s.api.Handle("GET /v1/disputes", s.listDisputes)
	s.api.Handle("GET /v1/disputes/{id}", s.getDispute)
	s.api.Handle("POST /v1/disputes/{id}", s.updateDispute)
	s.api.Handle("POST /v1/subscription_schedules", s.createSchedule)
	s.api.Handle("GET /v1/subscription_schedules/{id}", s.getSchedule)
	s.api.Handle("POST /v1/subscription_schedules/{id}", s.updateSchedule)
	s.api.Handle("POST /v1/subscription_schedules/{id}/release", s.releaseSchedule)
	s.api.Handle("POST /v1/subscription_schedules/{id}/cancel", s.cancelSchedule)
	s.api.Handle("GET /v1/invoices", s.listInvoices)
	s.api.Handle("GET /v1/invoices/{id}", s.getInvoice)
	s.api.Handle("POST /v1/invoices/create_preview", s.createPreview)
	s.api.Handle("GET /v1/invoice_payments", s.listInvoicePayments)
	s.api.Handle("GET /v1/invoice_payments/{id}", s.getInvoicePayment)
	s.api.Handle("GET /v1/payment_intents/{id}", s.getPaymentIntent)
	s.api.Handle("GET /v1/charges/{id}", s.getCharge)
	s.api.Handle("GET /v1/payment_methods/{id}", s.getPaymentMethod)
	s.api.Handle("GET /v1/events", s.listEvents)
	s.api.Handle("GET /v1/events/{id}", s.getEvent)
	s.deliveryRoutes()
	s.portalRoutes()
	s.api.Handle("/", func(r *http.Request) (int, any) {
		return 0, &httpapi.Error{Status: 404, Type: "invalid_request_error",
			Message: fmt.Sprintf("Unrecognized request URL (%s: %s). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.", r.Method, r.URL.Path)}
	})
	s.pageRoutes()
}
