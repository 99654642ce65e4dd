// Command fuzzall is `make fuzz`: it finds every fuzz target in the module
// (each top-level func FuzzXxx(*testing.F) in a _test.go file), runs each
// with `go test -fuzz` for a bounded time, one at a time (go fuzzes one
// target per run, and the fuzzer already uses every core), and prints a
// table: package, target, executions, new corpus entries.
//
// The figures come from go's own progress lines, the last of
//
//	fuzz: elapsed: 10s, execs: 123456 (12345/sec), new interesting: 3 (total: 12)
//
// "new interesting" is the count of inputs the run added to the corpus in
// $GOCACHE/fuzz (not the tree: the checked-in seeds under
// testdata/fuzz/<FuzzName>/ are only read). A failing target makes go write
// the input that failed under the package's testdata/fuzz/<FuzzName>/; the
// table names that file, the run goes on to the next target, and the
// command exits 1 at the end. Such a file is a new seed worth keeping once
// the bug is fixed.
//
// Usage:
//
//	go run ./cmd/internal/fuzzall [--fuzztime 10s] [--root .] [--run REGEXP] [--list]
package main
