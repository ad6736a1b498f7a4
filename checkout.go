package billing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82"
)

// idempotencyWindow is how long a repeated identical request (a double
// click, a retry) gets the same Checkout or portal session back.
const idempotencyWindow = time.Minute

// CheckoutOptions says what to buy.
type CheckoutOptions struct {
	// PriceID is a price from Config.Plans. Its Kind picks the Checkout
	// mode: subscription for Recurring, payment for OneTime.
	PriceID string
	// Quantity defaults to 1.
	Quantity int64
	// TrialDays starts a subscription with a trial of that many days.
	TrialDays int64
	// AllowPromotionCodes shows the promotion code field.
	AllowPromotionCodes bool
	// AllowAnotherSubscription lets a user with a live subscription start
	// a second one; without it Checkout returns ErrAlreadySubscribed, and
	// a subscription-mode Checkout expires the user's other open
	// subscription-mode sessions (an identical one is reused), so that two
	// tabs cannot both be paid.
	AllowAnotherSubscription bool
	// SuccessURL and CancelURL override the URLs derived from Config.
	// SuccessURL must contain {CHECKOUT_SESSION_ID}.
	SuccessURL, CancelURL string
}

// CheckoutSession is a hosted Checkout page to send the user to.
type CheckoutSession struct {
	ID  string
	URL string
}

// Checkout starts a hosted Checkout for the user: it gets or creates the
// user's Stripe customer (linked to the user before the session exists)
// and creates the session, both with idempotency keys, so that a double
// click gets one customer and one session. Redirect the user to the URL
// with 303 See Other.
func (b *Billing) Checkout(ctx context.Context, userID string, opts CheckoutOptions) (CheckoutSession, error) {
	if userID == "" {
		return CheckoutSession{}, fmt.Errorf("%w: Checkout: empty user ID", ErrInvalidArgument)
	}
	plan, err := b.Plan(opts.PriceID)
	if err != nil {
		return CheckoutSession{}, err
	}
	if opts.Quantity == 0 {
		opts.Quantity = 1
	}
	if opts.Quantity < 0 || opts.TrialDays < 0 {
		return CheckoutSession{}, fmt.Errorf("%w: Checkout: negative quantity or trial days", ErrInvalidArgument)
	}
	if opts.TrialDays > 0 && plan.Kind != Recurring {
		return CheckoutSession{}, fmt.Errorf("%w: Checkout: a trial needs a recurring price, %s is one-time", ErrInvalidArgument, plan.PriceID)
	}
	success := b.siteURL(b.cfg.SuccessPath)
	if opts.SuccessURL != "" {
		success = opts.SuccessURL
	}
	if !strings.Contains(success, "{CHECKOUT_SESSION_ID}") {
		return CheckoutSession{}, fmt.Errorf("%w: Checkout: SuccessURL %q lacks {CHECKOUT_SESSION_ID}", ErrInvalidArgument, success)
	}
	cancel := b.siteURL(b.cfg.CancelPath)
	if opts.CancelURL != "" {
		cancel = opts.CancelURL
	}
	facts, err := b.store.Facts(ctx, userID)
	if err != nil {
		return CheckoutSession{}, fmt.Errorf("billing: read facts of user %q: %w", userID, err)
	}
	if plan.Kind == Recurring && !opts.AllowAnotherSubscription {
		for _, s := range facts.Subscriptions {
			if s.Status.Live() {
				return CheckoutSession{}, fmt.Errorf("%w: %s is %s", ErrAlreadySubscribed, s.ID, s.Status)
			}
		}
	}
	customer, err := b.customerFor(ctx, userID, facts.CustomerID)
	if err != nil {
		return CheckoutSession{}, err
	}

	qty := strconv.FormatInt(opts.Quantity, 10)
	params := []string{userID, customer, plan.PriceID, qty, strconv.FormatInt(opts.TrialDays, 10),
		strconv.FormatBool(opts.AllowPromotionCodes), success, cancel}
	fingerprint := checkoutFingerprint(append(params, strconv.FormatBool(opts.AllowAnotherSubscription))...)
	if plan.Kind == Recurring {
		// One subscription per user: an identical Checkout reuses the
		// user's open session; another expires them (unless the app
		// allows a second subscription), so that two tabs cannot both be
		// paid.
		open, err := b.openSubscriptionSessions(ctx, customer)
		if err != nil {
			return CheckoutSession{}, err
		}
		for _, s := range open {
			if s.Metadata[metaCheckout] == fingerprint && s.URL != "" {
				return CheckoutSession{ID: s.ID, URL: s.URL}, nil
			}
		}
		if !opts.AllowAnotherSubscription {
			for _, s := range open {
				if err := b.expireSession(ctx, s.ID); err != nil {
					return CheckoutSession{}, err
				}
			}
		}
	}
	p := &stripe.CheckoutSessionCreateParams{
		Customer:          stripe.String(customer),
		ClientReferenceID: stripe.String(userID),
		SuccessURL:        stripe.String(success),
		CancelURL:         stripe.String(cancel),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{
			Price:    stripe.String(plan.PriceID),
			Quantity: stripe.Int64(opts.Quantity),
		}},
		Metadata: map[string]string{metaUserID: userID, metaPriceID: plan.PriceID, metaQuantity: qty},
	}
	if opts.AllowPromotionCodes {
		p.AllowPromotionCodes = stripe.Bool(true)
	}
	if plan.Kind == Recurring {
		p.Metadata[metaCheckout] = fingerprint
		p.Mode = stripe.String(string(stripe.CheckoutSessionModeSubscription))
		p.SubscriptionData = &stripe.CheckoutSessionCreateSubscriptionDataParams{
			Metadata: map[string]string{metaUserID: userID},
		}
		if opts.AllowAnotherSubscription {
			p.SubscriptionData.Metadata[metaAllowAnother] = "true"
			p.Metadata[metaAllowAnother] = "true" // kept open when another subscription goes live
		}
		if opts.TrialDays > 0 {
			p.SubscriptionData.TrialPeriodDays = stripe.Int64(opts.TrialDays)
		}
	} else {
		p.Mode = stripe.String(string(stripe.CheckoutSessionModePayment))
	}
	key := b.idempotencyKey("checkout", params...)
	s, err := b.createSession(ctx, p, key)
	if err != nil {
		return CheckoutSession{}, err
	}
	return CheckoutSession{ID: s.ID, URL: s.URL}, nil
}

