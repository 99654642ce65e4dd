package brokertest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// Kind names a broker implementation.
type Kind string

// The brokers the sync tests run against.
const (
	Mochi     Kind = "mochi"     // the embedded broker, package broker
	Mosquitto Kind = "mosquitto" // a real mosquitto, as a fleet would run
)

// CloudUser is the cloud's user name unless Options.CloudUser says otherwise;
// it is the name the README's mosquitto ACL uses.
const CloudUser = "cloud"

// DefaultUsers are the accounts a broker gets when Options.Users is nil: the
// cloud and two boxes. Passwords are "<name>-secret".
func DefaultUsers() map[string]string {
	return map[string]string{
		CloudUser: Password(CloudUser),
		"box-a":   Password("box-a"),
		"box-b":   Password("box-b"),
	}
}

// Password is the password DefaultUsers gives name.
func Password(name string) string { return name + "-secret" }

// Options for Start.
type Options struct {
	// Users maps user name to password; nil = DefaultUsers(). Include the
	// cloud user to let the cloud connect with a password.
	Users map[string]string
	// CloudUser has the cloud's rights over every box (sync/README.md);
	// "" = CloudUser ("cloud").
	// mosquitto only supports the default name (it is in the README's ACL).
	CloudUser string
	// TLS also starts a TLS listener (TLSURL) with a server certificate from
	// Certs, and a listener where client certificates authenticate (CertURL).
	TLS bool
	// Certs supplies the certificates; nil with TLS = TestCerts(t).
	Certs *Certs
}

// Broker is a running test broker.
type Broker interface {
	Kind() Kind
	// URL is the plain listener, "tcp://127.0.0.1:<port>".
	URL() string
	// TLSURL is the TLS listener with the server certificate ("" without
	// TLS). Users authenticate with passwords here; on mochi a client
	// certificate works here too.
	TLSURL() string
	// CertURL is where a client certificate with CN = user name
	// authenticates without a password ("" without TLS). On mochi it is
	// TLSURL; mosquitto needs a listener of its own
	// (use_identity_as_username).
	CertURL() string
	// Certs are the certificates in use (nil without TLS).
	Certs() *Certs
	// Restart stops the broker if it runs and starts it again on the same
	// ports and data, as after a power cut with a clean shutdown.
	Restart(t testing.TB)
	// Stop stops the broker (idempotent); Restart brings it back.
	Stop()
	// StoreFile is the broker's persistence file: mochi's bbolt file, or
	// mosquitto's mosquitto.db (written every second and on Stop).
	StoreFile() string
}

// Kinds lists the brokers to run sync tests against: mochi always, mosquitto
// when installed. Under CI=true a missing mosquitto is a test failure.
func Kinds(t testing.TB) []Kind {
	t.Helper()
	if err := mosquittoMissing(t); err != nil {
		t.Logf("brokertest: %v: running against mochi only", err)
		return []Kind{Mochi}
	}
	return []Kind{Mochi, Mosquitto}
}

// SkipWithoutMosquitto skips a test that runs against mosquitto alone when
// mosquitto is not installed. Under CI=true it fails the test instead.
func SkipWithoutMosquitto(t testing.TB) {
	t.Helper()
	if err := mosquittoMissing(t); err != nil {
		t.Skipf("brokertest: %v (apt-get install -y mosquitto)", err)
	}
}

// mosquittoMissing says why mosquitto cannot run (nil when it can). Under
// CI=true a missing mosquitto fails the test: CI installs it, so a quiet
// skip there would hide that half the broker tests never ran.
func mosquittoMissing(t testing.TB) error {
	t.Helper()
	_, err := MosquittoPath()
	if err != nil && os.Getenv("CI") == "true" {
		t.Fatalf("brokertest: CI=true but %v (apt-get install -y mosquitto)", err)
	}
	return err
}

// MosquittoPath finds the mosquitto binary: on PATH, or in /usr/sbin where
// Debian puts it (not on a normal user's PATH).
func MosquittoPath() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("mosquitto not found on PATH nor in /usr/sbin")
}

// Start starts a broker of kind k for the test; it stops on t.Cleanup.
func Start(t testing.TB, k Kind, opts Options) Broker {
	t.Helper()
	if opts.Users == nil {
		opts.Users = DefaultUsers()
	}
	if opts.CloudUser == "" {
		opts.CloudUser = CloudUser
	}
	if opts.TLS && opts.Certs == nil {
		opts.Certs = TestCerts(t)
	}
	switch k {
	case Mochi:
		return startMochi(t, opts)
	case Mosquitto:
		return startMosquitto(t, opts)
	}
	t.Fatalf("brokertest: unknown broker kind %q", k)
	return nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("brokertest: finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// waitListening waits until addr accepts connections, or dead is closed, or
// the timeout passes.
func waitListening(addr string, dead <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-dead:
			return fmt.Errorf("broker exited before %s accepted connections", addr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not accept connections within %v: %w", addr, timeout, err)
		}
	}
}
