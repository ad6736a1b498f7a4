package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
)

// The operations on the app's billing data: sync, catchup, parked,
// hooks, members, prune.

// table writes aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) { fmt.Fprintln(t.tw, strings.Join(cells, "\t")) }
func (t *table) flush()              { _ = t.tw.Flush() }

// ---- sync ----

func (a *app) syncCmd() *cobra.Command {
	var o appOpts
	var restart bool
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Bring every subscription in the app's database up to date from Stripe",
		Long: `sync reads every subscription of the Stripe account, of every status, 100
per request with its latest invoice, and writes each into the app's
database through billing's conditional write (Billing.SyncAll): whatever
webhooks were missed, every linked user's membership is Stripe's
afterwards. N subscriptions cost ⌈N/100⌉ requests, plus one for each
subscription whose stored state is as new as its page.

It keeps a checkpoint in the database after each page: an interrupted sync
(Ctrl-C, Stripe or the database failing) resumes where it stopped the next
time; --restart starts over. Subscriptions of customers no user is linked
to are counted and left alone (billing parked link links one).

Run it daily from a cron, as the reference guide's sync. It needs the
app's plans file, STRIPE_SECRET_KEY (or --key-file) and DATABASE_URL.`,
		Example: `  billing sync
  billing sync --json --restart`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runSync(cmd.Context(), o, restart) },
	}
	o.flags(cmd)
	cmd.Flags().BoolVar(&restart, "restart", false, "ignore the checkpoint of an interrupted sync and start from the first page")
	return cmd
}

func (a *app) runSync(ctx context.Context, o appOpts, restart bool) error {
	b, _, closeDB, err := a.openBilling(ctx, o, true)
	if err != nil {
		return err
	}
	defer closeDB()
	opts := billing.SyncAllOptions{Restart: restart}
	var bar *progressbar.ProgressBar
	if !a.json && terminal(a.io.err) {
		// Stripe does not say how many there are: a counter, not a bar.
		bar = progressbar.NewOptions(-1, progressbar.OptionSetWriter(a.io.err), progressbar.OptionSetDescription("syncing subscriptions"),
			progressbar.OptionShowCount(), progressbar.OptionSetItsString("subscriptions"), progressbar.OptionShowIts(),
			progressbar.OptionEnableColorCodes(a.colour(a.io.err)), progressbar.OptionClearOnFinish(),
			// Its spinner's own goroutine reads the bar's state without
			// its lock (a data race in v3.19.1): the spinner turns on
			// each page instead.
			progressbar.OptionSetSpinnerChangeInterval(0))
		opts.Progress = func(r billing.SyncReport) { _ = bar.Set(r.Seen) }
	}
	rep, err := b.SyncAll(ctx, opts)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		err = fmt.Errorf("%w (run billing sync again: it resumes after the last page done)", err)
	}
	if a.json {
		return a.printJSONResult(map[string]any{"report": rep, "error": errString(err)}, err)
	}
	if rep.ResumedAfter != "" {
		fmt.Fprintf(a.io.out, "Resumed after %s (the checkpoint of an interrupted sync).\n", rep.ResumedAfter)
	}
	fmt.Fprintf(a.io.out, "%d subscription(s) in %d page(s): %d stored (%d fetched alone), %d of customers no user is linked to, %d unstorable; %d list request(s).\n",
		rep.Seen, rep.Pages, rep.Stored, rep.Refetched, rep.Unlinked, rep.Unstorable, rep.Calls)
	if rep.Done {
		fmt.Fprintln(a.io.out, a.green(a.io.out, "Done."))
	}
	return err
}

