package billingtest

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/gobilling/billing/billingtest/internal/httpapi"
)

// Subscription schedules: phases of items that follow each other at the
// subscription's period ends, as the portal's "at period end" plan switch
// uses one (a downgrade at the end of the period).

type schedItem struct {
	priceID  string
	quantity int64
}

type schedPhase struct {
	start, end int64
	items      []schedItem
	proration  string
}

type schedule struct {
	id, customer, subscription, status, endBehavior string
	phases                                          []schedPhase
	metadata                                        map[string]string
	created, releasedAt, canceledAt, completedAt    int64
	releasedSub                                     string
}

func (s *Stripe) scheduleObj(sc *schedule) map[string]any {
	phases := make([]any, 0, len(sc.phases))
	var current any
	now := s.unix()
	for _, p := range sc.phases {
		items := make([]any, 0, len(p.items))
		for _, it := range p.items {
			items = append(items, map[string]any{"discounts": []any{}, "metadata": map[string]string{},
				"price": it.priceID, "quantity": it.quantity, "tax_rates": []any{}})
		}
		phases = append(phases, map[string]any{
			"add_invoice_items": []any{}, "application_fee_percent": nil,
			"automatic_tax":        map[string]any{"enabled": false, "disabled_reason": nil, "liability": nil},
			"billing_cycle_anchor": nil, "collection_method": nil,
			"currency": s.currency(p.items[0].priceID), "default_payment_method": nil, "default_tax_rates": []any{},
			"description": nil, "discounts": []any{}, "end_date": p.end, "invoice_settings": nil, "items": items,
			"metadata": map[string]string{}, "on_behalf_of": nil, "proration_behavior": p.proration,
			"start_date": p.start, "transfer_data": nil, "trial_end": nil,
		})
		if sc.status == "active" && p.start <= now && now < p.end {
			current = map[string]any{"start_date": p.start, "end_date": p.end}
		}
	}
	return map[string]any{
		"id": sc.id, "object": "subscription_schedule", "application": nil, "canceled_at": null(sc.canceledAt),
		"completed_at": null(sc.completedAt), "created": sc.created, "current_phase": current,
		"customer": sc.customer,
		"default_settings": map[string]any{
			"application_fee_percent": nil,
			"automatic_tax":           map[string]any{"enabled": false, "disabled_reason": nil, "liability": nil},
			"billing_cycle_anchor":    "automatic", "collection_method": "charge_automatically",
			"default_payment_method": nil, "description": nil,
			"invoice_settings": map[string]any{"account_tax_ids": nil, "days_until_due": nil,
				"issuer": map[string]any{"type": "self"}},
			"on_behalf_of": nil, "transfer_data": nil,
		},
		"end_behavior": sc.endBehavior, "livemode": false, "metadata": meta(sc.metadata), "phases": phases,
		"released_at": null(sc.releasedAt), "released_subscription": null(sc.releasedSub),
		"status": sc.status, "subscription": null(sc.subscription), "test_clock": nil,
	}
}

