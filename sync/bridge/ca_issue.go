package bridge

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

// maxCSR bounds a certificate request's PEM: a P-384 CSR is about 600
// bytes; more is not a CSR made by smartboxctl.
const maxCSR = 8 << 10

// errCSR marks a request the bridge refuses to sign (a 400, not a 500).
var errCSR = errors.New("certificate request")

// issuedCert is a box certificate the CA signed.
type issuedCert struct {
	PEM      []byte
	Serial   *big.Int
	NotAfter time.Time
	// KeySHA256 is the SHA-256 of the certified key's SubjectPublicKeyInfo
	// (hex): a later request for another key is another card.
	KeySHA256 string
}

// parseBoxCSR reads a CSR for box id: one PEM block of bounded size, a
// valid self-signature, subject CN = id, and a key the broker accepts
// (ECDSA P-256/P-384 or Ed25519). Nothing else in it is used.
func parseBoxCSR(id string, csrPEM []byte) (*x509.CertificateRequest, error) {
	if len(csrPEM) > maxCSR {
		return nil, fmt.Errorf("%w for box %s: %d bytes, over %d", errCSR, id, len(csrPEM), maxCSR)
	}
	blk, rest := pem.Decode(csrPEM)
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("%w for box %s: want one PEM \"CERTIFICATE REQUEST\" block", errCSR, id)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, fmt.Errorf("%w for box %s: more than one PEM block", errCSR, id)
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w for box %s: %v", errCSR, id, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w for box %s: signature does not verify: %v", errCSR, id, err)
	}
	if cn := csr.Subject.CommonName; cn != id {
		return nil, fmt.Errorf("%w for box %s: subject CN is %q, want the box id %q", errCSR, id, cn, id)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("%w for box %s: ECDSA curve %s: want P-256 or P-384", errCSR, id, k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("%w for box %s: key is %s (%T): want ECDSA P-256/P-384 or Ed25519", errCSR, id, csr.PublicKeyAlgorithm, k)
	}
	return csr, nil
}

// issueBox signs a client certificate for box id with the CSR's key: CN =
// id only, client authentication only. Whatever else the CSR asks for
// (names, extensions) is ignored.
func (ca *certAuthority) issueBox(id string, csr *x509.CertificateRequest, now time.Time) (issuedCert, error) {
	serial, err := randomSerial()
	if err != nil {
		return issuedCert{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: id},
		NotBefore:             now.Add(-certBackdate),
		NotAfter:              now.Add(boxCertLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, csr.PublicKey, ca.key)
	if err != nil {
		return issuedCert{}, fmt.Errorf("sign certificate for box %s: %w", id, err)
	}
	sum := sha256.Sum256(csr.RawSubjectPublicKeyInfo)
	return issuedCert{PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), Serial: serial, NotAfter: tmpl.NotAfter,
		KeySHA256: hex.EncodeToString(sum[:])}, nil
}

// issueServer makes the embedded broker's server certificate for names
// (host names and IP addresses), with a fresh key kept only in memory.
func (ca *certAuthority) issueServer(names []string, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("make broker key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "SmartBox bridge broker"},
		NotBefore:             now.Add(-certBackdate),
		NotAfter:              now.Add(serverCertLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if n != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("sign broker certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// DefaultTLSNames are the names the embedded broker's certificate carries
// when [broker] tls_names is empty: the TLS listener's host and loopback.
func DefaultTLSNames(listenTLS string) []string {
	names := []string{"localhost", "127.0.0.1", "::1"}
	host, _, err := net.SplitHostPort(listenTLS)
	if err != nil || host == "" || host == "0.0.0.0" || host == "::" {
		return names
	}
	for _, n := range names {
		if n == host {
			return names
		}
	}
	return append([]string{host}, names...)
}
