package main

// The commands that read a box: status, keys, grants, events, slots, and
// release, which asks the running daemon to release a slot. Each reads the
// running daemon's view on its admin socket when it answers, else the store
// read-only (bbolt's shared lock: never beside a running daemon, never a
// byte changed).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxconfig"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/cmd/internal/cli"
	"github.com/smartbox-oss/smartbox/cmd/internal/ntpsync"
	"github.com/smartbox-oss/smartbox/cmd/internal/report"
	"github.com/smartbox-oss/smartbox/store"
)

// Bounds of a look at a box.
const (
	// socketAnswer bounds the first request to the socket, the dial
	// included: a local daemon answers in milliseconds; one that has not
	// answered by then is stuck, and the tool says so rather than hang.
	socketAnswer = 3 * time.Second
	// readOnlyLockWait bounds the wait for the store's shared lock: a
	// daemon that holds it exclusively does not let go while it runs.
	readOnlyLockWait = time.Second
	// storeEventsPage is how many events one read of the store returns: a
	// box offline for weeks is not read in one huge call.
	storeEventsPage = 1000
)

// boxView is a box as a command reads it: the daemon's socket (c) or, when
// nothing answers there, its store opened read-only (s).
type boxView struct {
	c      *boxsocket.Client
	s      *store.Store
	source string // where the answers come from, in words
}

// inspectFlags are the flags every reading command takes.
type inspectFlags struct {
	socket, data *string
	json         *bool
}

func addInspectFlags(fs *cli.FlagSet, withJSON bool) inspectFlags {
	f := inspectFlags{
		socket: fs.String("socket", boxsocket.DefaultPath, "smartboxd's admin socket: the running daemon's view"),
		data:   fs.String("data", boxconfig.DefaultDataDir, "data directory (DIR/box.db), read-only when smartboxd is not running"),
	}
	if withJSON {
		f.json = fs.Bool("json", false, "print JSON (for scripts) instead of a table")
	}
	return f
}

// openView asks the socket first; if it does not answer, the store is
// opened read-only. A store held by a daemon whose socket does not answer
// is an error that says so and what to do.
func openView(ctx context.Context, socketPath, dir string) (*boxView, error) {
	if dir == "" {
		return nil, cli.Usagef("--data DIR is required")
	}
	sockErr := errors.New("no --socket given")
	if socketPath != "" {
		c := boxsocket.Dial(socketPath)
		actx, cancel := context.WithTimeout(ctx, socketAnswer)
		_, err := c.Status(actx)
		cancel()
		if err == nil {
			return &boxView{c: c, source: "smartboxd, on its socket " + socketPath}, nil
		}
		c.Close()
		sockErr = socketTrouble(socketPath, err)
	}
	p := dbPath(dir)
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no store at %s, and smartboxd's socket %s does not answer (%v): is --data right? A new box: 'smartboxctl init --data %s --box-id ID'", p, socketPath, sockErr, dir)
	}
	s, err := store.Open(p, store.Options{ReadOnly: true, Timeout: readOnlyLockWait, Logger: discardLogger})
	switch {
	case errors.Is(err, store.ErrInUse):
		return nil, fmt.Errorf("smartboxd holds %s but its socket %s does not answer: %v\n"+
			"(%v)\nwhat to do: check that smartboxd runs with --socket %s ('systemctl status smartboxd', 'journalctl -u smartboxd'); "+
			"if it is stuck, restart it ('systemctl restart smartboxd'); to read the store itself, stop smartboxd first", p, socketPath, sockErr, err, socketPath)
	case err != nil:
		return nil, err
	}
	return &boxView{s: s, source: fmt.Sprintf("the store %s, read-only (smartboxd's socket %s: %v)", p, socketPath, sockErr)}, nil
}

// socketTrouble says in words why the socket did not answer.
func socketTrouble(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errors.New("no socket there: smartboxd is not running, or runs without --socket")
	case errors.Is(err, syscall.ECONNREFUSED):
		return errors.New("a stale socket file, nothing listens: smartboxd stopped or was killed")
	case errors.Is(err, fs.ErrPermission):
		return errors.New("permission denied: run as root or as a member of the socket's group (smartbox)")
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no answer within %s: smartboxd is stuck, or something else listens at %s", socketAnswer, path)
	}
	return err
}