// createSchedule answers POST /v1/subscription_schedules with
// from_subscription: a schedule whose one phase is the subscription's
// current period and items, ending in release.
func (s *Stripe) createSchedule(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, "from_subscription", "customer", "phases", "start_date", "end_behavior",
		"metadata", "metadata[*]"); err != nil {
		return 0, err
	}
	if _, err := httpapi.ExpandParam(f); err != nil {
		return 0, err
	}
	if f.Get("from_subscription") == "" {
		return 0, httpapi.NotModelled("customer", "a schedule that creates a subscription (customer, phases, start_date); "+
			"billingtest makes schedules from_subscription only")
	}
	for _, k := range []string{"customer", "phases", "start_date", "end_behavior"} {
		if f.Has(k) {
			return 0, httpapi.Invalid(k, "You cannot set `"+k+"` when creating a schedule from_subscription.")
		}
	}
	id := f.Get("from_subscription")
	sub := s.subs[id]
	if sub == nil {
		return 0, httpapi.NoSuch(400, "subscription", id, "from_subscription")
	}
	if sub.ended() {
		return 0, httpapi.Invalid("from_subscription", "You cannot attach a schedule to a canceled subscription.")
	}
	if sub.schedule != "" {
		return 0, httpapi.Invalid("from_subscription", "The subscription "+id+" is already attached to a schedule ("+sub.schedule+").")
	}
	md, _, err := httpapi.MetadataParam(f, "metadata")
	if err != nil {
		return 0, err
	}
	st := s.step(true)
	sc := &schedule{id: httpapi.NewID("sub_sched_", 24), customer: sub.customer, subscription: sub.id, status: "active",
		endBehavior: "release", metadata: httpapi.ApplyMetadata(nil, md, false), created: st.t}
	phase := schedPhase{start: sub.items[0].periodStart, end: sub.items[0].periodEnd, proration: "create_prorations"}
	for _, it := range sub.items {
		phase.items = append(phase.items, schedItem{priceID: it.priceID, quantity: it.quantity})
	}
	sc.phases = []schedPhase{phase}
	s.schedules[sc.id] = sc
	st.emit("subscription_schedule.created", s.scheduleObj(sc), nil)
	st.updateSub(sub, func() { sub.schedule = sc.id })
	return 200, s.scheduleObj(sc)
}

func (s *Stripe) scheduleOf(r *http.Request) (*schedule, *httpapi.Error) {
	id := r.PathValue("id")
	sc := s.schedules[id]
	if sc == nil {
		return nil, httpapi.NoSuch(404, "subscription_schedule", id, "id")
	}
	return sc, nil
}

func (s *Stripe) getSchedule(r *http.Request) (int, any) {
	if err := httpapi.CheckParams(r.Form); err != nil {
		return 0, err
	}
	if _, err := httpapi.ExpandParam(r.Form); err != nil {
		return 0, err
	}
	sc, err := s.scheduleOf(r)
	if err != nil {
		return 0, err
	}
	return 200, s.scheduleObj(sc)
}

// updateSchedule replaces an active schedule's phases (phases[i][items]
// [j][price|quantity], phases[i][start_date] and end_date or iterations,
// phases[i][proration_behavior]) and its end_behavior (release or cancel):
// subscription_schedule.updated. The first phase must start where the
// current one does; each next one where the previous ends, at a period
// end of the subscription.
func (s *Stripe) updateSchedule(r *http.Request) (int, any) {
	f := r.Form
	if err := httpapi.CheckParams(f, "phases[#][items][#][price]", "phases[#][items][#][quantity]", "phases[#][start_date]",
		"phases[#][end_date]", "phases[#][iterations]", "phases[#][proration_behavior]", "end_behavior",
		"proration_behavior", "metadata", "metadata[*]"); err != nil {
		return 0, err
	}
	if _, err := httpapi.ExpandParam(f); err != nil {
		return 0, err
	}
	sc, apiErr := s.scheduleOf(r)
	if apiErr != nil {
		return 0, apiErr
	}
	if sc.status != "active" {
		return 0, httpapi.BadRequest("You cannot update a subscription schedule that is " + sc.status + ".")
	}
	end, apiErr := httpapi.EnumParam(f, "end_behavior", "release", "cancel")
	if apiErr != nil {
		return 0, apiErr
	}
	if _, err := httpapi.EnumParam(f, "proration_behavior", "always_invoice", "create_prorations", "none"); err != nil {
		return 0, err
	}
	md, clearMD, apiErr := httpapi.MetadataParam(f, "metadata")
	if apiErr != nil {
		return 0, apiErr
	}
	sub := s.subs[sc.subscription]
	idx, apiErr := httpapi.Indexes(f, "phases")
	if apiErr != nil {
		return 0, apiErr
	}
	var phases []schedPhase
	for n, i := range idx {
		p, err := s.phaseParam(f, i, sub, phases, sc)
		if err != nil {
			return 0, err
		}
		if i != n {
			return 0, httpapi.Invalid(fmt.Sprintf("phases[%d]", i), "Phases must be numbered from 0 without gaps.")
		}
		phases = append(phases, p)
	}
	st := s.step(true)
	before := s.scheduleObj(sc)
	if len(phases) > 0 {
		sc.phases = phases
	}
	if end != "" {
		sc.endBehavior = end
	}
	if md != nil || clearMD {
		sc.metadata = httpapi.ApplyMetadata(sc.metadata, md, clearMD)
	}
	after := s.scheduleObj(sc)
	if prev := changed(before, after); len(prev) > 0 {
		st.emit("subscription_schedule.updated", after, prev)
	}
	s.scheduleCancelAt(st, sub, sc)
	return 200, after
}

