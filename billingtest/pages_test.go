package billingtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testcatalog"
)

var pgStart = time.Date(2025, 10, 1, 9, 0, 0, 0, time.UTC)

// pgEnv is a fake Stripe with a stripe-go client and an HTTP client that
// does not follow redirects, as a browser test would see each response.
type pgEnv struct {
	srv *billingtest.Stripe
	sc  *stripe.Client
	hc  *http.Client
}

func pgSetup(t *testing.T) *pgEnv {
	t.Helper()
	srv := billingtest.New(billingtest.Options{Start: pgStart})
	t.Cleanup(srv.Close)
	srv.AddPrice("price_basic", "month", 900)
	srv.AddPrice("price_pro", "month", 2900)
	srv.AddPrice("price_year", "year", 29000)
	srv.AddPrice("price_once", "", 500)
	sc := stripe.NewClient("sk_test_x", stripe.WithBackends(stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL:           stripe.String(srv.URL()),
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	})))
	hc := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &pgEnv{srv: srv, sc: sc, hc: hc}
}

// session creates a hosted Checkout Session; change adjusts the params.
func (e *pgEnv) session(t *testing.T, change func(*stripe.CheckoutSessionCreateParams)) *stripe.CheckoutSession {
	t.Helper()
	p := &stripe.CheckoutSessionCreateParams{
		Mode:          stripe.String("subscription"),
		SuccessURL:    stripe.String("https://app.test/welcome?session={CHECKOUT_SESSION_ID}"),
		CancelURL:     stripe.String("https://app.test/pricing"),
		CustomerEmail: stripe.String("ann@example.com"),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{
			{Price: stripe.String("price_pro"), Quantity: stripe.Int64(1)},
		},
	}
	if change != nil {
		change(p)
	}
	cs, err := e.sc.V1CheckoutSessions.Create(context.Background(), p)
	require.NoError(t, err)
	return cs
}

// customer creates a customer.
func (e *pgEnv) customer(t *testing.T, name string) *stripe.Customer {
	t.Helper()
	c, err := e.sc.V1Customers.Create(context.Background(), &stripe.CustomerCreateParams{
		Email: stripe.String("bob@example.com"), Name: stripe.String(name),
	})
	require.NoError(t, err)
	return c
}

// subscribe makes the customer a subscriber of price through the Go helper
// and returns the subscription ID.
func (e *pgEnv) subscribe(t *testing.T, customerID, price string) string {
	t.Helper()
	cs := e.session(t, func(p *stripe.CheckoutSessionCreateParams) {
		p.CustomerEmail, p.Customer = nil, stripe.String(customerID)
		p.LineItems[0].Price = stripe.String(price)
	})
	_, err := e.srv.Pay(cs.ID, billingtest.CardOK)
	require.NoError(t, err)
	sub := e.srv.CheckoutSession(cs.ID).Subscription
	require.NotNil(t, sub)
	return sub.ID
}

// portal creates a portal session for the customer.
func (e *pgEnv) portal(t *testing.T, customerID string) *stripe.BillingPortalSession {
	t.Helper()
	ps, err := e.sc.V1BillingPortalSessions.Create(context.Background(), &stripe.BillingPortalSessionCreateParams{
		Customer: stripe.String(customerID), ReturnURL: stripe.String("https://app.test/account?tab=billing"),
	})
	require.NoError(t, err)
	return ps
}

// pgResp is a page response.
type pgResp struct {
	Status   int
	Body     string
	Location string
	Header   http.Header
}

