package billingtest

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gobilling/billing/billingtest/internal/pages"
)

// Test payment methods, as Stripe documents them: cards, and for one-time
// payments bank accounts. The hosted pages and the Go helpers ([Stripe.Pay],
// [Stripe.UpdateCard]) take them with or without the spaces; any other
// number is refused as invalid.
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
	// renewals, retries and trial ends fail, until another card is saved.
	CardChargeFails = "4000 0000 0000 0341"
	// CardNeedsAuth is a card that requires authentication (3D Secure) for
	// a payment in Checkout: the hosted page asks to complete or fail it
	// first; [Stripe.Pay] completes it (to fail it, use the page). Once set
	// up, its later off-session charges succeed.
	CardNeedsAuth = "4000 0025 0000 3155"
	// CardAlwaysAuthenticate is a card that requires authentication for
	// every payment: in Checkout as [CardNeedsAuth]; its later off-session
	// charges (renewals, retries) need the customer too:
	// payment_intent.requires_action, invoice.payment_action_required,
	// then invoice.payment_failed as for a declined charge.
	CardAlwaysAuthenticate = "4000 0027 6000 3184"
	// CardLost is Stripe's card declined as lost (decline code lost_card):
	// in Checkout it is declined. Saved through the portal or
	// [Stripe.UpdateCard] it stands for a saved card later reported lost,
	// which Stripe would decline at once: billingtest saves it, and its
	// charges are hard declines, which are not retried.
	CardLost = "4000 0000 0000 9987"
	// CardDisputed is Stripe's card whose payments succeed and are then
	// disputed (reason fraudulent): every charge to it opens a dispute at
	// once (charge.dispute.created), which evidence closes:
	// evidence[uncategorized_text]=winning_evidence wins it, losing_evidence
	// loses it (POST /v1/disputes/{id}).
	CardDisputed = "4000 0000 0000 0259"
	// BankDebit is a bank account (Stripe's SEPA Direct Debit test IBAN)
	// for a one-time payment that settles later: the session completes
	// with payment_status unpaid, and 3 minutes later by the clock
	// ([Stripe.Advance]) the payment succeeds:
	// checkout.session.async_payment_succeeded.
	BankDebit = "DE89 3704 0044 0532 0130 00"
	// BankDebitFails is a bank account whose debit fails when it settles:
	// checkout.session.async_payment_failed, 3 minutes after completion.
	BankDebitFails = "DE62 3704 0044 0532 0130 01"
)

// bankDebit is a bank debit's outcome when it settles.
type bankDebit struct{ ok bool }

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
	// ErrAuthenticationFailed is the error of a failed authentication on
	// the hosted page: "We are unable to authenticate your payment method."
	ErrAuthenticationFailed error = &CardError{Code: "payment_intent_authentication_failure",
		Message: "We are unable to authenticate your payment method."}
	// errAuthenticationRequired tells the hosted page to ask for
	// authentication ([CardNeedsAuth]).
	errAuthenticationRequired error = &CardError{Code: "authentication_required",
		Message: "Your card requires authentication."}
	// ErrBankDebitNotModelled is the error of paying a subscription-mode
	// session by bank debit: billingtest models bank debits for one-time
	// payments only.
	ErrBankDebitNotModelled = errors.New("billingtest: bank debits are modelled for one-time payments (mode payment) only")

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
	cardAlwaysAuth
	cardLost
	cardDisputed
	bankDebitOK
	bankDebitFails
	cardNone // no payment method: a trial that does not collect one
)