// phaseParam reads phase i of an update.
func (s *Stripe) phaseParam(f map[string][]string, i int, sub *subscription, prev []schedPhase, sc *schedule) (schedPhase, *httpapi.Error) {
	key := func(name string) string { return fmt.Sprintf("phases[%d][%s]", i, name) }
	p := schedPhase{proration: "create_prorations"}
	if v := get(f, key("proration_behavior")); v != "" {
		switch v {
		case "always_invoice", "create_prorations", "none":
			p.proration = v
		default:
			return p, httpapi.Invalid(key("proration_behavior"), "Invalid proration_behavior: must be one of always_invoice, create_prorations, or none")
		}
	}
	// Start: the current phase's for the first, the previous end after.
	p.start = sc.phases[0].start
	if len(prev) > 0 {
		p.start = prev[len(prev)-1].end
	}
	if v := get(f, key("start_date")); v != "" && v != "now" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n != p.start {
			return p, httpapi.Invalid(key("start_date"), fmt.Sprintf("Phase %d must start at %d, where the one before ends (or the current phase starts).", i, p.start))
		}
	}
	items := httpapi.PrefixedForm(f, fmt.Sprintf("phases[%d][items]", i), "items")
	idx, err := httpapi.Indexes(items, "items")
	if err != nil {
		return p, err
	}
	if len(idx) == 0 {
		return p, httpapi.Missing(key("items"))
	}
	for _, j := range idx {
		pid := items.Get(fmt.Sprintf("items[%d][price]", j))
		pr := s.prices[pid]
		switch {
		case pid == "":
			return p, httpapi.Missing(fmt.Sprintf("phases[%d][items][%d][price]", i, j))
		case pr == nil:
			return p, httpapi.NoSuch(400, "price", pid, fmt.Sprintf("phases[%d][items][%d][price]", i, j))
		case pr.interval == "":
			return p, httpapi.Invalid(fmt.Sprintf("phases[%d][items][%d][price]", i, j), "A phase's items need recurring prices.")
		}
		q := int64(1)
		if v := items.Get(fmt.Sprintf("items[%d][quantity]", j)); v != "" {
			n, perr := strconv.ParseInt(v, 10, 64)
			if perr != nil || n < 1 {
				return p, httpapi.InvalidInteger(fmt.Sprintf("phases[%d][items][%d][quantity]", i, j), "This value must be greater than or equal to 1.")
			}
			q = n
		}
		p.items = append(p.items, schedItem{priceID: pid, quantity: q})
	}
	// End: end_date, or iterations periods of the subscription (1).
	iterations := int64(1)
	if v := get(f, key("iterations")); v != "" {
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil || n < 1 {
			return p, httpapi.InvalidInteger(key("iterations"), "This value must be greater than or equal to 1.")
		}
		iterations = n
	}
	p.end = p.start
	it := &subItem{priceID: p.items[0].priceID}
	for range iterations {
		p.end = s.periodEndAfter(sub, it, p.end)
	}
	if v := get(f, key("end_date")); v != "" {
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil || n <= p.start {
			return p, httpapi.Invalid(key("end_date"), "end_date must be after the phase's start.")
		}
		p.end = n
	}
	return p, nil
}