func (v *boxView) close() error {
	if v.c != nil {
		v.c.Close()
		return nil
	}
	return v.s.Close()
}

// live reports whether the view is the running daemon's.
func (v *boxView) live() bool { return v.c != nil }

func (v *boxView) status(ctx context.Context) (boxsocket.Status, error) {
	if v.live() {
		return v.c.Status(ctx)
	}
	// A stopped box: what its store says, and this machine's clock.
	var st boxsocket.Status
	id, err := v.s.Identity()
	if err != nil {
		return st, err
	}
	st.BoxID, st.Cloud = id.BoxID, "smartboxd not running"
	st.Clock = time.Now().Round(0)
	if err := st.FillFromStore(v.s, st.Clock); err != nil {
		return st, err
	}
	if st.ClockFloor, err = v.s.ClockFloor(); err != nil {
		return st, err
	}
	st.ClockTrusted = !st.Clock.Before(st.ClockFloor)
	st.ClockSynced, _ = ntpsync.Synced()
	return st, nil
}

func (v *boxView) keys(ctx context.Context) ([]box.Key, error) {
	if v.live() {
		return v.c.Keys(ctx)
	}
	return v.s.Keys()
}

func (v *boxView) grants(ctx context.Context) ([]box.Grant, error) {
	if v.live() {
		return v.c.Grants(ctx)
	}
	return v.s.Grants()
}

// events calls fn with the events after seq after, at most limit (0: all),
// page by page.
func (v *boxView) events(ctx context.Context, after uint64, limit int, fn func([]box.Event)) error {
	page := storeEventsPage
	if v.live() {
		page = boxsocket.MaxEvents
	}
	left := limit
	for {
		n := page
		if limit > 0 {
			n = min(n, left)
		}
		if n == 0 {
			return nil
		}
		var evs []box.Event
		var err error
		if v.live() {
			evs, err = v.c.Events(ctx, after, n)
		} else {
			evs, err = v.s.Events(after, n)
		}
		if err != nil {
			return err
		}
		fn(evs)
		if len(evs) < n {
			return nil
		}
		after = evs[len(evs)-1].Seq
		left -= len(evs)
	}
}

// slots is every slot as the daemon sees it; a stopped box knows only which
// key lives in which slot (nothing reads the sensors or drives the locks).
func (v *boxView) slots(ctx context.Context) ([]boxsocket.Slot, error) {
	if v.live() {
		return v.c.Slots(ctx)
	}
	keys, err := v.s.Keys()
	if err != nil {
		return nil, err
	}
	out := make([]boxsocket.Slot, 0, len(keys))
	for _, k := range keys {
		out = append(out, boxsocket.Slot{Slot: k.Slot, KeyID: k.ID, KeyName: k.Name})
	}
	return out, nil
}

// inspect is the frame of a reading command: flags, the view, the header
// line (left out with --json, so that it stays one value) and where it was
// read (on stderr), then print.
func inspect(name string, withJSON bool, print func(ctx context.Context, v *boxView, stdout io.Writer, asJSON bool) error) cli.RunFunc {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlagSet(name, stderr)
		f := addInspectFlags(fs, withJSON)
		if _, err := fs.ParseArgs(args); err != nil {
			return err
		}
		v, err := openView(ctx, *f.socket, *f.data)
		if err != nil {
			return err
		}
		asJSON := f.json != nil && *f.json
		if !asJSON {
			if err := viewHeader(ctx, stdout, v); err != nil {
				return errors.Join(err, v.close())
			}
		}
		fmt.Fprintf(stderr, "(read from %s)\n", v.source)
		return errors.Join(print(ctx, v, stdout, asJSON), v.close())
	}
}

