package billingtest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
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

// apiSetup is setup with a client that never retries, so that every error
// comes back as it was answered.
func apiSetup(t *testing.T) (*billingtest.Stripe, *stripe.Client) {
	t.Helper()
	srv, _ := setup(t)
	return srv, apiClient(srv)
}

func apiClient(srv *billingtest.Stripe) *stripe.Client {
	return stripe.NewClient("sk_test_x", stripe.WithBackends(stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL:               stripe.String(srv.URL()),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
		MaxNetworkRetries: stripe.Int64(0),
	})))
}

// apiDo makes a raw request (form is the encoded query for GET and DELETE,
// the body for POST) and returns the status, the decoded body and the
// headers.
func apiDo(t *testing.T, srv *billingtest.Stripe, method, path, form string, header ...string) (int, map[string]any, http.Header) {
	t.Helper()
	var body io.Reader
	u := srv.URL() + path
	if method == http.MethodPost {
		body = strings.NewReader(form)
	} else if form != "" {
		u += "?" + form
	}
	req, err := http.NewRequest(method, u, body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer sk_test_x")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var m map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	return resp.StatusCode, m, resp.Header
}

// apiList GETs a list and checks its envelope and every object's layout.
func apiList(t *testing.T, srv *billingtest.Stripe, path, form string) (ids []string, hasMore bool) {
	t.Helper()
	status, m, _ := apiDo(t, srv, http.MethodGet, path, form)
	require.Equal(t, 200, status, "%v", m)
	assert.Equal(t, "list", m["object"])
	assert.Equal(t, path, m["url"])
	for _, d := range m["data"].([]any) {
		raw, err := json.Marshal(d)
		require.NoError(t, err)
		if d.(map[string]any)["object"] != "item" {
			assertBasil(t, raw)
		}
		ids = append(ids, d.(map[string]any)["id"].(string))
	}
	return ids, m["has_more"].(bool)
}

// apiErr checks a Stripe error from stripe-go.
func apiErr(t *testing.T, err error, status int, typ stripe.ErrorType, code, param string) *stripe.Error {
	t.Helper()
	se := stripeErr(t, err)
	assert.Equal(t, status, se.HTTPStatusCode, se.Msg)
	assert.Equal(t, typ, se.Type, se.Msg)
	assert.Equal(t, stripe.ErrorCode(code), se.Code, se.Msg)
	assert.Equal(t, param, se.Param, se.Msg)
	assert.NotEmpty(t, se.Msg)
	return se
}

// invalidReq checks an invalid_request_error.
func invalidReq(t *testing.T, err error, status int, code, param string) *stripe.Error {
	t.Helper()
	return apiErr(t, err, status, stripe.ErrorTypeInvalidRequest, code, param)
}

// collect drains a stripe-go list iterator.
func collect[T any](t *testing.T, seq stripe.Seq2[T, error]) []T {
	t.Helper()
	var out []T
	for v, err := range seq {
		require.NoError(t, err)
		out = append(out, v)
	}
	return out
}

func idsOf[T any](vs []T, id func(T) string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = id(v)
	}
	return out
}

func TestProductsAndPrices(t *testing.T) {
	srv, sc := apiSetup(t)
	prod, err := sc.V1Products.Create(ctx, &stripe.ProductCreateParams{
		Name: stripe.String("Pro plan"), Metadata: map[string]string{"tier": "pro"},
	})
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(prod.ID, "prod_"))
	assert.Equal(t, "product", prod.Object)
	assert.Equal(t, "Pro plan", prod.Name)
	assert.True(t, prod.Active)
	assert.Equal(t, map[string]string{"tier": "pro"}, prod.Metadata)
	got, err := sc.V1Products.Retrieve(ctx, prod.ID, nil)
	require.NoError(t, err)
	assert.Equal(t, prod.ID, got.ID)
	assert.Equal(t, "Pro plan", srv.Product(prod.ID).Name)

	// AddPrice made a product for each of setup's prices.
	products := collect(t, sc.V1Products.List(ctx, &stripe.ProductListParams{}))
	assert.Equal(t, []string{prod.ID, "prod_price_once", "prod_price_year", "prod_price_month"},
		idsOf(products, func(p *stripe.Product) string { return p.ID }))
	some := collect(t, sc.V1Products.List(ctx, &stripe.ProductListParams{IDs: stripe.StringSlice([]string{"prod_price_year"})}))
	require.Len(t, some, 1)
	assert.Equal(t, "price_year", some[0].Name)

	monthly, err := sc.V1Prices.Create(ctx, &stripe.PriceCreateParams{
		Product: stripe.String(prod.ID), UnitAmount: stripe.Int64(1500), Currency: stripe.String("usd"),
		Recurring: &stripe.PriceCreateRecurringParams{Interval: stripe.String("month")},
		LookupKey: stripe.String("pro_monthly"), Metadata: map[string]string{"k": "v"},
	})
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(monthly.ID, "price_"))
	assert.Equal(t, "price", monthly.Object)
	assert.Equal(t, "pro_monthly", monthly.LookupKey)
	assert.Equal(t, prod.ID, monthly.Product.ID)
	assert.Equal(t, stripe.PriceTypeRecurring, monthly.Type)
	assert.Equal(t, stripe.PriceRecurringIntervalMonth, monthly.Recurring.Interval)
	assert.Equal(t, int64(1), monthly.Recurring.IntervalCount)
	assert.Equal(t, int64(1500), monthly.UnitAmount)
	assert.Equal(t, stripe.Currency("usd"), monthly.Currency)
	assert.True(t, monthly.Active)
	assert.Equal(t, map[string]string{"k": "v"}, monthly.Metadata)

	quarterly, err := sc.V1Prices.Create(ctx, &stripe.PriceCreateParams{
		ProductData: &stripe.PriceCreateProductDataParams{Name: stripe.String("Quarterly")},
		UnitAmount:  stripe.Int64(4000), Currency: stripe.String("USD"),
		Recurring: &stripe.PriceCreateRecurringParams{Interval: stripe.String("month"), IntervalCount: stripe.Int64(3)},
	})
	require.NoError(t, err)
	assert.Equal(t, int64(3), quarterly.Recurring.IntervalCount)
	assert.Equal(t, stripe.Currency("usd"), quarterly.Currency)
	assert.Empty(t, quarterly.LookupKey)
	rp := &stripe.PriceRetrieveParams{}
	rp.AddExpand("product")
	q2, err := sc.V1Prices.Retrieve(ctx, quarterly.ID, rp)
	require.NoError(t, err)
	assert.Equal(t, "Quarterly", q2.Product.Name)
	assert.Equal(t, q2.Product.ID, srv.Price(quarterly.ID).Product.ID)

	once, err := sc.V1Prices.Create(ctx, &stripe.PriceCreateParams{
		Product: stripe.String(prod.ID), UnitAmount: stripe.Int64(0), Currency: stripe.String("eur"),
		LookupKey: stripe.String("setup_fee"), Active: stripe.Bool(false),
	})
	require.NoError(t, err)
	assert.Equal(t, stripe.PriceTypeOneTime, once.Type)
	assert.Nil(t, once.Recurring)
	assert.False(t, once.Active)

	list := func(p *stripe.PriceListParams) []string {
		return idsOf(collect(t, sc.V1Prices.List(ctx, p)), func(p *stripe.Price) string { return p.ID })
	}
	assert.Equal(t, []string{once.ID, quarterly.ID, monthly.ID, "price_once", "price_year", "price_month"}, list(nil))
	assert.Equal(t, []string{monthly.ID}, list(&stripe.PriceListParams{LookupKeys: stripe.StringSlice([]string{"pro_monthly", "nope"})}))
	assert.Equal(t, []string{once.ID, monthly.ID}, list(&stripe.PriceListParams{LookupKeys: stripe.StringSlice([]string{"pro_monthly", "setup_fee"})}))
	assert.Equal(t, []string{once.ID}, list(&stripe.PriceListParams{Active: stripe.Bool(false)}))
	assert.Equal(t, []string{once.ID, "price_once"}, list(&stripe.PriceListParams{Type: stripe.String("one_time")}))
	assert.Equal(t, []string{once.ID, monthly.ID}, list(&stripe.PriceListParams{Product: stripe.String(prod.ID)}))
	assert.Equal(t, []string{once.ID}, list(&stripe.PriceListParams{Currency: stripe.String("eur")}))
	assert.Equal(t, []string{"price_year"}, list(&stripe.PriceListParams{Recurring: &stripe.PriceListRecurringParams{Interval: stripe.String("year")}}))
	ids, _ := apiList(t, srv, "/v1/prices", "lookup_keys[]=pro_monthly&expand[]=data.product")
	assert.Equal(t, []string{monthly.ID}, ids)

	// A lookup key is unique unless transferred.
	_, err = sc.V1Prices.Create(ctx, &stripe.PriceCreateParams{Product: stripe.String(prod.ID), UnitAmount: stripe.Int64(1600),
		Currency: stripe.String("usd"), LookupKey: stripe.String("pro_monthly"),
		Recurring: &stripe.PriceCreateRecurringParams{Interval: stripe.String("month")}})
	invalidReq(t, err, 400, "parameter_invalid", "lookup_key")
	moved, err := sc.V1Prices.Create(ctx, &stripe.PriceCreateParams{Product: stripe.String(prod.ID), UnitAmount: stripe.Int64(1600),
		Currency: stripe.String("usd"), LookupKey: stripe.String("pro_monthly"), TransferLookupKey: stripe.Bool(true),
		Recurring: &stripe.PriceCreateRecurringParams{Interval: stripe.String("month")}})
	require.NoError(t, err)
	assert.Equal(t, []string{moved.ID}, list(&stripe.PriceListParams{LookupKeys: stripe.StringSlice([]string{"pro_monthly"})}))
	assert.Empty(t, srv.Price(monthly.ID).LookupKey)

	// A price made through the API sells through Checkout; its interval
	// count sets the period.
	c := newCustomer(t, sc)
	cs, err := sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{
		Mode: stripe.String("subscription"), Customer: stripe.String(c.ID), SuccessURL: stripe.String("https://app.test/ok"),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String(quarterly.ID), Quantity: stripe.Int64(1)}},
	})
	require.NoError(t, err)
	assert.Equal(t, int64(4000), cs.AmountTotal)
	evs, err := testcatalog.Pay(srv, cs.ID)
	require.NoError(t, err)
	sub := decodeAs[stripe.Subscription](t, pick(t, evs, "customer.subscription.created"))
	assert.Equal(t, monthsAfter(sub.Items.Data[0].CurrentPeriodStart, 3), sub.Items.Data[0].CurrentPeriodEnd)
	in := decodeAs[stripe.Invoice](t, pick(t, evs, "invoice.created"))
	assert.Equal(t, "1 × Quarterly (at $40.00 / month)", in.Lines.Data[0].Description)

	// An inactive price cannot be sold.
	_, err = sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{
		Mode: stripe.String("payment"), SuccessURL: stripe.String("https://app.test/ok"),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String(once.ID), Quantity: stripe.Int64(1)}},
	})
	invalidReq(t, err, 400, "parameter_invalid", "line_items[0][price]")

	// Errors.
	_, err = sc.V1Products.Create(ctx, &stripe.ProductCreateParams{})
	invalidReq(t, err, 400, "parameter_missing", "name")
	_, err = sc.V1Products.Create(ctx, &stripe.ProductCreateParams{ID: stripe.String(prod.ID), Name: stripe.String("x")})
	invalidReq(t, err, 400, "resource_already_exists", "id")
	_, err = sc.V1Products.Retrieve(ctx, "prod_nope", nil)
	se := invalidReq(t, err, 404, "resource_missing", "id")
	assert.Equal(t, "No such product: 'prod_nope'", se.Msg)
	_, err = sc.V1Prices.Retrieve(ctx, "price_nope", nil)
	se = invalidReq(t, err, 404, "resource_missing", "id")
	assert.Equal(t, "No such price: 'price_nope'", se.Msg)
	base := func() *stripe.PriceCreateParams {
		return &stripe.PriceCreateParams{Product: stripe.String(prod.ID), UnitAmount: stripe.Int64(100), Currency: stripe.String("usd")}
	}
	for _, tc := range []struct {
		name        string
		edit        func(p *stripe.PriceCreateParams)
		code, param string
	}{
		{"no currency", func(p *stripe.PriceCreateParams) { p.Currency = nil }, "parameter_missing", "currency"},
		{"no product", func(p *stripe.PriceCreateParams) { p.Product = nil }, "parameter_missing", "product"},
		{"unknown product", func(p *stripe.PriceCreateParams) { p.Product = stripe.String("prod_nope") }, "resource_missing", "product"},
		{"product and product_data", func(p *stripe.PriceCreateParams) {
			p.ProductData = &stripe.PriceCreateProductDataParams{Name: stripe.String("x")}
		}, "parameters_exclusive", "product"},
		{"no unit_amount", func(p *stripe.PriceCreateParams) { p.UnitAmount = nil }, "parameter_missing", "unit_amount"},
		{"negative unit_amount", func(p *stripe.PriceCreateParams) { p.UnitAmount = stripe.Int64(-1) }, "parameter_invalid_integer", "unit_amount"},
		{"bad interval", func(p *stripe.PriceCreateParams) {
			p.Recurring = &stripe.PriceCreateRecurringParams{Interval: stripe.String("fortnight")}
		}, "parameter_invalid", "recurring[interval]"},
		{"too long a period", func(p *stripe.PriceCreateParams) {
			p.Recurring = &stripe.PriceCreateRecurringParams{Interval: stripe.String("year"), IntervalCount: stripe.Int64(4)}
		}, "parameter_invalid", "recurring[interval_count]"},
		{"unsupported parameter", func(p *stripe.PriceCreateParams) { p.TaxBehavior = stripe.String("inclusive") }, "parameter_not_modelled", "tax_behavior"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := base()
			tc.edit(p)
			_, err := sc.V1Prices.Create(ctx, p)
			invalidReq(t, err, 400, tc.code, tc.param)
		})
	}
	_, err = sc.V1Prices.Retrieve(ctx, monthly.ID, &stripe.PriceRetrieveParams{Expand: stripe.StringSlice([]string{"nope"})})
	invalidReq(t, err, 400, "", "expand")
}

