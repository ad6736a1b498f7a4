package main

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gobilling/billing"
)

// The dev panel exists in offline mode only, for signed-in users. The
// offline Stripe's clock starts at the real time and ticks in real time;
// the panel moves it forward, and the offline Stripe does meanwhile what
// Stripe would do: renewals, failed payments retried 1, 3, 5 and 7 days
// after the first attempt, scheduled cancellations. Its webhooks reach the
// site's own handler; each move waits for them (Flush) so that the next
// page shows the outcome. The mailbox lists the emails the site sent
// meanwhile.

// devBar is the strip at the top of every page in offline mode.
type devBar struct {
	Now     time.Time
	Next    time.Time
	HasNext bool
	// Return is where the buttons come back to: the current page.
	Return string
}

func (a *app) devBar(r *http.Request) *devBar {
	b := &devBar{Now: a.offline.Now(), Return: "/dev"}
	b.Next, b.HasNext = a.offline.NextEvent()
	if r.Method == http.MethodGet {
		back := *r.URL
		q := back.Query()
		q.Del("msg") // a one-time message is not shown again
		back.RawQuery = q.Encode()
		b.Return = back.RequestURI()
	}
	return b
}

// Steps of the clock.
const (
	day   = 24 * time.Hour
	month = 31 * day
)

// devAdvance moves the offline Stripe's clock: a day, 31 days, or to the
// next scheduled action.
func (a *app) devAdvance(w http.ResponseWriter, r *http.Request) {
	back := safePath(r.PostFormValue("return"))
	if back == "" {
		back = "/dev"
	}
	var d time.Duration
	switch r.PostFormValue("step") {
	case "day":
		d = day
	case "month":
		d = month
	case "next":
		next, ok := a.offline.NextEvent()
		if !ok {
			http.Redirect(w, r, withMsg(back, "nothing-scheduled"), http.StatusSeeOther)
			return
		}
		d = max(next.Sub(a.offline.Now()), 0)
	default:
		a.renderError(w, r, http.StatusBadRequest, "Unknown step", "Move the clock by a day, a month, or to the next scheduled action.")
		return
	}
	a.offline.Advance(d)
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	if err := a.offline.Flush(ctx); err != nil {
		a.log.Error("deliver the offline Stripe's webhooks", "error", err.Error())
		a.renderError(w, r, http.StatusInternalServerError, "Webhooks pending",
			"The clock moved, but some webhooks are still being delivered. Reload in a moment.")
		return
	}
	a.log.Info("offline Stripe clock moved", "by", d.String(), "now", a.offline.Now().UTC().Format(time.RFC3339))
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// withMsg adds ?msg=key (or &msg=key) to a local path.
func withMsg(path, key string) string {
	if strings.Contains(path, "?") {
		return path + "&msg=" + key
	}
	return path + "?msg=" + key
}

// devEvent is a row of the panel's event list.
type devEvent struct {
	ID, Type  string
	Created   time.Time
	Delivered string
}

type devView struct {
	Events []devEvent
	Parked []billing.ParkedEvent
}

// devPanel shows the offline Stripe's latest events, how their delivery to
// the site's webhook handler went, and billing's parked events.
func (a *app) devPanel(w http.ResponseWriter, r *http.Request) {
	delivered := make(map[string]string)
	for _, d := range a.offline.Deliveries() {
		switch {
		case d.Succeeded:
			delivered[d.EventID] = "delivered"
		case d.GaveUp:
			delivered[d.EventID] = "failed: " + d.Err
		default:
			delivered[d.EventID] = "pending"
		}
	}
	var v devView
	events := a.offline.Events()[a.offlineSetup:] // not the site's own products
	for _, e := range slices.Backward(events[max(len(events)-30, 0):]) {
		v.Events = append(v.Events, devEvent{ID: e.ID, Type: e.Type, Created: time.Unix(e.Created, 0), Delivered: delivered[e.ID]})
	}
	parked, _, err := a.b.ParkedEvents(r.Context(), "", 50)
	if err != nil {
		a.billingUnavailable(w, r, "list parked events", err)
		return
	}
	v.Parked = parked
	a.render(w, r, http.StatusOK, "dev", "Dev panel", v)
}

// devReplay replays a parked event (billing.Replay): once its customer is
// linked to a user, it applies.
func (a *app) devReplay(w http.ResponseWriter, r *http.Request) {
	out, err := a.b.Replay(r.Context(), r.PostFormValue("event"))
	if errors.Is(err, billing.ErrNotParked) {
		a.renderError(w, r, http.StatusNotFound, "Not parked", "There is no such parked event.")
		return
	}
	if err != nil {
		a.billingUnavailable(w, r, "replay a parked event", err)
		return
	}
	msg := "replayed"
	if out == billing.OutcomeParked {
		msg = "still-parked"
	}
	http.Redirect(w, r, "/dev?msg="+msg, http.StatusSeeOther)
}

// devMaintain runs one round of billing's maintenance (MaintainOnce):
// CatchUp over the last 72 hours of the offline Stripe's events, then
// pruning. Offline, the site does not run Maintain beside the server: its
// waits would move the offline Stripe's clock (see ops.go). MaintainOnce
// only reads the clock; it logs its counts.
func (a *app) devMaintain(w http.ResponseWriter, r *http.Request) {
	if _, err := a.b.MaintainOnce(r.Context(), billing.MaintenanceOptions{}); err != nil {
		a.billingUnavailable(w, r, "run maintenance", err)
		return
	}
	http.Redirect(w, r, "/dev?msg=maintained", http.StatusSeeOther)
}

// mailboxLimit is how many emails the mailbox page lists.
const mailboxLimit = 200

type mailboxView struct {
	Emails []email
	// More: older emails are not listed.
	More bool
}

// devMailbox lists the emails the site sent (mailbox.go), newest first:
// the site sends none in offline mode, it keeps them for this page.
func (a *app) devMailbox(w http.ResponseWriter, r *http.Request) {
	emails, err := a.mail.list(r.Context(), mailboxLimit+1)
	if err != nil {
		a.billingUnavailable(w, r, "list emails", err)
		return
	}
	v := mailboxView{Emails: emails}
	if len(emails) > mailboxLimit {
		v.Emails, v.More = emails[:mailboxLimit], true
	}
	a.render(w, r, http.StatusOK, "mailbox", "Mailbox", v)
}
