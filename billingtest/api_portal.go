package billingtest

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gobilling/billing/billingtest/internal/httpapi"
)

// Customer Portal configurations: what `billing setup` creates and keeps
// (features, default_return_url, business_profile, metadata, active).
// A configuration made through the API is never the default (is_default
// false), as at Stripe; portal sessions name it with configuration=.
// The portal's pages do not read it: they offer what the package doc says.

// portalConfig is one billing_portal.configuration.
type portalConfig struct {
	id                  string
	active              bool
	created, updated    int64
	returnURL           string
	headline, privacy   string
	terms               string
	metadata            map[string]string
	customerUpdate      bool
	customerAllowed     []string
	invoiceHistory      bool
	paymentMethodUpdate bool
	cancel              bool
	cancelMode          string
	cancelProration     string
	update              bool
	updateAllowed       []string
	updateProducts      []portalProduct
	updateProration     string
	cancelReason        bool
	cancelReasonOptions []string
}

type portalProduct struct {
	product string
	prices  []string
}

// portalConfigs are the account's configurations, by ID with their
// creation order. Guarded by the Stripe's mu (the router holds it).
type portalConfigs struct {
	byID  map[string]*portalConfig
	order []string
}

// portalConfigParams are the parameters billingtest models on create and
// update (update also takes active).
var portalConfigParams = []string{
	"default_return_url", "metadata", "metadata[*]",
	"business_profile[headline]", "business_profile[privacy_policy_url]", "business_profile[terms_of_service_url]",
	"features[customer_update][enabled]", "features[customer_update][allowed_updates]",
	"features[customer_update][allowed_updates][#]",
	"features[invoice_history][enabled]",
	"features[payment_method_update][enabled]",
	"features[subscription_cancel][enabled]", "features[subscription_cancel][mode]",
	"features[subscription_cancel][proration_behavior]",
	"features[subscription_update][enabled]", "features[subscription_update][default_allowed_updates]",
	"features[subscription_update][default_allowed_updates][#]",
	"features[subscription_update][products]",
	"features[subscription_update][products][#][product]",
	"features[subscription_update][products][#][prices][#]",
	"features[subscription_update][proration_behavior]",
}

// portalRoutes registers the configuration API. routes calls it once.
func (s *Stripe) portalRoutes() {
	pc := &portalConfigs{byID: map[string]*portalConfig{}}
	s.api.Handle("POST /v1/billing_portal/configurations", func(r *http.Request) (int, any) {
		return s.savePortalConfig(pc, r, nil)
	})
	s.api.Handle("GET /v1/billing_portal/configurations", func(r *http.Request) (int, any) {
		return s.listPortalConfigs(pc, r)
	})
	s.api.Handle("GET /v1/billing_portal/configurations/{id}", func(r *http.Request) (int, any) {
		if err := httpapi.CheckParams(r.Form); err != nil {
			return 0, err
		}
		if _, err := httpapi.ExpandParam(r.Form); err != nil {
			return 0, err
		}
		c := pc.byID[r.PathValue("id")]
		if c == nil {
			return 0, httpapi.NoSuch(404, "configuration", r.PathValue("id"), "configuration")
		}
		return 200, portalConfigObj(c)
	})
	s.api.Handle("POST /v1/billing_portal/configurations/{id}", func(r *http.Request) (int, any) {
		c := pc.byID[r.PathValue("id")]
		if c == nil {
			return 0, httpapi.NoSuch(404, "configuration", r.PathValue("id"), "configuration")
		}
		return s.savePortalConfig(pc, r, c)
	})
}

// arrayAt reads an array parameter under prefix (prefix[0]=a, prefix[]=b),
// in index order, and whether it was given (prefix= clears it).
func arrayAt(f url.Values, prefix string) ([]string, bool) {
	type iv struct {
		i string
		v []string
	}
	var items []iv
	for k, vs := range f {
		if rest, ok := strings.CutPrefix(k, prefix+"["); ok && strings.HasSuffix(rest, "]") && !strings.Contains(rest, "[") {
			items = append(items, iv{strings.TrimSuffix(rest, "]"), vs})
		}
	}
	if len(items) == 0 {
		return nil, f.Has(prefix)
	}
	slices.SortFunc(items, func(a, b iv) int {
		if len(a.i) != len(b.i) {
			return len(a.i) - len(b.i)
		}
		return strings.Compare(a.i, b.i)
	})
	var out []string
	for _, it := range items {
		out = append(out, it.v...)
	}
	return out, true
}