func (e *pgEnv) do(t *testing.T, method, u string, form url.Values) pgResp {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	require.NoError(t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := e.hc.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return pgResp{Status: res.StatusCode, Body: string(raw), Location: res.Header.Get("Location"), Header: res.Header}
}

func (e *pgEnv) get(t *testing.T, u string) pgResp {
	t.Helper()
	return e.do(t, http.MethodGet, u, nil)
}

func (e *pgEnv) post(t *testing.T, u string, form url.Values) pgResp {
	t.Helper()
	return e.do(t, http.MethodPost, u, form)
}

// payURL is the Checkout page of a session (its url).
func (e *pgEnv) payURL(id string) string { return e.srv.URL() + "/pay/" + id }

func (e *pgEnv) portalAction(t *testing.T, ps *stripe.BillingPortalSession, form url.Values) pgResp {
	t.Helper()
	return e.post(t, ps.URL, form)
}

// eventsSince returns the types of the events emitted after the first n.
func (e *pgEnv) eventsSince(n int) []string {
	var out []string
	for _, ev := range e.srv.Events()[n:] {
		out = append(out, ev.Type)
	}
	return out
}

func pgTypes(evs []billingtest.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}

// checkoutEvents are the events of a paid subscription Checkout, in
// Stripe's order, for a customer that exists (newCustomerCheckout: one
// Checkout makes).
var checkoutEvents = []string{
	"payment_method.attached", "customer.subscription.created", "invoice.created", "invoice.finalized",
	"payment_intent.created", "charge.succeeded", "payment_intent.succeeded", "invoice.paid",
	"invoice.payment_succeeded", "customer.subscription.updated", "checkout.session.completed",
}

var newCustomerCheckout = append([]string{"customer.created"}, checkoutEvents...)

// cardSaved are the events of a card saved through the portal for a
// customer with one live subscription.
var cardSaved = []string{"payment_method.attached", "customer.updated", "customer.subscription.updated"}

func TestPayPageShowsTheSession(t *testing.T) {
	e := pgSetup(t)
	cs := e.session(t, func(p *stripe.CheckoutSessionCreateParams) { p.LineItems[0].Quantity = stripe.Int64(2) })
	require.Equal(t, e.payURL(cs.ID), cs.URL)

	r := e.get(t, cs.URL)
	require.Equal(t, http.StatusOK, r.Status)
	assert.Equal(t, "text/html; charset=utf-8", r.Header.Get("Content-Type"))
	assert.Equal(t, "no-store", r.Header.Get("Cache-Control"))
	for _, want := range []string{
		`id="line-items"`, `class="line-item"`,
		`<td><span class="product">price_pro</span></td>`,
		`<td class="num quantity">2</td>`,
		`<td class="num unit-price">$29.00 / month</td>`,
		`<td class="num amount">$58.00 / month</td>`,
		`<td class="num" id="total">$58.00</td>`,
		`<span id="mode">subscription</span>`,
		`<span id="email">ann@example.com</span>`,
		`<label for="card">Card number</label>`,
		`<input id="card" name="card"`,
		`<button id="pay" type="submit" class="wide">Subscribe</button>`,
		`<form method="post" action="/pay/` + cs.ID + `"`,
		`<a id="cancel" href="https://app.test/pricing">`,
		`Then $58.00 / month`,
		`<html lang="en">`,
	} {
		assert.Contains(t, r.Body, want)
	}
	assert.NotContains(t, r.Body, `id="error"`)
	assert.NotContains(t, r.Body, "<script")

	// A payment-mode session, with a customer.
	c := e.customer(t, "Bob")
	pay := e.session(t, func(p *stripe.CheckoutSessionCreateParams) {
		p.Mode, p.CustomerEmail, p.Customer = stripe.String("payment"), nil, stripe.String(c.ID)
		p.LineItems[0] = &stripe.CheckoutSessionCreateLineItemParams{Price: stripe.String("price_once"), Quantity: stripe.Int64(3)}
	})
	r = e.get(t, pay.URL)
	require.Equal(t, http.StatusOK, r.Status)
	for _, want := range []string{
		`<td class="num unit-price">$5.00</td>`, `<td class="num amount">$15.00</td>`,
		`<td class="num" id="total">$15.00</td>`, `<span id="mode">payment</span>`,
		`<span id="email">bob@example.com</span>`, `>Pay $15.00</button>`,
	} {
		assert.Contains(t, r.Body, want)
	}
	assert.NotContains(t, r.Body, `id="then"`)

	// A trial: nothing due today.
	trial := e.session(t, func(p *stripe.CheckoutSessionCreateParams) {
		p.SubscriptionData = &stripe.CheckoutSessionCreateSubscriptionDataParams{TrialPeriodDays: stripe.Int64(14)}
	})
	r = e.get(t, trial.URL)
	assert.Contains(t, r.Body, `<td class="num" id="total">$0.00</td>`)
	assert.Contains(t, r.Body, `14-day free trial, then $29.00 / month`)
	assert.Contains(t, r.Body, `>Start trial</button>`)
}

func TestPayWithWorkingCard(t *testing.T) {
	e := pgSetup(t)
	cs := e.session(t, nil)
	n := len(e.srv.Events())

	r := e.post(t, cs.URL, url.Values{"card": {"4242 4242 4242 4242"}})
	require.Equal(t, http.StatusSeeOther, r.Status, r.Body)
	assert.Equal(t, "https://app.test/welcome?session="+cs.ID, r.Location)

	got := e.srv.CheckoutSession(cs.ID)
	assert.Equal(t, stripe.CheckoutSessionStatusComplete, got.Status)
	assert.Equal(t, stripe.CheckoutSessionPaymentStatusPaid, got.PaymentStatus)
	require.NotNil(t, got.Customer, "the fake made the customer")
	require.NotNil(t, got.Subscription)
	assert.Equal(t, newCustomerCheckout, e.eventsSince(n))

	// The card works for renewals.
	evs, err := testcatalog.Renew(e.srv, got.Subscription.ID)
	require.NoError(t, err)
	assert.Contains(t, pgTypes(evs), "invoice.paid")

	// Paying again: the session is complete.
	n = len(e.srv.Events())
	r = e.post(t, cs.URL, url.Values{"card": {billingtest.CardOK}})
	assert.Equal(t, http.StatusConflict, r.Status)
	assert.Contains(t, r.Body, "This Checkout Session is complete")
	assert.Empty(t, e.eventsSince(n))
}

func TestPayDeclined(t *testing.T) {
	e := pgSetup(t)
	cs := e.session(t, nil)
	n := len(e.srv.Events())
	for _, card := range []string{"4000 0000 0000 9995", "4000000000009995"} {
		r := e.post(t, cs.URL, url.Values{"card": {card}})
		assert.Equal(t, http.StatusPaymentRequired, r.Status)
		assert.Contains(t, r.Body, `<p class="error" id="error" role="alert">Your card was declined.</p>`)
		assert.Contains(t, r.Body, `value="`+card+`" aria-invalid="true" aria-describedby="error"`)
		assert.Contains(t, r.Body, `<button id="pay"`)
	}
	assert.Equal(t, stripe.CheckoutSessionStatusOpen, e.srv.CheckoutSession(cs.ID).Status)
	assert.Empty(t, e.eventsSince(n))

	// The customer can still pay with another card.
	r := e.post(t, cs.URL, url.Values{"card": {billingtest.CardOK}})
	assert.Equal(t, http.StatusSeeOther, r.Status)
	assert.Equal(t, stripe.CheckoutSessionStatusComplete, e.srv.CheckoutSession(cs.ID).Status)
}

func TestPayInvalidNumbers(t *testing.T) {
	e := pgSetup(t)
	cs := e.session(t, nil)
	n := len(e.srv.Events())
	for _, card := range []string{"", "4242", "4242 4242 4242 4241", "5555 5555 5555 4444", "4242x4242424242424", "42424242424242424242"} {
		r := e.post(t, cs.URL, url.Values{"card": {card}})
		assert.Equal(t, http.StatusPaymentRequired, r.Status, card)
		assert.Contains(t, r.Body, `id="error" role="alert">Your card number is invalid.</p>`, card)
	}
	assert.Equal(t, stripe.CheckoutSessionStatusOpen, e.srv.CheckoutSession(cs.ID).Status)
	assert.Empty(t, e.eventsSince(n))
}

func TestPayCardWhoseChargesFail(t *testing.T) {
	e := pgSetup(t)
	c := e.customer(t, "Bob")
	first := e.subscribe(t, c.ID, "price_basic")

	// A second purchase with 0341: declined, the session stays open, but the
	// card is now the customer's, and the first subscription's renewal fails.
	cs := e.session(t, func(p *stripe.CheckoutSessionCreateParams) {
		p.CustomerEmail, p.Customer = nil, stripe.String(c.ID)
	})
	n := len(e.srv.Events())
	r := e.post(t, cs.URL, url.Values{"card": {billingtest.CardChargeFails}})
	assert.Equal(t, http.StatusPaymentRequired, r.Status)
	assert.Contains(t, r.Body, `id="error" role="alert">Your card was declined.</p>`)
	assert.Equal(t, stripe.CheckoutSessionStatusOpen, e.srv.CheckoutSession(cs.ID).Status)
	assert.Empty(t, e.eventsSince(n))

	evs, err := testcatalog.Renew(e.srv, first)
	require.NoError(t, err)
	assert.Contains(t, pgTypes(evs), "invoice.payment_failed")
	assert.NotContains(t, pgTypes(evs), "invoice.paid")

	// Paying with a working card replaces it: the retry succeeds.
	cs = e.session(t, func(p *stripe.CheckoutSessionCreateParams) {
		p.CustomerEmail, p.Customer = nil, stripe.String(c.ID)
	})
	r = e.post(t, cs.URL, url.Values{"card": {billingtest.CardOK}})
	require.Equal(t, http.StatusSeeOther, r.Status)
	evs, err = testcatalog.Retry(e.srv, first)
	require.NoError(t, err)
	assert.Contains(t, pgTypes(evs), "invoice.paid")

	// Without a customer on the session there is nothing to attach to.
	anon := e.session(t, nil)
	r = e.post(t, anon.URL, url.Values{"card": {billingtest.CardChargeFails}})
	assert.Equal(t, http.StatusPaymentRequired, r.Status)
	assert.Nil(t, e.srv.CheckoutSession(anon.ID).Customer)
}

func TestPayWithAuthentication(t *testing.T) {
	e := pgSetup(t)
	cs := e.session(t, nil)
	n := len(e.srv.Events())

	r := e.post(t, cs.URL, url.Values{"card": {billingtest.CardNeedsAuth}})
	require.Equal(t, http.StatusSeeOther, r.Status)
	assert.Equal(t, "/pay/"+cs.ID+"/confirm", r.Location)

	confirm := e.srv.URL() + r.Location
	r = e.get(t, confirm)
	require.Equal(t, http.StatusOK, r.Status)
	assert.Contains(t, r.Body, `<h1 id="heading">Complete authentication</h1>`)
	assert.Contains(t, r.Body, `<form method="post" action="/pay/`+cs.ID+`/confirm"`)
	assert.Contains(t, r.Body, `<button id="confirm" type="submit" name="action" value="complete">Complete</button>`)
	assert.Contains(t, r.Body, `<button id="fail" type="submit" name="action" value="fail"`)
	assert.Contains(t, r.Body, `<strong id="amount">$29.00</strong>`)
	assert.Empty(t, e.eventsSince(n))

	// Failing the challenge: back to the Checkout page with the error.
	r = e.post(t, confirm, url.Values{"action": {"fail"}})
	assert.Equal(t, http.StatusPaymentRequired, r.Status)
	assert.Contains(t, r.Body, `id="error" role="alert">We are unable to authenticate your payment method.</p>`)
	assert.Contains(t, r.Body, `<button id="pay"`)
	assert.Equal(t, stripe.CheckoutSessionStatusOpen, e.srv.CheckoutSession(cs.ID).Status)
	assert.Empty(t, e.eventsSince(n))

	r = e.post(t, confirm, url.Values{"action": {"maybe"}})
	assert.Equal(t, http.StatusBadRequest, r.Status)

	// Trying again and completing it.
	r = e.post(t, cs.URL, url.Values{"card": {"4000002500003155"}})
	require.Equal(t, http.StatusSeeOther, r.Status)
	r = e.post(t, e.srv.URL()+r.Location, url.Values{"action": {"complete"}})
	require.Equal(t, http.StatusSeeOther, r.Status)
	assert.Equal(t, "https://app.test/welcome?session="+cs.ID, r.Location)
	assert.Equal(t, stripe.CheckoutSessionStatusComplete, e.srv.CheckoutSession(cs.ID).Status)
	assert.Equal(t, newCustomerCheckout, e.eventsSince(n))

	// The challenge of a complete session is over.
	r = e.get(t, confirm)
	assert.Equal(t, http.StatusOK, r.Status)
	assert.Contains(t, r.Body, "This Checkout Session is complete")
	r = e.post(t, confirm, url.Values{"action": {"complete"}})
	assert.Equal(t, http.StatusConflict, r.Status)
}

func TestPayPaymentMode(t *testing.T) {
	e := pgSetup(t)
	cs := e.session(t, func(p *stripe.CheckoutSessionCreateParams) {
		p.Mode = stripe.String("payment")
		p.LineItems[0].Price = stripe.String("price_once")
	})
	n := len(e.srv.Events())
	r := e.post(t, cs.URL, url.Values{"card": {billingtest.CardOK}})
	require.Equal(t, http.StatusSeeOther, r.Status)
	assert.Equal(t, "https://app.test/welcome?session="+cs.ID, r.Location)
	got := e.srv.CheckoutSession(cs.ID)
	assert.Equal(t, stripe.CheckoutSessionStatusComplete, got.Status)
	assert.Equal(t, stripe.CheckoutSessionPaymentStatusPaid, got.PaymentStatus)
	assert.Equal(t, []string{"payment_intent.created", "charge.succeeded", "payment_intent.succeeded",
		"checkout.session.completed"}, e.eventsSince(n))
}

func TestPayPagesOfUnknownAndClosedSessions(t *testing.T) {
	e := pgSetup(t)
	c := e.customer(t, "Bob")
	ps := e.portal(t, c.ID)
	other := e.session(t, nil)
	for _, path := range []string{"/pay/cs_test_nope", "/pay/cs_test_nope/confirm", "/portal/bps_nope",
		"/pay/price_pro", "/pay/" + c.ID, "/pay/" + ps.ID + "/confirm", "/portal/" + other.ID, "/portal/" + c.ID} {
		r := e.get(t, e.srv.URL()+path)
		assert.Equal(t, http.StatusNotFound, r.Status, path)
		assert.Contains(t, r.Body, `<h1 id="heading">Not found</h1>`, path)
		r = e.post(t, e.srv.URL()+path, url.Values{"card": {billingtest.CardOK}, "action": {"complete"}})
		assert.Equal(t, http.StatusNotFound, r.Status, path)
	}

	// Completed: a link to the success URL.
	done := e.session(t, nil)
	_, err := e.srv.Pay(done.ID, billingtest.CardOK)
	require.NoError(t, err)
	r := e.get(t, done.URL)
	assert.Equal(t, http.StatusOK, r.Status)
	assert.Contains(t, r.Body, `<h1 id="heading">Payment complete</h1>`)
	assert.Contains(t, r.Body, `<a id="success" href="https://app.test/welcome?session=`+done.ID+`">Continue to app.test</a>`)
	assert.NotContains(t, r.Body, `id="pay"`)

	// Expired (through the API): a link back to the cancel URL.
	gone := e.session(t, nil)
	_, err = e.sc.V1CheckoutSessions.Expire(context.Background(), gone.ID, nil)
	require.NoError(t, err)
	r = e.get(t, gone.URL)
	assert.Equal(t, http.StatusOK, r.Status)
	assert.Contains(t, r.Body, `<h1 id="heading">Session expired</h1>`)
	assert.Contains(t, r.Body, `<a id="cancel" href="https://app.test/pricing">Return to app.test</a>`)
	n := len(e.srv.Events())
	r = e.post(t, gone.URL, url.Values{"card": {billingtest.CardOK}})
	assert.Equal(t, http.StatusConflict, r.Status)
	assert.Contains(t, r.Body, "has expired")
	assert.Equal(t, stripe.CheckoutSessionStatusExpired, e.srv.CheckoutSession(gone.ID).Status)
	assert.Empty(t, e.eventsSince(n))

	// Expired by the clock.
	late := e.session(t, nil)
	n = len(e.srv.Events())
	e.srv.Advance(25 * time.Hour)
	r = e.get(t, late.URL)
	assert.Contains(t, r.Body, `<h1 id="heading">Session expired</h1>`)
	assert.Contains(t, e.eventsSince(n), "checkout.session.expired")
	_, err = e.srv.Pay(late.ID, billingtest.CardOK)
	assert.ErrorIs(t, err, billingtest.ErrSessionNotOpen)
}

func TestPayConcurrentSubmissions(t *testing.T) {
	e := pgSetup(t)
	cs := e.session(t, nil)
	const n = 8
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			form := strings.NewReader(url.Values{"card": {billingtest.CardOK}}.Encode())
			res, err := e.hc.Post(cs.URL, "application/x-www-form-urlencoded", form)
			if err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				statuses[i] = res.StatusCode
			}
		})
	}
	wg.Wait()
	ok := 0
	for _, st := range statuses {
		if st == http.StatusSeeOther {
			ok++
		} else {
			assert.Equal(t, http.StatusConflict, st)
		}
	}
	assert.Equal(t, 1, ok, "one submission pays")
	assert.Len(t, e.srv.SubscriptionsOf(e.srv.CheckoutSession(cs.ID).Customer.ID), 1)
}

