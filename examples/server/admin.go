package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gobilling/billing"
)

// The admin page, for the signed-in users whose email ADMIN_EMAILS lists:
// billing's health, the numbers of the alerting rules, the members by
// status, the events applied lately, and what waits for an operator (the
// parked events and the dead-lettered changes), with buttons to replay or
// discard them. Everyone else gets the site's 404 for the page, its forms
// and /metrics, signed in or not, whatever the method: they do not tell
// they exist.

// isAdmin reports whether the request is an admin's.
func (a *app) isAdmin(ctx context.Context) bool {
	s, ok := sessionFrom(ctx)
	return ok && a.admins[s.User.Email]
}

// notFound is the site's 404 page.
func (a *app) notFound(w http.ResponseWriter, r *http.Request) {
	a.renderError(w, r, http.StatusNotFound, "Page not found",
		"There is no page at this address. It may have moved, or the link may be mistyped.")
}

// adminOnly serves h to admins, with the method given (GET also takes
// HEAD): a 404 for everyone else, a 405 to an admin for another method. A
// POST form must carry the session's CSRF token, as the site's other
// signed-in forms.
func (a *app) adminOnly(method string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.isAdmin(r.Context()) {
			a.notFound(w, r)
			return
		}
		if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			allow := method
			if method == http.MethodGet {
				allow = "GET, HEAD"
			}
			w.Header().Set("Allow", allow)
			a.renderError(w, r, http.StatusMethodNotAllowed, "Method not allowed",
				"This page cannot be used that way. Go back to the site and use its links and buttons.")
			return
		}
		if method == http.MethodPost && !a.checkForm(w, r) {
			return
		}
		h(w, r)
	})
}

// How much the admin page lists.
const (
	adminMembersLimit = 500
	adminEventsLimit  = 50
	adminParkedLimit  = 50
	adminDeadLimit    = 50
)

// adminView is the data of the admin page. A section that could not be
// read says so (the log has the error): the page is most needed when
// something is wrong.
type adminView struct {
	Offline bool
	Health  billing.Health

	// Rates are the numbers of the alerting rules, counted by this process
	// since Since.
	Rates []rateView
	Since time.Time
	Up    string

	Members []memberGroup
	// MembersMore: the site has more users than are listed.
	MembersMore bool
	MembersErr  bool

	Events []billing.ProcessedEvent
	// EventsKept is false when the store keeps no list of the events it
	// applied (it is not a billing.EventLister).
	EventsKept bool
	EventsErr  bool

	Parked     []billing.ParkedEvent
	ParkedMore bool
	ParkedErr  bool

	Dead     []billing.DeadHook
	DeadMore bool
	DeadErr  bool
}

// rateView is one alerting rule's number.
type rateView struct {
	ID, Name, Value, Detail, Rule string
	// Over: the number is past the rule's threshold (over the process's
	// life, not the rule's window).
	Over bool
}

// memberGroup is the site's users of one membership status.
type memberGroup struct {
	Status billing.Status
	Label  string
	Rows   []memberRow
}

type memberRow struct {
	Email    string
	Plan     string
	Failed   int
	Credits  int64
	Until    time.Time
	UntilWhy string
}

// statusOrder is the order of the members' groups: who has access, who is
// at risk, who has none.
var statusOrder = []billing.Status{
	billing.StatusActive, billing.StatusTrialing, billing.StatusPastDue, billing.StatusPaused,
	billing.StatusPending, billing.StatusCanceled, billing.StatusNone,
}

func (a *app) adminPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	v := adminView{Offline: a.offline != nil, Health: a.b.Health(ctx), Since: a.metrics.started,
		Up: time.Since(a.metrics.started).Round(time.Second).String()}
	v.Rates = a.alertRates()
	v.Members, v.MembersMore, v.MembersErr = a.membersByStatus(ctx)

	events, err := a.b.RecentEvents(ctx, adminEventsLimit)
	switch {
	case errors.Is(err, billing.ErrNotFound):
	case err != nil:
		a.log.Error("admin: list recent events", "error", err.Error())
		v.EventsKept, v.EventsErr = true, true
	default:
		v.Events, v.EventsKept = events, true
	}

	parked, next, err := a.b.ParkedEvents(ctx, "", adminParkedLimit)
	if err != nil {
		a.log.Error("admin: list parked events", "error", err.Error())
		v.ParkedErr = true
	}
	v.Parked, v.ParkedMore = parked, next != ""

	dead, next, err := a.b.DeadHooks(ctx, "", adminDeadLimit)
	if err != nil {
		a.log.Error("admin: list dead-lettered changes", "error", err.Error())
		v.DeadErr = true
	}
	v.Dead, v.DeadMore = dead, next != ""
	a.render(w, r, http.StatusOK, "admin", "Admin", v)
}

