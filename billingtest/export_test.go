package billingtest

// SetBeforeExecute sets a hook that each API request calls, without the
// fake's lock, after it passed the idempotency checks (its key, if any, is
// then in flight) and before its handler runs; nil removes it. Tests use it
// to hold a request in flight.
func (s *Stripe) SetBeforeExecute(f func(route, idempotencyKey string)) {
	s.api.SetBeforeExecute(f)
}

// ValidParams returns the table of valid parameters by route.
func ValidParams() map[string][]string { return validParams }

// Money is money, for its test.
func Money(currency string, amount int64) string { return money(currency, amount) }