func TestPagesEscapeUserStrings(t *testing.T) {
	e := pgSetup(t)
	ctx := context.Background()
	const evil = `<script>alert("x")</script>`
	prod, err := e.sc.V1Products.Create(ctx, &stripe.ProductCreateParams{Name: stripe.String(evil + " & Co")})
	require.NoError(t, err)
	price, err := e.sc.V1Prices.Create(ctx, &stripe.PriceCreateParams{
		Product: stripe.String(prod.ID), UnitAmount: stripe.Int64(1200), Currency: stripe.String("usd"),
		Recurring: &stripe.PriceCreateRecurringParams{Interval: stripe.String("month")},
	})
	require.NoError(t, err)
	c, err := e.sc.V1Customers.Create(ctx, &stripe.CustomerCreateParams{
		Name: stripe.String(evil), Email: stripe.String(`x"><img@example.com`),
	})
	require.NoError(t, err)
	cs := e.session(t, func(p *stripe.CheckoutSessionCreateParams) {
		p.CustomerEmail, p.Customer = nil, stripe.String(c.ID)
		p.LineItems[0].Price = stripe.String(price.ID)
		p.CancelURL = stripe.String(`https://app.test/cancel?x="><script>alert(1)</script>`)
	})

	check := func(body string) {
		t.Helper()
		assert.NotContains(t, body, "<script")
		assert.NotContains(t, body, `"><img`)
	}
	r := e.get(t, cs.URL)
	require.Equal(t, http.StatusOK, r.Status)
	check(r.Body)
	assert.Contains(t, r.Body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co")
	assert.Contains(t, r.Body, `<span class="muted price-id">`+price.ID+`</span>`)
	assert.Contains(t, r.Body, `href="https://app.test/cancel?x=%22%3e%3cscript%3ealert%281%29%3c/script%3e"`)

	// A card number typed back into the page.
	r = e.post(t, cs.URL, url.Values{"card": {`"><script>alert(1)</script>`}})
	assert.Equal(t, http.StatusPaymentRequired, r.Status)
	check(r.Body)
	assert.Contains(t, r.Body, `value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"`)

	// A javascript: URL is not linked.
	js := e.session(t, func(p *stripe.CheckoutSessionCreateParams) { p.CancelURL = stripe.String("javascript:alert(1)") })
	r = e.get(t, js.URL)
	assert.NotContains(t, r.Body, "javascript:")

	// The portal shows the product and the customer's name.
	sub := e.subscribe(t, c.ID, price.ID)
	ps := e.portal(t, c.ID)
	r = e.get(t, ps.URL)
	require.Equal(t, http.StatusOK, r.Status)
	check(r.Body)
	assert.Contains(t, r.Body, `<h3 id="name-`+sub+`">&lt;script&gt;`)
	assert.Contains(t, r.Body, `id="customer">&lt;script&gt;`)
	r = e.portalAction(t, ps, url.Values{"action": {"update_card"}, "card": {evil}})
	assert.Equal(t, http.StatusPaymentRequired, r.Status)
	check(r.Body)
}

func TestPortalPage(t *testing.T) {
	e := pgSetup(t)
	c := e.customer(t, "Bob")
	sub := e.subscribe(t, c.ID, "price_pro")
	ended := e.subscribe(t, c.ID, "price_basic")
	_, err := e.srv.CancelNow(ended)
	require.NoError(t, err)
	ps := e.portal(t, c.ID)
	require.Equal(t, e.srv.URL()+"/portal/"+ps.ID, ps.URL)

	r := e.get(t, ps.URL)
	require.Equal(t, http.StatusOK, r.Status)
	end := time.Unix(e.srv.Subscription(sub).Items.Data[0].CurrentPeriodEnd, 0).UTC().Format("January 2, 2006")
	assert.Equal(t, "November 1, 2025", end)
	for _, want := range []string{
		`<section class="sub" id="sub-` + sub + `"`,
		`<h3 id="name-` + sub + `">price_pro</h3>`,
		`<span class="price" id="plan-` + sub + `">$29.00 / month</span>`,
		`<span class="status" id="status-` + sub + `">Active</span>`,
		`<p class="muted" id="period-` + sub + `">Renews on November 1, 2025</p>`,
		`<button type="submit" class="secondary" id="cancel-at-period-end-` + sub + `">Cancel at period end</button>`,
		`<button type="submit" class="danger" id="cancel-now-` + sub + `">Cancel now</button>`,
		`<label for="price-` + sub + `">Switch plan</label>`,
		`<select id="price-` + sub + `" name="price">`,
		`<option value="price_basic">price_basic — $9.00 / month</option>`,
		`<option value="price_year">price_year — $290.00 / year</option>`,
		`<button type="submit" class="secondary" id="switch-` + sub + `">Switch plan</button>`,
		`<input id="card" name="card"`, `<button type="submit" id="update-card">Update card</button>`,
		`<p id="card-status">Charges to the card on file succeed.</p>`,
		`<a id="return" href="https://app.test/account?tab=billing">Return to app.test</a>`,
		`id="customer">Bob · bob@example.com</p>`,
	} {
		assert.Contains(t, r.Body, want)
	}
	assert.NotContains(t, r.Body, `value="price_pro"`, "not the current price")
	assert.NotContains(t, r.Body, `value="price_once"`, "not a one-time price")
	assert.NotContains(t, r.Body, ended, "not a canceled subscription")
	assert.NotContains(t, r.Body, `id="uncancel-`)
	assert.NotContains(t, r.Body, `id="flash"`)
	assert.NotContains(t, r.Body, `id="error"`)

	// Nothing to show.
	other := e.customer(t, "Carol")
	r = e.get(t, e.portal(t, other.ID).URL)
	assert.Contains(t, r.Body, `<p id="no-subscriptions">You have no active subscriptions.</p>`)

	// A trial.
	trialCS := e.session(t, func(p *stripe.CheckoutSessionCreateParams) {
		p.CustomerEmail, p.Customer = nil, stripe.String(other.ID)
		p.SubscriptionData = &stripe.CheckoutSessionCreateSubscriptionDataParams{TrialPeriodDays: stripe.Int64(14)}
	})
	_, err = e.srv.Pay(trialCS.ID, billingtest.CardOK)
	require.NoError(t, err)
	trialSub := e.srv.CheckoutSession(trialCS.ID).Subscription.ID
	r = e.get(t, e.portal(t, other.ID).URL)
	assert.Contains(t, r.Body, `id="status-`+trialSub+`">Trial</span>`)
	assert.Contains(t, r.Body, `id="period-`+trialSub+`">Trial ends on October 15, 2025</p>`)
}

// pgRecorder is a webhook endpoint that records the event types it gets.
type pgRecorder struct {
	mu    sync.Mutex
	types []string
}

func (rc *pgRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ev struct {
		Type string `json:"type"`
	}
	_ = json.NewDecoder(r.Body).Decode(&ev)
	rc.mu.Lock()
	rc.types = append(rc.types, ev.Type)
	rc.mu.Unlock()
}

// take returns the types received since the last take.
func (rc *pgRecorder) take(t *testing.T, srv *billingtest.Stripe) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, srv.Flush(ctx))
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := rc.types
	rc.types = nil
	return out
}

