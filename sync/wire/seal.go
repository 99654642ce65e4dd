package wire

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Sealing codes: see the package comment. The derivation binds the batch's
// box and target revision, so a sealed code lifted from one batch opens in no
// other.

func sealKey(shared []byte, boxID string, revision uint64) (cipher.AEAD, error) {
	info := make([]byte, 0, 64)
	info = append(info, "smartbox/v1 code seal\n"...)
	info = append(info, boxID...)
	info = binary.BigEndian.AppendUint64(append(info, '\n'), revision)
	key, err := hkdf.Key(sha256.New, shared, nil, string(info), 32)
	if err != nil {
		return nil, err
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

// CodeSealer seals the codes of one batch to one box.
type CodeSealer struct {
	aead      cipher.AEAD
	ephemeral []byte
}

// NewCodeSealer makes a fresh ephemeral key for a batch to boxID at revision.
func NewCodeSealer(boxPublic []byte, boxID string, revision uint64) (*CodeSealer, error) {
	pub, err := ecdh.X25519().NewPublicKey(boxPublic)
	if err != nil {
		return nil, fmt.Errorf("box %s public key: %w", boxID, err)
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	shared, err := eph.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("box %s public key: %w", boxID, err)
	}
	aead, err := sealKey(shared, boxID, revision)
	if err != nil {
		return nil, err
	}
	return &CodeSealer{aead: aead, ephemeral: eph.PublicKey().Bytes()}, nil
}

// Ephemeral is the public half to put in RecordBatch.Ephemeral.
func (s *CodeSealer) Ephemeral() []byte { return s.ephemeral }

// Seal returns nonce || ciphertext of code, bound to grantID.
func (s *CodeSealer) Seal(grantID, code string) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(code)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand never fails on Linux >= 3.17; see its docs
	}
	return s.aead.Seal(nonce, nonce, []byte(code), []byte(grantID))
}

// CodeOpener opens the codes of one batch.
type CodeOpener struct{ aead cipher.AEAD }

// NewCodeOpener derives the batch key from the box's private key and the
// batch's ephemeral public key.
func NewCodeOpener(boxPrivate *ecdh.PrivateKey, ephemeral []byte, boxID string, revision uint64) (*CodeOpener, error) {
	pub, err := ecdh.X25519().NewPublicKey(ephemeral)
	if err != nil {
		return nil, fmt.Errorf("%w: batch ephemeral key: %v", ErrMalformed, err)
	}
	shared, err := boxPrivate.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: batch ephemeral key: %v", ErrMalformed, err)
	}
	aead, err := sealKey(shared, boxID, revision)
	if err != nil {
		return nil, err
	}
	return &CodeOpener{aead: aead}, nil
}

// Open returns the code sealed for grantID.
func (o *CodeOpener) Open(grantID string, sealed []byte) (string, error) {
	n := o.aead.NonceSize()
	if len(sealed) < n+o.aead.Overhead() {
		return "", fmt.Errorf("%w: sealed code of grant %s is too short", ErrMalformed, grantID)
	}
	code, err := o.aead.Open(nil, sealed[:n], sealed[n:], []byte(grantID))
	if err != nil {
		return "", fmt.Errorf("%w: sealed code of grant %s does not open", ErrBadSignature, grantID)
	}
	return string(code), nil
}