func enumsOf(param string, vs []string, allowed ...string) *httpapi.Error {
	for _, v := range vs {
		if !slices.Contains(allowed, v) {
			return httpapi.Invalid(param, "Invalid "+param+": must be one of "+httpapi.OneOf(allowed))
		}
	}
	return nil
}

// savePortalConfig creates (c nil) or updates c.
func (s *Stripe) savePortalConfig(pc *portalConfigs, r *http.Request, c *portalConfig) (int, any) {
	f := r.Form
	params := portalConfigParams
	if c != nil {
		params = append(slices.Clone(params), "active")
	}
	if err := httpapi.CheckParams(f, params...); err != nil {
		return 0, err
	}
	if _, err := httpapi.ExpandParam(f); err != nil {
		return 0, err
	}
	md, clear, err := httpapi.MetadataParam(f, "metadata")
	if err != nil {
		return 0, err
	}
	create := c == nil
	if create {
		hasFeature := false
		for k := range f {
			hasFeature = hasFeature || strings.HasPrefix(k, "features[")
		}
		if !hasFeature {
			return 0, httpapi.Missing("features")
		}
		now := s.unix()
		c = &portalConfig{id: httpapi.NewID("bpc_", 24), active: true, created: now, cancelMode: "at_period_end",
			cancelProration: "none", updateProration: "none",
			cancelReasonOptions: []string{"too_expensive", "missing_features", "switched_service", "unused", "other"}}
	}
	n := *c // validate into a copy: a refused request changes nothing
	bools := []struct {
		param string
		to    *bool
	}{
		{"active", &n.active},
		{"features[customer_update][enabled]", &n.customerUpdate},
		{"features[invoice_history][enabled]", &n.invoiceHistory},
		{"features[payment_method_update][enabled]", &n.paymentMethodUpdate},
		{"features[subscription_cancel][enabled]", &n.cancel},
		{"features[subscription_update][enabled]", &n.update},
	}
	for _, b := range bools {
		v, ok, err := httpapi.BoolParam(f, b.param)
		if err != nil {
			return 0, err
		}
		if ok {
			*b.to = v
		}
	}
	enums := []struct {
		param   string
		to      *string
		allowed []string
	}{
		{"features[subscription_cancel][mode]", &n.cancelMode, []string{"at_period_end", "immediately"}},
		{"features[subscription_cancel][proration_behavior]", &n.cancelProration, []string{"always_invoice", "create_prorations", "none"}},
		{"features[subscription_update][proration_behavior]", &n.updateProration, []string{"always_invoice", "create_prorations", "none"}},
	}
	for _, e := range enums {
		v, err := httpapi.EnumParam(f, e.param, e.allowed...)
		if err != nil {
			return 0, err
		}
		if v != "" {
			*e.to = v
		}
	}
	if v, ok := arrayAt(f, "features[customer_update][allowed_updates]"); ok {
		if err := enumsOf("features[customer_update][allowed_updates]", v, "address", "email", "name", "phone", "shipping", "tax_id"); err != nil {
			return 0, err
		}
		n.customerAllowed = v
	}
	if v, ok := arrayAt(f, "features[subscription_update][default_allowed_updates]"); ok {
		if err := enumsOf("features[subscription_update][default_allowed_updates]", v, "price", "promotion_code", "quantity"); err != nil {
			return 0, err
		}
		n.updateAllowed = v
	}
	idx, err := httpapi.Indexes(httpapi.PrefixedForm(f, "features[subscription_update][products]", "products"), "products")
	if err != nil {
		return 0, err
	}
	if len(idx) > 0 || f.Has("features[subscription_update][products]") {
		n.updateProducts = nil
		for _, i := range idx {
			at := "features[subscription_update][products][" + strconv.Itoa(i) + "]"
			p := portalProduct{product: f.Get(at + "[product]")}
			p.prices, _ = arrayAt(f, at+"[prices]")
			switch {
			case p.product == "":
				return 0, httpapi.Missing(at + "[product]")
			case s.products[p.product] == nil:
				return 0, httpapi.NoSuch(400, "product", p.product, at+"[product]")
			case len(p.prices) == 0:
				return 0, httpapi.Missing(at + "[prices]")
			}
			for _, id := range p.prices {
				pr := s.prices[id]
				switch {
				case pr == nil:
					return 0, httpapi.NoSuch(400, "price", id, at+"[prices]")
				case pr.product != p.product:
					return 0, httpapi.Invalid(at+"[prices]", "The price `"+id+"` does not belong to the product `"+p.product+"`.")
				case pr.interval == "":
					return 0, httpapi.Invalid(at+"[prices]", "The price `"+id+"` is not a recurring price.")
				}
			}
			n.updateProducts = append(n.updateProducts, p)
		}
		if len(n.updateProducts) > 10 {
			return 0, httpapi.Invalid("features[subscription_update][products]", "You can pass at most 10 products.")
		}
	}
	if n.update && (len(n.updateProducts) == 0 || len(n.updateAllowed) == 0) {
		return 0, httpapi.Invalid("features[subscription_update]",
			"To enable subscription updates, you must provide default_allowed_updates and products.")
	}
	if f.Has("default_return_url") {
		n.returnURL = f.Get("default_return_url")
		if n.returnURL != "" {
			if msg := checkURL(n.returnURL); msg != "" {
				return 0, httpapi.Invalid("default_return_url", msg)
			}
		}
	}
	for _, b := range []struct {
		param string
		to    *string
	}{{"business_profile[headline]", &n.headline}, {"business_profile[privacy_policy_url]", &n.privacy},
		{"business_profile[terms_of_service_url]", &n.terms}} {
		if f.Has(b.param) {
			*b.to = f.Get(b.param)
		}
	}
	n.metadata = httpapi.ApplyMetadata(n.metadata, md, clear)
	n.updated = s.unix()
	*c = n
	if create {
		pc.byID[c.id] = c
		pc.order = append(pc.order, c.id)
	}
	return 200, portalConfigObj(c)
}

