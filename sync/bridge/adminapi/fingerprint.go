package adminapi

import (
	"crypto/sha256"
	"encoding/hex"
)

// FingerprintPrefix starts every Fingerprint.
const FingerprintPrefix = "sha256:"

// Fingerprint is how a trust anchor is read out to compare it by eye or
// pin it: "sha256:" and the hex SHA-256 of b (an Ed25519 public key's 32
// bytes, a certificate's DER). smartboxctl provision prints the same.
func Fingerprint(b []byte) string {
	sum := sha256.Sum256(b)
	return FingerprintPrefix + hex.EncodeToString(sum[:])
}