func TestCustomerListAndUpdate(t *testing.T) {
	srv, sc := apiSetup(t)
	a := newCustomer(t, sc)
	b, err := sc.V1Customers.Create(ctx, &stripe.CustomerCreateParams{Email: stripe.String("b@example.com")})
	require.NoError(t, err)
	c := newCustomer(t, sc)
	all := collect(t, sc.V1Customers.List(ctx, nil))
	assert.Equal(t, []string{c.ID, b.ID, a.ID}, idsOf(all, func(c *stripe.Customer) string { return c.ID }))
	byEmail := collect(t, sc.V1Customers.List(ctx, &stripe.CustomerListParams{Email: stripe.String("a@example.com")}))
	assert.Equal(t, []string{c.ID, a.ID}, idsOf(byEmail, func(c *stripe.Customer) string { return c.ID }))

	up, err := sc.V1Customers.Update(ctx, a.ID, &stripe.CustomerUpdateParams{
		Email: stripe.String("new@example.com"), Metadata: map[string]string{"user_id": "", "plan": "pro"},
	})
	require.NoError(t, err)
	assert.Equal(t, "new@example.com", up.Email)
	assert.Equal(t, "Ann", up.Name, "unchanged")
	assert.Equal(t, map[string]string{"plan": "pro"}, up.Metadata, "an empty value unsets a key")
	assert.Equal(t, "new@example.com", srv.Customer(a.ID).Email)
	p := &stripe.CustomerUpdateParams{}
	p.AddExtra("name", "")
	up, err = sc.V1Customers.Update(ctx, a.ID, p)
	require.NoError(t, err)
	assert.Empty(t, up.Name)

	_, err = sc.V1Customers.Update(ctx, "cus_nope", &stripe.CustomerUpdateParams{Name: stripe.String("x")})
	se := invalidReq(t, err, 404, "resource_missing", "id")
	assert.Equal(t, "No such customer: 'cus_nope'", se.Msg)
	_, err = sc.V1Customers.Update(ctx, a.ID, &stripe.CustomerUpdateParams{Email: stripe.String("not-an-email")})
	invalidReq(t, err, 400, "parameter_invalid", "email")
	_, err = sc.V1Customers.Update(ctx, a.ID, &stripe.CustomerUpdateParams{TaxExempt: stripe.String("exempt")})
	se = invalidReq(t, err, 400, "parameter_not_modelled", "tax_exempt")
	assert.Contains(t, se.Msg, "valid at Stripe")
}