// printJSONResult prints v as the run's one JSON document and returns
// err: run then prints no second document for it.
func (a *app) printJSONResult(v any, err error) error {
	if perr := a.printJSON(v); perr != nil {
		return perr
	}
	if err != nil {
		a.json = false // stdout holds the one document already
	}
	return err
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// ---- catchup ----

func (a *app) catchupCmd() *cobra.Command {
	var o appOpts
	var since string
	cmd := &cobra.Command{
		Use:   "catchup",
		Short: "Apply the webhook events Stripe sent since a time that the app missed",
		Long: `catchup lists Stripe's events of the types billing applies created since
--since and applies each as the webhook handler would (Billing.CatchUp):
the ones already applied cost nothing, the missed ones are applied now,
those of customers no user is linked to are parked. Stripe keeps 30 days
of events. Run it after an outage, with --since a little before it began.

Exit codes: 0 done, 1 an event failed (the next run retries it) or a
failure, 2 usage.`,
		Example: `  billing catchup --since 48h
  billing catchup --since 2026-12-01T08:00:00Z --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runCatchUp(cmd.Context(), o, since) },
	}
	o.flags(cmd)
	cmd.Flags().StringVar(&since, "since", "", "how far back: a duration (72h, 3d) or a time (RFC 3339, or 2006-01-02)")
	return cmd
}

// parseSince reads --since: a duration back from now, or a time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, usagef("--since is needed: a duration (72h, 3d) or a time (RFC 3339)")
	}
	if d, err := billingtest.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, usagef("--since %q: want a positive duration", s)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			if t.After(now) {
				return time.Time{}, usagef("--since %q is in the future", s)
			}
			return t, nil
		}
	}
	return time.Time{}, usagef("--since %q: want a duration (72h, 3d) or a time (RFC 3339, or 2006-01-02)", s)
}

func (a *app) runCatchUp(ctx context.Context, o appOpts, sinceFlag string) error {
	since, err := parseSince(sinceFlag, time.Now())
	if err != nil {
		return err
	}
	b, _, closeDB, err := a.openBilling(ctx, o, true)
	if err != nil {
		return err
	}
	defer closeDB()
	if time.Since(since) > 30*24*time.Hour {
		fmt.Fprintln(a.io.err, "Note: Stripe keeps 30 days of events; older ones cannot be caught up (billing sync brings subscriptions up to date).")
	}
	rep, err := b.CatchUp(ctx, since)
	if a.json {
		return a.printJSONResult(map[string]any{"since": since.UTC(), "report": rep, "error": errString(err)}, err)
	}
	fmt.Fprintf(a.io.out, "Since %s: %d event(s) seen, %d applied now (missed), %d applied before, %d parked, %d of the other mode skipped, %d failed.\n",
		since.UTC().Format(time.RFC3339), rep.Seen, rep.Applied, rep.Duplicates, rep.Parked, rep.Skipped, rep.Failed)
	if rep.Parked > 0 {
		fmt.Fprintln(a.io.out, "Parked events wait for a linked user: billing parked list, then billing parked link USER CUSTOMER.")
	}
	return err
}

// ---- parked ----

func (a *app) parkedCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "parked",
		Short: "List, show, replay, link or discard the events billing parked",
		Long: `billing parks a verified event it cannot apply (its customer is linked to
no user: made in the Dashboard, say) instead of dropping it. These commands
are the operator's side:

  billing parked list [--limit N] [--cursor C]   oldest first
  billing parked show EVENT                      one event, payload included
  billing parked replay EVENT                    apply it again (needs the key)
  billing parked link USER CUSTOMER              link the customer to the user,
                                                 then replay its parked events
  billing parked discard EVENT                   drop it`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(a.io.err)
			_ = cmd.Help()
			return usagef("a parked command is needed: list, show, replay, link or discard")
		},
	}
	var lo appOpts
	var limit int
	var cursor string
	list := &cobra.Command{Use: "list", Short: "List the parked events, oldest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runParkedList(cmd.Context(), lo, cursor, limit) }}
	lo.flags(list)
	list.Flags().IntVar(&limit, "limit", billing.DefaultParkedPage, "the most events listed")
	list.Flags().StringVar(&cursor, "cursor", "", "list after this cursor (the next_cursor of a page)")

	var so appOpts
	show := &cobra.Command{Use: "show EVENT", Short: "Show one parked event with its payload", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.runParkedShow(cmd.Context(), so, args[0]) }}
	so.flags(show)

	var ro appOpts
	replay := &cobra.Command{Use: "replay EVENT", Short: "Apply a parked event again", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.runParkedReplay(cmd.Context(), ro, args) }}
	ro.flags(replay)

	var lko appOpts
	link := &cobra.Command{Use: "link USER CUSTOMER", Short: "Link a Stripe customer to a user, then replay the customer's parked events",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runParkedLink(cmd.Context(), lko, args[0], args[1])
		}}
	lko.flags(link)

	var do appOpts
	discard := &cobra.Command{Use: "discard EVENT", Short: "Drop a parked event", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.runParkedDiscard(cmd.Context(), do, args[0]) }}
	do.flags(discard)
	cmd.AddCommand(list, show, replay, link, discard)
	return cmd
}

// parkedJSON is a parked event in --json output.
type parkedJSON struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	CustomerID string          `json:"customer_id"`
	Reason     string          `json:"reason"`
	ParkedAt   time.Time       `json:"parked_at"`
	Payload    json.RawMessage `json:"payload,omitempty"`
}

func toParkedJSON(ev billing.ParkedEvent) parkedJSON {
	p := parkedJSON{ID: ev.ID, Type: ev.Type, CustomerID: ev.CustomerID, Reason: ev.Reason, ParkedAt: ev.ParkedAt}
	if json.Valid(ev.Payload) {
		p.Payload = ev.Payload
	}
	return p
}

func (a *app) runParkedList(ctx context.Context, o appOpts, cursor string, limit int) error {
	if limit < 1 || limit > 1000 {
		return usagef("--limit %d: want 1 to 1000", limit)
	}
	b, _, closeDB, err := a.openBilling(ctx, o, false)
	if err != nil {
		return err
	}
	defer closeDB()
	evs, next, err := b.ParkedEvents(ctx, cursor, limit)
	if errors.Is(err, billing.ErrInvalidArgument) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	total, err := b.CountParked(ctx)
	if err != nil {
		return err
	}
	if a.json {
		out := []parkedJSON{}
		for _, ev := range evs {
			out = append(out, toParkedJSON(ev))
		}
		return a.printJSON(map[string]any{"total": total, "events": out, "next_cursor": next})
	}
	if len(evs) == 0 {
		fmt.Fprintln(a.io.out, "No parked event.")
		return nil
	}
	t := newTable(a.io.out, "EVENT", "TYPE", "CUSTOMER", "PARKED", "REASON")
	for _, ev := range evs {
		t.row(ev.ID, ev.Type, ev.CustomerID, ev.ParkedAt.Format(time.RFC3339), ev.Reason)
	}
	t.flush()
	fmt.Fprintf(a.io.out, "%d of %d parked.", len(evs), total)
	if next != "" {
		fmt.Fprintf(a.io.out, " More: billing parked list --cursor %s", next)
	}
	fmt.Fprintln(a.io.out)
	return nil
}

func (a *app) runParkedShow(ctx context.Context, o appOpts, id string) error {
	b, _, closeDB, err := a.openBilling(ctx, o, false)
	if err != nil {
		return err
	}
	defer closeDB()
	ev, err := b.ParkedEvent(ctx, id)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(toParkedJSON(ev))
	}
	fmt.Fprintf(a.io.out, "Event:    %s\nType:     %s\nCustomer: %s\nParked:   %s\nReason:   %s\nPayload:\n",
		ev.ID, ev.Type, ev.CustomerID, ev.ParkedAt.Format(time.RFC3339), ev.Reason)
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, ev.Payload, "", "  "); err != nil {
		pretty.Reset()
		pretty.Write(ev.Payload) // as Stripe sent it
	}
	fmt.Fprintln(a.io.out, pretty.String())
	return nil
}

// replayed is one replay's result in --json output.
type replayed struct {
	Event   string `json:"event"`
	Outcome string `json:"outcome,omitempty"`
	Error   string `json:"error,omitempty"`
}

// replayAll replays events, and says what each did; the error joins the
// failures.
func (a *app) replayAll(ctx context.Context, b *billing.Billing, ids []string) ([]replayed, error) {
	out := []replayed{}
	var errs []error
	for _, id := range ids {
		outcome, err := b.Replay(ctx, id)
		r := replayed{Event: id}
		if err != nil {
			r.Error = err.Error()
			errs = append(errs, err)
		} else {
			r.Outcome = outcome.String()
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

func (a *app) printReplayed(rs []replayed) {
	for _, r := range rs {
		switch {
		case r.Error != "":
			fmt.Fprintf(a.io.out, "%s: failed: %s\n", r.Event, r.Error)
		case r.Outcome == billing.OutcomeParked.String():
			fmt.Fprintf(a.io.out, "%s: parked again (its customer is still linked to no user: billing parked link USER CUSTOMER)\n", r.Event)
		default:
			fmt.Fprintf(a.io.out, "%s: %s\n", r.Event, r.Outcome)
		}
	}
}

func (a *app) runParkedReplay(ctx context.Context, o appOpts, ids []string) error {
	b, _, closeDB, err := a.openBilling(ctx, o, true)
	if err != nil {
		return err
	}
	defer closeDB()
	rs, err := a.replayAll(ctx, b, ids)
	if a.json {
		return a.printJSONResult(map[string]any{"replayed": rs}, err)
	}
	a.printReplayed(rs)
	return err
}

func (a *app) runParkedLink(ctx context.Context, o appOpts, user, customer string) error {
	b, _, closeDB, err := a.openBilling(ctx, o, true)
	if err != nil {
		return err
	}
	defer closeDB()
	if err := b.LinkCustomer(ctx, user, customer); err != nil {
		if errors.Is(err, billing.ErrInvalidArgument) {
			return usageError{err}
		}
		return err
	}
	var ids []string
	cursor := ""
	for {
		evs, next, err := b.ParkedEvents(ctx, cursor, billing.DefaultParkedPage)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if ev.CustomerID == customer {
				ids = append(ids, ev.ID)
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	rs, err := a.replayAll(ctx, b, ids)
	if a.json {
		return a.printJSONResult(map[string]any{"user": user, "customer": customer, "replayed": rs}, err)
	}
	fmt.Fprintf(a.io.out, "Linked %s to user %s; %d parked event(s) of it replayed.\n", customer, user, len(rs))
	a.printReplayed(rs)
	return err
}

func (a *app) runParkedDiscard(ctx context.Context, o appOpts, id string) error {
	b, _, closeDB, err := a.openBilling(ctx, o, false)
	if err != nil {
		return err
	}
	defer closeDB()
	if err := b.Discard(ctx, id); err != nil {
		return err
	}
	if a.json {
		return a.printJSON(map[string]any{"discarded": id})
	}
	fmt.Fprintf(a.io.out, "Discarded %s.\n", id)
	return nil
}

// ---- hooks ----

func (a *app) hooksCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hooks",
		Short: "List, replay or discard the changes whose delivery to the app's hooks failed",
		Long: `A change (activated, payment failed, renewed, ...) whose every delivery to
the app's Config.Hooks handler failed is dead-lettered. These commands are
the operator's side; the app's dispatcher (RunHooks) delivers a replayed
change at its next poll.

  billing hooks list [--limit N] [--cursor C]   the dead changes, and the counts
  billing hooks replay KEY...                   deliver again
  billing hooks discard KEY...                  drop`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(a.io.err)
			_ = cmd.Help()
			return usagef("a hooks command is needed: list, replay or discard")
		},
	}
	var lo appOpts
	var limit int
	var cursor string
	list := &cobra.Command{Use: "list", Short: "List the dead changes", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runHooksList(cmd.Context(), lo, cursor, limit) }}
	lo.flags(list)
	list.Flags().IntVar(&limit, "limit", 100, "the most changes listed")
	list.Flags().StringVar(&cursor, "cursor", "", "list after this cursor (the next_cursor of a page)")
	var ro appOpts
	replay := &cobra.Command{Use: "replay KEY...", Short: "Deliver dead changes again", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runHooksEach(cmd.Context(), ro, args, "requeued", (*billing.Billing).ReplayHook)
		}}
	ro.flags(replay)
	var do appOpts
	discard := &cobra.Command{Use: "discard KEY...", Short: "Drop dead changes", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runHooksEach(cmd.Context(), do, args, "discarded", (*billing.Billing).DiscardHook)
		}}
	do.flags(discard)
	cmd.AddCommand(list, replay, discard)
	return cmd
}

func (a *app) runHooksList(ctx context.Context, o appOpts, cursor string, limit int) error {
	if limit < 1 || limit > 1000 {
		return usagef("--limit %d: want 1 to 1000", limit)
	}
	o.noHooks = false
	b, _, closeDB, err := a.openBilling(ctx, o, false)
	if err != nil {
		return err
	}
	defer closeDB()
	dead, next, err := b.DeadHooks(ctx, cursor, limit)
	if errors.Is(err, billing.ErrInvalidArgument) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	stats, err := b.HookStats(ctx)
	if err != nil {
		return err
	}
	if a.json {
		if dead == nil {
			dead = []billing.DeadHook{}
		}
		return a.printJSON(map[string]any{"pending": stats.Pending, "dead": stats.Dead, "changes": dead, "next_cursor": next})
	}
	fmt.Fprintf(a.io.out, "%d change(s) waiting for delivery, %d dead.\n", stats.Pending, stats.Dead)
	if !stats.OldestPending.IsZero() {
		fmt.Fprintf(a.io.out, "The oldest waiting was recorded at %s.\n", stats.OldestPending.Format(time.RFC3339))
	}
	if len(dead) == 0 {
		return nil
	}
	t := newTable(a.io.out, "KEY", "KIND", "USER", "ATTEMPTS", "LAST ERROR")
	for _, d := range dead {
		t.row(d.Change.Key, string(d.Change.Kind), d.Change.UserID, fmt.Sprint(d.Attempts), d.LastError)
	}
	t.flush()
	if next != "" {
		fmt.Fprintf(a.io.out, "More: billing hooks list --cursor %s\n", next)
	}
	return nil
}

func (a *app) runHooksEach(ctx context.Context, o appOpts, keys []string, done string, op func(*billing.Billing, context.Context, string) error) error {
	o.noHooks = false
	b, _, closeDB, err := a.openBilling(ctx, o, false)
	if err != nil {
		return err
	}
	defer closeDB()
	type result struct {
		Key   string `json:"key"`
		Done  bool   `json:"done"`
		Error string `json:"error,omitempty"`
	}
	var (
		rs   []result
		errs []error
	)
	for _, k := range keys {
		err := op(b, ctx, k)
		if errors.Is(err, billing.ErrNotFound) {
			err = fmt.Errorf("%s: no dead change has this key (billing hooks list shows them)", k)
		}
		rs = append(rs, result{Key: k, Done: err == nil, Error: errString(err)})
		if err != nil {
			errs = append(errs, err)
		}
	}
	err = errors.Join(errs...)
	if a.json {
		return a.printJSONResult(map[string]any{done: rs}, err)
	}
	for _, r := range rs {
		if r.Done {
			fmt.Fprintf(a.io.out, "%s: %s\n", r.Key, done)
		}
	}
	return err
}

// ---- members ----

func (a *app) membersCmd() *cobra.Command {
	var o appOpts
	var statuses []string
	var limit int
	var cursor string
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List the subscriptions in the app's database by Stripe status",
		Long: `members lists the subscription records billing keeps, by Stripe status
(incomplete, incomplete_expired, trialing, active, past_due, unpaid,
paused, canceled; every status when none is given), with their user,
customer, prices and period end: who is failing to pay, who is trialing.`,
		Example: `  billing members --status past_due
  billing members --status past_due --status unpaid --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runMembers(cmd.Context(), o, statuses, cursor, limit)
		},
	}
	o.flags(cmd)
	cmd.Flags().StringArrayVar(&statuses, "status", nil, "a Stripe subscription status (repeat for several)")
	cmd.Flags().IntVar(&limit, "limit", billing.DefaultSubscriptionPage, "the most subscriptions listed")
	cmd.Flags().StringVar(&cursor, "cursor", "", "list after this subscription (the next_cursor of a page)")
	return cmd
}

