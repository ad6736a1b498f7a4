// Command billing sets up and checks what github.com/gobilling/billing needs
// from Stripe, operates the app's billing data, and serves an offline
// Stripe:
//
//	billing init       the interview that writes the plans file (billing.yaml)
//	billing schema     the plans file's JSON Schema
//	billing setup      the Stripe account made to match the plans file
//	billing doctor     the configuration checked against the account
//	billing migrate    billing's tables in the app's database (up, status, sql)
//	billing sync       every subscription brought up to date from Stripe
//	billing catchup    the webhook events missed since a time, applied
//	billing parked     the parked events: list, show, replay, link, discard
//	billing hooks      the dead-lettered changes: list, replay, discard
//	billing members    the subscriptions by Stripe status
//	billing prune      old records deleted
//	billing stripe     billingtest as a server: serve, advance, clock, events
//
// Exit codes: 0 ok, 1 failure (or findings), 2 usage. With --json, stdout
// holds exactly one JSON document, the result or {"error": ...}. Colour
// only on a terminal, and never with NO_COLOR set or TERM=dumb. Secrets are
// read from the environment or a file, never from a flag.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run(os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr, getenv: os.Getenv}))
}

// stdio is what a run reads and writes, so that tests run it in process.
type stdio struct {
	in       io.Reader
	out, err io.Writer
	getenv   func(string) string
}

// usageError is a mistake in the command line: exit 2.
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// app is one run's state, shared by the commands.
type app struct {
	io   stdio
	json bool
}

// run runs the command line and returns the exit code.
func run(args []string, io stdio) int {
	a := &app{io: io}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(io.in)
	root.SetOut(io.out)
	root.SetErr(io.err)
	started := false
	root.PersistentPreRun = func(*cobra.Command, []string) { started = true }
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	code := exitFailure
	var ue usageError
	// Cobra's own errors (unknown command or flag, wrong arguments) come
	// before any command starts.
	if errors.As(err, &ue) || !started {
		code = exitUsage
	}
	fmt.Fprintf(io.err, "billing: %v\n", err)
	if code == exitUsage {
		fmt.Fprintln(io.err, "Run 'billing --help' for usage.")
	}
	if a.json {
		enc := json.NewEncoder(io.out)
		_ = enc.Encode(map[string]any{"error": err.Error(), "exit_code": code})
	}
	return code
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "billing",
		Short: "Set up, check and operate Stripe billing for github.com/gobilling/billing",
		Long: `billing sets up what github.com/gobilling/billing needs from Stripe (init,
setup, doctor), operates the app's billing data on its DATABASE_URL (migrate,
sync, catchup, parked, hooks, members, prune), and serves an offline Stripe
for development and tests in any language (stripe).

Exit codes: 0 ok, 1 failure, 2 usage. With --json, stdout holds exactly one
JSON document: the result, or {"error": "...", "exit_code": N}.
Secrets are read from the environment or a file, never from a flag.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(a.io.err)
			_ = cmd.Help()
			return usagef("a command is needed")
		},
	}
	root.PersistentFlags().BoolVar(&a.json, "json", false, "print the result as JSON on stdout, for scripts")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddCommand(a.initCmd(), a.setupCmd(), a.schemaCmd(), a.doctorCmd(), a.stripeCmd())
	root.AddCommand(a.migrateCmd(), a.syncCmd(), a.catchupCmd(), a.parkedCmd(), a.hooksCmd(), a.membersCmd(), a.pruneCmd())
	return root
}

// terminal says whether v is a terminal.
func terminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// colour says whether to colour what goes to w.
func (a *app) colour(w io.Writer) bool {
	return terminal(w) && a.io.getenv("NO_COLOR") == "" && a.io.getenv("TERM") != "dumb"
}

// green renders s in green where w takes colour.
func (a *app) green(w io.Writer, s string) string {
	if !a.colour(w) {
		return s
	}
	return "\x1b[32m" + s + "\x1b[0m"
}

// printJSON writes v as the run's one JSON document.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.io.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