func TestCheckoutSessionExpireAndLists(t *testing.T) {
	srv, sc := apiSetup(t)
	c := newCustomer(t, sc)
	first := subSession(t, sc, c.ID, 0)
	second := subSession(t, sc, c.ID, 0)
	other, err := sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{
		Mode: stripe.String("payment"), SuccessURL: stripe.String("https://app.test/ok"),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_once"), Quantity: stripe.Int64(2)}},
	})
	require.NoError(t, err)

	// Expire.
	p := &stripe.CheckoutSessionExpireParams{}
	p.SetIdempotencyKey("expire-1")
	exp, err := sc.V1CheckoutSessions.Expire(ctx, second.ID, p)
	require.NoError(t, err)
	assert.Equal(t, stripe.CheckoutSessionStatusExpired, exp.Status)
	assert.Empty(t, exp.URL)
	evs := without(srv.Events(), "customer.created")
	require.Len(t, evs, 1)
	assert.Equal(t, "checkout.session.expired", evs[0].Type)
	e := decode(t, evs[0])
	assert.Equal(t, exp.LastResponse.RequestID, e.Request.ID, "the event names the request")
	assert.Equal(t, "expire-1", e.Request.IdempotencyKey)
	_, err = sc.V1CheckoutSessions.Expire(ctx, second.ID, nil)
	se := invalidReq(t, err, 400, "", "")
	assert.Equal(t, "Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout Session has a status of `expired`.", se.Msg)
	_, err = testcatalog.Pay(srv, first.ID)
	require.NoError(t, err)
	_, err = sc.V1CheckoutSessions.Expire(ctx, first.ID, nil)
	se = invalidReq(t, err, 400, "", "")
	assert.Contains(t, se.Msg, "status of `complete`")
	_, err = sc.V1CheckoutSessions.Expire(ctx, "cs_test_nope", nil)
	se = invalidReq(t, err, 404, "resource_missing", "id")
	assert.Equal(t, "No such checkout.session: 'cs_test_nope'", se.Msg)

	// Line items.
	items := collect(t, sc.V1CheckoutSessions.ListLineItems(ctx, &stripe.CheckoutSessionListLineItemsParams{Session: stripe.String(other.ID)}))
	require.Len(t, items, 1)
	assert.Equal(t, "item", items[0].Object)
	assert.Equal(t, "price_once", items[0].Price.ID)
	assert.Equal(t, int64(2), items[0].Quantity)
	assert.Equal(t, int64(5000), items[0].AmountTotal)
	ids, more := apiList(t, srv, "/v1/checkout/sessions/"+other.ID+"/line_items", "limit=1")
	assert.Equal(t, []string{items[0].ID}, ids)
	assert.False(t, more)
	for v, err := range sc.V1CheckoutSessions.ListLineItems(ctx, &stripe.CheckoutSessionListLineItemsParams{Session: stripe.String("cs_test_nope")}) {
		assert.Nil(t, v)
		invalidReq(t, err, 404, "resource_missing", "id")
	}

	// List and filters.
	sessions := func(p *stripe.CheckoutSessionListParams) []string {
		return idsOf(collect(t, sc.V1CheckoutSessions.List(ctx, p)), func(s *stripe.CheckoutSession) string { return s.ID })
	}
	assert.Equal(t, []string{other.ID, second.ID, first.ID}, sessions(nil))
	assert.Equal(t, []string{second.ID, first.ID}, sessions(&stripe.CheckoutSessionListParams{Customer: stripe.String(c.ID)}))
	assert.Equal(t, []string{other.ID}, sessions(&stripe.CheckoutSessionListParams{Status: stripe.String("open")}))
	assert.Equal(t, []string{second.ID}, sessions(&stripe.CheckoutSessionListParams{Status: stripe.String("expired")}))
	subID := srv.CheckoutSession(first.ID).Subscription.ID
	assert.Equal(t, []string{first.ID}, sessions(&stripe.CheckoutSessionListParams{Subscription: stripe.String(subID)}))
	lp := &stripe.CheckoutSessionListParams{}
	lp.Limit = stripe.Int64(1)
	assert.Equal(t, []string{other.ID, second.ID, first.ID}, sessions(lp), "page by page")
	ids, more = apiList(t, srv, "/v1/checkout/sessions", "limit=2&expand[0]=data.subscription")
	assert.Equal(t, []string{other.ID, second.ID}, ids)
	assert.True(t, more)
	_, m, _ := apiDo(t, srv, http.MethodGet, "/v1/checkout/sessions", "subscription="+subID+"&expand[]=data.subscription")
	assert.Equal(t, subID, m["data"].([]any)[0].(map[string]any)["subscription"].(map[string]any)["id"])
	_, err = collect2(sc.V1CheckoutSessions.List(ctx, &stripe.CheckoutSessionListParams{Status: stripe.String("done")}))
	invalidReq(t, err, 400, "parameter_invalid", "status")
}

// collect2 drains a list iterator and returns its error.
func collect2[T any](seq stripe.Seq2[T, error]) ([]T, error) {
	var out []T
	for v, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, nil
}

func TestCheckoutSessionExpiresAt(t *testing.T) {
	srv, sc := apiSetup(t)
	c := newCustomer(t, sc)
	params := func(expiresAt int64) *stripe.CheckoutSessionCreateParams {
		p := &stripe.CheckoutSessionCreateParams{
			Mode: stripe.String("subscription"), Customer: stripe.String(c.ID), SuccessURL: stripe.String("https://app.test/ok"),
			LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_month"), Quantity: stripe.Int64(1)}},
		}
		if expiresAt != 0 {
			p.ExpiresAt = stripe.Int64(expiresAt)
		}
		return p
	}
	now := srv.Now().Unix()
	_, err := sc.V1CheckoutSessions.Create(ctx, params(now+10*60))
	invalidReq(t, err, 400, "parameter_invalid", "expires_at")
	_, err = sc.V1CheckoutSessions.Create(ctx, params(now+25*3600))
	invalidReq(t, err, 400, "parameter_invalid", "expires_at")

	hour, err := sc.V1CheckoutSessions.Create(ctx, params(now+3600))
	require.NoError(t, err)
	assert.Equal(t, now+3600, hour.ExpiresAt)
	day, err := sc.V1CheckoutSessions.Create(ctx, params(0))
	require.NoError(t, err)
	assert.InDelta(t, hour.Created+24*3600, day.ExpiresAt, 1)

	// An hour later the first has expired: reading it says so, once.
	srv.Advance(time.Hour + time.Minute)
	got, err := sc.V1CheckoutSessions.Retrieve(ctx, hour.ID, nil)
	require.NoError(t, err)
	assert.Equal(t, stripe.CheckoutSessionStatusExpired, got.Status)
	assert.Empty(t, got.URL)
	require.Equal(t, []string{"checkout.session.expired"}, types(without(srv.Events(), "customer.created")))
	assert.Empty(t, decode(t, pick(t, srv.Events(), "checkout.session.expired")).Request.ID, "an automatic expiry")
	_, err = testcatalog.Pay(srv, hour.ID)
	assert.Error(t, err)
	assert.Equal(t, stripe.CheckoutSessionStatusOpen, srv.CheckoutSession(day.ID).Status)

	// Advancing past expires_at expires the other one.
	srv.Advance(24 * time.Hour)
	assert.Equal(t, stripe.CheckoutSessionStatusExpired, srv.CheckoutSession(day.ID).Status)
	assert.Len(t, without(srv.Events(), "customer.created"), 2)
	_, err = testcatalog.Expire(srv, day.ID)
	assert.Error(t, err)
}

// subscribeN makes n customers with one subscription each to price_month,
// oldest first.
func subscribeN(t *testing.T, srv *billingtest.Stripe, sc *stripe.Client, n int) (subs, customers []string) {
	t.Helper()
	for range n {
		id, c := subscribe(t, srv, sc, 0)
		subs, customers = append(subs, id), append(customers, c.ID)
	}
	return subs, customers
}

