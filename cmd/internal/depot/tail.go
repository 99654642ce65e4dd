package depot

import (
	"io"
	"os"
	"strings"
)

// exitTailLines is how many of a box's last log lines a dead box shows.
const exitTailLines = 6

// maxTailRead bounds what logTail reads from the end of a log: a few lines
// of slog text, and a runaway line cut.
const maxTailRead = 16 << 10

// logTail is the last n lines written to the log at path after offset from
// (the current process's own lines), "" if none or unreadable.
func logTail(path string, from int64, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil || end <= from {
		return ""
	}
	start := max(from, end-maxTailRead)
	buf := make([]byte, end-start)
	if _, err := f.ReadAt(buf, start); err != nil && err != io.EOF {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if start > from && len(lines) > 1 {
		lines = lines[1:] // the first is cut
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
