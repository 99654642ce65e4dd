package rfid

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"go.bug.st/serial"

	"github.com/smartbox-oss/smartbox/box"
)

// Defaults for Config.
const (
	DefaultBaud = 9600 // EM4100 readers (RDM6300, ID-12/ID-20) talk 9600 8N1
	// DefaultRepeat is well above the ~50 ms between a present tag's frames,
	// so a hand that wobbles the fob does not scan it twice, and well below
	// the time a person needs to take a fob away and present it again.
	DefaultRepeat    = 300 * time.Millisecond
	DefaultReopenMin = 200 * time.Millisecond
	DefaultReopenMax = 10 * time.Second
)

// readTimeout bounds each Read so the loop notices a cancelled context even if
// closing the port did not wake it. go.bug.st/serial reports a timeout as
// (0, nil), not as an error.
const readTimeout = 250 * time.Millisecond

// Config says where the reader is and how to treat its frames.
type Config struct {
	Port string // e.g. /dev/ttyAMA0, /dev/serial0, or a pty slave (or a symlink to one)
	Baud int    // default 9600
	// Repeat: a tag's frame within this gap of its previous frame belongs to
	// the same presentation (default 300ms).
	Repeat time.Duration
	// ReopenMin, ReopenMax bound the exponential back-off between attempts
	// to open a port that is missing or vanished (default 200ms .. 10s).
	ReopenMin, ReopenMax time.Duration
	// Clock times the repeat window and the back-off (nil: real time).
	// Tests inject a fake one; the serial line itself stays real I/O, so a
	// bubble of testing/synctest cannot stand in for it.
	Clock box.Clock
}

func (c Config) withDefaults() Config {
	if c.Baud <= 0 {
		c.Baud = DefaultBaud
	}
	if c.Repeat <= 0 {
		c.Repeat = DefaultRepeat
	}
	if c.ReopenMin <= 0 {
		c.ReopenMin = DefaultReopenMin
	}
	if c.ReopenMax <= 0 {
		c.ReopenMax = DefaultReopenMax
	}
	if c.ReopenMax < c.ReopenMin {
		c.ReopenMax = c.ReopenMin
	}
	return c
}

// Stats counts what a Reader has seen since New.
type Stats struct {
	Frames       uint64 // good frames, repeats included
	Scans        uint64 // presentations reported to the scanned callback
	BadChecksum  uint64 // frames dropped for a checksum mismatch
	BadFrame     uint64 // frames dropped for their shape
	Opens        uint64 // successful opens of the port
	OpenFailures uint64 // failed attempts to open it
	Lost         uint64 // times an open port failed (unplugged, pty closed)
}

// Reader reads fobs from one EM4100 reader. Create it with New; call Run once.
type Reader struct {
	// immutable
	cfg   Config
	log   *slog.Logger
	clock box.Clock

	// mutable, owned by Run
	dec    Decoder
	filter repeatFilter

	// counters, read by Stats from any goroutine
	scans, opens, openFailures, lost atomic.Uint64
}

// New makes a Reader. A nil log discards log output. Config zero fields take
// their defaults; an empty Port is reported by Run.
func New(cfg Config, log *slog.Logger) *Reader {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	clock := cfg.Clock
	if clock == nil {
		clock = box.SystemClock{}
	}
	return &Reader{
		cfg:    cfg,
		log:    log.With("component", "rfid", "port", cfg.Port),
		clock:  clock,
		filter: repeatFilter{window: cfg.Repeat},
	}
}

// Config returns the configuration in use, defaults filled in.
func (r *Reader) Config() Config { return r.cfg }

// Stats returns the reader's counters. Safe to call while Run runs.
func (r *Reader) Stats() Stats {
	bc, bf := r.dec.Errors()
	return Stats{
		Frames:       r.dec.Frames(),
		Scans:        r.scans.Load(),
		BadChecksum:  bc,
		BadFrame:     bf,
		Opens:        r.opens.Load(),
		OpenFailures: r.openFailures.Load(),
		Lost:         r.lost.Load(),
	}
}

// Errors reports the decoder's dropped frames (see Decoder.Errors).
func (r *Reader) Errors() (badChecksum, badFrame uint64) { return r.dec.Errors() }

