package depot

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/cmd/internal/selftest"
)

// SelftestTimeout bounds one self-test run: twelve locks (a jammed one
// waits selftest.DefaultTakeTimeout, an empty one DefaultSteadyWatch), the
// twelve keypad keys, a fob and the signed round trip, with room for a busy
// laptop; a test that hangs past it is killed and said so.
const SelftestTimeout = 3 * time.Minute

// promptPrefix starts each line smartboxctl selftest says to the
// technician on its stderr.
const promptPrefix = "> "

// SelftestRun is one run of `smartboxctl selftest` on a box.
type SelftestRun struct {
	// Report is its --json output.
	Report selftest.Report `json:"report"`
	// ExitCode is its exit status: 0 every row passed, 1 one failed.
	ExitCode int `json:"exit_code"`
	// Said is what it told the technician, in order (the scripted
	// technician did each step it could).
	Said []string `json:"said"`
}

// Selftest runs the real `smartboxctl selftest --yes --json` against the
// box's socket, with a scripted technician at the box: it takes out and
// puts back the keys it is asked to (through the depot, so the box's
// physical truth follows), presses each asked keypad key and holds the
// box's first key's fob at the reader. What a person could not do either
// (take a key from a jammed slot) fails as it would for them. A report
// that failed is a result, not an error: ExitCode says 1.
func (d *Depot) Selftest(ctx context.Context, id string) (*SelftestRun, error) {
	b, err := d.live(id)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, SelftestTimeout)
	defer cancel()
	var stdout bytes.Buffer
	pr, pw := io.Pipe()
	cmd := exec.CommandContext(ctx, d.ctl, "selftest", "--yes", "--json", "--socket", b.sock)
	cmd.Stdout, cmd.Stderr = &stdout, pw
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("box %s: starting %s selftest: %w", id, d.ctl, err)
	}
	run := &SelftestRun{}
	var lines []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			lines = append(lines, line)
			said, ok := strings.CutPrefix(line, promptPrefix)
			if !ok {
				continue
			}
			run.Said = append(run.Said, said)
			d.technician(ctx, b, said)
		}
		// Whatever stops the scan, the rest is drained: the command
		// must not block on a full pipe.
		_, _ = io.Copy(io.Discard, pr)
	}()
	werr := cmd.Wait()
	_ = pw.Close()
	<-done
	tail := strings.Join(lines[max(0, len(lines)-exitTailLines):], "\n")
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("box %s: smartboxctl selftest did not finish within %s: %w; it said:\n%s", id, SelftestTimeout, ctx.Err(), tail)
	case werr == nil:
	case errors.As(werr, &ee) && ee.ExitCode() == 1:
		run.ExitCode = 1
	default:
		return nil, fmt.Errorf("box %s: smartboxctl selftest: %w; it said:\n%s", id, werr, tail)
	}
	if err := json.Unmarshal(stdout.Bytes(), &run.Report); err != nil {
		return nil, fmt.Errorf("box %s: smartboxctl selftest --json printed no report (%v); it said:\n%s", id, err, tail)
	}
	return run, nil
}

// technician does what the self-test asked, as a person at box b would.
// The box's refusals (a key that does not come out of a jammed slot) are
// what the test is there to see: logged, not returned.
func (d *Depot) technician(ctx context.Context, b *Box, said string) {
	step, ok := selftest.ParseStep(said)
	if !ok {
		return // a question --yes answered, or a note
	}
	var err error
	switch step.Do {
	case selftest.ActTake:
		err = d.Take(ctx, b.id, step.Slot)
	case selftest.ActPutBack:
		err = d.PutBack(ctx, b.id, step.Slot)
	case selftest.ActPress:
		err = d.Press(ctx, b.id, step.Key)
	case selftest.ActFob:
		err = d.Fob(ctx, b.id, b.keys[0].FobUID)
	}
	if err != nil {
		d.log.Debug("self-test step refused", "box", b.id, "step", said, "err", err)
	}
}