// memberJSON is one subscription record in --json output.
type memberJSON struct {
	Subscription      string    `json:"subscription"`
	User              string    `json:"user"`
	Customer          string    `json:"customer"`
	Status            string    `json:"status"`
	Prices            []string  `json:"prices"`
	PeriodEnd         time.Time `json:"current_period_end,omitzero"`
	CancelAtPeriodEnd bool      `json:"cancel_at_period_end"`
	FailedAttempts    int64     `json:"failed_attempts"`
}

func (a *app) runMembers(ctx context.Context, o appOpts, statuses []string, cursor string, limit int) error {
	q := billing.SubscriptionQuery{After: cursor, Limit: limit}
	for _, s := range statuses {
		q.Statuses = append(q.Statuses, billing.SubscriptionStatus(s))
	}
	if limit < 1 {
		return usagef("--limit %d: want 1 to 1000", limit)
	}
	b, _, closeDB, err := a.openBilling(ctx, o, false)
	if err != nil {
		return err
	}
	defer closeDB()
	subs, next, err := b.ListSubscriptions(ctx, q)
	if errors.Is(err, billing.ErrInvalidArgument) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	rows := []memberJSON{}
	for _, s := range subs {
		m := memberJSON{Subscription: s.ID, User: s.UserID, Customer: s.CustomerID, Status: string(s.Status),
			Prices: []string{}, CancelAtPeriodEnd: s.CancelAtPeriodEnd}
		if !s.Invoice.Paid {
			m.FailedAttempts = s.Invoice.AttemptCount
		}
		m.PeriodEnd = s.PeriodEnd()
		for _, it := range s.Items {
			m.Prices = append(m.Prices, it.PriceID)
		}
		rows = append(rows, m)
	}
	if a.json {
		return a.printJSON(map[string]any{"subscriptions": rows, "next_cursor": next})
	}
	if len(rows) == 0 {
		fmt.Fprintln(a.io.out, "No subscription.")
		return nil
	}
	t := newTable(a.io.out, "USER", "CUSTOMER", "SUBSCRIPTION", "STATUS", "PRICES", "PERIOD END", "FAILED ATTEMPTS")
	for _, m := range rows {
		end := "-"
		if !m.PeriodEnd.IsZero() {
			end = m.PeriodEnd.Format(time.RFC3339)
			if m.CancelAtPeriodEnd {
				end += " (cancels)"
			}
		}
		t.row(m.User, m.Customer, m.Subscription, m.Status, strings.Join(m.Prices, ","), end, fmt.Sprint(m.FailedAttempts))
	}
	t.flush()
	if next != "" {
		fmt.Fprintf(a.io.out, "More: billing members --cursor %s\n", next)
	}
	return nil
}

