package sqlstore_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"
	_ "modernc.org/sqlite" // the SQLite driver, pure Go

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/sqlstore"
)

// This program is the README's: billing on SQLite, in a temporary
// directory. It plays Stripe itself, sending one signed webhook event.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sqlstore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// Open the database. PostgreSQL: sql.Open("pgx", url) and
	// sqlstore.Postgres; MySQL: sql.Open("mysql", dsn) and sqlstore.MySQL.
	db, err := sqlstore.OpenSQLite(filepath.Join(dir, "billing.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	store, err := sqlstore.New(ctx, db, sqlstore.SQLite, sqlstore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	// Create or update the tables: at every start, in every replica.
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}

	b, err := billing.New(billing.Config{
		SecretKey:      "sk_test_example", // os.Getenv("STRIPE_SECRET_KEY")
		WebhookSecrets: []string{"whsec_example"},
		SiteURL:        "http://localhost:8080",
		Plans:          []billing.Plan{{PriceID: "price_pro", Tier: "pro"}},
	}, store, billing.UserResolverFunc(findUser))
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /stripe/webhook", b.WebhookHandler())

	// Forget processed events after 35 days, once a day.
	go func() {
		for range time.Tick(24 * time.Hour) {
			if _, err := store.PruneEvents(ctx); err != nil {
				log.Print(err)
			}
		}
	}()

	// b.Checkout links a user to a Stripe customer before the payment;
	// here we link one by hand. Then Stripe sends an event.
	err = store.Apply(ctx, "", func(ctx context.Context, tx billing.Tx) error {
		return tx.LinkCustomer(ctx, "user_42", "cus_Example")
	})
	if err != nil {
		log.Fatal(err)
	}
	for range 2 {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, stripeSends("whsec_example", subscriptionCreated))
		fmt.Print("webhook: ", rec.Code, " ", rec.Body.String())
	}
	m, err := b.Membership(ctx, "user_42")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("membership:", m.Status, m.Tier, "until", m.CurrentPeriodEnd.Format(time.DateOnly))

	// A real app serves mux:
	// log.Fatal(http.ListenAndServe(":8080", mux))

	// Output:
	// webhook: 200 {"outcome":"applied"}
	// webhook: 200 {"outcome":"duplicate"}
	// membership: active pro until 2100-01-01
}

// findUser looks a user up in the app's own database.
func findUser(ctx context.Context, id string) (billing.User, error) {
	return billing.User{ID: id, Email: id + "@example.com"}, nil
}

// stripeSends returns a webhook delivery as Stripe would make it.
func stripeSends(secret, payload string) *http.Request {
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{
		Payload: []byte(payload), Secret: secret, Timestamp: time.Now()})
	r := httptest.NewRequest(http.MethodPost, "/stripe/webhook", strings.NewReader(payload))
	r.Header.Set("Stripe-Signature", signed.Header)
	return r
}

const subscriptionCreated = `{
  "id": "evt_1Example", "object": "event", "type": "customer.subscription.created",
  "api_version": "2025-08-27.basil", "created": 1767600000, "livemode": false,
  "data": {"object": {
    "id": "sub_1Example", "object": "subscription", "customer": "cus_Example", "status": "active",
    "items": {"object": "list", "data": [{
      "id": "si_1Example", "object": "subscription_item", "quantity": 1,
      "price": {"id": "price_pro", "object": "price"},
      "current_period_start": 1767600000, "current_period_end": 4102444800}]}}}
}`