func get(f map[string][]string, k string) string {
	if v := f[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// scheduleCancelAt makes a schedule ending in cancel cancel the
// subscription at its last phase's end.
func (s *Stripe) scheduleCancelAt(st *step, sub *subscription, sc *schedule) {
	if sc.endBehavior != "cancel" || sub == nil || sub.ended() {
		return
	}
	end := sc.phases[len(sc.phases)-1].end
	if sub.cancelAt != end {
		st.updateSub(sub, func() { sub.scheduleCancel(st.t, false, end) })
	}
}

// releaseSchedule answers POST /v1/subscription_schedules/{id}/release:
// the subscription goes on with its current items, without the schedule
// (subscription_schedule.released, customer.subscription.updated).
func (s *Stripe) releaseSchedule(r *http.Request) (int, any) {
	if err := httpapi.CheckParams(r.Form, "preserve_cancel_date"); err != nil {
		return 0, err
	}
	sc, err := s.scheduleOf(r)
	if err != nil {
		return 0, err
	}
	if sc.status != "active" {
		return 0, httpapi.BadRequest("You cannot release a subscription schedule that is " + sc.status + ".")
	}
	st := s.step(true)
	st.release(sc)
	return 200, s.scheduleObj(sc)
}

func (st *step) release(sc *schedule) {
	s := st.s
	sub := s.subs[sc.subscription]
	sc.status, sc.releasedAt, sc.releasedSub, sc.subscription = "released", st.t, sc.subscription, ""
	st.emit("subscription_schedule.released", s.scheduleObj(sc), nil)
	if sub != nil {
		st.updateSub(sub, func() { sub.schedule = "" })
	}
}

// cancelSchedule answers POST /v1/subscription_schedules/{id}/cancel: the
// subscription is canceled now (customer.subscription.deleted,
// subscription_schedule.canceled).
func (s *Stripe) cancelSchedule(r *http.Request) (int, any) {
	if err := httpapi.CheckParams(r.Form, "invoice_now", "prorate"); err != nil {
		return 0, err
	}
	sc, err := s.scheduleOf(r)
	if err != nil {
		return 0, err
	}
	if sc.status != "active" {
		return 0, httpapi.BadRequest("You cannot cancel a subscription schedule that is " + sc.status + ".")
	}
	st := s.step(true)
	if sub := s.subs[sc.subscription]; sub != nil && !sub.ended() {
		st.cancelNow(sub)
	}
	sc.status, sc.canceledAt = "canceled", st.t
	st.emit("subscription_schedule.canceled", s.scheduleObj(sc), nil)
	return 200, s.scheduleObj(sc)
}

// schedulePhaseAt applies, in a renewal at periodEnd, the phase of the
// subscription's schedule that starts then: its items replace the
// subscription's (no prorations: it is a period's start). It returns the
// schedule when a phase began or the last one ended, for phaseChanged.
func (s *Stripe) schedulePhaseAt(sub *subscription, periodEnd int64) *schedule {
	sc := s.schedules[sub.schedule]
	if sc == nil || sc.status != "active" {
		return nil
	}
	for _, p := range sc.phases {
		if p.start != periodEnd {
			continue
		}
		sub.items = sub.items[:min(len(sub.items), len(p.items))]
		for i, it := range p.items {
			if i < len(sub.items) {
				sub.items[i].priceID, sub.items[i].quantity = it.priceID, it.quantity
			}
		}
		return sc
	}
	if sc.phases[len(sc.phases)-1].end == periodEnd {
		return sc
	}
	return nil
}

// phaseChanged emits what a schedule does after a renewal moved it on:
// subscription_schedule.updated for a new phase; at the last phase's end,
// release (subscription_schedule.released) as end_behavior release says.
func (st *step) phaseChanged(sc *schedule, periodEnd int64) {
	if sc.phases[len(sc.phases)-1].end == periodEnd {
		if sc.endBehavior == "release" {
			st.release(sc)
		}
		return
	}
	st.emit("subscription_schedule.updated", st.s.scheduleObj(sc), nil)
}
