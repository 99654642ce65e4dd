package main

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/fleetio/fleetiotest"
	"github.com/smartbox-oss/smartbox/sync/notify/smtptest"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

const (
	flKey     = "fleetio-api-key-1234567890"
	flAccount = "acct-token-0987654321"
	flSecret  = "whsec-abcdef123456"
	flBox     = "depot-1"
	flKeyID   = "van-7-key"
)

// fleetRig is serve with the Fleetio integration configured, a fake Fleetio
// on loopback whose webhooks go to the bridge's public listener, and an SMTP
// server for the messages.
type fleetRig struct {
	b     *runningBridge
	f     *fleetiotest.Server
	mail  *smtptest.Server
	van   fleetio.Vehicle
	truck fleetio.Vehicle
	ada   fleetio.Contact
}

func startFleetRig(t *testing.T) *fleetRig {
	t.Helper()
	r := &fleetRig{mail: smtptest.Start(t)}
	host, port, err := net.SplitHostPort(r.mail.Addr)
	require.NoError(t, err)
	r.b = startBridgeWith(t, t.TempDir(), "", "admin_name = \"Fleet Desk\"\nadmin_email = \"desk@example.com\"\n"+
		"[notify.email]\nhost = \""+host+"\"\nport = "+port+"\nfrom = \"SmartBox <keys@example.com>\"\nstarttls = \"none\"\n")

	r.f = fleetiotest.New(fleetiotest.Options{APIKey: flKey, AccountToken: flAccount, WebhookSecret: flSecret,
		WebhookURL:     r.b.svc.PublicURL() + bookings.WebhookPath,
		RetryIntervals: []time.Duration{20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}})
	t.Cleanup(func() { r.f.Close() })
	_, err = r.f.Start()
	require.NoError(t, err)
	for _, k := range []string{fleetio.FieldAccessInstructions, fleetio.FieldAccessLink, fleetio.FieldAccessCode} {
		r.f.DefineCustomField(k, false)
	}
	r.van, err = r.f.AddVehicle(fleetio.Vehicle{Name: "Van 7", LicensePlate: "SB-007"})
	require.NoError(t, err)
	r.truck, err = r.f.AddVehicle(fleetio.Vehicle{Name: "Truck 2", LicensePlate: "SB-002"})
	require.NoError(t, err)
	r.ada, err = r.f.AddContact(fleetio.Contact{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com"})
	require.NoError(t, err)

	// A box with two keys, registered as a technician would.
	boxKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	out := r.b.mustCLI(t, "register-box", "--id", flBox, "--public-key", base64.StdEncoding.EncodeToString(boxKey.PublicKey().Bytes()),
		"--slots", "12", "--name", "Depot North", "--location", "12 Fleet Way, Springfield")
	require.Contains(t, out, "12 slots")
	r.b.mustCLI(t, "put-key", "--box", flBox, "--key", flKeyID, "--fob", "0100073400", "--slot", "3", "--name", "Van 7")
	r.b.mustCLI(t, "put-key", "--box", flBox, "--key", "truck-2-key", "--fob", "0100073401", "--slot", "4", "--name", "Truck 2")
	return r
}

// connect runs `fleetio connect` with a 0600 secrets file.
func (r *fleetRig) connect(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "fleetio.secrets")
	require.NoError(t, os.WriteFile(f, []byte("# from Fleetio's API keys page\napi_key = \""+flKey+"\"\naccount_token: "+flAccount+"\nwebhook_secret = "+flSecret+"\n"), 0o600))
	return r.b.mustCLI(t, "fleetio", "connect", "--secrets-file", f, "--base-url", r.f.APIURL())
}

func (r *fleetRig) adminURL(t *testing.T) string {
	t.Helper()
	addr, err := os.ReadFile(filepath.Join(r.b.dir, bridge.FileAdminAddr))
	require.NoError(t, err)
	return "http://" + strings.TrimSpace(string(addr))
}

func httpGet(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestFleetioServiceEndToEnd: the service against the fake Fleetio over real
// HTTP and a real SMTP server. Connect through the CLI, link a vehicle, and
// a signed webhook to the public listener becomes a grant in the cloud, the
// Keycafe fields in Fleetio, a mail with the PIN and a working access page;
// a Prompt vehicle waits for `fleetio book`; /metrics counts it all; no
// secret is printed or logged; disconnect refuses further webhooks.
func TestFleetioServiceEndToEnd(t *testing.T) {
	t.Parallel()
	r := startFleetRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Before connect: a signed delivery gets 503, so Fleetio retries
	// later; one without a signature is refused outright.
	req, err := http.NewRequest(http.MethodPost, r.b.svc.PublicURL()+bookings.WebhookPath, strings.NewReader(`{}`))
	require.NoError(t, err)
	req.Header.Set(fleetio.SignatureHeader, fleetio.Sign([]byte("any"), []byte(`{}`)))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	resp, err = http.Post(r.b.svc.PublicURL()+bookings.WebhookPath, "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Contains(t, r.b.mustCLI(t, "fleetio", "status"), "no")

	// Secrets in a file others can read are refused; so is a wrong key.
	loose := filepath.Join(t.TempDir(), "loose")
	require.NoError(t, os.WriteFile(loose, []byte("api_key = a\naccount_token = b\nwebhook_secret = c\n"), 0o644))
	code, _, errOut := r.b.cli(t, "fleetio", "connect", "--secrets-file", loose, "--base-url", r.f.APIURL())
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "chmod 600")
	bad := filepath.Join(t.TempDir(), "bad")
	require.NoError(t, os.WriteFile(bad, []byte("api_key = wrong-key\naccount_token = "+flAccount+"\nwebhook_secret = s\n"), 0o600))
	code, _, errOut = r.b.cli(t, "fleetio", "connect", "--secrets-file", bad, "--base-url", r.f.APIURL())
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "users/me")
	require.NotContains(t, errOut, "wrong-key")

	out := r.connect(t)
	require.Contains(t, out, "connected to Fleetio")
	require.Contains(t, out, r.b.svc.PublicURL()+bookings.WebhookPath)
	require.Contains(t, r.b.mustCLI(t, "fleetio", "status"), "yes")

	// Link: the van automatic (positional id after the flags works too),
	// the truck prompt. An unknown key is refused by name.
	r.b.mustCLI(t, "fleetio", "link", strconv.FormatInt(r.van.ID, 10), "--box", flBox, "--key", flKeyID, "--method", "automatic")
	r.b.mustCLI(t, "fleetio", "link", "--box", flBox, "--key", "truck-2-key", "--method", "prompt", strconv.FormatInt(r.truck.ID, 10))
	code, _, errOut = r.b.cli(t, "fleetio", "link", "999999", "--box", flBox, "--key", "nope")
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "nope")
	veh := r.b.mustCLI(t, "fleetio", "vehicles")
	require.Regexp(t, regexp.MustCompile(fmt.Sprintf(`%d\s+Van 7\s+SB-007\s+%s\s+%s\s+automatic`, r.van.ID, flBox, flKeyID)), veh)
	require.Regexp(t, regexp.MustCompile(fmt.Sprintf(`%d\s+Truck 2\s+SB-002\s+%s\s+truck-2-key\s+prompt`, r.truck.ID, flBox)), veh)

	// A fleet manager assigns the van: the webhook comes in signed.
	now := time.Now()
	end := now.Add(8 * time.Hour)
	a, err := r.f.CreateAssignment(fleetio.VehicleAssignment{VehicleID: r.van.ID, ContactID: r.ada.ID, StartedAt: now.Add(-time.Minute), EndedAt: &end})
	require.NoError(t, err)
	require.NoError(t, r.f.Flush(ctx))

	var pin string
	require.Eventually(t, func() bool {
		got, _ := r.f.Assignment(a.ID)
		pin, _ = got.CustomFields[fleetio.FieldAccessCode].(string)
		return len(pin) == bookings.PINLength
	}, 20*time.Second, 20*time.Millisecond, "the PIN is written back to Fleetio")
	got, _ := r.f.Assignment(a.ID)
	link, _ := got.CustomFields[fleetio.FieldAccessLink].(string)
	require.True(t, strings.HasPrefix(link, r.b.svc.PublicURL()+bookings.AccessPath), link)

	_, grants, err := r.b.svc.Cloud().Records(flBox)
	require.NoError(t, err)
	require.Len(t, grants, 1)
	require.Equal(t, bookings.GrantID(a.ID), grants[0].ID)
	require.Equal(t, bookings.GrantSource, grants[0].Source)
	require.Equal(t, []string{flKeyID}, grants[0].KeyIDs)

	require.Eventually(t, func() bool { return len(r.mail.To("ada@example.com")) == 1 }, 20*time.Second, 20*time.Millisecond, "mails %v\nlog:\n%s", r.mail.Mails(), r.b.log)
	m := r.mail.To("ada@example.com")[0].Text()
	require.Contains(t, m, pin)
	require.Contains(t, m, "Van 7")
	require.Contains(t, m, "Depot North")

	// The access page, from the link: the box's location, no PIN.
	status, page := httpGet(t, link, "")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, page, "12 Fleet Way, Springfield")
	require.NotContains(t, page, pin)

	// The truck is Prompt: a reservation, the admin mailed, then booked.
	a2, err := r.f.CreateAssignment(fleetio.VehicleAssignment{VehicleID: r.truck.ID, ContactID: r.ada.ID, StartedAt: now.Add(time.Hour), EndedAt: &end})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return strings.Contains(r.b.mustCLI(t, "fleetio", "reservations"), strconv.FormatInt(a2.ID, 10))
	}, 20*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return len(r.mail.To("desk@example.com")) == 1 }, 20*time.Second, 20*time.Millisecond)
	require.Contains(t, r.mail.To("desk@example.com")[0].Text(), fmt.Sprintf("smartbox-bridge fleetio book %d", a2.ID))
	out = r.b.mustCLI(t, "fleetio", "book", strconv.FormatInt(a2.ID, 10), "--contact", "email",
		"--until", now.Add(4*time.Hour).UTC().Format(time.RFC3339))
	require.Contains(t, out, fmt.Sprintf("booking for assignment %d", a2.ID))
	require.Eventually(t, func() bool {
		_, gs, err := r.b.svc.Cloud().Records(flBox)
		return err == nil && len(gs) == 2
	}, 20*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return len(r.mail.To("ada@example.com")) == 2 }, 20*time.Second, 20*time.Millisecond)

	// A grant of the admin's own sits beside them; bookings lists all three,
	// the integration's marked.
	r.b.mustCLI(t, "put-grant", "--box", flBox, "--grant", "cleaner", "--kind", "booking", "--code", "73914682", "--keys", "truck-2-key")
	table := r.b.mustCLI(t, "bookings", "--events")
	require.Regexp(t, regexp.MustCompile(`(?m)^`+flBox+`\s+`+regexp.QuoteMeta(bookings.GrantID(a.ID))+`\s+booking\s+`+flKeyID+`\s.*\sactive\s+yes\s+`+strconv.FormatInt(a.ID, 10)), table)
	require.Regexp(t, regexp.MustCompile(`(?m)^`+flBox+`\s+cleaner\s+booking\s+truck-2-key\s.*\sactive\s+no\s+-.*\s-$`), table)
	// No box connected: the bookings' grants wait (LIVE, the last column).
	require.Regexp(t, regexp.MustCompile(`(?m)^`+flBox+`\s+`+regexp.QuoteMeta(bookings.GrantID(a.ID))+`\s.*\snot yet \(grant at rev \d+, box not heard since\)$`), table)

	// Metrics without the token (loopback); the API wants it.
	admin := r.adminURL(t)
	status, metrics := httpGet(t, admin+"/metrics", "")
	require.Equal(t, http.StatusOK, status)
	for _, want := range []string{
		`smartbox_bridge_fleetio_webhooks_total{outcome="accepted"}`,
		`smartbox_bridge_fleetio_grants_total{action="pushed"}`,
		`smartbox_bridge_notifications_total{outcome="sent"} 3`,
		`smartbox_bridge_fleetio_connected 1`,
		`smartbox_bridge_boxes{state="unknown"} 1`,
		`smartbox_bridge_fleetio_queue_depth`,
		`smartbox_bridge_cloud_dropped_total{reason="event_oversize"} 0`,
		`smartbox_bridge_cloud_dropped_total{reason="event_over_budget"} 0`,
		`smartbox_bridge_keypad_attacks_total 0`,
		`smartbox_bridge_keypad_closures_total 0`,
		`smartbox_bridge_fleetio_returns_unconfirmed_total 0`,
		`smartbox_bridge_fleetio_webhooks_total{outcome="busy"} 0`,
		`smartbox_bridge_fleetio_not_live_alerts_total 0`,
	} {
		require.Contains(t, metrics, want)
	}
	require.Regexp(t, `smartbox_bridge_fleetio_webhooks_total\{outcome="accepted"\} [1-9]`, metrics)
	require.Regexp(t, `smartbox_bridge_replica_info\{replica="[^"]+",store="bbolt"\} 1`, metrics)
	// The box says it holds the records: live.
	rev, err := r.b.svc.Cloud().Revision(flBox)
	require.NoError(t, err)
	require.NoError(t, r.b.svc.Cloud().ReceiveStatus(flBox, wire.Status{V: wire.Version, Box: flBox, Online: true, Revision: rev}))
	table = r.b.mustCLI(t, "bookings")
	require.Regexp(t, regexp.MustCompile(`(?m)^`+flBox+`\s+`+regexp.QuoteMeta(bookings.GrantID(a.ID))+`\s.*\slive since \d{4}-\d\d-\d\d \d\d:\d\d$`), table)
	status, _ = httpGet(t, admin+"/healthz", "")
	require.Equal(t, http.StatusOK, status)
	status, _ = httpGet(t, r.b.svc.PublicURL()+"/healthz", "")
	require.Equal(t, http.StatusOK, status)
	for _, path := range []string{"/v1/fleetio/status", "/v1/bookings", "/v1/fleetio/vehicles"} {
		status, _ = httpGet(t, admin+path, "")
		require.Equal(t, http.StatusUnauthorized, status, path)
	}
	status, _ = httpGet(t, r.b.svc.PublicURL()+"/metrics", "")
	require.Equal(t, http.StatusNotFound, status, "metrics are not on the public listener")

	// Reconcile finds nothing to repair.
	require.Contains(t, r.b.mustCLI(t, "fleetio", "reconcile"), "0 repairs")

	// Disconnect: the started booking is kept, the future one revoked,
	// and webhooks are refused again.
	out = r.b.mustCLI(t, "fleetio", "disconnect")
	require.Contains(t, out, "revoked 1 booking(s) not started; kept 1 in progress")
	req, err = http.NewRequest(http.MethodPost, r.b.svc.PublicURL()+bookings.WebhookPath, strings.NewReader(`{}`))
	require.NoError(t, err)
	req.Header.Set(fleetio.SignatureHeader, fleetio.Sign([]byte("any"), []byte(`{}`)))
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)

	// No secret anywhere in what was printed or logged.
	r.b.stop(t)
	all := r.b.out + r.b.log.String() + out + table + metrics
	for _, secret := range []string{pin, flKey, flAccount, flSecret, "73914682"} {
		require.NotContains(t, all, secret)
	}
}

