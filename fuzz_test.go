package billing_test

import (
	"context"
	"testing"
	"time"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/memstore"
)

// FuzzWebhook delivers arbitrary bodies, correctly signed, to the handler:
// it must never panic, must answer 200, 400 or 500 (Stripe is out of reach
// here, so a fetch fails), and must record nothing it did not answer 200.
func FuzzWebhook(f *testing.F) {
	now := time.Now().Unix()
	f.Add(event("evt_1", "customer.subscription.updated", now, subJSON("sub_1", "cus_1", "active", "price_pro", now+86400)))
	f.Add(event("evt_2", "invoice.payment_failed", now, `{"id":"in_1","object":"invoice","customer":"cus_1","status":"open","attempt_count":2,"parent":{"type":"subscription_details","subscription_details":{"subscription":"sub_1"}}}`))
	f.Add(event("evt_3", "checkout.session.completed", now, `{"id":"cs_1","object":"checkout.session","mode":"payment","payment_status":"paid","customer":"cus_1","metadata":{"billing_price_id":"price_pack","billing_quantity":"x"}}`))
	f.Add([]byte(`{"id":"evt_4","type":"customer.subscription.deleted","api_version":"2025-08-27.basil","data":{"object":{"id":"sub_1","items":{"data":[null]}}}}`))
	f.Add([]byte(`{}`))
	f.Add(event("evt_5", "customer.subscription.updated", now, `null`))
	f.Add(event("evt_6", "checkout.session.completed", now, `{"object":"checkout.session","mode":"payment","payment_status":"paid","customer":"cus_1"}`))
	// One Billing for every input, on a store emptied for each: building
	// a Billing (a stripe-go client, a logger) per input made the fuzzer
	// report 0 execs/s for seconds at a time.
	swap := &swapStore{}
	e := newHandlerEnv(f, swap)
	f.Fuzz(func(t *testing.T, body []byte) {
		store := memstore.New()
		linked(t, store, "u1", "cus_1")
		swap.Store = store
		w := e.deliver(t, body)
		switch w.Code {
		case 200, 400, 500:
		default:
			t.Fatalf("status %d", w.Code)
		}
		if w.Code != 200 {
			f, err := store.Facts(context.Background(), "u1")
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Subscriptions)+len(f.Grants) != 0 {
				t.Fatalf("a %d answer changed state: %+v", w.Code, f)
			}
		}
		f, err := store.Facts(context.Background(), "u1")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range f.Subscriptions {
			if s.ID == "" {
				t.Fatalf("stored a subscription without an ID")
			}
		}
		for _, g := range f.Grants {
			if g.CheckoutSessionID == "" {
				t.Fatalf("stored a grant without a session ID")
			}
		}
	})
}

// swapStore is a Store whose implementation a test replaces between uses.
type swapStore struct{ billing.Store }
