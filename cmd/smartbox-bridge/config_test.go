package main

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/cloud"
)

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig("bridge.toml", nil)
	require.NoError(t, err)
	require.NoError(t, c.Validate())
	require.Equal(t, DefaultDataDir, c.DataDir)
	require.True(t, c.Broker.IsEmbedded())
	require.Equal(t, "127.0.0.1:1883", c.Broker.Listen)
	require.Equal(t, "cloud", c.Broker.Username)
	require.Equal(t, "smartbox-cloud", c.Broker.ClientID)
	require.Equal(t, "127.0.0.1:8480", c.Admin.Listen)
	require.Equal(t, "127.0.0.1:8490", c.Fleetio.PublicListen)
	require.Equal(t, 15*time.Minute, c.Fleetio.ReconcileEvery.Duration)
	require.Equal(t, 10*time.Minute, c.Fleetio.OverdueGrace.Duration)
	require.EqualValues(t, 64<<10, c.Fleetio.MaxBody)
	require.Equal(t, 2, c.Fleetio.MaxBodiesPerAddress)
	require.Equal(t, bookings.DefaultFleetioPerMinute, c.Fleetio.RequestsPerMinute)
	require.Equal(t, bookings.DefaultFleetioBurst, c.Fleetio.RequestBurst)
	require.Empty(t, c.Fleetio.TrustedProxies)
	require.Nil(t, c.Notify.Email)
	require.Nil(t, c.Notify.SMS)
}

// trusted_proxies takes single addresses and CIDRs.
// Replicas on a database with an external broker share the boxes'
// messages (a share group) and each has a client id of its own.
func TestParseConfigReplicaDefaults(t *testing.T) {
	src := "replica = \"bridge-2\"\n[store]\nurl = \"postgres://smartbox@db/smartbox\"\n" +
		"[broker]\nurl = \"ssl://mqtt:8883\"\npassword_file = \"p\"\n"
	c, err := ParseConfig("/etc/smartbox/b.toml", []byte(src))
	require.NoError(t, err)
	require.NoError(t, c.Validate())
	require.Equal(t, "smartbox-bridge", c.Broker.ShareGroup)
	require.Equal(t, cloud.DefaultClientID+"-bridge-2", c.Broker.ClientID)

	// One process on its files: no group, the one client id.
	c, err = ParseConfig("/etc/smartbox/b.toml", []byte("[broker]\nlisten = \"127.0.0.1:1883\"\n"))
	require.NoError(t, err)
	require.Empty(t, c.Broker.ShareGroup)
	require.Equal(t, cloud.DefaultClientID, c.Broker.ClientID)
	require.NotEmpty(t, c.Replica)
}

// An account allowed 20 requests a minute gets a burst of at most 20.
func TestParseConfigFleetioBudget(t *testing.T) {
	c, err := ParseConfig("b.toml", []byte("[fleetio]\nrequests_per_minute = 20\n"))
	require.NoError(t, err)
	require.NoError(t, c.Validate())
	require.Equal(t, 20, c.Fleetio.RequestsPerMinute)
	require.Equal(t, 20, c.Fleetio.RequestBurst)
	o, err := c.bridgeOptions(slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.Equal(t, 20, o.Fleetio.RequestsPerMinute)
	require.Equal(t, 20, o.Fleetio.RequestBurst)
}

func TestParseConfigTrustedProxies(t *testing.T) {
	c, err := ParseConfig("b.toml", []byte("[fleetio]\ntrusted_proxies = [\"127.0.0.1\", \"::1\", \"10.1.2.3/24\"]\nmax_bodies_per_address = 4\n"))
	require.NoError(t, err)
	require.NoError(t, c.Validate())
	ps, err := c.Fleetio.trustedProxies()
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("10.1.2.0/24")}, ps)
	require.Equal(t, 4, c.Fleetio.MaxBodiesPerAddress)
}

func TestParseConfigNotify(t *testing.T) {
	c, err := ParseConfig("b.toml", []byte("[fleetio]\npublic_url = \"https://keys.example.com\"\nadmin_phone = \"+15551234567\"\n"+
		"[notify.email]\nhost = \"smtp.example.com\"\nfrom = \"SmartBox <k@example.com>\"\n"+
		"[notify.sms]\naccount_sid = \"AC1\"\nauth_token_file = \"/t\"\nfrom = \"+15557654321\"\n"))
	require.NoError(t, err)
	require.NoError(t, c.Validate())
	require.Equal(t, 587, c.Notify.Email.Port)
	require.Equal(t, "require", c.Notify.Email.StartTLS)
	require.Equal(t, "AC1", c.Notify.SMS.AccountSID)
}

