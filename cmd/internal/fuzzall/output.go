package main

import (
	"bufio"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Result is what one target's run reported.
type Result struct {
	Target
	Execs   uint64 // executions, from go's last progress line
	New     uint64 // inputs added to the cache corpus ("new interesting")
	Crasher string // the failing input go wrote, relative to the package dir; "" if none
	Failed  bool   // go test failed (a crasher, a failing seed, a build error)
}

var (
	// progressLine is go's coordinator status line (internal/fuzz,
	// coordinator.go: "elapsed: %s, execs: %d (%.0f/sec), new
	// interesting: %d (total: %d)"). "new interesting" is missing from
	// the lines printed before the first new input on some versions,
	// hence optional.
	progressLine = regexp.MustCompile(`^fuzz: elapsed: [^,]+, execs: (\d+) \([^)]*\)(?:, new interesting: (\d+))?`)
	// crasherLine is how go names the input it saved after a failure:
	// "Failing input written to testdata/fuzz/FuzzX/0123abcd".
	crasherLine = regexp.MustCompile(`Failing input written to (\S+)`)
)

// parseOutput reads one `go test -fuzz` run's combined output: the last
// progress line's executions and new corpus entries, and the crasher's
// path if go saved one.
func parseOutput(r io.Reader) (execs, added uint64, crasher string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20) // a failing test may print long lines
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if m := progressLine.FindStringSubmatch(line); m != nil {
			execs, _ = strconv.ParseUint(m[1], 10, 64)
			added = 0
			if m[2] != "" {
				added, _ = strconv.ParseUint(m[2], 10, 64)
			}
			continue
		}
		if m := crasherLine.FindStringSubmatch(line); m != nil {
			crasher = m[1]
		}
	}
	return execs, added, crasher
}
