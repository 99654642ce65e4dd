package main

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// moduleRoot is the repository root, two levels up from cmd/internal/fuzzall.
const moduleRoot = "../../.."

func TestParseOutput(t *testing.T) {
	for name, tc := range map[string]struct {
		out          string
		execs, added uint64
		crasher      string
	}{
		"a clean run: the last progress line counts": {out: `fuzz: elapsed: 0s, gathering baseline coverage: 0/12 completed
fuzz: elapsed: 1s, gathering baseline coverage: 12/12 completed, now fuzzing with 2 workers
fuzz: elapsed: 3s, execs: 35208 (11735/sec), new interesting: 2 (total: 14)
fuzz: elapsed: 6s, execs: 71002 (11931/sec), new interesting: 3 (total: 15)
fuzz: elapsed: 10s, execs: 118304 (11820/sec), new interesting: 5 (total: 17)
PASS
ok  	github.com/smartbox-oss/smartbox/sync/wire	10.412s
`, execs: 118304, added: 5},
		"a line without new interesting": {out: "fuzz: elapsed: 3s, execs: 100 (33/sec)\n", execs: 100},
		"only the baseline ran":          {out: "fuzz: elapsed: 0s, gathering baseline coverage: 0/3 completed\nPASS\n"},
		"a crasher": {out: `fuzz: elapsed: 3s, execs: 9050 (3016/sec), new interesting: 1 (total: 4)
--- FAIL: FuzzOpen (3.47s)
    --- FAIL: FuzzOpen (0.00s)
        wire_fuzz_test.go:40: a mutated envelope verified
    Failing input written to testdata/fuzz/FuzzOpen/582528ddfad69eb5
    To re-run:
    go test -run=FuzzOpen/582528ddfad69eb5
FAIL
exit status 1
`, execs: 9050, added: 1, crasher: "testdata/fuzz/FuzzOpen/582528ddfad69eb5"},
		"a build error": {out: "# github.com/x/y\n./a_test.go:3:1: syntax error\nFAIL\tgithub.com/x/y [build failed]\n"},
	} {
		t.Run(name, func(t *testing.T) {
			execs, added, crasher := parseOutput(strings.NewReader(tc.out))
			require.Equal(t, tc.execs, execs)
			require.Equal(t, tc.added, added)
			require.Equal(t, tc.crasher, crasher)
		})
	}
}

func TestRunLimit(t *testing.T) {
	d, err := runLimit("10s")
	require.NoError(t, err)
	require.Equal(t, 10*1e9+buildAllowance.Nanoseconds(), d.Nanoseconds())
	_, err = runLimit("500x")
	require.NoError(t, err)
	for _, bad := range []string{"", "x", "ten", "-1s", "0s"} {
		_, err := runLimit(bad)
		require.Error(t, err, bad)
	}
}

// grepTargets finds fuzz targets the way a person would, by the line that
// starts one, independently of findTargets' parser.
func grepTargets(t *testing.T, root string) map[Target]bool {
	start := regexp.MustCompile(`^func (Fuzz[A-Z0-9_][A-Za-z0-9_]*|Fuzz)\(\w+ \*testing\.F\)`)
	out := map[Target]bool{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || (p != root && strings.HasPrefix(d.Name(), "."))) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if m := start.FindStringSubmatch(sc.Text()); m != nil {
				rel, _ := filepath.Rel(root, filepath.Dir(p))
				out[Target{Dir: filepath.ToSlash(rel), Name: m[1]}] = true
			}
		}
		return sc.Err()
	})
	require.NoError(t, err)
	return out
}

// TestEveryTargetFound: make fuzz runs every fuzz target in the tree, so a
// new one cannot be forgotten, and each has its checked-in seed corpus.
func TestEveryTargetFound(t *testing.T) {
	found, err := findTargets(moduleRoot)
	require.NoError(t, err)
	got := map[Target]bool{}
	for _, tg := range found {
		require.False(t, got[tg], "target %v listed twice", tg)
		got[tg] = true
	}
	want := grepTargets(t, moduleRoot)
	require.NotEmpty(t, want)
	require.Equal(t, want, got, "findTargets and a grep for ^func Fuzz disagree")
	for tg := range got {
		dir := filepath.Join(moduleRoot, tg.Dir, "testdata", "fuzz", tg.Name)
		entries, err := os.ReadDir(dir)
		require.NoError(t, err, "%s %s has no seed corpus: add files in the go test fuzz v1 format under %s", tg.Pkg(), tg.Name, dir)
		require.NotEmpty(t, entries, "%s %s: its seed corpus %s is empty", tg.Pkg(), tg.Name, dir)
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(string(b), "go test fuzz v1\n"), "%s/%s is not in the go test fuzz v1 format", dir, e.Name())
		}
	}
}

func TestIsFuzzTarget(t *testing.T) {
	dir := t.TempDir()
	src := `package p

import "testing"

FUNC FuzzA(f *testing.F)        {}
FUNC Fuzz(f *testing.F)         {}
FUNC Fuzzy(f *testing.F)        {}
FUNC FuzzB(t *testing.T)        {}
FUNC FuzzC(f *testing.F) error  { return nil }
FUNC helperFuzz(f *testing.F)   {}
FUNC (x T) FuzzD(f *testing.F)  {}
type T struct{}
`
	// Written FUNC here so that the grep in TestEveryTargetFound does not
	// take these lines of a string for targets of this package.
	src = strings.ReplaceAll(src, "FUNC ", "func ")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "p_test.go"), []byte(src), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "p.go"), []byte("package p\nfunc FuzzE(f *testing.F) {}\n"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "testdata"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "testdata", "x_test.go"), []byte(src), 0o644))
	got, err := findTargets(dir)
	require.NoError(t, err)
	require.Equal(t, []Target{{Dir: ".", Name: "Fuzz"}, {Dir: ".", Name: "FuzzA"}}, got)
}

func TestWriteTable(t *testing.T) {
	var b strings.Builder
	writeTable(&b, []Result{
		{Target: Target{Dir: "sync/wire", Name: "FuzzOpen"}, Execs: 1200, New: 3},
		{Target: Target{Dir: "store", Name: "FuzzApply"}, Execs: 10, Failed: true, Crasher: "store/testdata/fuzz/FuzzApply/abc"},
	})
	out := b.String()
	require.Contains(t, out, "./sync/wire")
	require.Contains(t, out, "CRASHER store/testdata/fuzz/FuzzApply/abc")
	require.Regexp(t, `total\s+2 targets\s+1210\s+3\s+1 failed`, out)
}
