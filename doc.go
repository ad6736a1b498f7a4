// Package billing gives a Go web server Stripe billing: subscriptions and
// one-time payments through hosted Checkout, the Customer Portal, and a
// webhook handler that keeps each user's membership in the server's own
// database, correct whatever Stripe sends, in whatever order, however
// often.
//
// # Pieces
//
// A [Billing] is built by [New] from a [Config] (keys, plans, URLs), a
// [Store] (where facts live: package memstore in memory, package sqlstore
// on SQL databases) and a [UserResolver] (the app's users). It offers:
//
//   - [Billing.Checkout]: a hosted Checkout Session for a price, after
//     getting or creating the user's Stripe customer;
//   - [Billing.SyncCheckout]: the return page's reconciliation, so the page
//     is right before the webhook arrives;
//   - [Billing.Portal]: a Customer Portal session;
//   - [Billing.WebhookHandler]: the http.Handler for Stripe's events;
//   - [Billing.Membership] and [Billing.RequireMember]: what a user has
//     paid for, and middleware that gates pages on it.
//
// # Correctness
//
// Each webhook event is applied in one store transaction together with
// the record of its ID: a duplicate changes nothing and makes no Stripe
// call, and a failure is answered 500 so that Stripe retries; what can
// never be applied is parked (answered 200) for an operator
// ([Billing.ParkedEvents], [Billing.Replay]). Which state is newer is
// decided in one pure function, never by the Store: every stored
// subscription carries a version (Stripe's time for the state it holds),
// statuses move through phases that never go back (incomplete, live,
// final), and within a phase only a strictly newer version wins; when two
// states share a second, billing fetches the subscription and applies it
// once Stripe's clock proves it newer. Invoice facts (failed attempts)
// have their own order. One-time purchases are granted once per Checkout
// Session, whichever of the webhook and the return page comes first.
//
// # Stores
//
// A [Store] runs transactions, locks, reads and saves; it holds no
// business rule, so a store of one's own is short (examples/mapstore is a
// complete one). package storetest proves a store: storetest.Run checks
// the contract, storetest.RunLifecycles runs billing's real lifecycles
// through the webhook handler on the offline Stripe of package
// billingtest. A store may also implement [ConditionalStore], billing's
// one-statement path for a newer state.
//
// # Time
//
// Time comes from Config.Clock ([SystemClock] by default), which also
// waits: billing retries Stripe calls on it, so tests on billingtest's
// simulated clock never sleep.
//
// # Membership
//
// [Membership] is computed by one pure function from the stored facts and
// the time: status (none, pending, trialing, active, past_due, paused,
// canceled), tier, the end of access, a scheduled cancellation, failed
// payment attempts, and credits. A past_due subscription keeps access
// while Stripe still retries and fewer than Config.GraceAttempts attempts
// failed; access runs Config.AccessLeeway past the period end so that a
// renewal in flight never cuts it.
package billing
