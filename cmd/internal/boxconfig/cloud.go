package boxconfig

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/smartbox-oss/smartbox/cmd/internal/tomlconf"
	"github.com/smartbox-oss/smartbox/sync/secretfile"
)

// CloudConfig is the optional [cloud] table: where the box's sync link
// connects and how it logs in. Without it the box runs offline-only on the
// records it has (imported with smartboxctl, or synced before).
//
// The cloud's signing keys are not here: they come from the store
// (smartboxctl provision), so that a config file copied between boxes or
// edited by hand cannot make a box trust another signer.
type CloudConfig struct {
	BrokerURL    string `toml:"broker_url"`
	Username     string `toml:"username"`
	PasswordFile string `toml:"password_file"`
	CAFile       string `toml:"ca_file"`
	CertFile     string `toml:"cert_file"`
	KeyFile      string `toml:"key_file"`
	// Insecure allows a password login over a plain (tcp://, mqtt://,
	// ws://) broker URL to a host other than this machine. Without it such
	// a config is refused: the box's password would cross the network in
	// clear, and whoever reads it can publish as the box.
	Insecure bool `toml:"insecure"`
}

// Broker URL schemes paho understands, split by whether they use TLS.
var (
	plainSchemes = []string{"tcp", "mqtt", "ws"}
	tlsSchemes   = []string{"ssl", "tls", "mqtts", "wss"}
)

// maxSecretFile bounds what we read from password_file: a password is a
// line, and a path pointing at /dev/zero must not eat the box's memory.
const maxSecretFile = 4 << 10

// validateCloud checks [cloud] without touching the files it names (see
// Credentials for those).
func (c *Config) validateCloud() error {
	cc := c.Cloud
	if cc == nil {
		return nil
	}
	if cc.BrokerURL == "" {
		return c.FieldErr("cloud", "broker_url is missing: e.g. \"ssl://mqtt.example.com:8883\" (or leave [cloud] out for an offline box)")
	}
	u, err := url.Parse(cc.BrokerURL)
	if err != nil {
		return c.FieldErr("cloud.broker_url", "%q is not a URL: want scheme://host:port, e.g. \"ssl://mqtt.example.com:8883\"", cc.BrokerURL)
	}
	secure := slices.Contains(tlsSchemes, u.Scheme)
	if !secure && !slices.Contains(plainSchemes, u.Scheme) {
		return c.FieldErr("cloud.broker_url", "scheme %q is not one of %s (TLS) or %s (plain)", u.Scheme,
			strings.Join(tlsSchemes, ", "), strings.Join(plainSchemes, ", "))
	}
	if u.User != nil {
		// A password in the URL would sit in a world-readable config and
		// in every log line that prints the broker.
		return c.FieldErr("cloud.broker_url", "has a user name or password in it: use cloud.username and cloud.password_file")
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" || port == "" {
		return c.FieldErr("cloud.broker_url", "%q needs a host and a port, e.g. \"ssl://mqtt.example.com:8883\"", cc.BrokerURL)
	}
	if (u.Path != "" && u.Path != "/" && !strings.HasPrefix(u.Scheme, "ws")) || u.RawQuery != "" || u.Fragment != "" {
		return c.FieldErr("cloud.broker_url", "%q has a path or query: want scheme://host:port", cc.BrokerURL)
	}
	if cc.Username == "" {
		cc.Username = c.BoxID
	}
	if strings.ContainsAny(cc.Username, " \t\r\n") {
		return c.FieldErr("cloud.username", "%q has white space in it", cc.Username)
	}
	if !secure {
		// A certificate or CA for a plain connection would be ignored
		// without a word, and the technician would believe the link secure.
		for _, f := range []struct{ field, v string }{
			{"cloud.ca_file", cc.CAFile}, {"cloud.cert_file", cc.CertFile}, {"cloud.key_file", cc.KeyFile},
		} {
			if f.v != "" {
				return c.FieldErr(f.field, "is set but broker_url %q is not TLS: use ssl://host:8883", cc.BrokerURL)
			}
		}
	}
	if (cc.CertFile == "") != (cc.KeyFile == "") {
		if cc.CertFile == "" {
			return c.FieldErr("cloud.key_file", "is set without cloud.cert_file: a client certificate needs both")
		}
		return c.FieldErr("cloud.cert_file", "is set without cloud.key_file: a client certificate needs both")
	}
	if cc.PasswordFile == "" && cc.CertFile == "" {
		return c.FieldErr("cloud", "no credentials: set password_file, or cert_file and key_file (a client certificate with CN = %q)", c.BoxID)
	}
	if !secure && cc.PasswordFile != "" && !cc.Insecure && !tomlconf.LoopbackHost(host) {
		return c.FieldErr("cloud.broker_url", "%q would send the box's password in clear to %s: use TLS "+
			"(e.g. \"ssl://%s:8883\" with cloud.ca_file), or set cloud.insecure = true on a network you trust", cc.BrokerURL, host, host)
	}
	return nil
}

