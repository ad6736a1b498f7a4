package billing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testcatalog"
	"github.com/gobilling/billing/memstore"
)

// The webhook benchmarks measure one delivery through the real handler of
// (*Billing).WebhookHandler on memstore, beside webhook.ConstructEvent
// alone on the same payloads; BENCHMARKS.md has the figures.
//
// Each benchmark builds a fake Stripe world (a checkout and a renewal,
// delivered in order) and a payload template outside the timer. The
// payloads of the timed loop are made and signed before b.ResetTimer, at
// most benchBatch at a time: with a larger b.N the timer is stopped
// between batches to make and sign the next one, so that no signature
// gets near stripe-go's 300-second tolerance and memory stays bounded.

const (
	benchSecret = "whsec_bench"
	benchUser   = "user_bench"
	benchBatch  = 1 << 14
)

var benchOpts = webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true} // as the handler verifies

// benchWorld is a Billing on memstore against a fake Stripe, with one
// paid subscription renewed once.
type benchWorld struct {
	fake     *billingtest.Stripe
	store    *memstore.Store
	h        http.Handler
	sub      string
	renewal  []billingtest.Event // the successful renewal's events, delivered
	renewed  int64               // their created time
	template billingtest.Event   // the renewal's customer.subscription.updated
}

func newBenchWorld(b *testing.B, hooks ...billing.Hooks) *benchWorld {
	b.Helper()
	var h billing.Hooks
	if len(hooks) > 0 {
		h = hooks[0]
	}
	ctx := context.Background()
	fake := testcatalog.NewStripe(b, time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC))
	store := memstore.New()
	bl, err := billing.New(billing.Config{
		SecretKey:      "sk_test_bench",
		WebhookSecrets: []string{benchSecret},
		SiteURL:        "https://app.example",
		Plans:          testcatalog.Plans(),
		Logger:         slog.New(slog.DiscardHandler),
		Clock:          fake,
		StripeURL:      fake.URL(),
		MaxRetries:     -1,
		Hooks:          h,
	}, store, billing.UserResolverFunc(func(ctx context.Context, id string) (billing.User, error) {
		return billing.User{ID: id, Email: id + "@example.com"}, nil
	}))
	if err != nil {
		b.Fatal(err)
	}
	w := &benchWorld{fake: fake, store: store, h: bl.WebhookHandler()}

	// The customer is created at the fake Stripe and linked to the user
	// before any event arrives, as Checkout does.
	cs, err := bl.Checkout(ctx, benchUser, billing.CheckoutOptions{PriceID: "price_pro"})
	if err != nil {
		b.Fatal(err)
	}
	customer := fake.CheckoutSession(cs.ID).Customer.ID
	err = store.Apply(ctx, "", func(ctx context.Context, tx billing.Tx) error {
		return tx.LinkCustomer(ctx, benchUser, customer) // already linked by Checkout: a no-op
	})
	if err != nil {
		b.Fatal(err)
	}
	evs, err := testcatalog.Pay(fake, cs.ID)
	if err != nil {
		b.Fatal(err)
	}
	w.sub = fake.SubscriptionsOf(customer)[0]
	w.deliverAll(b, evs)

	fake.Advance(30 * 24 * time.Hour)
	w.renewal, err = testcatalog.Renew(fake, w.sub)
	if err != nil {
		b.Fatal(err)
	}
	w.deliverAll(b, w.renewal)
	w.template = benchOnly(b, w.renewal, "customer.subscription.updated")
	w.renewed = w.template.Created

	fake.ResetCalls()
	return w
}

// deliverAll delivers events in order, outside any timing, and fails
// unless each is applied (or ignored, for the types billing does not use).
func (w *benchWorld) deliverAll(b *testing.B, evs []billingtest.Event) {
	b.Helper()
	for _, e := range evs {
		rec := httptest.NewRecorder()
		w.h.ServeHTTP(rec, benchSign(e.JSON).request())
		body := strings.TrimSpace(rec.Body.String())
		if rec.Code != http.StatusOK || body != `{"outcome":"applied"}` && body != `{"outcome":"ignored"}` {
			b.Fatalf("setup: %s %s: %d %s", e.Type, e.ID, rec.Code, body)
		}
	}
}

// checkNoCalls fails the benchmark if the fake Stripe was called since
// the last ResetCalls.
func (w *benchWorld) checkNoCalls(b *testing.B) {
	b.Helper()
	if n := w.fake.TotalCalls(); n != 0 {
		b.Fatalf("the timed deliveries made %d Stripe calls, want 0: %v", n, w.fake.Calls())
	}
}

func benchOnly(b *testing.B, evs []billingtest.Event, typ string) billingtest.Event {
	b.Helper()
	for _, e := range evs {
		if e.Type == typ {
			return e
		}
	}
	b.Fatalf("no %s among %d events", typ, len(evs))
	return billingtest.Event{}
}

