package billing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/form"
)

// Checkpointer is a Store that keeps named checkpoints, so that a long
// job resumes where it stopped ([Billing.SyncAll] keeps its place in
// Stripe's list under [SyncCheckpoint]). memstore and sqlstore implement
// it.
type Checkpointer interface {
	// Checkpoint returns the value saved under name (at most 255 bytes),
	// or "" when none is.
	Checkpoint(ctx context.Context, name string) (string, error)
	// SaveCheckpoint saves value under name, replacing the one saved
	// before; an empty value removes it.
	SaveCheckpoint(ctx context.Context, name, value string) error
}

// SyncCheckpoint is the name [Billing.SyncAll] keeps its checkpoint under:
// the last subscription of the last page it finished.
const SyncCheckpoint = "billing.sync_all"

// syncPage is how many subscriptions SyncAll asks for per request:
// Stripe's maximum.
const syncPage = 100

// SyncAllOptions configures [Billing.SyncAll].
type SyncAllOptions struct {
	// Restart ignores the checkpoint an interrupted run left and starts
	// from Stripe's first page.
	Restart bool
	// Progress, when set, is called after each page with the report so
	// far (from the goroutine of SyncAll).
	Progress func(SyncReport)
}

// SyncReport counts what [Billing.SyncAll] did.
type SyncReport struct {
	// ResumedAfter is the subscription the run resumed after, from the
	// checkpoint of an interrupted run ("" when it started from the
	// first page).
	ResumedAfter string
	Pages        int // pages of subscriptions listed
	Seen         int // subscriptions listed
	Stored       int // subscriptions whose record is now Stripe's state (written, or already up to date)
	Refetched    int // of them, fetched alone: the page's Date was not newer than the stored state
	Unlinked     int // of a customer no user is linked to: not stored (Billing.LinkCustomer links one)
	Unstorable   int // with IDs billing cannot store: not stored, logged
	Calls        int // requests for pages, retries included (a fetch alone is counted in Refetched)
	// Done is true when the last page was reached: the checkpoint is
	// cleared, and the next run starts from the first page.
	Done bool
}

// SyncAll brings every subscription of the account up to date from
// Stripe, whatever webhooks were missed (the reference guide's daily
// sync): it lists all subscriptions, of every status, 100 per request
// with each one's latest invoice expanded, and writes each through the
// same conditional write as webhook events, versioned by the Date of
// the page it came on (less the request's duration and a second: a
// listed state is never dated after a change made while the page was
// read). N subscriptions cost ⌈N/100⌉ requests, plus one
// for a subscription whose stored state is as new as the page (it is
// fetched alone, as [Billing.Sync] does) and the retries of failed
// requests.
//
// The Store keeps a checkpoint (when it is a [Checkpointer]) after each
// page: a run interrupted (its context canceled, Stripe or the database
// failing) returns its error, and the next run resumes after the last
// page it finished. Subscriptions of a customer no user is linked to are
// counted and left alone. Run it from a cron (`billing sync`), not on
// the request path.
func (b *Billing) SyncAll(ctx context.Context, opts SyncAllOptions) (SyncReport, error) {
	var rep SyncReport
	cp, _ := b.store.(Checkpointer)
	after := ""
	if cp != nil && !opts.Restart {
		var err error
		if after, err = cp.Checkpoint(ctx, SyncCheckpoint); err != nil {
			return rep, fmt.Errorf("billing: sync: read the checkpoint: %w", err)
		}
		rep.ResumedAfter = after
	}
	rec := b.recorder("")
	live := &liveWatch{suspect: map[string]bool{}}
	for {
		subs, version, more, err := b.subscriptionPage(ctx, after, &rep)
		var se *StripeError
		if rep.Pages == 0 && after != "" && errors.As(err, &se) && se.Code == "resource_missing" {
			// The checkpoint names a subscription this account does not
			// have (another key, account or mode on this database): it
			// cannot be resumed from, and is dropped.
			b.log.Warn("sync: the checkpoint names a subscription Stripe does not know; starting from the first page",
				"checkpoint", after)
			if cp != nil {
				if err := cp.SaveCheckpoint(ctx, SyncCheckpoint, ""); err != nil {
					return rep, fmt.Errorf("billing: sync: drop the checkpoint: %w", err)
				}
			}
			after, rep.ResumedAfter = "", ""
			continue
		}
		if err != nil {
			return rep, err
		}
		rep.Pages++
		for i := range subs {
			if err := b.syncListed(ctx, &subs[i], version, rec, &rep, live); err != nil {
				return rep, err
			}
		}
		if len(subs) > 0 {
			after = subs[len(subs)-1].ID
		}
		if !more || len(subs) == 0 {
			rep.Done = true
			after = ""
		}
		if cp != nil {
			if err := cp.SaveCheckpoint(ctx, SyncCheckpoint, after); err != nil {
				return rep, fmt.Errorf("billing: sync: save the checkpoint: %w", err)
			}
		}
		if opts.Progress != nil {
			opts.Progress(rep)
		}
		if rep.Done {
			if err := b.secondSubscriptions(ctx, live.toCheck(), rec); err != nil {
				return rep, err
			}
			b.log.Info("sync", "pages", rep.Pages, "seen", rep.Seen, "stored", rep.Stored, "refetched", rep.Refetched,
				"unlinked", rep.Unlinked, "unstorable", rep.Unstorable, "calls", rep.Calls)
			return rep, nil
		}
		if err := ctx.Err(); err != nil {
			return rep, err
		}
	}
}

