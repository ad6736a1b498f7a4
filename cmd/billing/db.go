package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gobilling/billing"
	"github.com/gobilling/billing/internal/dburl"
	"github.com/gobilling/billing/plansfile"
	"github.com/gobilling/billing/sqlstore"
)

// The commands on the app's database: migrate, sync, catchup, parked,
// hooks, members, prune. The database is the app's DATABASE_URL
// (postgres://..., mysql://..., or an SQLite file's path), read from the
// environment or --database-url-file (it holds a password: never a
// flag).

// dbOpts are the database flags of every database command.
type dbOpts struct {
	urlFile, prefix string
}

func (o *dbOpts) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.urlFile, "database-url-file", "", "read the database URL from this file instead of DATABASE_URL")
	f.StringVar(&o.prefix, "table-prefix", "", "the store's table prefix (sqlstore.Options.TablePrefix; default "+sqlstore.DefaultTablePrefix+")")
}

// appOpts are the flags of the commands that build a Billing as the app
// does: its plans file and Stripe key.
type appOpts struct {
	dbOpts
	file, keyFile, apiBase string
	live, noHooks          bool
	// As the app's Config: what the changes recorded depend on.
	cancelSecond bool
	grace        int
}

func (o *appOpts) flags(cmd *cobra.Command) {
	o.dbOpts.flags(cmd)
	f := cmd.Flags()
	f.StringVarP(&o.file, "file", "f", "billing.yaml", "the plans file (the app's Config.Plans)")
	f.StringVar(&o.keyFile, "key-file", "", "read the secret key from this file instead of STRIPE_SECRET_KEY")
	f.StringVar(&o.apiBase, "api-base", "", "Stripe's API base URL (tests: billingtest's URL)")
	f.BoolVar(&o.live, "live", false, "allow a live key")
	f.BoolVar(&o.noHooks, "no-hooks", false, "the app runs without Config.Hooks: record no changes for its hooks")
	f.BoolVar(&o.cancelSecond, "cancel-second", false, "the app sets Config.SecondSubscription = billing.CancelSecond")
	f.IntVar(&o.grace, "grace-attempts", billing.DefaultGraceAttempts, "the app's Config.GraceAttempts (when a failing payment locks access: access_locked)")
}

