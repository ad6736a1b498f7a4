//go:build unix

package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/gobilling/billing/billingtest"
	"github.com/gobilling/billing/plansfile"
)

// console is the far end of a pseudo-terminal the CLI runs on.
type console struct {
	t    *testing.T
	f    *os.File
	mu   sync.Mutex
	buf  bytes.Buffer
	seen int // output already matched
	done chan struct{}
}

func (c *console) read() {
	defer close(c.done)
	b := make([]byte, 4096)
	answered := 0
	for {
		n, err := c.f.Read(b)
		c.mu.Lock()
		c.buf.Write(b[:n])
		// A terminal answers a cursor position query (termenv asks one,
		// after its background colour query, when the program starts):
		// without an answer the program waits 5 seconds for one.
		queries := strings.Count(c.buf.String(), "\x1b[6n")
		c.mu.Unlock()
		for ; answered < queries; answered++ {
			_, _ = io.WriteString(c.f, "\x1b[1;1R")
		}
		if err != nil {
			return
		}
	}
}

// expect waits for s in the output after what was matched before.
func (c *console) expect(s string) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		out := c.buf.String()
		c.mu.Unlock()
		if i := strings.Index(out[c.seen:], s); i >= 0 {
			c.seen += i + len(s)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t.Fatalf("no %q in the terminal's output after:\n%s", s, c.buf.String()[c.seen:])
}

// answer waits for the prompt, then types the line.
func (c *console) answer(prompt, line string) {
	c.t.Helper()
	c.expect(prompt)
	if _, err := io.WriteString(c.f, line+"\r"); err != nil {
		c.t.Fatal(err)
	}
}

// TestInitTerminal drives the interview on a pseudo-terminal, in the
// form's accessible mode (one plain question per line), as a user would.
func TestInitTerminal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "billing.yaml")
	cmd := exec.Command(os.Args[0], "init", "--accessible", "-o", path)
	cmd.Env = append(os.Environ(), "BILLING_TEST_RUN_MAIN=1", "TERM=xterm-256color", "NO_COLOR=")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 200})
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no pseudo-terminal under CI: %v", err)
		}
		t.Skipf("cannot open a pseudo-terminal (%v): run where /dev/ptmx is usable (a container needs devpts mounted)", err)
	}
	defer f.Close()
	c := &console{t: t, f: f, done: make(chan struct{})}
	go c.read()
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	c.expect("What do you sell?")
	c.answer("Enter a number between 1 and 3", "3") // both
	// Plan 1: a subscription, with a wrong answer on the way.
	c.answer("Enter a number between 1 and 2", "1")
	c.answer("Plan 1: name", "Pro")
	c.answer("Amount", "29.00")
	c.expect("want a whole number")
	c.answer("Amount", "2900")
	c.answer("Currency", "") // the default: usd
	c.expect("Billed every")
	c.answer("Enter a number between 1 and 4", "2") // year
	c.answer("Tier", "")                            // the default: pro
	c.answer("Trial days", "14")
	c.answer("Lookup key", "") // the default: pro_yearly
	c.answer("Add another plan?", "y")
	c.expect("Plan 1: Pro, 29.00 USD a year, 14-day trial.")
	// Plan 2: one-time credits.
	c.answer("Enter a number between 1 and 2", "2")
	c.answer("Plan 2: name", "Credits 100")
	c.answer("Amount", "500")
	c.answer("Currency", "EUR")
	c.answer("Credits one purchase grants", "100")
	c.answer("Tier", "")
	c.answer("Lookup key", "pro_yearly")
	c.expect("is another plan's")
	c.answer("Lookup key", "")
	c.answer("Add another plan?", "")
	c.expect("Wrote " + path + " (2 plans).")
	c.expect("Plans: []billing.Plan{")

	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("exit: %v\n%s", waitErr, c.buf.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("did not exit")
	}
	<-c.done
	if !strings.Contains(c.buf.String(), "\x1b[32mWrote") {
		t.Error("no colour on a terminal")
	}

	_, file, err := plansfile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []plansfile.Spec{
		{Name: "Pro", LookupKey: "pro_yearly", Kind: "recurring", Amount: 2900, Currency: "usd", Interval: "year", Tier: "pro", TrialDays: 14},
		{Name: "Credits 100", LookupKey: "credits_100", Kind: "one_time", Amount: 500, Currency: "eur", Credits: 100},
	}
	if !reflect.DeepEqual(file.Plans, want) {
		t.Errorf("specs = %+v\nwant %+v", file.Plans, want)
	}
}

