package billingtest

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gobilling/billing/billingtest/internal/httpapi"
)

// Products and prices.

func (s *Stripe) createProduct(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, "name", "id", "active", "description", "metadata", "metadata[*]"); err != nil {
		return 0, err
	}
	if _, err := httpapi.ExpandParam(f); err != nil {
		return 0, err
	}
	md, _, err := httpapi.MetadataParam(f, "metadata")
	if err != nil {
		return 0, err
	}
	active, ok, err := httpapi.BoolParam(f, "active")
	if err != nil {
		return 0, err
	}
	name := f.Get("name")
	if name == "" {
		return 0, httpapi.Missing("name")
	}
	id := f.Get("id")
	if id == "" {
		id = httpapi.NewID("prod_", 14)
	} else if s.products[id] != nil {
		return 0, &httpapi.Error{Status: 400, Type: "invalid_request_error", Code: "resource_already_exists", Param: "id",
			Message: "Product already exists."}
	}
	now := s.unix()
	p := &product{id: id, name: name, description: f.Get("description"), active: active || !ok,
		metadata: httpapi.ApplyMetadata(nil, md, false), created: now, updated: now}
	s.addProduct(p)
	s.step(true).emit("product.created", s.productObj(p), nil)
	return 200, s.productObj(p)
}

func (s *Stripe) getProduct(r *http.Request) (int, any) {
	if err := httpapi.CheckParams(r.Form); err != nil {
		return 0, err
	}
	if _, err := httpapi.ExpandParam(r.Form); err != nil {
		return 0, err
	}
	id := r.PathValue("id")
	p := s.products[id]
	if p == nil {
		return 0, httpapi.NoSuch(404, "product", id, "id")
	}
	return 200, s.productObj(p)
}

func (s *Stripe) listProducts(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, httpapi.WithList("active", "ids", "ids[#]")...); err != nil {
		return 0, err
	}
	if _, err := httpapi.ListExpand(f); err != nil {
		return 0, err
	}
	active, hasActive, err := httpapi.BoolParam(f, "active")
	if err != nil {
		return 0, err
	}
	ids := httpapi.ArrayParam(f, "ids")
	all := httpapi.NewestFirst(s.prodOrder, func(id string) int64 { return s.products[id].created },
		func(id string) any { return s.productObj(s.products[id]) })
	l, err := httpapi.ListPage(f, "/v1/products", "product", all, func(e httpapi.Entry) bool {
		p := s.products[e.ID]
		return (!hasActive || p.active == active) && (len(ids) == 0 || slices.Contains(ids, p.id))
	})
	if err != nil {
		return 0, err
	}
	return 200, l
}

// maxPeriod is the longest billing period Stripe allows: three years.
var maxPeriod = map[string]int64{"day": 3 * 365, "week": 156, "month": 36, "year": 3}

