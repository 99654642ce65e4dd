package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The ACL of sync/README.md ("Brokers and access control").
const mosquittoACL = `user cloud
topic readwrite smartbox/v1/#
pattern readwrite smartbox/v1/%u/#
`

// startMosquitto runs a real mosquitto (Debian package mosquitto, installed by
// .ci/run) with users (name -> password) and the README's ACL, for the bridge
// with an external broker. It returns the broker URL and a file holding the
// cloud user's password. Without mosquitto the test is skipped, unless
// CI=true: then it fails.
func startMosquitto(t *testing.T, users map[string]string) (url, cloudPasswordFile string) {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, e := os.Stat("/usr/sbin/mosquitto"); e == nil {
			bin, err = "/usr/sbin/mosquitto", nil
		}
	}
	pwTool, err2 := exec.LookPath("mosquitto_passwd")
	if err != nil || err2 != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mosquitto or mosquitto_passwd not installed (apt-get install -y mosquitto): %v %v", err, err2)
		}
		t.Skip("mosquitto not installed")
	}
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	require.NoError(t, os.WriteFile(passwd, nil, 0o600))
	for name, pw := range users {
		out, err := exec.Command(pwTool, "-b", passwd, name, pw).CombinedOutput()
		require.NoError(t, err, "mosquitto_passwd: %s", out)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "acl"), []byte(mosquittoACL), 0o600))
	cloudPasswordFile = filepath.Join(dir, "cloud.pw")
	require.NoError(t, os.WriteFile(cloudPasswordFile, []byte(users["cloud"]+"\n"), 0o600))

	var log lockedBuffer
	for attempt := 1; ; attempt++ {
		// A port found free may be taken before mosquitto binds it: retry.
		port := freePort(t)
		var conf strings.Builder
		if os.Geteuid() == 0 {
			// Started as root, mosquitto drops to user mosquitto, which
			// cannot read this 0700 temp dir.
			conf.WriteString("user root\n")
		}
		fmt.Fprintf(&conf, "per_listener_settings false\nallow_anonymous false\npassword_file %s\nacl_file %s\n", passwd, filepath.Join(dir, "acl"))
		fmt.Fprintf(&conf, "persistence true\npersistence_location %s/\nlog_dest stderr\nlistener %d 127.0.0.1\n", dir, port)
		confFile := filepath.Join(dir, "mosquitto.conf")
		require.NoError(t, os.WriteFile(confFile, []byte(conf.String()), 0o600))
		cmd := exec.Command(bin, "-c", confFile)
		cmd.Stdout, cmd.Stderr = &log, &log
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test
		require.NoError(t, cmd.Start())
		dead := make(chan struct{})
		go func() { _ = cmd.Wait(); close(dead) }()
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		up := false
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				up = true
				break
			}
			select {
			case <-dead:
			case <-time.After(20 * time.Millisecond):
				continue
			}
			break
		}
		if up {
			t.Cleanup(func() {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-dead:
				case <-time.After(10 * time.Second):
					_ = cmd.Process.Kill()
					<-dead
				}
				if t.Failed() {
					t.Logf("mosquitto log:\n%s", log.String())
				}
			})
			return "tcp://" + addr, cloudPasswordFile
		}
		_ = cmd.Process.Kill()
		<-dead
		if attempt == 3 {
			t.Fatalf("mosquitto did not start:\n%s", log.String())
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
