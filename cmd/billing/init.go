package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/charmbracelet/huh"
	"github.com/gobilling/billing/plansfile"
	"github.com/spf13/cobra"
)

type initOpts struct {
	plans, oneTime []string
	out            string
	force          bool
	accessible     bool
}

func (a *app) initCmd() *cobra.Command {
	var o initOpts
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Interview: what you sell; writes the plans file and prints Config.Plans",
		Long: `init asks what the app sells (subscriptions, one-time purchases or both,
paid through Stripe-hosted Checkout) and each plan's name, amount, currency,
interval, tier, credits and trial days. It writes the plans file (YAML,
checked against the schema of 'billing schema') and prints the Go for
Config.Plans. The app can read the same file with package
github.com/gobilling/billing/plansfile.

On a terminal without --plan or --one-time, init is an interactive form
(--accessible, or ACCESSIBLE set, asks one plain question per line, for
screen readers). Otherwise the plans come from flags, lowest tier first:

  --plan     NAME:AMOUNT:CURRENCY:INTERVAL[:tier=T][:trial=DAYS][:key=LOOKUP_KEY][:price=PRICE_ID]
  --one-time NAME:AMOUNT:CURRENCY[:credits=N][:tier=T][:key=LOOKUP_KEY][:price=PRICE_ID]

AMOUNT is in the currency's smallest unit (2900 is 29.00 USD); INTERVAL is
day, week, month or year. The tier defaults to the name (Pro: pro), the
lookup key to the name and interval (pro_monthly). price_id stays empty until
the prices exist in Stripe.`,
		Example: `  billing init
  billing init --plan "Pro:2900:usd:month:trial=14" --one-time "Credits 100:500:usd:credits=100"
  billing init --plan "Basic:900:usd:month" --plan "Pro:2900:usd:month" --out billing.yaml --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runInit(o) },
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.plans, "plan", nil, "a recurring plan: NAME:AMOUNT:CURRENCY:INTERVAL[:key=value...] (repeatable)")
	f.StringArrayVar(&o.oneTime, "one-time", nil, "a one-time price: NAME:AMOUNT:CURRENCY[:key=value...] (repeatable)")
	f.StringVarP(&o.out, "out", "o", "billing.yaml", "the plans file to write")
	f.BoolVar(&o.force, "force", false, "replace the plans file if it exists")
	f.BoolVar(&o.accessible, "accessible", false, "interactive form as plain questions, one per line (also: ACCESSIBLE=1)")
	return cmd
}

// initResult is what --json prints.
type initResult struct {
	File    string           `json:"file"`
	Plans   []plansfile.Spec `json:"plans"`
	Snippet string           `json:"snippet"`
}

func (a *app) runInit(o initOpts) error {
	if o.out == "" {
		return usagef("--out is empty")
	}
	f := &plansfile.File{Version: plansfile.Version, Checkout: "hosted"}
	var sources []string // the flag each plan came from
	switch {
	case len(o.plans)+len(o.oneTime) > 0:
		for _, v := range o.plans {
			s, err := parsePlanFlag(v, true)
			if err != nil {
				return err
			}
			f.Plans = append(f.Plans, s)
			sources = append(sources, "--plan "+strconv.Quote(v))
		}
		for _, v := range o.oneTime {
			s, err := parsePlanFlag(v, false)
			if err != nil {
				return err
			}
			f.Plans = append(f.Plans, s)
			sources = append(sources, "--one-time "+strconv.Quote(v))
		}
		if err := f.Validate(); err != nil {
			return usageError{explain(err, sources)}
		}
	case terminal(a.io.in) && terminal(a.io.err):
		if err := a.refuseOverwrite(o); err != nil { // before the questions
			return err
		}
		accessible := o.accessible || a.io.getenv("ACCESSIBLE") != ""
		specs, err := a.interview(accessible)
		if err != nil {
			return err
		}
		f.Plans = specs
		if err := f.Validate(); err != nil {
			return err
		}
	default:
		return usagef("no plans: give --plan or --one-time (see 'billing init --help'), or run init on a terminal for the interview")
	}

	if err := a.refuseOverwrite(o); err != nil {
		return err
	}
	data, err := f.Marshal()
	if err != nil {
		return err
	}
	if err := writeFile(o.out, data, o.force); err != nil {
		return err
	}
	snip := snippet(f)
	if a.json {
		return a.printJSON(initResult{File: o.out, Plans: f.Plans, Snippet: snip})
	}
	w := a.io.out
	fmt.Fprintln(w, a.green(w, fmt.Sprintf("Wrote %s (%d plans).", o.out, len(f.Plans))))
	fmt.Fprintf(w, "\nIn billing.Config:\n\n%s\n", snip)
	fmt.Fprintf(w, "Or read the file at start-up:\n\n\tplans, _, err := plansfile.Load(%q) // github.com/gobilling/billing/plansfile\n\n", o.out)
	if missing := f.Missing(); len(missing) > 0 {
		fmt.Fprintf(w, "Next: `billing setup -f %s` creates the prices in Stripe with these lookup keys (%s) and sets price_id in the file.\n",
			o.out, strings.Join(missing, ", "))
	}
	return nil
}

func (a *app) refuseOverwrite(o initOpts) error {
	if _, err := os.Stat(o.out); err == nil && !o.force {
		return fmt.Errorf("%s exists: --force replaces it", o.out)
	}
	return nil
}

// explain names the flag behind each problem of a file built from flags.
func explain(err error, sources []string) error {
	var ve *plansfile.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	var lines []string
	for _, p := range ve.Problems {
		field := p.Field()
		if len(p.Path) >= 2 && p.Path[0] == "plans" {
			if i, err := strconv.Atoi(p.Path[1]); err == nil && i < len(sources) {
				field = sources[i]
				if len(p.Path) > 2 {
					field += ": " + strings.Join(p.Path[2:], ".")
				}
			}
		}
		lines = append(lines, field+": "+p.Message)
	}
	return errors.New(strings.Join(lines, "\n  "))
}

// writeFile writes data to path through a temporary file in the same
// directory, refusing to replace an existing file unless force.
func writeFile(path string, data []byte, force bool) error {
	tmp, err := tempFile(path, data, 0o644)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if force {
		return os.Rename(tmp, path)
	}
	// A hard link fails if path exists, so a file made meanwhile is kept.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists: --force replaces it", path)
		}
		return err
	}
	return nil
}

// tempFile writes data to a new temporary file with the given mode, in
// path's directory (so that a rename or link to path is atomic), and
// returns its name; the caller removes it.
func tempFile(path string, data []byte, mode os.FileMode) (string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".billing-*")
	if err != nil {
		return "", err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}

// interview asks for the plans on the terminal.
func (a *app) interview(accessible bool) ([]plansfile.Spec, error) {
	in := a.io.in
	if accessible {
		// Each accessible question reads through a scanner of its own:
		// hand it one line at a time, so no answer typed ahead is lost.
		in = &lineReader{r: in}
	}
	run := func(groups ...*huh.Group) error {
		err := huh.NewForm(groups...).WithAccessible(accessible).WithInput(in).WithOutput(a.io.err).Run()
		if errors.Is(err, huh.ErrUserAborted) {
			return errors.New("aborted")
		}
		return err
	}

	fmt.Fprintln(a.io.err, "billing init: what the app sells, paid through Stripe-hosted Checkout.")
	sells := "subscriptions"
	if err := run(huh.NewGroup(huh.NewSelect[string]().Title("What do you sell?").
		Options(huh.NewOption("Subscriptions", "subscriptions"), huh.NewOption("One-time purchases", "one_time"),
			huh.NewOption("Both", "both")).
		Value(&sells))); err != nil {
		return nil, err
	}

	var specs []plansfile.Spec
	for {
		s := plansfile.Spec{Kind: plansfile.KindRecurring, Currency: "usd"}
		if sells == "one_time" {
			s.Kind = plansfile.KindOneTime
		}
		var fields []huh.Field
		if sells == "both" {
			fields = append(fields, huh.NewSelect[string]().Title("Kind").
				Options(huh.NewOption("Subscription", plansfile.KindRecurring), huh.NewOption("One-time", plansfile.KindOneTime)).
				Value(&s.Kind))
		}
		amount := ""
		fields = append(fields,
			huh.NewInput().Title(fmt.Sprintf("Plan %d: name", len(specs)+1)).Value(&s.Name).Validate(notEmpty),
			huh.NewInput().Title("Amount, in the currency's smallest unit (2900 is 29.00 USD)").Value(&amount).
				Validate(func(v string) error { _, err := parseAmount(v); return err }),
			huh.NewInput().Title("Currency").Value(&s.Currency).Validate(orDefault(currency)),
		)
		if err := run(huh.NewGroup(fields...)); err != nil {
			return nil, err
		}
		s.Name = strings.TrimSpace(s.Name)
		s.Amount, _ = parseAmount(amount)
		s.Currency = strings.ToLower(cmp.Or(strings.TrimSpace(s.Currency), "usd"))

		var trial, credits string
		if s.Kind == plansfile.KindRecurring {
			s.Interval, s.Tier, trial = "month", slug(s.Name), "0"
			fields = []huh.Field{
				huh.NewSelect[string]().Title("Billed every").
					Options(huh.NewOption("month", "month"), huh.NewOption("year", "year"),
						huh.NewOption("week", "week"), huh.NewOption("day", "day")).
					Value(&s.Interval),
				huh.NewInput().Title("Tier (what the plan gives access to)").Value(&s.Tier),
				huh.NewInput().Title("Trial days (0 for none)").Value(&trial).Validate(orDefault(count(730))),
			}
		} else {
			credits = "0"
			fields = []huh.Field{
				huh.NewInput().Title("Credits one purchase grants (0 for none)").Value(&credits).Validate(orDefault(count(-1))),
				huh.NewInput().Title("Tier (empty for none)").Value(&s.Tier),
			}
		}
		if err := run(huh.NewGroup(fields...)); err != nil {
			return nil, err
		}
		s.Tier = strings.TrimSpace(s.Tier)
		if s.Kind == plansfile.KindRecurring && s.Tier == "" {
			s.Tier = slug(s.Name)
		}
		if s.Kind == plansfile.KindRecurring {
			s.TrialDays, _ = strconv.Atoi(strings.TrimSpace(trial))
		} else {
			s.Credits, _ = strconv.ParseInt(strings.TrimSpace(credits), 10, 64)
		}

		defKey := defaultLookupKey(s)
		s.LookupKey = defKey
		more := false
		if err := run(huh.NewGroup(
			huh.NewInput().Title("Lookup key (how Stripe finds the price)").Value(&s.LookupKey).
				Validate(func(v string) error {
					v = cmp.Or(strings.TrimSpace(v), defKey)
					if slices.ContainsFunc(specs, func(o plansfile.Spec) bool { return o.LookupKey == v }) {
						return fmt.Errorf("%q is another plan's", v)
					}
					return nil
				}),
			huh.NewConfirm().Title("Add another plan?").Value(&more),
		)); err != nil {
			return nil, err
		}
		s.LookupKey = cmp.Or(strings.TrimSpace(s.LookupKey), defKey)
		specs = append(specs, s)
		fmt.Fprintf(a.io.err, "Plan %d: %s, %s.\n", len(specs), s.Name, describe(s))
		if !more {
			return specs, nil
		}
	}
}

// orDefault accepts an empty answer, which takes the field's default.
func orDefault(validate func(string) error) func(string) error {
	return func(v string) error {
		if strings.TrimSpace(v) == "" {
			return nil
		}
		return validate(v)
	}
}

func notEmpty(v string) error {
	if strings.TrimSpace(v) == "" {
		return errors.New("required")
	}
	return nil
}

func currency(v string) error {
	v = strings.TrimSpace(v)
	if len(v) != 3 || strings.Trim(strings.ToLower(v), "abcdefghijklmnopqrstuvwxyz") != "" {
		return errors.New("a three-letter ISO code, such as usd")
	}
	return nil
}

// count validates a whole number from 0 to max (max < 0: no bound).
func count(max int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 || (max >= 0 && n > max) {
			if max >= 0 {
				return fmt.Errorf("a whole number from 0 to %d", max)
			}
			return errors.New("a whole number, 0 or more")
		}
		return nil
	}
}

// lineReader reads at most one line per Read, one byte at a time, so that
// a bufio.Scanner over it never takes more than the line it returns.
type lineReader struct{ r io.Reader }

func (l *lineReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := l.r.Read(p[n : n+1])
		n += m
		if err != nil {
			return n, err
		}
		if m == 1 && p[n-1] == '\n' {
			break
		}
	}
	return n, nil
}
