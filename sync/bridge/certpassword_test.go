package bridge

import (
	"context"
	"github.com/smartbox-oss/smartbox/sync/bridge/adminapi"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"
)

// dialPassword connects to the plain listener as box id with pw and
// returns the connect error.
func dialPassword(t *testing.T, b *testBridge, id, pw string) error {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(b.BrokerURL()).SetClientID(id).SetUsername(id).SetPassword(pw).
		SetAutoReconnect(false).SetConnectTimeout(mqttWait).SetProtocolVersion(4)
	cl := paho.NewClient(o)
	tok := cl.Connect()
	require.True(t, tok.WaitTimeout(mqttWait), "connect: no answer")
	if tok.Error() == nil {
		cl.Disconnect(100)
	}
	return tok.Error()
}

// Once a box has a certificate, its old password (an old or stolen card)
// no longer logs in at the real broker, and the bridge no longer keeps it.
func TestCertificateEndsPasswordLogin(t *testing.T) {
	b := startTest(t, Options{Broker: BrokerOptions{ListenTLS: freeLoopbackPort}})
	const pw = "depot-1-old-card-password"
	require.NoError(t, b.AdminClient().Do(context.Background(), "POST", "/v1/boxes",
		adminapi.RegisterBoxRequest{ID: "depot-1", PublicKey: newBoxKey(t), Password: pw}, nil))
	require.NoError(t, dialPassword(t, b, "depot-1", pw), "before a certificate the password logs in")

	issue(t, b, "depot-1", false)
	require.False(t, b.accounts.HasPassword("depot-1"), "the certificate clears the password")
	require.Error(t, dialPassword(t, b, "depot-1", pw))

	// A password set again later is refused by the broker all the same.
	require.NoError(t, b.accounts.SetPassword("depot-1", pw))
	require.Error(t, dialPassword(t, b, "depot-1", pw))
	require.Contains(t, b.log.String(), "password login refused")
}
