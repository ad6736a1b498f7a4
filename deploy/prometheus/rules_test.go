// Package prometheus_test checks billing's Prometheus alerting rules
// (billing.rules.yml) against the metrics billing really exports: every
// metric a rule reads must be one that OpenTelemetry's Prometheus
// exporter produces from billing's instruments over a lifecycle.
package prometheus_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.yaml.in/yaml/v3"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/internal/testcatalog"
	"github.com/gobilling/billing/memstore"
)

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// exported runs a life through billing with the Prometheus exporter and
// returns the names of the metric families it exports.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	require.NoError(t, err)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })

	fake := testcatalog.NewStripe(t, time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC))
	const secret = "whsec_rules"
	store := &failOnce{Store: memstore.New()}
	b, err := billing.New(billing.Config{
		SecretKey: "sk_test_rules", WebhookSecrets: []string{secret}, SiteURL: "https://app.example",
		Plans: testcatalog.Plans(), Logger: slog.New(slog.DiscardHandler), Clock: fake, StripeURL: fake.URL(),
		MeterProvider: mp, Hooks: billing.Hooks{Handler: billing.ChangeHandlerFunc(func(context.Context, billing.Change) error { return nil })},
	}, store, billing.UserResolverFunc(func(ctx context.Context, id string) (billing.User, error) { return billing.User{ID: id}, nil }))
	require.NoError(t, err)
	h := b.WebhookHandler()
	deliver := func(evs []billingtest.Event, err error) {
		require.NoError(t, err)
		for _, e := range evs {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, billingtest.SignedRequest(secret, e.JSON))
			require.Equal(t, http.StatusOK, w.Code)
		}
	}
	cs, err := b.Checkout(context.Background(), "u1", billing.CheckoutOptions{PriceID: "price_pro"})
	require.NoError(t, err)
	deliver(testcatalog.Pay(fake, cs.ID))
	sub := fake.SubscriptionsOf(fake.CheckoutSession(cs.ID).Customer.ID)[0]
	require.NoError(t, testcatalog.SetCardFailing(fake, fake.CheckoutSession(cs.ID).Customer.ID, true))
	deliver(testcatalog.Renew(fake, sub))
	evs, err := fake.CancelNow(sub)
	require.NoError(t, err)
	store.fail.Store(true) // one delivery fails (500), and is delivered again
	for _, e := range evs {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, billingtest.SignedRequest(secret, e.JSON))
	}
	deliver(evs, nil)
	_, err = b.DispatchHooks(context.Background())
	require.NoError(t, err)

	families, err := reg.Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				names["label:"+l.GetName()+"="+l.GetValue()] = true
			}
		}
		if f.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[f.GetName()+s] = true
			}
		}
	}
	return names
}

// metricName matches the metric names in a PromQL expression (billing's
// all start with billing_), once label matchers are cut out; matcher
// matches those.
var (
	metricName = regexp.MustCompile(`\bbilling_[a-z0-9_]+\b`)
	matchers   = regexp.MustCompile(`\{[^}]*\}`)
	matcher    = regexp.MustCompile(`([a-z_]+)="([^"]*)"`)
)

func TestRulesReadExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile("billing.rules.yml")
	require.NoError(t, err)
	var rf ruleFile
	require.NoError(t, yaml.Unmarshal(raw, &rf))
	names := exported(t)
	var alerts []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert, "group %s: a rule without a name", g.Name)
			require.NotEmpty(t, r.Expr, r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], "%s: a summary says what is wrong", r.Alert)
			require.NotEmpty(t, r.Labels["severity"], r.Alert)
			if r.For != "" {
				_, err := time.ParseDuration(r.For)
				require.NoError(t, err, "%s: for", r.Alert)
			}
			for _, m := range matcher.FindAllStringSubmatch(strings.Join(matchers.FindAllString(r.Expr, -1), " "), -1) {
				require.True(t, names["label:"+m[1]+"="+m[2]], "%s matches %s=%q, which billing does not export", r.Alert, m[1], m[2])
			}
			used := metricName.FindAllString(matchers.ReplaceAllString(r.Expr, ""), -1)
			require.NotEmpty(t, used, "%s reads no billing metric", r.Alert)
			for _, m := range used {
				require.True(t, names[m], "%s reads %s, which billing does not export; it exports %v", r.Alert, m, sorted(names))
			}
			alerts = append(alerts, r.Alert)
		}
	}
	for _, want := range []string{"BillingWebhookFailureRate", "BillingNoNewSubscriptions", "BillingFailedPaymentsHigh", "BillingCancellationSpike"} {
		require.True(t, slices.Contains(alerts, want), "the guide's alert %s is missing", want)
	}
}

// failOnce fails the next transaction once fail is set.
type failOnce struct {
	*memstore.Store
	fail atomic.Bool
}

func (s *failOnce) Apply(ctx context.Context, eventID string, fn func(context.Context, billing.Tx) error) error {
	if eventID != "" && s.fail.CompareAndSwap(true, false) {
		return errors.New("the database is down")
	}
	return s.Store.Apply(ctx, eventID, fn)
}

func sorted(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
