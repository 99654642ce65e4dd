package depot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/sim/netcut"
	"github.com/smartbox-oss/smartbox/store"
	"github.com/smartbox-oss/smartbox/sync/bridge"
)

// Box is one simulated box: a smartboxd process the depot supervises, its
// data directory, its socket, and the proxy its MQTT connection goes through.
type Box struct {
	// immutable after newBox
	d        *Depot
	n        int // 1-based
	id       string
	name     string
	location string
	dir      string
	sock     string
	config   string
	syncKey  []byte // the box's X25519 sync public key, as registered
	keys     []box.Key
	proxy    *netcut.Proxy
	client   *boxsocket.Client
	logPath  string

	// opMu serialises power changes (a power-on must not race a pull).
	opMu sync.Mutex

	mu          sync.Mutex
	power       string
	process     string
	pid         int
	exit        string
	exitCode    int
	restarts    int
	started     bool // a process has been started once (later ones are restarts)
	since       time.Time
	killing     string        // why the depot is ending the process ("" if it is not)
	exited      chan struct{} // closed when the current process has ended
	clockOffset time.Duration
	state       *boxsocket.Watch
	events      []box.Event // the last MaxEventsKept, oldest first
	lastSeq     uint64
	keyInSlot   []bool                      // physical truth, carried across a power cut
	faults      map[int]boxsocket.SlotFault // set through the depot, re-applied at power on
	logStart    int64                       // where the current process's lines begin in its log
	stopWatch   context.CancelFunc
}

// newBox provisions box n as a technician would: the real
// `smartboxctl provision` writes its card (store with identity and the
// bridge's signing key, device key and bridge-signed client certificate,
// the bridge's CA, smartboxd.toml from the sim profile) into the box's
// directory and registers it; the depot then puts its keys and links
// through the admin API. The process is started by powerOn.
func (d *Depot) newBox(ctx context.Context, n int, fleet *fleetSeed) (*Box, error) {
	b := &Box{d: d, n: n, id: boxID(n), power: PowerOff, process: ProcessExited, since: time.Now(),
		keyInSlot: slices.Repeat([]bool{true}, SlotsPerBox), faults: map[int]boxsocket.SlotFault{}}
	b.name = fmt.Sprintf("Depot %c", 'A'+rune((n-1)%26))
	if n > 26 {
		b.name = fmt.Sprintf("Depot %d", n)
	}
	b.location = fmt.Sprintf("%d Harbour Road, gate %d", 10+n, n)
	b.dir = filepath.Join(d.dir, "boxes", b.id)
	b.sock = filepath.Join(b.dir, "smartboxd.sock")
	b.config = filepath.Join(b.dir, "smartboxd.toml")
	b.logPath = filepath.Join(b.dir, "smartboxd.log")
	b.client = boxsocket.Dial(b.sock)
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		return nil, err
	}

	// The proxy first: the box is provisioned to reach the broker's TLS
	// listener through it (TLS passes through unchanged; the proxy listens
	// on 127.0.0.1, which the broker's server certificate names).
	source := ""
	if d.sourceOK {
		source = boxSource(n)
	}
	var err error
	b.proxy, err = netcut.ListenFrom("", d.bopts.Broker.ListenTLS, source, d.log.With("part", "netcut", "box", b.id))
	if err != nil {
		return nil, fmt.Errorf("box %s: its network proxy: %w", b.id, err)
	}
	if err := d.provision(ctx, b); err != nil {
		_ = b.proxy.Close()
		return nil, err
	}
	// The sync key, as registered: ForgeGrant seals to it.
	st, err := store.Open(filepath.Join(b.dir, "box.db"), store.Options{Timeout: storeOpenTimeout,
		Logger: d.log.With("part", "store", "box", b.id)})
	if err != nil {
		_ = b.proxy.Close()
		return nil, fmt.Errorf("box %s: opening the store provision made: %w", b.id, err)
	}
	b.syncKey, err = st.SyncPublicKey()
	if err = errors.Join(err, st.Close()); err != nil {
		_ = b.proxy.Close()
		return nil, fmt.Errorf("box %s: its sync key: %w", b.id, err)
	}

	admin := d.Admin()
	vehicleIDs := fleet.vehicles[b.id]
	for i, v := range vehicles {
		slot := i + 1
		k := box.Key{ID: fmt.Sprintf("key-%d", slot), Name: vehicleName(v), FobUID: fobUID(n, slot), Slot: slot}
		if err := admin.Do(ctx, http.MethodPut, "/v1/boxes/"+b.id+"/keys/"+k.ID,
			bridge.PutKeyRequest{Name: k.Name, FobUID: k.FobUID, Slot: k.Slot}, nil); err != nil {
			return nil, fmt.Errorf("box %s: putting %s: %w", b.id, k.ID, err)
		}
		if err := admin.Do(ctx, http.MethodPut, "/v1/fleetio/links/"+strconv.FormatInt(vehicleIDs[i], 10),
			bridge.LinkRequest{BoxID: b.id, KeyID: k.ID, Method: linkMode(slot)}, nil); err != nil {
			return nil, fmt.Errorf("box %s: linking vehicle %d to %s: %w", b.id, vehicleIDs[i], k.ID, err)
		}
		b.keys = append(b.keys, k)
	}
	return b, nil
}

