package testenv

import (
	"fmt"
	"testing"
)

// fakeTB records Skipf and Fatalf instead of stopping the test.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Skipf(format string, args ...any) { f.skipped = fmt.Sprintf(format, args...) }

func (f *fakeTB) Fatalf(format string, args ...any) { f.failed = fmt.Sprintf(format, args...) }

func TestService(t *testing.T) {
	const env = "TESTENV_TEST_SERVICE"
	tests := []struct {
		name, value, ci       string
		want, skipped, failed string
	}{
		{name: "set", value: "http://localhost:1", ci: "true", want: "http://localhost:1"},
		{name: "unset", skipped: env + " unset: start it"},
		{name: "unset, CI=false", ci: "false", skipped: env + " unset: start it"},
		{name: "unset under CI", ci: "true", failed: env + " unset under CI=true: start it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(env, tt.value)
			t.Setenv("CI", tt.ci)
			f := &fakeTB{TB: t}
			got := Service(f, env, "start it")
			if got != tt.want || f.skipped != tt.skipped || f.failed != tt.failed {
				t.Errorf("Service = %q, skipped %q, failed %q; want %q, %q, %q", got, f.skipped, f.failed, tt.want, tt.skipped, tt.failed)
			}
		})
	}
}