func (s *Stripe) listPortalConfigs(pc *portalConfigs, r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, "limit", "starting_after", "ending_before", "active", "is_default"); err != nil {
		return 0, err
	}
	if _, err := httpapi.ListExpand(f); err != nil {
		return 0, err
	}
	active, hasActive, err := httpapi.BoolParam(f, "active")
	if err != nil {
		return 0, err
	}
	isDefault, hasDefault, err := httpapi.BoolParam(f, "is_default")
	if err != nil {
		return 0, err
	}
	all := httpapi.NewestFirst(pc.order, func(id string) int64 { return pc.byID[id].created },
		func(id string) any { return portalConfigObj(pc.byID[id]) })
	l, err := httpapi.ListPage(f, "/v1/billing_portal/configurations", "configuration", all, func(e httpapi.Entry) bool {
		c := pc.byID[e.ID]
		return (!hasActive || c.active == active) && (!hasDefault || !isDefault)
	})
	if err != nil {
		return 0, err
	}
	return 200, l
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return slices.Clone(v)
}

func portalConfigObj(c *portalConfig) map[string]any {
	var products any
	if c.updateProducts != nil {
		ps := []any{}
		for _, p := range c.updateProducts {
			ps = append(ps, map[string]any{"product": p.product, "prices": slices.Clone(p.prices)})
		}
		products = ps
	}
	return map[string]any{
		"id": c.id, "object": "billing_portal.configuration", "active": c.active, "application": nil,
		"business_profile": map[string]any{"headline": null(c.headline), "privacy_policy_url": null(c.privacy),
			"terms_of_service_url": null(c.terms)},
		"created": c.created, "default_return_url": null(c.returnURL),
		"features": map[string]any{
			"customer_update":       map[string]any{"enabled": c.customerUpdate, "allowed_updates": nonNil(c.customerAllowed)},
			"invoice_history":       map[string]any{"enabled": c.invoiceHistory},
			"payment_method_update": map[string]any{"enabled": c.paymentMethodUpdate},
			"subscription_cancel": map[string]any{"enabled": c.cancel, "mode": c.cancelMode,
				"proration_behavior":  c.cancelProration,
				"cancellation_reason": map[string]any{"enabled": c.cancelReason, "options": nonNil(c.cancelReasonOptions)}},
			"subscription_update": map[string]any{"enabled": c.update, "default_allowed_updates": nonNil(c.updateAllowed),
				"products": products, "proration_behavior": c.updateProration,
				"schedule_at_period_end": map[string]any{"conditions": []any{}}},
		},
		"is_default": false, "livemode": false, "login_page": map[string]any{"enabled": false, "url": nil},
		"metadata": meta(c.metadata), "updated": c.updated,
	}
}
