package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/cmd/internal/cli"
)

// A fixed CA and one client certificate it signed for box depot-1's device
// key, made once with openssl (valid until 2126), so that the seed corpus
// holds a certificate that passes. The CA's private key was thrown away:
// no other certificate from this CA exists, or can be made by a fuzzer.
const (
	fuzzCAPEM = `-----BEGIN CERTIFICATE-----
MIIBuDCCAV+gAwIBAgIUPDw86EJsIu6AA9oD8bL56iLh4ykwCgYIKoZIzj0EAwIw
KTEnMCUGA1UEAwweU21hcnRCb3ggYnJpZGdlIENBIChmdXp6IHNlZWQpMCAXDTI2
MTIwMjEzMjUzNVoYDzIxMjYxMTA4MTMyNTM1WjApMScwJQYDVQQDDB5TbWFydEJv
eCBicmlkZ2UgQ0EgKGZ1enogc2VlZCkwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC
AATwSHgIiJrpLHx+XISltwpfWuzkZZELwJx/0/7c3buOoziCCDYAgvM4p1VElCy0
sN8L0BU9CMk1qsRvVccONJOTo2MwYTAdBgNVHQ4EFgQU+YErH2ge+DuWpCZDY7AN
fQPuzPQwHwYDVR0jBBgwFoAU+YErH2ge+DuWpCZDY7ANfQPuzPQwDwYDVR0TAQH/
BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAgQwCgYIKoZIzj0EAwIDRwAwRAIgYBrw90ju
rIGJfvXVFW7/m6l2ea/JXd853KdmUOWGf0ACIBvtQ/e7JYctRcPRWob3XRkZ3q+3
Pt8t519cpMrBuhxI
-----END CERTIFICATE-----
`
	fuzzDeviceKeyPEM = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgx2EDTaGh3JtaumEN
kxRTHvEtb5Cym9AUEaa+KP8J/TyhRANCAARsTHLFDyVZG1UKdpPGMtzgOgtAnoao
Y+S1vg9Z894dOlvQpDEqSQ7r1UA6a7dzKmxV6SLU4/zt54IYGL4HuCn0
-----END PRIVATE KEY-----
`
	fuzzDeviceCertPEM = `-----BEGIN CERTIFICATE-----
MIIBtDCCAVqgAwIBAgIUQeNs41hyw0SrVhRSL72iZSHfDbowCgYIKoZIzj0EAwIw
KTEnMCUGA1UEAwweU21hcnRCb3ggYnJpZGdlIENBIChmdXp6IHNlZWQpMCAXDTI2
MTIwMjEzMjUzNloYDzIxMjYxMTA4MTMyNTM2WjASMRAwDgYDVQQDDAdkZXBvdC0x
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEbExyxQ8lWRtVCnaTxjLc4DoLQJ6G
qGPktb4PWfPeHTpb0KQxKkkO69VAOmu3cypsVeki1OP87eeCGBi+B7gp9KN1MHMw
EwYDVR0lBAwwCgYIKwYBBQUHAwIwDgYDVR0PAQH/BAQDAgeAMAwGA1UdEwEB/wQC
MAAwHQYDVR0OBBYEFG2NyuAzcQJBUdyM6Hr1mA60ktiMMB8GA1UdIwQYMBaAFPmB
Kx9oHvg7lqQmQ2OwDX0D7sz0MAoGCCqGSM49BAMCA0gAMEUCIHk5YcZyKR4DyYm4
hXhBYAoWo2baY7hCdM49FMCc4qpLAiEA7NbhLKgW4AbnEg8NiRn0nRXI4MTVKtYO
yGV3gdTu0jw=
-----END CERTIFICATE-----
`
)

// FuzzCheckCertificate feeds arbitrary bytes as the client certificate
// `provision --certificate FILE` installs on a card: checkCertificate
// never panics, and accepts only the one certificate the card's CA signed
// for the card's box and device key (its signed part byte for byte).
func FuzzCheckCertificate(f *testing.F) {
	keyPath := filepath.Join(f.TempDir(), "box.key")
	require.NoError(f, os.WriteFile(keyPath, []byte(fuzzDeviceKeyPEM), 0o600))
	dev, err := loadDeviceKey(keyPath)
	require.NoError(f, err)
	good, err := checkCertificate([]byte(fuzzDeviceCertPEM), dev, "depot-1", []byte(fuzzCAPEM), "box.crt")
	require.NoError(f, err, "the seed certificate")
	f.Add([]byte(fuzzDeviceCertPEM))
	f.Add([]byte(fuzzCAPEM))
	f.Add([]byte(fuzzDeviceCertPEM[:len(fuzzDeviceCertPEM)/2]))
	f.Add([]byte(strings.Replace(fuzzDeviceCertPEM, "CERTIFICATE", "CERTIFICATE REQUEST", 2)))
	f.Fuzz(func(t *testing.T, certPEM []byte) {
		c, err := checkCertificate(certPEM, dev, "depot-1", []byte(fuzzCAPEM), "box.crt")
		if err != nil {
			require.True(t, strings.HasPrefix(err.Error(), "box.crt: "), "the error names the file: %v", err)
			return
		}
		require.Equal(t, good.RawTBSCertificate, c.RawTBSCertificate, "accepted a certificate the CA never signed")
		require.Equal(t, "depot-1", c.Subject.CommonName)
	})
}

// FuzzCloudKey: a --cloud-key (or --expect-signing-key) value is a valid
// key id and a 32-byte Ed25519 key, which its printed form parses back to
// and which --expect-signing-key then accepts; or a usage error (exit 2).
func FuzzCloudKey(f *testing.F) {
	pub := base64.StdEncoding.EncodeToString(make([]byte, ed25519.PublicKeySize))
	f.Add("cloud-1=" + pub)
	f.Add("cloud-1=" + strings.TrimRight(base64.URLEncoding.EncodeToString([]byte(strings.Repeat("\xfb", 32))), "="))
	f.Add("cloud-1= " + pub + "\n")
	f.Add("=" + pub)
	f.Add("cloud 1=" + pub)
	f.Add("cloud-1=AAAA")
	f.Add("cloud-1")
	f.Fuzz(func(t *testing.T, v string) {
		kid, key, err := parseCloudKey(v)
		if err != nil {
			var ue cli.UsageError
			require.True(t, errors.As(err, &ue), "not a usage error: %v", err)
			return
		}
		require.Len(t, key, ed25519.PublicKeySize)
		line := kid + "=" + base64.StdEncoding.EncodeToString(key)
		kid2, key2, err := parseCloudKey(line)
		require.NoError(t, err, "its own printed form %q", line)
		require.Equal(t, kid, kid2)
		require.Equal(t, key, key2)
		require.NoError(t, checkExpectedKey(v, kid, key))
		require.NoError(t, checkExpectedKey(keyFingerprint(key), kid, key))
		require.NoError(t, checkExpectedKey(fingerprintPrefix+strings.ToUpper(strings.TrimPrefix(keyFingerprint(key), fingerprintPrefix)), kid, key),
			"the fingerprint's hex in upper case")
	})
}