// boxSource is the loopback address box n's MQTT connection comes from, as
// the broker sees it: 127.0.0.(n+1) on Linux, where all of 127/8 is the
// loopback device (see netcut.ListenFrom); elsewhere the system's choice.
// MaxBoxes keeps n+1 within the last octet.
func boxSource(n int) string {
	if runtime.GOOS != "linux" {
		return ""
	}
	return fmt.Sprintf("127.0.0.%d", n+1)
}

// ID is the box's id.
func (b *Box) ID() string { return b.id }

// Client is the box's socket.
func (b *Box) Client() *boxsocket.Client { return b.client }

// Keys are the box's keys (slot order).
func (b *Box) Keys() []box.Key { return slices.Clone(b.keys) }

// Proxy is the box's network proxy.
func (b *Box) Proxy() *netcut.Proxy { return b.proxy }

// view is the BoxView of b.
func (b *Box) view() BoxView {
	b.mu.Lock()
	defer b.mu.Unlock()
	v := BoxView{ID: b.id, Name: b.name, Location: b.location, Slots: SlotsPerBox,
		Power: b.power, Process: b.process, PID: b.pid, Exit: b.exit, ExitCode: b.exitCode, Restarts: b.restarts,
		Since: b.since, NetworkCut: b.proxy.IsCut(), ClockOffsetS: int64(b.clockOffset / time.Second),
		Keys: slices.Clone(b.keys)}
	if v.NetworkCut {
		v.NetworkMode = b.proxy.CutMode().String()
	}
	if b.state != nil {
		s := *b.state
		s.Slots = slices.Clone(s.Slots)
		v.State = &s
	}
	return v
}

// powerOn starts the box's process (if it is not running) and waits until
// its socket answers, then re-applies the faults the depot set (a jammed
// latch stays jammed across a power cut).
func (b *Box) powerOn(ctx context.Context) error {
	b.opMu.Lock()
	defer b.opMu.Unlock()
	b.mu.Lock()
	if b.process != ProcessExited {
		b.mu.Unlock()
		return nil
	}
	args := []string{"--config", b.config, "--data", b.dir, "--hardware", "sim", "--socket", b.sock, "--sim-keys", b.simKeysLocked()}
	if b.clockOffset != 0 {
		args = append(args, "--sim-clock", time.Now().Add(b.clockOffset).UTC().Format(time.RFC3339))
	}
	faults := make(map[int]boxsocket.SlotFault, len(b.faults))
	for k, v := range b.faults {
		faults[k] = v
	}
	b.mu.Unlock()

	logf, err := os.OpenFile(b.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("box %s: its log: %w", b.id, err)
	}
	cmd := exec.Command(b.d.bin, args...)
	// The log file itself, not a pipe through the depot: a box whose
	// simulator was killed must still be able to log its way through its
	// relock (a write to a broken pipe would end it with SIGPIPE first).
	logStart, err := logf.Seek(0, io.SeekEnd)
	if err != nil {
		_ = logf.Close()
		return err
	}
	cmd.Stderr = logf
	cmd.Stdout = logf
	if b.n == 1 && b.d.consoleIn != nil {
		cmd.Stdin = b.d.consoleIn
		cmd.Stdout = b.d.o.ConsoleOut
	}
	cmd.SysProcAttr = childAttrs()
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("box %s: starting smartboxd: %w", b.id, err)
	}
	exited := make(chan struct{})
	b.mu.Lock()
	if b.started {
		b.restarts++
	}
	b.started = true
	b.power, b.process, b.pid, b.exit, b.exitCode, b.killing, b.exited, b.since = PowerOn, ProcessStarting, cmd.Process.Pid, "", 0, "", exited, time.Now()
	b.logStart = logStart
	b.mu.Unlock()
	b.d.changed.Notify()
	b.d.wg.Go(func() {
		err := cmd.Wait()
		_ = logf.Close()
		b.mu.Lock()
		b.process, b.pid, b.since = ProcessExited, 0, time.Now()
		why := b.describeExit(err)
		b.exit, b.exitCode = why, cmd.ProcessState.ExitCode()
		b.state = deadState(b.state)
		if b.stopWatch != nil {
			b.stopWatch()
			b.stopWatch = nil
		}
		// Closed under the lock: onWatch, which checks it under the lock
		// too, cannot slip a live state in after the dead one.
		close(exited)
		b.mu.Unlock()
		b.d.changed.Notify()
		b.d.log.Info("box process ended", "box", b.id, "exit", why)
	})

	// A box that does not come up is not left running unwatched.
	fail := func(err error) error {
		_ = b.kill(syscall.SIGKILL, "killed: it did not start ("+err.Error()+")", PowerOff, 0)
		return err
	}
	if err := b.waitReady(ctx, exited); err != nil {
		return fail(err)
	}
	for slot, f := range faults {
		if err := b.client.SetFault(ctx, slot, f); err != nil {
			return fail(fmt.Errorf("box %s: re-applying slot %d's fault: %w", b.id, slot, err))
		}
	}
	wctx, cancel := context.WithCancel(b.d.ctx)
	b.mu.Lock()
	if b.process == ProcessStarting {
		b.process, b.since = ProcessRunning, time.Now()
	}
	b.stopWatch = cancel
	b.mu.Unlock()
	b.d.changed.Notify()
	b.d.wg.Go(func() { b.watch(wctx, exited) })
	return nil
}

