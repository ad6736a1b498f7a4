package billing

// SubscriptionStatus is Stripe's status of a subscription, as billing
// keeps it: its own type, so that a stripe-go upgrade changes nothing in
// billing's API. A status Stripe adds later is kept as it comes.
type SubscriptionStatus string

// Stripe's subscription statuses.
const (
	SubscriptionIncomplete        SubscriptionStatus = "incomplete"
	SubscriptionIncompleteExpired SubscriptionStatus = "incomplete_expired"
	SubscriptionTrialing          SubscriptionStatus = "trialing"
	SubscriptionActive            SubscriptionStatus = "active"
	SubscriptionPastDue           SubscriptionStatus = "past_due"
	SubscriptionUnpaid            SubscriptionStatus = "unpaid"
	SubscriptionPaused            SubscriptionStatus = "paused"
	SubscriptionCanceled          SubscriptionStatus = "canceled"
)

// Live reports whether a subscription in this status still bills the
// user (trialing, active, past_due, unpaid, paused).
func (s SubscriptionStatus) Live() bool {
	switch s {
	case SubscriptionTrialing, SubscriptionActive, SubscriptionPastDue, SubscriptionUnpaid, SubscriptionPaused:
		return true
	}
	return false
}

// Final reports whether nothing can follow this status (canceled,
// incomplete_expired).
func (s SubscriptionStatus) Final() bool {
	return s == SubscriptionCanceled || s == SubscriptionIncompleteExpired
}

// SessionStatus is a Checkout Session's status.
type SessionStatus string

// Checkout Session statuses.
const (
	SessionOpen     SessionStatus = "open"
	SessionComplete SessionStatus = "complete"
	SessionExpired  SessionStatus = "expired"
)

// PaymentStatus is a Checkout Session's payment status.
type PaymentStatus string

// Checkout Session payment statuses.
const (
	PaymentPaid              PaymentStatus = "paid"
	PaymentUnpaid            PaymentStatus = "unpaid"
	PaymentNoPaymentRequired PaymentStatus = "no_payment_required"
)

// CheckoutMode is a Checkout Session's mode.
type CheckoutMode string

// Checkout Session modes.
const (
	ModeSubscription CheckoutMode = "subscription"
	ModePayment      CheckoutMode = "payment"
	ModeSetup        CheckoutMode = "setup"
)