// Credentials are [cloud]'s files, read and checked.
type Credentials struct {
	Password string
	TLS      *tls.Config // nil for a plain broker URL
}

// Credentials reads the password file and the TLS files that [cloud]
// names. Relative paths are taken from the config file's directory, so a
// config works the same whatever directory smartboxd starts in. Errors say
// which field and file, and never show the password.
func (c *Config) Credentials() (Credentials, error) {
	var cr Credentials
	cc := c.Cloud
	if cc == nil {
		return cr, nil
	}
	if cc.PasswordFile != "" {
		b, err := c.readSecret("cloud.password_file", cc.PasswordFile)
		if err != nil {
			return cr, err
		}
		// One line; editors add a final newline.
		pw := strings.TrimRight(string(b), "\r\n")
		switch {
		case pw == "":
			return cr, c.FieldErr("cloud.password_file", "%s is empty", c.Path(cc.PasswordFile))
		case strings.ContainsAny(pw, "\r\n"):
			return cr, c.FieldErr("cloud.password_file", "%s has more than one line: it must hold the password alone", c.Path(cc.PasswordFile))
		}
		cr.Password = pw
	}
	u, _ := url.Parse(cc.BrokerURL) // validated
	if !slices.Contains(tlsSchemes, u.Scheme) {
		return cr, nil
	}
	cr.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	if cc.CAFile != "" {
		pem, err := c.readFile("cloud.ca_file", cc.CAFile, 1<<20)
		if err != nil {
			return cr, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return cr, c.FieldErr("cloud.ca_file", "%s holds no PEM certificate", c.Path(cc.CAFile))
		}
		cr.TLS.RootCAs = pool
	}
	if cc.CertFile != "" {
		certPEM, err := c.readFile("cloud.cert_file", cc.CertFile, 1<<20)
		if err != nil {
			return cr, err
		}
		keyPEM, err := c.readSecret("cloud.key_file", cc.KeyFile)
		if err != nil {
			return cr, err
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return cr, c.FieldErr("cloud.cert_file", "%s and %s are not a certificate and its key: %v", c.Path(cc.CertFile), c.Path(cc.KeyFile), err)
		}
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return cr, c.FieldErr("cloud.cert_file", "%s: %v", c.Path(cc.CertFile), err)
		}
		// The broker takes the CN as the box's user name: a certificate of
		// another box would log in as that box, or be refused for good.
		if leaf.Subject.CommonName != c.BoxID {
			return cr, c.FieldErr("cloud.cert_file", "%s is for %q (its CN), not this box %q", c.Path(cc.CertFile), leaf.Subject.CommonName, c.BoxID)
		}
		cr.TLS.Certificates = []tls.Certificate{cert}
	}
	return cr, nil
}

// path resolves a file named in the config against the config's directory.
func (c *Config) Path(p string) string {
	if filepath.IsAbs(p) || c.file.Path == "" {
		return p
	}
	return filepath.Join(filepath.Dir(c.file.Path), p)
}

// readSecret reads a file that holds a secret (a password, a private key),
// refusing one that group or others may read or change: on a box whose SD
// card is shared by other services, that secret logs in as the box.
// The check is secretfile's, shared with smartbox-bridge.
func (c *Config) readSecret(field, name string) ([]byte, error) {
	b, err := secretfile.Read(c.Path(name), maxSecretFile)
	if err != nil {
		return nil, c.FieldErr(field, "%v", err)
	}
	return b, nil
}

// readFile reads at most limit bytes of a file named in the config.
func (c *Config) readFile(field, name string, limit int64) ([]byte, error) {
	p := c.Path(name)
	f, err := os.Open(p)
	if err != nil {
		return nil, c.FieldErr(field, "%v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, c.FieldErr(field, "reading %s: %v", p, err)
	}
	if int64(len(b)) > limit {
		return nil, c.FieldErr(field, "%s is larger than %d bytes", p, limit)
	}
	return b, nil
}