// ---- prune ----

func (a *app) pruneCmd() *cobra.Command {
	var o appOpts
	var keepHooks, keepParked string
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Delete old records billing no longer needs: processed events, delivered changes, old parked events",
		Long: `prune runs billing's pruning once (Billing.MaintainOnce, without the
catch-up), under the maintenance lease: the records of processed events
past the store's retention (35 days: keep them longer than Stripe's 30
days of retries), the changes delivered to the app's hooks longer ago
than --keep-hooks, and, only when --keep-parked is given, the events
parked longer ago than that. The app's Maintain does the same daily.`,
		Example: `  billing prune
  billing prune --keep-parked 90d --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runPrune(cmd.Context(), o, keepHooks, keepParked) },
	}
	o.flags(cmd)
	cmd.Flags().StringVar(&keepHooks, "keep-hooks", "40d", "keep delivered changes this long")
	cmd.Flags().StringVar(&keepParked, "keep-parked", "", "delete the events parked longer ago than this (default: keep them)")
	return cmd
}

func (a *app) runPrune(ctx context.Context, o appOpts, keepHooks, keepParked string) error {
	opts := billing.MaintenanceOptions{CatchUpEvery: -1}
	var err error
	if opts.KeepHooks, err = billingtest.ParseDuration(keepHooks); err != nil || opts.KeepHooks <= 0 {
		return usagef("--keep-hooks %q: want a positive duration (40d, 960h)", keepHooks)
	}
	if keepParked != "" {
		if opts.KeepParked, err = billingtest.ParseDuration(keepParked); err != nil || opts.KeepParked <= 0 {
			return usagef("--keep-parked %q: want a positive duration (90d)", keepParked)
		}
	}
	b, _, closeDB, err := a.openBilling(ctx, o, false)
	if err != nil {
		return err
	}
	defer closeDB()
	rep, err := b.MaintainOnce(ctx, opts)
	if errors.Is(err, billing.ErrLeaseHeld) {
		return fmt.Errorf("another process holds the maintenance lease (an app replica running Maintain, or another prune): try later: %w", err)
	}
	if a.json {
		return a.printJSONResult(map[string]any{"events": rep.PrunedEvents, "hooks": rep.PrunedHooks, "parked": rep.PrunedParked, "error": errString(err)}, err)
	}
	fmt.Fprintf(a.io.out, "Pruned %d processed event record(s), %d delivered change(s), %d parked event(s).\n",
		rep.PrunedEvents, rep.PrunedHooks, rep.PrunedParked)
	return err
}