// openSubscriptionSessions lists the customer's open subscription-mode
// Checkout Sessions.
func (b *Billing) openSubscriptionSessions(ctx context.Context, customer string) ([]*stripe.CheckoutSession, error) {
	p := &stripe.CheckoutSessionListParams{Customer: stripe.String(customer), Status: stripe.String("open")}
	p.Limit = stripe.Int64(100)
	page := func(ctx context.Context, after string) iter.Seq2[*stripe.CheckoutSession, error] {
		startAfter(&p.ListParams, after)
		return iter.Seq2[*stripe.CheckoutSession, error](b.sc.V1CheckoutSessions.List(ctx, p))
	}
	var out []*stripe.CheckoutSession
	for s, err := range list(ctx, b, page, func(s *stripe.CheckoutSession) string { return s.ID }) {
		if err != nil {
			return nil, newStripeError("list open checkout sessions", err)
		}
		if s.Mode == stripe.CheckoutSessionModeSubscription && s.Status == stripe.CheckoutSessionStatusOpen {
			out = append(out, s)
		}
	}
	return out, nil
}

// expireSession expires an open Checkout Session. One that completed or
// expired meanwhile is left as it is (Stripe refuses to expire it).
func (b *Billing) expireSession(ctx context.Context, id string) error {
	err := b.call(ctx, write, func(ctx context.Context) error {
		_, err := b.sc.V1CheckoutSessions.Expire(ctx, id, nil)
		return err
	})
	var se *stripe.Error
	if errors.As(err, &se) && se.HTTPStatusCode == http.StatusBadRequest {
		return nil // no longer open
	}
	if err != nil {
		return newStripeError("expire checkout session "+id, err)
	}
	return nil
}

// maxReplays bounds the sessions skipped as finished within one
// idempotency window.
const maxReplays = 5

// createSession creates a Checkout Session under key. Stripe replays a
// key's first answer, so a repeat purchase within the window would get
// the session the user already paid: when the answer is a replay, the
// session is looked up, and if it is no longer open a new one is created
// under a key derived from the finished one (so that a double click after
// a purchase still makes one session).
func (b *Billing) createSession(ctx context.Context, p *stripe.CheckoutSessionCreateParams, key string) (*stripe.CheckoutSession, error) {
	for i := 0; ; i++ {
		p.SetIdempotencyKey(key)
		var s *stripe.CheckoutSession
		err := b.call(ctx, write, func(ctx context.Context) error {
			var err error
			s, err = b.sc.V1CheckoutSessions.Create(ctx, p)
			return err
		})
		if err != nil {
			return nil, newStripeError("create checkout session", err)
		}
		if s.LastResponse == nil || s.LastResponse.Header.Get("Idempotent-Replayed") != "true" {
			return s, nil
		}
		if i == maxReplays {
			return nil, fmt.Errorf("billing: create checkout session: %d finished sessions replayed within one idempotency window", maxReplays)
		}
		var cur *stripe.CheckoutSession
		err = b.call(ctx, read, func(ctx context.Context) (err error) {
			cur, err = b.sc.V1CheckoutSessions.Retrieve(ctx, s.ID, nil)
			return err
		})
		if err != nil {
			return nil, newStripeError("retrieve checkout session "+s.ID, err)
		}
		if cur.Status == stripe.CheckoutSessionStatusOpen {
			return s, nil
		}
		sum := sha256.Sum256([]byte(key + "\x00" + s.ID))
		key = "billing-checkout-" + hex.EncodeToString(sum[:20])
	}
}

