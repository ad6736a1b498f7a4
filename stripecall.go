package billing

import (
	"context"
	"errors"
	"iter"
	"time"

	"github.com/stripe/stripe-go/v82"
)

// billing retries Stripe calls itself, on its Clock: stripe-go's own
// network retries are off, since they sleep on the real clock and ignore
// the context's deadline.
const (
	retryBaseDelay = 500 * time.Millisecond // the first pause; each next one doubles
	retryMaxDelay  = 8 * time.Second
)

// callKind says whether a Stripe request changes anything, which decides
// which failures are worth another try.
type callKind int

const (
	read  callKind = iota // GET: any transient failure may be retried
	write                 // POST with an idempotency key: a replay returns the first answer
)

// retryable reports whether a failed Stripe call is worth running again.
// Network failures, 409 (the idempotency key in use by a concurrent
// request, or a lock conflict) and 429 are; so are 5xx answers to reads.
// A 5xx answer to a write is not: Stripe stored it under the idempotency
// key and replays it for 24 hours. Stripe-Should-Retry decides when sent.
func retryable(kind callKind, err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var se *stripe.Error
	if !errors.As(err, &se) {
		return true // the network: the request may not have reached Stripe
	}
	if se.LastResponse != nil {
		switch se.LastResponse.Header.Get("Stripe-Should-Retry") {
		case "true":
			return true
		case "false":
			return false
		}
	}
	switch {
	case se.HTTPStatusCode == 409, se.HTTPStatusCode == 429:
		return true
	case se.HTTPStatusCode >= 500:
		return kind == read
	}
	return false
}

// call runs a Stripe request and retries it, up to Config.MaxRetries
// times, while it fails in a way worth retrying, pausing on the clock
// between tries (0.5 s, then doubling, at most 8 s). A write must carry
// an idempotency key, so that every try is the same request to Stripe.
// It returns the last error, unwrapped: callers wrap it in a StripeError.
func (b *Billing) call(ctx context.Context, kind callKind, fn func(ctx context.Context) error) error {
	delay := retryBaseDelay
	for attempt := 0; ; attempt++ {
		err := fn(withAttempt(ctx, attempt))
		if err == nil || attempt >= b.retries || !retryable(kind, err) {
			return err
		}
		b.log.Debug("stripe call failed; retrying", "attempt", attempt+1, "pause", delay, "error", err.Error())
		if werr := b.clock.Sleep(ctx, delay); werr != nil {
			return errors.Join(err, werr)
		}
		delay = min(2*delay, retryMaxDelay)
	}
}

// list iterates over a Stripe list, page by page, retrying a page that
// fails as [Billing.call] does: from the item after the last one seen.
// page starts a listing after the given ID ("" for the first page), with
// the context of its try.
func list[T any](ctx context.Context, b *Billing, page func(ctx context.Context, after string) iter.Seq2[T, error], id func(T) string) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		after, delay, attempt := "", retryBaseDelay, 0
		for {
			var failed error
			for v, err := range page(withAttempt(ctx, attempt), after) {
				if err != nil {
					failed = err
					break
				}
				attempt, delay = 0, retryBaseDelay
				after = id(v)
				if !yield(v, nil) {
					return
				}
			}
			if failed == nil {
				return
			}
			var zero T
			if attempt >= b.retries || !retryable(read, failed) {
				yield(zero, failed)
				return
			}
			b.log.Debug("stripe list failed; retrying", "attempt", attempt+1, "pause", delay, "error", failed.Error())
			if werr := b.clock.Sleep(ctx, delay); werr != nil {
				yield(zero, errors.Join(failed, werr))
				return
			}
			attempt++
			delay = min(2*delay, retryMaxDelay)
		}
	}
}