// subscriptionPage lists one page of subscriptions of every status after
// the given one, with their latest invoices, and returns them with the
// page's Date.
func (b *Billing) subscriptionPage(ctx context.Context, after string, rep *SyncReport) (subs []wireSubscription, version time.Time, more bool, err error) {
	p := &stripe.SubscriptionListParams{Status: stripe.String("all")}
	p.Limit = stripe.Int64(syncPage)
	p.AddExpand("data.latest_invoice")
	startAfter(&p.ListParams, after)
	body := &form.Values{}
	form.AppendTo(body, p)
	// The page is decoded once, straight into billing's wire structs.
	var page struct {
		stripe.APIResource
		Data    []wireSubscription `json:"data"`
		HasMore bool               `json:"has_more"`
	}
	start := b.now()
	err = b.call(ctx, read, func(ctx context.Context) error {
		rep.Calls++
		// CallRaw, as stripe-go's own listing calls it: Call rejects list
		// parameters.
		return b.api.CallRaw(http.MethodGet, "/v1/subscriptions", b.cfg.SecretKey, []byte(body.Encode()), &stripe.Params{Context: ctx}, &page)
	})
	if err != nil {
		return nil, time.Time{}, false, newStripeError("list subscriptions", err)
	}
	if version, err = responseTime(page.LastResponse); err != nil {
		return nil, time.Time{}, false, fmt.Errorf("billing: list subscriptions: %w", err)
	}
	// Date is stamped as the response is sent; the states on a page of a
	// hundred, each with its invoice, were read up to the request's
	// duration before. A version too late could let a listed state win
	// over a change made meanwhile; one too early only costs a fetch. So
	// the page is dated the request's duration (in whole seconds, rounded
	// up) and a second more before its Date.
	took := b.now().Sub(start)
	back := took.Truncate(time.Second)
	if back < took {
		back += time.Second
	}
	version = version.Add(-back - time.Second)
	return page.Data, version, page.HasMore, nil
}

// liveWatch follows the subscriptions a run made live, in listing order
// (newest first), with their users, and the users of whom one went live
// beside another live record.
type liveWatch struct {
	subs    []liveSub
	suspect map[string]bool
}

type liveSub struct{ id, user string }

