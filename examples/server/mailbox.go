package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/sqlstore"
)

// The site's emails. billing reports each change of a user's billing to
// the hook handler (Config.Hooks), at least once, with a stable key: the
// site turns the changes a member should hear about into an email. This
// example sends nothing: each email goes to the app_emails table, next to
// the users tables, and the offline dev area lists them (/dev/mailbox).
// A real site would hand it to its mail provider here, with the change's
// key as the idempotency key.
//
// The key makes the send idempotent: change_key is unique, and an email
// whose key is already stored is not stored again, so a change delivered
// twice (after a crash, or a claim that ran out) sends one email.

// emailSchema creates the emails table in a dialect. change_key is
// compared byte for byte (Stripe IDs are case-sensitive), hence MySQL's
// binary collation; the ID orders the emails as they were sent.
func emailSchema(d sqlstore.Dialect) string {
	id, key, tail := "BIGSERIAL NOT NULL PRIMARY KEY", "VARCHAR(512) NOT NULL UNIQUE", ""
	switch d {
	case sqlstore.MySQL:
		id = "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY"
		key = "VARCHAR(512) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL UNIQUE"
		tail = " DEFAULT CHARSET=utf8mb4"
	case sqlstore.SQLite:
		id = "INTEGER PRIMARY KEY AUTOINCREMENT"
	}
	return `CREATE TABLE IF NOT EXISTS app_emails (
		id          ` + id + `,
		change_key  ` + key + `,
		user_id     VARCHAR(40)  NOT NULL,
		recipient   VARCHAR(254) NOT NULL,
		kind        VARCHAR(40)  NOT NULL,
		subject     VARCHAR(255) NOT NULL,
		body        TEXT         NOT NULL,
		sent_at     BIGINT       NOT NULL
	)` + tail
}

// email is one email the site sent.
type email struct {
	ID int64
	// Key is the key of the change it is about: its idempotency key.
	Key     string
	UserID  string
	To      string
	Kind    billing.ChangeKind
	Subject string
	Body    string
	// SentAt is billing's clock when it was sent: the offline Stripe's
	// simulated time, or the wall clock.
	SentAt time.Time
}

// mailbox is the store of sent emails.
type mailbox struct {
	db      *sql.DB
	dialect sqlstore.Dialect
}

// migrate creates the table if it does not exist.
func (m *mailbox) migrate(ctx context.Context) error {
	if _, err := m.db.ExecContext(ctx, emailSchema(m.dialect)); err != nil {
		return fmt.Errorf("create the emails table: %w", err)
	}
	return nil
}