func (s *Stripe) createPrice(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, "product", "product_data[name]", "product_data[metadata][*]", "unit_amount",
		"currency", "recurring[interval]", "recurring[interval_count]", "lookup_key", "transfer_lookup_key",
		"nickname", "active", "metadata", "metadata[*]"); err != nil {
		return 0, err
	}
	exp, err := httpapi.ExpandParam(f, "product")
	if err != nil {
		return 0, err
	}
	md, _, err := httpapi.MetadataParam(f, "metadata")
	if err != nil {
		return 0, err
	}
	prodMD, _, err := httpapi.MetadataParam(f, "product_data[metadata]")
	if err != nil {
		return 0, err
	}
	active, hasActive, err := httpapi.BoolParam(f, "active")
	if err != nil {
		return 0, err
	}
	transfer, _, err := httpapi.BoolParam(f, "transfer_lookup_key")
	if err != nil {
		return 0, err
	}
	currency := strings.ToLower(f.Get("currency"))
	switch {
	case currency == "":
		return 0, httpapi.Missing("currency")
	case len(currency) != 3 || strings.Trim(currency, "abcdefghijklmnopqrstuvwxyz") != "":
		return 0, httpapi.Invalid("currency", "Invalid currency: "+f.Get("currency")+".")
	}
	prodID, hasData := f.Get("product"), f.Has("product_data[name]") || prodMD != nil
	switch {
	case prodID != "" && hasData:
		return 0, httpapi.Exclusive("product", "product_data")
	case prodID == "" && !hasData:
		return 0, httpapi.Missing("product")
	case prodID != "" && s.products[prodID] == nil:
		return 0, httpapi.NoSuch(400, "product", prodID, "product")
	case hasData && f.Get("product_data[name]") == "":
		return 0, httpapi.Missing("product_data[name]")
	}
	amount, ok, err := httpapi.IntParam(f, "unit_amount")
	switch {
	case err != nil:
		return 0, err
	case !ok:
		return 0, httpapi.Missing("unit_amount")
	case amount < 0:
		return 0, httpapi.InvalidInteger("unit_amount", "This value must be greater than or equal to 0.")
	}
	interval, err := httpapi.EnumParam(f, "recurring[interval]", "day", "week", "month", "year")
	if err != nil {
		return 0, err
	}
	count, hasCount, err := httpapi.IntParam(f, "recurring[interval_count]")
	switch {
	case err != nil:
		return 0, err
	case hasCount && interval == "":
		return 0, httpapi.Missing("recurring[interval]")
	case !hasCount && interval != "":
		count = 1
	case hasCount && count < 1:
		return 0, httpapi.InvalidInteger("recurring[interval_count]", "This value must be greater than or equal to 1.")
	case hasCount && count > maxPeriod[interval]:
		return 0, httpapi.Invalid("recurring[interval_count]", "The maximum billing period is 3 years.")
	}
	key := f.Get("lookup_key")
	if len(key) > 200 {
		return 0, httpapi.Invalid("lookup_key", "The lookup key can be at most 200 characters long.")
	}
	var holder *price
	if key != "" {
		for _, p := range s.prices {
			if p.lookupKey == key {
				holder = p
			}
		}
	}
	if holder != nil && !transfer {
		return 0, httpapi.Invalid("lookup_key", "A price (`"+holder.id+"`) already uses that lookup key.")
	}

	now := s.unix()
	if prodID == "" {
		prod := &product{id: httpapi.NewID("prod_", 14), name: f.Get("product_data[name]"), active: true,
			metadata: httpapi.ApplyMetadata(nil, prodMD, false), created: now, updated: now}
		s.addProduct(prod)
		prodID = prod.id
	}
	st := s.step(true)
	if prod := s.products[prodID]; prod.created == now && prodID != f.Get("product") {
		st.emit("product.created", s.productObj(prod), nil)
	}
	if holder != nil {
		before := s.priceObj(holder)
		holder.lookupKey = ""
		after := s.priceObj(holder)
		st.emit("price.updated", after, changed(before, after))
	}
	p := &price{id: httpapi.NewID("price_", 24), interval: interval, intervalCount: count, product: prodID,
		currency: currency, lookupKey: key, nickname: f.Get("nickname"), unitAmount: amount, created: now,
		active: active || !hasActive, metadata: httpapi.ApplyMetadata(nil, md, false)}
	s.addPrice(p)
	st.emit("price.created", s.priceObj(p), nil)
	return 200, s.priceObjX(p, exp)
}

func (s *Stripe) getPrice(r *http.Request) (int, any) {
	if err := httpapi.CheckParams(r.Form); err != nil {
		return 0, err
	}
	exp, err := httpapi.ExpandParam(r.Form, "product")
	if err != nil {
		return 0, err
	}
	id := r.PathValue("id")
	p := s.prices[id]
	if p == nil {
		return 0, httpapi.NoSuch(404, "price", id, "id")
	}
	return 200, s.priceObjX(p, exp)
}

func (s *Stripe) listPrices(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, httpapi.WithList("active", "currency", "lookup_keys", "lookup_keys[#]", "product",
		"recurring[interval]", "type")...); err != nil {
		return 0, err
	}
	exp, err := httpapi.ListExpand(f, "product")
	if err != nil {
		return 0, err
	}
	active, hasActive, err := httpapi.BoolParam(f, "active")
	if err != nil {
		return 0, err
	}
	typ, err := httpapi.EnumParam(f, "type", "one_time", "recurring")
	if err != nil {
		return 0, err
	}
	interval, err := httpapi.EnumParam(f, "recurring[interval]", "day", "week", "month", "year")
	if err != nil {
		return 0, err
	}
	keys := httpapi.ArrayParam(f, "lookup_keys")
	if len(keys) > 10 {
		return 0, httpapi.Invalid("lookup_keys", "You can pass at most 10 lookup keys.")
	}
	currency, prod := strings.ToLower(f.Get("currency")), f.Get("product")
	all := httpapi.NewestFirst(s.priceOrder, func(id string) int64 { return s.prices[id].created },
		func(id string) any { return s.priceObjX(s.prices[id], exp) })
	l, err := httpapi.ListPage(f, "/v1/prices", "price", all, func(e httpapi.Entry) bool {
		p := s.prices[e.ID]
		pt := "one_time"
		if p.interval != "" {
			pt = "recurring"
		}
		return (!hasActive || p.active == active) && (typ == "" || pt == typ) &&
			(interval == "" || p.interval == interval) && (currency == "" || p.currency == currency) &&
			(prod == "" || p.product == prod) && (len(keys) == 0 || p.lookupKey != "" && slices.Contains(keys, p.lookupKey))
	})
	if err != nil {
		return 0, err
	}
	return 200, l
}

