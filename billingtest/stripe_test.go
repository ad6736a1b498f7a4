package billingtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testcatalog"
)

var (
	ctx   = context.Background()
	start = time.Date(2025, 9, 1, 12, 0, 0, 0, time.UTC)
)

const day = int64(86400)

func setup(t *testing.T) (*billingtest.Stripe, *stripe.Client) {
	t.Helper()
	return setupAt(t, start, "once")
}

// setupAt starts a Stripe at at, its clock moved by hand, with a monthly
// and a yearly price (price_month, price_year) and one price_<interval>
// per extra interval ("once" is a one-time price), and a client for it.
func setupAt(t *testing.T, at time.Time, extra ...string) (*billingtest.Stripe, *stripe.Client) {
	t.Helper()
	srv := billingtest.New(billingtest.Options{Start: at})
	t.Cleanup(srv.Close)
	srv.AddPrice("price_month", "month", 1000)
	srv.AddPrice("price_year", "year", 10000)
	for _, iv := range extra {
		if iv == "once" {
			srv.AddPrice("price_once", "", 2500)
		} else {
			srv.AddPrice("price_"+iv, iv, 300)
		}
	}
	sc := stripe.NewClient("sk_test_x", stripe.WithBackends(stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL:           stripe.String(srv.URL()),
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	})))
	return srv, sc
}

func newCustomer(t *testing.T, sc *stripe.Client) *stripe.Customer {
	t.Helper()
	c, err := sc.V1Customers.Create(ctx, &stripe.CustomerCreateParams{
		Email: stripe.String("a@example.com"), Name: stripe.String("Ann"),
		Metadata: map[string]string{"user_id": "u1"},
	})
	require.NoError(t, err)
	return c
}

// subSession creates a subscription-mode session; trialDays 0 means no trial.
func subSession(t *testing.T, sc *stripe.Client, cus string, trialDays int64) *stripe.CheckoutSession {
	t.Helper()
	p := &stripe.CheckoutSessionCreateParams{
		Mode: stripe.String("subscription"), Customer: stripe.String(cus),
		ClientReferenceID: stripe.String("u1"),
		SuccessURL:        stripe.String("https://app.test/ok?cs={CHECKOUT_SESSION_ID}"),
		CancelURL:         stripe.String("https://app.test/cancel"),
		LineItems:         []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_month"), Quantity: stripe.Int64(2)}},
		SubscriptionData: &stripe.CheckoutSessionCreateSubscriptionDataParams{
			Metadata: map[string]string{"user_id": "u1", "plan": "pro"},
		},
		AllowPromotionCodes: stripe.Bool(true),
	}
	p.AddMetadata("flow", "signup")
	if trialDays > 0 {
		p.SubscriptionData.TrialPeriodDays = stripe.Int64(trialDays)
	}
	cs, err := sc.V1CheckoutSessions.Create(ctx, p)
	require.NoError(t, err)
	return cs
}

// subscribe runs a Checkout to completion and returns the subscription ID.
func subscribe(t *testing.T, srv *billingtest.Stripe, sc *stripe.Client, trialDays int64) (string, *stripe.Customer) {
	t.Helper()
	c := newCustomer(t, sc)
	evs, err := subEvents(testcatalog.Pay(srv, subSession(t, sc, c.ID, trialDays).ID))
	require.NoError(t, err)
	cs := decodeAs[stripe.CheckoutSession](t, evs[len(evs)-1])
	return cs.Subscription.ID, c
}

// decode checks an event's envelope and the basil layout of its object.
func decode(t *testing.T, ev billingtest.Event) *stripe.Event {
	t.Helper()
	var e stripe.Event
	require.NoError(t, json.Unmarshal(ev.JSON, &e))
	assert.Equal(t, ev.ID, e.ID)
	assert.Equal(t, ev.Type, string(e.Type))
	assert.Equal(t, ev.Created, e.Created)
	assert.Equal(t, "event", e.Object)
	assert.Equal(t, "2025-08-27.basil", e.APIVersion)
	assert.Equal(t, stripe.APIVersion, e.APIVersion)
	assert.False(t, e.Livemode)
	require.NotNil(t, e.Request)
	assertBasil(t, e.Data.Raw)
	var refs map[string]any // nothing is expanded in events
	require.NoError(t, json.Unmarshal(e.Data.Raw, &refs))
	for _, k := range []string{"customer", "subscription", "invoice", "latest_invoice", "payment_intent"} {
		if v, ok := refs[k]; ok && v != nil {
			assert.IsType(t, "", v, k)
		}
	}
	return &e
}

func decodeAs[T any](t *testing.T, ev billingtest.Event) *T {
	t.Helper()
	v := new(T)
	require.NoError(t, json.Unmarshal(decode(t, ev).Data.Raw, v))
	return v
}

// pick returns the first event of a type.
func pick(t *testing.T, evs []billingtest.Event, typ string) billingtest.Event {
	t.Helper()
	for _, e := range evs {
		if e.Type == typ {
			return e
		}
	}
	t.Fatalf("no %s among %v", typ, types(evs))
	return billingtest.Event{}
}

// without drops the events of the given types: the payment objects'
// events (payment_intent.*, charge.*, payment_method.attached,
// customer.*) when a test looks at the subscription's and invoices'.
func without(evs []billingtest.Event, prefixes ...string) []billingtest.Event {
	var out []billingtest.Event
next:
	for _, e := range evs {
		for _, p := range prefixes {
			if strings.HasPrefix(e.Type, p) {
				continue next
			}
		}
		out = append(out, e)
	}
	return out
}

// paymentTypes are the prefixes of the event types that tests of the
// subscription and invoice flows leave out: the payment objects', the
// customer's and invoice.upcoming (each has a test of its own).
var paymentTypes = []string{"payment_intent.", "charge.", "payment_method.", "customer.created", "customer.updated",
	"invoice.upcoming"}

// subEvents is a step's result without the payment objects' events.
func subEvents(evs []billingtest.Event, err error) ([]billingtest.Event, error) {
	return without(evs, paymentTypes...), err
}

