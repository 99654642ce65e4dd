package main

import (
	"crypto/ed25519"
	"encoding/pem"
	"fmt"
	"github.com/smartbox-oss/smartbox/sync/bridge/adminapi"
	"net"
	"net/url"
	"strings"

	"github.com/smartbox-oss/smartbox/cmd/internal/cli"
)

// What provision trusts from the bridge: the admin token goes out and the
// trust anchors (CA, signing key) come back over --bridge, so plain http is
// only for the bridge's own machine; the technician can pin the signing key
// (--expect-signing-key) and the report shows both fingerprints, to compare
// with what the bridge's admin reads out (smartbox-bridge provisioning).

// fingerprintPrefix marks a --expect-signing-key given as a fingerprint.
const fingerprintPrefix = adminapi.FingerprintPrefix

// checkBridgeURL refuses a --bridge that would send the token in clear to
// another machine: https:// any host, http:// loopback only.
func checkBridgeURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cli.Usagef("--bridge %q: want the admin API's URL, e.g. https://bridge.example.com:8480", raw)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return cli.Usagef("--bridge %q: plain http:// would send the admin token in clear and take the bridge's CA and "+
			"signing key unauthenticated: use https://, or http:// only to the bridge's own machine (127.0.0.1, localhost)", raw)
	}
	return nil
}

// isLoopback says whether host is this machine.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// keyFingerprint is the SHA-256 of an Ed25519 public key, as printed.
func keyFingerprint(k ed25519.PublicKey) string { return adminapi.Fingerprint(k) }

// caFingerprint is the SHA-256 of the first certificate (DER) of a CA
// bundle, as printed; "" if there is none.
func caFingerprint(caPEM []byte) string {
	blk, _ := pem.Decode(caPEM)
	if blk == nil {
		return ""
	}
	return adminapi.Fingerprint(blk.Bytes)
}

// checkExpectedKey compares the bridge's signing key with
// --expect-signing-key: KID=BASE64, or sha256:HEX (keyFingerprint). "" is
// no expectation.
func checkExpectedKey(expect, kid string, key ed25519.PublicKey) error {
	if expect == "" {
		return nil
	}
	if strings.HasPrefix(expect, fingerprintPrefix) {
		if !strings.EqualFold(expect, keyFingerprint(key)) {
			return fmt.Errorf("the bridge's signing key %s has fingerprint %s, not the %s expected (--expect-signing-key): "+
				"nothing was changed; is --bridge the right bridge?", kid, keyFingerprint(key), expect)
		}
		return nil
	}
	wantKID, wantKey, err := parseCloudKey(expect)
	if err != nil {
		return cli.Usagef("--expect-signing-key: want KID=BASE64 or %sHEX: %v", fingerprintPrefix, err)
	}
	if wantKID != kid || !wantKey.Equal(key) {
		return fmt.Errorf("the bridge's signing key is %s (%s), not the %s expected (--expect-signing-key): "+
			"nothing was changed; is --bridge the right bridge?", kid, keyFingerprint(key), wantKID)
	}
	return nil
}
