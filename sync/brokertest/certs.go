package brokertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Certs is a throw-away PKI for one test: a CA, a server certificate for
// 127.0.0.1, ::1 and localhost, and client certificates on demand. Every file
// is PEM in Dir; keys (PKCS#8) have mode 0600, certificates 0644.
type Certs struct {
	Dir            string
	CAFile         string // the CA certificate (mosquitto's cafile)
	ServerCertFile string
	ServerKeyFile  string
	Pool           *x509.CertPool // holds the CA

	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	server tls.Certificate
}

// TestCerts makes a fresh CA and server certificate in t.TempDir().
func TestCerts(t testing.TB) *Certs {
	t.Helper()
	c := &Certs{Dir: t.TempDir(), Pool: x509.NewCertPool()}
	caKey := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "SmartBox test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("brokertest: making CA: %v", err)
	}
	c.ca, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("brokertest: parsing CA: %v", err)
	}
	c.caKey = caKey
	c.Pool.AddCert(c.ca)
	c.CAFile = writePEM(t, filepath.Join(c.Dir, "ca.crt"), "CERTIFICATE", der, 0o644)

	c.ServerCertFile, c.ServerKeyFile, c.server = c.issue(t, "server", &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return c
}

// ServerTLS is a server config for the embedded broker: the server
// certificate, and client certificates verified against the CA when given.
func (c *Certs) ServerTLS() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{c.server},
		ClientCAs:    c.Pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
		MinVersion:   tls.VersionTLS12,
	}
}

// ClientTLS is a client config that verifies the server against the CA and,
// if cn is not "", presents a client certificate with that CN (a box id).
func (c *Certs) ClientTLS(t testing.TB, cn string) *tls.Config {
	t.Helper()
	cfg := &tls.Config{RootCAs: c.Pool, MinVersion: tls.VersionTLS12}
	if cn != "" {
		_, _, cert := c.ClientCert(t, cn)
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

// ClientCert issues a client certificate with CN = cn, signed by the CA, and
// writes it and its key to Dir.
func (c *Certs) ClientCert(t testing.TB, cn string) (certFile, keyFile string, cert tls.Certificate) {
	t.Helper()
	return c.issue(t, "client-"+fileSafe(cn), &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

func (c *Certs) issue(t testing.TB, name string, tmpl *x509.Certificate) (certFile, keyFile string, cert tls.Certificate) {
	t.Helper()
	key := newKey(t)
	tmpl.SerialNumber = serial(t)
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.ca, &key.PublicKey, c.caKey)
	if err != nil {
		t.Fatalf("brokertest: issuing %s certificate: %v", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("brokertest: encoding %s key: %v", name, err)
	}
	certFile = writePEM(t, filepath.Join(c.Dir, name+".crt"), "CERTIFICATE", der, 0o644)
	keyFile = writePEM(t, filepath.Join(c.Dir, name+".key"), "PRIVATE KEY", keyDER, 0o600)
	cert, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("brokertest: loading %s key pair: %v", name, err)
	}
	return certFile, keyFile, cert
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("brokertest: generating key: %v", err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatalf("brokertest: serial number: %v", err)
	}
	return n
}

// writePEM writes keys 0600: smartboxd refuses a key_file that group or
// others may read. mosquitto reads them all the same: it runs as the test's
// user, or as root with "user root" in its config (see config).
func writePEM(t testing.TB, path, typ string, der []byte, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		t.Fatalf("brokertest: writing %s: %v", path, err)
	}
	// WriteFile's mode passes through the umask; set it exactly.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatalf("brokertest: chmod %s: %v", path, err)
	}
	return path
}

// fileSafe makes a CN usable in a file name (a test may try a CN with "/").
func fileSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			b[i] = '_'
		}
	}
	return string(b)
}
