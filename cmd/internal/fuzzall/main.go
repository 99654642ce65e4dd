package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"
)

// defaultFuzzTime is each target's run when --fuzztime is not given
// (make fuzz's FUZZTIME default): long enough to get past go's baseline
// pass over the seeds and the cached corpus, short enough that the whole
// tree's targets run in minutes.
const defaultFuzzTime = "10s"

// buildAllowance is added to a target's fuzz time for its whole go test
// run: building the package with coverage instrumentation on a loaded
// 2-core machine takes a minute or more, and a run that hangs past it is
// stopped and counted as failed.
const buildAllowance = 10 * time.Minute

func main() {
	fuzztime := flag.String("fuzztime", defaultFuzzTime, "how long to fuzz each target (go test -fuzztime: a duration or Nx)")
	root := flag.String("root", ".", "the module's root directory")
	run := flag.String("run", "", "fuzz only the targets whose package/name matches this regexp")
	list := flag.Bool("list", false, "list the targets and exit")
	goCmd := flag.String("go", "go", "the go command")
	flag.Parse()

	targets, err := findTargets(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fuzzall:", err)
		os.Exit(2)
	}
	if *run != "" {
		re, err := regexp.Compile(*run)
		if err != nil {
			fmt.Fprintf(os.Stderr, "fuzzall: --run %q: %v\n", *run, err)
			os.Exit(2)
		}
		targets = filterTargets(targets, re)
	}
	if *list {
		for _, t := range targets {
			fmt.Printf("%s %s\n", t.Pkg(), t.Name)
		}
		return
	}
	if len(targets) == 0 {
		fmt.Fprintln(os.Stderr, "fuzzall: no fuzz targets found under", *root)
		os.Exit(2)
	}
	limit, err := runLimit(*fuzztime)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fuzzall:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var results []Result
	for i, t := range targets {
		fmt.Fprintf(os.Stderr, "fuzz [%d/%d] %s %s for %s\n", i+1, len(targets), t.Pkg(), t.Name, *fuzztime)
		res := fuzzOne(ctx, *goCmd, *root, t, *fuzztime, limit)
		results = append(results, res)
		if ctx.Err() != nil {
			break
		}
	}
	writeTable(os.Stdout, results)
	if failed := countFailed(results); failed > 0 || ctx.Err() != nil {
		fmt.Printf("fuzz: %d of %d targets failed. go kept each crasher's input in the file named above:\n"+
			"rerun it with go test -run 'FuzzName/<file name>' ./<package>, fix the bug, and keep the file as a seed\n",
			failed, len(results))
		os.Exit(1)
	}
}

func filterTargets(ts []Target, re *regexp.Regexp) []Target {
	var out []Target
	for _, t := range ts {
		if re.MatchString(t.Dir + "/" + t.Name) {
			out = append(out, t)
		}
	}
	return out
}

// runLimit is how long one go test run may take in all: the fuzz time (if
// it is a duration; an Nx count has no duration) plus buildAllowance.
func runLimit(fuzztime string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(fuzztime, "x"); ok && n != "" && strings.Trim(n, "0123456789") == "" {
		return buildAllowance * 2, nil
	}
	d, err := time.ParseDuration(fuzztime)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--fuzztime %q: want a positive duration (10s, 1m) or a count (1000x)", fuzztime)
	}
	return d + buildAllowance, nil
}

// fuzzOne runs one target. Its output goes to stderr as it comes (a human
// watching sees progress) and is parsed for the table.
// minimizeTime bounds go's minimization of each new input (go's default,
// 60 s, is outside -fuzztime and its execs are not counted: a slow target
// spent its whole 10 s shrinking and reported 19 execs). A crasher is
// saved all the same, minimized for this long.
const minimizeTime = "1s"

func fuzzOne(ctx context.Context, goCmd, root string, t Target, fuzztime string, limit time.Duration) Result {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, goCmd, "test", "-run", "^$", "-fuzz", "^"+t.Name+"$", "-fuzztime", fuzztime,
		"-fuzzminimizetime", minimizeTime, t.Pkg())
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout = io.MultiWriter(&out, os.Stderr)
	cmd.Stderr = cmd.Stdout
	err := cmd.Run()
	res := Result{Target: t, Failed: err != nil}
	res.Execs, res.New, res.Crasher = parseOutput(&out)
	if res.Crasher != "" {
		res.Crasher = path.Join(t.Dir, res.Crasher)
	}
	return res
}

func countFailed(rs []Result) int {
	n := 0
	for _, r := range rs {
		if r.Failed {
			n++
		}
	}
	return n
}

// writeTable prints the results, one target a line, and the totals.
func writeTable(w io.Writer, rs []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "package\ttarget\texecs\tnew\tresult\t")
	var execs, added uint64
	for _, r := range rs {
		result := "ok"
		switch {
		case r.Crasher != "":
			result = "CRASHER " + r.Crasher
		case r.Failed:
			result = "FAILED (see the output above)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t\n", r.Pkg(), r.Name, r.Execs, r.New, result)
		execs += r.Execs
		added += r.New
	}
	fmt.Fprintf(tw, "total\t%d targets\t%d\t%d\t%d failed\t\n", len(rs), execs, added, countFailed(rs))
	tw.Flush()
}
