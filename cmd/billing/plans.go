package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gobilling/billing/plansfile"
)

// parsePlanFlag parses a --plan (recurring) or --one-time value:
//
//	NAME:AMOUNT:CURRENCY:INTERVAL[:key=value...]   (--plan)
//	NAME:AMOUNT:CURRENCY[:key=value...]            (--one-time)
//
// with keys tier, trial (days), key (lookup key) and price (price ID) for
// --plan, and credits, tier, key and price for --one-time.
func parsePlanFlag(v string, recurring bool) (plansfile.Spec, error) {
	flag, fixed := "--one-time", 3
	if recurring {
		flag, fixed = "--plan", 4
	}
	parts := strings.Split(v, ":")
	if len(parts) < fixed {
		if recurring {
			return plansfile.Spec{}, usagef("%s %q: want NAME:AMOUNT:CURRENCY:INTERVAL[:tier=T][:trial=DAYS][:key=LOOKUP_KEY][:price=PRICE_ID]", flag, v)
		}
		return plansfile.Spec{}, usagef("%s %q: want NAME:AMOUNT:CURRENCY[:credits=N][:tier=T][:key=LOOKUP_KEY][:price=PRICE_ID]", flag, v)
	}
	s := plansfile.Spec{Name: strings.TrimSpace(parts[0]), Kind: plansfile.KindOneTime, Currency: strings.ToLower(strings.TrimSpace(parts[2]))}
	if s.Name == "" {
		return s, usagef("%s %q: the name is empty", flag, v)
	}
	amount, err := parseAmount(parts[1])
	if err != nil {
		return s, usagef("%s %q: %v", flag, v, err)
	}
	s.Amount = amount
	if recurring {
		s.Kind = plansfile.KindRecurring
		s.Interval = strings.ToLower(strings.TrimSpace(parts[3]))
		s.Tier = slug(s.Name)
	}
	for _, opt := range parts[fixed:] {
		k, val, ok := strings.Cut(opt, "=")
		if !ok {
			return s, usagef("%s %q: %q is not key=value", flag, v, opt)
		}
		switch {
		case k == "tier":
			s.Tier = val
		case k == "key":
			s.LookupKey = val
		case k == "price":
			s.PriceID = val
		case k == "trial" && recurring:
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return s, usagef("%s %q: trial=%s: want a number of days", flag, v, val)
			}
			s.TrialDays = n
		case k == "credits" && !recurring:
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || n < 0 {
				return s, usagef("%s %q: credits=%s: want a whole number", flag, v, val)
			}
			s.Credits = n
		default:
			return s, usagef("%s %q: unknown key %q", flag, v, k)
		}
	}
	if s.LookupKey == "" {
		s.LookupKey = defaultLookupKey(s)
	}
	return s, nil
}

// parseAmount parses an amount in the currency's smallest unit.
func parseAmount(v string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("amount %q: want a whole number in the currency's smallest unit (2900 is 29.00 USD)", v)
	}
	return n, nil
}

// slug makes a tier or lookup key of a name: "Pro Plus" is pro_plus.
func slug(name string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			if under && b.Len() > 0 {
				b.WriteByte('_')
			}
			under = false
			b.WriteRune(r)
			continue
		}
		under = true
	}
	if b.Len() == 0 {
		return "plan"
	}
	return b.String()
}

var adverbs = map[string]string{"day": "daily", "week": "weekly", "month": "monthly", "year": "yearly"}

// defaultLookupKey: pro_monthly for a monthly Pro, credits_100 for a
// one-time "Credits 100".
func defaultLookupKey(s plansfile.Spec) string {
	if s.Kind == plansfile.KindRecurring {
		if adv, ok := adverbs[s.Interval]; ok {
			return slug(s.Name) + "_" + adv
		}
	}
	return slug(s.Name)
}

// Currencies whose smallest unit is not a hundredth (Stripe's lists).
var (
	zeroDecimal  = strings.Fields("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf")
	threeDecimal = strings.Fields("bhd jod kwd omr tnd")
)

// money formats an amount: 2900 usd is "29.00 USD".
func money(amount int64, currency string) string {
	digits := 2
	for _, c := range zeroDecimal {
		if c == currency {
			digits = 0
		}
	}
	for _, c := range threeDecimal {
		if c == currency {
			digits = 3
		}
	}
	cur := strings.ToUpper(currency)
	if digits == 0 {
		return fmt.Sprintf("%d %s", amount, cur)
	}
	div := int64(1)
	for range digits {
		div *= 10
	}
	return fmt.Sprintf("%d.%0*d %s", amount/div, digits, amount%div, cur)
}

// describe says what a plan is: "29.00 USD a month, 14-day trial".
func describe(s plansfile.Spec) string {
	d := money(s.Amount, s.Currency)
	if s.Kind == plansfile.KindOneTime {
		d += " once"
		if s.Credits > 0 {
			d += fmt.Sprintf(", %d credits", s.Credits)
		}
		return d
	}
	d += " a " + s.Interval
	if s.TrialDays > 0 {
		d += fmt.Sprintf(", %d-day trial", s.TrialDays)
	}
	return d
}

// envName is the environment variable the snippet reads a missing price
// ID from: PRO_MONTHLY_PRICE_ID.
func envName(lookupKey string) string {
	return strings.ToUpper(slug(lookupKey)) + "_PRICE_ID"
}

// snippet is the Go for Config.Plans. A plan without a price ID reads it
// from the environment until the file has it.
func snippet(f *plansfile.File) string {
	var b strings.Builder
	b.WriteString("Plans: []billing.Plan{\n")
	for _, s := range f.Plans {
		price := strconv.Quote(s.PriceID)
		if s.PriceID == "" {
			price = "os.Getenv(" + strconv.Quote(envName(s.LookupKey)) + ")"
		}
		fields := []string{"PriceID: " + price}
		if s.Tier != "" {
			fields = append(fields, "Tier: "+strconv.Quote(s.Tier))
		}
		if s.Kind == plansfile.KindOneTime {
			fields = append(fields, "Kind: billing.OneTime")
			if s.Credits > 0 {
				fields = append(fields, fmt.Sprintf("Credits: %d", s.Credits))
			}
		}
		fmt.Fprintf(&b, "\t{%s}, // %s: %s (lookup key %s)\n", strings.Join(fields, ", "),
			strconv.Quote(s.Name), describe(s), s.LookupKey)
	}
	b.WriteString("},\n")
	return b.String()
}