// benchPayload is a signed webhook delivery.
type benchPayload struct {
	body   []byte
	header string
}

func benchSign(body []byte) benchPayload {
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: benchSecret, Timestamp: time.Now()})
	return benchPayload{body: sp.Payload, header: sp.Header}
}

func (p benchPayload) request() *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/stripe/webhook", bytes.NewReader(p.body))
	r.Header.Set("Stripe-Signature", p.header)
	return r
}

// benchTemplate turns an event's JSON into a template: set replaces
// values (top-level keys, or "data.object.<key>") with placeholders that
// fill fills in. The JSON is re-encoded as Stripe's (and the fake's)
// encoder wrote it: keys sorted, numbers kept as they were.
type benchTemplate struct{ raw string }

func newBenchTemplate(b *testing.B, ev billingtest.Event, keys ...string) benchTemplate {
	b.Helper()
	dec := json.NewDecoder(bytes.NewReader(ev.JSON))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		b.Fatal(err)
	}
	for _, k := range keys {
		obj, key := m, k
		if rest, ok := strings.CutPrefix(k, "data.object."); ok {
			obj, key = m["data"].(map[string]any)["object"].(map[string]any), rest
		}
		if _, ok := obj[key]; !ok {
			b.Fatalf("%s has no %s", ev.Type, k)
		}
		obj[key] = "@@" + k + "@@"
	}
	raw, err := json.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	return benchTemplate{raw: string(raw)}
}

// fill returns the JSON with each placeholder replaced by its raw JSON
// value, given as key, value pairs.
func (t benchTemplate) fill(kv ...string) []byte {
	for i := range kv {
		if i%2 == 0 {
			kv[i] = `"@@` + kv[i] + `@@"`
		}
	}
	return []byte(strings.NewReplacer(kv...).Replace(t.raw))
}

func benchEventID(i int) string { return fmt.Sprintf("evt_bench%019d", i) } // 24 characters after evt_, as the fake's

// benchSubUpdates makes the payloads of BenchmarkWebhookApply and
// BenchmarkConstructEvent: the renewal's customer.subscription.updated
// with a new event ID and a created time one second later each, so that
// each is applied as the newest state without a Stripe call.
func benchSubUpdates(b *testing.B, w *benchWorld) func(i int) []byte {
	t := newBenchTemplate(b, w.template, "id", "created")
	return func(i int) []byte {
		return t.fill("id", strconv.Quote(benchEventID(i)), "created", strconv.FormatInt(w.renewed+1+int64(i), 10))
	}
}

// benchLoop runs the timed loop over b.N payloads made by payload(i) and
// signed outside the timer, benchBatch at a time.
func benchLoop(b *testing.B, payload func(i int) []byte, run func(p benchPayload, i int)) {
	ps := make([]benchPayload, 0, min(b.N, benchBatch))
	for start := 0; start < b.N; start += benchBatch {
		n := min(benchBatch, b.N-start)
		if start > 0 {
			b.StopTimer()
		}
		ps = ps[:0]
		for i := range n {
			ps = append(ps, benchSign(payload(start+i)))
		}
		if start > 0 {
			b.StartTimer()
		} else {
			b.ResetTimer()
		}
		for i := range ps {
			run(ps[i], start+i)
		}
	}
}

// benchServe delivers payloads through the handler. The request and the
// recorder of each delivery are built with its batch, outside the timer:
// the timed loop is the handler's ServeHTTP and a check of its answer.
func benchServe(b *testing.B, w *benchWorld, payload func(i int) []byte, want string) {
	wantBody := []byte(fmt.Sprintf("{\"outcome\":%q}\n", want))
	type delivery struct {
		r   *http.Request
		rec *httptest.ResponseRecorder
	}
	ds := make([]delivery, 0, min(b.N, benchBatch))
	for start := 0; start < b.N; start += benchBatch {
		n := min(benchBatch, b.N-start)
		if start > 0 {
			b.StopTimer()
		}
		ds = ds[:0]
		for i := range n {
			ds = append(ds, delivery{benchSign(payload(start + i)).request(), httptest.NewRecorder()})
		}
		if start > 0 {
			b.StartTimer()
		} else {
			b.ResetTimer()
		}
		for i := range ds {
			d := &ds[i]
			w.h.ServeHTTP(d.rec, d.r)
			if d.rec.Code != http.StatusOK || !bytes.Equal(d.rec.Body.Bytes(), wantBody) {
				b.Fatalf("delivery %d: %d %s, want 200 %s", start+i, d.rec.Code, d.rec.Body, wantBody)
			}
		}
	}
	b.StopTimer()
}

// BenchmarkWebhookApply delivers a new customer.subscription.updated per
// iteration (unique event ID, created one second later than the last):
// verify, duplicate check, decode, and a committed conditional write, with
// no Stripe call.
func BenchmarkWebhookApply(b *testing.B) { benchWebhookApply(b) }