func TestSubscriptionList(t *testing.T) {
	srv, sc := apiSetup(t)
	subs, customers := subscribeN(t, srv, sc, 4)
	_, err := srv.ChangePrice(subs[2], "price_year")
	require.NoError(t, err)
	_, err = srv.CancelNow(subs[1])
	require.NoError(t, err)
	list := func(p *stripe.SubscriptionListParams) []string {
		return idsOf(collect(t, sc.V1Subscriptions.List(ctx, p)), func(s *stripe.Subscription) string { return s.ID })
	}
	assert.Equal(t, []string{subs[3], subs[2], subs[0]}, list(nil), "canceled ones are left out by default")
	assert.Equal(t, []string{subs[3], subs[2], subs[1], subs[0]}, list(&stripe.SubscriptionListParams{Status: stripe.String("all")}))
	assert.Equal(t, []string{subs[1]}, list(&stripe.SubscriptionListParams{Status: stripe.String("canceled")}))
	assert.Equal(t, []string{subs[1]}, list(&stripe.SubscriptionListParams{Status: stripe.String("ended")}))
	assert.Equal(t, []string{subs[3], subs[2], subs[0]}, list(&stripe.SubscriptionListParams{Status: stripe.String("active")}))
	assert.Empty(t, list(&stripe.SubscriptionListParams{Status: stripe.String("past_due")}))
	assert.Equal(t, []string{subs[0]}, list(&stripe.SubscriptionListParams{Customer: stripe.String(customers[0])}))
	assert.Empty(t, list(&stripe.SubscriptionListParams{Customer: stripe.String(customers[1])}))
	assert.Equal(t, []string{subs[2]}, list(&stripe.SubscriptionListParams{Price: stripe.String("price_year")}))
	assert.Equal(t, []string{subs[3], subs[0]}, list(&stripe.SubscriptionListParams{Price: stripe.String("price_month")}))

	// Pagination, forward and backward.
	p := &stripe.SubscriptionListParams{Status: stripe.String("all")}
	p.Limit = stripe.Int64(1)
	assert.Equal(t, []string{subs[3], subs[2], subs[1], subs[0]}, list(p))
	ids, more := apiList(t, srv, "/v1/subscriptions", "status=all&limit=2")
	assert.Equal(t, []string{subs[3], subs[2]}, ids)
	assert.True(t, more)
	ids, more = apiList(t, srv, "/v1/subscriptions", "status=all&limit=2&starting_after="+subs[2])
	assert.Equal(t, []string{subs[1], subs[0]}, ids)
	assert.False(t, more)
	ids, more = apiList(t, srv, "/v1/subscriptions", "status=all&limit=2&ending_before="+subs[0])
	assert.Equal(t, []string{subs[2], subs[1]}, ids, "the page just before the cursor")
	assert.True(t, more)
	ids, more = apiList(t, srv, "/v1/subscriptions", "status=all&ending_before="+subs[2])
	assert.Equal(t, []string{subs[3]}, ids)
	assert.False(t, more)
	ids, _ = apiList(t, srv, "/v1/subscriptions", "starting_after="+subs[2])
	assert.Equal(t, []string{subs[0]}, ids, "a cursor outside the filter still places the page")
	bp := &stripe.SubscriptionListParams{Status: stripe.String("all")}
	bp.EndingBefore, bp.Limit = stripe.String(subs[0]), stripe.Int64(1)
	assert.Equal(t, []string{subs[1], subs[2], subs[3]}, list(bp), "stripe-go walks backward from ending_before")
	_, m, _ := apiDo(t, srv, http.MethodGet, "/v1/subscriptions", "limit=1&expand[]=data.latest_invoice&expand[]=data.customer")
	first := m["data"].([]any)[0].(map[string]any)
	assert.Equal(t, "invoice", first["latest_invoice"].(map[string]any)["object"])
	assert.Equal(t, "customer", first["customer"].(map[string]any)["object"])

	// Pagination errors.
	for _, tc := range []struct {
		form, code, param string
	}{
		{"limit=0", "parameter_invalid_integer", "limit"},
		{"limit=101", "parameter_invalid_integer", "limit"},
		{"limit=ten", "parameter_invalid_integer", "limit"},
		{"starting_after=sub_nope", "resource_missing", "starting_after"},
		{"ending_before=sub_nope", "resource_missing", "ending_before"},
		{"starting_after=" + subs[0] + "&ending_before=" + subs[1], "parameters_exclusive", "ending_before"},
		{"status=gone", "parameter_invalid", "status"},
		{"created[gt]=yesterday", "parameter_invalid_integer", "created[gt]"},
		{"plan=x", "parameter_unknown", "plan"},
		{"expand[]=data.nope", "", "expand"},
	} {
		status, m, _ := apiDo(t, srv, http.MethodGet, "/v1/subscriptions", tc.form)
		assert.Equal(t, 400, status, tc.form)
		e := m["error"].(map[string]any)
		assert.Equal(t, "invalid_request_error", e["type"], tc.form)
		if tc.code != "" {
			assert.Equal(t, tc.code, e["code"], tc.form)
		}
		assert.Equal(t, tc.param, e["param"], tc.form)
	}
	_, err = collect2(sc.V1Subscriptions.List(ctx, &stripe.SubscriptionListParams{ListParams: stripe.ListParams{StartingAfter: stripe.String("sub_nope")}}))
	se := invalidReq(t, err, 400, "resource_missing", "starting_after")
	assert.Equal(t, "No such subscription: 'sub_nope'", se.Msg)

	// Created filters.
	srv.Advance(time.Hour)
	late, _ := subscribe(t, srv, sc, 0)
	cut := srv.Now().Add(-time.Minute).Unix()
	assert.Equal(t, []string{late}, list(&stripe.SubscriptionListParams{CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: cut}}))
	assert.Equal(t, []string{subs[3], subs[2], subs[0]}, list(&stripe.SubscriptionListParams{CreatedRange: &stripe.RangeQueryParams{LesserThan: cut}}))
	assert.Equal(t, []string{late}, list(&stripe.SubscriptionListParams{Created: stripe.Int64(srv.Subscription(late).Created)}))
}

// lastEvents returns the events emitted after the first before.
func lastEvents(srv *billingtest.Stripe, before int) []billingtest.Event {
	return srv.Events()[before:]
}

