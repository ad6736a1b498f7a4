package billingtest

import (
	"errors"
	"fmt"
	"strings"
)

// Test card numbers, as Stripe documents them. The hosted pages and the Go
// helpers ([Stripe.Pay], [Stripe.PayAndAuthenticate], [Stripe.UpdateCard])
// take them with or without the spaces; any other number is refused as
// invalid.
const (
	// CardOK is a card whose charges succeed.
	CardOK = "4242 4242 4242 4242"
	// CardDeclined is a card that is declined (decline code
	// insufficient_funds) and cannot be saved: nothing changes.
	CardDeclined = "4000 0000 0000 9995"
	// CardChargeFails is a card that can be attached to a customer but
	// whose every charge fails: in Checkout it is attached to the session's
	// customer (if it has one) and the payment is declined; saved through
	// the portal or [Stripe.UpdateCard] it makes the customer's later
	// renewals, retries and trial ends fail (see [Stripe.SetCardFailing]).
	CardChargeFails = "4000 0000 0000 0341"
	// CardNeedsAuth is a card that requires authentication (3D Secure) for
	// a payment in Checkout: the hosted page asks to complete or fail it
	// first; [Stripe.Pay] refuses it with [ErrAuthenticationRequired] and
	// [Stripe.PayAndAuthenticate] plays the challenge. Once set up, its
	// later off-session charges succeed.
	CardNeedsAuth = "4000 0025 0000 3155"
)

// CardError is a payment or card update refused because of the card, as
// Stripe reports it (an error of type card_error). Compare with the Err*
// values below using [errors.Is]: an error matches one of them if its Code
// is the same (and its DeclineCode, when the value has one).
type CardError struct {
	// Code is Stripe's error code: card_declined, invalid_number,
	// authentication_required or payment_intent_authentication_failure.
	Code string
	// DeclineCode is the issuer's reason for a card_declined error, e.g.
	// insufficient_funds or generic_decline; empty otherwise.
	DeclineCode string
	// Message is the message Stripe Checkout shows, e.g. "Your card was
	// declined."
	Message string
}

// Error returns the message, prefixed with the package name.
func (e *CardError) Error() string { return "billingtest: " + e.Message }

// Is reports whether target is a *CardError with the same Code and, if the
// target has one, the same DeclineCode.
func (e *CardError) Is(target error) bool {
	t, ok := target.(*CardError)
	return ok && t.Code == e.Code && (t.DeclineCode == "" || t.DeclineCode == e.DeclineCode)
}

// Errors of the test cards and of paying. The card errors are *[CardError]
// values.
var (
	// ErrCardDeclined is the error of a declined card ([CardDeclined], and
	// [CardChargeFails] when charged): "Your card was declined."
	ErrCardDeclined error = &CardError{Code: "card_declined", Message: "Your card was declined."}
	// ErrInvalidCardNumber is the error of a number that is not one of the
	// test cards: "Your card number is invalid."
	ErrInvalidCardNumber error = &CardError{Code: "invalid_number", Message: "Your card number is invalid."}
	// ErrAuthenticationRequired is [Stripe.Pay]'s error for [CardNeedsAuth]:
	// the payment needs the customer to authenticate it, which
	// [Stripe.PayAndAuthenticate] (or the hosted page) simulates.
	ErrAuthenticationRequired error = &CardError{Code: "authentication_required",
		Message: "Your card requires authentication."}
	// ErrAuthenticationFailed is the error of a failed authentication: "We
	// are unable to authenticate your payment method."
	ErrAuthenticationFailed error = &CardError{Code: "payment_intent_authentication_failure",
		Message: "We are unable to authenticate your payment method."}

	// ErrNoSuchSession is the error (wrapped, with the ID) for an unknown
	// Checkout Session.
	ErrNoSuchSession = errors.New("billingtest: no such checkout session")
	// ErrSessionNotOpen is the error (wrapped, with the ID and status) for
	// paying a Checkout Session that is already complete or expired.
	ErrSessionNotOpen = errors.New("billingtest: checkout session is not open")
)

// declined is the error of a declined card with the issuer's reason; it
// matches ErrCardDeclined.
func declined(code string) error {
	return &CardError{Code: "card_declined", DeclineCode: code, Message: "Your card was declined."}
}

// testCard is what a test card number does.
type testCard int

const (
	cardInvalid testCard = iota
	cardOK
	cardDeclined
	cardChargeFails
	cardNeedsAuth
)

// parseCard recognises a test card number, ignoring spaces and dashes.
func parseCard(number string) testCard {
	digits := strings.Map(func(r rune) rune {
		switch {
		case r == ' ' || r == '-' || r == '\t':
			return -1
		case r >= '0' && r <= '9':
			return r
		}
		return 'x'
	}, number)
	switch digits {
	case "4242424242424242":
		return cardOK
	case "4000000000009995":
		return cardDeclined
	case "4000000000000341":
		return cardChargeFails
	case "4000002500003155":
		return cardNeedsAuth
	}
	return cardInvalid
}

// authStep is how a payment with [CardNeedsAuth] goes.
type authStep int

const (
	authMissing authStep = iota // not attempted: ErrAuthenticationRequired
	authApprove
	authFail
)