func types(evs []billingtest.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// assertBasil checks the raw JSON of an object for basil's layout. References
// are ID strings, or expanded objects that are checked in turn.
func assertBasil(t *testing.T, raw []byte) {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	require.NotEmpty(t, m["id"], "id")
	require.NotEmpty(t, m["object"], "object")
	refs := func(keys ...string) {
		for _, k := range keys {
			switch v := m[k].(type) {
			case nil, string:
			case map[string]any:
				b, _ := json.Marshal(v)
				assertBasil(t, b)
			default:
				t.Errorf("%s.%s is %T", m["object"], k, v)
			}
		}
	}
	switch m["object"] {
	case "subscription":
		assert.NotContains(t, m, "current_period_start")
		assert.NotContains(t, m, "current_period_end")
		assert.NotNil(t, m["customer"])
		refs("customer", "latest_invoice")
		items := m["items"].(map[string]any)
		assert.Equal(t, "list", items["object"])
		assert.Equal(t, false, items["has_more"])
		assert.NotEmpty(t, items["url"])
		for _, it := range items["data"].([]any) {
			it := it.(map[string]any)
			assert.Equal(t, "subscription_item", it["object"])
			assert.Contains(t, it, "current_period_start")
			assert.Contains(t, it, "current_period_end")
		}
	case "invoice":
		assert.NotContains(t, m, "subscription")
		assert.NotNil(t, m["customer"])
		refs("customer")
		parent := m["parent"].(map[string]any)
		assert.Equal(t, "subscription_details", parent["type"])
		det := parent["subscription_details"].(map[string]any)
		assert.True(t, strings.HasPrefix(det["subscription"].(string), "sub_"))
		assert.Equal(t, "list", m["lines"].(map[string]any)["object"])
	case "checkout.session":
		refs("customer", "subscription", "invoice", "payment_intent")
	}
}

func stripeErr(t *testing.T, err error) *stripe.Error {
	t.Helper()
	var se *stripe.Error
	require.True(t, errors.As(err, &se), "want *stripe.Error, got %T %v", err, err)
	return se
}

func TestCustomers(t *testing.T) {
	srv, sc := setup(t)
	c := newCustomer(t, sc)
	assert.True(t, strings.HasPrefix(c.ID, "cus_"))
	assert.Equal(t, "a@example.com", c.Email)
	assert.Equal(t, "Ann", c.Name)
	assert.Equal(t, map[string]string{"user_id": "u1"}, c.Metadata)
	assert.Equal(t, start.Unix(), c.Created)

	got, err := sc.V1Customers.Retrieve(ctx, c.ID, nil)
	require.NoError(t, err)
	assert.Equal(t, c.ID, got.ID)
	assert.Equal(t, "customer", got.Object)
	assert.Equal(t, c.ID, srv.Customer(c.ID).ID)

	_, err = sc.V1Customers.Retrieve(ctx, "cus_nope", nil)
	se := stripeErr(t, err)
	assert.Equal(t, 404, se.HTTPStatusCode)
	assert.Equal(t, stripe.ErrorTypeInvalidRequest, se.Type)
	assert.Equal(t, stripe.ErrorCodeResourceMissing, se.Code)
	assert.Equal(t, "id", se.Param)
	assert.NotEmpty(t, se.RequestID)
}

func TestCheckoutSessionCreateAndRetrieve(t *testing.T) {
	srv, sc := setup(t)
	c := newCustomer(t, sc)
	cs := subSession(t, sc, c.ID, 0)
	assert.True(t, strings.HasPrefix(cs.ID, "cs_test_"))
	assert.Equal(t, "checkout.session", cs.Object)
	assert.Equal(t, stripe.CheckoutSessionStatusOpen, cs.Status)
	assert.Equal(t, stripe.CheckoutSessionPaymentStatusUnpaid, cs.PaymentStatus)
	assert.Equal(t, stripe.CheckoutSessionModeSubscription, cs.Mode)
	assert.Equal(t, srv.URL()+"/pay/"+cs.ID, cs.URL)
	assert.Equal(t, c.ID, cs.Customer.ID)
	assert.Equal(t, "u1", cs.ClientReferenceID)
	assert.Equal(t, "https://app.test/ok?cs={CHECKOUT_SESSION_ID}", cs.SuccessURL)
	assert.Equal(t, "https://app.test/cancel", cs.CancelURL)
	assert.Equal(t, map[string]string{"flow": "signup"}, cs.Metadata)
	assert.True(t, cs.AllowPromotionCodes)
	assert.Equal(t, int64(2000), cs.AmountTotal)
	assert.Nil(t, cs.Subscription)
	assert.Equal(t, []string{cs.ID}, srv.SessionsOf(c.ID))

	resp, err := http.Get(cs.URL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)

	p := &stripe.CheckoutSessionRetrieveParams{}
	p.AddExpand("line_items")
	got, err := sc.V1CheckoutSessions.Retrieve(ctx, cs.ID, p)
	require.NoError(t, err)
	require.NotNil(t, got.LineItems)
	require.Len(t, got.LineItems.Data, 1)
	li := got.LineItems.Data[0]
	assert.Equal(t, "item", li.Object)
	assert.Equal(t, "price_month", li.Price.ID)
	assert.Equal(t, stripe.PriceRecurringIntervalMonth, li.Price.Recurring.Interval)
	assert.Equal(t, int64(2), li.Quantity)
	assert.Equal(t, int64(2000), li.AmountTotal)

	// Trial sessions cost nothing up front; embedded sessions have a client secret.
	assert.Equal(t, int64(0), subSession(t, sc, c.ID, 7).AmountTotal)
	emb, err := sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{
		Mode: stripe.String("payment"), UIMode: stripe.String("embedded"), ReturnURL: stripe.String("https://app.test/r"),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_once"), Quantity: stripe.Int64(1)}},
	})
	require.NoError(t, err)
	assert.Empty(t, emb.URL)
	assert.True(t, strings.HasPrefix(emb.ClientSecret, emb.ID+"_secret_"))
	assert.Nil(t, emb.Customer)

	_, err = sc.V1CheckoutSessions.Retrieve(ctx, "cs_test_nope", nil)
	assert.Equal(t, 404, stripeErr(t, err).HTTPStatusCode)
}