func TestSubscriptionUpdateMatchesSimulator(t *testing.T) {
	srv, sc := apiSetup(t)
	subs, _ := subscribeN(t, srv, sc, 2)
	viaSim, viaAPI := subs[0], subs[1]
	update := func(p *stripe.SubscriptionUpdateParams) (*stripe.Subscription, []billingtest.Event) {
		t.Helper()
		n := len(srv.Events())
		s, err := sc.V1Subscriptions.Update(ctx, viaAPI, p)
		require.NoError(t, err)
		assertBasil(t, s.LastResponse.RawJSON)
		return s, lastEvents(srv, n)
	}
	// same checks that the API's event carries what the simulator's does.
	same := func(sim, api []billingtest.Event, res *stripe.Subscription) {
		t.Helper()
		require.Equal(t, types(sim), types(api))
		for i := range sim {
			se, ae := decode(t, sim[i]), decode(t, api[i])
			assert.Equal(t, keys(se.Data.PreviousAttributes), keys(ae.Data.PreviousAttributes), sim[i].Type)
			var a, b map[string]any
			require.NoError(t, json.Unmarshal(se.Data.Raw, &a))
			require.NoError(t, json.Unmarshal(ae.Data.Raw, &b))
			for _, k := range []string{"status", "cancel_at_period_end"} {
				assert.Equal(t, a[k], b[k], k)
			}
			assert.Equal(t, a["cancellation_details"].(map[string]any)["reason"], b["cancellation_details"].(map[string]any)["reason"])
			for _, k := range []string{"cancel_at", "canceled_at", "ended_at"} {
				assert.Equal(t, a[k] == nil, b[k] == nil, k)
			}
			assert.Equal(t, res.LastResponse.RequestID, ae.Request.ID, "the event names the request")
			var got stripe.Subscription
			require.NoError(t, json.Unmarshal(ae.Data.Raw, &got))
			assert.Equal(t, res.Status, got.Status)
			assert.Equal(t, res.CancelAt, got.CancelAt)
		}
	}

	// Cancel at period end.
	sim, err := srv.CancelAtPeriodEnd(viaSim)
	require.NoError(t, err)
	s, api := update(&stripe.SubscriptionUpdateParams{CancelAtPeriodEnd: stripe.Bool(true)})
	same(sim, api, s)
	assert.True(t, s.CancelAtPeriodEnd)
	assert.Equal(t, s.Items.Data[0].CurrentPeriodEnd, s.CancelAt)
	assert.NotZero(t, s.CanceledAt)
	assert.Equal(t, stripe.SubscriptionCancellationDetailsReasonCancellationRequested, s.CancellationDetails.Reason)
	_, api = update(&stripe.SubscriptionUpdateParams{CancelAtPeriodEnd: stripe.Bool(true)})
	assert.Empty(t, api, "no change, no event")

	// Withdrawn.
	sim, err = srv.Uncancel(viaSim)
	require.NoError(t, err)
	s, api = update(&stripe.SubscriptionUpdateParams{CancelAtPeriodEnd: stripe.Bool(false)})
	same(sim, api, s)
	assert.False(t, s.CancelAtPeriodEnd)
	assert.Zero(t, s.CancelAt)
	assert.Zero(t, s.CanceledAt)

	// Cancel at a time, then cleared with cancel_at="".
	at := srv.Now().Add(10 * 24 * time.Hour).Truncate(time.Second)
	sim, err = testcatalog.CancelAt(srv, viaSim, at)
	require.NoError(t, err)
	s, api = update(&stripe.SubscriptionUpdateParams{CancelAt: stripe.Int64(at.Unix())})
	same(sim, api, s)
	assert.Equal(t, at.Unix(), s.CancelAt)
	assert.False(t, s.CancelAtPeriodEnd)
	sim, err = srv.Uncancel(viaSim)
	require.NoError(t, err)
	clear := &stripe.SubscriptionUpdateParams{}
	clear.AddExtra("cancel_at", "")
	s, api = update(clear)
	same(sim, api, s)
	assert.Zero(t, s.CancelAt)
	s, _ = update(&stripe.SubscriptionUpdateParams{CancelAtMaxPeriodEnd: stripe.Bool(true)})
	assert.Equal(t, s.Items.Data[0].CurrentPeriodEnd, s.CancelAt)
	assert.False(t, s.CancelAtPeriodEnd)
	s, _ = update(clear)
	assert.Zero(t, s.CancelAt)

	// Price change.
	sim, err = srv.ChangePrice(viaSim, "price_year")
	require.NoError(t, err)
	item := srv.Subscription(viaAPI).Items.Data[0].ID
	s, api = update(&stripe.SubscriptionUpdateParams{
		Items:             []*stripe.SubscriptionUpdateItemParams{{ID: stripe.String(item), Price: stripe.String("price_year")}},
		ProrationBehavior: stripe.String("none"),
	})
	same(sim, api, s)
	assert.Equal(t, "price_year", s.Items.Data[0].Price.ID)
	assert.Equal(t, int64(2), s.Items.Data[0].Quantity)
	prev, _ := json.Marshal(decode(t, api[0]).Data.PreviousAttributes["items"])
	var old stripe.SubscriptionItemList
	require.NoError(t, json.Unmarshal(prev, &old))
	assert.Equal(t, "price_month", old.Data[0].Price.ID)

	// Metadata and quantity, in one event; expand works on update.
	p := &stripe.SubscriptionUpdateParams{
		Items:    []*stripe.SubscriptionUpdateItemParams{{ID: stripe.String(item), Quantity: stripe.Int64(3)}},
		Metadata: map[string]string{"plan": "", "extra": "1"},
	}
	p.AddExpand("latest_invoice")
	s, api = update(p)
	require.Equal(t, []string{"customer.subscription.updated"}, types(api))
	assert.ElementsMatch(t, []string{"items", "metadata"}, keys(decode(t, api[0]).Data.PreviousAttributes))
	assert.Equal(t, map[string]string{"user_id": "u1", "extra": "1"}, s.Metadata)
	assert.Equal(t, int64(3), s.Items.Data[0].Quantity)
	assert.Equal(t, stripe.InvoiceStatusPaid, s.LatestInvoice.Status)

	// Cancel now.
	sim, err = srv.CancelNow(viaSim)
	require.NoError(t, err)
	n := len(srv.Events())
	cp := &stripe.SubscriptionCancelParams{CancellationDetails: &stripe.SubscriptionCancelCancellationDetailsParams{
		Comment: stripe.String("too pricey"), Feedback: stripe.String("too_expensive")}}
	cp.SetIdempotencyKey("cancel-1")
	s, err = sc.V1Subscriptions.Cancel(ctx, viaAPI, cp)
	require.NoError(t, err)
	api = lastEvents(srv, n)
	same(sim, api, s)
	assert.Equal(t, stripe.SubscriptionStatusCanceled, s.Status)
	assert.Equal(t, api[0].Created, s.CanceledAt)
	assert.Equal(t, api[0].Created, s.EndedAt)
	assert.Equal(t, "too pricey", s.CancellationDetails.Comment)
	assert.Equal(t, stripe.SubscriptionCancellationDetailsFeedbackTooExpensive, s.CancellationDetails.Feedback)
	assert.Equal(t, "cancel-1", decode(t, api[0]).Request.IdempotencyKey)
	assertBasil(t, s.LastResponse.RawJSON)

	// The replayed cancel is the same answer, not a 404.
	again, err := sc.V1Subscriptions.Cancel(ctx, viaAPI, cp)
	require.NoError(t, err)
	assert.Equal(t, "true", again.LastResponse.Header.Get("Idempotent-Replayed"))
	assert.Equal(t, s.LastResponse.RequestID, again.LastResponse.Header.Get("Original-Request"))
	assert.Len(t, srv.Events(), n+1)
	_, err = sc.V1Subscriptions.Cancel(ctx, viaAPI, nil)
	se := invalidReq(t, err, 404, "resource_missing", "id")
	assert.Equal(t, "No such subscription: '"+viaAPI+"'", se.Msg)

	// A canceled subscription takes only metadata and cancellation details.
	_, err = sc.V1Subscriptions.Update(ctx, viaAPI, &stripe.SubscriptionUpdateParams{CancelAtPeriodEnd: stripe.Bool(false)})
	se = invalidReq(t, err, 400, "", "")
	assert.Equal(t, "A canceled subscription can only update its cancellation_details and metadata.", se.Msg)
	s, api = update(&stripe.SubscriptionUpdateParams{Metadata: map[string]string{"note": "gone"},
		CancellationDetails: &stripe.SubscriptionUpdateCancellationDetailsParams{Comment: stripe.String("bye")}})
	assert.Equal(t, "gone", s.Metadata["note"])
	assert.Equal(t, "bye", s.CancellationDetails.Comment)
	assert.Equal(t, stripe.SubscriptionStatusCanceled, s.Status)
	require.Equal(t, []string{"customer.subscription.updated"}, types(api))
}

func keys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

func TestSubscriptionUpdateErrors(t *testing.T) {
	srv, sc := apiSetup(t)
	subID, _ := subscribe(t, srv, sc, 0)
	item := srv.Subscription(subID).Items.Data[0].ID
	n := len(srv.Events())
	for _, tc := range []struct {
		name              string
		p                 *stripe.SubscriptionUpdateParams
		status            int
		code, param, want string
	}{
		{"unknown price", &stripe.SubscriptionUpdateParams{Items: []*stripe.SubscriptionUpdateItemParams{{ID: stripe.String(item), Price: stripe.String("price_nope")}}},
			400, "resource_missing", "items[0][price]", "No such price: 'price_nope'"},
		{"one-time price", &stripe.SubscriptionUpdateParams{Items: []*stripe.SubscriptionUpdateItemParams{{ID: stripe.String(item), Price: stripe.String("price_once")}}},
			400, "parameter_invalid", "items[0][price]", ""},
		{"unknown item", &stripe.SubscriptionUpdateParams{Items: []*stripe.SubscriptionUpdateItemParams{{ID: stripe.String("si_nope"), Price: stripe.String("price_year")}}},
			400, "resource_missing", "items[0][id]", ""},
		{"new item", &stripe.SubscriptionUpdateParams{Items: []*stripe.SubscriptionUpdateItemParams{{Price: stripe.String("price_year")}}},
			400, "parameter_missing", "items[0][id]", ""},
		{"both cancellations", &stripe.SubscriptionUpdateParams{CancelAtPeriodEnd: stripe.Bool(true), CancelAt: stripe.Int64(start.Add(1000 * time.Hour).Unix())},
			400, "parameters_exclusive", "cancel_at", ""},
		{"cancel_at in the past", &stripe.SubscriptionUpdateParams{CancelAt: stripe.Int64(start.Add(-time.Hour).Unix())},
			400, "parameter_invalid", "cancel_at", ""},
		{"bad proration_behavior", &stripe.SubscriptionUpdateParams{ProrationBehavior: stripe.String("sometimes")},
			400, "parameter_invalid", "proration_behavior", ""},
		{"bad feedback", &stripe.SubscriptionUpdateParams{CancellationDetails: &stripe.SubscriptionUpdateCancellationDetailsParams{Feedback: stripe.String("meh")}},
			400, "parameter_invalid", "cancellation_details[feedback]", ""},
		{"unsupported parameter", &stripe.SubscriptionUpdateParams{TrialEndNow: stripe.Bool(true)},
			400, "parameter_not_modelled", "trial_end", "billingtest does not model the parameter trial_end on POST /v1/subscriptions/{id}. The parameter is valid at Stripe; use Stripe's test mode for it."},
		{"bad expand", &stripe.SubscriptionUpdateParams{Expand: stripe.StringSlice([]string{"items"})},
			400, "", "expand", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sc.V1Subscriptions.Update(ctx, subID, tc.p)
			se := invalidReq(t, err, tc.status, tc.code, tc.param)
			if tc.want != "" {
				assert.Equal(t, tc.want, se.Msg)
			}
		})
	}
	_, err := sc.V1Subscriptions.Update(ctx, "sub_nope", &stripe.SubscriptionUpdateParams{CancelAtPeriodEnd: stripe.Bool(true)})
	se := invalidReq(t, err, 404, "resource_missing", "id")
	assert.Equal(t, "No such subscription: 'sub_nope'", se.Msg)
	status, m, _ := apiDo(t, srv, http.MethodPost, "/v1/subscriptions/"+subID, "cancel_at_period_end=maybe")
	assert.Equal(t, 400, status)
	assert.Equal(t, "cancel_at_period_end", m["error"].(map[string]any)["param"])
	assert.Len(t, srv.Events(), n, "no event from a refused update")
	assert.False(t, srv.Subscription(subID).CancelAtPeriodEnd)
}

