package table

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Run is one go test invocation: the benchmarks of one package that run
// with the same -benchtime.
type Run struct {
	Pkg       string
	Benches   []string // top-level names
	Benchtime string   // "1s", "20x"
}

// Pattern is the -bench regexp selecting exactly Benches (and their
// sub-benchmarks).
func (r Run) Pattern() string {
	qs := make([]string, len(r.Benches))
	for i, b := range r.Benches {
		qs[i] = regexp.QuoteMeta(b)
	}
	return "^(" + strings.Join(qs, "|") + ")$"
}

// Plan is the runs that measure rows: per package, the benchmarks with a
// fixed count in runs get "Nx", the others benchtime.
func Plan(rows []Row, runs map[string]int, benchtime string) []Run {
	type key struct{ pkg, bt string }
	byKey := map[key][]string{}
	for _, r := range rows {
		for _, m := range []Metric{r.Fig, r.Ref} {
			if m.Bench == "" {
				continue
			}
			bt := benchtime
			if n, ok := runs[m.Pkg+" "+m.Top()]; ok {
				bt = fmt.Sprintf("%dx", n)
			}
			k := key{m.Pkg, bt}
			if !slices.Contains(byKey[k], m.Top()) {
				byKey[k] = append(byKey[k], m.Top())
			}
		}
	}
	var out []Run
	for k, bs := range byKey {
		out = append(out, Run{Pkg: k.pkg, Benches: sorted(bs), Benchtime: k.bt})
	}
	slices.SortFunc(out, func(a, b Run) int {
		return strings.Compare(a.Pkg+" "+a.Benchtime, b.Pkg+" "+b.Benchtime)
	})
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