// BenchmarkWebhookApplyHooks is BenchmarkWebhookApply with hooks on: the
// same events take the general path (the record is read, so that its
// changes can be told) and record no change (a renewal's state again).
func BenchmarkWebhookApplyHooks(b *testing.B) { benchWebhookApply(b, benchHooks) }

// benchHooks is a Hooks whose handler is never called (no dispatcher
// runs in the benchmarks): the cost measured is recording.
var benchHooks = billing.Hooks{Handler: billing.ChangeHandlerFunc(func(context.Context, billing.Change) error { return nil })}

func benchWebhookApply(b *testing.B, hooks ...billing.Hooks) {
	w := newBenchWorld(b, hooks...)
	payload := benchSubUpdates(b, w)
	b.ReportAllocs()
	benchServe(b, w, payload, "applied")
	w.checkNoCalls(b)
	f, err := w.store.Facts(context.Background(), benchUser)
	if err != nil {
		b.Fatal(err)
	}
	if want := time.Unix(w.renewed+int64(b.N), 0).UTC(); len(f.Subscriptions) != 1 || !f.Subscriptions[0].Version.Equal(want) {
		b.Fatalf("stored subscriptions %+v, want one at version %v", f.Subscriptions, want)
	}
}

// BenchmarkWebhookDuplicate delivers the renewal's
// customer.subscription.updated again and again after its first delivery:
// verify and the duplicate check, no write and no Stripe call.
func BenchmarkWebhookDuplicate(b *testing.B) {
	w := newBenchWorld(b)
	body := w.template.JSON // delivered once by newBenchWorld
	b.ReportAllocs()
	benchServe(b, w, func(int) []byte { return body }, "duplicate")
	w.checkNoCalls(b)
}

// BenchmarkWebhookInvoice delivers a new invoice.payment_failed per
// iteration: a failed renewal's event with a unique event ID and a unique
// invoice ID created one second later each, so that each invoice's facts
// are written as the subscription's latest. No Stripe call.
func BenchmarkWebhookInvoice(b *testing.B) { benchWebhookInvoice(b) }

// BenchmarkWebhookInvoiceHooks is BenchmarkWebhookInvoice with hooks on:
// every event records a change (payment_failed of its invoice's attempt)
// in the outbox, in the same transaction.
func BenchmarkWebhookInvoiceHooks(b *testing.B) { benchWebhookInvoice(b, benchHooks) }

func benchWebhookInvoice(b *testing.B, hooks ...billing.Hooks) {
	w := newBenchWorld(b, hooks...)
	if _, err := w.fake.UpdateCard(w.fake.Subscription(w.sub).Customer.ID, billingtest.CardChargeFails); err != nil {
		b.Fatal(err)
	}
	evs, err := testcatalog.Renew(w.fake, w.sub) // a template only: not delivered
	if err != nil {
		b.Fatal(err)
	}
	ev := benchOnly(b, evs, "invoice.payment_failed")
	t := newBenchTemplate(b, ev, "id", "created", "data.object.id", "data.object.created")
	payload := func(i int) []byte {
		created := strconv.FormatInt(ev.Created+int64(i), 10)
		return t.fill("id", strconv.Quote(benchEventID(i)), "created", created,
			"data.object.id", strconv.Quote(fmt.Sprintf("in_bench%019d", i)), "data.object.created", created)
	}
	b.ReportAllocs()
	benchServe(b, w, payload, "applied")
	w.checkNoCalls(b)
	f, err := w.store.Facts(context.Background(), benchUser)
	if err != nil {
		b.Fatal(err)
	}
	if want := fmt.Sprintf("in_bench%019d", b.N-1); len(f.Subscriptions) != 1 || f.Subscriptions[0].Invoice.ID != want {
		b.Fatalf("stored subscriptions %+v, want one whose latest invoice is %s", f.Subscriptions, want)
	}
	if len(hooks) > 0 {
		st, err := w.store.OutboxStats(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if st.Pending < int64(b.N) {
			b.Fatalf("%d changes pending after %d failed payments: each should have recorded one", st.Pending, b.N)
		}
	}
}

// BenchmarkConstructEvent is webhook.ConstructEventWithOptions alone (the
// signature check and the event's decoding, as the handler calls it) on
// the payloads of BenchmarkWebhookApply.
func BenchmarkConstructEvent(b *testing.B) {
	w := newBenchWorld(b)
	payload := benchSubUpdates(b, w)
	b.ReportAllocs()
	benchLoop(b, payload, func(p benchPayload, i int) {
		ev, err := webhook.ConstructEventWithOptions(p.body, p.header, benchSecret, benchOpts)
		if err != nil || ev.ID == "" || ev.Data == nil {
			b.Fatalf("payload %d: %v", i, err)
		}
	})
	b.StopTimer()
}