// idempotencyKey derives a key from what a request creates and the
// current time window. Stripe replays the first answer to a key for 24
// hours and refuses a key reused with other parameters, so every parameter
// is part of the key, and the window lets a later, deliberate repeat
// create a new session.
// checkoutFingerprint identifies a Checkout by all its parameters, at any
// time (unlike an idempotency key, which lasts a window).
func checkoutFingerprint(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%s\x00", p)
	}
	return "billing-fingerprint-" + hex.EncodeToString(h.Sum(nil))[:40]
}

func (b *Billing) idempotencyKey(kind string, parts ...string) string {
	h := sha256.New()
	window := b.now().Unix() / int64(idempotencyWindow/time.Second)
	fmt.Fprintf(h, "%s\x00%d", kind, window)
	for _, p := range parts {
		fmt.Fprintf(h, "\x00%s", p)
	}
	return "billing-" + kind + "-" + hex.EncodeToString(h.Sum(nil))[:40]
}

// customerFor returns the user's Stripe customer, creating and linking it
// if there is none. The create's idempotency key is the user's ID, so
// concurrent first checkouts of one user make one customer.
func (b *Billing) customerFor(ctx context.Context, userID, known string) (string, error) {
	if known != "" {
		return known, nil
	}
	u, err := b.users.User(ctx, userID)
	if err != nil {
		return "", fmt.Errorf("billing: resolve user %q: %w", userID, err)
	}
	p := &stripe.CustomerCreateParams{Metadata: map[string]string{metaUserID: userID}}
	if u.Email != "" {
		p.Email = stripe.String(u.Email)
	}
	if u.Name != "" {
		p.Name = stripe.String(u.Name)
	}
	// Keyed by everything sent and the window: a double click makes one
	// customer, and a failure Stripe stored (it replays a key's first
	// answer for 24 hours, a 500 included) blocks the user for a minute,
	// not a day. A race across windows ends in ErrCustomerConflict below.
	p.SetIdempotencyKey(b.idempotencyKey("customer", userID, u.Email, u.Name))
	var c *stripe.Customer
	err = b.call(ctx, write, func(ctx context.Context) error {
		var err error
		c, err = b.sc.V1Customers.Create(ctx, p)
		return err
	})
	if err != nil {
		return "", newStripeError("create customer", err)
	}
	err = b.linkCustomer(ctx, userID, c.ID)
	if errors.Is(err, ErrCustomerConflict) {
		// Another request linked the user first (with a customer made
		// more than a day apart): use the linked one.
		linked, err2 := b.store.CustomerID(ctx, userID)
		if err2 == nil {
			b.log.Warn("user already linked to another customer; using it", "user", userID, "unused_customer", c.ID, "customer", linked)
			return linked, nil
		}
		err = errors.Join(err, err2)
	}
	if err != nil {
		return "", fmt.Errorf("billing: link user %q to customer %s: %w", userID, c.ID, err)
	}
	return c.ID, nil
}

// CheckoutResult is the state of a Checkout Session, for the return page.
type CheckoutResult struct {
	ID string
	// Status is open, complete or expired.
	Status SessionStatus
	// PaymentStatus is paid, unpaid or no_payment_required.
	PaymentStatus  PaymentStatus
	Mode           CheckoutMode
	SubscriptionID string
}

// Settled reports whether the session's outcome is final: paid (or
// needing no payment), or expired.
func (r CheckoutResult) Settled() bool {
	return r.Status == SessionExpired || (r.Status == SessionComplete && r.PaymentStatus != PaymentUnpaid)
}

// CheckoutStatus reports a Checkout Session's state after checking that
// it belongs to the user (ErrSessionNotOwned otherwise).
func (b *Billing) CheckoutStatus(ctx context.Context, userID, sessionID string) (CheckoutResult, error) {
	s, _, err := b.ownedSession(ctx, userID, sessionID)
	if err != nil {
		return CheckoutResult{}, err
	}
	return resultOf(s), nil
}

func resultOf(s *wireSession) CheckoutResult {
	return CheckoutResult{ID: s.ID, Status: SessionStatus(s.Status), PaymentStatus: PaymentStatus(s.PaymentStatus),
		Mode: CheckoutMode(s.Mode), SubscriptionID: s.Subscription.ID}
}

