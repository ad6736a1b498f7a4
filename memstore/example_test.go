package memstore_test

import (
	"context"
	"fmt"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/memstore"
)

func Example() {
	ctx := context.Background()
	st := memstore.New()

	// A user billing knows nothing about has zero facts, not an error.
	f, err := st.Facts(ctx, "user_42")
	fmt.Printf("unknown: user=%s customer=%q subscriptions=%d grants=%d err=%v\n",
		f.UserID, f.CustomerID, len(f.Subscriptions), len(f.Grants), err)

	// Writes happen in Apply, recorded under an event ID.
	err = st.Apply(ctx, "evt_1", func(ctx context.Context, tx billing.Tx) error {
		return tx.LinkCustomer(ctx, "user_42", "cus_123")
	})
	fmt.Println("apply:", err)
	err = st.Apply(ctx, "evt_1", func(ctx context.Context, tx billing.Tx) error {
		return nil
	})
	fmt.Println("again:", err)

	f, _ = st.Facts(ctx, "user_42")
	fmt.Printf("known: user=%s customer=%q\n", f.UserID, f.CustomerID)

	// Output:
	// unknown: user=user_42 customer="" subscriptions=0 grants=0 err=<nil>
	// apply: <nil>
	// again: billing: event already processed
	// known: user=user_42 customer="cus_123"
}