func TestPortalActions(t *testing.T) {
	e := pgSetup(t)
	c := e.customer(t, "Bob")
	sub := e.subscribe(t, c.ID, "price_pro")
	ps := e.portal(t, c.ID)
	rec := &pgRecorder{}
	e.srv.AddEndpoint(rec, billingtest.EndpointOptions{})
	act := func(action string, more ...string) pgResp {
		t.Helper()
		form := url.Values{"action": {action}, "subscription": {sub}}
		for i := 0; i+1 < len(more); i += 2 {
			form.Set(more[i], more[i+1])
		}
		return e.portalAction(t, ps, form)
	}
	back := func(r pgResp, done, flash string) string {
		t.Helper()
		require.Equal(t, http.StatusSeeOther, r.Status, r.Body)
		require.Equal(t, "/portal/"+ps.ID+"?done="+done, r.Location)
		page := e.get(t, e.srv.URL()+r.Location)
		require.Equal(t, http.StatusOK, page.Status)
		assert.Contains(t, page.Body, `<p class="flash" id="flash" role="status">`+flash+`</p>`)
		return page.Body
	}
	periodEnd := e.srv.Subscription(sub).Items.Data[0].CurrentPeriodEnd

	// Cancel at period end.
	page := back(act("cancel_at_period_end"), "canceling", "Your subscription will be canceled at the end of the billing period.")
	s := e.srv.Subscription(sub)
	assert.True(t, s.CancelAtPeriodEnd)
	assert.Equal(t, periodEnd, s.CancelAt)
	assert.Equal(t, []string{"customer.subscription.updated"}, rec.take(t, e.srv))
	assert.Contains(t, page, `id="period-`+sub+`">Cancels on November 1, 2025</p>`)
	assert.Contains(t, page, `<button type="submit" id="uncancel-`+sub+`">Don't cancel</button>`)
	assert.NotContains(t, page, `id="cancel-at-period-end-`)

	// Don't cancel.
	page = back(act("uncancel"), "renewed", "Your subscription will no longer be canceled.")
	s = e.srv.Subscription(sub)
	assert.False(t, s.CancelAtPeriodEnd)
	assert.Zero(t, s.CancelAt)
	assert.Equal(t, []string{"customer.subscription.updated"}, rec.take(t, e.srv))
	assert.Contains(t, page, `id="period-`+sub+`">Renews on November 1, 2025</p>`)

	// Again: there is nothing to withdraw.
	r := act("uncancel")
	assert.Equal(t, http.StatusConflict, r.Status)
	assert.Contains(t, r.Body, `id="error" role="alert">`)
	assert.Empty(t, rec.take(t, e.srv))

	// A cancellation scheduled at a date (as through the API) is shown and
	// withdrawn the same way.
	at := time.Unix(periodEnd, 0).Add(-10 * 24 * time.Hour)
	_, err := testcatalog.CancelAt(e.srv, sub, at)
	require.NoError(t, err)
	rec.take(t, e.srv)
	page = e.get(t, ps.URL).Body
	assert.Contains(t, page, `id="period-`+sub+`">Cancels on October 22, 2025</p>`)
	back(act("uncancel"), "renewed", "Your subscription will no longer be canceled.")
	assert.Zero(t, e.srv.Subscription(sub).CancelAt)
	assert.Equal(t, []string{"customer.subscription.updated"}, rec.take(t, e.srv))

	// Switch plan.
	page = back(act("switch", "price", "price_year"), "switched", "Your plan has been updated.")
	assert.Equal(t, "price_year", e.srv.Subscription(sub).Items.Data[0].Price.ID)
	assert.Equal(t, []string{"customer.subscription.updated"}, rec.take(t, e.srv))
	assert.Contains(t, page, `id="plan-`+sub+`">$290.00 / year</span>`)
	assert.Contains(t, page, `<option value="price_pro">`)
	assert.NotContains(t, page, `<option value="price_year">`)
	for _, bad := range []string{"price_year", "price_once", "price_nope", ""} {
		r := act("switch", "price", bad)
		assert.Equal(t, http.StatusBadRequest, r.Status, bad)
		assert.Contains(t, r.Body, `id="error" role="alert">`, bad)
	}
	assert.Empty(t, rec.take(t, e.srv))

	// Someone else's subscription, an unknown one, an unknown action.
	other := e.customer(t, "Carol")
	theirs := e.subscribe(t, other.ID, "price_basic")
	rec.take(t, e.srv)
	r = e.portalAction(t, ps, url.Values{"action": {"cancel_now"}, "subscription": {theirs}})
	assert.Equal(t, http.StatusNotFound, r.Status)
	assert.Contains(t, r.Body, "There is no such subscription.")
	assert.Equal(t, stripe.SubscriptionStatusActive, e.srv.Subscription(theirs).Status)
	r = e.portalAction(t, ps, url.Values{"action": {"cancel_now"}, "subscription": {"sub_nope"}})
	assert.Equal(t, http.StatusNotFound, r.Status)
	r = act("explode")
	assert.Equal(t, http.StatusBadRequest, r.Status)
	assert.Empty(t, rec.take(t, e.srv))

	// Cancel now.
	page = back(act("cancel_now"), "canceled", "Your subscription has been canceled.")
	assert.Equal(t, stripe.SubscriptionStatusCanceled, e.srv.Subscription(sub).Status)
	assert.Equal(t, []string{"customer.subscription.deleted"}, rec.take(t, e.srv))
	assert.NotContains(t, page, `id="sub-`+sub+`"`)
	assert.Contains(t, page, `id="no-subscriptions"`)
	r = act("cancel_now")
	assert.Equal(t, http.StatusConflict, r.Status)

	// An unknown flash code shows nothing.
	page = e.get(t, ps.URL+"?done=<b>hi</b>").Body
	assert.NotContains(t, page, `id="flash"`)
	assert.NotContains(t, page, "hi</b>")
}