func TestCheckoutSessionValidation(t *testing.T) {
	_, sc := setup(t)
	item := func(price string) []*stripe.CheckoutSessionCreateLineItemParams {
		return []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String(price), Quantity: stripe.Int64(1)}}
	}
	ok := "https://app.test/ok"
	for _, tc := range []struct {
		name        string
		p           *stripe.CheckoutSessionCreateParams
		code, param string
	}{
		{"no mode", &stripe.CheckoutSessionCreateParams{SuccessURL: &ok, LineItems: item("price_month")}, "parameter_missing", "mode"},
		{"bad mode", &stripe.CheckoutSessionCreateParams{Mode: stripe.String("x"), SuccessURL: &ok, LineItems: item("price_month")}, "parameter_invalid", "mode"},
		{"no success_url", &stripe.CheckoutSessionCreateParams{Mode: stripe.String("subscription"), LineItems: item("price_month")}, "parameter_missing", "success_url"},
		{"no line_items", &stripe.CheckoutSessionCreateParams{Mode: stripe.String("subscription"), SuccessURL: &ok}, "parameter_missing", "line_items"},
		{"no quantity", &stripe.CheckoutSessionCreateParams{Mode: stripe.String("subscription"), SuccessURL: &ok,
			LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_month")}}}, "parameter_missing", "line_items[0][quantity]"},
		{"unknown price", &stripe.CheckoutSessionCreateParams{Mode: stripe.String("subscription"), SuccessURL: &ok, LineItems: item("price_nope")}, "resource_missing", "line_items[0][price]"},
		{"unknown customer", &stripe.CheckoutSessionCreateParams{Mode: stripe.String("subscription"), SuccessURL: &ok, LineItems: item("price_month"), Customer: stripe.String("cus_nope")}, "resource_missing", "customer"},
		{"one-time price in subscription mode", &stripe.CheckoutSessionCreateParams{Mode: stripe.String("subscription"), SuccessURL: &ok, LineItems: item("price_once")}, "parameter_invalid", "line_items[0][price]"},
		{"recurring price in payment mode", &stripe.CheckoutSessionCreateParams{Mode: stripe.String("payment"), SuccessURL: &ok, LineItems: item("price_month")}, "parameter_invalid", "line_items[0][price]"},
		{"subscription_data in payment mode", &stripe.CheckoutSessionCreateParams{Mode: stripe.String("payment"), SuccessURL: &ok, LineItems: item("price_once"),
			SubscriptionData: &stripe.CheckoutSessionCreateSubscriptionDataParams{TrialPeriodDays: stripe.Int64(3)}}, "parameter_invalid", "subscription_data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sc.V1CheckoutSessions.Create(ctx, tc.p)
			se := stripeErr(t, err)
			assert.Equal(t, 400, se.HTTPStatusCode)
			assert.Equal(t, stripe.ErrorTypeInvalidRequest, se.Type)
			assert.Equal(t, stripe.ErrorCode(tc.code), se.Code)
			assert.Equal(t, tc.param, se.Param)
			assert.NotEmpty(t, se.Msg)
		})
	}
}

func TestBillingPortalSession(t *testing.T) {
	srv, sc := setup(t)
	c := newCustomer(t, sc)
	ps, err := sc.V1BillingPortalSessions.Create(ctx, &stripe.BillingPortalSessionCreateParams{
		Customer: stripe.String(c.ID), ReturnURL: stripe.String("https://app.test/account"),
	})
	require.NoError(t, err)
	assert.Equal(t, "billing_portal.session", ps.Object)
	assert.True(t, strings.HasPrefix(ps.ID, "bps_"))
	assert.Equal(t, srv.URL()+"/portal/"+ps.ID, ps.URL)
	assert.Equal(t, c.ID, ps.Customer)
	assert.Equal(t, "https://app.test/account", ps.ReturnURL)
	assert.NotNil(t, srv.Object(ps.ID))

	// An unknown object named by a parameter is a 400 (404 is for the path).
	_, err = sc.V1BillingPortalSessions.Create(ctx, &stripe.BillingPortalSessionCreateParams{Customer: stripe.String("cus_nope")})
	se := stripeErr(t, err)
	assert.Equal(t, 400, se.HTTPStatusCode)
	assert.Equal(t, stripe.ErrorCodeResourceMissing, se.Code)
	assert.Equal(t, "customer", se.Param)
}

func TestIdempotency(t *testing.T) {
	srv, sc := setup(t)
	params := func(email string) *stripe.CustomerCreateParams {
		p := &stripe.CustomerCreateParams{Email: stripe.String(email)}
		p.SetIdempotencyKey("key-1")
		return p
	}
	a, err := sc.V1Customers.Create(ctx, params("a@example.com"))
	require.NoError(t, err)
	srv.Advance(time.Hour)
	b, err := sc.V1Customers.Create(ctx, params("a@example.com"))
	require.NoError(t, err)
	assert.Equal(t, a.ID, b.ID)
	assert.Equal(t, a.Created, b.Created)
	assert.Equal(t, a.LastResponse.RawJSON, b.LastResponse.RawJSON)
	assert.Equal(t, "true", b.LastResponse.Header.Get("Idempotent-Replayed"))
	assert.Equal(t, "key-1", b.LastResponse.IdempotencyKey)

	_, err = sc.V1Customers.Create(ctx, params("b@example.com"))
	se := stripeErr(t, err)
	assert.Equal(t, 400, se.HTTPStatusCode)
	assert.Equal(t, stripe.ErrorTypeIdempotency, se.Type)
	var ie *stripe.IdempotencyError
	assert.True(t, errors.As(se.Err, &ie))

	// Each attempt is a call; only one customer exists.
	assert.Equal(t, 3, srv.Calls()["POST /v1/customers"])
	c2, err := sc.V1Customers.Create(ctx, &stripe.CustomerCreateParams{Email: stripe.String("a@example.com")})
	require.NoError(t, err)
	assert.NotEqual(t, a.ID, c2.ID)
}

func TestClockAndHeaders(t *testing.T) {
	srv, _ := setup(t)
	assert.WithinDuration(t, start, srv.Now(), 5*time.Second)
	get := func(path string) *http.Response {
		req, err := http.NewRequest(http.MethodGet, srv.URL()+path, nil)
		require.NoError(t, err)
		req.SetBasicAuth("sk_test_x", "") // as curl -u sk_test_x: sends it
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	date := func(resp *http.Response) time.Time {
		d, err := http.ParseTime(resp.Header.Get("Date"))
		require.NoError(t, err)
		return d
	}
	resp := get("/v1/customers/cus_nope")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.WithinDuration(t, start, date(resp), 5*time.Second)
	assert.True(t, strings.HasPrefix(resp.Header.Get("Request-Id"), "req_"))
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))

	srv.Advance(48 * time.Hour)
	assert.WithinDuration(t, start.Add(48*time.Hour), srv.Now(), 5*time.Second)
	assert.WithinDuration(t, start.Add(48*time.Hour), date(get("/v1/customers/cus_nope")), 5*time.Second)

	// Real time keeps ticking.
	before := srv.Now()
	time.Sleep(20 * time.Millisecond)
	assert.True(t, srv.Now().After(before))
}