func TestInvoiceList(t *testing.T) {
	srv, sc := apiSetup(t)
	subs, customers := subscribeN(t, srv, sc, 2)
	require.NoError(t, testcatalog.SetCardFailing(srv, customers[1], true))
	// Both renew at the same period end, in creation order; the second's
	// charge fails.
	_, err := testcatalog.Renew(srv, subs[1])
	require.NoError(t, err)
	inv0, inv1 := srv.InvoicesOf(subs[0]), srv.InvoicesOf(subs[1])
	require.Len(t, inv0, 2)
	require.Len(t, inv1, 2)
	first0 := inv0[0]
	invoices := func(p *stripe.InvoiceListParams) []string {
		var out []string
		for in, err := range sc.V1Invoices.List(ctx, p) {
			require.NoError(t, err)
			out = append(out, in.ID)
			assert.Equal(t, "invoice", in.Object)
			require.NotNil(t, in.Parent)
			assert.NotEmpty(t, in.Parent.SubscriptionDetails.Subscription.ID)
		}
		return out
	}
	newest := []string{inv1[1], inv0[1], inv1[0], inv0[0]}
	assert.Equal(t, newest, invoices(nil))
	assert.Equal(t, []string{inv1[1], inv1[0]}, invoices(&stripe.InvoiceListParams{Customer: stripe.String(customers[1])}))
	assert.Equal(t, []string{inv0[1], inv0[0]}, invoices(&stripe.InvoiceListParams{Subscription: stripe.String(subs[0])}))
	assert.Equal(t, []string{inv1[1]}, invoices(&stripe.InvoiceListParams{Status: stripe.String("open")}))
	assert.Equal(t, []string{inv0[1], inv1[0], inv0[0]}, invoices(&stripe.InvoiceListParams{Status: stripe.String("paid")}))
	p := &stripe.InvoiceListParams{}
	p.Limit = stripe.Int64(1)
	assert.Equal(t, newest, invoices(p))
	ids, more := apiList(t, srv, "/v1/invoices", "limit=2&expand[]=data.customer")
	assert.Equal(t, newest[:2], ids)
	assert.True(t, more)
	_, err = collect2(sc.V1Invoices.List(ctx, &stripe.InvoiceListParams{Status: stripe.String("late")}))
	invalidReq(t, err, 400, "parameter_invalid", "status")
	ip := &stripe.InvoiceRetrieveParams{}
	ip.AddExpand("customer")
	in, err := sc.V1Invoices.Retrieve(ctx, first0, ip)
	require.NoError(t, err)
	assert.Equal(t, customers[0], in.Customer.ID)
	assert.Equal(t, "a@example.com", in.Customer.Email)
	_, err = sc.V1Invoices.Retrieve(ctx, "in_nope", nil)
	se := invalidReq(t, err, 404, "resource_missing", "id")
	assert.Equal(t, "No such invoice: 'in_nope'", se.Msg)
}

func TestEventList(t *testing.T) {
	srv, sc := apiSetup(t)
	srv.SetUpcomingNotice(0) // the counts below are of the steps' events
	subscribe(t, srv, sc, 0)
	all := srv.Events()
	n0 := len(all)
	require.Equal(t, 12, n0) // customer.created, then Checkout's eleven
	list := func(p *stripe.EventListParams) []string {
		return idsOf(collect(t, sc.V1Events.List(ctx, p)), func(e *stripe.Event) string { return e.ID })
	}
	newest := make([]string, len(all))
	for i, e := range all {
		newest[len(all)-1-i] = e.ID
	}
	assert.Equal(t, newest, list(nil))
	ids, more := apiList(t, srv, "/v1/events", "limit=12")
	assert.Equal(t, newest, ids)
	assert.False(t, more)
	for v, err := range sc.V1Events.List(ctx, nil) {
		require.NoError(t, err)
		assert.Equal(t, "event", v.Object)
		assertBasil(t, v.Data.Raw)
	}
	typed := func(p *stripe.EventListParams) []string {
		var out []string
		for e, err := range sc.V1Events.List(ctx, p) {
			require.NoError(t, err)
			out = append(out, string(e.Type))
		}
		return out
	}
	assert.Equal(t, []string{"invoice.payment_succeeded", "invoice.paid", "invoice.finalized", "invoice.created"},
		typed(&stripe.EventListParams{Type: stripe.String("invoice.*")}))
	assert.Equal(t, []string{"customer.subscription.updated", "customer.subscription.created"},
		typed(&stripe.EventListParams{Type: stripe.String("customer.subscription.*")}))
	assert.Equal(t, []string{"payment_intent.created", "invoice.created", "customer.subscription.created", "customer.created"},
		typed(&stripe.EventListParams{Type: stripe.String("*.created")}))
	assert.Equal(t, []string{"invoice.paid"}, typed(&stripe.EventListParams{Type: stripe.String("invoice.paid")}))
	assert.Empty(t, typed(&stripe.EventListParams{Type: stripe.String("invoice")}))
	assert.Equal(t, []string{"checkout.session.completed", "invoice.paid"},
		typed(&stripe.EventListParams{Types: stripe.StringSlice([]string{"invoice.paid", "checkout.session.completed"})}))
	_, err := collect2(sc.V1Events.List(ctx, &stripe.EventListParams{Type: stripe.String("invoice.paid"),
		Types: stripe.StringSlice([]string{"invoice.paid"})}))
	invalidReq(t, err, 400, "parameters_exclusive", "type")

	// Default limit 10, pages newest first.
	// Three more subscriptions: twelve events each, at one second.
	srv.Advance(time.Hour)
	for range 3 {
		subscribeTo(t, srv, sc, "price_month")
		srv.Advance(time.Minute)
	}
	all = srv.Events()
	require.Len(t, all, n0+36)
	ids, more = apiList(t, srv, "/v1/events", "")
	assert.Len(t, ids, 10)
	assert.True(t, more)
	assert.Equal(t, all[len(all)-1].ID, ids[0])
	assert.Len(t, list(nil), n0+36, "the iterator pages through all")
	ids, more = apiList(t, srv, "/v1/events", "limit=100&starting_after="+all[5].ID)
	assert.Equal(t, []string{all[4].ID, all[3].ID, all[2].ID, all[1].ID, all[0].ID}, ids)
	assert.False(t, more)
	ids, more = apiList(t, srv, "/v1/events", "limit=2&ending_before="+all[5].ID)
	assert.Equal(t, []string{all[7].ID, all[6].ID}, ids)
	assert.True(t, more)

	// Created filters.
	second := all[n0].Created
	assert.Len(t, list(&stripe.EventListParams{CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: second}}), 36)
	assert.Len(t, list(&stripe.EventListParams{CreatedRange: &stripe.RangeQueryParams{LesserThan: second}}), n0)
	assert.Len(t, list(&stripe.EventListParams{Created: stripe.Int64(second)}), 12)
	assert.Len(t, list(&stripe.EventListParams{CreatedRange: &stripe.RangeQueryParams{GreaterThan: second, LesserThanOrEqual: all[len(all)-1].Created}}), 24)

	// 30 days on, the first events are gone from the API, not from Events
	// (the first subscription renews meanwhile: two events at its period
	// end, the rest an hour later).
	srv.Advance(30*24*time.Hour - time.Hour - 30*time.Second)
	assert.Len(t, list(nil), 36+2, "the first checkout's events are over 30 days old")
	_, err = sc.V1Events.Retrieve(ctx, all[0].ID, nil)
	se := invalidReq(t, err, 404, "resource_missing", "id")
	assert.Equal(t, "No such event: '"+all[0].ID+"'", se.Msg)
	ev, err := sc.V1Events.Retrieve(ctx, all[n0].ID, nil)
	require.NoError(t, err)
	assert.Equal(t, all[n0].ID, ev.ID)
	_, err = collect2(sc.V1Events.List(ctx, &stripe.EventListParams{ListParams: stripe.ListParams{StartingAfter: stripe.String(all[0].ID)}}))
	invalidReq(t, err, 400, "resource_missing", "starting_after")
	assert.NotNil(t, srv.Object(all[0].ID))
	assert.Len(t, srv.Events(), n0+36+2)
	srv.Advance(24 * time.Hour)
	for _, id := range list(nil) {
		assert.NotContains(t, idsOf(all, func(e billingtest.Event) string { return e.ID }), id, "only the renewals' events are left")
	}
}

