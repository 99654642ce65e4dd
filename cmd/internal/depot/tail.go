package depot

import (
	"bytes"
	"strings"
	"sync"
)

// exitTailLines is how many of a box's last log lines a dead box shows.
const exitTailLines = 6

// maxTailLine caps one kept line (a runaway line without a newline).
const maxTailLine = 1 << 10

// lineTail is an io.Writer keeping the last n lines written to it.
type lineTail struct {
	mu      sync.Mutex
	n       int
	lines   []string
	partial []byte
}

func newLineTail(n int) *lineTail { return &lineTail{n: n} }

func (t *lineTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rest := p
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			t.partial = append(t.partial, rest...)
			if len(t.partial) > maxTailLine {
				t.partial = t.partial[:maxTailLine]
			}
			return len(p), nil
		}
		line := append(t.partial, rest[:i]...)
		t.partial = nil
		if len(line) > maxTailLine {
			line = line[:maxTailLine]
		}
		t.lines = append(t.lines, string(line))
		if len(t.lines) > t.n {
			t.lines = t.lines[len(t.lines)-t.n:]
		}
		rest = rest[i+1:]
	}
}

// String is the kept lines, and a last line without its newline.
func (t *lineTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := t.lines
	if len(t.partial) > 0 {
		lines = append(lines[:len(lines):len(lines)], string(t.partial))
	}
	return strings.Join(lines, "\n")
}

func (t *lineTail) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines, t.partial = nil, nil
}