// Run opens the port, decodes frames and calls scanned once per presentation
// of a tag: the ~50 ms repeats while a tag stays in the field collapse into
// one call, the same tag presented again after a gap longer than
// Config.Repeat counts again, and a different tag counts at once. scanned runs
// on Run's goroutine; the kernel buffers the line meanwhile, but it should
// return promptly.
//
// When the port cannot be opened or fails (a read error, EIO when a pty's
// master closes), Run logs, waits with exponential back-off between
// Config.ReopenMin and Config.ReopenMax, and reopens. It returns nil when ctx
// is done, and an error only for a configuration it can never run with. Run
// must not be called concurrently with itself.
func (r *Reader) Run(ctx context.Context, scanned func(uid string)) error {
	if r.cfg.Port == "" {
		return errors.New("rfid: no serial port configured for the fob reader")
	}
	if scanned == nil {
		scanned = func(string) {}
	}
	failures := 0    // reopens in a row that did not lead to a healthy port
	failing := false // in a streak of failures: log the first at Warn, the rest at Debug
	for {
		if ctx.Err() != nil {
			return nil
		}
		start, opens := r.clock.Now(), r.opens.Load()
		gotBytes, err := r.session(ctx, scanned)
		if ctx.Err() != nil {
			return nil
		}
		// A session that ran a while or carried data was a healthy port:
		// start the back-off again from the bottom.
		if gotBytes || r.clock.Now().Sub(start) >= r.cfg.ReopenMax {
			failures = 0
		}
		if r.opens.Load() != opens {
			failing = false // the port worked in between: losing it is news again
		}
		// The box's capped doubling: ReopenMin, twice that, ... ReopenMax.
		backoff := box.Doubling(r.cfg.ReopenMin, r.cfg.ReopenMax, failures)
		level := slog.LevelWarn
		if failing {
			level = slog.LevelDebug
		}
		r.log.Log(ctx, level, "fob reader unavailable, retrying", "err", err, "retry_in", backoff)
		failing = true

		due := make(chan struct{})
		t := r.clock.AfterFunc(backoff, func() { close(due) })
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-due:
		}
		failures++
	}
}

// session opens the port once and reads until it fails or ctx is done. It
// reports whether any byte arrived.
func (r *Reader) session(ctx context.Context, scanned func(string)) (gotBytes bool, err error) {
	// 8N1 and nothing else: InitialStatusBits stays nil because setting modem
	// bits fails on a pty (and a reader needs no DTR/RTS).
	port, err := serial.Open(r.cfg.Port, &serial.Mode{
		BaudRate: r.cfg.Baud,
		DataBits: 8,
		Parity:   serial.NoParity,
		StopBits: serial.OneStopBit,
	})
	if err != nil {
		r.openFailures.Add(1)
		return false, fmt.Errorf("rfid: open %s: %w", r.cfg.Port, err)
	}
	// Closing the port is what unblocks a pending Read at once.
	stop := context.AfterFunc(ctx, func() { _ = port.Close() })
	defer func() {
		stop()
		_ = port.Close() // idempotent in go.bug.st/serial
	}()
	if err := port.SetReadTimeout(readTimeout); err != nil {
		return false, fmt.Errorf("rfid: %s: set read timeout: %w", r.cfg.Port, err)
	}
	// What queued up while nobody listened is old news (see the package doc).
	if err := port.ResetInputBuffer(); err != nil {
		r.log.Debug("could not discard stale input", "err", err)
	}
	r.dec.Reset()
	r.opens.Add(1) // counted once the port is ready to read: tests wait on it
	r.log.Info("fob reader port open", "baud", r.cfg.Baud)

	emit := func(uid string) {
		if r.filter.accept(uid, r.clock.Now()) {
			r.scans.Add(1)
			r.log.Debug("fob scanned", "uid", uid)
			scanned(uid)
		}
	}
	buf := make([]byte, 256)
	for {
		n, err := port.Read(buf)
		if n > 0 {
			gotBytes = true
			r.dec.Feed(buf[:n], emit)
		}
		if ctx.Err() != nil {
			return gotBytes, nil
		}
		if err != nil {
			r.lost.Add(1)
			return gotBytes, fmt.Errorf("rfid: read %s: %w", r.cfg.Port, err)
		}
		// n == 0 && err == nil is the read timeout: loop and look at ctx.
	}
}
