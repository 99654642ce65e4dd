package depot

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/broadcast"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/bridge/adminapi"
	"github.com/smartbox-oss/smartbox/sync/fleetio/fleetiotest"
	"github.com/smartbox-oss/smartbox/sync/notify"
	"github.com/smartbox-oss/smartbox/sync/notify/smtptest"
	"github.com/smartbox-oss/smartbox/sync/notify/twiliotest"
)

// Bounds of a depot, stated once.
const (
	// MaxBoxes caps Options.Boxes: each box is a process with its own
	// store, pty and broker connection, from its own loopback address
	// (127.0.0.2 up to 127.0.0.201, see boxSource); the load work (a later
	// issue) drives 50.
	MaxBoxes = 200
	// BoxStartTimeout bounds a box process's start: from exec to its
	// socket answering (a store open and a keypad scan on a busy laptop).
	BoxStartTimeout = 15 * time.Second
	// BoxStopTimeout bounds a box's orderly stop (SIGTERM: relock every
	// slot, send box_stopped) before it is killed.
	BoxStopTimeout = 10 * time.Second
	// bridgeReadyTimeout bounds the wait for the cloud's subscriptions.
	bridgeReadyTimeout = 15 * time.Second
)

// The SMS gateway fake's account and the senders. (The fake Fleetio's API
// key, account token and webhook secret, the three values a fleet manager
// copies from Fleetio into the bridge, are drawn afresh each run: with a
// known webhook secret any local process could sign webhooks that make
// real bookings.)
const (
	smsAccountSID = "ACsim0000000000000000000000000000"
	smsFrom       = "+15550000000"
	mailFrom      = "SmartBox <smartbox@depot.example>"
)

// boxStartParallel is how many box processes start at once: enough to
// overlap their store opens, few enough not to starve the bridge on a
// 2-core laptop.
const boxStartParallel = 8

// secretBytes is the entropy of every password and secret the depot draws.
const secretBytes = 18

// fleetioRetries is the fake Fleetio's webhook retry schedule in the
// simulator: Fleetio's own waits minutes and hours, which would leave a
// delivery refused during a bridge restart missing for the rest of a demo.
var fleetioRetries = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute}

// Options configure a depot.
type Options struct {
	// Dir holds everything: bridge/ (the bridge's data directory), boxes/<id>/
	// (each box's store, config, socket and log). Start clears those two
	// first: a depot starts afresh. "" makes a temporary directory that
	// Close removes.
	Dir string
	// Boxes is how many boxes run (default 1, at most MaxBoxes).
	Boxes int
	// Smartboxd is the smartboxd binary; "" looks beside the running
	// executable, then on $PATH.
	Smartboxd string
	// Smartboxctl is the technician's tool that provisions each box (the
	// real `smartboxctl provision`); "" looks beside the running
	// executable, then beside Smartboxd, then on $PATH.
	Smartboxctl string
	// Console, if set, is box 1's console input (the line console of
	// smartboxd's sim profile) and ConsoleOut its output.
	Console    io.Reader
	ConsoleOut io.Writer
	// AdminLink says where the fleet manager makes the booking of a Prompt
	// reservation (the page), given its assignment id; nil: the bridge's
	// default text.
	AdminLink func(assignmentID string) string
	// BridgeProcess runs the bridge as its own process, the real
	// `smartbox-bridge serve` on a config the depot writes (bridgeproc.go),
	// so that KillBridge can SIGKILL it; its log is DIR/smartbox-bridge.log.
	// Then Bridge is nil and AdminLink is not used. Default: in-process.
	BridgeProcess bool
	// SmartboxBridge is the smartbox-bridge binary for BridgeProcess; ""
	// looks beside the running executable, then beside Smartboxd, then on
	// $PATH.
	SmartboxBridge string
	// Logger gets the depot's own log; the bridge logs through it too.
	// Box processes log to boxes/<id>/smartboxd.log. nil: discard.
	Logger *slog.Logger
}

