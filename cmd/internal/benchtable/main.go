// Command benchtable is `make bench`: it runs the benchmarks of issue 12's
// table (table.Rows), prints the table, each figure beside the reference it
// is judged against, and writes it as JSON. See package table.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/cmd/internal/benchtable/table"
)

// runTimeout bounds one go test run (one package, one benchtime): the
// longest, the webhook bursts against a 100 ms Fleetio, take minutes on a
// loaded 2-core machine; a run past this is hung.
const runTimeout = 30 * time.Minute

func main() {
	benchtime := flag.String("benchtime", "1s", "go test -benchtime of the benchmarks without a fixed run count (table.Runs)")
	out := flag.String("out", "bench.json", "where to write the table as JSON")
	rawPath := flag.String("raw", "", "also write the whole go test -json stream here")
	allowMissing := flag.Bool("allow-missing", false, "a benchmark or package that does not exist is a 'missing' row, not an error (for testing this program only)")
	goCmd := flag.String("go", "go", "the go command")
	skip := flag.String("skip", "", "do not run the packages this regexp matches (their rows print as missing and the run fails: a partial table, said so)")
	flag.Parse()
	skipRe, err := regexp.Compile(*skip)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable: --skip:", err)
		os.Exit(2)
	}
	if *skip == "" {
		skipRe = nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *goCmd, *benchtime, *out, *rawPath, *allowMissing, skipRe); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, goCmd, benchtime, outPath, rawPath string, allowMissing bool, skip *regexp.Regexp) error {
	mod, err := exec.CommandContext(ctx, goCmd, "list", "-m").Output()
	if err != nil {
		return fmt.Errorf("go list -m (run me from the module's root): %w", err)
	}
	module := strings.TrimSpace(string(mod))
	var raw io.Writer
	if rawPath != "" {
		f, err := os.Create(rawPath)
		if err != nil {
			return err
		}
		defer f.Close()
		raw = f
	}
	procs := runtime.GOMAXPROCS(0)
	results := map[string]*table.Result{}
	var errs []error
	start := time.Now()
	for _, r := range table.Plan(table.Rows, table.Runs, benchtime) {
		if _, err := os.Stat(r.Pkg); allowMissing && errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(os.Stderr, "benchtable: %s does not exist, its rows are missing\n", r.Pkg)
			continue
		}
		if skip != nil && skip.MatchString(r.Pkg) {
			fmt.Fprintf(os.Stderr, "benchtable: %s skipped (--skip), its rows are missing\n", r.Pkg)
			errs = append(errs, fmt.Errorf("%s not run (--skip): the table is partial", r.Pkg))
			continue
		}
		t0 := time.Now()
		fmt.Fprintf(os.Stderr, "benchtable: %s -bench '%s' -benchtime %s ...", r.Pkg, r.Pattern(), r.Benchtime)
		res, err := table.Exec(ctx, goCmd, r, procs, runTimeout, raw)
		fmt.Fprintf(os.Stderr, " %s\n", time.Since(t0).Round(time.Second))
		if err != nil {
			errs = append(errs, err)
		}
		for k, v := range res {
			results[k] = v
		}
	}
	lines, err := table.Build(table.Rows, module, results, allowMissing || skip != nil)
	if err != nil {
		errs = append(errs, err)
	}
	if err := table.Print(os.Stdout, lines); err != nil {
		return err
	}
	fmt.Printf("(ratio = figure / reference; %d CPUs, GOMAXPROCS %d, benchtime %s, %s in all)\n",
		runtime.NumCPU(), procs, benchtime, time.Since(start).Round(time.Second))
	doc := struct {
		Generated time.Time    `json:"generated"`
		Go        string       `json:"go"`
		CPUs      int          `json:"cpus"`
		Benchtime string       `json:"benchtime"`
		Rows      []table.Line `json:"rows"`
	}{time.Now().UTC(), runtime.Version(), runtime.NumCPU(), benchtime, lines}
	js, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(outPath, append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the table: %w", err)
	}
	return errors.Join(errs...)
}
