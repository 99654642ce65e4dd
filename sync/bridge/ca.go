package bridge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/smartbox-oss/smartbox/sync/secretfile"
)

// The bridge's certificate authority: it signs the embedded broker's
// server certificate and the boxes' client certificates, so that a box
// provisioned with its CA (cloud.ca_file) and a certificate needs no file
// an operator made by hand.
const (
	FileCAKey  = "ca.key" // the CA's ECDSA P-256 private key, PKCS#8 PEM, 0600
	FileCACert = "ca.crt" // the CA's self-signed certificate, PEM: what boxes trust
	// fileCAMaking is there while the pair is being written on first
	// start: a crash between the two files leaves it beside them, and the
	// next start makes the pair again (nothing was handed out: the admin
	// API serves only once Start has returned).
	fileCAMaking = "ca.making"
)

// Lifetimes and bounds of what the CA signs.
const (
	// caLifetime: every box in the field trusts this one certificate, and
	// replacing it means visiting or re-provisioning each box; ten years
	// outlives the hardware.
	caLifetime = 10 * 365 * 24 * time.Hour
	// boxCertLifetime: a box may sit in a basement for years without a
	// technician; five years is its expected service life between visits,
	// and a stolen card's certificate is revoked by re-provisioning (the
	// broker accepts only the box's current serial), not by expiry.
	boxCertLifetime = 5 * 365 * 24 * time.Hour
	// serverCertLifetime: the broker's certificate is issued again at each
	// start; a year covers a bridge that runs that long unrestarted.
	serverCertLifetime = 365 * 24 * time.Hour
	// certBackdate allows for a box or laptop clock a few minutes behind.
	certBackdate = 5 * time.Minute
	// serialBits: random serials, unguessable and unique without a counter.
	serialBits = 128
	// maxCAFile bounds ca.key and ca.crt reads: each is a PEM block under a
	// kilobyte.
	maxCAFile = 16 << 10
)

// certAuthority is the loaded CA.
type certAuthority struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
}

// loadOrCreateCA reads DATA/ca.key and DATA/ca.crt, or makes both when
// neither exists, or when a first start was cut while writing them (the
// marker DATA/ca.making is still there). One without the other otherwise
// (a file removed by hand) is refused with both named: boxes trust the old
// certificate, so a silently new CA would cut every one of them off.
func loadOrCreateCA(dir string) (_ *certAuthority, created bool, err error) {
	keyPath, certPath := filepath.Join(dir, FileCAKey), filepath.Join(dir, FileCACert)
	marker := filepath.Join(dir, fileCAMaking)
	if _, err := os.Lstat(marker); err == nil {
		for _, p := range []string{keyPath, certPath} {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, false, fmt.Errorf("bridge CA: removing %s, half-written by a start that was cut: %w", p, err)
			}
		}
	}
	keyPEM, kerr := secretfile.Read(keyPath, maxCAFile)
	certPEM, cerr := readBounded(certPath, maxCAFile)
	kMissing, cMissing := errors.Is(kerr, fs.ErrNotExist), errors.Is(cerr, fs.ErrNotExist)
	switch {
	case kMissing && cMissing:
		ca, err := newCA()
		if err != nil {
			return nil, false, err
		}
		if err := writeSecret(marker, nil); err != nil {
			return nil, false, fmt.Errorf("bridge CA: %w", err)
		}
		if err := ca.write(keyPath, certPath); err != nil {
			return nil, false, err
		}
		if err := os.Remove(marker); err != nil {
			return nil, false, fmt.Errorf("bridge CA: %w", err)
		}
		_ = syncDir(dir) // the marker's removal: at worst the next start makes the pair again
		return ca, true, nil
	case kMissing || cMissing:
		return nil, false, fmt.Errorf("bridge CA: %s and %s must both exist or both be absent; "+
			"restore the missing one from a backup (boxes trust the old CA), or remove both to make a new CA "+
			"and re-provision every box", keyPath, certPath)
	case kerr != nil:
		return nil, false, fmt.Errorf("bridge CA key: %w", kerr)
	case cerr != nil:
		return nil, false, fmt.Errorf("bridge CA certificate: %w", cerr)
	}
	ca, err := parseCA(keyPEM, certPEM)
	if err != nil {
		return nil, false, fmt.Errorf("bridge CA %s, %s: %w", keyPath, certPath, err)
	}
	return ca, false, nil
}

// readBounded reads at most limit bytes of a file that need not be secret.
func readBounded(path string, limit int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d a certificate takes", path, fi.Size(), limit)
	}
	return os.ReadFile(path)
}

func newCA() (*certAuthority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("make CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	// A short random tag in the name tells two bridges' CAs apart in a
	// box's logs and in openssl output.
	tag := make([]byte, 4)
	if _, err := rand.Read(tag); err != nil {
		return nil, fmt.Errorf("make CA name: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "SmartBox bridge CA " + hex.EncodeToString(tag)},
		NotBefore:             now.Add(-certBackdate),
		NotAfter:              now.Add(caLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true, // it signs leaves only
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("make CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("make CA certificate: %w", err)
	}
	return &certAuthority{cert: cert, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}, nil
}

// write stores the key, then the certificate, each durably; a crash in
// between is what the ca.making marker around it is for.
func (ca *certAuthority) write(keyPath, certPath string) error {
	keyPEM, err := ca.keyPEM()
	if err != nil {
		return err
	}
	if err := writeSecret(keyPath, keyPEM); err != nil {
		return fmt.Errorf("write CA key %s: %w", keyPath, err)
	}
	if err := writeSecret(certPath, ca.certPEM); err != nil {
		return fmt.Errorf("write CA certificate %s: %w", certPath, err)
	}
	return nil
}

// keyPEM is the CA's private key, PKCS#8 PEM.
func (ca *certAuthority) keyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return nil, fmt.Errorf("encode CA key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func parseCA(keyPEM, certPEM []byte) (*certAuthority, error) {
	kb, _ := pem.Decode(keyPEM)
	if kb == nil || kb.Type != "PRIVATE KEY" {
		return nil, errors.New("key: not a PEM \"PRIVATE KEY\" block")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want ECDSA", k)
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, errors.New("certificate: not a PEM \"CERTIFICATE\" block")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("certificate is not a CA certificate")
	}
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, errors.New("the key does not belong to the certificate")
	}
	return &certAuthority{cert: cert, certPEM: pem.EncodeToMemory(cb), key: key}, nil
}

func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), serialBits))
	if err != nil {
		return nil, fmt.Errorf("make certificate serial: %w", err)
	}
	return n, nil
}

// CACert is the bridge CA's certificate (PEM, DATA/ca.crt): what boxes
// trust for the broker, and the issuer of their client certificates.
func (s *Service) CACert() string { return string(s.ca.certPEM) }
