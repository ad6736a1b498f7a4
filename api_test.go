package billing_test

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNoStripeGoInTheAPI: no exported declaration of billing, memstore,
// sqlstore or storetest names a stripe-go type, so that a stripe-go major
// upgrade breaks no user and no custom store. (billingtest imitates
// Stripe and may.)
func TestNoStripeGoInTheAPI(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{".", "memstore", "sqlstore", "storetest"} {
		fset := token.NewFileSet()
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		checked := 0
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
			require.NoError(t, err)
			stripeNames := map[string]bool{}
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if !strings.HasPrefix(path, "github.com/stripe/stripe-go/") {
					continue
				}
				local := filepath.Base(path)
				if strings.HasPrefix(local, "v") && strings.Count(path, "/") == 3 {
					local = "stripe"
				}
				if imp.Name != nil {
					local = imp.Name.Name
				}
				stripeNames[local] = true
			}
			for _, where := range exportedTypeExprs(f) {
				checked++
				var buf bytes.Buffer
				require.NoError(t, printer.Fprint(&buf, fset, where.expr))
				for n := range stripeNames {
					assert.NotContains(t, buf.String(), n+".", "%s: %s names a stripe-go type: %s", name, where.decl, buf.String())
				}
			}
		}
		assert.Positive(t, checked, "%s: nothing exported was checked", dir)
	}
}

type typeExpr struct {
	decl string
	expr ast.Node
}

// exportedTypeExprs returns the type expressions of f's exported
// declarations: functions and methods of exported types (their
// signatures), exported types (their exported fields and methods), and
// exported variables and constants with a type.
func exportedTypeExprs(f *ast.File) []typeExpr {
	var out []typeExpr
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() {
				continue
			}
			if d.Recv != nil && !ast.IsExported(recvName(d.Recv.List[0].Type)) {
				continue
			}
			out = append(out, typeExpr{d.Name.Name, d.Type})
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					if !s.Name.IsExported() {
						continue
					}
					switch tt := s.Type.(type) {
					case *ast.StructType:
						for _, fld := range tt.Fields.List {
							for _, n := range fld.Names {
								if n.IsExported() {
									out = append(out, typeExpr{s.Name.Name + "." + n.Name, fld.Type})
								}
							}
							if len(fld.Names) == 0 { // embedded
								out = append(out, typeExpr{s.Name.Name + " (embedded)", fld.Type})
							}
						}
					case *ast.InterfaceType:
						for _, m := range tt.Methods.List {
							out = append(out, typeExpr{s.Name.Name + " (method)", m.Type})
						}
					default:
						out = append(out, typeExpr{s.Name.Name, s.Type})
					}
				case *ast.ValueSpec:
					for _, n := range s.Names {
						if n.IsExported() && s.Type != nil {
							out = append(out, typeExpr{n.Name, s.Type})
						}
					}
				}
			}
		}
	}
	return out
}

func recvName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.StarExpr:
		return recvName(e.X)
	case *ast.IndexExpr:
		return recvName(e.X)
	case *ast.Ident:
		return e.Name
	}
	return ""
}