// membersByStatus reads the membership of each of the site's users (the
// first adminMembersLimit to sign up) and groups them by status. One read
// per user is fine for a small site; a large one would count in SQL, or
// page.
func (a *app) membersByStatus(ctx context.Context) (groups []memberGroup, more, failed bool) {
	us, err := a.users.list(ctx, adminMembersLimit+1)
	if err != nil {
		a.log.Error("admin: list users", "error", err.Error())
		return nil, false, true
	}
	if len(us) > adminMembersLimit {
		us, more = us[:adminMembersLimit], true
	}
	byStatus := make(map[billing.Status][]memberRow)
	for _, u := range us {
		m, err := a.b.Membership(ctx, u.ID)
		if err != nil {
			a.log.Error("admin: read a membership", "user", u.ID, "error", err.Error())
			return nil, false, true
		}
		row := memberRow{Email: u.Email, Failed: m.FailedAttempts, Credits: m.Credits}
		if p, ok := a.planByPrice(m.PriceID); ok && p.Tier != "" {
			row.Plan = p.Name + ", " + p.Period()
		} else if m.Tier != "" {
			row.Plan = m.Tier
		}
		switch {
		case !m.CancelAt.IsZero():
			row.Until, row.UntilWhy = m.CancelAt, "cancels"
		case m.Status == billing.StatusTrialing:
			row.Until, row.UntilWhy = m.TrialEnd, "trial ends"
		case m.Status == billing.StatusActive:
			row.Until, row.UntilWhy = m.CurrentPeriodEnd, "renews"
		}
		byStatus[m.Status] = append(byStatus[m.Status], row)
	}
	for _, st := range statusOrder {
		if rows := byStatus[st]; len(rows) > 0 {
			groups = append(groups, memberGroup{Status: st, Label: statusLabels[st], Rows: rows})
		}
	}
	return groups, more, false
}

// alertRates are the numbers the four alerting rules of
// deploy/prometheus/billing.rules.yml watch, read from the site's own
// registry. Its counters count from the process's start: this page has no
// history to take the rules' windows (15 minutes, 24 hours, a week) from,
// and counts this replica only; Prometheus, scraping every replica, does
// both.
func (a *app) alertRates() []rateView {
	m := a.metrics
	deliveries := m.counters("billing_webhook_deliveries_total", "billing_outcome")
	payments := m.counters("billing_invoice_payments_total", "billing_result")
	activated := m.counters("billing_subscriptions_activated_total", "")[""]
	canceled := m.counters("billing_subscriptions_canceled_total", "")[""]

	failures := rateView{ID: "rate-webhook-failures", Name: "Webhook deliveries that failed (answered 500)",
		Rule: "Alert BillingWebhookFailureRate: above 1% over 15 minutes, for 15 minutes."}
	failures.Value, failures.Detail, failures.Over = percent(deliveries["failed"], deliveries[""], "deliveries", 0.01)

	subs := rateView{ID: "rate-new-subscriptions", Name: "New subscriptions",
		Value: fmt.Sprint(activated), Detail: "subscriptions that became live with access",
		Rule: "Alert BillingNoNewSubscriptions: none in 24 hours."}

	failed := rateView{ID: "rate-failed-payments", Name: "Invoice payment attempts that failed",
		Rule: "Alert BillingFailedPaymentsHigh: above 15% over 24 hours."}
	failed.Value, failed.Detail, failed.Over = percent(payments["failed"], payments[""], "payment attempts", 0.15)

	cancels := rateView{ID: "rate-cancellations", Name: "Cancellations",
		Value: fmt.Sprint(canceled), Detail: "subscriptions that ended",
		Rule: "Alert BillingCancellationSpike: a day's cancellations above 3 and above twice the week's daily average."}
	return []rateView{failures, subs, failed, cancels}
}