// waitReady waits until the socket answers, the process ends, or
// BoxStartTimeout passes. It retries on a short tick: the socket appears
// once the daemon has opened its store and hardware.
func (b *Box) waitReady(ctx context.Context, exited <-chan struct{}) error {
	const every = 20 * time.Millisecond
	deadline := time.NewTimer(BoxStartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, readyProbeTimeout)
		st, err := b.client.Status(cctx)
		cancel()
		if err == nil {
			b.mu.Lock()
			if b.state == nil {
				b.state = &boxsocket.Watch{Status: st}
			}
			b.mu.Unlock()
			return nil
		}
		select {
		case <-exited:
			b.mu.Lock()
			defer b.mu.Unlock()
			return fmt.Errorf("box %s: smartboxd ended while starting: %s", b.id, b.exit)
		case <-deadline.C:
			return fmt.Errorf("box %s: its socket did not answer within %s (see %s): %v", b.id, BoxStartTimeout, b.logPath, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// watch follows the box's /v1/watch stream while its process lives,
// reconnecting if the stream breaks.
func (b *Box) watch(ctx context.Context, exited <-chan struct{}) {
	for {
		b.mu.Lock()
		after := b.lastSeq
		b.mu.Unlock()
		err := b.client.Watch(ctx, after, func(w boxsocket.Watch) error { return b.onWatch(w, exited) })
		select {
		case <-ctx.Done():
			return
		case <-exited:
			return
		case <-time.After(watchRetry):
			b.d.log.Debug("box watch broke; again", "box", b.id, "err", err)
		}
	}
}

// watchRetry is the pause before re-opening a broken watch stream.
const watchRetry = 200 * time.Millisecond

// readyProbeTimeout bounds one probe of a starting box's socket: a daemon
// that accepts but does not answer is probed again rather than waited on.
const readyProbeTimeout = time.Second

// storeOpenTimeout bounds the wait for a box's store lock while the depot
// reads what provision made (nothing else holds it then: a holder is a
// bug, said fast).
const storeOpenTimeout = 5 * time.Second

// deadState is what a box whose process has ended shows: the last state it
// sent with every lock de-energised and every LED off (the sim's pins went
// with the process, as a real box's coils go with its power) and the cloud
// link gone; the keys stay where they physically are.
func deadState(w *boxsocket.Watch) *boxsocket.Watch {
	if w == nil {
		return nil
	}
	d := *w
	d.Slots = slices.Clone(w.Slots)
	for i := range d.Slots {
		s := &d.Slots[i]
		s.Released, s.LED, s.WaitingFor = false, false, ""
		s.KeyPresent = s.KeyInSlot && !s.SensorDead
	}
	d.Status.Cloud = "not running"
	d.Typed = 0
	return &d
}

// onWatch takes in one Watch of the process whose end closes exited.
func (b *Box) onWatch(w boxsocket.Watch, exited <-chan struct{}) error {
	b.mu.Lock()
	select {
	case <-exited:
		// The stream's last buffered messages, read after the process
		// ended: the dead state stands.
		b.mu.Unlock()
		return errors.New("the box's process has ended")
	default:
	}
	for _, e := range w.Events {
		if e.Seq > b.lastSeq {
			b.events = append(b.events, e)
			b.lastSeq = e.Seq
		}
	}
	if over := len(b.events) - MaxEventsKept; over > 0 {
		b.events = slices.Delete(b.events, 0, over)
	}
	w.Events = nil
	b.state = &w
	for _, s := range w.Slots {
		if s.Slot >= 1 && s.Slot <= len(b.keyInSlot) {
			b.keyInSlot[s.Slot-1] = s.KeyInSlot
		}
	}
	b.mu.Unlock()
	b.d.changed.Notify()
	return nil
}

// simKeysLocked is --sim-keys: the slots that hold a key now.
func (b *Box) simKeysLocked() string {
	var s []string
	for i, in := range b.keyInSlot {
		if in {
			s = append(s, strconv.Itoa(i+1))
		}
	}
	switch len(s) {
	case 0:
		return "none"
	case len(b.keyInSlot):
		return "all"
	}
	return strings.Join(s, ",")
}

// describeExit says why the process ended, with the end of its log when it
// was not the depot that ended it. Called with b.mu held.
func (b *Box) describeExit(err error) string {
	why := "exited"
	var ee *exec.ExitError
	switch {
	case b.killing != "":
		return b.killing
	case err == nil:
		why = "exited (status 0)"
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			why = fmt.Sprintf("ended by signal %d (%s)", int(ws.Signal()), ws.Signal())
		} else {
			why = fmt.Sprintf("exited with status %d", ee.ExitCode())
		}
	default:
		why = err.Error()
	}
	if t := logTail(b.logPath, b.logStart, exitTailLines); t != "" {
		why += "; its log ends:\n" + t
	}
	return why
}

// powerOff pulls the power: SIGKILL, no relock by the daemon (the locks
// de-energise with the power), nothing flushed.
func (b *Box) powerOff() error {
	b.opMu.Lock()
	defer b.opMu.Unlock()
	return b.kill(syscall.SIGKILL, "power pulled (SIGKILL)", PowerOff, 0)
}

// stop ends the process in order: SIGTERM (the daemon relocks every slot
// and sends box_stopped), SIGKILL after BoxStopTimeout.
func (b *Box) stop() error {
	b.opMu.Lock()
	defer b.opMu.Unlock()
	return b.kill(syscall.SIGTERM, "stopped by the simulator (SIGTERM)", PowerOff, BoxStopTimeout)
}

// kill signals the process and waits for it to end (forcing it after
// grace, if grace > 0). Called with opMu held.
func (b *Box) kill(sig syscall.Signal, why, power string, grace time.Duration) error {
	b.mu.Lock()
	pid, exited := b.pid, b.exited
	b.power = power
	if b.process == ProcessExited || pid == 0 {
		b.mu.Unlock()
		b.d.changed.Notify()
		return nil
	}
	b.killing = why
	b.mu.Unlock()
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("box %s: signalling its process: %w", b.id, err)
	}
	if !awaitExit(pid, exited, grace) {
		return fmt.Errorf("box %s did not stop within %s of SIGTERM: killed", b.id, grace)
	}
	return nil
}

// awaitExit waits for a signalled process to end (exited closes), forcing
// it with SIGKILL after grace (grace 0: as long as it takes); false if it
// had to be forced.
func awaitExit(pid int, exited <-chan struct{}, grace time.Duration) bool {
	if grace <= 0 {
		<-exited
		return true
	}
	select {
	case <-exited:
		return true
	case <-time.After(grace):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-exited
		return false
	}
}

// running returns ErrBoxDown unless the process is up.
func (b *Box) running() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.process == ProcessExited {
		return fmt.Errorf("box %s: %w (power %s)", b.id, ErrBoxDown, b.power)
	}
	return nil
}

// cutKeyLine splits the bridge's "KID=BASE64" signing key line.
func cutKeyLine(line string) (kid, pub string, ok bool) {
	return strings.Cut(strings.TrimSpace(line), "=")
}
