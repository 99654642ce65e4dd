package table

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const mod = "example.com/m"

// canned is go test -json output: plain metrics, custom ones, a
// sub-benchmark and a failed benchmark.
const canned = `{"Action":"output","Package":"example.com/m/a","Test":"BenchmarkX","Output":"BenchmarkX-2   \t   100\t  1200 ns/op\t  64 B/op\t  3 allocs/op\n"}
{"Action":"output","Package":"example.com/m/a","Test":"BenchmarkY/latency=0s","Output":"BenchmarkY/latency=0s-2 \t 1\t 0 ns/op\t 12.5 p50-ms\t 900 B/op\t 2 allocs/op\n"}
{"Action":"output","Package":"example.com/m/a","Test":"BenchmarkZ","Output":"    z_test.go:9: broker gone\n"}
{"Action":"output","Package":"example.com/m/a","Test":"BenchmarkZ","Output":"--- FAIL: BenchmarkZ\n"}
{"Action":"fail","Package":"example.com/m/a","Test":"BenchmarkZ"}
`

func TestParseAndBuild(t *testing.T) {
	res, err := Parse(strings.NewReader(canned), 2)
	require.NoError(t, err)
	require.Equal(t, 1200.0, res["example.com/m/a BenchmarkX"].Metrics["ns/op"])
	require.Equal(t, 3.0, res["example.com/m/a BenchmarkX"].Metrics["allocs/op"])
	require.Equal(t, 12.5, res["example.com/m/a BenchmarkY/latency=0s"].Metrics["p50-ms"])
	require.True(t, res["example.com/m/a BenchmarkZ"].Failed)

	ok := []Row{{What: "x", Fig: M("./a", "BenchmarkX", "ns/op"), Ref: Const("c", 400, "ns/op")},
		{What: "y", Fig: M("./a", "BenchmarkY/latency=0s", "p50-ms"), Ref: Const("d", 0, "p50-ms")}}
	lines, err := Build(ok, mod, res, false)
	require.NoError(t, err)
	require.InDelta(t, 3.0, *lines[0].Ratio, 1e-9)
	require.Nil(t, lines[1].Ratio)

	missing := []Row{{What: "gone", Fig: M("./a", "BenchmarkGone", "ns/op"), Ref: Const("c", 1, "ns/op")}}
	_, err = Build(missing, mod, res, false)
	require.ErrorContains(t, err, "BenchmarkGone")
	lines, err = Build(missing, mod, res, true)
	require.NoError(t, err)
	require.Equal(t, "missing", lines[0].Status)

	failed := []Row{{What: "z", Fig: M("./a", "BenchmarkZ", "ns/op"), Ref: Const("c", 1, "ns/op")}}
	_, err = Build(failed, mod, res, true)
	require.ErrorContains(t, err, "broker gone", "a failed benchmark is an error even with allowMissing")
}

// test2json may split a result line over two output events (the name is
// printed before the benchmark runs, its figures after).
func TestParseJoinsSplitLines(t *testing.T) {
	split := `{"Action":"output","Package":"example.com/m/a","Test":"BenchmarkX","Output":"BenchmarkX-2   \t"}
{"Action":"output","Package":"example.com/m/a","Test":"BenchmarkY","Output":"BenchmarkY-2 \t"}
{"Action":"output","Package":"example.com/m/a","Test":"BenchmarkX","Output":"   100\t  1200 ns/op\n"}
{"Action":"output","Package":"example.com/m/a","Test":"BenchmarkY","Output":" 7\t  5 ns/op"}
`
	res, err := Parse(strings.NewReader(split), 2)
	require.NoError(t, err)
	require.Equal(t, 1200.0, res["example.com/m/a BenchmarkX"].Metrics["ns/op"])
	require.Equal(t, 5.0, res["example.com/m/a BenchmarkY"].Metrics["ns/op"])
}

// A failed benchmark's fail event and --- FAIL line carry the -procs suffix;
// the failure and its log land on the benchmark all the same.
func TestParseFailWithProcsSuffix(t *testing.T) {
	failed := `{"Action":"output","Package":"example.com/m/a","Test":"BenchmarkX","Output":"    x_test.go:9: slot 1 not released\n"}
{"Action":"output","Package":"example.com/m/a","Test":"BenchmarkX-2","Output":"--- FAIL: BenchmarkX-2\n"}
{"Action":"fail","Package":"example.com/m/a","Test":"BenchmarkX-2"}
`
	res, err := Parse(strings.NewReader(failed), 2)
	require.NoError(t, err)
	require.True(t, res["example.com/m/a BenchmarkX"].Failed)
	require.Contains(t, res["example.com/m/a BenchmarkX"].Why, "slot 1 not released")
	require.NotContains(t, res, "example.com/m/a BenchmarkX-2")
}
