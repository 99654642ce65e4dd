package depot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/bridge/adminapi"
	"github.com/smartbox-oss/smartbox/sync/notify"
)

// The bridge as a child process (Options.BridgeProcess): the real
// `smartbox-bridge serve` on a config the depot writes, so that it can be
// killed with SIGKILL (KillBridge) as a crashed or power-cut server is,
// and started again on the same data directory and ports. The boxes'
// proxies, Fleetio's webhook URL and the admin client keep pointing at the
// same addresses across restarts.

// Bounds of the bridge process.
const (
	// bridgeStopTimeout bounds an orderly stop (SIGTERM: the bridge's own
	// shutdown waits 5 s for its listeners, then closes the stores) before
	// it is killed.
	bridgeStopTimeout = 15 * time.Second
	// bridgeProbeEvery is the tick of the wait for a starting bridge's
	// admin endpoint and its broker connection.
	bridgeProbeEvery = 25 * time.Millisecond
	// bridgeProbeTimeout bounds one probe of /healthz.
	bridgeProbeTimeout = time.Second
	// bridgeConnectedLine is what the bridge's cloud logs once connected
	// to its embedded broker (sync/cloud); it subscribes in the same
	// handler, on a persistent session the broker keeps across restarts.
	bridgeConnectedLine = `msg="connected to broker"`
)

// bridgeProc is the running bridge process, if Options.BridgeProcess.
type bridgeProc struct {
	bin     string // smartbox-bridge
	config  string // the TOML the depot wrote
	logPath string // its stdout and stderr, appended across restarts

	mu     sync.Mutex
	pid    int
	exited chan struct{} // closed when the current process has ended
	exit   string        // why the last one ended
	kills  int           // SIGKILLs so far
}

// startBridgeProc writes the bridge's config and secret files, starts
// `smartbox-bridge serve` on fixed free loopback ports, and waits until it
// serves. The ports stay the same for every restart.
func (d *Depot) startBridgeProc(ctx context.Context) error {
	bin, err := findTool("smartbox-bridge", d.o.SmartboxBridge, filepath.Dir(d.bin))
	if err != nil {
		return err
	}
	ports, err := freeLoopbackPorts(4)
	if err != nil {
		return fmt.Errorf("choosing the bridge's ports: %w", err)
	}
	d.cloudPW = randomSecret()
	d.bopts = bridge.Options{
		DataDir:     filepath.Join(d.dir, "bridge"),
		AdminListen: ports[0],
		Broker:      bridge.BrokerOptions{Listen: ports[1], ListenTLS: ports[2], Password: d.cloudPW},
		Fleetio:     bridge.FleetioOptions{PublicListen: ports[3]},
	}
	secrets := filepath.Join(d.dir, "bridge-secrets")
	if err := os.MkdirAll(secrets, 0o700); err != nil {
		return err
	}
	pwFile, smsFile := filepath.Join(secrets, "cloud.passwd"), filepath.Join(secrets, "sms.token")
	for f, v := range map[string]string{pwFile: d.cloudPW, smsFile: d.smsToken} {
		if err := os.WriteFile(f, []byte(v+"\n"), 0o600); err != nil {
			return fmt.Errorf("writing the bridge's secret %s: %w", f, err)
		}
	}
	host, port, err := net.SplitHostPort(d.mail.Addr)
	if err != nil {
		return fmt.Errorf("the SMTP catcher's address %q: %w", d.mail.Addr, err)
	}
	conf := fmt.Sprintf(`# Written by the depot (cmd/internal/depot/bridgeproc.go) for one run.
data_dir = %q

[broker]
listen = %q
listen_tls = %q
password_file = %q

[admin]
listen = %q

[fleetio]
public_listen = %q
admin_name = "Fleet Manager"
admin_email = "manager@depot.example"

[notify.email]
host = %q
port = %s
from = %q
starttls = %q

[notify.sms]
base_url = %q
account_sid = %q
auth_token_file = %q
from = %q
`, d.bopts.DataDir, ports[1], ports[2], pwFile, ports[0], ports[3],
		host, port, mailFrom, string(notify.TLSNone), d.smsURL, smsAccountSID, smsFile, smsFrom)
	p := &bridgeProc{bin: bin, config: filepath.Join(d.dir, "smartbox-bridge.toml"), logPath: filepath.Join(d.dir, "smartbox-bridge.log")}
	if err := os.WriteFile(p.config, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("writing the bridge's config: %w", err)
	}
	d.bproc = p
	if err := d.bproc.start(ctx, "http://"+ports[0]); err != nil {
		return err
	}
	tok, err := os.ReadFile(filepath.Join(d.bopts.DataDir, bridge.FileAdminToken))
	if err != nil {
		return fmt.Errorf("reading the bridge's admin token: %w", err)
	}
	d.admin = adminapi.NewAdminClient("http://"+ports[0], strings.TrimSpace(string(tok)))
	d.brokerUp = true
	var key adminapi.SigningKeyResponse
	if err := d.admin.Do(ctx, http.MethodGet, "/v1/signing-key", nil, &key); err != nil {
		return fmt.Errorf("reading the bridge's signing key: %w", err)
	}
	d.kid = key.KeyID
	d.fleet.SetWebhookURL("http://" + ports[3] + bookings.WebhookPath)
	// The bridge's own token file is 0600 and stays put across restarts:
	// provision reads it as a technician's --token-file.
	d.tokenFile = filepath.Join(d.bopts.DataDir, bridge.FileAdminToken)
	return nil
}

