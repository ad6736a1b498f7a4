package billingtest_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"
)

// A price is never deleted: it is archived, and its lookup key moves to
// its successor, as a provisioning tool does when an amount changes.
func TestUpdatePrice(t *testing.T) {
	srv, sc := apiSetup(t)
	old, err := sc.V1Prices.Create(ctx, &stripe.PriceCreateParams{
		ProductData: &stripe.PriceCreateProductDataParams{Name: stripe.String("Pro")}, UnitAmount: stripe.Int64(1500),
		Currency: stripe.String("usd"), LookupKey: stripe.String("pro_monthly"),
		Recurring: &stripe.PriceCreateRecurringParams{Interval: stripe.String("month")}})
	require.NoError(t, err)
	next, err := sc.V1Prices.Create(ctx, &stripe.PriceCreateParams{Product: stripe.String(old.Product.ID),
		UnitAmount: stripe.Int64(1900), Currency: stripe.String("usd"),
		Recurring: &stripe.PriceCreateRecurringParams{Interval: stripe.String("month")}})
	require.NoError(t, err)

	// The key is taken: refused without transfer_lookup_key, nothing changes.
	n := len(srv.Events())
	_, err = sc.V1Prices.Update(ctx, next.ID, &stripe.PriceUpdateParams{LookupKey: stripe.String("pro_monthly")})
	assertStripeError(t, err, 400, "parameter_invalid")
	assert.Len(t, srv.Events(), n)

	moved, err := sc.V1Prices.Update(ctx, next.ID, &stripe.PriceUpdateParams{LookupKey: stripe.String("pro_monthly"),
		TransferLookupKey: stripe.Bool(true), Nickname: stripe.String("Pro 2027")})
	require.NoError(t, err)
	assert.Equal(t, "pro_monthly", moved.LookupKey)
	assert.Equal(t, "Pro 2027", moved.Nickname)
	evs := srv.Events()[n:]
	require.Equal(t, []string{"price.updated", "price.updated"}, types(evs))
	assert.Equal(t, old.ID, decodeAs[stripe.Price](t, evs[0]).ID)
	assert.Equal(t, map[string]any{"lookup_key": "pro_monthly"}, decode(t, evs[0]).Data.PreviousAttributes)
	assert.Equal(t, map[string]any{"lookup_key": nil, "nickname": nil}, decode(t, evs[1]).Data.PreviousAttributes)
	byKey := collect(t, sc.V1Prices.List(ctx, &stripe.PriceListParams{LookupKeys: stripe.StringSlice([]string{"pro_monthly"})}))
	require.Len(t, byKey, 1)
	assert.Equal(t, next.ID, byKey[0].ID)

	// Archived: listed as inactive, refused by Checkout, still retrievable.
	n = len(srv.Events())
	archived, err := sc.V1Prices.Update(ctx, old.ID, &stripe.PriceUpdateParams{Active: stripe.Bool(false),
		Metadata: map[string]string{"replaced_by": next.ID}})
	require.NoError(t, err)
	assert.False(t, archived.Active)
	assert.Equal(t, map[string]any{"active": true, "metadata": map[string]any{}},
		decode(t, srv.Events()[n]).Data.PreviousAttributes)
	inactive := collect(t, sc.V1Prices.List(ctx, &stripe.PriceListParams{Active: stripe.Bool(false)}))
	require.Len(t, inactive, 1)
	assert.Equal(t, old.ID, inactive[0].ID)
	c := newCustomer(t, sc)
	_, err = sc.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{Mode: stripe.String("subscription"),
		Customer: stripe.String(c.ID), SuccessURL: stripe.String("https://app.test/ok"),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String(old.ID), Quantity: stripe.Int64(1)}}})
	assertStripeError(t, err, 400, "parameter_invalid")

	// An update that changes nothing sends nothing; unknown prices, bad
	// and unmodelled parameters are refused.
	n = len(srv.Events())
	_, err = sc.V1Prices.Update(ctx, old.ID, &stripe.PriceUpdateParams{Active: stripe.Bool(false)})
	require.NoError(t, err)
	assert.Len(t, srv.Events(), n)
	for form, want := range map[string][2]any{
		"active=maybe":              {400, "parameter_invalid"},
		"tax_behavior=inclusive":    {400, "parameter_not_modelled"},
		"unit_amount=100":           {400, "parameter_unknown"},
		"transfer_lookup_key=maybe": {400, "parameter_invalid"},
	} {
		status, body, _ := apiDo(t, srv, http.MethodPost, "/v1/prices/"+old.ID, form)
		assert.Equal(t, want[0], status, form)
		assert.Equal(t, want[1], errorOf(t, body)["code"], form)
	}
	status, body, _ := apiDo(t, srv, http.MethodPost, "/v1/prices/price_nope", "active=false")
	assert.Equal(t, 404, status)
	assert.Equal(t, "resource_missing", errorOf(t, body)["code"])
	assert.Len(t, srv.Events(), n, "refused updates change nothing")
}

// A product's name, description, state and metadata can change, with
// product.updated.
func TestUpdateProduct(t *testing.T) {
	srv, sc := apiSetup(t)
	prod, err := sc.V1Products.Create(ctx, &stripe.ProductCreateParams{Name: stripe.String("Pro")})
	require.NoError(t, err)
	srv.Advance(10 * time.Second)
	n := len(srv.Events())
	got, err := sc.V1Products.Update(ctx, prod.ID, &stripe.ProductUpdateParams{Name: stripe.String("Pro plan"),
		Description: stripe.String("Everything"), Active: stripe.Bool(false), Metadata: map[string]string{"tier": "pro"}})
	require.NoError(t, err)
	assert.Equal(t, "Pro plan", got.Name)
	assert.Equal(t, "Everything", got.Description)
	assert.False(t, got.Active)
	assert.Equal(t, map[string]string{"tier": "pro"}, got.Metadata)
	assert.Greater(t, got.Updated, prod.Updated)
	evs := srv.Events()[n:]
	require.Equal(t, []string{"product.updated"}, types(evs))
	prev := decode(t, evs[0]).Data.PreviousAttributes
	assert.Equal(t, "Pro", prev["name"])
	assert.Equal(t, true, prev["active"])
	assert.Nil(t, prev["description"])
	assert.Contains(t, prev, "description")

	n = len(srv.Events())
	for form, want := range map[string][2]any{
		"name=":                   {400, "parameter_invalid"},
		"url=https://example.com": {400, "parameter_not_modelled"},
		"currency=usd":            {400, "parameter_unknown"},
	} {
		status, body, _ := apiDo(t, srv, http.MethodPost, "/v1/products/"+prod.ID, form)
		assert.Equal(t, want[0], status, form)
		assert.Equal(t, want[1], errorOf(t, body)["code"], form)
	}
	status, _, _ := apiDo(t, srv, http.MethodPost, "/v1/products/prod_nope", "name=x")
	assert.Equal(t, 404, status)
	assert.Len(t, srv.Events(), n, "refused updates change nothing")
}
