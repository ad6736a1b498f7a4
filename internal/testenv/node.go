package testenv

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// NodeSDK returns the node binary and dir made absolute: a directory where
// `npm ci` installed Stripe's Node SDK (billingtest/testdata/node). Without
// node or the SDK the test is skipped, saying how to install them, or
// fails under CI=true.
func NodeSDK(t testing.TB, dir string) (node, abs string) {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	node, err = exec.LookPath("node")
	if err != nil {
		Unavailable(t, "node is not installed", "apt-get install nodejs npm, then run `npm ci` in billingtest/testdata/node")
		return "", ""
	}
	if _, err := os.Stat(filepath.Join(abs, "node_modules", "stripe", "package.json")); err != nil {
		Unavailable(t, "the Stripe Node SDK is not installed", "run `npm ci` in billingtest/testdata/node")
		return "", ""
	}
	return node, abs
}

// RunNode runs script of dir with node, its input written as a JSON file
// whose path is the script's argument, and returns what it printed; the
// test fails, with its stderr, if it fails.
func RunNode(t testing.TB, ctx context.Context, node, dir, script string, input any) []byte {
	t.Helper()
	in, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "input.json")
	if err := os.WriteFile(file, in, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, script), file)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node %s: %v: %s", script, err, stderr.String())
	}
	return out
}
