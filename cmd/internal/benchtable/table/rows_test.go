package table

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRowsNameBenchmarksThatExist: every row's benchmark, and every fixed
// run count's, is a func BenchmarkX(b *testing.B) in a _test.go file of
// its package, so that a rename fails make test rather than make bench ten
// minutes in. Only the top-level name is checked: sub-benchmarks are named
// at run time (b.Run), which no parser sees.
func TestRowsNameBenchmarksThatExist(t *testing.T) {
	root := moduleRoot(t)
	found := map[string]map[string]bool{} // pkg -> benchmark names
	benches := func(pkg string) map[string]bool {
		if found[pkg] == nil {
			found[pkg] = benchmarksIn(t, filepath.Join(root, filepath.FromSlash(pkg)))
		}
		return found[pkg]
	}
	used := map[string]bool{} // "pkg Top" of every row's measured metric
	for _, r := range Rows {
		for _, m := range []Metric{r.Fig, r.Ref} {
			if m.Bench == "" {
				continue
			}
			used[m.Pkg+" "+m.Top()] = true
			require.True(t, benches(m.Pkg)[m.Top()], "row %q: no func %s(b *testing.B) in %s's _test.go files", r.What, m.Top(), m.Pkg)
		}
	}
	for k := range Runs {
		pkg, name, ok := strings.Cut(k, " ")
		require.True(t, ok, "Runs key %q: want \"./pkg BenchmarkX\"", k)
		require.True(t, benches(pkg)[name], "Runs key %q: no func %s(b *testing.B) in %s's _test.go files", k, name, pkg)
		require.True(t, used[k], "Runs key %q: no row measures it (a stale count)", k)
	}
}

// benchmarksIn is the names of the func BenchmarkX(b *testing.B) (any
// parameter name) declared in dir's _test.go files.
func benchmarksIn(t *testing.T, dir string) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no _test.go files in %s: is the row's package right?", dir)
	out := map[string]bool{}
	fset := token.NewFileSet()
	for _, p := range files {
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Benchmark") || !takesTestingB(fn) {
				continue
			}
			out[fn.Name.Name] = true
		}
	}
	return out
}

// takesTestingB: the one parameter is *testing.B.
func takesTestingB(fn *ast.FuncDecl) bool {
	ps := fn.Type.Params.List
	if len(ps) != 1 || len(ps[0].Names) > 1 || fn.Type.Results != nil {
		return false
	}
	star, ok := ps[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	x, ok := sel.X.(*ast.Ident)
	return ok && x.Name == "testing" && sel.Sel.Name == "B"
}

// moduleRoot is the nearest directory up from here holding go.mod: rows
// name packages relative to it ("./store").
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "no go.mod above the test's directory")
		dir = parent
	}
}
