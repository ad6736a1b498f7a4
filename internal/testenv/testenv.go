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
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s unset under CI=true: %s", env, how)
	} else {
		t.Skipf("%s unset: %s", env, how)
	}
	return ""
}