// freeLoopbackPorts picks n distinct free ports on 127.0.0.1 (held open
// together while choosing, so they differ).
func freeLoopbackPorts(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// start runs `smartbox-bridge serve` and waits until its admin endpoint
// answers and its cloud has connected to the broker, within
// bridgeReadyTimeout. A process that does not come up is killed.
func (p *bridgeProc) start(ctx context.Context, adminURL string) error {
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("the bridge's log: %w", err)
	}
	from, err := logf.Seek(0, io.SeekEnd)
	if err != nil {
		_ = logf.Close()
		return err
	}
	cmd := exec.Command(p.bin, "serve", "--config", p.config, "--log-level", "info")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttrs()
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("starting %s serve: %w", p.bin, err)
	}
	exited := make(chan struct{})
	p.mu.Lock()
	p.pid, p.exited, p.exit = cmd.Process.Pid, exited, ""
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		_ = logf.Close()
		p.mu.Lock()
		p.pid = 0
		if err != nil {
			p.exit = err.Error()
		} else {
			p.exit = "exited (status 0)"
		}
		close(exited)
		p.mu.Unlock()
	}()
	if err := p.waitReady(ctx, adminURL, from, exited); err != nil {
		_ = p.signal(syscall.SIGKILL, 0)
		return err
	}
	return nil
}

// waitReady polls the admin endpoint's /healthz (no token needed) and the
// log for the cloud's broker connection.
func (p *bridgeProc) waitReady(ctx context.Context, adminURL string, from int64, exited <-chan struct{}) error {
	deadline := time.NewTimer(bridgeReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(bridgeProbeEvery)
	defer tick.Stop()
	hc := &http.Client{Timeout: bridgeProbeTimeout}
	healthy := false
	for {
		if !healthy {
			if resp, err := hc.Get(adminURL + "/healthz"); err == nil {
				_ = resp.Body.Close()
				healthy = resp.StatusCode == http.StatusOK
			}
		}
		if healthy && logHas(p.logPath, from, bridgeConnectedLine) {
			return nil
		}
		select {
		case <-exited:
			p.mu.Lock()
			defer p.mu.Unlock()
			return fmt.Errorf("smartbox-bridge serve ended while starting (%s); its log ends:\n%s", p.exit, logTail(p.logPath, from, exitTailLines))
		case <-deadline.C:
			return fmt.Errorf("smartbox-bridge serve did not serve within %s (see %s); its log ends:\n%s",
				bridgeReadyTimeout, p.logPath, logTail(p.logPath, from, exitTailLines))
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// logHas reports whether the log at path holds line after offset from.
func logHas(path string, from int64, line string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return false
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), maxTailRead*4)
	for sc.Scan() {
		if strings.Contains(sc.Text(), line) {
			return true
		}
	}
	return false
}

// signal sends sig to the running process and waits for it to end,
// forcing it with SIGKILL after grace (grace 0: wait as long as it takes,
// which a SIGKILL never makes long).
func (p *bridgeProc) signal(sig syscall.Signal, grace time.Duration) error {
	p.mu.Lock()
	pid, exited := p.pid, p.exited
	p.mu.Unlock()
	if pid == 0 || exited == nil {
		return nil
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signalling the bridge process %d: %w", pid, err)
	}
	if !awaitExit(pid, exited, grace) {
		return fmt.Errorf("the bridge process did not stop within %s of SIGTERM: killed", grace)
	}
	return nil
}

// restartBridgeProc stops the bridge process (SIGKILL if kill, else
// SIGTERM: its orderly shutdown) and starts it again on the same config.
// Called with restartMu held.
func (d *Depot) restartBridgeProc(ctx context.Context, kill bool) error {
	d.bridgeDown()
	var err error
	if kill {
		d.bproc.mu.Lock()
		d.bproc.kills++
		d.bproc.mu.Unlock()
		err = d.bproc.signal(syscall.SIGKILL, 0)
	} else {
		err = d.bproc.signal(syscall.SIGTERM, bridgeStopTimeout)
	}
	if err != nil {
		d.log.Warn("stopping the bridge process for a restart", "err", err)
	}
	if err := d.bproc.start(context.WithoutCancel(ctx), "http://"+d.bopts.AdminListen); err != nil {
		return d.bridgeStaysDown(fmt.Errorf("the bridge did not come back after the restart (it stays down; restart it again): %w", err))
	}
	d.bridgeBack(nil)
	return nil
}

// KillBridge kills the bridge process with SIGKILL (nothing flushed, no
// goodbye to the boxes: a crashed server) and starts it again on the same
// data and ports, its embedded broker with it. Only with
// Options.BridgeProcess: the in-process bridge cannot be killed.
func (d *Depot) KillBridge(ctx context.Context) error {
	if d.bproc == nil {
		return fmt.Errorf("%w: KillBridge needs the bridge in its own process (Options.BridgeProcess)", ErrInvalid)
	}
	d.restartMu.Lock()
	defer d.restartMu.Unlock()
	if d.ctx.Err() != nil {
		return errors.New("the simulator is stopping")
	}
	return d.restartBridgeProc(ctx, true)
}

// BridgeKills is how many times the bridge process was sent SIGKILL.
func (d *Depot) BridgeKills() int {
	if d.bproc == nil {
		return 0
	}
	d.bproc.mu.Lock()
	defer d.bproc.mu.Unlock()
	return d.bproc.kills
}

// BridgeLog is the bridge process's log file ("" for the in-process bridge,
// which logs through Options.Logger).
func (d *Depot) BridgeLog() string {
	if d.bproc == nil {
		return ""
	}
	return d.bproc.logPath
}
