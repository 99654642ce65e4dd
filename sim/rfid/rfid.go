package rfid

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/smartbox-oss/smartbox/box"
)

// Variant is the frame layout a simulated reader sends.
type Variant int

const (
	// RDM6300: STX, 10 hex UID, 2 hex checksum, ETX (14 bytes).
	RDM6300 Variant = iota
	// ID12 (ID-12/ID-20): as RDM6300 with CR LF before ETX (16 bytes).
	ID12
)

func (v Variant) String() string {
	switch v {
	case RDM6300:
		return "RDM6300"
	case ID12:
		return "ID-12"
	}
	return "Variant(" + strconv.Itoa(int(v)) + ")"
}

// Repeat is how often a reader sends a present tag's frame (both the RDM6300
// and the ID-12 repeat about every 50 ms).
const Repeat = 50 * time.Millisecond

// Write deadlines on the master. A frame that cannot be written within one
// repeat period is dropped, as a real reader's would be by a UART nobody
// reads. WriteRaw is for tests, which want to know: it waits longer and
// reports the failure.
const (
	frameWriteTimeout = Repeat
	rawWriteTimeout   = time.Second
)

// ErrClosed is returned by a Reader's methods after Close.
var ErrClosed = errors.New("rfid sim: reader closed")

// Frame encodes one frame carrying uid (10 hex digits; spaces, colons and
// lower case are accepted, see box.NormalizeFobUID) in the layout v.
func Frame(uid string, v Variant) ([]byte, error) {
	u, ok := box.NormalizeFobUID(uid)
	if !ok {
		return nil, fmt.Errorf("rfid sim: fob uid %q is not 10 hex digits", uid)
	}
	if v != RDM6300 && v != ID12 {
		return nil, fmt.Errorf("rfid sim: unknown reader variant %d", int(v))
	}
	var sum byte
	for i := 0; i < len(u); i += 2 {
		b, err := strconv.ParseUint(u[i:i+2], 16, 8)
		if err != nil { // NormalizeFobUID checked; kept for safety
			return nil, fmt.Errorf("rfid sim: fob uid %q: %w", uid, err)
		}
		sum ^= byte(b)
	}
	f := make([]byte, 0, 16)
	f = append(f, 0x02)
	f = append(f, u...)
	f = fmt.Appendf(f, "%02X", sum)
	if v == ID12 {
		f = append(f, '\r', '\n')
	}
	return append(f, 0x03), nil
}

// Reader is a simulated fob reader on a pty.
type Reader struct {
	// immutable
	variant Variant
	master  *os.File // the reader's side: frames are written here
	slave   *os.File // kept open so the master never sees EIO (see doc)
	path    string

	writeMu sync.Mutex // one write at a time: frames and raw bytes never interleave
	sent    atomic.Uint64

	mu      sync.Mutex // guards the fields below
	closed  bool
	tag     string        // the UID in the field, "" for none
	stop    chan struct{} // closes to end the transmitter
	stopped chan struct{} // closed when the transmitter has ended
}

// New opens a pty pair for a simulated reader sending frames of layout v.
func New(v Variant) (*Reader, error) {
	if v != RDM6300 && v != ID12 {
		return nil, fmt.Errorf("rfid sim: unknown reader variant %d", int(v))
	}
	master, slave, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("rfid sim: open pty: %w", err)
	}
	if err := makeRaw(slave); err != nil {
		_ = master.Close()
		_ = slave.Close()
		return nil, fmt.Errorf("rfid sim: raw mode on %s: %w", slave.Name(), err)
	}
	master, err = pollable(master)
	if err != nil {
		_ = slave.Close()
		return nil, fmt.Errorf("rfid sim: pty master: %w", err)
	}
	return &Reader{variant: v, master: master, slave: slave, path: slave.Name()}, nil
}

// pollable returns f as a non-blocking file in Go's poller, so that write
// deadlines work, and closes f. creack/pty calls Fd on the master, which puts
// it in blocking mode for good; a non-blocking duplicate is the way back.
func pollable(f *os.File) (*os.File, error) {
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	dup := -1
	var opErr error
	if err := rc.Control(func(fd uintptr) { dup, opErr = unix.Dup(int(fd)) }); err != nil {
		return nil, err
	}
	if opErr != nil {
		return nil, fmt.Errorf("dup: %w", opErr)
	}
	unix.CloseOnExec(dup)
	if err := unix.SetNonblock(dup, true); err != nil {
		_ = unix.Close(dup)
		return nil, fmt.Errorf("set non-blocking: %w", err)
	}
	return os.NewFile(uintptr(dup), f.Name()), nil
}

