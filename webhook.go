package billing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"
	"go.opentelemetry.io/otel/trace"
)

// Outcome says what the webhook handler did with a verified event.
type Outcome int

// Outcomes of a verified event.
const (
	OutcomeNone      Outcome = iota // the zero value: nothing happened (returned with errors)
	OutcomeApplied                  // recorded with its state change (which may have been "nothing newer")
	OutcomeDuplicate                // already applied: nothing changed, no Stripe call made
	OutcomeIgnored                  // an event type billing does not use
	OutcomeParked                   // could not be applied (unknown customer, undecodable object): kept for Replay
)

var outcomeNames = [...]string{"none", "applied", "duplicate", "ignored", "parked"}

// String names the outcome: "none", "applied", "duplicate", "ignored" or "parked".
func (o Outcome) String() string {
	if o >= 0 && int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// WebhookHandler returns the http.Handler for Stripe's webhook endpoint.
// Mount it on a path of its own (for instance "POST /stripe/webhook"),
// outside any CSRF or authentication middleware.
//
// It answers 405 to anything but POST, 413 to a body over
// Config.MaxWebhookBytes, 400 to a missing, invalid or stale signature and
// to an event of the other mode (live or test) or of another API release
// train (with a log line saying how to fix it), 200 to event types it does
// not use, to duplicates and to parked events, 200 once an event's change
// is committed, and 500 when anything fails before the commit (Stripe then
// retries the delivery).
func (b *Billing) WebhookHandler() http.Handler { return webhookHandler{b} }

type webhookHandler struct{ b *Billing }

func (h webhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b := h.b
	start := time.Now()
	ctx, span := b.startSpan(r.Context(), "billing.webhook", trace.SpanKindServer)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		b.webhookDone(ctx, span, start, nil, outcomeRefused, nil)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, b.cfg.MaxWebhookBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			b.log.Warn("webhook body too large", "limit", b.cfg.MaxWebhookBytes)
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		} else {
			http.Error(w, "cannot read body", http.StatusBadRequest)
		}
		b.webhookDone(ctx, span, start, nil, outcomeRefused, nil)
		return
	}
	ev, err := b.verify(body, r.Header.Get("Stripe-Signature"))
	if err != nil {
		b.log.Warn("webhook rejected", "reason", err.Error())
		http.Error(w, "bad request", http.StatusBadRequest)
		b.webhookDone(ctx, span, start, nil, outcomeRefused, nil)
		return
	}
	if err := b.checkEventMode(&ev); err != nil {
		b.log.Warn("webhook event rejected: misconfigured endpoint", "event", ev.ID, "type", ev.Type, "error", err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		b.webhookDone(ctx, span, start, &ev, outcomeRefused, err)
		return
	}
	out, err := b.process(ctx, &ev, body)
	if err != nil {
		b.log.Error("webhook event failed; Stripe will retry it", "event", ev.ID, "type", ev.Type, "error", err.Error())
		http.Error(w, "event not applied, retry later", http.StatusInternalServerError)
		b.webhookDone(ctx, span, start, &ev, outcomeFailed, err)
		return
	}
	b.log.Debug("webhook event", "event", ev.ID, "type", ev.Type, "outcome", out.String())
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, "{\"outcome\":%q}\n", out.String())
	b.webhookDone(ctx, span, start, &ev, out.String(), nil)
}

// Outcomes of deliveries that are not an applied event's, for metrics
// and spans.
const (
	outcomeRefused = "refused" // not POST, too large, a bad signature, the wrong mode or release train
	outcomeFailed  = "failed"  // answered 500: Stripe retries it
)

// verify checks the signature against every configured secret
// (webhook.ValidatePayload: the signature and its timestamp, decoding
// nothing), then decodes the envelope once. The release train is checked
// by checkEventMode, with a clearer error than stripe-go's.
func (b *Billing) verify(body []byte, header string) (wireEvent, error) {
	var err error
	for _, secret := range b.cfg.WebhookSecrets {
		err = webhook.ValidatePayload(body, header, secret)
		if err == nil || !errors.Is(err, webhook.ErrNoValidSignature) {
			break // verified; or missing, malformed or stale: no other secret helps
		}
	}
	if err != nil {
		return wireEvent{}, err
	}
	var ev wireEvent
	if err := decodeEvent(body, &ev); err != nil {
		return wireEvent{}, fmt.Errorf("event is not JSON: %w", err)
	}
	if ev.ID == "" || ev.Type == "" {
		return wireEvent{}, errors.New("event has no id or type")
	}
	return ev, nil
}

func (b *Billing) checkEventMode(ev *wireEvent) error {
	if ev.Livemode != b.livemode {
		mode := func(live bool) string {
			if live {
				return "live"
			}
			return "test"
		}
		return fmt.Errorf("%w: a %s-mode event reached a setup whose SecretKey is a %s-mode key; point the %s-mode webhook endpoint at the deployment that has the %s key (and its whsec_ secret)",
			ErrLivemodeMismatch, mode(ev.Livemode), mode(b.livemode), mode(ev.Livemode), mode(ev.Livemode))
	}
	if train(ev.APIVersion) != train(stripe.APIVersion) {
		return &APIVersionError{Got: ev.APIVersion, Want: stripe.APIVersion}
	}
	return nil
}