func TestPortalCardUpdate(t *testing.T) {
	e := pgSetup(t)
	c := e.customer(t, "Bob")
	sub := e.subscribe(t, c.ID, "price_pro")
	ps := e.portal(t, c.ID)
	n := len(e.srv.Events())
	card := func(number string) pgResp {
		t.Helper()
		return e.portalAction(t, ps, url.Values{"action": {"update_card"}, "card": {number}})
	}

	// Declined and invalid cards change nothing.
	r := card(billingtest.CardDeclined)
	assert.Equal(t, http.StatusPaymentRequired, r.Status)
	assert.Contains(t, r.Body, `<p class="error" id="error" role="alert">Your card was declined.</p>`)
	assert.Contains(t, r.Body, `value="`+billingtest.CardDeclined+`"`)
	r = card("1234")
	assert.Equal(t, http.StatusPaymentRequired, r.Status)
	assert.Contains(t, r.Body, "Your card number is invalid.")
	assert.Empty(t, e.eventsSince(n))

	// 0341 saved through the portal: the next renewal fails.
	r = card("4000 0000 0000 0341")
	require.Equal(t, http.StatusSeeOther, r.Status)
	require.Equal(t, "/portal/"+ps.ID+"?done=card", r.Location)
	page := e.get(t, e.srv.URL()+r.Location).Body
	assert.Contains(t, page, `<p class="flash" id="flash" role="status">Your card has been updated.</p>`)
	assert.Contains(t, page, `<p id="card-status">Charges to the card on file fail`)
	assert.Equal(t, cardSaved, e.eventsSince(n), "the card is attached and is the default")

	evs, err := testcatalog.Renew(e.srv, sub)
	require.NoError(t, err)
	assert.Equal(t, []string{"invoice.upcoming", "customer.subscription.updated", "invoice.created", "invoice.finalized",
		"payment_intent.created", "charge.failed", "payment_intent.payment_failed", "customer.updated",
		"invoice.updated", "invoice.payment_failed", "customer.subscription.updated"}, pgTypes(evs))
	assert.Equal(t, stripe.SubscriptionStatusPastDue, e.srv.Subscription(sub).Status)
	r = e.get(t, ps.URL)
	assert.Contains(t, r.Body, `id="status-`+sub+`">Past due</span>`)

	// A declined card now does not replace the failing one.
	card(billingtest.CardDeclined)
	evs, err = testcatalog.Retry(e.srv, sub)
	require.NoError(t, err)
	assert.Contains(t, pgTypes(evs), "invoice.payment_failed")

	// A working card: the retry pays.
	r = card(billingtest.CardOK)
	require.Equal(t, http.StatusSeeOther, r.Status)
	assert.Contains(t, e.get(t, ps.URL).Body, `<p id="card-status">Charges to the card on file succeed.</p>`)
	evs, err = testcatalog.Retry(e.srv, sub)
	require.NoError(t, err)
	assert.Equal(t, []string{"charge.succeeded", "payment_intent.succeeded", "customer.updated", "invoice.paid",
		"invoice.payment_succeeded", "customer.subscription.updated"}, pgTypes(evs))
	assert.Equal(t, stripe.SubscriptionStatusActive, e.srv.Subscription(sub).Status)
}

