package bridge

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/smartbox-oss/smartbox/sync/secretfile"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// Files in the data directory, named by what they hold (migrate.go moves
// the older names).
const (
	FileCloudDB       = "cloud.db"     // sync/cloud: every box's keys, grants, revision log, events
	FileBookingsDB    = "bookings.db"  // sync/bookings: Fleetio settings (0600), links, webhook queue, bookings
	FileBoxesDB       = "boxes.db"     // box accounts: MQTT password hashes, slot counts
	FileBrokerDir     = "broker"       // embedded broker's sessions and retained messages
	FileSigningKey    = "signing.key"  // Ed25519 private key, PKCS#8 PEM, 0600
	FileAdminToken    = "admin.token"  // bearer token of the admin endpoint, 0600
	FileAdminAddr     = "admin.addr"   // where the running service's admin endpoint listens
	FileCloudPassword = "cloud.passwd" // the embedded broker's cloud password, 0600
)

// loadOrCreateSigningKey reads the bridge's Ed25519 signing key from path,
// or makes one (0600) if the file does not exist. created says which. An
// existing file others may read is refused (secretfile): whoever reads it
// can sign records and commands every box obeys.
// The key id is derived from the public key, so it needs no file of its own
// and a box provisioned with "kid=base64" names the key that signs for it.
func loadOrCreateSigningKey(path string) (s wire.Signer, created bool, err error) {
	b, err := secretfile.Read(path, secretfile.MaxSize)
	switch {
	case err == nil:
		s, err := ParseSigningKey(b)
		if err != nil {
			return wire.Signer{}, false, fmt.Errorf("signing key %s: %w", path, err)
		}
		return s, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return wire.Signer{}, false, fmt.Errorf("signing key: %w", err)
	}
	pemKey, s, err := newSigningKey()
	if err != nil {
		return wire.Signer{}, false, err
	}
	if err := writeSecret(path, pemKey); err != nil {
		return wire.Signer{}, false, fmt.Errorf("write signing key: %w", err)
	}
	return s, true, nil
}

// newSigningKey makes an Ed25519 signing key: its PKCS#8 PEM and the signer.
func newSigningKey() ([]byte, wire.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, wire.Signer{}, fmt.Errorf("make signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, wire.Signer{}, fmt.Errorf("encode signing key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		wire.Signer{KeyID: keyID(priv.Public().(ed25519.PublicKey)), Key: priv}, nil
}

// ParseSigningKey reads a signing key file's PEM (PKCS#8 Ed25519).
func ParseSigningKey(b []byte) (wire.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return wire.Signer{}, errors.New("not a PEM \"PRIVATE KEY\" block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return wire.Signer{}, fmt.Errorf("parse PKCS#8: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return wire.Signer{}, fmt.Errorf("key is %T, want Ed25519", k)
	}
	return wire.Signer{KeyID: keyID(priv.Public().(ed25519.PublicKey)), Key: priv}, nil
}

// keyID names a public key: "bridge-" and the first 8 hex digits of its
// SHA-256. Boxes hold keys by id (wire.Verifier), so a rotated key gets a
// new id by itself.
func keyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "bridge-" + hex.EncodeToString(sum[:4])
}

// PublicKeyLine is what `signing-key` prints and `smartboxctl provision`
// takes: kid=base64(public key).
func PublicKeyLine(s wire.Signer) string {
	return s.KeyID + "=" + base64.StdEncoding.EncodeToString(s.Key.Public().(ed25519.PublicKey))
}

// loadOrCreateToken reads a random secret (hex) from path, or makes a
// 32-byte one (0600). An existing file others may read is refused
// (secretfile), as every other secret file is.
func loadOrCreateToken(path string) (string, error) {
	b, err := secretfile.Read(path, secretfile.MaxSize)
	if err == nil {
		tok := strings.TrimSpace(string(b))
		if len(tok) < 32 {
			return "", fmt.Errorf("%s: secret is %d characters, want at least 32", path, len(tok))
		}
		return tok, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err // secretfile's errors name the file (and the chmod)
	}
	tok, err := newToken()
	if err != nil {
		return "", err
	}
	if err := writeSecret(path, []byte(tok+"\n")); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return tok, nil
}

// newToken makes a bearer token: 32 random bytes, hex.
func newToken() (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("make secret: %w", err)
	}
	return hex.EncodeToString(raw), nil
}

// writeSecret writes b to path with mode 0600, durably: a temporary file,
// fsync, rename, so a power cut leaves the old file or the new one, never a
// half-written key.
func writeSecret(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	_ = syncDir(dir) // best effort: the file itself is whole either way
	return nil
}