// parseCard recognises a test card number, ignoring spaces and dashes.
func parseCard(number string) testCard {
	digits := strings.Map(func(r rune) rune {
		switch {
		case r == ' ' || r == '-' || r == '\t':
			return -1
		case r >= '0' && r <= '9', r >= 'A' && r <= 'Z':
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
	case "4000002760003184":
		return cardAlwaysAuth
	case "4000000000009987":
		return cardLost
	case "4000000000000259":
		return cardDisputed
	case "DE89370400440532013000":
		return bankDebitOK
	case "DE62370400440532013001":
		return bankDebitFails
	}
	return cardInvalid
}

// authStep is how a payment with [CardNeedsAuth] goes.
type authStep int

const (
	authMissing authStep = iota // not attempted: the page asks for it
	authApprove
	authFail
)

// Paid is what paying on a hosted Checkout page did.
type Paid struct {
	// RedirectURL is where the page sends the customer: the session's
	// success_url (return_url for an embedded session) with
	// {CHECKOUT_SESSION_ID} replaced by the session's ID.
	RedirectURL string
	// Events are the events Stripe sent, in order (also delivered to the
	// endpoints).
	Events []Event
}

// Pay does what the hosted Checkout page does when the customer submits a
// payment method, without a browser: the one way a Checkout Session is
// completed. With [CardOK] (or [CardNeedsAuth], whose authentication the
// customer completes) it completes the open session, marks the customer's
// card as working, and returns the redirect and the events:
//
// Subscription mode: creates the customer if the session had none, the
// subscription (metadata from subscription_data[metadata], one item with
// the session's price and quantity, a period of one interval from now, or
// the trial when subscription_data[trial_period_days] was given; the card
// becomes its default_payment_method) and its paid first invoice
// (billing_reason subscription_create). Events:
// customer.subscription.created (status incomplete, or trialing),
// invoice.created, invoice.finalized, invoice.paid,
// invoice.payment_succeeded, customer.subscription.updated (incomplete →
// active; not for a trial), checkout.session.completed (payment_status
// paid, or no_payment_required for a trial).
//
// Payment mode: checkout.session.completed with payment_status paid; with
// [BankDebit] or [BankDebitFails] unpaid, settled by the clock 3 minutes
// later.
//
// A session with payment_method_collection=if_required and a trial needs
// no payment method: paying it with "" starts the trial without one (its
// end then follows subscription_data[trial_settings][end_behavior]).
//
// Otherwise the session stays open, nothing is emitted and the error is a
// *[CardError]: [ErrCardDeclined] for [CardDeclined]; [ErrCardDeclined]
// for [CardChargeFails] too, whose card is first attached to the session's
// customer if it has one (its later charges fail); [ErrInvalidCardNumber]
// for any other number; [ErrBankDebitNotModelled] for a bank debit in
// subscription mode. An unknown session is [ErrNoSuchSession], one that is
// complete or expired [ErrSessionNotOpen].
func (s *Stripe) Pay(sessionID, paymentMethod string) (Paid, error) {
	return s.pay(sessionID, paymentMethod, authApprove)
}

// pay is Pay, with the customer's answer to an authentication challenge.
// It uses the exported simulator methods, so it must be called without
// s.mu.
func (s *Stripe) pay(sessionID, card string, auth authStep) (Paid, error) {
	cs := s.CheckoutSession(sessionID)
	if cs == nil {
		return Paid{}, fmt.Errorf("%w: %q", ErrNoSuchSession, sessionID)
	}
	if cs.Status != "open" {
		return Paid{}, fmt.Errorf("%w: %s is %s", ErrSessionNotOpen, cs.ID, cs.Status)
	}
	customer := ""
	if cs.Customer != nil {
		customer = cs.Customer.ID
	}
	var debit *bankDebit
	kind := parseCard(card)
	if card == "" && s.needsNoPaymentMethod(sessionID) {
		kind = cardNone
	}
	switch kind {
	case cardNone:
	case cardOK, cardDisputed:
	case cardDeclined:
		return Paid{}, declined("insufficient_funds")
	case cardLost:
		return Paid{}, declined("lost_card")
	case cardChargeFails:
		if customer != "" {
			if err := s.setCard(customer, cardChargeFails); err != nil {
				return Paid{}, err
			}
		}
		return Paid{}, declined("generic_decline")
	case cardNeedsAuth, cardAlwaysAuth:
		switch auth {
		case authMissing:
			return Paid{}, errAuthenticationRequired
		case authFail:
			return Paid{}, ErrAuthenticationFailed
		}
	case bankDebitOK, bankDebitFails:
		if cs.Mode != "payment" {
			return Paid{}, ErrBankDebitNotModelled
		}
		debit = &bankDebit{ok: parseCard(card) == bankDebitOK}
	default:
		return Paid{}, ErrInvalidCardNumber
	}
	evs, err := s.completeCheckout(sessionID, kind, debit)
	if err != nil {
		if now := s.CheckoutSession(sessionID); now != nil && now.Status != "open" {
			// Completed or expired meanwhile.
			return Paid{}, fmt.Errorf("%w: %s is %s", ErrSessionNotOpen, now.ID, now.Status)
		}
		return Paid{}, err
	}
	done := s.CheckoutSession(sessionID)
	if done == nil {
		return Paid{}, fmt.Errorf("%w: %q", ErrNoSuchSession, sessionID)
	}
	return Paid{RedirectURL: pages.SuccessURL(done.ID, done.SuccessURL, done.ReturnURL), Events: evs}, nil
}

// needsNoPaymentMethod reports whether a session can be completed without
// a payment method: a trial with payment_method_collection=if_required.
func (s *Stripe) needsNoPaymentMethod(sessionID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.sessions[sessionID]
	return cs != nil && cs.pmIfRequired && cs.trialDays > 0
}

// UpdateCard does what the portal's card update does, without a browser:
// it saves a test card as the customer's payment method for its
// subscriptions' later charges. [CardOK] and [CardNeedsAuth]
// (authenticated when saved) make them succeed, [CardChargeFails] makes
// them fail (until another card is saved), [CardAlwaysAuthenticate] makes
// them need the customer; [CardDeclined] is refused with
// [ErrCardDeclined] and any other number with [ErrInvalidCardNumber], and
// then nothing changes. The saved card becomes the customer's default
// payment method (invoice_settings.default_payment_method) and that of its
// subscriptions that have not ended. It returns the events, in Stripe's
// order: payment_method.attached, customer.updated, and
// customer.subscription.updated for each subscription whose default
// payment method changed.
func (s *Stripe) UpdateCard(customerID, card string) ([]Event, error) {
	kind := parseCard(card)
	switch kind {
	case cardOK, cardNeedsAuth, cardAlwaysAuth, cardChargeFails, cardLost, cardDisputed:
	case cardDeclined:
		if s.Customer(customerID) == nil {
			return nil, fmt.Errorf("billingtest: no such customer %q", customerID)
		}
		return nil, declined("insufficient_funds")
	default:
		if s.Customer(customerID) == nil {
			return nil, fmt.Errorf("billingtest: no such customer %q", customerID)
		}
		return nil, ErrInvalidCardNumber
	}
	return s.saveCard(customerID, kind)
}
