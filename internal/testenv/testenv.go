// Package testenv gives tests the external services they need (stripe-mock,
// databases, browsers) through environment variables.
package testenv

import (
	"os"
	"testing"
)

// Service returns the value of the environment variable env, which names
// a service a test needs (usually its URL or DSN). When env is unset or
// empty the test is skipped with a message saying how to provide the
// service — except under CI (CI=true), where a missing service must not
// pass as a skip, and the test fails with the same message instead.
func Service(t testing.TB, env, how string) string {
	t.Helper()
	v := os.Getenv(env)
	if v != "" {
		return v
	}
	Unavailable(t, env+" unset", how)
	return ""
}

// Unavailable skips the test because something it needs is missing (what),
// saying how to provide it, or fails it under CI=true, where a missing
// service must not pass as a skip.
func Unavailable(t testing.TB, what, how string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s under CI=true: %s", what, how)
	} else {
		t.Skipf("%s: %s", what, how)
	}
}