// updatePrice answers POST /v1/prices/{id}: what Stripe lets change on a
// price (its amount and interval never change: a new price is made).
// lookup_key moves from the price holding it only with
// transfer_lookup_key=true; an empty one removes it. Each price changed
// gets price.updated.
func (s *Stripe) updatePrice(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, "active", "lookup_key", "transfer_lookup_key", "nickname", "metadata", "metadata[*]"); err != nil {
		return 0, err
	}
	exp, err := httpapi.ExpandParam(f, "product")
	if err != nil {
		return 0, err
	}
	id := r.PathValue("id")
	p := s.prices[id]
	if p == nil {
		return 0, httpapi.NoSuch(404, "price", id, "id")
	}
	u, err := catalogUpdateParams(f)
	if err != nil {
		return 0, err
	}
	transfer, _, err := httpapi.BoolParam(f, "transfer_lookup_key")
	if err != nil {
		return 0, err
	}
	key, hasKey := f.Get("lookup_key"), f.Has("lookup_key")
	if len(key) > 200 {
		return 0, httpapi.Invalid("lookup_key", "The lookup key can be at most 200 characters long.")
	}
	var holder *price
	if key != "" {
		for _, o := range s.prices {
			if o.lookupKey == key && o != p {
				holder = o
			}
		}
	}
	if holder != nil && !transfer {
		return 0, httpapi.Invalid("lookup_key", "A price (`"+holder.id+"`) already uses that lookup key.")
	}
	st := s.step(true)
	if holder != nil {
		before := s.priceObj(holder)
		holder.lookupKey = ""
		after := s.priceObj(holder)
		st.emit("price.updated", after, changed(before, after))
	}
	before := s.priceObj(p)
	p.active = u.activeOr(p.active)
	if hasKey {
		p.lookupKey = key
	}
	if f.Has("nickname") {
		p.nickname = f.Get("nickname")
	}
	p.metadata = u.metadataOf(p.metadata)
	after := s.priceObj(p)
	if prev := changed(before, after); len(prev) > 0 {
		st.emit("price.updated", after, prev)
	}
	return 200, s.priceObjX(p, exp)
}

// updateProduct answers POST /v1/products/{id}: name, description, active
// and metadata, with product.updated when any changed.
func (s *Stripe) updateProduct(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, "name", "active", "description", "metadata", "metadata[*]"); err != nil {
		return 0, err
	}
	if _, err := httpapi.ExpandParam(f); err != nil {
		return 0, err
	}
	id := r.PathValue("id")
	p := s.products[id]
	if p == nil {
		return 0, httpapi.NoSuch(404, "product", id, "id")
	}
	u, err := catalogUpdateParams(f)
	if err != nil {
		return 0, err
	}
	if f.Has("name") && f.Get("name") == "" {
		return 0, httpapi.Invalid("name", "You passed an empty string for 'name'. We assume empty values are an attempt to unset a parameter; however 'name' cannot be unset. You should remove 'name' from your request or supply a non-empty value.")
	}
	st := s.step(true)
	before := s.productObj(p)
	if f.Has("name") {
		p.name = f.Get("name")
	}
	if f.Has("description") {
		p.description = f.Get("description")
	}
	p.active = u.activeOr(p.active)
	p.metadata = u.metadataOf(p.metadata)
	if prev := changed(before, s.productObj(p)); len(prev) > 0 {
		p.updated = st.t
		st.emit("product.updated", s.productObj(p), prev)
	}
	return 200, s.productObj(p)
}

// catalogUpdate is what an update of a product or a price may say of the
// fields both have: active and metadata.
type catalogUpdate struct {
	md                 map[string]string
	clearMD, hasActive bool
	active             bool
}

func catalogUpdateParams(f url.Values) (catalogUpdate, *httpapi.Error) {
	var u catalogUpdate
	var err *httpapi.Error
	if u.md, u.clearMD, err = httpapi.MetadataParam(f, "metadata"); err != nil {
		return u, err
	}
	if u.active, u.hasActive, err = httpapi.BoolParam(f, "active"); err != nil {
		return u, err
	}
	return u, nil
}

// activeOr is the new active state, or cur when none was given.
func (u catalogUpdate) activeOr(cur bool) bool {
	if u.hasActive {
		return u.active
	}
	return cur
}

// metadataOf applies the update's metadata to cur.
func (u catalogUpdate) metadataOf(cur map[string]string) map[string]string {
	if u.md == nil && !u.clearMD {
		return cur
	}
	return httpapi.ApplyMetadata(cur, u.md, u.clearMD)
}
