package billing

import (
	"context"
	"errors"
	"iter"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// nopStore satisfies Store for config tests, which never touch it.
type nopStore struct{ Store }

var nopUsers = UserResolverFunc(func(ctx context.Context, id string) (User, error) { return User{ID: id}, nil })

func goodConfig() Config {
	return Config{
		SecretKey:      "sk_test_123",
		WebhookSecrets: []string{"whsec_abc"},
		SiteURL:        "https://example.com/",
		Plans:          []Plan{{PriceID: "price_basic", Tier: "basic"}, {PriceID: "price_pro", Tier: "pro"}, {PriceID: "price_pack", Kind: OneTime, Credits: 10}},
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mod    func(*Config)
		want   string // in the error
		secret string // must not be in the error
	}{
		{"missing key", func(c *Config) { c.SecretKey = "" }, "SecretKey is empty", ""},
		{"publishable key", func(c *Config) { c.SecretKey = "pk_test_SECRETISH" }, "publishable key", "pk_test_SECRETISH"},
		{"webhook secret as key", func(c *Config) { c.SecretKey = "whsec_LEAK" }, "webhook signing secret", "whsec_LEAK"},
		{"garbage key", func(c *Config) { c.SecretKey = "hunter2" }, "not a Stripe secret key", "hunter2"},
		{"live key with a test setup", func(c *Config) { c.SecretKey = "sk_live_TOPSECRET"; c.StripeURL = "http://localhost:12111" }, "live secret key must not be sent", "sk_live_TOPSECRET"},
		{"no webhook secret", func(c *Config) { c.WebhookSecrets = nil }, "no WebhookSecrets", ""},
		{"bad webhook secret", func(c *Config) { c.WebhookSecrets = []string{"whsec_ok", "sk_test_OOPS"} }, "WebhookSecrets[1]", "sk_test_OOPS"},
		{"relative site URL", func(c *Config) { c.SiteURL = "/app" }, "SiteURL", ""},
		{"success path without placeholder", func(c *Config) { c.SuccessPath = "/thanks" }, "{CHECKOUT_SESSION_ID}", ""},
		{"no plans", func(c *Config) { c.Plans = nil }, "no Plans", ""},
		{"not a price", func(c *Config) { c.Plans[0].PriceID = "prod_123" }, "not a Stripe price ID", ""},
		{"recurring without tier", func(c *Config) { c.Plans[0].Tier = "" }, "has no Tier", ""},
		{"duplicate price", func(c *Config) { c.Plans[1].PriceID = "price_basic" }, "listed twice", ""},
		{"negative credits", func(c *Config) { c.Plans[2].Credits = -1 }, "negative Credits", ""},
		{"bad kind", func(c *Config) { c.Plans[2].Kind = 7 }, "unknown Kind", ""},
		{"negative grace", func(c *Config) { c.GraceAttempts = -1 }, "GraceAttempts", ""},
		{"negative leeway", func(c *Config) { c.AccessLeeway = -time.Second }, "AccessLeeway", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := goodConfig()
			tt.mod(&cfg)
			b, err := New(cfg, nopStore{}, nopUsers)
			require.Error(t, err)
			assert.Nil(t, b)
			assert.ErrorIs(t, err, ErrConfig)
			assert.Contains(t, err.Error(), tt.want)
			if tt.secret != "" {
				assert.NotContains(t, err.Error(), tt.secret)
			}
		})
	}
	t.Run("nil store or resolver", func(t *testing.T) {
		_, err := New(goodConfig(), nil, nopUsers)
		assert.ErrorIs(t, err, ErrConfig)
		_, err = New(goodConfig(), nopStore{}, nil)
		assert.ErrorIs(t, err, ErrConfig)
	})
}

func TestNewDefaults(t *testing.T) {
	t.Parallel()
	b, err := New(goodConfig(), nopStore{}, nopUsers)
	require.NoError(t, err)
	assert.Equal(t, DefaultGraceAttempts, b.cfg.GraceAttempts)
	assert.Equal(t, DefaultAccessLeeway, b.cfg.AccessLeeway)
	assert.Equal(t, int64(DefaultMaxWebhookBytes), b.cfg.MaxWebhookBytes)
	assert.False(t, b.Livemode())
	assert.Equal(t, "https://example.com/checkout/return?session_id={CHECKOUT_SESSION_ID}", b.siteURL(b.cfg.SuccessPath))
	assert.Equal(t, "https://example.com/account", b.siteURL(b.cfg.ReturnPath))
	assert.Equal(t, map[string]int{"basic": 1, "pro": 2}, b.rank)

	cfg := goodConfig()
	cfg.SecretKey = "rk_live_x"
	b, err = New(cfg, nopStore{}, nopUsers)
	require.NoError(t, err)
	assert.True(t, b.Livemode())

	_, err = b.Plan("price_nope")
	assert.ErrorIs(t, err, ErrUnknownPrice)
	p, err := b.Plan("price_pack")
	require.NoError(t, err)
	assert.Equal(t, OneTime, p.Kind)
}

func TestUserResolverFunc(t *testing.T) {
	t.Parallel()
	r, _ := http.NewRequest("GET", "/", nil)
	_, err := nopUsers.RequestUser(r)
	assert.True(t, errors.Is(err, ErrNoUser))
	r = r.WithContext(WithUserID(r.Context(), "u7"))
	id, err := nopUsers.RequestUser(r)
	require.NoError(t, err)
	assert.Equal(t, "u7", id)
	u, err := nopUsers.User(context.Background(), "u7")
	require.NoError(t, err)
	assert.Equal(t, "u7", u.ID)
}

func TestAPIVersionError(t *testing.T) {
	t.Parallel()
	err := &APIVersionError{Got: "2024-06-20", Want: "2025-08-27.basil"}
	assert.True(t, strings.Contains(err.Error(), `create the webhook endpoint with api_version "2025-08-27.basil"`))
	assert.Equal(t, "basil", train("2025-08-27.basil"))
	assert.Equal(t, "", train("2024-06-20"))
}

// list resumes a listing that failed midway after the last item it
// yielded, and gives up after the configured retries.
func TestListResumesAfterTheLastItem(t *testing.T) {
	t.Parallel()
	b := &Billing{clock: noWait{}, retries: 2, log: slog.New(slog.DiscardHandler)}
	var afters []string
	fails := 1
	page := func(_ context.Context, after string) iter.Seq2[int, error] {
		afters = append(afters, after)
		return func(yield func(int, error) bool) {
			start := 0
			if after != "" {
				start, _ = strconv.Atoi(after)
			}
			for i := start + 1; i <= 5; i++ {
				if i == 3 && fails > 0 {
					fails--
					yield(0, errors.New("connection reset"))
					return
				}
				if !yield(i, nil) {
					return
				}
			}
		}
	}
	var got []int
	for v, err := range list(context.Background(), b, page, strconv.Itoa) {
		require.NoError(t, err)
		got = append(got, v)
	}
	assert.Equal(t, []int{1, 2, 3, 4, 5}, got)
	assert.Equal(t, []string{"", "2"}, afters)

	fails = 100
	afters = nil
	var last error
	for _, err := range list(context.Background(), b, page, strconv.Itoa) {
		last = err
	}
	require.Error(t, last)
	assert.Equal(t, []string{"", "2", "2"}, afters, "a try, then 2 retries from where it failed")
}

type noWait struct{}

func (noWait) Now() time.Time                                   { return time.Unix(0, 0) }
func (noWait) Sleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }
