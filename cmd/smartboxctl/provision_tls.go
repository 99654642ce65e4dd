package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"time"
)

// The box's device key and certificate: the key is made on the technician's
// laptop straight onto the card and never travels; the bridge's CA signs a
// certificate request for it, whose CN is the box id (the broker knows the
// box by it, boxconfig's [cloud] cert_file/key_file present it).

// maxPEMFile bounds a certificate, CA or key file read: a CA bundle is a
// few kilobytes, and a path pointing at a device must not eat the laptop's
// memory.
const maxPEMFile = 1 << 20

// newDeviceKey makes a fresh ECDSA P-256 key and its PKCS#8 PEM (what
// tls.X509KeyPair, and so smartboxd, reads).
func newDeviceKey() (*ecdsa.PrivateKey, []byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("making the device key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the device key: %w", err)
	}
	return k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// loadDeviceKey reads a device key written by newDeviceKey.
func loadDeviceKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: not a PKCS#8 PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%s: not an ECDSA P-256 key", path)
	}
	return ek, nil
}

// makeCSR is the PKCS#10 request (PEM) for key, CN = boxID.
func makeCSR(key *ecdsa.PrivateKey, boxID string) (string, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: boxID}}, key)
	if err != nil {
		return "", fmt.Errorf("making the certificate request: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

// parseCA parses a CA bundle (one or more PEM certificates); where names it
// for the error.
func parseCA(caPEM []byte, where string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: no PEM certificate in it (want the bridge's CA, its DATA/ca.crt)", where)
	}
	return pool, nil
}

// checkCertificate says whether certPEM is a client certificate for this
// box: CN = boxID, key = the device key, signed by the CA, valid now. where
// names it for the error.
func checkCertificate(certPEM []byte, key *ecdsa.PrivateKey, boxID string, caPEM []byte, where string) (*x509.Certificate, error) {
	c, err := certFor(certPEM, key, boxID, where)
	if err != nil {
		return nil, err
	}
	pool, err := parseCA(caPEM, "tls/ca.crt")
	if err != nil {
		return nil, err
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		CurrentTime: time.Now()}); err != nil {
		return nil, fmt.Errorf("%s: not a valid client certificate from the bridge's CA: %w", where, err)
	}
	return c, nil
}

// certifies says whether certPEM is a certificate for boxID and key (not
// whether a CA signed it: checkCertificate).
func certifies(certPEM []byte, key *ecdsa.PrivateKey, boxID string) bool {
	_, err := certFor(certPEM, key, boxID, "")
	return err == nil
}

// certFor parses certPEM and checks its CN is boxID and its key is key.
func certFor(certPEM []byte, key *ecdsa.PrivateKey, boxID, where string) (*x509.Certificate, error) {
	blk, _ := pem.Decode(certPEM)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: not a PEM certificate", where)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if c.Subject.CommonName != boxID {
		return nil, fmt.Errorf("%s: the certificate is for %q, this box is %q", where, c.Subject.CommonName, boxID)
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, fmt.Errorf("%s: the certificate is for another key than this box's tls/box.key", where)
	}
	return c, nil
}

// readBounded reads a file of at most maxPEMFile bytes.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > maxPEMFile {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a key or certificate", path, maxPEMFile)
	}
	return b, nil
}