// viewHeader says which box and which records revision a listing shows,
// and how far behind the cloud is on its events.
func viewHeader(ctx context.Context, w io.Writer, v *boxView) error {
	if !v.live() {
		return header(w, v.s)
	}
	st, err := v.c.Status(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "box %s: records revision %d, %d events in the outbox, cloud %s\n", st.BoxID, st.Revision, st.Outbox, st.Cloud)
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

var (
	cmdStatus = inspect("status", true, func(ctx context.Context, v *boxView, w io.Writer, asJSON bool) error {
		st, err := v.status(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(w, st)
		}
		return printStatus(w, st, time.Now())
	})
	cmdKeys = inspect("keys", true, func(ctx context.Context, v *boxView, w io.Writer, asJSON bool) error {
		keys, err := v.keys(ctx)
		if err != nil || asJSON {
			return errors.Join(err, jsonIf(err == nil, w, keys))
		}
		return report.Keys(w, keys)
	})
	cmdGrants = inspect("grants", true, func(ctx context.Context, v *boxView, w io.Writer, asJSON bool) error {
		gs, err := v.grants(ctx)
		if err != nil || asJSON {
			return errors.Join(err, jsonIf(err == nil, w, gs))
		}
		return report.Grants(w, gs)
	})
	cmdSlots = inspect("slots", true, func(ctx context.Context, v *boxView, w io.Writer, asJSON bool) error {
		slots, err := v.slots(ctx)
		if err != nil || asJSON {
			return errors.Join(err, jsonIf(err == nil, w, slots))
		}
		return printSlots(w, slots, v.live())
	})
)

// jsonIf prints v as JSON when ok (a listing never prints half an answer).
func jsonIf(ok bool, w io.Writer, v any) error {
	if !ok {
		return nil
	}
	return printJSON(w, v)
}

func cmdEvents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("events", stderr)
	f := addInspectFlags(fs, true)
	after := fs.Uint64("after", 0, "list events with a sequence number above SEQ")
	limit := fs.Int("limit", 0, "list at most N events (0: all)")
	if _, err := fs.ParseArgs(args); err != nil {
		return err
	}
	if *limit < 0 {
		return cli.Usagef("--limit %d is negative", *limit)
	}
	v, err := openView(ctx, *f.socket, *f.data)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "(read from %s)\n", v.source)
	if *f.json {
		all := []box.Event{}
		err := v.events(ctx, *after, *limit, func(evs []box.Event) { all = append(all, evs...) })
		return errors.Join(err, jsonIf(err == nil, stdout, all), v.close())
	}
	if err := viewHeader(ctx, stdout, v); err != nil {
		return errors.Join(err, v.close())
	}
	tw := report.NewTable(stdout)
	report.EventHeader(tw)
	err = v.events(ctx, *after, *limit, func(evs []box.Event) {
		for _, e := range evs {
			report.Event(tw, e)
		}
	})
	return errors.Join(err, tw.Flush(), v.close())
}

// cmdRelease asks the running daemon to release a slot: it holds the locks,
// so without it nothing is released (selftest drives a stopped box's
// hardware).
func cmdRelease(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("release", stderr)
	socketPath := fs.String("socket", boxsocket.DefaultPath, "smartboxd's admin socket")
	by := fs.String("by", "", "who releases the slot (required; recorded with your uid)")
	reason := fs.String("reason", "", "why (required; recorded)")
	pos, err := fs.ParseArgs(args, "SLOT")
	if err != nil {
		return err
	}
	slot, err := strconv.Atoi(pos[0])
	if err != nil || slot < 1 || slot > box.MaxSlots {
		return cli.Usagef("SLOT %q: want a slot number, 1..%d", pos[0], box.MaxSlots)
	}
	req := boxsocket.ReleaseRequest{By: *by, Reason: *reason}
	if err := req.Validate(); err != nil {
		return cli.Usagef("--%v", err)
	}
	c := boxsocket.Dial(*socketPath)
	defer c.Close()
	actx, cancel := context.WithTimeout(ctx, socketAnswer)
	_, err = c.Status(actx)
	cancel()
	if err != nil {
		return fmt.Errorf("releasing slot %d needs the running smartboxd (it drives the locks), and its socket %s does not answer: %v\n"+
			"what to do: start smartboxd ('systemctl start smartboxd'); to try the locks of a stopped box, use 'smartboxctl selftest'", slot, *socketPath, socketTrouble(*socketPath, err))
	}
	if err := c.Release(ctx, slot, req); err != nil {
		return fmt.Errorf("releasing slot %d: %w", slot, err)
	}
	fmt.Fprintf(stdout, "slot %d released (recorded as slot_released_locally by %s): it relocks when its key is taken or seated, or after its release time\n", slot, *by)
	return nil
}

