package testcatalog

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gobilling/billing/billingtest"
)

// Steps of Stripe's clock, for tests: each advances the offline Stripe's
// clock to the moment Stripe does something to a subscription and returns
// the events (billingtest.Stripe.Advance), or an error when there is
// nothing to wait for.

// finalizeHour is how long a renewal invoice stays a draft.
const finalizeHour = time.Hour

func advanceTo(st *billingtest.Stripe, at time.Time) []billingtest.Event {
	return st.Advance(max(at.Sub(st.Now()), 0))
}

// PeriodEnd is the subscription's current period end (its first item's).
func PeriodEnd(st *billingtest.Stripe, subID string) (time.Time, error) {
	s := st.Subscription(subID)
	if s == nil || s.Items == nil || len(s.Items.Data) == 0 {
		return time.Time{}, fmt.Errorf("testcatalog: no subscription %q with items", subID)
	}
	return time.Unix(s.Items.Data[0].CurrentPeriodEnd, 0).UTC(), nil
}

// Renew lets the subscription's current period end and its renewal invoice
// be finalized and charged (an hour later).
func Renew(st *billingtest.Stripe, subID string) ([]billingtest.Event, error) {
	end, err := PeriodEnd(st, subID)
	if err != nil {
		return nil, err
	}
	return advanceTo(st, end.Add(finalizeHour)), nil
}

// Retry lets the next automatic payment attempt of the subscription's
// latest invoice happen.
func Retry(st *billingtest.Stripe, subID string) ([]billingtest.Event, error) {
	s := st.Subscription(subID)
	if s == nil || s.LatestInvoice == nil {
		return nil, fmt.Errorf("testcatalog: no subscription %q with an invoice", subID)
	}
	in := st.Invoice(s.LatestInvoice.ID)
	if in.NextPaymentAttempt == 0 {
		return nil, fmt.Errorf("testcatalog: invoice %s has no payment attempt scheduled", in.ID)
	}
	return advanceTo(st, time.Unix(in.NextPaymentAttempt, 0)), nil
}

// TrialWillEnd lets the trial's notice come (three days before it ends).
func TrialWillEnd(st *billingtest.Stripe, subID string) ([]billingtest.Event, error) {
	s := st.Subscription(subID)
	if s == nil || s.TrialEnd == 0 {
		return nil, fmt.Errorf("testcatalog: no subscription %q with a trial", subID)
	}
	return advanceTo(st, time.Unix(s.TrialEnd, 0).Add(-72*time.Hour)), nil
}

// EndTrial lets the trial end and the first invoice be charged (an hour
// later).
func EndTrial(st *billingtest.Stripe, subID string) ([]billingtest.Event, error) {
	s := st.Subscription(subID)
	if s == nil || s.TrialEnd == 0 {
		return nil, fmt.Errorf("testcatalog: no subscription %q with a trial", subID)
	}
	return advanceTo(st, time.Unix(s.TrialEnd, 0).Add(finalizeHour)), nil
}

// EndCancellation lets a scheduled cancellation take effect.
func EndCancellation(st *billingtest.Stripe, subID string) ([]billingtest.Event, error) {
	s := st.Subscription(subID)
	if s == nil || s.CancelAt == 0 {
		return nil, fmt.Errorf("testcatalog: no subscription %q with a scheduled cancellation", subID)
	}
	return advanceTo(st, time.Unix(s.CancelAt, 0)), nil
}

// Pay pays a Checkout Session with a working card and returns the events.
func Pay(st *billingtest.Stripe, sessionID string) ([]billingtest.Event, error) {
	return PayWith(st, sessionID, billingtest.CardOK)
}

// PayWith pays a Checkout Session with the given payment method.
func PayWith(st *billingtest.Stripe, sessionID, method string) ([]billingtest.Event, error) {
	p, err := st.Pay(sessionID, method)
	return p.Events, err
}

// Settle lets a bank debit paid in Checkout settle (3 minutes later).
func Settle(st *billingtest.Stripe) []billingtest.Event {
	return st.Advance(3 * time.Minute)
}

// SetCardFailing makes the customer's later charges fail (a card that
// fails every charge is saved), or work again (a working card is saved).
func SetCardFailing(st *billingtest.Stripe, customerID string, failing bool) error {
	card := billingtest.CardOK
	if failing {
		card = billingtest.CardChargeFails
	}
	_, err := st.UpdateCard(customerID, card)
	return err
}

// Request makes an API request to st as an app would and returns the
// events it caused; an answer other than 200 is an error.
func Request(st *billingtest.Stripe, method, path string, form url.Values) ([]billingtest.Event, error) {
	before := len(st.Events())
	var body io.Reader
	u := st.URL() + path
	if method == http.MethodGet {
		u += "?" + form.Encode()
	} else {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer sk_test_testcatalog")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	out, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("testcatalog: %s %s: %d %s", method, path, resp.StatusCode, out)
	}
	return st.Events()[before:], nil
}

// CancelAt schedules the subscription's cancellation at a time through
// the API (cancel_at), as an app or the Dashboard does.
func CancelAt(st *billingtest.Stripe, subID string, at time.Time) ([]billingtest.Event, error) {
	return Request(st, http.MethodPost, "/v1/subscriptions/"+subID, url.Values{"cancel_at": {fmt.Sprint(at.Unix())}})
}

// Expire expires an open Checkout Session through the API.
func Expire(st *billingtest.Stripe, sessionID string) ([]billingtest.Event, error) {
	return Request(st, http.MethodPost, "/v1/checkout/sessions/"+sessionID+"/expire", nil)
}

// Err returns a step's error, for asserting on it alone.
func Err(_ []billingtest.Event, err error) error { return err }