func TestUnknownRoute(t *testing.T) {
	srv, _ := setup(t)
	req, err := http.NewRequest(http.MethodPost, srv.URL()+"/v1/nothing", strings.NewReader("a=b"))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer sk_test_x")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, 404, resp.StatusCode)
	var body struct {
		Error stripe.Error `json:"error"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	assert.Equal(t, stripe.ErrorTypeInvalidRequest, body.Error.Type)
	assert.Contains(t, body.Error.Msg, "Unrecognized request URL (POST: /v1/nothing)")
	assert.NotEmpty(t, resp.Header.Get("Date"))
	assert.Equal(t, 1, srv.Calls()["POST /v1/nothing"])
}

func TestCallsAndFailureInjection(t *testing.T) {
	srv, sc := setup(t)
	c := newCustomer(t, sc)
	_, _ = sc.V1Customers.Retrieve(ctx, c.ID, nil)
	_, _ = sc.V1Customers.Retrieve(ctx, c.ID, nil)
	assert.Equal(t, map[string]int{"POST /v1/customers": 1, "GET /v1/customers/{id}": 2}, srv.Calls())
	assert.Equal(t, 3, srv.TotalCalls())
	srv.ResetCalls()
	assert.Equal(t, 0, srv.TotalCalls())
	assert.Empty(t, srv.Calls())

	srv.SetFail("GET /v1/customers/{id}", 500, 2)
	for range 2 {
		_, err := sc.V1Customers.Retrieve(ctx, c.ID, nil)
		se := stripeErr(t, err)
		assert.Equal(t, 500, se.HTTPStatusCode)
		assert.Equal(t, stripe.ErrorTypeAPI, se.Type)
	}
	_, err := sc.V1Customers.Retrieve(ctx, c.ID, nil)
	require.NoError(t, err)
	assert.Equal(t, 3, srv.Calls()["GET /v1/customers/{id}"])

	// An injected failure is not saved for idempotent replay.
	srv.SetFail("POST /v1/customers", 429, 1)
	p := &stripe.CustomerCreateParams{Email: stripe.String("x@example.com")}
	p.SetIdempotencyKey("k")
	_, err = sc.V1Customers.Create(ctx, p)
	se := stripeErr(t, err)
	assert.Equal(t, 429, se.HTTPStatusCode)
	assert.Equal(t, stripe.ErrorCode("rate_limit"), se.Code)
	_, err = sc.V1Customers.Create(ctx, p)
	require.NoError(t, err)
}

func TestCompleteCheckoutSubscription(t *testing.T) {
	srv, sc := setup(t)
	c := newCustomer(t, sc)
	cs := subSession(t, sc, c.ID, 0)
	evs, err := subEvents(testcatalog.Pay(srv, cs.ID))
	require.NoError(t, err)
	require.Equal(t, []string{"customer.subscription.created", "invoice.created", "invoice.finalized",
		"invoice.paid", "invoice.payment_succeeded", "customer.subscription.updated", "checkout.session.completed"}, types(evs))

	now := start.Unix()
	created := decodeAs[stripe.Subscription](t, evs[0])
	assert.Equal(t, stripe.SubscriptionStatusIncomplete, created.Status)
	assert.Equal(t, c.ID, created.Customer.ID)
	assert.Equal(t, map[string]string{"user_id": "u1", "plan": "pro"}, created.Metadata)
	require.Len(t, created.Items.Data, 1)
	item := created.Items.Data[0]
	assert.Equal(t, "price_month", item.Price.ID)
	assert.Equal(t, int64(2), item.Quantity)
	assert.InDelta(t, now, item.CurrentPeriodStart, 5)
	assert.Equal(t, monthsAfter(item.CurrentPeriodStart, 1), item.CurrentPeriodEnd)
	assert.NotEmpty(t, created.LatestInvoice.ID)

	for i, want := range []stripe.InvoiceStatus{"draft", "open", "paid", "paid"} {
		in := decodeAs[stripe.Invoice](t, evs[1+i])
		assert.Equal(t, want, in.Status)
		assert.Equal(t, created.LatestInvoice.ID, in.ID)
		assert.Equal(t, stripe.InvoiceBillingReasonSubscriptionCreate, in.BillingReason)
		assert.Equal(t, created.ID, in.Parent.SubscriptionDetails.Subscription.ID)
		assert.Equal(t, created.Metadata, in.Parent.SubscriptionDetails.Metadata)
		assert.Equal(t, int64(2000), in.AmountDue)
		require.Len(t, in.Lines.Data, 1)
		assert.Equal(t, item.CurrentPeriodEnd, in.Lines.Data[0].Period.End)
		assert.Equal(t, created.ID, in.Lines.Data[0].Parent.SubscriptionItemDetails.Subscription)
		if want == "paid" {
			assert.Equal(t, int64(1), in.AttemptCount)
			assert.Equal(t, int64(0), in.NextPaymentAttempt)
			assert.Equal(t, int64(2000), in.AmountPaid)
			assert.NotEmpty(t, in.Number)
		}
	}
	up := decode(t, evs[5])
	assert.Equal(t, map[string]any{"status": "incomplete"}, up.Data.PreviousAttributes)
	var active stripe.Subscription
	require.NoError(t, json.Unmarshal(up.Data.Raw, &active))
	assert.Equal(t, stripe.SubscriptionStatusActive, active.Status)

	done := decodeAs[stripe.CheckoutSession](t, evs[6])
	assert.Equal(t, stripe.CheckoutSessionStatusComplete, done.Status)
	assert.Equal(t, stripe.CheckoutSessionPaymentStatusPaid, done.PaymentStatus)
	assert.Equal(t, created.ID, done.Subscription.ID)
	assert.Equal(t, c.ID, done.Customer.ID)
	assert.Equal(t, "u1", done.ClientReferenceID)
	assert.Empty(t, done.URL)
	assert.NotEmpty(t, decode(t, evs[6]).Request.ID)

	// The API agrees, with and without expansion.
	p := &stripe.CheckoutSessionRetrieveParams{}
	p.AddExpand("subscription.latest_invoice")
	got, err := sc.V1CheckoutSessions.Retrieve(ctx, cs.ID, p)
	require.NoError(t, err)
	assert.Equal(t, stripe.SubscriptionStatusActive, got.Subscription.Status)
	assert.Equal(t, stripe.InvoiceStatusPaid, got.Subscription.LatestInvoice.Status)
	assertBasil(t, got.LastResponse.RawJSON)

	sp := &stripe.SubscriptionRetrieveParams{}
	sp.AddExpand("latest_invoice")
	sub, err := sc.V1Subscriptions.Retrieve(ctx, created.ID, sp)
	require.NoError(t, err)
	assert.Equal(t, stripe.SubscriptionStatusActive, sub.Status)
	assert.Equal(t, int64(1), sub.LatestInvoice.AttemptCount)
	assertBasil(t, sub.LastResponse.RawJSON)
	inv, err := sc.V1Invoices.Retrieve(ctx, sub.LatestInvoice.ID, nil)
	require.NoError(t, err)
	assertBasil(t, inv.LastResponse.RawJSON)
	_, err = sc.V1Subscriptions.Retrieve(ctx, "sub_nope", nil)
	assert.Equal(t, stripe.ErrorCodeResourceMissing, stripeErr(t, err).Code)
	_, err = sc.V1Invoices.Retrieve(ctx, "in_nope", nil)
	assert.Equal(t, 404, stripeErr(t, err).HTTPStatusCode)

	// Events can be fetched again, and accessors agree.
	ev, err := sc.V1Events.Retrieve(ctx, evs[0].ID, nil)
	require.NoError(t, err)
	assert.Equal(t, evs[0].ID, ev.ID)
	assert.Equal(t, []string{created.ID}, srv.SubscriptionsOf(c.ID))
	assert.Equal(t, stripe.SubscriptionStatusActive, srv.Subscription(created.ID).Status)
	assert.Equal(t, stripe.InvoiceStatusPaid, srv.Invoice(created.LatestInvoice.ID).Status)
	assert.Equal(t, stripe.CheckoutSessionStatusComplete, srv.CheckoutSession(cs.ID).Status)
	assert.Len(t, srv.Events(), 12) // customer.created, then Checkout's eleven

	_, err = testcatalog.Pay(srv, cs.ID)
	assert.Error(t, err, "a session completes once")
}

func TestCompleteCheckoutCreatesCustomer(t *testing.T) {
	srv, sc := setup(t)
	cs, err := sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{
		Mode: stripe.String("subscription"), SuccessURL: stripe.String("https://app.test/ok"),
		CustomerEmail: stripe.String("new@example.com"),
		LineItems:     []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_year"), Quantity: stripe.Int64(1)}},
	})
	require.NoError(t, err)
	evs, err := subEvents(testcatalog.Pay(srv, cs.ID))
	require.NoError(t, err)
	done := decodeAs[stripe.CheckoutSession](t, evs[len(evs)-1])
	require.NotNil(t, done.Customer)
	assert.Equal(t, "new@example.com", srv.Customer(done.Customer.ID).Email)
	assert.Equal(t, "new@example.com", done.CustomerDetails.Email)
	assert.Equal(t, []string{cs.ID}, srv.SessionsOf(done.Customer.ID))
	sub := srv.Subscription(done.Subscription.ID)
	assert.Equal(t, sub.Items.Data[0].CurrentPeriodStart+365*day, sub.Items.Data[0].CurrentPeriodEnd)
	assert.Empty(t, sub.Metadata)
}

func TestTrial(t *testing.T) {
	srv, sc := setup(t)
	c := newCustomer(t, sc)
	evs, err := subEvents(testcatalog.Pay(srv, subSession(t, sc, c.ID, 14).ID))
	require.NoError(t, err)
	require.Equal(t, []string{"customer.subscription.created", "invoice.created", "invoice.finalized",
		"invoice.paid", "invoice.payment_succeeded", "checkout.session.completed"}, types(evs))
	sub := decodeAs[stripe.Subscription](t, evs[0])
	assert.Equal(t, stripe.SubscriptionStatusTrialing, sub.Status)
	assert.Equal(t, sub.TrialStart+14*day, sub.TrialEnd)
	assert.Equal(t, sub.TrialEnd, sub.Items.Data[0].CurrentPeriodEnd)
	in := decodeAs[stripe.Invoice](t, evs[3])
	assert.Equal(t, int64(0), in.AmountDue)
	assert.Equal(t, int64(0), in.AttemptCount)
	assert.Equal(t, stripe.InvoiceStatusPaid, in.Status)
	done := decodeAs[stripe.CheckoutSession](t, evs[5])
	assert.Equal(t, stripe.CheckoutSessionPaymentStatusNoPaymentRequired, done.PaymentStatus)

	evs = without(srv.Advance(11*24*time.Hour), paymentTypes...)
	require.Equal(t, []string{"customer.subscription.trial_will_end"}, types(evs))
	assert.Equal(t, sub.TrialEnd-3*day, evs[0].Created, "three days before the trial ends")
	assert.Equal(t, stripe.SubscriptionStatusTrialing, decodeAs[stripe.Subscription](t, evs[0]).Status)
	assert.Empty(t, decode(t, evs[0]).Request.ID, "automatic: request.id is null")

	evs = without(srv.Advance(3*24*time.Hour+time.Hour), paymentTypes...)
	require.Equal(t, []string{"customer.subscription.updated", "invoice.created", "invoice.finalized",
		"invoice.paid", "invoice.payment_succeeded"}, types(evs))
	assert.Equal(t, sub.TrialEnd, evs[0].Created, "the trial ends at trial_end")
	assert.Equal(t, sub.TrialEnd+3600, evs[2].Created, "its invoice is charged an hour later")
	up := decode(t, evs[0])
	assert.Equal(t, "trialing", up.Data.PreviousAttributes["status"])
	assert.Contains(t, up.Data.PreviousAttributes, "items")
	active := decodeAs[stripe.Subscription](t, evs[0])
	assert.Equal(t, stripe.SubscriptionStatusActive, active.Status)
	assert.Equal(t, sub.TrialEnd, active.Items.Data[0].CurrentPeriodStart)
	assert.Equal(t, monthsAfter(sub.TrialEnd, 1), active.Items.Data[0].CurrentPeriodEnd)
	paid := decodeAs[stripe.Invoice](t, evs[3])
	assert.Equal(t, int64(2000), paid.AmountPaid)
	assert.Equal(t, int64(1), paid.AttemptCount)
	assert.Equal(t, stripe.InvoiceBillingReasonSubscriptionCycle, paid.BillingReason)
	assert.Equal(t, active.LatestInvoice.ID, paid.ID)

	next, ok := srv.NextEvent()
	require.True(t, ok)
	assert.Equal(t, active.Items.Data[0].CurrentPeriodEnd-3*day, next.Unix(), "next: the renewal's invoice.upcoming, no second trial notice")
}

func TestTrialEndFails(t *testing.T) {
	srv, sc := setup(t)
	subID, c := subscribe(t, srv, sc, 7)
	require.NoError(t, testcatalog.SetCardFailing(srv, c.ID, true))
	evs, err := subEvents(testcatalog.EndTrial(srv, subID))
	require.NoError(t, err)
	require.Equal(t, []string{"customer.subscription.trial_will_end", "customer.subscription.updated", "invoice.created",
		"invoice.finalized", "invoice.updated", "invoice.payment_failed", "customer.subscription.updated"}, types(evs))
	evs = evs[1:]
	in := decodeAs[stripe.Invoice](t, evs[4])
	assert.Equal(t, int64(1), in.AttemptCount)
	assert.Equal(t, stripe.InvoiceStatusOpen, in.Status)
	last := decode(t, evs[5])
	assert.Equal(t, map[string]any{"status": "active"}, last.Data.PreviousAttributes)
	assert.Equal(t, stripe.SubscriptionStatusPastDue, srv.Subscription(subID).Status)
	assert.InDelta(t, start.Unix()+7*day, srv.Subscription(subID).TrialEnd, 5)
}

func TestPaymentMode(t *testing.T) {
	srv, sc := setup(t)
	create := func() *stripe.CheckoutSession {
		cs, err := sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{
			Mode: stripe.String("payment"), SuccessURL: stripe.String("https://app.test/ok"),
			LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_once"), Quantity: stripe.Int64(3)}},
		})
		require.NoError(t, err)
		return cs
	}
	evs, err := subEvents(testcatalog.Pay(srv, create().ID))
	require.NoError(t, err)
	require.Equal(t, []string{"checkout.session.completed"}, types(evs))
	cs := decodeAs[stripe.CheckoutSession](t, evs[0])
	assert.Equal(t, stripe.CheckoutSessionPaymentStatusPaid, cs.PaymentStatus)
	assert.Equal(t, int64(7500), cs.AmountTotal)
	assert.Nil(t, cs.Subscription)
	assert.NotEmpty(t, cs.PaymentIntent.ID)

	delayed := create()
	evs, err = subEvents(testcatalog.PayWith(srv, delayed.ID, billingtest.BankDebit))
	require.NoError(t, err)
	cs = decodeAs[stripe.CheckoutSession](t, evs[0])
	assert.Equal(t, stripe.CheckoutSessionStatusComplete, cs.Status)
	assert.Equal(t, stripe.CheckoutSessionPaymentStatusUnpaid, cs.PaymentStatus)
	assert.Empty(t, srv.Advance(2*time.Minute+59*time.Second), "a bank debit settles 3 minutes later")
	evs = without(srv.Advance(time.Second), paymentTypes...)
	require.Equal(t, []string{"checkout.session.async_payment_succeeded"}, types(evs))
	assert.Equal(t, cs.Created+180, evs[0].Created)
	assert.Equal(t, stripe.CheckoutSessionPaymentStatusPaid, decodeAs[stripe.CheckoutSession](t, evs[0]).PaymentStatus)
	assert.Empty(t, testcatalog.Settle(srv), "settled once")

	failing := create()
	_, err = testcatalog.PayWith(srv, failing.ID, billingtest.BankDebitFails)
	require.NoError(t, err)
	evs = without(testcatalog.Settle(srv), paymentTypes...)
	require.Equal(t, []string{"checkout.session.async_payment_failed"}, types(evs))
	assert.Equal(t, stripe.CheckoutSessionPaymentStatusUnpaid, decodeAs[stripe.CheckoutSession](t, evs[0]).PaymentStatus)
	_, err = srv.Pay(create().ID, "DE00 0000 0000 0000 0000 00")
	assert.ErrorIs(t, err, billingtest.ErrInvalidCardNumber, "only Stripe's test IBANs")

	expiring := create()
	evs, err = subEvents(testcatalog.Expire(srv, expiring.ID))
	require.NoError(t, err)
	require.Equal(t, []string{"checkout.session.expired"}, types(evs))
	assert.Equal(t, stripe.CheckoutSessionStatusExpired, decodeAs[stripe.CheckoutSession](t, evs[0]).Status)
}

func TestRenew(t *testing.T) {
	srv, sc := setup(t)
	subID, _ := subscribe(t, srv, sc, 0)
	before := srv.Subscription(subID)
	evs, err := subEvents(testcatalog.Renew(srv, subID))
	require.NoError(t, err)
	require.Equal(t, []string{"customer.subscription.updated", "invoice.created", "invoice.finalized",
		"invoice.paid", "invoice.payment_succeeded"}, types(evs))
	for i, e := range evs {
		at := before.Items.Data[0].CurrentPeriodEnd // the period ends; its invoice is charged an hour later
		if i >= 2 {
			at += 3600
		}
		assert.Equal(t, at, e.Created, e.Type)
	}
	up := decode(t, evs[0])
	assert.Empty(t, up.Request.ID, "automatic events have no request")
	prevItems, err := json.Marshal(up.Data.PreviousAttributes["items"])
	require.NoError(t, err)
	var old stripe.SubscriptionItemList
	require.NoError(t, json.Unmarshal(prevItems, &old))
	assert.Equal(t, before.Items.Data[0].CurrentPeriodEnd, old.Data[0].CurrentPeriodEnd)
	sub := decodeAs[stripe.Subscription](t, evs[0])
	assert.Equal(t, stripe.SubscriptionStatusActive, sub.Status)
	assert.Equal(t, before.Items.Data[0].CurrentPeriodEnd, sub.Items.Data[0].CurrentPeriodStart)
	assert.Equal(t, monthsAfter(before.Items.Data[0].CurrentPeriodEnd, 1), sub.Items.Data[0].CurrentPeriodEnd)
	assert.NotEqual(t, before.LatestInvoice.ID, sub.LatestInvoice.ID)

	in := decodeAs[stripe.Invoice](t, evs[1])
	assert.Equal(t, stripe.InvoiceStatusDraft, in.Status)
	assert.Equal(t, stripe.InvoiceBillingReasonSubscriptionCycle, in.BillingReason)
	assert.Equal(t, sub.Items.Data[0].CurrentPeriodEnd, in.Lines.Data[0].Period.End)
	assert.Equal(t, before.Items.Data[0].CurrentPeriodEnd, in.PeriodEnd, "period_end looks one period back")
	paid := decodeAs[stripe.Invoice](t, evs[4])
	assert.Equal(t, stripe.InvoiceStatusPaid, paid.Status)
	assert.Equal(t, int64(1), paid.AttemptCount)
	assert.Equal(t, sub.LatestInvoice.ID, paid.ID)
}

func TestFailedRenewalAndRetries(t *testing.T) {
	for _, tc := range []struct {
		outcome  billingtest.FailureOutcome
		last     []string
		finalSts stripe.SubscriptionStatus
	}{
		{"", []string{"invoice.updated", "invoice.payment_failed", "customer.subscription.deleted"}, stripe.SubscriptionStatusCanceled},
		{billingtest.OutcomeUnpaid, []string{"invoice.updated", "invoice.payment_failed", "customer.subscription.updated"}, stripe.SubscriptionStatusUnpaid},
		{billingtest.OutcomePastDue, []string{"invoice.updated", "invoice.payment_failed"}, stripe.SubscriptionStatusPastDue},
	} {
		t.Run(string(tc.outcome), func(t *testing.T) {
			srv, sc := setup(t)
			srv.SetRetrySchedule(24*time.Hour, 72*time.Hour, 120*time.Hour) // four attempts, as this test counts them
			if tc.outcome != "" {
				srv.SetFailureOutcome(tc.outcome)
			}
			subID, c := subscribe(t, srv, sc, 0)
			require.NoError(t, testcatalog.SetCardFailing(srv, c.ID, true))
			evs, err := subEvents(testcatalog.Renew(srv, subID))
			require.NoError(t, err)
			require.Equal(t, []string{"customer.subscription.updated", "invoice.created", "invoice.finalized",
				"invoice.updated", "invoice.payment_failed", "customer.subscription.updated"}, types(evs))
			first := decodeAs[stripe.Invoice](t, evs[4])
			t0 := evs[4].Created
			assert.Equal(t, int64(1), first.AttemptCount)
			assert.Equal(t, stripe.InvoiceStatusOpen, first.Status)
			assert.Equal(t, t0+day, first.NextPaymentAttempt)
			pastDue := decode(t, evs[5])
			assert.Equal(t, map[string]any{"status": "active"}, pastDue.Data.PreviousAttributes)
			assert.Equal(t, stripe.SubscriptionStatusPastDue, decodeAs[stripe.Subscription](t, evs[5]).Status)

			wantNext := []int64{t0 + 3*day, t0 + 5*day}
			for i, want := range wantNext {
				evs, err = subEvents(testcatalog.Retry(srv, subID))
				require.NoError(t, err)
				require.Equal(t, []string{"invoice.updated", "invoice.payment_failed"}, types(evs))
				in := decodeAs[stripe.Invoice](t, evs[0])
				assert.Equal(t, int64(i+2), in.AttemptCount)
				assert.Equal(t, want, in.NextPaymentAttempt)
				assert.Equal(t, first.ID, in.ID)
			}
			evs, err = subEvents(testcatalog.Retry(srv, subID))
			require.NoError(t, err)
			require.Equal(t, tc.last, types(evs))
			in := decodeAs[stripe.Invoice](t, evs[0])
			assert.Equal(t, int64(4), in.AttemptCount)
			assert.Equal(t, int64(0), in.NextPaymentAttempt)
			if len(evs) > 2 {
				s := decodeAs[stripe.Subscription](t, evs[2])
				assert.Equal(t, tc.finalSts, s.Status)
				if tc.finalSts == stripe.SubscriptionStatusCanceled {
					assert.Equal(t, evs[2].Created, s.EndedAt)
					assert.Equal(t, stripe.SubscriptionCancellationDetailsReasonPaymentFailed, s.CancellationDetails.Reason)
				}
			}
			assert.Equal(t, tc.finalSts, srv.Subscription(subID).Status)
			_, err = testcatalog.Retry(srv, subID)
			assert.Error(t, err, "no retries left")
		})
	}
}

func TestRetrySucceeds(t *testing.T) {
	srv, sc := setup(t)
	subID, c := subscribe(t, srv, sc, 0)
	require.NoError(t, testcatalog.SetCardFailing(srv, c.ID, true))
	_, err := testcatalog.Renew(srv, subID)
	require.NoError(t, err)
	require.NoError(t, testcatalog.SetCardFailing(srv, c.ID, false))
	evs, err := subEvents(testcatalog.Retry(srv, subID))
	require.NoError(t, err)
	require.Equal(t, []string{"invoice.paid", "invoice.payment_succeeded", "customer.subscription.updated"}, types(evs))
	in := decodeAs[stripe.Invoice](t, evs[0])
	assert.Equal(t, int64(2), in.AttemptCount)
	assert.Equal(t, int64(0), in.NextPaymentAttempt)
	assert.Equal(t, map[string]any{"status": "past_due"}, decode(t, evs[2]).Data.PreviousAttributes)
	assert.Equal(t, stripe.SubscriptionStatusActive, decodeAs[stripe.Subscription](t, evs[2]).Status)
	_, err = testcatalog.Retry(srv, subID)
	assert.Error(t, err, "invoice is paid")
}

func TestCancellation(t *testing.T) {
	srv, sc := setup(t)
	subID, _ := subscribe(t, srv, sc, 0)
	periodEnd := srv.Subscription(subID).Items.Data[0].CurrentPeriodEnd

	evs, err := srv.CancelAtPeriodEnd(subID)
	require.NoError(t, err)
	require.Equal(t, []string{"customer.subscription.updated"}, types(evs))
	e := decode(t, evs[0])
	assert.NotEmpty(t, e.Request.ID)
	assert.Equal(t, false, e.Data.PreviousAttributes["cancel_at_period_end"])
	assert.Contains(t, e.Data.PreviousAttributes, "cancel_at")
	assert.Nil(t, e.Data.PreviousAttributes["cancel_at"])
	s := decodeAs[stripe.Subscription](t, evs[0])
	assert.True(t, s.CancelAtPeriodEnd)
	assert.Equal(t, periodEnd, s.CancelAt)
	assert.Equal(t, evs[0].Created, s.CanceledAt)
	assert.Equal(t, stripe.SubscriptionStatusActive, s.Status)
	next, ok := srv.NextEvent()
	require.True(t, ok)
	assert.Equal(t, periodEnd, next.Unix(), "next: the cancellation")

	evs, err = srv.Uncancel(subID)
	require.NoError(t, err)
	s = decodeAs[stripe.Subscription](t, evs[0])
	assert.False(t, s.CancelAtPeriodEnd)
	assert.Zero(t, s.CancelAt)
	assert.Zero(t, s.CanceledAt)
	assert.Equal(t, true, decode(t, evs[0]).Data.PreviousAttributes["cancel_at_period_end"])
	_, err = srv.Uncancel(subID)
	assert.Error(t, err)

	at := srv.Now().Add(10 * 24 * time.Hour).Truncate(time.Second)
	evs, err = subEvents(testcatalog.CancelAt(srv, subID, at))
	require.NoError(t, err)
	s = decodeAs[stripe.Subscription](t, evs[0])
	assert.False(t, s.CancelAtPeriodEnd)
	assert.Equal(t, at.Unix(), s.CancelAt)
	_, err = testcatalog.CancelAt(srv, subID, start.Add(-time.Hour))
	assert.Error(t, err)

	evs = without(srv.Advance(10*24*time.Hour), paymentTypes...)
	require.Equal(t, []string{"customer.subscription.deleted"}, types(evs))
	s = decodeAs[stripe.Subscription](t, evs[0])
	assert.Equal(t, stripe.SubscriptionStatusCanceled, s.Status)
	assert.Equal(t, at.Unix(), s.EndedAt)
	assert.Less(t, s.CanceledAt, s.EndedAt)
	_, err = srv.CancelNow(subID)
	assert.Error(t, err, "already canceled")

	sub2, _ := subscribe(t, srv, sc, 0)
	evs, err = srv.CancelNow(sub2)
	require.NoError(t, err)
	require.Equal(t, []string{"customer.subscription.deleted"}, types(evs))
	s = decodeAs[stripe.Subscription](t, evs[0])
	assert.Equal(t, stripe.SubscriptionStatusCanceled, s.Status)
	assert.Equal(t, evs[0].Created, s.EndedAt)
	assert.Equal(t, evs[0].Created, s.CanceledAt)
}

func TestChangePrice(t *testing.T) {
	srv, sc := setup(t)
	subID, _ := subscribe(t, srv, sc, 0)
	srv.AddPrice("price_month_plus", "month", 2000)
	evs, err := srv.ChangePrice(subID, "price_month_plus")
	require.NoError(t, err)
	require.Equal(t, []string{"customer.subscription.updated"}, types(evs))
	e := decode(t, evs[0])
	require.Contains(t, e.Data.PreviousAttributes, "items")
	raw, _ := json.Marshal(e.Data.PreviousAttributes["items"])
	var old stripe.SubscriptionItemList
	require.NoError(t, json.Unmarshal(raw, &old))
	assert.Equal(t, "price_month", old.Data[0].Price.ID)
	assert.Equal(t, "price_month_plus", decodeAs[stripe.Subscription](t, evs[0]).Items.Data[0].Price.ID)
	_, err = srv.ChangePrice(subID, "price_once")
	assert.Error(t, err)
	_, err = srv.ChangePrice(subID, "price_nope")
	assert.Error(t, err)
}

func TestSnapshotsAreImmutable(t *testing.T) {
	srv, sc := setup(t)
	c := newCustomer(t, sc)
	evs, err := subEvents(testcatalog.Pay(srv, subSession(t, sc, c.ID, 0).ID))
	require.NoError(t, err)
	evs = without(evs, paymentTypes...)
	created := string(evs[0].JSON)
	invCreated := string(evs[1].JSON)
	subID := decodeAs[stripe.Subscription](t, evs[0]).ID

	_, err = testcatalog.Renew(srv, subID)
	require.NoError(t, err)
	_, err = srv.CancelNow(subID)
	require.NoError(t, err)

	assert.Equal(t, created, string(evs[0].JSON))
	assert.Equal(t, invCreated, string(evs[1].JSON))
	all := without(srv.Events(), paymentTypes...)
	assert.Equal(t, created, string(all[0].JSON))
	assert.Equal(t, stripe.SubscriptionStatusIncomplete, decodeAs[stripe.Subscription](t, all[0]).Status)
	assert.Equal(t, stripe.InvoiceStatusDraft, decodeAs[stripe.Invoice](t, all[1]).Status)

	// Mutating returned bytes doesn't touch the fake's record.
	evs[0].JSON[0] = 'X'
	assert.Equal(t, created, string(pick(t, srv.Events(), "customer.subscription.created").JSON))
	assert.Equal(t, created, string(srv.Object(evs[0].ID)))
}

func TestConcurrentUse(t *testing.T) {
	srv, sc := setup(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := sc.V1Customers.Create(ctx, &stripe.CustomerCreateParams{Email: stripe.String(fmt.Sprintf("u%d@example.com", i))})
			if !assert.NoError(t, err) {
				return
			}
			cs := subSession(t, sc, c.ID, 0)
			evs, err := subEvents(testcatalog.Pay(srv, cs.ID))
			if !assert.NoError(t, err) {
				return
			}
			subID := decodeAs[stripe.CheckoutSession](t, evs[len(evs)-1]).Subscription.ID
			srv.Advance(time.Second)
			_, err = srv.CancelAtPeriodEnd(subID)
			assert.NoError(t, err)
			_, err = sc.V1Subscriptions.Retrieve(ctx, subID, nil)
			assert.NoError(t, err)
			_ = srv.Calls()
		}()
	}
	wg.Wait()
	assert.Equal(t, 8, srv.Calls()["GET /v1/subscriptions/{id}"])
	assert.Len(t, srv.Events(), 8*(1+11+1))
}

func TestEventsVerifyAsWebhooks(t *testing.T) {
	srv, sc := setup(t)
	subscribe(t, srv, sc, 0)
	for _, ev := range srv.Events() {
		signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: ev.JSON, Secret: "whsec_x", Timestamp: time.Now()})
		got, err := webhook.ConstructEvent(signed.Payload, signed.Header, "whsec_x")
		require.NoError(t, err, ev.Type)
		assert.Equal(t, ev.ID, got.ID)
	}
}

// StampedAt moves an event to another created second, in its JSON too,
// and leaves the original alone.
func TestEventStampedAt(t *testing.T) {
	ev := billingtest.Event{ID: "evt_1", Type: "invoice.paid", Created: 100, JSON: []byte(`{"id":"evt_1","created":100,"type":"invoice.paid"}`)}
	got := ev.StampedAt(42)
	assert.Equal(t, int64(42), got.Created)
	var m map[string]any
	require.NoError(t, json.Unmarshal(got.JSON, &m))
	assert.Equal(t, float64(42), m["created"])
	assert.Equal(t, "evt_1", m["id"])
	assert.Equal(t, int64(100), ev.Created)
	assert.Contains(t, string(ev.JSON), `"created":100`)
}
