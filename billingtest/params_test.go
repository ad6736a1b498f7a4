package billingtest_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"
)

// Parameters apps commonly send are modelled.
func TestCommonParameters(t *testing.T) {
	srv, sc := setup(t)
	c, err := sc.V1Customers.Create(ctx, &stripe.CustomerCreateParams{Email: stripe.String("a@example.com"),
		Description: stripe.String("Acme's admin"), Phone: stripe.String("+15555550100"),
		Address: &stripe.AddressParams{Line1: stripe.String("1 Main St"), City: stripe.String("Springfield"),
			Country: stripe.String("US"), PostalCode: stripe.String("12345")}})
	require.NoError(t, err)
	assert.Equal(t, "Acme's admin", c.Description)
	assert.Equal(t, "+15555550100", c.Phone)
	require.NotNil(t, c.Address)
	assert.Equal(t, "Springfield", c.Address.City)
	assert.Empty(t, c.Address.Line2)

	n := len(srv.Events())
	up, err := sc.V1Customers.Update(ctx, c.ID, &stripe.CustomerUpdateParams{
		Address: &stripe.AddressParams{Line2: stripe.String("Suite 2")}})
	require.NoError(t, err)
	assert.Equal(t, "1 Main St", up.Address.Line1, "fields not sent stay")
	assert.Equal(t, "Suite 2", up.Address.Line2)
	prev := decode(t, srv.Events()[n]).Data.PreviousAttributes
	assert.Contains(t, prev, "address", "the update names what changed")
	status, body, _ := apiDo(t, srv, http.MethodPost, "/v1/customers/"+c.ID, "address=&phone=")
	require.Equal(t, 200, status)
	assert.Nil(t, body["address"])
	assert.Nil(t, body["phone"])
	status, body, _ = apiDo(t, srv, http.MethodPost, "/v1/customers", "address[country]=USA")
	assert.Equal(t, 400, status)
	assert.Equal(t, "address[country]", errorOf(t, body)["param"])

	// Checkout: billing_address_collection, subscription_data[description].
	p := &stripe.CheckoutSessionCreateParams{Mode: stripe.String("subscription"), Customer: stripe.String(c.ID),
		SuccessURL: stripe.String("https://app.test/ok"), BillingAddressCollection: stripe.String("required"),
		LineItems:        []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String("price_month"), Quantity: stripe.Int64(1)}},
		SubscriptionData: &stripe.CheckoutSessionCreateSubscriptionDataParams{Description: stripe.String("Team plan")}}
	cs, err := sc.V1CheckoutSessions.Create(ctx, p)
	require.NoError(t, err)
	assert.Equal(t, stripe.CheckoutSessionBillingAddressCollectionRequired, cs.BillingAddressCollection)
	_, err = srv.Pay(cs.ID, "4242424242424242")
	require.NoError(t, err)
	subID := srv.CheckoutSession(cs.ID).Subscription.ID
	assert.Equal(t, "Team plan", srv.Subscription(subID).Description)
	s, err := sc.V1Subscriptions.Update(ctx, subID, &stripe.SubscriptionUpdateParams{Description: stripe.String("Team plan (annual)")})
	require.NoError(t, err)
	assert.Equal(t, "Team plan (annual)", s.Description)

	status, body, _ = apiDo(t, srv, http.MethodPost, "/v1/checkout/sessions",
		"mode=payment&success_url=https://app.test/ok&line_items[0][price]=price_once&line_items[0][quantity]=1&billing_address_collection=always")
	assert.Equal(t, 400, status)
	assert.Equal(t, "billing_address_collection", errorOf(t, body)["param"])
}