// makeRaw is cfmakeraw(3) on the slave, through SyscallConn rather than Fd
// (Fd would switch the descriptor to blocking mode for good).
func makeRaw(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	err = rc.Control(func(fd uintptr) {
		t, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		if err != nil {
			opErr = err
			return
		}
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB
		t.Cflag |= unix.CS8
		t.Cc[unix.VMIN] = 1
		t.Cc[unix.VTIME] = 0
		opErr = unix.IoctlSetTermios(int(fd), unix.TCSETS, t)
	})
	if err != nil {
		return err
	}
	return opErr
}

// Path is the slave device (e.g. /dev/pts/3): open it as the serial port.
func (r *Reader) Path() string { return r.path }

// Variant is the frame layout the reader sends.
func (r *Reader) Variant() Variant { return r.variant }

// LinkAt makes path a symlink to the slave, replacing what was there
// atomically, so a reader configured with path finds this simulator.
func (r *Reader) LinkAt(path string) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp"+strconv.Itoa(os.Getpid()))
	_ = os.Remove(tmp)
	if err := os.Symlink(r.path, tmp); err != nil {
		return fmt.Errorf("rfid sim: link %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("rfid sim: link %s: %w", path, err)
	}
	return nil
}

// Present puts the tag uid in the field: its frame goes out now and every
// 50 ms until Remove, Close, or another Present. Presenting the tag already in
// the field changes nothing.
func (r *Reader) Present(uid string) error {
	frame, err := Frame(uid, r.variant)
	if err != nil {
		return err
	}
	tag := string(frame[1:11])
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if r.tag == tag {
		return nil
	}
	r.removeLocked()
	r.tag = tag
	r.stop, r.stopped = make(chan struct{}), make(chan struct{})
	go r.transmit(frame, r.stop, r.stopped)
	return nil
}

// Sent is how many whole frames the transmitter has written since New (not
// counting WriteRaw): a test that has seen that many frames arrive knows the
// line holds no more of them.
func (r *Reader) Sent() uint64 { return r.sent.Load() }

// Remove takes the tag out of the field. When it returns, no more of its
// frames will be written.
func (r *Reader) Remove() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removeLocked()
}

// Tap presents uid for hold, then removes it; it returns after the removal.
func (r *Reader) Tap(uid string, hold time.Duration) error {
	if err := r.Present(uid); err != nil {
		return err
	}
	time.Sleep(hold)
	r.Remove()
	return nil
}

// WriteRaw writes p to the line as it is (noise, cut frames, hand-made
// frames). It fails if the bytes cannot be written within a second, which
// happens when nobody has read the slave for a long time.
func (r *Reader) WriteRaw(p []byte) error {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return r.write(p, rawWriteTimeout)
}

// Close removes any tag and closes the pty pair. A port opened on Path then
// reads EIO, like a serial adapter that was unplugged. Close is idempotent.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	r.removeLocked()
	r.writeMu.Lock() // let a WriteRaw in progress finish with the files
	defer r.writeMu.Unlock()
	return errors.Join(r.master.Close(), r.slave.Close())
}

func (r *Reader) removeLocked() {
	if r.stop == nil {
		return
	}
	close(r.stop)
	<-r.stopped
	r.tag, r.stop, r.stopped = "", nil, nil
}

func (r *Reader) transmit(frame []byte, stop <-chan struct{}, stopped chan<- struct{}) {
	defer close(stopped)
	t := time.NewTicker(Repeat)
	defer t.Stop()
	for {
		// A frame that cannot go out in time is dropped, maybe half sent: the
		// receiver then sees a cut frame, as it would on a real line.
		if r.write(frame, frameWriteTimeout) == nil {
			r.sent.Add(1)
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func (r *Reader) write(p []byte, timeout time.Duration) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	// The master is non-blocking and in Go's poller (see pollable), so
	// deadlines work. If a platform says otherwise, write blocking.
	if err := r.master.SetWriteDeadline(time.Now().Add(timeout)); err != nil && !errors.Is(err, os.ErrNoDeadline) {
		return fmt.Errorf("rfid sim: write: %w", err)
	}
	if _, err := r.master.Write(p); err != nil {
		return fmt.Errorf("rfid sim: write %d bytes to %s: %w", len(p), r.path, err)
	}
	return nil
}