// printStatus is a Status as a table of name: value, in words.
func printStatus(w io.Writer, st boxsocket.Status, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	row := func(name, format string, args ...any) {
		fmt.Fprintf(tw, "%s:\t%s\n", name, fmt.Sprintf(format, args...))
	}
	when := func(t time.Time, never string) string {
		if t.IsZero() {
			return never
		}
		return fmt.Sprintf("%s (%s ago)", t.Local().Format(time.RFC3339), now.Sub(t).Round(time.Second))
	}
	row("box", "%s", st.BoxID)
	if st.Software != "" {
		row("software", "%s", st.Software)
		row("hardware", "%s", st.Hardware)
		row("started", "%s, up %s", st.Started.Local().Format(time.RFC3339), (time.Duration(st.UptimeS) * time.Second).String())
	}
	cloud := st.Cloud
	if st.Broker != "" {
		cloud += " (" + st.Broker + ")"
	}
	row("cloud", "%s", cloud)
	row("records revision", "%d", st.Revision)
	row("outbox", "%d events not yet acknowledged by the cloud", st.Outbox)
	row("last event", "seq %d", st.LastSeq)
	if st.Software != "" {
		row("last sync", "%s", when(st.LastSync, "none since smartboxd started"))
		row("last ack", "%s", when(st.LastAck, "none since smartboxd started"))
		if st.SyncRefused == "" {
			row("sync refused", "nothing since smartboxd started")
		} else {
			row("sync refused", "%s: %s", when(st.SyncRefusedAt, "?"), st.SyncRefused)
		}
	}
	trust := "trusted"
	if !st.ClockTrusted {
		trust = "NOT trusted (before the clock floor: windowed grants wait)"
	}
	row("clock", "%s, %s", st.Clock.Local().Format(time.RFC3339), trust)
	row("clock floor", "%s", st.ClockFloor.Local().Format(time.RFC3339))
	if st.ClockSynced {
		row("ntp", "synchronised")
	} else {
		row("ntp", "not synchronised (or a simulated clock)")
	}
	switch {
	case !st.LockoutUntil.IsZero():
		row("keypad", "LOCKED OUT until %s (%d wrong codes not yet forgiven)", st.LockoutUntil.Local().Format(time.RFC3339), st.Failures)
	case st.Failures > 0:
		row("keypad", "open (%d wrong codes not yet forgiven)", st.Failures)
	default:
		row("keypad", "open")
	}
	return tw.Flush()
}

// printSlots is a slot table; a stopped box's has only the keys' homes.
func printSlots(w io.Writer, slots []boxsocket.Slot, live bool) error {
	tw := report.NewTable(w)
	fmt.Fprintln(tw, "SLOT\tKEY\tNAME\tKEY PRESENT\tLOCK\tWAITING FOR")
	yesNo := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	for _, s := range slots {
		present, lock, waiting := "?", "?", "-"
		if live {
			present, lock = yesNo(s.KeyPresent), "locked"
			if s.Released {
				lock, waiting = "RELEASED", report.Dash(string(s.WaitingFor))
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", s.Slot, report.Dash(s.KeyID), report.Dash(s.KeyName), present, lock, waiting)
	}
	if !live {
		fmt.Fprintln(tw, "(smartboxd is not running: nothing reads the sensors or drives the locks; '?' is not known)")
	}
	return tw.Flush()
}