// TestFleetioDriverCodeFromStdin: driver-code reads the code from stdin,
// refuses a trivial one before sending it, and never prints it.
func TestFleetioDriverCodeFromStdin(t *testing.T) {
	// Not parallel: it sets the package's stdin.
	r := startFleetRig(t)
	r.connect(t)
	r.b.mustCLI(t, "fleetio", "code-mode", "driver_own")
	old := stdin
	t.Cleanup(func() { stdin = old })

	stdin = strings.NewReader("123456\n")
	code, _, errOut := r.b.cli(t, "fleetio", "driver-code", strconv.FormatInt(r.ada.ID, 10))
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "trivial")

	stdin = strings.NewReader("5830271946\n")
	out := r.b.mustCLI(t, "fleetio", "driver-code", strconv.FormatInt(r.ada.ID, 10))
	require.Contains(t, out, "set")
	require.NotContains(t, out, "5830271946")
	require.Contains(t, r.b.mustCLI(t, "fleetio", "status"), "driver_own")
	r.b.mustCLI(t, "fleetio", "driver-code", "--clear", strconv.FormatInt(r.ada.ID, 10))
	require.NotContains(t, r.b.log.String(), "5830271946")
}

// TestFleetioCLIUsage: mistakes on the command line are exit 2 with a
// message naming the argument, before anything is sent.
func TestFleetioCLIUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fleetio"}, "usage: smartbox-bridge fleetio"},
		{[]string{"fleetio", "fly"}, "unknown command"},
		{[]string{"fleetio", "link", "--data", dir, "--box", "b", "--key", "k"}, "missing VEHICLE"},
		{[]string{"fleetio", "link", "--data", dir, "abc", "--box", "b", "--key", "k"}, `VEHICLE "abc"`},
		{[]string{"fleetio", "link", "--data", dir, "7", "--box", "b", "--key", "k", "--method", "sometimes"}, `--method "sometimes"`},
		{[]string{"fleetio", "book", "--data", dir, "7", "--contact", "pigeon"}, `--contact "pigeon"`},
		{[]string{"fleetio", "book", "--data", dir, "7", "--from", "tomorrow"}, `--from "tomorrow"`},
		{[]string{"fleetio", "code-mode", "--data", dir, "always"}, `code mode "always"`},
		{[]string{"fleetio", "unlink", "--data", dir, "1", "2"}, `unexpected argument "2"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), tc.args, &out, &errOut)
			require.Equal(t, exitUsage, code, errOut.String())
			require.Contains(t, errOut.String(), tc.want)
		})
	}
}

// TestReadSecrets: the secrets file's format and its errors, which name the
// line but never a value.
func TestReadSecrets(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, src, want string
	}{
		{"ok", "api_key = k\naccount_token: 't'\nwebhook_secret = \"s\"\nauthorization = Bearer x\n", ""},
		{"missing", "api_key = k\n", "missing account_token, webhook_secret"},
		{"unknown", "api_key = k\napi_secret = hush\n", `:2: unknown name "api_secret"`},
		{"no equals", "api_key k-value\n", ":1: want"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "s")
			require.NoError(t, os.WriteFile(f, []byte(tc.src), 0o600))
			got, err := readSecrets(f)
			if tc.want == "" {
				require.NoError(t, err)
				require.Equal(t, map[string]string{"api_key": "k", "account_token": "t", "webhook_secret": "s", "authorization": "Bearer x"}, got)
				return
			}
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), "hush")
			require.NotContains(t, err.Error(), "k-value")
		})
	}
}