// Pay does what the hosted Checkout page does when the customer submits a
// card number, without a browser. With [CardOK] it completes the open
// Checkout Session as [Stripe.CompleteCheckout] does (emitting the same
// events), marks the customer's card as working, and returns the URL the
// page redirects to: the session's success_url (return_url for an embedded
// session) with {CHECKOUT_SESSION_ID} replaced by the session's ID.
//
// Otherwise the session stays open, nothing is emitted and the error is a
// *[CardError]: [ErrCardDeclined] for [CardDeclined]; [ErrCardDeclined]
// for [CardChargeFails] too, whose card is first attached to the session's
// customer if it has one ([Stripe.SetCardFailing] true); and
// [ErrAuthenticationRequired] for [CardNeedsAuth] (see
// [Stripe.PayAndAuthenticate]); [ErrInvalidCardNumber] for any other number.
// An unknown session is [ErrNoSuchSession], one that is complete or expired
// [ErrSessionNotOpen].
func (s *Stripe) Pay(sessionID, card string) (redirectURL string, err error) {
	return s.pay(sessionID, card, authMissing)
}

// PayAndAuthenticate is [Stripe.Pay] where the customer also answers the
// authentication challenge that [CardNeedsAuth] brings up, as on the hosted
// page's "Complete authentication" step: approve completes the payment as
// [CardOK] does; otherwise the session stays open and the error is
// [ErrAuthenticationFailed]. With another card, approve is ignored and it is
// the same as Pay.
func (s *Stripe) PayAndAuthenticate(sessionID, card string, approve bool) (redirectURL string, err error) {
	step := authFail
	if approve {
		step = authApprove
	}
	return s.pay(sessionID, card, step)
}

// pay is Pay and PayAndAuthenticate. It uses the exported simulator
// methods, so it must be called without s.mu.
func (s *Stripe) pay(sessionID, card string, auth authStep) (string, error) {
	cs := s.checkoutSession(sessionID)
	if cs == nil {
		return "", fmt.Errorf("%w: %q", ErrNoSuchSession, sessionID)
	}
	if cs.Status != "open" {
		return "", fmt.Errorf("%w: %s is %s", ErrSessionNotOpen, cs.ID, cs.Status)
	}
	customer := ""
	if cs.Customer != nil {
		customer = cs.Customer.ID
	}
	switch parseCard(card) {
	case cardOK:
	case cardDeclined:
		return "", declined("insufficient_funds")
	case cardChargeFails:
		if customer != "" {
			if err := s.SetCardFailing(customer, true); err != nil {
				return "", err
			}
		}
		return "", declined("generic_decline")
	case cardNeedsAuth:
		switch auth {
		case authMissing:
			return "", ErrAuthenticationRequired
		case authFail:
			return "", ErrAuthenticationFailed
		}
	default:
		return "", ErrInvalidCardNumber
	}
	// The new card pays; it replaces a failing one.
	if customer != "" {
		if err := s.SetCardFailing(customer, false); err != nil {
			return "", err
		}
	}
	if _, err := s.CompleteCheckout(sessionID, CompleteOptions{}); err != nil {
		if now := s.CheckoutSession(sessionID); now != nil && now.Status != "open" {
			// Completed or expired meanwhile.
			return "", fmt.Errorf("%w: %s is %s", ErrSessionNotOpen, now.ID, now.Status)
		}
		return "", err
	}
	done := s.CheckoutSession(sessionID)
	if done == nil {
		return "", fmt.Errorf("%w: %q", ErrNoSuchSession, sessionID)
	}
	if customer == "" && done.Customer != nil {
		// A customer made on completion has the card that just worked.
		if err := s.SetCardFailing(done.Customer.ID, false); err != nil {
			return "", err
		}
	}
	return successURL(done.ID, done.SuccessURL, done.ReturnURL), nil
}

// successURL is where a completed session sends the customer: success_url
// (return_url for an embedded session) with {CHECKOUT_SESSION_ID} replaced.
func successURL(id, success, ret string) string {
	u := success
	if u == "" {
		u = ret
	}
	return strings.ReplaceAll(u, "{CHECKOUT_SESSION_ID}", id)
}

// UpdateCard does what the portal's card update does, without a browser:
// it saves a test card as the customer's payment method for its
// subscriptions' later charges. [CardOK] and [CardNeedsAuth]
// (authenticated when saved) make them succeed, [CardChargeFails] makes
// them fail ([Stripe.SetCardFailing]); [CardDeclined] is refused with
// [ErrCardDeclined] and any other number with [ErrInvalidCardNumber], and
// then nothing changes. The saved card becomes the customer's default
// payment method (invoice_settings.default_payment_method) and that of its
// subscriptions that have not ended. No event is emitted.
func (s *Stripe) UpdateCard(customerID, card string) error {
	failing := false
	switch parseCard(card) {
	case cardOK, cardNeedsAuth:
	case cardChargeFails:
		failing = true
	case cardDeclined:
		if s.Customer(customerID) == nil {
			return fmt.Errorf("billingtest: no such customer %q", customerID)
		}
		return declined("insufficient_funds")
	default:
		if s.Customer(customerID) == nil {
			return fmt.Errorf("billingtest: no such customer %q", customerID)
		}
		return ErrInvalidCardNumber
	}
	return s.setCard(customerID, failing, true)
}