// Depot is a running installation.
type Depot struct {
	o      Options
	log    *slog.Logger
	dir    string
	ownDir bool
	bin    string // smartboxd
	ctl    string // smartboxctl

	ctx    context.Context // ends at Close: every goroutine of the depot
	cancel context.CancelFunc
	wg     sync.WaitGroup

	changed broadcast.Signal

	fleet    *fleetiotest.Server
	mail     *smtptest.Server
	sms      *twiliotest.Server
	smsSrv   *http.Server
	smsURL   string
	smsToken string

	// bmu guards the bridge's fields, swapped by a restart; restartMu
	// makes restarts one at a time.
	bmu       sync.RWMutex
	restartMu sync.Mutex
	svc       *bridge.Service
	bproc     *bridgeProc    // the bridge's process instead of svc (Options.BridgeProcess)
	bopts     bridge.Options // fixed listen addresses once the first start chose them
	admin     *adminapi.AdminClient
	brokerUp  bool
	brokerErr string // why the last restart failed
	kid       string // the bridge's signing key id, the one boxes trust
	cloudPW   string // the cloud's own broker password (ForgeGrant's attacker has it)
	tokenFile string // the bridge's admin token (0600), for smartboxctl provision

	boxes []*Box
	byID  map[string]*Box
	// sourceOK: each box's MQTT can come from its own loopback address.
	sourceOK bool

	// consoleIn is box 1's console input: a pipe of the depot's, fed from
	// Options.Console by one goroutine, and handed to each box-1 process
	// in turn (across power cuts). A box runs in its own process group,
	// where reading the terminal itself would stop it (SIGTTIN).
	consoleIn *os.File

	closeOnce sync.Once
	closeErr  error
}