func TestPayHelpers(t *testing.T) {
	e := pgSetup(t)

	_, err := e.srv.Pay("cs_test_nope", billingtest.CardOK)
	assert.ErrorIs(t, err, billingtest.ErrNoSuchSession)
	_, err = e.srv.Pay("price_pro", billingtest.CardOK)
	assert.ErrorIs(t, err, billingtest.ErrNoSuchSession)

	c := e.customer(t, "Bob")
	cs := e.session(t, func(p *stripe.CheckoutSessionCreateParams) {
		p.CustomerEmail, p.Customer = nil, stripe.String(c.ID)
	})
	n := len(e.srv.Events())

	_, err = e.srv.Pay(cs.ID, billingtest.CardDeclined)
	assert.ErrorIs(t, err, billingtest.ErrCardDeclined)
	var ce *billingtest.CardError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, billingtest.CardError{Code: "card_declined", DeclineCode: "insufficient_funds",
		Message: "Your card was declined."}, *ce)
	assert.Equal(t, "billingtest: Your card was declined.", err.Error())

	_, err = e.srv.Pay(cs.ID, billingtest.CardChargeFails)
	assert.ErrorIs(t, err, billingtest.ErrCardDeclined)
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "generic_decline", ce.DeclineCode)
	assert.NotErrorIs(t, err, &billingtest.CardError{Code: "card_declined", DeclineCode: "insufficient_funds"})

	_, err = e.srv.Pay(cs.ID, "4000 0000 0000 0000")
	assert.ErrorIs(t, err, billingtest.ErrInvalidCardNumber)
	assert.NotErrorIs(t, err, billingtest.ErrCardDeclined)

	assert.Equal(t, stripe.CheckoutSessionStatusOpen, e.srv.CheckoutSession(cs.ID).Status)
	assert.Empty(t, e.eventsSince(n))

	// A bank debit pays one-time payments only.
	_, err = e.srv.Pay(cs.ID, billingtest.BankDebit)
	assert.ErrorIs(t, err, billingtest.ErrBankDebitNotModelled)
	assert.Empty(t, e.eventsSince(n))

	// Pay completes the authentication a card asks for (the page can fail it).
	paid, err := e.srv.Pay(cs.ID, "4000002500003155")
	require.NoError(t, err)
	assert.Equal(t, "https://app.test/welcome?session="+cs.ID, paid.RedirectURL)
	assert.Equal(t, checkoutEvents, types(paid.Events))
	assert.Equal(t, checkoutEvents, e.eventsSince(n))
	sub := e.srv.CheckoutSession(cs.ID).Subscription.ID

	_, err = e.srv.Pay(cs.ID, billingtest.CardOK)
	assert.ErrorIs(t, err, billingtest.ErrSessionNotOpen)
	assert.ErrorContains(t, err, "complete")

	// 0341 attached during the failed attempt was replaced by the card that paid.
	evs, err := testcatalog.Renew(e.srv, sub)
	require.NoError(t, err)
	assert.Contains(t, pgTypes(evs), "invoice.paid")

	// UpdateCard.
	n = len(e.srv.Events())
	assert.ErrorIs(t, testcatalog.Err(e.srv.UpdateCard(c.ID, billingtest.CardDeclined)), billingtest.ErrCardDeclined)
	assert.ErrorIs(t, testcatalog.Err(e.srv.UpdateCard(c.ID, "42")), billingtest.ErrInvalidCardNumber)
	assert.Error(t, testcatalog.Err(e.srv.UpdateCard("cus_nope", billingtest.CardOK)))
	assert.Error(t, testcatalog.Err(e.srv.UpdateCard("cus_nope", billingtest.CardDeclined)))
	require.NoError(t, testcatalog.Err(e.srv.UpdateCard(c.ID, billingtest.CardChargeFails)))
	assert.Equal(t, cardSaved, e.eventsSince(n), "refused cards changed nothing")
	evs, err = testcatalog.Renew(e.srv, sub)
	require.NoError(t, err)
	assert.Contains(t, pgTypes(evs), "invoice.payment_failed")
	require.NoError(t, testcatalog.Err(e.srv.UpdateCard(c.ID, billingtest.CardNeedsAuth)))
	evs, err = testcatalog.Retry(e.srv, sub)
	require.NoError(t, err)
	assert.Contains(t, pgTypes(evs), "invoice.paid")

	// An embedded session returns to its return_url.
	emb, err := e.sc.V1CheckoutSessions.Create(context.Background(), &stripe.CheckoutSessionCreateParams{
		Mode: stripe.String("payment"), UIMode: stripe.String("embedded"),
		ReturnURL: stripe.String("https://app.test/return/{CHECKOUT_SESSION_ID}"),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_once"), Quantity: stripe.Int64(1)}},
	})
	require.NoError(t, err)
	paid, err = e.srv.Pay(emb.ID, "4242-4242-4242-4242")
	require.NoError(t, err)
	assert.Equal(t, "https://app.test/return/"+emb.ID, paid.RedirectURL)
	assert.Equal(t, stripe.CheckoutSessionStatusComplete, e.srv.CheckoutSession(emb.ID).Status)
}

