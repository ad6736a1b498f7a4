package billingtest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/stripespec"
	"github.com/gobilling/billing/internal/testcatalog"
)

// newerThanSpec are the fields billingtest serves that are newer than the
// schema it is checked against (stripe-mock v0.195.0's, 2025-05-28.basil)
// and that stripe-go v82 (2025-08-27.basil) has: allowed, and nothing else.
var newerThanSpec = []string{
	"subscription.billing_mode",
	"checkout.session.origin_context",
}

// exchange is one API response billingtest served.
type exchange struct {
	method, path string
	status       int
	body         []byte
}

// recorder is an http.RoundTripper keeping every response.
type recorder struct {
	mu  sync.Mutex
	out []exchange
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	r.mu.Lock()
	r.out = append(r.out, exchange{req.Method, req.URL.Path, resp.StatusCode, body})
	r.mu.Unlock()
	return resp, nil
}

// TestShapesMatchStripesSchema runs a full lifecycle through the API and
// the simulator and checks every response, list item, expansion, event and
// delivered webhook payload against Stripe's OpenAPI schema: no required
// field missing, no wrong type or enum value, no field Stripe does not have
// (but the listed newer ones).
func TestShapesMatchStripesSchema(t *testing.T) {
	spec := stripespec.ForTest(t, newerThanSpec...)
	srv := lifecycleStripe(t)
	rec := &recorder{}
	sc := stripe.NewClient("sk_test_x", stripe.WithBackends(stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL: stripe.String(srv.URL()), HTTPClient: &http.Client{Transport: rec},
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	})))
	var delivered [][]byte
	var dmu sync.Mutex
	srv.AddEndpoint(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		dmu.Lock()
		delivered = append(delivered, b)
		dmu.Unlock()
	}), billingtest.EndpointOptions{})

	lifecycle(t, srv, sc)
	require.NoError(t, srv.Flush(ctx))

	var problems []string
	seen := map[string]int{}
	for _, x := range rec.out {
		for _, p := range spec.Response(x.method, x.path, x.status, x.body) {
			problems = append(problems, fmt.Sprintf("%s %s (%d): %s", x.method, x.path, x.status, p))
		}
		seen[fmt.Sprintf("%s %d", x.method, x.status)]++
	}
	types := map[string]bool{}
	for _, ev := range srv.Events() {
		types[ev.Type] = true
		for _, p := range spec.Object(ev.JSON) {
			problems = append(problems, fmt.Sprintf("event %s: %s", ev.Type, p))
		}
	}
	for _, b := range delivered {
		for _, p := range spec.Object(b) {
			problems = append(problems, fmt.Sprintf("delivered payload: %s", p))
		}
	}
	sort.Strings(problems)
	problems = dedupe(problems)
	t.Logf("checked %d responses, %d events and %d delivered payloads of %d event types against Stripe's schema",
		len(rec.out), len(srv.Events()), len(delivered), len(types))
	assert.Empty(t, problems, "%d differences from Stripe's schema:\n%s", len(problems), strings.Join(problems, "\n"))
	// The lifecycle went where it should (a check that the test checks).
	assert.GreaterOrEqual(t, len(rec.out), 40)
	assert.GreaterOrEqual(t, len(delivered), len(srv.Events()))
	for _, typ := range []string{"checkout.session.completed", "customer.subscription.trial_will_end",
		"invoice.updated", "invoice.payment_failed", "invoice.paid", "customer.subscription.deleted",
		"checkout.session.async_payment_succeeded", "checkout.session.expired", "payment_intent.requires_action",
		"invoice.payment_action_required", "charge.failed", "payment_method.attached", "product.created",
		"price.created", "customer.updated", "invoice.updated", "checkout.session.async_payment_failed",
		"invoice.upcoming", "customer.subscription.paused", "customer.subscription.resumed", "invoice.voided",
		"invoice.marked_uncollectible", "subscription_schedule.created", "subscription_schedule.updated",
		"subscription_schedule.released", "refund.created", "charge.refunded", "charge.dispute.created",
		"charge.dispute.updated", "charge.dispute.closed", "product.updated"} {
		assert.True(t, types[typ], "no %s event", typ)
	}
	assert.Positive(t, seen["GET 404"]+seen["POST 400"], "no error responses")
	paths := map[string]bool{}
	for _, x := range rec.out {
		paths[routeOf(x.path)] = true
	}
	for _, p := range []string{"/v1/invoice_payments", "/v1/invoice_payments/{id}", "/v1/invoices/{id}",
		"/v1/payment_intents/{id}", "/v1/charges/{id}", "/v1/payment_methods/{id}", "/v1/subscriptions/{id}/resume",
		"/v1/invoices/create_preview", "/v1/subscription_schedules/{id}",
		"/v1/checkout/sessions/{id}/line_items", "/v1/webhook_endpoints/{id}", "/v1/events/{id}",
		"/v1/refunds", "/v1/refunds/{id}", "/v1/disputes/{id}", "/v1/prices/{id}", "/v1/products/{id}"} {
		assert.True(t, paths[p], "%s was not checked", p)
	}
}

