package depot

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// provisionTimeout bounds one `smartboxctl provision` run: a store made
// and fsynced, a key pair, three calls to the local bridge; on a busy
// 2-core laptop starting fifty boxes.
const provisionTimeout = 30 * time.Second

// provision runs the real `smartboxctl provision` for b, as a technician
// does with a card: the sim board profile, the broker through b's proxy
// (ssl://, mutual TLS: no password anywhere), the bridge's admin API and
// its token file, the box's name and location. The card is b's directory,
// which is also its data_dir.
func (d *Depot) provision(ctx context.Context, b *Box) error {
	ctx, cancel := context.WithTimeout(ctx, provisionTimeout)
	defer cancel()
	args := []string{"provision", "--target", b.dir, "--data-dir", b.dir, "--box-id", b.id,
		"--bridge", "http://" + d.bopts.AdminListen, "--token-file", d.tokenFile, "--profile", "sim",
		"--broker", "ssl://" + b.proxy.Addr(), "--name", b.name, "--location", b.location}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, d.ctl, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("box %s: %s %s: %w\n%s", b.id, d.ctl, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	d.log.Debug("box provisioned", "box", b.id, "smartboxctl", strings.TrimSpace(out.String()))
	return nil
}