func TestParseConfigExamples(t *testing.T) {
	for _, f := range []string{"smartbox-bridge.example.toml", "smartbox-bridge.demo.toml"} {
		t.Run(f, func(t *testing.T) {
			c, err := LoadConfig(f)
			require.NoError(t, err)
			require.True(t, c.Broker.IsEmbedded())
		})
	}
	c, err := LoadConfig("smartbox-bridge.example.toml")
	require.NoError(t, err)
	require.Equal(t, 720*time.Hour, c.Broker.MessageExpiry.Duration)
}

func TestParseConfigExternal(t *testing.T) {
	c, err := ParseConfig("b.toml", []byte("[broker]\nurl = \"ssl://mqtt.example.net:8883\"\npassword_file = \"/p\"\nusername = \"cloud-2\"\n"))
	require.NoError(t, err)
	require.NoError(t, c.Validate())
	require.False(t, c.Broker.IsEmbedded())
	require.Empty(t, c.Broker.Listen, "no embedded listener with an external broker")
	require.Equal(t, "cloud-2", c.Broker.Username)
}

// TestExternalBrokerPlainPassword: the cloud's password goes over plain MQTT
// only to this machine, unless broker.insecure says the network is trusted.
func TestExternalBrokerPlainPassword(t *testing.T) {
	for _, tc := range []struct {
		name, broker string
		ok           bool
	}{
		{"tcp to 127.0.0.1", "url = \"tcp://127.0.0.1:1883\"\n", true},
		{"tcp to localhost", "url = \"tcp://localhost:1883\"\n", true},
		{"tcp to ::1", "url = \"tcp://[::1]:1883\"\n", true},
		{"tcp to 10.0.0.5", "url = \"tcp://10.0.0.5:1883\"\n", false},
		{"mqtt to a name", "url = \"mqtt://broker.internal:1883\"\n", false},
		{"tcp to 10.0.0.5, insecure", "url = \"tcp://10.0.0.5:1883\"\ninsecure = true\n", true},
		{"tls to 10.0.0.5", "url = \"tls://10.0.0.5:8883\"\nca_file = \"ca.pem\"\n", true},
		{"ssl to a name", "url = \"ssl://broker.internal:8883\"\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig("b.toml", []byte("[broker]\n"+tc.broker+"password_file = \"p\"\n"))
			require.NoError(t, err)
			err = c.Validate()
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), "broker.url:")
			require.Contains(t, err.Error(), "in clear")
			require.Contains(t, err.Error(), "broker.insecure = true")
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"syntax", "data_dir = \n", "b.toml:1:"},
		{"unknown key", "data_dir = \"x\"\n[broker]\nlisten = \"127.0.0.1:1\"\nlisen_tls = \"x\"\n", "b.toml:4: broker.lisen_tls: unknown key"},
		{"unknown table", "[brokr]\nlisten = \"x\"\n", "b.toml:1: brokr"},
		{"boxes in config", "[[boxes]]\nid = \"a\"\n", "b.toml:1: boxes: boxes are not configured here"},
		{"wrong type", "[broker]\nembedded = \"yes\"\n", "b.toml:2: broker.embedded"},
		{"bare duration", "[broker]\nmessage_expiry = 5\n", "b.toml:2"},
		{"short expiry", "[broker]\nmessage_expiry = \"1h\"\n", "b.toml:2: broker.message_expiry: 1h0m0s is shorter than 24h"},
		{"url and embedded", "[broker]\nembedded = true\nurl = \"tcp://h:1883\"\n", "b.toml:3: broker.url: is for an external broker"},
		{"embedded false without url", "[broker]\nembedded = false\n", "b.toml:2: broker.embedded: false needs broker.url"},
		{"bad url", "[broker]\nurl = \"h:1883\"\npassword_file = \"p\"\n", "b.toml:2: broker.url"},
		{"bad scheme", "[broker]\nurl = \"http://h:1883\"\npassword_file = \"p\"\n", "b.toml:2: broker.url: scheme \"http\""},
		{"external without password", "[broker]\nurl = \"tcp://h:1883\"\n", "broker.password_file: missing"},
		{"external password over tcp to a host", "[broker]\nurl = \"tcp://10.0.0.5:1883\"\npassword_file = \"p\"\n",
			"b.toml:2: broker.url: \"tcp://10.0.0.5:1883\" would send the cloud's password in clear to 10.0.0.5"},
		{"external password over ws to a host", "[broker]\nurl = \"ws://mqtt.example.com:80\"\npassword_file = \"p\"\n",
			"broker.insecure = true"},
		{"external with listen", "[broker]\nurl = \"tcp://h:1883\"\npassword_file = \"p\"\nlisten = \"127.0.0.1:1\"\n", "b.toml:4: broker.listen: is for the embedded broker"},
		{"embedded with ca_file", "[broker]\nca_file = \"ca\"\n", "b.toml:2: broker.ca_file: is for an external broker"},
		{"cert without key", "[broker]\nurl = \"ssl://h:8883\"\nclient_cert_file = \"c\"\n", "b.toml:3: broker.client_cert_file: needs broker.client_key_file"},
		{"tls cert without key", "[broker]\nlisten_tls = \"0.0.0.0:8883\"\ncert_file = \"c\"\n", "b.toml:3: broker.cert_file: and broker.key_file go together"},
		{"tls names with cert", "[broker]\nlisten_tls = \"0.0.0.0:8883\"\ncert_file = \"c\"\nkey_file = \"k\"\ntls_names = [\"h\"]\n", "b.toml:5: broker.tls_names: is for the certificate the bridge's CA issues"},
		{"tls name bad", "[broker]\nlisten_tls = \"0.0.0.0:8883\"\ntls_names = [\"a b\"]\n", "b.toml:3: broker.tls_names: entry 1 \"a b\""},
		{"box url bad", "[broker]\nbox_url = \"http://bridge:8883\"\n", "b.toml:2: broker.box_url: scheme \"http\""},
		{"box url no port", "[broker]\nbox_url = \"ssl://bridge\"\n", "b.toml:2: broker.box_url: \"ssl://bridge\" is not a broker URL"},
		{"cert without tls", "[broker]\ncert_file = \"c\"\nkey_file = \"k\"\n", "b.toml:2: broker.cert_file: is set but broker.listen_tls is not"},
		{"listen not host:port", "[broker]\nlisten = \"1883\"\n", "b.toml:2: broker.listen: \"1883\" is not host:port"},
		{"admin not loopback", "[admin]\nlisten = \"0.0.0.0:8480\"\n", "b.toml:2: admin.listen: \"0.0.0.0:8480\" is not a loopback address"},
		{"bad username", "[broker]\nusername = \"a b\"\n", "b.toml:2: broker.username"},
		{"bad client id", "[broker]\nclient_id = \"a/#\"\n", "b.toml:2: broker.client_id"},
		{"negative log limit", "[cloud]\nlog_limit = -1\n", "b.toml:2: cloud.log_limit: -1 is negative"},
		{"bad replica", "replica = \"a b\"\n", "b.toml:1: replica: \"a b\" is not a valid replica name"},
		{"bad share group", "[broker]\nshare_group = \"a/b\"\n", "b.toml:2: broker.share_group: \"a/b\" is not a share group name"},
		{"store both", "[store]\nurl = \"postgres://h/db\"\nurl_file = \"f\"\n", "b.toml:2: store.url: and store.url_file are both set"},
		{"store not postgres", "[store]\nurl = \"mysql://h/db\"\n", "b.toml:2: store.url: \"mysql://h/db\" is not a postgres:// URL"},
		{"store password inline", "[store]\nurl = \"postgres://u:hunter2@h/db\"\n", "b.toml:2: store.url: holds a password"},
		{"store max conns", "[store]\nmax_conns = 500\n", "b.toml:2: store.max_conns: 500 is outside 0..200"},
		{"public listen", "[fleetio]\npublic_listen = \"8490\"\n", "b.toml:2: fleetio.public_listen: \"8490\" is not host:port"},
		{"public url", "[fleetio]\npublic_url = \"keys.example.com\"\n", "b.toml:2: fleetio.public_url"},
		{"reconcile too often", "[fleetio]\nreconcile_every = \"15s\"\n", "b.toml:2: fleetio.reconcile_every: 15s is shorter than 1m0s"},
		{"reconcile bare", "[fleetio]\nreconcile_every = 15\n", "b.toml:2"},
		{"overdue grace negative", "[fleetio]\noverdue_grace = \"-1m\"\n", "b.toml:2: fleetio.overdue_grace: -1m0s: want 0s..24h0m0s"},
		{"overdue grace too long", "[fleetio]\noverdue_grace = \"48h\"\n", "fleetio.overdue_grace: 48h0m0s"},
		{"max body", "[fleetio]\nmax_body = 10\n", "b.toml:2: fleetio.max_body: 10 bytes"},
		{"max body too large", "[fleetio]\nmax_body = 2097152\n", "b.toml:2: fleetio.max_body: 2097152 bytes: want 4096..1048576"},
		{"bodies per address", "[fleetio]\nmax_bodies_per_address = 33\n", "b.toml:2: fleetio.max_bodies_per_address: 33: want 1..32"},
		{"fleetio budget", "[fleetio]\nrequests_per_minute = 7000\n", "b.toml:2: fleetio.requests_per_minute: 7000: want 1..6000"},
		{"fleetio budget negative", "[fleetio]\nrequests_per_minute = -1\n", "b.toml:2: fleetio.requests_per_minute: -1"},
		{"fleetio burst over rate", "[fleetio]\nrequests_per_minute = 20\nrequest_burst = 30\n", "b.toml:3: fleetio.request_burst: 30: want 1..1000 and at most requests_per_minute (20)"},
		{"trusted proxy", "[fleetio]\ntrusted_proxies = [\"10.0.0.5\", \"proxy.lan\"]\n", "b.toml:2: fleetio.trusted_proxies: \"proxy.lan\" is not an address or CIDR"},
		{"return settle", "[fleetio]\nreturn_settle = \"2h\"\n", "b.toml:2: fleetio.return_settle: 2h0m0s"},
		{"admin email", "[fleetio]\nadmin_email = \"desk\"\n", "b.toml:2: fleetio.admin_email"},
		{"admin phone", "[fleetio]\nadmin_phone = \"555-1234\"\n", "b.toml:2: fleetio.admin_phone"},
		{"fleetio unknown", "[fleetio]\napi_key = \"k\"\n", "b.toml:2: fleetio.api_key: unknown key"},
		{"bad zone", "[notify]\ntime_zone = \"Mars/Olympus\"\n", "b.toml:2: notify.time_zone"},
		{"email no host", "[notify.email]\nfrom = \"a@b.c\"\n", "b.toml:1: notify.email: host is missing"},
		{"email bad from", "[notify.email]\nhost = \"h\"\nfrom = \"nobody\"\n", "b.toml:3: notify.email.from"},
		{"email bad port", "[notify.email]\nhost = \"h\"\nport = 70000\nfrom = \"a@b.c\"\n", "b.toml:3: notify.email.port: 70000"},
		{"email starttls", "[notify.email]\nhost = \"h\"\nfrom = \"a@b.c\"\nstarttls = \"maybe\"\n", "b.toml:4: notify.email.starttls: \"maybe\""},
		{"email user without password", "[notify.email]\nhost = \"h\"\nfrom = \"a@b.c\"\nusername = \"u\"\n", "b.toml:4: notify.email.username"},
		{"email password inline", "[notify.email]\nhost = \"h\"\nfrom = \"a@b.c\"\npassword = \"p\"\n", "b.toml:4: notify.email.password: unknown key"},
		{"sms no token", "[notify.sms]\naccount_sid = \"AC\"\nfrom = \"+15551234567\"\n", "b.toml:1: notify.sms: auth_token_file is missing"},
		{"sms token inline", "[notify.sms]\nauth_token = \"x\"\n", "b.toml:2: notify.sms.auth_token: unknown key"},
		{"sms both senders", "[notify.sms]\naccount_sid = \"AC\"\nauth_token_file = \"t\"\nfrom = \"+15551234567\"\nmessaging_service_sid = \"MG\"\n", "b.toml:4: notify.sms.from: set from"},
		{"sms bad from", "[notify.sms]\naccount_sid = \"AC\"\nauth_token_file = \"t\"\nfrom = \"5551234\"\n", "b.toml:4: notify.sms.from"},
		{"admin unreachable", "[fleetio]\nadmin_email = \"d@example.com\"\n[notify.sms]\naccount_sid = \"AC\"\nauth_token_file = \"t\"\nfrom = \"+15551234567\"\n", "b.toml:2: fleetio.admin_email: the admin has no address"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig("/etc/smartbox/b.toml", []byte(tc.src))
			if err == nil {
				err = c.Validate()
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestLoadConfigMissing(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.toml"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		"", "data_dir = \"x\"\n[broker]\nlisten = \"127.0.0.1:0\"\n",
		"[broker]\nurl = \"tcp://h:1\"\npassword_file = \"p\"\n", "[[boxes]]\n", "[admin]\nlisten = \"[::1]:1\"\n",
		"[broker]\nmessage_expiry = \"48h\"\nembedded = false\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := ParseConfig("f.toml", src)
		if err != nil {
			return
		}
		_ = c.Validate()
	})
}

func TestOverdueGraceZeroIsKept(t *testing.T) {
	c, err := ParseConfig("b.toml", []byte("[fleetio]\noverdue_grace = \"0s\"\n"))
	require.NoError(t, err)
	require.NoError(t, c.Validate())
	require.Zero(t, c.Fleetio.OverdueGrace.Duration, "an explicit 0s is not the default")
}