// routeOf replaces a path's object IDs with {id}.
func routeOf(path string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if i > 1 && strings.Contains(p, "_") && p != "line_items" && p != "invoice_payments" && p != "webhook_endpoints" && p != "payment_intents" && p != "payment_methods" && p != "subscription_schedules" && p != "create_preview" {
			parts[i] = "{id}"
		}
	}
	return strings.Join(parts, "/")
}

// dedupe drops repeats from a sorted list.
func dedupe(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// lifecycleStripe is a Stripe with the prices lifecycle uses.
func lifecycleStripe(t *testing.T) *billingtest.Stripe {
	t.Helper()
	srv := billingtest.New(billingtest.Options{Start: start})
	t.Cleanup(srv.Close)
	srv.AddPrice("price_month", "month", 1000)
	srv.AddPrice("price_pro", "month", 3000)
	srv.AddPrice("price_lite", "month", 400)
	srv.AddPrice("price_once", "", 2500)
	return srv
}

// lifecycle runs every API route and simulator step billingtest has.
func lifecycle(t *testing.T, srv *billingtest.Stripe, sc *stripe.Client) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		require.NoError(t, err)
	}
	steps := func(_ []billingtest.Event, err error) {
		t.Helper()
		require.NoError(t, err)
	}

	ex := stripe.StringSlice

	// Catalog.
	prod, err := sc.V1Products.Create(ctx, &stripe.ProductCreateParams{Name: stripe.String("Team")})
	must(err)
	pr, err := sc.V1Prices.Create(ctx, &stripe.PriceCreateParams{Product: stripe.String(prod.ID),
		Currency: stripe.String("usd"), UnitAmount: stripe.Int64(9900), LookupKey: stripe.String("team_yearly"),
		Recurring: &stripe.PriceCreateRecurringParams{Interval: stripe.String("year")}})
	must(err)
	_, err = sc.V1Prices.Retrieve(ctx, pr.ID, &stripe.PriceRetrieveParams{Expand: ex([]string{"product"})})
	must(err)
	_, err = sc.V1Products.Retrieve(ctx, prod.ID, nil)
	must(err)
	_, err = sc.V1Products.Update(ctx, prod.ID, &stripe.ProductUpdateParams{Description: stripe.String("For teams"),
		Metadata: map[string]string{"tier": "team"}})
	must(err)
	pr2, err := sc.V1Prices.Create(ctx, &stripe.PriceCreateParams{Product: stripe.String(prod.ID),
		Currency: stripe.String("usd"), UnitAmount: stripe.Int64(10900),
		Recurring: &stripe.PriceCreateRecurringParams{Interval: stripe.String("year")}})
	must(err)
	_, err = sc.V1Prices.Update(ctx, pr2.ID, &stripe.PriceUpdateParams{LookupKey: stripe.String("team_yearly"),
		TransferLookupKey: stripe.Bool(true)})
	must(err)
	_, err = sc.V1Prices.Update(ctx, pr.ID, &stripe.PriceUpdateParams{Active: stripe.Bool(false)})
	must(err)
	for _, err := range sc.V1Prices.List(ctx, &stripe.PriceListParams{LookupKeys: []*string{stripe.String("team_yearly")}}) {
		must(err)
	}
	for _, err := range sc.V1Products.List(ctx, nil) {
		must(err)
	}

	// A customer.
	cus, err := sc.V1Customers.Create(ctx, &stripe.CustomerCreateParams{Email: stripe.String("a@example.com"),
		Name: stripe.String("Ann"), Metadata: map[string]string{"user_id": "u1"}})
	must(err)
	_, err = sc.V1Customers.Update(ctx, cus.ID, &stripe.CustomerUpdateParams{Name: stripe.String("Ann B")})
	must(err)
	_, err = sc.V1Customers.Retrieve(ctx, cus.ID, nil)
	must(err)
	for _, err := range sc.V1Customers.List(ctx, &stripe.CustomerListParams{Email: stripe.String("a@example.com")}) {
		must(err)
	}

	// A subscription with a trial, through the hosted page.
	cs, err := sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{
		Mode: stripe.String("subscription"), Customer: stripe.String(cus.ID), ClientReferenceID: stripe.String("u1"),
		SuccessURL: stripe.String("https://app.test/ok"), CancelURL: stripe.String("https://app.test/no"),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_month"), Quantity: stripe.Int64(1)}},
		SubscriptionData: &stripe.CheckoutSessionCreateSubscriptionDataParams{
			TrialPeriodDays: stripe.Int64(7), Metadata: map[string]string{"user_id": "u1"}},
		Metadata: map[string]string{"user_id": "u1"},
	})
	must(err)
	_, err = srv.Pay(cs.ID, billingtest.CardOK)
	must(err)
	got, err := sc.V1CheckoutSessions.Retrieve(ctx, cs.ID, &stripe.CheckoutSessionRetrieveParams{Expand: ex([]string{"subscription.latest_invoice", "customer", "line_items"})})
	must(err)
	sub := got.Subscription.ID
	for _, err := range sc.V1CheckoutSessions.ListLineItems(ctx, &stripe.CheckoutSessionListLineItemsParams{Session: stripe.String(cs.ID)}) {
		must(err)
	}
	for _, err := range sc.V1CheckoutSessions.List(ctx, &stripe.CheckoutSessionListParams{Customer: stripe.String(cus.ID)}) {
		must(err)
	}
	steps(testcatalog.TrialWillEnd(srv, sub))
	steps(testcatalog.EndTrial(srv, sub))
	steps(testcatalog.Renew(srv, sub))

	// A failed renewal, its retries, and recovery after a card update.
	must(testcatalog.SetCardFailing(srv, cus.ID, true))
	steps(testcatalog.Renew(srv, sub))
	steps(testcatalog.Retry(srv, sub))
	must(testcatalog.Err(srv.UpdateCard(cus.ID, billingtest.CardOK)))
	apiSub, err := sc.V1Subscriptions.Create(ctx, &stripe.SubscriptionCreateParams{Customer: stripe.String(cus.ID),
		Items: []*stripe.SubscriptionCreateItemParams{{Price: stripe.String("price_lite")}}, Expand: ex([]string{"latest_invoice"})})
	must(err)
	_, err = sc.V1Subscriptions.Cancel(ctx, apiSub.ID, nil)
	must(err)
	steps(testcatalog.Retry(srv, sub))

	// Plan changes with prorations (on the next invoice, and at once), a
	// preview, a downgrade scheduled at the period end, the portal's switch.
	item := srv.Subscription(sub).Items.Data[0].ID
	for _, behavior := range []string{"create_prorations", "always_invoice"} {
		_, err = sc.V1Subscriptions.Update(ctx, sub, &stripe.SubscriptionUpdateParams{ProrationBehavior: stripe.String(behavior),
			Items: []*stripe.SubscriptionUpdateItemParams{{ID: stripe.String(item), Quantity: stripe.Int64(3)}}})
		must(err)
	}
	_, err = sc.V1Invoices.CreatePreview(ctx, &stripe.InvoiceCreatePreviewParams{Subscription: stripe.String(sub),
		SubscriptionDetails: &stripe.InvoiceCreatePreviewSubscriptionDetailsParams{
			Items: []*stripe.InvoiceCreatePreviewSubscriptionDetailsItemParams{{ID: stripe.String(item), Quantity: stripe.Int64(1)}}}})
	must(err)
	sched := downgradeAtPeriodEnd(t, sc, sub)
	_, err = sc.V1SubscriptionSchedules.Retrieve(ctx, sched.ID, nil)
	must(err)
	steps(testcatalog.Renew(srv, sub))
	steps(testcatalog.Renew(srv, sub))
	steps(srv.ChangePrice(sub, "price_pro"))
	_, err = sc.V1Subscriptions.Update(ctx, sub, &stripe.SubscriptionUpdateParams{CancelAtPeriodEnd: stripe.Bool(true)})
	must(err)
	steps(srv.Uncancel(sub))
	_, err = sc.V1BillingPortalSessions.Create(ctx, &stripe.BillingPortalSessionCreateParams{
		Customer: stripe.String(cus.ID), ReturnURL: stripe.String("https://app.test/account")})
	must(err)
	_, err = sc.V1Subscriptions.Retrieve(ctx, sub, &stripe.SubscriptionRetrieveParams{Expand: ex([]string{"latest_invoice", "customer"})})
	must(err)
	for _, err := range sc.V1Subscriptions.List(ctx, &stripe.SubscriptionListParams{Customer: stripe.String(cus.ID), Status: stripe.String("all")}) {
		must(err)
	}
	for inv, err := range sc.V1Invoices.List(ctx, &stripe.InvoiceListParams{Subscription: stripe.String(sub),
		Expand: ex([]string{"data.payments"})}) {
		must(err)
		_, err = sc.V1Invoices.Retrieve(ctx, inv.ID, &stripe.InvoiceRetrieveParams{Expand: ex([]string{"customer", "payments"})})
		must(err)
		for ip, err := range sc.V1InvoicePayments.List(ctx, &stripe.InvoicePaymentListParams{Invoice: stripe.String(inv.ID)}) {
			must(err)
			_, err = sc.V1InvoicePayments.Retrieve(ctx, ip.ID, nil)
			must(err)
		}
	}
	_, err = sc.V1Subscriptions.Cancel(ctx, sub, nil)
	must(err)

	// The payment objects behind the events, and a renewal that needs the
	// customer to authenticate.
	for _, ev := range srv.Events() {
		var o struct {
			Data struct {
				Object struct{ ID, Object string } `json:"object"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(ev.JSON, &o))
		switch id := o.Data.Object.ID; o.Data.Object.Object {
		case "payment_intent":
			_, err = sc.V1PaymentIntents.Retrieve(ctx, id, nil)
		case "charge":
			_, err = sc.V1Charges.Retrieve(ctx, id, nil)
		case "payment_method":
			_, err = sc.V1PaymentMethods.Retrieve(ctx, id, nil)
		}
		must(err)
	}
	authCS, err := sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{
		Mode: stripe.String("subscription"), Customer: stripe.String(cus.ID), SuccessURL: stripe.String("https://app.test/ok"),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_month"), Quantity: stripe.Int64(1)}},
	})
	must(err)
	_, err = srv.Pay(authCS.ID, billingtest.CardAlwaysAuthenticate)
	must(err)
	steps(testcatalog.Renew(srv, srv.CheckoutSession(authCS.ID).Subscription.ID))

	// A trial without a card that pauses at its end, then resumes; a
	// subscription whose collection is paused (its renewal voided), then
	// one whose invoice is marked uncollectible.
	pausedSub := trialWithoutCard(t, srv, sc, "pause")
	srv.Advance(8 * 24 * time.Hour)
	steps(srv.UpdateCard(srv.Subscription(pausedSub).Customer.ID, billingtest.CardOK))
	_, err = sc.V1Subscriptions.Resume(ctx, pausedSub, nil)
	must(err)
	for _, behavior := range []string{"void", "mark_uncollectible"} {
		_, err = sc.V1Subscriptions.Update(ctx, pausedSub, &stripe.SubscriptionUpdateParams{
			PauseCollection: &stripe.SubscriptionUpdatePauseCollectionParams{Behavior: stripe.String(behavior)}})
		must(err)
		steps(testcatalog.Renew(srv, pausedSub))
	}

	// One-time purchases: paid at once, paid later, expired; embedded.
	once := func(ui string) *stripe.CheckoutSession {
		p := &stripe.CheckoutSessionCreateParams{Mode: stripe.String("payment"), Customer: stripe.String(cus.ID),
			LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_once"), Quantity: stripe.Int64(2)}}}
		if ui == "embedded" {
			p.UIMode, p.ReturnURL = stripe.String("embedded"), stripe.String("https://app.test/back?cs={CHECKOUT_SESSION_ID}")
		} else {
			p.SuccessURL = stripe.String("https://app.test/ok")
		}
		cs, err := sc.V1CheckoutSessions.Create(ctx, p)
		must(err)
		return cs
	}
	paidOnce := once("hosted")
	_, err = srv.Pay(paidOnce.ID, billingtest.CardOK)
	must(err)

	// Refunds and a dispute.
	piID := srv.CheckoutSession(paidOnce.ID).PaymentIntent.ID
	re, err := sc.V1Refunds.Create(ctx, &stripe.RefundCreateParams{PaymentIntent: stripe.String(piID), Amount: stripe.Int64(500)})
	must(err)
	_, err = sc.V1Refunds.Retrieve(ctx, re.ID, nil)
	must(err)
	disputed := once("hosted")
	_, err = srv.Pay(disputed.ID, billingtest.CardDisputed)
	must(err)
	var disputeID string
	for _, ev := range srv.Events() {
		if ev.Type == "charge.dispute.created" {
			var e stripe.Event
			must(json.Unmarshal(ev.JSON, &e))
			disputeID, _ = e.Data.Object["id"].(string)
		}
	}
	require.NotEmpty(t, disputeID)
	_, err = sc.V1Disputes.Update(ctx, disputeID, &stripe.DisputeUpdateParams{
		Evidence: &stripe.DisputeUpdateEvidenceParams{UncategorizedText: stripe.String("losing_evidence")}})
	must(err)
	_, err = sc.V1Disputes.Retrieve(ctx, disputeID, nil)
	must(err)
	for _, err := range sc.V1Refunds.List(ctx, &stripe.RefundListParams{PaymentIntent: stripe.String(piID)}) {
		must(err)
	}
	for _, err := range sc.V1Disputes.List(ctx, nil) {
		must(err)
	}

	delayed := once("hosted")
	steps(testcatalog.PayWith(srv, delayed.ID, billingtest.BankDebit))
	steps(testcatalog.Settle(srv), error(nil))
	_, err = sc.V1CheckoutSessions.Retrieve(ctx, delayed.ID, &stripe.CheckoutSessionRetrieveParams{Expand: ex([]string{"invoice", "line_items"})})
	must(err)
	failed := once("embedded")
	steps(testcatalog.PayWith(srv, failed.ID, billingtest.BankDebitFails))
	steps(testcatalog.Settle(srv), error(nil))
	_, err = sc.V1CheckoutSessions.Expire(ctx, once("hosted").ID, nil)
	must(err)
	steps(testcatalog.Expire(srv, once("embedded").ID))
	srv.Advance(25 * time.Hour) // an open session expires by itself
	for _, err := range sc.V1CheckoutSessions.List(ctx, nil) {
		must(err)
	}

	// Several line items with price_data, setup mode, a customer's contact
	// details.
	multi, err := sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{
		Mode: stripe.String("subscription"), Customer: stripe.String(cus.ID), SuccessURL: stripe.String("https://app.test/ok"),
		BillingAddressCollection: stripe.String("auto"),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{
			{Price: stripe.String("price_month"), Quantity: stripe.Int64(1)},
			{PriceData: &stripe.CheckoutSessionCreateLineItemPriceDataParams{Currency: stripe.String("usd"),
				ProductData: &stripe.CheckoutSessionCreateLineItemPriceDataProductDataParams{Name: stripe.String("Setup")},
				UnitAmount:  stripe.Int64(900)}, Quantity: stripe.Int64(1)},
		}})
	must(err)
	_, err = srv.Pay(multi.ID, billingtest.CardOK)
	must(err)
	_, err = sc.V1CheckoutSessions.Retrieve(ctx, multi.ID, &stripe.CheckoutSessionRetrieveParams{Expand: ex([]string{"line_items"})})
	must(err)
	setupCS, err := sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{Mode: stripe.String("setup"),
		Customer: stripe.String(cus.ID), SuccessURL: stripe.String("https://app.test/ok")})
	must(err)
	_, err = srv.Pay(setupCS.ID, billingtest.CardOK)
	must(err)
	_, err = sc.V1Customers.Update(ctx, cus.ID, &stripe.CustomerUpdateParams{Phone: stripe.String("+15555550100"),
		Description: stripe.String("admin"), Address: &stripe.AddressParams{Line1: stripe.String("1 Main St"), Country: stripe.String("US")}})
	must(err)

	// Events, webhook endpoints.
	for ev, err := range sc.V1Events.List(ctx, &stripe.EventListParams{}) {
		must(err)
		_, err = sc.V1Events.Retrieve(ctx, ev.ID, nil)
		must(err)
	}
	ep, err := sc.V1WebhookEndpoints.Create(ctx, &stripe.WebhookEndpointCreateParams{
		URL: stripe.String("https://app.test/stripe/webhook"), EnabledEvents: []*string{stripe.String("invoice.paid")},
		APIVersion: stripe.String(stripe.APIVersion)})
	must(err)
	_, err = sc.V1WebhookEndpoints.Update(ctx, ep.ID, &stripe.WebhookEndpointUpdateParams{Disabled: stripe.Bool(true)})
	must(err)
	_, err = sc.V1WebhookEndpoints.Retrieve(ctx, ep.ID, nil)
	must(err)
	for _, err := range sc.V1WebhookEndpoints.List(ctx, nil) {
		must(err)
	}
	_, err = sc.V1WebhookEndpoints.Delete(ctx, ep.ID, nil)
	must(err)

	// Errors have Stripe's error shape.
	_, err = sc.V1Subscriptions.Retrieve(ctx, "sub_missing", nil)
	require.Error(t, err)
	_, err = sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{Mode: stripe.String("subscription")})
	require.Error(t, err)
}
