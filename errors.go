package billing

import (
	"errors"
	"fmt"
	"strings"

	"github.com/stripe/stripe-go/v82"
)

// Errors returned by [Billing]'s methods. Test for them with [errors.Is].
var (
	// ErrConfig is wrapped by every error [New] returns for a bad Config.
	ErrConfig = errors.New("billing: invalid config")

	// ErrUnknownPrice is returned for a price ID that is not in
	// Config.Plans.
	ErrUnknownPrice = errors.New("billing: price is not configured")

	// ErrAlreadySubscribed is returned by [Billing.Checkout] for a
	// subscription when the user already has a live one and
	// CheckoutOptions.AllowAnotherSubscription is false. Send the user to
	// the Customer Portal to change plans instead.
	ErrAlreadySubscribed = errors.New("billing: user already has a live subscription")

	// ErrNoCustomer is returned by [Billing.Portal] for a user who never
	// had a Stripe customer (never started a checkout).
	ErrNoCustomer = errors.New("billing: user has no Stripe customer")

	// ErrSessionNotOwned is returned by [Billing.CheckoutStatus] and
	// [Billing.SyncCheckout] when the Checkout Session does not belong to
	// the user asking. Answer it like a not-found.
	ErrSessionNotOwned = errors.New("billing: checkout session belongs to another user")

	// ErrNoUser is returned (wrapped) by a UserResolver's RequestUser when
	// nobody is signed in.
	ErrNoUser = errors.New("billing: no signed-in user")

	// ErrNotParked is returned by [Billing.Replay] for an event that is not
	// parked.
	ErrNotParked = errors.New("billing: event is not parked")

	// ErrInvalidArgument is wrapped by errors for bad arguments to
	// Billing's methods (an empty user ID, a negative quantity, a success
	// URL without {CHECKOUT_SESSION_ID}, ...), checked before any Stripe
	// call or write: answer them 400.
	ErrInvalidArgument = errors.New("billing: invalid argument")
)

// Errors the webhook handler reports in its log lines (and its 400
// answers) for deliveries it rejects.
var (
	// ErrLivemodeMismatch: a live event reached a test-mode setup or the
	// other way round.
	ErrLivemodeMismatch = errors.New("billing: event livemode does not match the secret key's mode")
)

// APIVersionError is the error for an event whose api_version belongs to
// another release train than the one this library is built for. The
// webhook endpoint's API version is fixed when the endpoint is created:
// create a new endpoint at Want (or change its version in the Dashboard).
type APIVersionError struct {
	Got  string // the event's api_version
	Want string // the API version this library is built for
}

// Error says which version arrived and how to fix the endpoint.
func (e *APIVersionError) Error() string {
	return fmt.Sprintf("billing: event api_version %q is not of the %s release train; create the webhook endpoint with api_version %q", e.Got, train(e.Want), e.Want)
}

// StripeError is a failed call to Stripe: the operation, and what Stripe
// answered (HTTPStatus is 0 when the call failed on the network). Unwrap
// gives the underlying error (stripe-go's, or the network's), for
// callers that need more; the fields here do not change with stripe-go's
// major versions.
type StripeError struct {
	Op          string // for instance "create checkout session"
	HTTPStatus  int    // 402, 404, 429, 500, ...; 0 for a network failure
	Type        string // Stripe's error type: "card_error", "invalid_request_error", "api_error", ...
	Code        string // Stripe's error code, such as "resource_missing"
	DeclineCode string // for card errors, such as "insufficient_funds"
	Message     string // Stripe's message, for people
	RequestID   string // Stripe's request ID (req_...), for its support
	Err         error
}

// newStripeError wraps err, a failed Stripe call, with op and what
// Stripe answered.
func newStripeError(op string, err error) *StripeError {
	e := &StripeError{Op: op, Err: err}
	var se *stripe.Error
	if errors.As(err, &se) {
		e.HTTPStatus, e.Type, e.Code, e.DeclineCode = se.HTTPStatusCode, string(se.Type), string(se.Code), string(se.DeclineCode)
		e.Message, e.RequestID = se.Msg, se.RequestID
	}
	return e
}

// Error names the operation and Stripe's error.
func (e *StripeError) Error() string {
	if e.HTTPStatus == 0 {
		return "billing: stripe: " + e.Op + ": " + e.Err.Error()
	}
	msg := fmt.Sprintf("billing: stripe: %s: %d", e.Op, e.HTTPStatus)
	for _, f := range []string{e.Type, e.Code, e.DeclineCode} {
		if f != "" {
			msg += " " + f
		}
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.RequestID != "" {
		msg += " (request " + e.RequestID + ")"
	}
	return msg
}

// Unwrap returns the underlying error.
func (e *StripeError) Unwrap() error { return e.Err }

// train returns an API version's release train ("basil" of
// "2025-08-27.basil"), or "" for a version from before release trains.
func train(v string) string {
	_, t, ok := strings.Cut(v, ".")
	if !ok {
		return ""
	}
	return t
}
