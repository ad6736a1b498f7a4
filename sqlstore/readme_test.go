package sqlstore_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestREADME keeps README.md's schema and program the code's: the
// schema is the PostgreSQL migration, verbatim, and the program is
// example_test.go as a main package.
func TestREADME(t *testing.T) {
	b, err := os.ReadFile("README.md")
	require.NoError(t, err)
	readme := string(b)

	schema, err := os.ReadFile("migrations/postgres/0001_init.sql")
	require.NoError(t, err)
	assert.Contains(t, readme, "```sql\n"+string(schema)+"```\n", "README.md's schema is migrations/postgres/0001_init.sql")
	schema2, err := os.ReadFile("migrations/postgres/0002_invoice_order.sql")
	require.NoError(t, err)
	assert.Contains(t, readme, "```sql\n"+string(schema2)+"```\n", "README.md shows migrations/postgres/0002_invoice_order.sql")
	schema4, err := os.ReadFile("migrations/postgres/0004_outbox.sql")
	require.NoError(t, err)
	assert.Contains(t, readme, "```sql\n"+string(schema4)+"```\n", "README.md shows migrations/postgres/0004_outbox.sql")
	schema5, err := os.ReadFile("migrations/postgres/0005_refunds.sql")
	require.NoError(t, err)
	assert.Contains(t, readme, "```sql\n"+string(schema5)+"```\n", "README.md shows migrations/postgres/0005_refunds.sql")
	schema6, err := os.ReadFile("migrations/postgres/0006_event_info.sql")
	require.NoError(t, err)
	assert.Contains(t, readme, "```sql\n"+string(schema6)+"```\n", "README.md shows migrations/postgres/0006_event_info.sql")

	schema7, err := os.ReadFile("migrations/postgres/0007_checkpoints.sql")
	require.NoError(t, err)
	assert.Contains(t, readme, "```sql\n"+string(schema7)+"```\n", "README.md shows migrations/postgres/0007_checkpoints.sql")

	ex, err := os.ReadFile("example_test.go")
	require.NoError(t, err)
	prog := strings.Replace(string(ex), "package sqlstore_test", "package main", 1)
	prog = strings.Replace(prog, "func Example() {", "func main() {", 1)
	i := strings.Index(prog, "\n\n\t// Output:")
	require.Positive(t, i, "example_test.go has an Output comment")
	j := strings.Index(prog[i:], "\n}")
	prog = prog[:i] + prog[i+j:]
	prog = strings.Replace(prog, "// This program is the README's: billing on SQLite, in a temporary\n// directory. It plays Stripe itself, sending one signed webhook event.\n", "", 1)
	assert.Contains(t, readme, "```go\n"+prog+"```\n", "README.md's program is example_test.go's Example as a main package")

	out := string(ex[strings.Index(string(ex), "\t// Output:\n")+len("\t// Output:\n"):])
	out = out[:strings.Index(out, "\n}")+1]
	want := strings.ReplaceAll(strings.ReplaceAll(out, "\t// ", ""), "\t//", "")
	assert.Contains(t, readme, "It prints:\n\n```\n"+want+"```\n", "README.md shows the Example's output")
}