// percent is part/total as a percentage, a detail saying of what, and
// whether it is above threshold; "none yet" without a total.
func percent(part, total float64, what string, threshold float64) (value, detail string, over bool) {
	if total == 0 {
		return "none yet", "no " + what + " yet", false
	}
	return fmt.Sprintf("%.1f%%", 100*part/total), fmt.Sprintf("%v of %v %s", part, total, what), part/total > threshold
}

// adminLog logs what an admin did.
func (a *app) adminLog(r *http.Request, msg string, args ...any) {
	s, _ := sessionFrom(r.Context())
	a.log.Info("admin: "+msg, append([]any{"admin", s.User.ID}, args...)...)
}

// adminReplay replays a parked event (once its customer is linked to a
// user, it applies).
func (a *app) adminReplay(w http.ResponseWriter, r *http.Request) {
	id := r.PostFormValue("event")
	out, err := a.b.Replay(r.Context(), id)
	if errors.Is(err, billing.ErrNotParked) || errors.Is(err, billing.ErrInvalidArgument) {
		a.renderError(w, r, http.StatusNotFound, "Not parked", "There is no such parked event: it may have been replayed or discarded meanwhile.")
		return
	}
	if err != nil {
		a.billingUnavailable(w, r, "replay a parked event", err)
		return
	}
	a.adminLog(r, "replayed a parked event", "event", id, "outcome", out.String())
	msg := "replayed"
	if out == billing.OutcomeParked {
		msg = "still-parked"
	}
	http.Redirect(w, r, "/admin?msg="+msg+"#parked", http.StatusSeeOther)
}

// adminDiscard drops a parked event.
func (a *app) adminDiscard(w http.ResponseWriter, r *http.Request) {
	id := r.PostFormValue("event")
	err := a.b.Discard(r.Context(), id)
	if errors.Is(err, billing.ErrNotParked) || errors.Is(err, billing.ErrInvalidArgument) {
		a.renderError(w, r, http.StatusNotFound, "Not parked", "There is no such parked event: it may have been replayed or discarded meanwhile.")
		return
	}
	if err != nil {
		a.billingUnavailable(w, r, "discard a parked event", err)
		return
	}
	a.adminLog(r, "discarded a parked event", "event", id)
	http.Redirect(w, r, "/admin?msg=discarded#parked", http.StatusSeeOther)
}

// adminReplayHook makes a dead-lettered change due again: RunHooks (with
// Stripe) or the dispatch after this request (offline) delivers it.
func (a *app) adminReplayHook(w http.ResponseWriter, r *http.Request) {
	key := r.PostFormValue("key")
	if !a.deadHookFound(w, r, a.b.ReplayHook(r.Context(), key), "replay a dead-lettered change") {
		return
	}
	a.adminLog(r, "replayed a dead-lettered change", "key", key)
	http.Redirect(w, r, "/admin?msg=hook-replayed#dead", http.StatusSeeOther)
}

// adminDiscardHook drops a dead-lettered change.
func (a *app) adminDiscardHook(w http.ResponseWriter, r *http.Request) {
	key := r.PostFormValue("key")
	if !a.deadHookFound(w, r, a.b.DiscardHook(r.Context(), key), "discard a dead-lettered change") {
		return
	}
	a.adminLog(r, "discarded a dead-lettered change", "key", key)
	http.Redirect(w, r, "/admin?msg=hook-discarded#dead", http.StatusSeeOther)
}

// deadHookFound answers a failed ReplayHook or DiscardHook, and reports
// whether it succeeded.
func (a *app) deadHookFound(w http.ResponseWriter, r *http.Request, err error, what string) bool {
	switch {
	case err == nil:
		return true
	case errors.Is(err, billing.ErrNotFound):
		a.renderError(w, r, http.StatusNotFound, "Not dead-lettered",
			"There is no such dead-lettered change: it may have been replayed or discarded meanwhile.")
	default:
		a.billingUnavailable(w, r, what, err)
	}
	return false
}