// TestInitTerminalRefusesOverwrite: on a terminal too, an existing file
// stops init before any question.
func TestInitTerminalRefusesOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "billing.yaml")
	if err := os.WriteFile(path, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, cmd := startOnTerminal(t, nil, "init", "-o", path)
	err := cmd.Wait()
	<-c.done // EIO once the CLI has exited
	out := c.buf.String()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitFailure || !strings.Contains(out, "exists: --force replaces it") {
		t.Errorf("exit %v: %q", err, out)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep" {
		t.Error("replaced")
	}
}

// TestSyncProgressOnATerminal: on a terminal billing sync shows its
// progress (a count: Stripe does not say how many there are) and clears
// it; on a pipe it shows none (TestSyncCommand).
func TestSyncProgressOnATerminal(t *testing.T) {
	e := newDBEnv(t)
	e.mustRun(t, "migrate")
	st := e.store(t)
	e.subscribe(t, st, 150, 150)
	cmd := exec.Command(os.Args[0], "sync", "--api-base", e.fake.URL(), "-f", e.plans)
	cmd.Env = append(os.Environ(), "BILLING_TEST_RUN_MAIN=1", "TERM=xterm-256color", "NO_COLOR=1",
		"DATABASE_URL="+e.db, "STRIPE_SECRET_KEY=sk_test_ops")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 200})
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no pseudo-terminal under CI: %v", err)
		}
		t.Skipf("cannot open a pseudo-terminal (%v): run where /dev/ptmx is usable (a container needs devpts mounted)", err)
	}
	defer f.Close()
	c := &console{t: t, f: f, done: make(chan struct{})}
	go c.read()
	c.expect("syncing subscriptions")
	c.expect("150 subscription(s) in 2 page(s): 150 stored")
	c.expect("Done.")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, c.buf.String())
	}
	<-c.done
	if strings.Contains(c.buf.String(), "\x1b[3") {
		t.Errorf("colour with NO_COLOR set:\n%q", c.buf.String())
	}
}

// startOnTerminal runs the test binary as billing args... on a
// pseudo-terminal with env added, and returns its console.
func startOnTerminal(t *testing.T, env []string, args ...string) (*console, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "BILLING_TEST_RUN_MAIN=1", "TERM=xterm-256color", "NO_COLOR=1"), env...)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 200})
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no pseudo-terminal under CI: %v", err)
		}
		t.Skipf("cannot open a pseudo-terminal (%v): run where /dev/ptmx is usable (a container needs devpts mounted)", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		f.Close()
	})
	c := &console{t: t, f: f, done: make(chan struct{})}
	go c.read()
	return c, cmd
}

var whsec = regexp.MustCompile(`\twhsec_[A-Za-z0-9]{16,}\n`)

// The one secret the command shows, a new endpoint's signing secret,
// goes to a terminal (TestSetupSecretNotOnAPipe: never to a pipe).
func TestSetupSecretOnATerminal(t *testing.T) {
	fake := billingtest.New(billingtest.Options{})
	defer fake.Close()
	path := writePlans(t, 2900)
	c, cmd := startOnTerminal(t, []string{"STRIPE_SECRET_KEY=sk_test_setup"},
		"setup", "--api-base", fake.URL(), "-f", path, "--webhook-url", hookURL)
	c.expect("The new endpoint's signing secret, for STRIPE_WEBHOOK_SECRET (shown once):")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	<-c.done
	if !whsec.MatchString(strings.ReplaceAll(c.buf.String(), "\r\n", "\n")) {
		t.Error("no signing secret on the terminal") // the output is not printed: it holds a secret
	}
}

func TestStripeServeSecretOnATerminal(t *testing.T) {
	c, cmd := startOnTerminal(t, nil, "stripe", "serve", "--addr", "127.0.0.1:0", "--webhook-url", "http://127.0.0.1:9/stripe/webhook")
	c.expect("Ready.")
	c.mu.Lock()
	out := strings.ReplaceAll(c.buf.String(), "\r\n", "\n")
	c.mu.Unlock()
	if !whsec.MatchString(out) {
		t.Error("no signing secret on the terminal")
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after an interrupt: %v", err)
	}
}