// send stores an email unless one with its key is stored already, and
// reports whether it stored it.
func (m *mailbox) send(ctx context.Context, e email) (bool, error) {
	query := `INSERT INTO app_emails (change_key, user_id, recipient, kind, subject, body, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?)`
	if m.dialect == sqlstore.MySQL {
		query += ` ON DUPLICATE KEY UPDATE change_key = change_key` // a no-op: 0 rows affected
	} else {
		query += ` ON CONFLICT (change_key) DO NOTHING`
	}
	res, err := m.db.ExecContext(ctx, placeholders(m.dialect, query),
		e.Key, e.UserID, e.To, string(e.Kind), e.Subject, e.Body, e.SentAt.Unix())
	if err != nil {
		return false, fmt.Errorf("store the email of change %s: %w", e.Key, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store the email of change %s: %w", e.Key, err)
	}
	return n == 1, nil
}

// list returns up to limit emails, newest first.
func (m *mailbox) list(ctx context.Context, limit int) ([]email, error) {
	rows, err := m.db.QueryContext(ctx, placeholders(m.dialect,
		`SELECT id, change_key, user_id, recipient, kind, subject, body, sent_at FROM app_emails ORDER BY id DESC LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("list emails: %w", err)
	}
	defer rows.Close()
	var out []email
	for rows.Next() {
		var e email
		var kind string
		var sent int64
		if err := rows.Scan(&e.ID, &e.Key, &e.UserID, &e.To, &kind, &e.Subject, &e.Body, &sent); err != nil {
			return nil, fmt.Errorf("list emails: %w", err)
		}
		e.Kind, e.SentAt = billing.ChangeKind(kind), time.Unix(sent, 0).UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list emails: %w", err)
	}
	return out, nil
}

// emailChange is the site's billing.ChangeHandler: it sends the email a
// change calls for, once per change key. A change no email is about (a
// renewal, say) is done at once. An error makes billing deliver the
// change again later.
func (a *app) emailChange(ctx context.Context, c billing.Change) error {
	subject, body, ok := a.emailFor(c)
	if !ok {
		return nil
	}
	if c.Key == "" {
		return errors.New("a change without a key: no idempotent email possible") // billing dead-letters it
	}
	if c.PriceID == "" && c.SubscriptionID != "" {
		// A change that does not name the plan (trial ending): the
		// membership's, if it is still this subscription.
		if m, err := a.b.Membership(ctx, c.UserID); err == nil && m.SubscriptionID == c.SubscriptionID {
			c.PriceID = m.PriceID
			subject, body, _ = a.emailFor(c)
		}
	}
	u, err := a.users.billingUser(ctx, c.UserID)
	if errors.Is(err, billing.ErrNotFound) {
		a.log.Warn("email for a user who no longer exists: not sent", "change", c.Key, "user", c.UserID)
		return nil
	}
	if err != nil {
		return err
	}
	sent, err := a.mail.send(ctx, email{Key: c.Key, UserID: c.UserID, To: u.Email, Kind: c.Kind,
		Subject: subject, Body: body, SentAt: a.now()})
	if err != nil {
		return err
	}
	if sent {
		a.log.Info("email sent", "change", c.Key, "user", c.UserID, "subject", subject)
	} else {
		a.log.Info("email already sent for this change", "change", c.Key, "delivery", c.Delivery)
	}
	return nil
}

// emailFor writes the email a change calls for: its subject and its
// plain-text body; false when the member is not told about this kind.
func (a *app) emailFor(c billing.Change) (subject, body string, ok bool) {
	membership := "Gopher Club membership"
	if p, found := a.planByPrice(c.PriceID); found && p.Tier != "" {
		membership = "Gopher Club " + p.Name + " membership"
	}
	account := a.siteURL + "/account"
	switch c.Kind {
	case billing.ChangePaymentFailed:
		subject = fmt.Sprintf("Your payment failed (attempt %d)", c.Attempt)
		if c.NextPaymentAttempt.IsZero() {
			body = fmt.Sprintf("We could not charge your card for your %s, and that was our last try.\n"+
				"Update your card in Manage billing to keep your membership: %s", membership, account)
		} else {
			body = fmt.Sprintf("We could not charge your card for your %s (attempt %d); we will try again on %s.\n"+
				"To make sure it goes through, update your card in Manage billing: %s",
				membership, c.Attempt, longDate(c.NextPaymentAttempt), account)
		}
	case billing.ChangeAccessLocked:
		subject = "Your membership is on hold"
		why := "Your payment is past due"
		if c.Attempt > 0 {
			why = fmt.Sprintf("After %d failed payment attempts", c.Attempt)
		}
		body = fmt.Sprintf("%s, the members area is locked.\n"+
			"Update your card in Manage billing, and your access comes back as soon as a payment goes through: %s", why, account)
	case billing.ChangeRecovered:
		subject = "Your payment went through"
		body = fmt.Sprintf("Thank you: your payment for your %s went through, and your membership is in good standing again.\n"+
			"The members area is open: %s/members", membership, a.siteURL)
	case billing.ChangeTrialEnding:
		subject = "Your trial ends on " + longDate(c.TrialEnd)
		body = fmt.Sprintf("The free trial of your %s ends on %s. Your card is then charged, and your membership goes on.\n"+
			"Not for you? Cancel before then in Manage billing: %s", membership, longDate(c.TrialEnd), account)
	case billing.ChangeCancellationScheduled:
		until := "the end of the period you paid for"
		subject = "Your membership will not renew"
		if !c.CancelAt.IsZero() {
			until = longDate(c.CancelAt)
			subject = "Your membership ends on " + until
		}
		body = fmt.Sprintf("As you asked, your %s will not renew: the members area stays open until %s.\n"+
			"Changed your mind? Renew it in Manage billing: %s", membership, until, account)
	case billing.ChangeEnded:
		subject = "Your membership has ended"
		body = fmt.Sprintf("Your %s has ended, and the members area is closed.\n"+
			"We would be glad to have you back: %s/pricing", membership, a.siteURL)
	case billing.ChangeCreditsGranted:
		subject = fmt.Sprintf("%d credits added to your account", c.Credits)
		body = fmt.Sprintf("Thank you for your purchase of %s: %d credits were added to your account.\n"+
			"See your balance: %s", amount(c.Amount, c.Currency), c.Credits, account)
	case billing.ChangeRefunded:
		subject = "We refunded " + amount(c.RefundedNow, c.Currency)
		body = fmt.Sprintf("We refunded %s of your payment", amount(c.RefundedNow, c.Currency))
		if c.Amount > c.RefundedNow {
			body += fmt.Sprintf(" (%s refunded in all)", amount(c.Amount, c.Currency))
		}
		body += ". It reaches your card in 5 to 10 business days.\n" +
			"Credits bought with a refunded payment are taken back in proportion: " + account
	default:
		return "", "", false
	}
	return subject, body, true
}

// longDate is how emails write a day: "June 10, 2031" (UTC).
func longDate(t time.Time) string { return t.UTC().Format("January 2, 2006") }

// amount formats an amount in a currency's smallest unit: "$10",
// "$4.50" in dollars, "12.50 EUR" in another two-decimal currency. (The
// site sells in dollars.)
func amount(minor int64, currency string) string {
	if currency == "" || strings.EqualFold(currency, "usd") {
		return money(minor)
	}
	return fmt.Sprintf("%d.%02d %s", minor/100, minor%100, strings.ToUpper(currency))
}