// Several line items, price_data, one-time items in a subscription.
func TestLineItems(t *testing.T) {
	srv, sc := setup(t)
	c := newCustomer(t, sc)
	cs, err := sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{
		Mode: stripe.String("subscription"), Customer: stripe.String(c.ID), SuccessURL: stripe.String("https://app.test/ok"),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{
			{Price: stripe.String("price_month"), Quantity: stripe.Int64(2)},
			{PriceData: &stripe.CheckoutSessionCreateLineItemPriceDataParams{Currency: stripe.String("usd"),
				ProductData: &stripe.CheckoutSessionCreateLineItemPriceDataProductDataParams{Name: stripe.String("Seat")},
				UnitAmount:  stripe.Int64(500), Recurring: &stripe.CheckoutSessionCreateLineItemPriceDataRecurringParams{Interval: stripe.String("month")}},
				Quantity: stripe.Int64(3)},
			{Price: stripe.String("price_once"), Quantity: stripe.Int64(1)}, // a setup fee, billed once
		}})
	require.NoError(t, err)
	assert.Equal(t, int64(2000+1500+2500), cs.AmountTotal)
	var names []string
	for li, err := range sc.V1CheckoutSessions.ListLineItems(ctx, &stripe.CheckoutSessionListLineItemsParams{Session: stripe.String(cs.ID)}) {
		require.NoError(t, err)
		names = append(names, li.Description)
	}
	assert.Equal(t, []string{"price_month", "Seat", "price_once"}, names)

	_, err = srv.Pay(cs.ID, "4242424242424242")
	require.NoError(t, err)
	sub := srv.Subscription(srv.CheckoutSession(cs.ID).Subscription.ID)
	require.Len(t, sub.Items.Data, 2, "the recurring prices are the items")
	assert.Equal(t, int64(3), sub.Items.Data[1].Quantity)
	first := srv.Invoice(sub.LatestInvoice.ID)
	assert.Equal(t, int64(6000), first.AmountPaid, "the setup fee is on the first invoice")
	evs := srv.Advance(31 * 24 * time.Hour)
	assert.Equal(t, int64(3500), decodeAs[stripe.Invoice](t, pick(t, evs, "invoice.paid")).AmountPaid, "and only there")

	// Bad combinations are refused, naming the line.
	for form, param := range map[string]string{
		"mode=payment&success_url=https://a.test&line_items[0][price]=price_once&line_items[0][quantity]=1&line_items[1][price]=price_month&line_items[1][quantity]=1":      "line_items[1][price]",
		"mode=subscription&success_url=https://a.test&line_items[0][price]=price_month&line_items[0][quantity]=1&line_items[1][price]=price_year&line_items[1][quantity]=1": "line_items[1][price]",
		"mode=payment&success_url=https://a.test&line_items[0][price_data][currency]=usd&line_items[0][price_data][unit_amount]=100&line_items[0][quantity]=1":              "line_items[0][price_data][product_data]",
		"mode=payment&success_url=https://a.test&line_items[0][price]=price_once&line_items[0][price_data][currency]=usd&line_items[0][quantity]=1":                         "line_items[0][price]",
		"mode=payment&success_url=https://a.test&line_items[0][price]=price_once&line_items[0][quantity]=1&line_items[2][price]=price_once&line_items[2][quantity]=1":       "line_items[2][price]",
	} {
		status, body, _ := apiDo(t, srv, http.MethodPost, "/v1/checkout/sessions", form)
		assert.Equal(t, 400, status, form)
		assert.Equal(t, param, errorOf(t, body)["param"], form)
	}
}

// mode=setup saves a card for later, charging nothing.
func TestSetupMode(t *testing.T) {
	srv, sc := setup(t)
	c := newCustomer(t, sc)
	cs, err := sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{
		Mode: stripe.String("setup"), Customer: stripe.String(c.ID), SuccessURL: stripe.String("https://app.test/ok"),
		Currency: stripe.String("usd")})
	require.NoError(t, err)
	assert.Zero(t, cs.AmountTotal)
	paid, err := srv.Pay(cs.ID, "4242424242424242")
	require.NoError(t, err)
	assert.Equal(t, []string{"payment_method.attached", "checkout.session.completed"}, types(paid.Events))
	done := srv.CheckoutSession(cs.ID)
	assert.Equal(t, stripe.CheckoutSessionPaymentStatusNoPaymentRequired, done.PaymentStatus)
	require.NotNil(t, done.SetupIntent)
	assert.Regexp(t, `^seti_`, done.SetupIntent.ID)
	assert.Nil(t, done.PaymentIntent)

	status, body, _ := apiDo(t, srv, http.MethodPost, "/v1/checkout/sessions",
		"mode=setup&success_url=https://a.test&line_items[0][price]=price_once&line_items[0][quantity]=1")
	assert.Equal(t, 400, status)
	assert.Equal(t, "line_items", errorOf(t, body)["param"])
}