// ownedSession retrieves a session (with what SyncCheckout needs
// expanded) and checks that its customer is the user's.
// The response comes with it, for its Date.
func (b *Billing) ownedSession(ctx context.Context, userID, sessionID string, expand ...string) (*wireSession, *stripe.APIResponse, error) {
	switch {
	case userID == "":
		return nil, nil, fmt.Errorf("%w (%w): empty user ID", ErrInvalidArgument, ErrSessionNotOwned)
	case !strings.HasPrefix(sessionID, "cs_") || !storable(sessionID):
		return nil, nil, fmt.Errorf("%w (%w): %q is not a Checkout Session ID (cs_...)", ErrInvalidArgument, ErrSessionNotOwned, sessionID)
	}
	customer, err := b.store.CustomerID(ctx, userID)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, fmt.Errorf("%w: user %q has no customer", ErrSessionNotOwned, userID)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("billing: read customer of user %q: %w", userID, err)
	}
	p := &stripe.CheckoutSessionRetrieveParams{}
	for _, e := range expand {
		p.AddExpand(e)
	}
	var s *stripe.CheckoutSession
	err = b.call(ctx, read, func(ctx context.Context) (err error) {
		s, err = b.sc.V1CheckoutSessions.Retrieve(ctx, sessionID, p)
		return err
	})
	if err != nil {
		var se *stripe.Error
		if errors.As(err, &se) && se.HTTPStatusCode == 404 {
			return nil, nil, fmt.Errorf("%w: %s does not exist", ErrSessionNotOwned, sessionID)
		}
		return nil, nil, newStripeError("retrieve checkout session "+sessionID, err)
	}
	var w wireSession
	if err := decodeResponse(s.LastResponse, &w); err != nil {
		return nil, nil, fmt.Errorf("billing: retrieve checkout session %s: %w", sessionID, err)
	}
	if w.Customer == "" || string(w.Customer) != customer {
		return nil, nil, fmt.Errorf("%w: %s", ErrSessionNotOwned, sessionID)
	}
	return &w, s.LastResponse, nil
}

// SyncCheckout applies a Checkout Session's outcome at once, so that the
// return page is right even when the webhook is late: it checks that the
// session belongs to the user, then writes its subscription (through the
// same conditional write as webhooks) or its one-time grant (once, by
// session ID, whichever of this and the webhook comes first). It returns
// the session's state and the user's membership afterwards.
func (b *Billing) SyncCheckout(ctx context.Context, userID, sessionID string) (CheckoutResult, Membership, error) {
	s, resp, err := b.ownedSession(ctx, userID, sessionID, "subscription", "subscription.latest_invoice", "line_items")
	if err != nil {
		return CheckoutResult{}, Membership{}, err
	}
	res := resultOf(s)
	if res.Status == SessionComplete {
		switch {
		case res.Mode == ModeSubscription && s.Subscription.Expanded != nil && s.Subscription.Expanded.Status != "":
			if err := b.syncSubscription(ctx, s, resp); err != nil {
				return res, Membership{}, err
			}
		case res.Mode == ModePayment && res.PaymentStatus == PaymentPaid:
			g, err := b.grantOf(ctx, s, unix(s.Created))
			if err != nil {
				return res, Membership{}, err
			}
			g.UserID = userID
			if err := b.addGrant(ctx, g); err != nil {
				return res, Membership{}, fmt.Errorf("billing: write grant %s: %w", s.ID, err)
			}
		}
	}
	m, err := b.Membership(ctx, userID)
	return res, m, err
}

// syncSubscription writes the subscription expanded on a session,
// versioned by the response's Date.
func (b *Billing) syncSubscription(ctx context.Context, s *wireSession, resp *stripe.APIResponse) error {
	version, err := responseTime(resp)
	if err != nil {
		return fmt.Errorf("billing: retrieve checkout session %s: %w", s.ID, err)
	}
	facts := subscriptionFacts(s.Subscription.Expanded, version)
	if facts.CustomerID == "" {
		facts.CustomerID = string(s.Customer)
	}
	f := fetchedFact(s.Subscription.Expanded, version)
	f.Sub = facts
	rec := b.recorder("")
	err = b.applyWith(ctx, "", rec, func(ctx context.Context, tx Tx) error {
		return putSubscription(ctx, tx, f, rec)
	})
	if errors.Is(err, errFetch) {
		return b.applyFetched(ctx, "", facts.ID, facts.Version, rec)
	}
	if err != nil {
		return fmt.Errorf("billing: sync subscription %s: %w", facts.ID, err)
	}
	return nil
}