// toCheck are the subscriptions the end of the run looks at: those of the
// suspect users, and those whose user a fetch of their own hid.
func (w *liveWatch) toCheck() []string {
	var ids []string
	for _, s := range w.subs {
		if s.user == "" || w.suspect[s.user] {
			ids = append(ids, s.id)
		}
	}
	return ids
}

// syncListed writes one listed subscription as a fetched one, and notes
// in live whether it entered a live status.
func (b *Billing) syncListed(ctx context.Context, sub *wireSubscription, version time.Time, rec *recorder, rep *SyncReport, live *liveWatch) error {
	rep.Seen++
	f := fetchedFact(sub, version)
	var (
		entered bool
		user    string
		beside  bool
	)
	err := b.applyWith(ctx, "", rec, func(ctx context.Context, tx Tx) error {
		var after Subscription
		var err error
		beside = false
		if after, entered, err = putEntering(ctx, tx, f, rec); err != nil || !entered {
			return err
		}
		// Entering a live status, beside another live record or not (it
		// may be stale: the end of the run looks again).
		user = after.UserID
		subs, err := tx.Subscriptions(ctx, after.UserID)
		if err != nil {
			return fmt.Errorf("read the subscriptions of user %s: %w", after.UserID, err)
		}
		beside = len(otherLive(subs, after.ID, nil)) > 0
		return nil
	})
	if errors.Is(err, errFetch) {
		// The stored state is as new as the page: only a fetch of its own
		// (later, if need be) tells which is newer.
		rep.Refetched++
		entered, user = true, "" // perhaps: the end of the run looks
		err = b.applyFetched(ctx, "", sub.ID, version, rec)
	}
	if err == nil && entered {
		live.subs = append(live.subs, liveSub{id: sub.ID, user: user})
		if beside {
			live.suspect[user] = true
		}
	}
	var unknown *errUnknownCustomer
	var unstorable *errUnstorable
	switch {
	case errors.As(err, &unknown):
		rep.Unlinked++
		b.log.Debug("sync: subscription of a customer no user is linked to", "subscription", sub.ID, "customer", unknown.customer)
		return nil
	case errors.As(err, &unstorable):
		rep.Unstorable++
		b.log.Warn("sync: subscription not stored", "subscription", sub.ID, "error", err.Error())
		return nil
	case err != nil:
		return fmt.Errorf("billing: sync subscription %s: %w", sub.ID, err)
	}
	rep.Stored++
	return nil
}

// secondSubscriptions looks, once every record is Stripe's, at the users
// of the subscriptions the run made live: one beside another live one is
// a second subscription, reported (and recorded) as the webhook path
// does. It looks at the end, not as each is written: Stripe lists the
// newest first, so an older record beside it may still be stale then (a
// cancellation whose webhook was missed).
//
// ids are newest first, as listed: they are looked at oldest first, each
// beside the records live before it (not the newer ones of the run), so
// that of two the run made live the second is the one reported, as the
// webhook path would.
func (b *Billing) secondSubscriptions(ctx context.Context, ids []string, rec *recorder) error {
	later := make(map[string]bool, len(ids))
	for _, id := range ids {
		later[id] = true
	}
	for _, id := range slices.Backward(ids) {
		delete(later, id)
		var (
			second siblings
			cur    Subscription
		)
		err := b.applyWith(ctx, "", rec, func(ctx context.Context, tx Tx) error {
			second = siblings{}
			s, found, err := tx.Subscription(ctx, id)
			if err != nil || !found || s.UserID == "" || !s.Status.Live() {
				return err
			}
			if err := tx.LockUser(ctx, s.UserID); err != nil {
				return err
			}
			cur = s
			return recordSecond(ctx, tx, s, func(id string) bool { return later[id] }, &second, rec)
		})
		if err != nil {
			return fmt.Errorf("billing: sync: look for a second subscription beside %s: %w", id, err)
		}
		second.report(b, cur.ID, cur.CustomerID, "(sync)")
	}
	return nil
}
