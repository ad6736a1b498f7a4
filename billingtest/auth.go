package billingtest

import (
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
)

// Keys and versions: which requests the fake serves.

// apiKey returns the API key of a request, sent as Stripe takes it: Bearer
// auth, or Basic auth with the key as the user name.
func apiKey(r *http.Request) string {
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	if k, ok := cutPrefixFold(h, "Bearer "); ok {
		return strings.TrimSpace(k)
	}
	if b, ok := cutPrefixFold(h, "Basic "); ok {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b))
		if err != nil {
			return ""
		}
		user, _, _ := strings.Cut(string(raw), ":")
		return user
	}
	return ""
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return "", false
}

// redact shows a key as Stripe's errors do: its prefix, stars, and its
// last four characters (a short key is all stars).
func redact(key string) string {
	prefix := ""
	for _, p := range []string{"sk_test_", "sk_live_", "rk_test_", "rk_live_", "pk_test_", "pk_live_"} {
		if strings.HasPrefix(key, p) {
			prefix = p
			break
		}
	}
	rest := key[len(prefix):]
	if len(rest) <= 4 {
		return prefix + strings.Repeat("*", len(rest))
	}
	return prefix + strings.Repeat("*", len(rest)-4) + rest[len(rest)-4:]
}

func unauthorized(msg string) *apiError {
	return &apiError{status: http.StatusUnauthorized, typ: "invalid_request_error", message: msg}
}

// checkKey refuses a request without a test secret key: none, a
// publishable key and an unknown one as Stripe refuses them (401), a live
// key with billingtest's own error (it is test mode only). Any secret or
// restricted test key is accepted: the fake is one account.
func checkKey(r *http.Request) *apiError {
	key := apiKey(r)
	switch {
	case key == "":
		return unauthorized("You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.")
	case strings.HasPrefix(key, "pk_"):
		return unauthorized("This API call cannot be made with a publishable API key. Please use a secret API key. You can find a list of your API keys at https://dashboard.stripe.com/account/apikeys.")
	case strings.HasPrefix(key, "sk_live_"), strings.HasPrefix(key, "rk_live_"):
		return unauthorized("billingtest is test mode only: it refuses live keys (" + redact(key) + "). Use a test key (sk_test_...).")
	case (strings.HasPrefix(key, "sk_test_") || strings.HasPrefix(key, "rk_test_")) && len(key) > len("sk_test_"):
		return nil
	}
	return unauthorized("Invalid API Key provided: " + redact(key))
}

var apiVersionRE = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})(?:\.([a-z]+))?$`)

// checkVersion returns the API version a request is answered at: its
// Stripe-Version if that is a basil version (echoed back), else the
// account's default, [APIVersion]. Another release train is refused: Stripe
// would serve it, but the fake renders only basil's shapes, and a test on
// the wrong SDK must fail rather than pass with shapes it will never get.
func checkVersion(r *http.Request) (string, *apiError) {
	v := strings.TrimSpace(r.Header.Get("Stripe-Version"))
	if v == "" {
		return APIVersion, nil
	}
	m := apiVersionRE.FindStringSubmatch(v)
	if m == nil {
		return "", badRequest("Invalid Stripe API version: " + v)
	}
	if m[4] == "basil" {
		return v, nil
	}
	return "", badRequest("billingtest models only Stripe API version " + APIVersion + " (the basil release); " +
		"this request asks for " + v + ". Stripe itself would serve that version, but billingtest renders only " +
		"basil's shapes: use stripe-go v82 (or another SDK pinned to a basil version) against billingtest.")
}