// databaseURL reads DATABASE_URL or --database-url-file.
func (a *app) databaseURL(o dbOpts) (string, error) {
	if o.urlFile != "" {
		b, err := os.ReadFile(o.urlFile)
		if err != nil {
			return "", fmt.Errorf("--database-url-file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	u := strings.TrimSpace(a.io.getenv("DATABASE_URL"))
	if u == "" {
		return "", usagef("no database: set DATABASE_URL (postgres://..., mysql://user:password@host:port/database, or an SQLite file's path) or give --database-url-file")
	}
	return u, nil
}

// openStore opens the database and its store. With current set, a schema
// behind this release's is refused: run billing migrate first.
func (a *app) openStore(ctx context.Context, o dbOpts, current bool) (*sqlstore.Store, string, func(), error) {
	u, err := a.databaseURL(o)
	if err != nil {
		return nil, "", nil, err
	}
	db, dialect, where, err := dburl.Open(ctx, u)
	if err != nil {
		return nil, "", nil, err
	}
	if _, err := sqlstore.PrefixedMigrations(dialect, o.prefix); err != nil {
		db.Close()
		return nil, "", nil, usagef("--table-prefix: %v", err)
	}
	st, err := sqlstore.New(ctx, db, dialect, sqlstore.Options{TablePrefix: o.prefix})
	if err != nil {
		db.Close()
		return nil, "", nil, err
	}
	if current {
		states, err := st.MigrationStatus(ctx)
		if err != nil {
			db.Close()
			return nil, "", nil, err
		}
		for _, s := range states {
			if s.Pending() {
				db.Close()
				return nil, "", nil, fmt.Errorf("the database %s is at an older schema (%s is not applied): run `billing migrate` first", where, s.Name)
			}
		}
	}
	return st, where, func() { db.Close() }, nil
}

// cliChanges is the change handler of the command's Billing: the command
// records changes for the app's dispatcher and never delivers one.
var cliChanges = billing.ChangeHandlerFunc(func(context.Context, billing.Change) error {
	return errors.New("the billing command does not deliver changes: the app's dispatcher does")
})

// openBilling builds a Billing on the app's database as the app does.
// With needStripe, the key and the plans file are required; otherwise
// (commands that only read and write the database) a missing key or
// file is replaced by placeholders, and any Stripe call would fail.
func (a *app) openBilling(ctx context.Context, o appOpts, needStripe bool) (*billing.Billing, *sqlstore.Store, func(), error) {
	// A command that does not call Stripe takes no key (a live one on a
	// production host included): a placeholder, and any call would fail.
	key, stripeURL := "sk_test_billing_command_offline", "http://stripe.invalid"
	if needStripe {
		var err error
		if key, _, err = a.secretKey(setupOpts{keyFile: o.keyFile, live: o.live}); err != nil {
			return nil, nil, nil, err
		}
		stripeURL = o.apiBase
	}
	plans, _, err := plansfile.Load(o.file)
	switch {
	case err != nil && (needStripe || !errors.Is(err, fs.ErrNotExist)):
		return nil, nil, nil, err
	case err != nil || len(plans) == 0:
		plans = []billing.Plan{{PriceID: "price_billing_command_placeholder", Tier: "placeholder"}}
	}
	st, _, closeDB, err := a.openStore(ctx, o.dbOpts, true)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg := billing.Config{SecretKey: key, StripeURL: stripeURL, Plans: plans,
		WebhookSecrets: []string{"whsec_billing_command_verifies_no_signature"}, SiteURL: "https://billing-command.invalid",
		Logger: slog.New(slog.NewTextHandler(a.io.err, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if !o.noHooks {
		cfg.Hooks.Handler = cliChanges
	}
	if o.cancelSecond {
		cfg.SecondSubscription = billing.CancelSecond
	}
	cfg.GraceAttempts = o.grace
	b, err := billing.New(cfg, st, billing.UserResolverFunc(func(_ context.Context, id string) (billing.User, error) {
		return billing.User{ID: id}, nil
	}))
	if err != nil {
		closeDB()
		return nil, nil, nil, err
	}
	return b, st, closeDB, nil
}

// ---- migrate ----

func (a *app) migrateCmd() *cobra.Command {
	var o dbOpts
	up := func(cmd *cobra.Command, _ []string) error { return a.runMigrateUp(cmd.Context(), o) }
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Create or update billing's tables in the app's database (up, status, sql)",
		Long: `migrate applies billing's schema migrations to the app's database, as
sqlstore's Store.Migrate does at start-up: the ones not recorded yet, in
order, behind a lock (safe while the app runs). It is a no-op when the
schema is current.

  billing migrate [up]     apply the pending migrations
  billing migrate status   every schema version: applied (when) or pending
  billing migrate sql      print the SQL of the pending migrations, to apply
                           them with your own tool; with --dialect, every
                           migration of that dialect, without a database

The database is DATABASE_URL (postgres://..., mysql://user:password@host:port/db,
or an SQLite file's path) or --database-url-file: never a flag, it holds a
password.`,
		Example: `  DATABASE_URL=postgres://app@db/app billing migrate
  billing migrate status --json
  billing migrate sql --dialect postgres --table-prefix shop_ > billing.sql`,
		Args: cobra.NoArgs,
		RunE: up,
	}
	o.flags(cmd)
	upCmd := &cobra.Command{Use: "up", Short: "Apply the pending migrations", Args: cobra.NoArgs, RunE: up}
	o.flags(upCmd)
	var so dbOpts
	statusCmd := &cobra.Command{Use: "status", Short: "List every schema version: applied or pending", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runMigrateStatus(cmd.Context(), so) }}
	so.flags(statusCmd)
	var sqlo dbOpts
	var dialect string
	sqlCmd := &cobra.Command{Use: "sql", Short: "Print the SQL of the pending migrations (or of all, with --dialect)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runMigrateSQL(cmd.Context(), sqlo, dialect) }}
	sqlo.flags(sqlCmd)
	sqlCmd.Flags().StringVar(&dialect, "dialect", "", "print every migration of this dialect (postgres, mysql, sqlite) without a database")
	cmd.AddCommand(upCmd, statusCmd, sqlCmd)
	return cmd
}

// migrationJSON is one schema version in --json output.
type migrationJSON struct {
	Version   int64      `json:"version"`
	Name      string     `json:"name"`
	Applied   bool       `json:"applied"`
	AppliedAt *time.Time `json:"applied_at,omitempty"`
}

func migrationsJSON(states []sqlstore.MigrationState) []migrationJSON {
	out := make([]migrationJSON, 0, len(states))
	for _, s := range states {
		m := migrationJSON{Version: s.Version, Name: s.Name, Applied: !s.Pending()}
		if !s.Pending() {
			at := s.AppliedAt
			m.AppliedAt = &at
		}
		out = append(out, m)
	}
	return out
}

// migrationStatus opens the store, whatever its schema, and reads its
// schema versions.
func (a *app) migrationStatus(ctx context.Context, o dbOpts) (*sqlstore.Store, string, []sqlstore.MigrationState, func(), error) {
	st, where, closeDB, err := a.openStore(ctx, o, false)
	if err != nil {
		return nil, "", nil, nil, err
	}
	states, err := st.MigrationStatus(ctx)
	if err != nil {
		closeDB()
		return nil, "", nil, nil, err
	}
	return st, where, states, closeDB, nil
}

func (a *app) runMigrateUp(ctx context.Context, o dbOpts) error {
	st, where, before, closeDB, err := a.migrationStatus(ctx, o)
	if err != nil {
		return err
	}
	defer closeDB()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	after, err := st.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	var applied []string
	for i, s := range after {
		if i < len(before) && before[i].Pending() && !s.Pending() {
			applied = append(applied, s.Name)
		}
	}
	if a.json {
		return a.printJSON(map[string]any{"database": where, "applied": append([]string{}, applied...), "migrations": migrationsJSON(after)})
	}
	if len(applied) == 0 {
		fmt.Fprintf(a.io.out, "%s: the schema is current (version %d); nothing to do.\n", where, after[len(after)-1].Version)
		return nil
	}
	for _, n := range applied {
		fmt.Fprintf(a.io.out, "applied %s\n", n)
	}
	fmt.Fprintf(a.io.out, "%s: %s\n", where, a.green(a.io.out, fmt.Sprintf("%d migration(s) applied; the schema is current.", len(applied))))
	return nil
}

func (a *app) runMigrateStatus(ctx context.Context, o dbOpts) error {
	_, where, states, closeDB, err := a.migrationStatus(ctx, o)
	if err != nil {
		return err
	}
	defer closeDB()
	pending := 0
	for _, s := range states {
		if s.Pending() {
			pending++
		}
	}
	if a.json {
		return a.printJSON(map[string]any{"database": where, "pending": pending, "migrations": migrationsJSON(states)})
	}
	tw := newTable(a.io.out, "VERSION", "NAME", "APPLIED")
	for _, s := range states {
		name, at := s.Name, "pending"
		if name == "" {
			name = "(unknown to this release: newer)"
		}
		if !s.Pending() {
			at = s.AppliedAt.Format(time.RFC3339)
		}
		tw.row(fmt.Sprint(s.Version), name, at)
	}
	tw.flush()
	if pending > 0 {
		fmt.Fprintf(a.io.out, "%s: %d pending: run `billing migrate`.\n", where, pending)
	} else {
		fmt.Fprintf(a.io.out, "%s: the schema is current.\n", where)
	}
	return nil
}

func (a *app) runMigrateSQL(ctx context.Context, o dbOpts, dialect string) error {
	var (
		fsys  fs.FS
		names []string
	)
	if dialect != "" {
		d := sqlstore.Dialect(dialect)
		if sqlstore.Migrations(d) == nil {
			return usagef("--dialect %q: want postgres, mysql or sqlite", dialect)
		}
		var err error
		if fsys, err = sqlstore.PrefixedMigrations(d, o.prefix); err != nil {
			return usageError{err}
		}
		if names, err = fs.Glob(fsys, "*.sql"); err != nil {
			return err
		}
	} else {
		st, _, states, closeDB, err := a.migrationStatus(ctx, o)
		if err != nil {
			return err
		}
		defer closeDB()
		fsys = st.Migrations()
		for _, s := range states {
			if s.Pending() && s.Name != "" {
				names = append(names, s.Name)
			}
		}
	}
	type file struct {
		Name string `json:"name"`
		SQL  string `json:"sql"`
	}
	files := []file{}
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return err
		}
		files = append(files, file{n, string(b)})
	}
	if a.json {
		return a.printJSON(map[string]any{"migrations": files})
	}
	if len(files) == 0 {
		fmt.Fprintln(a.io.err, "No pending migration: the schema is current.")
		return nil
	}
	for _, f := range files {
		fmt.Fprintf(a.io.out, "-- %s\n%s\n", f.Name, strings.TrimRight(f.SQL, "\n"))
	}
	return nil
}