func TestBadParameters(t *testing.T) {
	srv, sc := apiSetup(t)
	c := newCustomer(t, sc)
	p := &stripe.CustomerCreateParams{Email: stripe.String("x@example.com")}
	p.AddExtra("foo", "bar")
	_, err := sc.V1Customers.Create(ctx, p)
	se := invalidReq(t, err, 400, "parameter_unknown", "foo")
	assert.Equal(t, "Received unknown parameter: foo", se.Msg)

	item := []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_month"), Quantity: stripe.Int64(1)}}
	for _, tc := range []struct {
		name        string
		edit        func(p *stripe.CheckoutSessionCreateParams)
		code, param string
	}{
		{"unknown nested", func(p *stripe.CheckoutSessionCreateParams) { p.AddExtra("line_items[0][foo]", "x") }, "parameter_unknown", "line_items[0][foo]"},
		{"unsupported", func(p *stripe.CheckoutSessionCreateParams) { p.Locale = stripe.String("fr") }, "parameter_not_modelled", "locale"},
		{"bad boolean", func(p *stripe.CheckoutSessionCreateParams) { p.AddExtra("allow_promotion_codes", "yes") }, "parameter_invalid", "allow_promotion_codes"},
		{"bad integer", func(p *stripe.CheckoutSessionCreateParams) { p.AddExtra("expires_at", "soon") }, "parameter_invalid_integer", "expires_at"},
		{"zero quantity", func(p *stripe.CheckoutSessionCreateParams) { p.LineItems[0].Quantity = stripe.Int64(0) }, "parameter_invalid_integer", "line_items[0][quantity]"},
		{"customer and customer_email", func(p *stripe.CheckoutSessionCreateParams) {
			p.Customer, p.CustomerEmail = stripe.String(c.ID), stripe.String("a@example.com")
		}, "parameters_exclusive", "customer"},
		{"bad ui_mode", func(p *stripe.CheckoutSessionCreateParams) { p.UIMode = stripe.String("popup") }, "parameter_invalid", "ui_mode"},
		{"bad expand", func(p *stripe.CheckoutSessionCreateParams) { p.AddExpand("payment_link") }, "", "expand"},
		{"too long a metadata key", func(p *stripe.CheckoutSessionCreateParams) { p.AddMetadata(strings.Repeat("k", 41), "v") }, "parameter_invalid", "metadata[" + strings.Repeat("k", 41) + "]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &stripe.CheckoutSessionCreateParams{Mode: stripe.String("subscription"), SuccessURL: stripe.String("https://app.test/ok"),
				LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: item[0].Price, Quantity: item[0].Quantity}}}
			tc.edit(p)
			_, err := sc.V1CheckoutSessions.Create(ctx, p)
			invalidReq(t, err, 400, tc.code, tc.param)
		})
	}

	// Unknown parameters on reads too.
	status, m, _ := apiDo(t, srv, http.MethodGet, "/v1/customers/"+c.ID, "foo=1")
	assert.Equal(t, 400, status)
	assert.Equal(t, "parameter_unknown", m["error"].(map[string]any)["code"])
	status, _, _ = apiDo(t, srv, http.MethodGet, "/v1/customers/"+c.ID, "expand[]=nope")
	assert.Equal(t, 400, status)
	_, err = sc.V1BillingPortalSessions.Create(ctx, &stripe.BillingPortalSessionCreateParams{Customer: stripe.String(c.ID),
		FlowData: &stripe.BillingPortalSessionCreateFlowDataParams{Type: stripe.String("payment_method_update")}})
	invalidReq(t, err, 400, "parameter_not_modelled", "flow_data[type]")
	_, err = sc.V1BillingPortalSessions.Create(ctx, &stripe.BillingPortalSessionCreateParams{})
	invalidReq(t, err, 400, "parameter_missing", "customer")
	_, err = sc.V1BillingPortalSessions.Create(ctx, &stripe.BillingPortalSessionCreateParams{Customer: stripe.String(c.ID),
		Configuration: stripe.String("conf_x")})
	invalidReq(t, err, 400, "resource_missing", "configuration")
}

// TestLibraryCalls makes the calls package billing makes, with its
// parameters, and checks they are accepted.
func TestLibraryCalls(t *testing.T) {
	srv, sc := apiSetup(t)
	cp := &stripe.CustomerCreateParams{Email: stripe.String("u@example.com"), Name: stripe.String("U"),
		Metadata: map[string]string{"billing_user_id": "u1"}}
	cp.SetIdempotencyKey("billing-customer-x")
	c, err := sc.V1Customers.Create(ctx, cp)
	require.NoError(t, err)
	for _, mode := range []string{"subscription", "payment"} {
		p := &stripe.CheckoutSessionCreateParams{
			Customer: stripe.String(c.ID), ClientReferenceID: stripe.String("u1"),
			SuccessURL: stripe.String("https://app.test/ok?cs={CHECKOUT_SESSION_ID}"), CancelURL: stripe.String("https://app.test/no"),
			LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_month"), Quantity: stripe.Int64(1)}},
			Metadata:  map[string]string{"billing_user_id": "u1", "billing_price_id": "price_month", "billing_quantity": "1"},
			Mode:      stripe.String(mode), AllowPromotionCodes: stripe.Bool(true),
		}
		if mode == "subscription" {
			p.SubscriptionData = &stripe.CheckoutSessionCreateSubscriptionDataParams{
				Metadata: map[string]string{"billing_user_id": "u1"}, TrialPeriodDays: stripe.Int64(7)}
		} else {
			p.LineItems[0].Price = stripe.String("price_once")
		}
		p.SetIdempotencyKey("billing-checkout-" + mode)
		cs, err := sc.V1CheckoutSessions.Create(ctx, p)
		require.NoError(t, err, mode)
		rp := &stripe.CheckoutSessionRetrieveParams{}
		for _, e := range []string{"subscription", "subscription.latest_invoice", "line_items"} {
			rp.AddExpand(e)
		}
		_, err = sc.V1CheckoutSessions.Retrieve(ctx, cs.ID, rp)
		require.NoError(t, err, mode)
		evs, err := testcatalog.Pay(srv, cs.ID)
		require.NoError(t, err)
		if mode == "subscription" {
			sp := &stripe.SubscriptionRetrieveParams{}
			sp.AddExpand("latest_invoice")
			sub, err := sc.V1Subscriptions.Retrieve(ctx, decodeAs[stripe.CheckoutSession](t, evs[len(evs)-1]).Subscription.ID, sp)
			require.NoError(t, err)
			assert.Equal(t, stripe.SubscriptionStatusTrialing, sub.Status)
			assertBasil(t, sub.LastResponse.RawJSON)
		}
	}
	pp := &stripe.BillingPortalSessionCreateParams{Customer: stripe.String(c.ID), ReturnURL: stripe.String("https://app.test/account"),
		Configuration: stripe.String("bpc_custom")}
	pp.SetIdempotencyKey("billing-portal-x")
	ps, err := sc.V1BillingPortalSessions.Create(ctx, pp)
	require.NoError(t, err)
	assert.Equal(t, "bpc_custom", ps.Configuration.ID)
	ps, err = sc.V1BillingPortalSessions.Create(ctx, &stripe.BillingPortalSessionCreateParams{Customer: stripe.String(c.ID)})
	require.NoError(t, err)
	assert.Equal(t, "bpc_billingtest_default", ps.Configuration.ID)
}

func TestIdempotencyLikeStripe(t *testing.T) {
	srv, sc := apiSetup(t)
	create := func(key, email string) (*stripe.Customer, error) {
		p := &stripe.CustomerCreateParams{Email: stripe.String(email)}
		p.SetIdempotencyKey(key)
		return sc.V1Customers.Create(ctx, p)
	}
	a, err := create("k1", "a@example.com")
	require.NoError(t, err)
	assert.Empty(t, a.LastResponse.Header.Get("Idempotent-Replayed"))
	srv.Advance(23 * time.Hour)
	b, err := create("k1", "a@example.com")
	require.NoError(t, err)
	assert.Equal(t, a.ID, b.ID)
	assert.Equal(t, "true", b.LastResponse.Header.Get("Idempotent-Replayed"))
	assert.Equal(t, a.LastResponse.RequestID, b.LastResponse.Header.Get("Original-Request"))
	assert.NotEqual(t, a.LastResponse.RequestID, b.LastResponse.RequestID)
	d, err := http.ParseTime(b.LastResponse.Header.Get("Date"))
	require.NoError(t, err)
	assert.WithinDuration(t, start.Add(23*time.Hour), d, 5*time.Second, "the replay is dated now")

	// Other parameters, or another endpoint: an idempotency error.
	_, err = create("k1", "b@example.com")
	se := apiErr(t, err, 400, stripe.ErrorTypeIdempotency, "", "")
	assert.Contains(t, se.Msg, "same parameters")
	pp := &stripe.ProductCreateParams{Name: stripe.String("x")}
	pp.SetIdempotencyKey("k1")
	_, err = sc.V1Products.Create(ctx, pp)
	se = apiErr(t, err, 400, stripe.ErrorTypeIdempotency, "", "")
	assert.Contains(t, se.Msg, "same endpoint")

	// 24 simulated hours on, the key is free again.
	srv.Advance(2 * time.Hour)
	c, err := create("k1", "b@example.com")
	require.NoError(t, err)
	assert.NotEqual(t, a.ID, c.ID)
	assert.Empty(t, c.LastResponse.Header.Get("Idempotent-Replayed"))
	srv.Advance(25 * time.Hour)
	d2, err := create("k1", "b@example.com")
	require.NoError(t, err)
	assert.NotEqual(t, c.ID, d2.ID, "a new object after 25 hours")

	// An invalid request is not saved: the key can be used again.
	_, err = create("k2", "not-an-email")
	invalidReq(t, err, 400, "parameter_invalid", "email")
	e, err := create("k2", "e@example.com")
	require.NoError(t, err)
	assert.Empty(t, e.LastResponse.Header.Get("Idempotent-Replayed"))

	// Keys apply to POST and DELETE only.
	status, _, h := apiDo(t, srv, http.MethodGet, "/v1/customers/"+e.ID, "", "Idempotency-Key", "k2")
	assert.Equal(t, 200, status)
	assert.Empty(t, h.Get("Idempotent-Replayed"))
	status, m, _ := apiDo(t, srv, http.MethodPost, "/v1/customers", url.Values{"email": {"e@example.com"}}.Encode(), "Idempotency-Key", "k2")
	assert.Equal(t, 200, status)
	assert.Equal(t, e.ID, m["id"])
}

