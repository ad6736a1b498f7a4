package billingtest_test

import (
	"net/http"
	"testing"

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
