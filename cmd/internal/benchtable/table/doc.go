// Package table is `make bench`'s logic: the rows of issue 12's benchmark
// table (rows.go), the go test runs that measure them (plan.go, run.go), the
// parser of go test -json benchmark output (parse.go) and the table built
// from it (build.go, print.go). cmd/internal/benchtable is its thin main.
//
// Every row is a figure and the reference it is judged against, both
// measured in the same run (or, for a configured bound such as the keypad
// debounce, the constant the code uses), and their ratio figure/reference.
// A row whose benchmark or metric did not come out of the run is an error:
// a renamed benchmark must not turn into a blank row.
package table