func TestCardErrorIs(t *testing.T) {
	err := error(&billingtest.CardError{Code: "card_declined", DeclineCode: "lost_card", Message: "Your card was declined."})
	assert.True(t, errors.Is(err, billingtest.ErrCardDeclined))
	assert.False(t, errors.Is(err, billingtest.ErrInvalidCardNumber))
	assert.False(t, errors.Is(err, errors.New("card_declined")))
}

// Example of a test that pays for a Checkout Session as the customer would on
// the hosted page, then makes the customer's renewals fail as if the
// customer had saved a failing card in the portal.
func ExampleStripe_Pay() {
	srv := billingtest.New(billingtest.Options{Start: time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC)})
	defer srv.Close()
	srv.AddPrice("price_pro", "month", 2900)
	sc := stripe.NewClient("sk_test_x", stripe.WithBackends(stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL:           stripe.String(srv.URL()),
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	})))
	cs, err := sc.V1CheckoutSessions.Create(context.Background(), &stripe.CheckoutSessionCreateParams{
		Mode:       stripe.String("subscription"),
		SuccessURL: stripe.String("https://app.test/welcome?session={CHECKOUT_SESSION_ID}"),
		LineItems:  []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_pro"), Quantity: stripe.Int64(1)}},
	})
	if err != nil {
		panic(err)
	}

	_, err = srv.Pay(cs.ID, billingtest.CardDeclined)
	if errors.Is(err, billingtest.ErrCardDeclined) {
		fmt.Println("declined; the session is", srv.CheckoutSession(cs.ID).Status)
	}
	to, err := srv.Pay(cs.ID, billingtest.CardOK)
	if err != nil {
		panic(err)
	}
	fmt.Println("redirect to the success URL:", to.RedirectURL == "https://app.test/welcome?session="+cs.ID)

	done := srv.CheckoutSession(cs.ID)
	if _, err := srv.UpdateCard(done.Customer.ID, billingtest.CardChargeFails); err != nil {
		panic(err)
	}
	end := time.Unix(srv.Subscription(done.Subscription.ID).Items.Data[0].CurrentPeriodEnd, 0)
	evs := srv.Advance(end.Sub(srv.Now()) + time.Hour) // the renewal is charged an hour after the period ends
	fmt.Println("renewal:", evs[len(evs)-2].Type)
	// Output:
	// declined; the session is open
	// redirect to the success URL: true
	// renewal: invoice.payment_failed
}
