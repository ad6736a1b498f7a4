package main

import (
	"context"
	"database/sql"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testenv"
	"github.com/gobilling/billing/sqlstore"
)

// testStart is where the offline Stripe's clock starts in tests, so that
// the dates on the pages are known. (Its months follow the calendar.)
var testStart = time.Date(2031, time.April, 10, 12, 0, 0, 0, time.UTC)

// newTestSite runs the site in offline mode on a fresh SQLite file, served
// by an httptest server whose URL is the site's SiteURL. The options
// change its configuration.
func newTestSite(t *testing.T, opts ...func(*appConfig)) (*app, *httptest.Server) {
	t.Helper()
	db, err := sqlstore.OpenSQLite(filepath.Join(t.TempDir(), "site.db"))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return newTestSiteWrapped(t, db, sqlstore.SQLite, "", nil, opts...)
}

// withAdmins makes these emails admins.
func withAdmins(emails ...string) func(*appConfig) {
	return func(c *appConfig) { c.AdminEmails = emails }
}

// newTestSiteWrapped runs the site in offline mode on a database, with
// billing's tables named by prefix, the test's own handler around the
// site's if wrap is not nil, and options.
func newTestSiteWrapped(t *testing.T, db *sql.DB, dialect sqlstore.Dialect, prefix string, wrap func(http.Handler) http.Handler, opts ...func(*appConfig)) (*app, *httptest.Server) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	cfg := appConfig{
		SiteURL:      "http://" + srv.Listener.Addr().String(),
		DB:           db,
		Dialect:      dialect,
		TablePrefix:  prefix,
		Logger:       testLogger(t),
		OfflineStart: testStart,
		BcryptCost:   bcrypt.MinCost,
	}
	for _, o := range opts {
		o(&cfg)
	}
	a, err := newApp(context.Background(), cfg)
	require.NoError(t, err)
	srv.Config.Handler = a
	if wrap != nil {
		srv.Config.Handler = wrap(a)
	}
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		a.Close()
	})
	return a, srv
}

// testLogger logs warnings and errors to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// bufferLogger logs from Info up into a buffer for the test to read, and
// to the test's output.
func bufferLogger(t *testing.T) (*slog.Logger, *testenv.LogBuffer) {
	var logs testenv.LogBuffer
	return slog.New(slog.NewTextHandler(io.MultiWriter(&logs, t.Output()), &slog.HandlerOptions{Level: slog.LevelInfo})), &logs
}

// client is a browser stand-in: it keeps cookies and does not follow
// redirects, so tests see each 303.
type client struct {
	t    *testing.T
	http *http.Client
	base string
	// header is added to every request.
	header http.Header
}

func newClient(t *testing.T, base string) *client {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &client{
		t:    t,
		base: base,
		http: &http.Client{
			Jar:           jar,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		header: http.Header{},
	}
}

// response is an answer with its body read.
type response struct {
	Status   int
	Location string
	Header   http.Header
	Body     string
}

func (c *client) do(method, path string, form url.Values) response {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	require.NoError(c.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	return c.send(req)
}

// postRaw posts a form body as it is: values percent-encoded (or not) as
// the test wants, where url.Values would encode them its own way.
func (c *client) postRaw(path, body string) response {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(body))
	require.NoError(c.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range c.header {
		req.Header[k] = v
	}
	return c.send(req)
}

func (c *client) send(req *http.Request) response {
	c.t.Helper()
	res, err := c.http.Do(req)
	require.NoError(c.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(c.t, err)
	return response{Status: res.StatusCode, Location: res.Header.Get("Location"), Header: res.Header, Body: string(b)}
}

func (c *client) get(path string) response { c.t.Helper(); return c.do(http.MethodGet, path, nil) }

func (c *client) post(path string, form url.Values) response {
	c.t.Helper()
	return c.do(http.MethodPost, path, form)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the session's CSRF token from a signed-in page.
func (c *client) csrf() string {
	c.t.Helper()
	m := csrfField.FindStringSubmatch(c.get("/account").Body)
	require.NotNil(c.t, m, "no CSRF token on the account page")
	return m[1]
}

// postForm posts a signed-in form, with the CSRF token.
func (c *client) postForm(path string, form url.Values) response {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", c.csrf())
	return c.post(path, form)
}

// signUp creates an account and signs the client in.
func (c *client) signUp(email string) {
	c.t.Helper()
	res := c.post("/signup", url.Values{"email": {email}, "password": {"correct horse"}, "confirm": {"correct horse"}})
	require.Equal(c.t, http.StatusSeeOther, res.Status, res.Body)
}

// startCheckout posts a pricing button and returns the Checkout Session
// ID from the offline Stripe's URL it redirects to.
func (c *client) startCheckout(a *app, planKey string) string {
	c.t.Helper()
	res := c.postForm("/checkout", url.Values{"plan": {planKey}})
	require.Equal(c.t, http.StatusSeeOther, res.Status, res.Body)
	prefix := a.offline.URL() + "/pay/"
	require.True(c.t, strings.HasPrefix(res.Location, prefix), "checkout redirects to %s", res.Location)
	return strings.TrimPrefix(res.Location, prefix)
}

// buy checks out and pays with the 4242 card, then follows the return
// URL (as the browser would) and returns that page.
func (c *client) buy(a *app, planKey string) response {
	c.t.Helper()
	id := c.startCheckout(a, planKey)
	paid, err := a.offline.Pay(id, billingtest.CardOK)
	require.NoError(c.t, err)
	ret := paid.RedirectURL
	require.True(c.t, strings.HasPrefix(ret, c.base+"/checkout/return?session_id="), ret)
	return c.get(strings.TrimPrefix(ret, c.base))
}

// flush waits for the offline Stripe's webhooks.
func flush(t *testing.T, a *app) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, a.offline.Flush(ctx))
}

// membershipOf returns the membership of the user with this email.
func membershipOf(t *testing.T, a *app, email string) billing.Membership {
	t.Helper()
	u, err := a.users.byEmail(context.Background(), email)
	require.NoError(t, err)
	m, err := a.b.Membership(context.Background(), u.ID)
	require.NoError(t, err)
	return m
}

// customerOf returns the Stripe customer of the user with this email.
func customerOf(t *testing.T, a *app, email string) string {
	t.Helper()
	m := membershipOf(t, a, email)
	require.True(t, m.HasCustomer)
	sub := a.offline.Subscription(m.SubscriptionID)
	require.NotNil(t, sub)
	return sub.Customer.ID
}

// text returns the text of the element with this id, with tags stripped
// and spaces collapsed; "" if there is no such element.
func text(body, id string) string {
	i := strings.Index(body, `id="`+id+`"`)
	if i < 0 {
		return ""
	}
	start := strings.LastIndex(body[:i], "<")
	name := regexp.MustCompile(`^<([a-z0-9]+)`).FindStringSubmatch(body[start:])[1]
	// The element ends at the close tag that balances its opening tag.
	depth := 0
	for _, m := range regexp.MustCompile(`</?`+name+`[\s>]`).FindAllStringIndex(body[start:], -1) {
		if body[start+m[0]+1] != '/' {
			depth++
			continue
		}
		if depth--; depth == 0 {
			inner := regexp.MustCompile(`<[^>]*>`).ReplaceAllString(body[start:start+m[0]], " ")
			inner = strings.Join(strings.Fields(html.UnescapeString(inner)), " ")
			return regexp.MustCompile(` ([.,:;!?])`).ReplaceAllString(inner, "$1")
		}
	}
	return ""
}
