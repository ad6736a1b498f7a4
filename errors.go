package billing

import (
	"errors"
	"fmt"
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
	Want string // stripe.APIVersion of the stripe-go this library uses
}

// Error says which version arrived and how to fix the endpoint.
func (e *APIVersionError) Error() string {
	return fmt.Sprintf("billing: event api_version %q is not of the %s release train; create the webhook endpoint with api_version %q", e.Got, train(e.Want), e.Want)
}

// StripeError wraps a failed call to Stripe with the operation that failed.
// Unwrap gives the *stripe.Error (or network error) underneath.
type StripeError struct {
	Op  string // for instance "create checkout session"
	Err error
}

// Error names the operation and Stripe's error.
func (e *StripeError) Error() string { return "billing: stripe: " + e.Op + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *StripeError) Unwrap() error { return e.Err }