func TestIdempotencyKeyInFlight(t *testing.T) {
	srv, sc := apiSetup(t)
	started, release := make(chan struct{}), make(chan struct{})
	srv.SetBeforeExecute(func(route, key string) {
		if key == "slow" {
			close(started)
			<-release
		}
	})
	params := func() *stripe.CustomerCreateParams {
		p := &stripe.CustomerCreateParams{Email: stripe.String("a@example.com")}
		p.SetIdempotencyKey("slow")
		return p
	}
	var first *stripe.Customer
	var firstErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		first, firstErr = sc.V1Customers.Create(ctx, params())
	}()
	<-started

	// Meanwhile: the same key is in use; others go through.
	_, err := sc.V1Customers.Create(ctx, params())
	se := apiErr(t, err, 409, stripe.ErrorTypeIdempotency, "idempotency_key_in_use", "")
	assert.Contains(t, se.Msg, "slow")
	other := newCustomer(t, sc)
	assert.NotEmpty(t, other.ID)

	close(release)
	wg.Wait()
	require.NoError(t, firstErr)
	again, err := sc.V1Customers.Create(ctx, params())
	require.NoError(t, err)
	assert.Equal(t, first.ID, again.ID)
	assert.Equal(t, "true", again.LastResponse.Header.Get("Idempotent-Replayed"))
	assert.Equal(t, 4, srv.Calls()["POST /v1/customers"])

}

func TestNewRoutesHeadersAndCalls(t *testing.T) {
	srv, sc := apiSetup(t)
	subID, c := subscribe(t, srv, sc, 0)
	srv.ResetCalls()
	srv.Advance(72 * time.Hour)
	paths := []struct{ method, path, route string }{
		{http.MethodGet, "/v1/customers", "GET /v1/customers"},
		{http.MethodPost, "/v1/customers/" + c.ID, "POST /v1/customers/{id}"},
		{http.MethodGet, "/v1/products", "GET /v1/products"},
		{http.MethodGet, "/v1/products/prod_price_month", "GET /v1/products/{id}"},
		{http.MethodGet, "/v1/prices", "GET /v1/prices"},
		{http.MethodGet, "/v1/prices/price_month", "GET /v1/prices/{id}"},
		{http.MethodGet, "/v1/checkout/sessions", "GET /v1/checkout/sessions"},
		{http.MethodGet, "/v1/checkout/sessions/" + srv.SessionsOf(c.ID)[0] + "/line_items", "GET /v1/checkout/sessions/{id}/line_items"},
		{http.MethodGet, "/v1/subscriptions", "GET /v1/subscriptions"},
		{http.MethodPost, "/v1/subscriptions/" + subID, "POST /v1/subscriptions/{id}"},
		{http.MethodGet, "/v1/invoices", "GET /v1/invoices"},
		{http.MethodGet, "/v1/events", "GET /v1/events"},
		{http.MethodDelete, "/v1/subscriptions/" + subID, "DELETE /v1/subscriptions/{id}"},
		{http.MethodPost, "/v1/checkout/sessions/cs_test_nope/expire", "POST /v1/checkout/sessions/{id}/expire"},
	}
	want := map[string]int{}
	for _, p := range paths {
		status, m, h := apiDo(t, srv, p.method, p.path, "")
		assert.Contains(t, []int{200, 404}, status, "%s %s: %v", p.method, p.path, m)
		d, err := http.ParseTime(h.Get("Date"))
		require.NoError(t, err)
		assert.WithinDuration(t, start.Add(72*time.Hour), d, 5*time.Second)
		assert.True(t, strings.HasPrefix(h.Get("Request-Id"), "req_"))
		assert.Equal(t, billingtest.APIVersion, h.Get("Stripe-Version"))
		want[p.route]++
	}
	assert.Equal(t, want, srv.Calls())
	assert.Equal(t, stripe.SubscriptionStatusCanceled, srv.Subscription(subID).Status)
}

func ExampleStripe_Advance() {
	srv := billingtest.New(billingtest.Options{Start: time.Date(2025, 9, 1, 12, 0, 0, 0, time.UTC)})
	defer srv.Close()
	srv.AddPrice("price_month", "month", 1000)
	sc := apiClient(srv)
	cs, err := sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{
		Mode: stripe.String("subscription"), SuccessURL: stripe.String("https://app.test/ok"),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_month"), Quantity: stripe.Int64(1)}},
	})
	if err != nil {
		panic(err)
	}
	srv.Advance(25 * time.Hour)
	fmt.Println(srv.CheckoutSession(cs.ID).Status)
	for ev, err := range sc.V1Events.List(ctx, &stripe.EventListParams{Type: stripe.String("checkout.session.*")}) {
		if err != nil {
			panic(err)
		}
		fmt.Println(ev.Type)
	}
	// Output:
	// expired
	// checkout.session.expired
}

func TestParameterEdges(t *testing.T) {
	srv, sc := apiSetup(t)
	post := func(path, form string, header ...string) (int, map[string]any) {
		t.Helper()
		status, m, _ := apiDo(t, srv, http.MethodPost, path, form, header...)
		if status != 200 {
			return status, m["error"].(map[string]any)
		}
		return status, m
	}
	many := url.Values{"email": {"m@example.com"}}
	for i := range 51 {
		many.Set(fmt.Sprintf("metadata[k%d]", i), "v")
	}
	for _, tc := range []struct {
		form, code, param string
	}{
		{many.Encode(), "parameter_invalid", "metadata"},
		{"metadata[k]=" + strings.Repeat("v", 501), "parameter_invalid", "metadata[k]"},
		{"metadata=oops", "parameter_invalid", "metadata"},
		{"metadata[a][b]=c", "parameter_unknown", "metadata[a][b]"},
		{"email[x]=y", "parameter_unknown", "email[x]"},
		{"bad%zz", "", ""},
	} {
		status, e := post("/v1/customers", tc.form)
		assert.Equal(t, 400, status, tc.form)
		assert.Equal(t, "invalid_request_error", e["type"], tc.form)
		if tc.code != "" {
			assert.Equal(t, tc.code, e["code"], tc.form)
			assert.Equal(t, tc.param, e["param"], tc.form)
		}
	}
	status, e := post("/v1/customers", "email=a@example.com", "Idempotency-Key", strings.Repeat("k", 256))
	assert.Equal(t, 400, status)
	assert.Equal(t, "idempotency_error", e["type"])

	// metadata="" unsets every key on an update.
	c := newCustomer(t, sc)
	p := &stripe.CustomerUpdateParams{}
	p.AddExtra("metadata", "")
	up, err := sc.V1Customers.Update(ctx, c.ID, p)
	require.NoError(t, err)
	assert.Empty(t, up.Metadata)

	// Arrays in either notation, wildcards anywhere.
	_, err = sc.V1Products.Create(ctx, &stripe.ProductCreateParams{Name: stripe.String("Old"), Active: stripe.Bool(false)})
	require.NoError(t, err)
	ids, _ := apiList(t, srv, "/v1/products", "active=true&ids[]=prod_price_month&ids[]=prod_price_year")
	assert.Equal(t, []string{"prod_price_year", "prod_price_month"}, ids)
	ids, _ = apiList(t, srv, "/v1/products", "active=false")
	assert.Len(t, ids, 1)
	_, err = testcatalog.Pay(srv, subSession(t, sc, c.ID, 0).ID)
	require.NoError(t, err)
	for pattern, n := range map[string]int{"*": 10, "customer.*.*": 2, "*subscription*": 2, "invoice.pay*": 1, "invoice.pa*": 2,
		"*.*.completed": 1, "in*d": 4, "payment_intent.*": 2, "x*": 0} {
		ids, _ := apiList(t, srv, "/v1/events", "type="+url.QueryEscape(pattern))
		assert.Len(t, ids, n, pattern)
	}
	ids, _ = apiList(t, srv, "/v1/events", "types=invoice.paid")
	assert.Len(t, ids, 1)
}