// Start brings a whole installation up: catchers, fake Fleetio (seeded),
// the bridge, and every box process, each provisioned, registered and
// running. It returns once every box's socket answers; the bridge then
// pushes each box its records, and the seeded assignment's booking follows
// within a few seconds.
func Start(ctx context.Context, o Options) (_ *Depot, err error) {
	if o.Boxes == 0 {
		o.Boxes = 1
	}
	if o.Boxes < 1 || o.Boxes > MaxBoxes {
		return nil, fmt.Errorf("%w: %d boxes: want 1..%d", ErrInvalid, o.Boxes, MaxBoxes)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Depot{o: o, log: log, byID: map[string]*Box{}}
	d.ctx, d.cancel = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			_ = d.Close()
		}
	}()
	if d.bin, err = findTool("smartboxd", o.Smartboxd, ""); err != nil {
		return nil, err
	}
	if d.ctl, err = findTool("smartboxctl", o.Smartboxctl, filepath.Dir(d.bin)); err != nil {
		return nil, err
	}
	if err := d.makeDir(); err != nil {
		return nil, err
	}
	if o.Console != nil {
		pr, pw, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		d.consoleIn = pr
		go func() {
			_, _ = io.Copy(pw, o.Console)
			_ = pw.Close()
		}()
	}
	if err := d.startCatchers(); err != nil {
		return nil, err
	}
	fc := bridge.ConnectRequest{APIKey: randomSecret(), AccountToken: randomSecret(), WebhookSecret: randomSecret()}
	d.fleet = fleetiotest.New(fleetiotest.Options{
		APIKey: fc.APIKey, AccountToken: fc.AccountToken, WebhookSecret: fc.WebhookSecret,
		RetryIntervals: fleetioRetries, TriggeredBy: "Fleet Manager", Logger: log.With("part", "fleetio"),
	})
	if _, err := d.fleet.Start(); err != nil {
		return nil, fmt.Errorf("starting the fake Fleetio: %w", err)
	}
	fleet, err := seedFleetio(d.fleet, o.Boxes)
	if err != nil {
		return nil, err
	}
	startBridge := d.startBridge
	if o.BridgeProcess {
		startBridge = d.startBridgeProc
	}
	if err := startBridge(ctx); err != nil {
		return nil, err
	}
	admin := d.Admin()
	fc.BaseURL = d.fleet.APIURL()
	if err := admin.Do(ctx, http.MethodPost, "/v1/fleetio/connect", fc, nil); err != nil {
		return nil, fmt.Errorf("connecting the bridge to Fleetio: %w", err)
	}

	d.sourceOK = sourcesWork()
	if !d.sourceOK {
		log.Warn("per-box loopback source addresses (127.0.0.2 and up) cannot be bound here: every box reaches the broker from 127.0.0.1, so the broker's per-address login back-off is shared and many boxes connect slowly")
	}
	for i := range o.Boxes {
		b, err := d.newBox(ctx, i+1, fleet)
		if err != nil {
			return nil, err
		}
		d.boxes = append(d.boxes, b)
		d.byID[b.id] = b
	}
	// Processes start side by side: 50 daemons opening their stores one
	// after the other would take longer than a person waits for a page.
	var g errgroup.Group
	g.SetLimit(boxStartParallel)
	for _, b := range d.boxes {
		g.Go(func() error { return b.powerOn(ctx) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// The story starts: Van 7's driver is assigned for the next hours.
	if _, err := d.fleet.CreateAssignment(fleet.firstAssignment(time.Now())); err != nil {
		return nil, fmt.Errorf("creating the first assignment: %w", err)
	}
	d.watchEdges()
	return d, nil
}

// makeDir makes Options.Dir (0700: it holds secrets) and clears what a
// previous run left.
func (d *Depot) makeDir() error {
	d.dir = d.o.Dir
	if d.dir == "" {
		dir, err := os.MkdirTemp("", "smartbox-sim-")
		if err != nil {
			return err
		}
		d.dir, d.ownDir = dir, true
	}
	// Absolute: a box's config names its files, and smartboxd reads a
	// relative name from the config file's directory.
	abs, err := filepath.Abs(d.dir)
	if err != nil {
		return err
	}
	d.dir = abs
	for _, sub := range []string{"bridge", "boxes"} {
		if err := os.RemoveAll(filepath.Join(d.dir, sub)); err != nil {
			return fmt.Errorf("clearing the last run: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(d.dir, "boxes"), 0o700); err != nil {
		return err
	}
	return os.Chmod(d.dir, 0o700)
}

// startCatchers starts the SMTP server and the SMS gateway fake that catch
// what the bridge sends drivers.
func (d *Depot) startCatchers() error {
	var err error
	if d.mail, err = smtptest.Listen(""); err != nil {
		return fmt.Errorf("starting the SMTP catcher: %w", err)
	}
	d.smsToken = randomSecret()
	d.sms = twiliotest.New(smsAccountSID, d.smsToken)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("starting the SMS gateway fake: %w", err)
	}
	d.smsSrv = &http.Server{Handler: d.sms, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = d.smsSrv.Serve(ln) }()
	d.smsURL = "http://" + ln.Addr().String()
	return nil
}

// startBridge starts the bridge service the first time: free ports, which
// are then kept for restarts (the boxes' proxies and Fleetio's webhook
// point at them).
func (d *Depot) startBridge(ctx context.Context) error {
	tmpl, err := notify.LoadTemplates("")
	if err != nil {
		return err
	}
	mailer, err := notify.NewMailer(notify.EmailConfig{Addr: d.mail.Addr, From: mailFrom, TLS: notify.TLSNone})
	if err != nil {
		return err
	}
	smsc, err := notify.NewSMSClient(notify.SMSConfig{BaseURL: d.smsURL, AccountSID: smsAccountSID,
		AuthToken: d.smsToken, From: smsFrom})
	if err != nil {
		return err
	}
	d.cloudPW = randomSecret()
	d.bopts = bridge.Options{
		DataDir: filepath.Join(d.dir, "bridge"),
		// Boxes log in on the TLS listener with the client certificate
		// provision got them; its server certificate, issued by the
		// bridge's CA at each start, names 127.0.0.1, where every box's
		// proxy listens. The cloud itself stays on the plain listener.
		Broker: bridge.BrokerOptions{Password: d.cloudPW, ListenTLS: "127.0.0.1:0"},
		Fleetio: bridge.FleetioOptions{
			Admin:     notify.Recipient{Name: "Fleet Manager", Email: "manager@depot.example"},
			AdminLink: d.o.AdminLink,
		},
		Notifier: &notify.Dispatcher{Templates: tmpl, Mail: mailer, SMS: smsc, Log: d.log.With("part", "notify")},
		Logger:   d.log.With("part", "bridge"),
	}
	svc, err := d.startService(ctx)
	if err != nil {
		return err
	}
	d.svc, d.admin, d.brokerUp = svc, svc.AdminClient(), true
	// From now on the same addresses, so that a restarted bridge is where
	// the boxes and Fleetio look for it.
	d.bopts.AdminListen = d.svc.AdminAddr()
	d.bopts.Broker.Listen = hostPort(d.svc.BrokerURL())
	d.bopts.Broker.ListenTLS = d.svc.BrokerTLSAddr()
	d.bopts.Fleetio.PublicListen = hostPort(d.svc.PublicURL())
	d.fleet.SetWebhookURL(d.svc.WebhookURL())
	kid, _, _ := cutKeyLine(d.svc.SigningKeyLine())
	d.kid = kid
	// The admin token as a technician holds it, for provision's
	// --token-file (the bridge keeps it across restarts).
	d.tokenFile = filepath.Join(d.dir, "admin.token")
	if err := os.WriteFile(d.tokenFile, []byte(d.svc.AdminToken()+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing the admin token for provisioning: %w", err)
	}
	return nil
}

// startService starts a bridge on d.bopts and waits until its cloud
// listens to the boxes.
func (d *Depot) startService(ctx context.Context) (*bridge.Service, error) {
	svc, err := bridge.Start(d.ctx, d.bopts)
	if err != nil {
		return nil, fmt.Errorf("starting the bridge: %w", err)
	}
	if err := svc.WaitReady(ctx, bridgeReadyTimeout); err != nil {
		_ = svc.Close()
		return nil, err
	}
	// Bookings change when box events arrive: the page re-reads them.
	svc.Cloud().OnEvents(func(string, []box.Event) { d.changed.Notify() })
	return svc, nil
}

// Admin is a client of the bridge's admin API (the same across restarts).
func (d *Depot) Admin() *adminapi.AdminClient {
	d.bmu.RLock()
	defer d.bmu.RUnlock()
	return d.admin
}

// Bridge is the running bridge service (a new one after RestartBroker);
// nil with Options.BridgeProcess (the bridge is then reached through Admin
// only).
func (d *Depot) Bridge() *bridge.Service {
	d.bmu.RLock()
	defer d.bmu.RUnlock()
	return d.svc
}

// Fleetio is the fake Fleetio account: the fleet manager's side.
func (d *Depot) Fleetio() *fleetiotest.Server { return d.fleet }

// Dir is where the depot keeps everything.
func (d *Depot) Dir() string { return d.dir }

// Changed returns a channel closed at the next change of anything a page
// shows: a box's state or process, the inbox, Fleetio's records or
// deliveries, the bridge restarting. Call it again after each change.
func (d *Depot) Changed() <-chan struct{} { return d.changed.Wait() }

// watchEdges turns the catchers' and the fake Fleetio's change signals into
// the depot's.
func (d *Depot) watchEdges() {
	for _, ch := range []func() <-chan struct{}{d.mail.Changed, d.sms.Changed, d.fleet.Changed} {
		d.wg.Go(func() {
			for {
				select {
				case <-d.ctx.Done():
					return
				case <-ch():
					d.changed.Notify()
				}
			}
		})
	}
}

// Close stops every box (each relocks its slots: SIGTERM, then SIGKILL
// after BoxStopTimeout), the bridge, Fleetio and the catchers, and removes
// a temporary directory.
func (d *Depot) Close() error {
	d.closeOnce.Do(func() {
		// Not in the middle of a broker restart: its new bridge would be
		// left running, its files in a directory being removed.
		d.restartMu.Lock()
		defer d.restartMu.Unlock()
		errs := make([]error, len(d.boxes))
		var wg sync.WaitGroup
		for i, b := range d.boxes {
			wg.Go(func() { errs[i] = b.stop() })
		}
		wg.Wait()
		d.cancel()
		d.bmu.Lock()
		if d.svc != nil {
			if err := d.svc.Close(); err != nil {
				errs = append(errs, fmt.Errorf("closing the bridge: %w", err))
			}
		}
		if d.bproc != nil {
			if err := d.bproc.signal(syscall.SIGTERM, bridgeStopTimeout); err != nil {
				errs = append(errs, fmt.Errorf("stopping the bridge process: %w", err))
			}
		}
		d.bmu.Unlock()
		for _, b := range d.boxes {
			if b.proxy != nil {
				_ = b.proxy.Close()
			}
		}
		if d.fleet != nil {
			_ = d.fleet.Close()
		}
		if d.smsSrv != nil {
			_ = d.smsSrv.Close()
		}
		if d.mail != nil {
			_ = d.mail.Close()
		}
		d.wg.Wait()
		if d.consoleIn != nil {
			_ = d.consoleIn.Close()
		}
		if d.ownDir {
			_ = os.RemoveAll(d.dir)
		}
		d.closeErr = errors.Join(errs...)
	})
	return d.closeErr
}

// findTool finds one of the programs the depot runs: the path given, else
// beside the running executable (bin/ holds smartbox-sim, smartboxd and
// smartboxctl after `make build`), else in also (if not ""), else on $PATH.
func findTool(name, path, also string) (string, error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		return path, nil
	}
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
	}
	if also != "" {
		dirs = append(dirs, also)
	}
	for _, dir := range dirs {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found beside this program or on $PATH: build it (make build) or pass its path", name)
	}
	return p, nil
}

// randomSecret is a fresh password: secretBytes random bytes, base64.
func randomSecret() string {
	b := make([]byte, secretBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// hostPort is the host:port of a URL ("tcp://127.0.0.1:1883").
func hostPort(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Host
}

// sourcesWork reports whether a box's own loopback source address can be
// bound (some sandboxes allow only 127.0.0.1).
func sourcesWork() bool {
	src := boxSource(1)
	if src == "" {
		return false
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(src, "0"))
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}
