package brokertest

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCertsVerify(t *testing.T) {
	c := TestCerts(t)
	srv, err := x509.ParseCertificate(c.ServerTLS().Certificates[0].Certificate[0])
	require.NoError(t, err)
	for _, host := range []string{"127.0.0.1", "::1", "localhost"} {
		_, err := srv.Verify(x509.VerifyOptions{Roots: c.Pool, DNSName: host})
		require.NoError(t, err, host)
	}
	certFile, keyFile, cl := c.ClientCert(t, "box-a")
	// Keys private: smartboxd refuses a key_file that others may read.
	for file, mode := range map[string]os.FileMode{certFile: 0o644, keyFile: 0o600, c.ServerKeyFile: 0o600, c.CAFile: 0o644} {
		fi, err := os.Stat(file)
		require.NoError(t, err)
		require.Equal(t, mode, fi.Mode().Perm(), file)
	}
	cert, err := x509.ParseCertificate(cl.Certificate[0])
	require.NoError(t, err)
	require.Equal(t, "box-a", cert.Subject.CommonName)
	_, err = cert.Verify(x509.VerifyOptions{Roots: c.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	require.NoError(t, err)
	_, err = cert.Verify(x509.VerifyOptions{Roots: TestCerts(t).Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	require.Error(t, err, "another test's CA does not vouch for it")
}

// The mosquitto ACL the tests run with is the one sync/README.md documents.
func TestMosquittoACLIsTheREADMEs(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(readme), "<!-- mosquitto-acl:")
	require.True(t, ok, "README has no mosquitto-acl marker")
	_, rest, ok = strings.Cut(rest, "```\n")
	require.True(t, ok, "no code block after the marker")
	block, _, ok := strings.Cut(rest, "```")
	require.True(t, ok, "the code block does not end")
	require.Equal(t, block, MosquittoACL)
}

// The test mosquitto bounds each client's queue as sync/README.md advises.
func TestMosquittoQueueBoundsAreTheREADMEs(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	conf := (&MosquittoBroker{}).config()
	for _, line := range []string{
		fmt.Sprintf("max_queued_messages %d", mosquittoMaxQueuedMessages),
		fmt.Sprintf("max_queued_bytes %d", mosquittoMaxQueuedBytes),
	} {
		require.Contains(t, string(readme), "`"+line+"`")
		require.Contains(t, conf, line+"\n")
	}
}

func TestMosquittoPasswordFormat(t *testing.T) {
	lines := strings.Split(strings.TrimSpace(mosquittoPasswords(t, DefaultUsers())), "\n")
	require.Len(t, lines, 3)
	for _, l := range lines {
		name, hash, ok := strings.Cut(l, ":")
		require.True(t, ok)
		parts := strings.Split(hash, "$")
		require.Equal(t, []string{"", "7", "101"}, parts[:3], name)
		require.Len(t, parts[3], 16, "12-byte salt in base64")
		require.Len(t, parts[4], 88, "64-byte PBKDF2-SHA512 in base64")
	}
}

// Restart keeps the ports; Stop stops listening; Restart brings it back.
func TestRestartKeepsPorts(t *testing.T) {
	for _, k := range Kinds(t) {
		t.Run(string(k), func(t *testing.T) {
			t.Parallel()
			b := Start(t, k, Options{TLS: true})
			urls := []string{b.URL(), b.TLSURL(), b.CertURL()}
			for _, u := range urls {
				require.NotEmpty(t, u)
				dial(t, u)
			}
			b.Restart(t)
			require.Equal(t, urls, []string{b.URL(), b.TLSURL(), b.CertURL()})
			for _, u := range urls {
				dial(t, u)
			}
			b.Stop()
			pu, err := url.Parse(b.URL())
			require.NoError(t, err)
			_, err = net.DialTimeout("tcp", pu.Host, time.Second)
			require.Error(t, err, "a stopped broker does not listen")
			b.Restart(t)
			dial(t, b.URL())
		})
	}
}

func dial(t *testing.T, u string) {
	t.Helper()
	pu, err := url.Parse(u)
	require.NoError(t, err)
	c, err := net.DialTimeout("tcp", pu.Host, 5*time.Second)
	require.NoError(t, err, u)
	c.Close()
}
