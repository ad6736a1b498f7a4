package billing

import (
	"context"
	"fmt"
	"time"
)

// Clock tells the time and waits. billing reads the time from it (for
// access checks, idempotency windows and parking times) and waits on it
// between retries of Stripe calls and before re-fetching an object whose
// version tied the stored one, so that tests on a simulated clock never
// sleep for real. [SystemClock] is the real one; the offline Stripe of
// package billingtest is another.
type Clock interface {
	// Now returns the current time.
	Now() time.Time

	// Sleep waits until d has passed on the clock, or until ctx is done,
	// and then returns ctx's error. A clock may return at once with an
	// error wrapping context.DeadlineExceeded when ctx's deadline would
	// pass before d has: billing then gives up at once rather than past
	// the deadline.
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock is the real clock: [time.Now] and a timer. It is
// [Config].Clock's default.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Sleep waits d of real time, or until ctx is done. When ctx has a
// deadline sooner than d, it returns at once, with an error wrapping
// context.DeadlineExceeded.
func (SystemClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return fmt.Errorf("billing: a wait of %s would outlast the deadline: %w", d, context.DeadlineExceeded)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// waitNextSecond waits until the clock has passed into the next whole
// second (and a little more, for Stripe's clock to be there too).
func (b *Billing) waitNextSecond(ctx context.Context) error {
	now := b.now()
	return b.clock.Sleep(ctx, now.Truncate(time.Second).Add(time.Second).Sub(now)+20*time.Millisecond)
}
