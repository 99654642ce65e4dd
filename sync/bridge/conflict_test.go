package bridge

import (
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"github.com/smartbox-oss/smartbox/sync/bridge/adminapi"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// apiStatus is the HTTP status of an admin call's error answer, 0 if none.
func apiStatus(err error) int {
	if ae, ok := errors.AsType[*adminapi.APIError](err); ok {
		return ae.Status
	}
	return 0
}

// serialOf is a PEM certificate's serial, hex as boxCert keeps it.
func serialOf(t *testing.T, certPEM string) string {
	t.Helper()
	blk, _ := pem.Decode([]byte(certPEM))
	require.NotNil(t, blk)
	c, err := x509.ParseCertificate(blk.Bytes)
	require.NoError(t, err)
	return c.SerialNumber.Text(16)
}

func newBoxKey(t *testing.T) string {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(k.PublicKey().Bytes())
}

// A box registered with one key is not re-keyed by a registration with
// another (a wrong box id) unless it says Replace; the same key again is
// fine.
func TestRegisterBoxOtherKeyConflicts(t *testing.T) {
	b := startTest(t, Options{})
	c, ctx := b.AdminClient(), context.Background()
	first, second := newBoxKey(t), newBoxKey(t)
	require.NoError(t, c.Do(ctx, http.MethodPost, "/v1/boxes", adminapi.RegisterBoxRequest{ID: "depot-1", PublicKey: first}, nil))
	require.NoError(t, c.Do(ctx, http.MethodPost, "/v1/boxes", adminapi.RegisterBoxRequest{ID: "depot-1", PublicKey: first}, nil), "same key: idempotent")

	err := c.Do(ctx, http.MethodPost, "/v1/boxes", adminapi.RegisterBoxRequest{ID: "depot-1", PublicKey: second}, nil)
	require.Equal(t, http.StatusConflict, apiStatus(err), "%v", err)
	require.ErrorContains(t, err, "box depot-1 is already registered with another key: is the box id right?")
	// Refused, the key stays: the first is still the same key.
	require.NoError(t, c.Do(ctx, http.MethodPost, "/v1/boxes", adminapi.RegisterBoxRequest{ID: "depot-1", PublicKey: first}, nil))

	require.NoError(t, c.Do(ctx, http.MethodPost, "/v1/boxes", adminapi.RegisterBoxRequest{ID: "depot-1", PublicKey: second, Replace: true}, nil))
	err = c.Do(ctx, http.MethodPost, "/v1/boxes", adminapi.RegisterBoxRequest{ID: "depot-1", PublicKey: first}, nil)
	require.Equal(t, http.StatusConflict, apiStatus(err), "replaced: the first is now the other key")
}

// A certificate for another key while the box has a current one is
// refused unless Replace, and the refused one was never recorded; the same
// key again gets a new certificate.
func TestCertificateOtherKeyConflicts(t *testing.T) {
	b := startTest(t, Options{})
	registerTestBox(t, b, "depot-1")
	c, ctx := b.AdminClient(), context.Background()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	_, err = c.Certificate(ctx, "depot-1", makeCSR(t, "depot-1", key), false)
	require.NoError(t, err)
	again, err := c.Certificate(ctx, "depot-1", makeCSR(t, "depot-1", key), false)
	require.NoError(t, err, "same key: a new certificate")
	cur, ok := b.accounts.Cert("depot-1")
	require.True(t, ok)
	require.Equal(t, serialOf(t, again.Certificate), cur.Serial)

	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	_, err = c.Certificate(ctx, "depot-1", makeCSR(t, "depot-1", other), false)
	require.Equal(t, http.StatusConflict, apiStatus(err), "%v", err)
	require.ErrorContains(t, err, "box depot-1 already has a current certificate for another key")
	after, _ := b.accounts.Cert("depot-1")
	require.Equal(t, cur.Serial, after.Serial, "refused, the current certificate stays")

	replaced, err := c.Certificate(ctx, "depot-1", makeCSR(t, "depot-1", other), true)
	require.NoError(t, err)
	after, _ = b.accounts.Cert("depot-1")
	require.Equal(t, serialOf(t, replaced.Certificate), after.Serial)
}