// Event types billing applies.
const (
	evSubCreated      = "customer.subscription.created"
	evSubUpdated      = "customer.subscription.updated"
	evSubDeleted      = "customer.subscription.deleted"
	evSubPaused       = "customer.subscription.paused"
	evSubResumed      = "customer.subscription.resumed"
	evSubTrialWillEnd = "customer.subscription.trial_will_end"
	evInvoicePaid     = "invoice.paid"
	evInvoiceFailed   = "invoice.payment_failed"
	evCheckoutDone    = "checkout.session.completed"
	evCheckoutAsyncOK = "checkout.session.async_payment_succeeded"
)

// process applies one verified event. It is also how parked events are
// replayed.
func (b *Billing) process(ctx context.Context, ev *wireEvent, raw []byte) (Outcome, error) {
	info := EventInfo{Type: ev.Type, Via: ViaWebhook}
	if v, ok := ctx.Value(viaKey{}).(string); ok {
		info.Via = v
	}
	if ev.Data.Object != nil {
		info.ObjectID = storableText(ev.Data.Object.ID)
	}
	ctx = withEventInfo(ctx, info)
	if !slices.Contains(appliedTypes, ev.Type) {
		return OutcomeIgnored, nil
	}
	if reason := unusable(ev); reason != "" {
		// Signed, so accepted, but retrying cannot help: kept for an
		// operator rather than answered 500 for three days.
		if err := b.park(ctx, ev, raw, "", reason); err != nil {
			return 0, err
		}
		return OutcomeParked, nil
	}
	// A duplicate makes no Stripe call and no write. Subscription and
	// invoice payloads call Stripe only after their transaction has
	// recorded the event (a tie), so Apply finds their duplicates; the
	// others may call Stripe first and are looked up.
	if slices.Contains(callsFirst, ev.Type) || train(ev.APIVersion) != train(stripe.APIVersion) {
		done, err := b.store.Processed(ctx, ev.ID)
		if err != nil {
			return 0, fmt.Errorf("look up event %s: %w", ev.ID, err)
		}
		if done {
			return OutcomeDuplicate, nil
		}
	}
	err := b.applyEvent(ctx, ev)
	var (
		undecodable *errUndecodable
		unstorable  *errUnstorable
	)
	if errors.As(err, &undecodable) || errors.As(err, &unstorable) {
		// Retrying cannot help: keep it for an operator instead of
		// answering 500 for three days.
		if err := b.park(ctx, ev, raw, "", err.Error()); err != nil {
			return 0, err
		}
		return OutcomeParked, nil
	}
	var unknown *errUnknownCustomer
	switch {
	case err == nil:
		b.wakeHooks()
		return OutcomeApplied, nil
	case errors.Is(err, ErrDuplicateEvent):
		return OutcomeDuplicate, nil
	case errors.As(err, &unknown):
		if err := b.park(ctx, ev, raw, unknown.customer, unknown.Error()); err != nil {
			return 0, err
		}
		return OutcomeParked, nil
	}
	return 0, err
}

// callsFirst are the event types whose application may call Stripe
// before its transaction finds a duplicate.
var callsFirst = []string{evCheckoutDone, evCheckoutAsyncOK, evDisputeCreated, evDisputeClosed}

// unusable says why a verified event of a type billing applies cannot be
// applied at all, or "": no data.object (nothing to apply), an ID no
// store can keep (never one of Stripe's; parked under a storable one), no
// created time (Stripe always sends it; without it nothing is ordered).
func unusable(ev *wireEvent) string {
	switch {
	case !ev.hasObject():
		return "the event has no data.object"
	case !storable(ev.ID):
		return "the event's ID cannot be stored"
	case ev.Created <= 0:
		return "the event has no created time"
	}
	return ""
}

// errUndecodable is an event whose object cannot be read.
type errUndecodable struct {
	what string
	err  error
}

func (e *errUndecodable) Error() string {
	if e.err == nil {
		return "cannot read the event's " + e.what + ": it has no ID"
	}
	return "cannot read the event's " + e.what + ": " + e.err.Error()
}

func (e *errUndecodable) Unwrap() error { return e.err }

// applyEvent decodes a verified event's object and applies it.
func (b *Billing) applyEvent(ctx context.Context, ev *wireEvent) error {
	if train(ev.APIVersion) != train(stripe.APIVersion) {
		return b.applyRefetched(ctx, ev)
	}
	obj := ev.Data.Object
	switch ev.Type {
	case evInvoicePaid, evInvoiceFailed:
		if ev.objectErr != nil || obj.ID == "" {
			return &errUndecodable{what: "invoice", err: ev.objectErr}
		}
		return b.applyInvoice(ctx, ev, obj)
	case evCheckoutDone, evCheckoutAsyncOK:
		if ev.objectErr != nil || obj.ID == "" {
			return &errUndecodable{what: "checkout session", err: ev.objectErr}
		}
		return b.applyCheckout(ctx, ev, obj)
	case evChargeRefunded:
		if ev.objectErr != nil || obj.ID == "" {
			return &errUndecodable{what: "charge", err: ev.objectErr}
		}
		return b.applyRefund(ctx, ev, obj)
	case evDisputeCreated, evDisputeClosed:
		if ev.objectErr != nil || obj.ID == "" {
			return &errUndecodable{what: "dispute", err: ev.objectErr}
		}
		return b.applyDispute(ctx, ev, obj)
	default:
		if ev.objectErr != nil || obj.ID == "" {
			return &errUndecodable{what: "subscription", err: ev.objectErr}
		}
		return b.applySubscriptionEvent(ctx, ev, obj)
	}
}

var _ slog.LogValuer = Outcome(0)

// LogValue logs an Outcome by name.
func (o Outcome) LogValue() slog.Value { return slog.StringValue(o.String()) }
