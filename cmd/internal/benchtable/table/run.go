package table

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"time"
)

// Exec runs one Run with the go command and returns its benchmark results.
// The -json stream is also copied to raw (nil: dropped), so that a failure
// can be read in full. A go test that fails (a build error, a failed
// benchmark) is an error carrying the end of its output, but the results
// parsed before it are still returned.
func Exec(ctx context.Context, goCmd string, r Run, procs int, timeout time.Duration, raw io.Writer) (map[string]*Result, error) {
	args := []string{"test", "-run", "^$", "-bench", r.Pattern(), "-benchmem", "-json",
		"-benchtime", r.Benchtime, "-cpu", strconv.Itoa(procs), "-timeout", timeout.String(), r.Pkg}
	cmd := exec.CommandContext(ctx, goCmd, args...)
	// The -json stream (stdout) apart from stderr: a benchmark's own
	// stderr writes are not converted by test2json, and one landing in the
	// middle of a JSON line lost that line's result.
	var out, stderr bytes.Buffer
	var sink, esink io.Writer = &out, &stderr
	if raw != nil {
		sink, esink = io.MultiWriter(&out, raw), io.MultiWriter(&stderr, raw)
	}
	cmd.Stdout, cmd.Stderr = sink, esink
	runErr := cmd.Run()
	res, err := Parse(bytes.NewReader(out.Bytes()), procs)
	if err != nil {
		return nil, err
	}
	if runErr != nil {
		return res, fmt.Errorf("go %v: %w\n%s%s", args, runErr, tail(out.Bytes()), tail(stderr.Bytes()))
	}
	return res, nil
}

// tailBytes is how much of a failed go test's output an error carries: the
// failure is at the end; the whole stream is in the raw log.
const tailBytes = 4 << 10

func tail(b []byte) string {
	if len(b) > tailBytes {
		b = b[len(b)-tailBytes:]
	}
	return string(b)
}
