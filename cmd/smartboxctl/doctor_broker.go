package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Bounds of the doctor's own attempt at the broker, each step on its own:
// a broker that is up answers each in well under a second, even over a
// mobile uplink; longer is the finding.
const (
	brokerDNSWait     = 5 * time.Second
	brokerDialWait    = 5 * time.Second
	brokerTLSWait     = 5 * time.Second
	brokerConnackWait = 5 * time.Second
	// mqttKeepAlive is the keep-alive the CONNECT asks for; the connection
	// ends right after the CONNACK anyway.
	mqttKeepAlive = 30
)

// CONNACK return codes of MQTT 3.1.1 (section 3.2.2.3), in words.
var connackReasons = map[byte]string{
	1: "unacceptable protocol version (the broker does not speak MQTT 3.1.1)",
	2: "client identifier rejected",
	3: "server unavailable",
	4: "bad user name or password",
	5: "not authorised",
}

// checkBroker checks the way to the broker. While smartboxd is connected,
// its word is taken: a second connection with the box's client id would
// take the box's session from it (the broker allows one connection per
// client id, and requires the box's own id). Otherwise the doctor tries
// itself, step by step (DNS, TCP, TLS, MQTT CONNECT with the config's
// credentials and the box's id, as the box does), and says at which step
// and why it failed. The attempt asks for the box's persistent session
// (clean session off) and leaves right after the CONNACK with DISCONNECT,
// acknowledging nothing: what the broker queued for the box stays queued.
func (d *doctor) checkBroker(ctx context.Context) {
	switch {
	case d.cfg == nil:
		d.skipped("broker", "no valid config")
		return
	case d.cfg.Cloud == nil:
		d.skipped("broker", "offline-only box (no [cloud])")
		return
	case d.status != nil && d.status.Cloud == "connected":
		d.ok("broker", "smartboxd is connected to %s", d.cfg.Cloud.BrokerURL)
		return
	case d.creds == nil:
		d.skipped("broker", "[cloud]'s credentials do not load (see the config finding)")
		return
	}
	cc := d.cfg.Cloud
	what, fix := tryBroker(ctx, cc.BrokerURL, d.cfg.BoxID, cc.Username, d.creds.Password, d.creds.TLS)
	if fix == "" {
		if d.status != nil {
			d.ok("broker", "%s (smartboxd says %q: it should connect at its next retry, within half a minute)", what, d.status.Cloud)
			return
		}
		d.ok("broker", "%s", what)
		return
	}
	d.problem("broker", what, fix)
}

// tryBroker connects to brokerURL as the box would. It returns what
// happened and, on a failure, what to do (fix "" is success).
func tryBroker(ctx context.Context, brokerURL, boxID, user, password string, tlsCfg *tls.Config) (what, fix string) {
	u, err := url.Parse(brokerURL)
	if err != nil {
		return fmt.Sprintf("broker_url %q: %v", brokerURL, err), "fix cloud.broker_url"
	}
	host, port := u.Hostname(), u.Port()
	addr := net.JoinHostPort(host, port)
	if net.ParseIP(host) == nil {
		dctx, cancel := context.WithTimeout(ctx, brokerDNSWait)
		_, err := net.DefaultResolver.LookupHost(dctx, host)
		cancel()
		if err != nil {
			return dnsProblem(host, err)
		}
	}
	dialer := net.Dialer{Timeout: brokerDialWait}
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return dialProblem(addr, err)
	}
	defer conn.Close()
	secure := slices.Contains([]string{"ssl", "tls", "mqtts", "wss"}, u.Scheme)
	if secure {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if tlsCfg != nil {
			cfg = tlsCfg.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		tc := tls.Client(conn, cfg)
		tctx, cancel := context.WithTimeout(ctx, brokerTLSWait)
		err := tc.HandshakeContext(tctx)
		cancel()
		if err != nil {
			return tlsProblem(addr, host, err, cfg)
		}
		conn = tc
	}
	how := "TCP"
	if secure {
		how = "TLS"
	}
	if strings.HasPrefix(u.Scheme, "ws") {
		return fmt.Sprintf("%s answers over %s; MQTT over WebSocket is not tried here", addr, how), ""
	}
	rc, err := mqttConnect(conn, boxID, user, password)
	if err != nil {
		return mqttProblem(addr, err, secure)
	}
	if rc != 0 {
		reason := connackReasons[rc]
		if reason == "" {
			reason = "an unknown code"
		}
		what := fmt.Sprintf("the broker at %s refused the box's login as user %q, client id %q: CONNACK %d, %s", addr, user, boxID, rc, reason)
		switch rc {
		case 4:
			return what, "cloud.password_file must hold the password the broker has for this box: ask the bridge's admin for it, or provision the box again"
		case 5:
			// mochi (the bridge's embedded broker) answers a wrong password
			// with 5 too.
			return what, "cloud.password_file must hold the password the broker has for this box (ask the bridge's admin, or provision the box again); with a client certificate, its CN must be the box id and the bridge must know the box"
		case 2:
			return what, "the broker refuses the box id as a client id: box_id must be the id the bridge registered"
		default:
			return what, "check the broker's logs; the box retries by itself"
		}
	}
	return fmt.Sprintf("logged in at %s over %s as %q (CONNACK 0), then left", addr, how, user), ""
}

func dnsProblem(host string, err error) (string, string) {
	var de *net.DNSError
	fix := "check cloud.broker_url's host name, and the box's network and DNS (/etc/resolv.conf)"
	switch {
	case errors.As(err, &de) && de.IsNotFound:
		return fmt.Sprintf("DNS: the broker's host %q is not known (%v)", host, err), fix
	case errors.As(err, &de) && de.IsTimeout, errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("DNS: no answer for the broker's host %q within %s", host, brokerDNSWait), "check the box's network and its DNS server (/etc/resolv.conf)"
	}
	return fmt.Sprintf("DNS: looking up the broker's host %q: %v", host, err), fix
}

func dialProblem(addr string, err error) (string, string) {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("connection refused at %s: nothing listens there", addr),
			"check the broker runs and cloud.broker_url's port (8883 for TLS, 1883 plain)"
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("no answer from %s within %s", addr, brokerDialWait),
			"a firewall drops the connection, the host is wrong or down, or the box's network is: check each"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return fmt.Sprintf("no route to %s: %v", addr, err), "check the box's network (cable, Wi-Fi, gateway)"
	}
	return fmt.Sprintf("connecting to %s: %v", addr, err), "check the box's network and cloud.broker_url"
}

func tlsProblem(addr, host string, err error, cfg *tls.Config) (string, string) {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var oe *net.OpError
	switch {
	case errors.As(err, &ua):
		issuer := ""
		if ua.Cert != nil {
			issuer = fmt.Sprintf(" (issued by %q)", ua.Cert.Issuer.String())
		}
		trust := "the system's CAs"
		if cfg.RootCAs != nil {
			trust = "cloud.ca_file"
		}
		return fmt.Sprintf("TLS: the broker's certificate at %s%s is not signed by a CA the box trusts (%s)", addr, issuer, trust),
			"set cloud.ca_file to the bridge's CA (provisioning writes it), or fix the broker's certificate chain"
	case errors.As(err, &he):
		names := "no DNS names"
		if he.Certificate != nil && len(he.Certificate.DNSNames)+len(he.Certificate.IPAddresses) > 0 {
			var n []string
			n = append(n, he.Certificate.DNSNames...)
			for _, ip := range he.Certificate.IPAddresses {
				n = append(n, ip.String())
			}
			names = strings.Join(n, ", ")
		}
		return fmt.Sprintf("TLS: the broker's certificate at %s is for %s, not %q", addr, names, host),
			"set cloud.broker_url's host to a name the certificate has, or give the broker a certificate for this name"
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		validity := ""
		if ci.Cert != nil {
			validity = fmt.Sprintf(" (valid %s to %s)", ci.Cert.NotBefore.UTC().Format(time.RFC3339), ci.Cert.NotAfter.UTC().Format(time.RFC3339))
		}
		return fmt.Sprintf("TLS: the broker's certificate at %s has expired or is not valid yet%s; the box clock says %s", addr, validity,
				time.Now().UTC().Format(time.RFC3339)),
			"if the box clock is wrong, set it (see the clock finding); else renew the broker's certificate"
	case errors.As(err, &oe) && oe.Op == "remote error":
		return fmt.Sprintf("TLS: the broker at %s refused the box's client certificate: %v", addr, oe.Err), clientCertFix
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("TLS: no handshake from %s within %s", addr, brokerTLSWait), "check the port is the broker's TLS listener"
	case strings.Contains(err.Error(), "first record does not look like a TLS handshake"):
		return fmt.Sprintf("TLS: %s does not speak TLS (a plain MQTT port?)", addr), "use the broker's TLS port (8883), or tcp:// for a plain listener on this machine"
	}
	return fmt.Sprintf("TLS handshake with %s: %v", addr, err), "check cloud.ca_file, cert_file and key_file, and the broker's TLS settings"
}

const clientCertFix = "the broker does not accept cloud.cert_file: provision the box again (the bridge signs a new certificate), or check the broker trusts the bridge's CA"

func mqttProblem(addr string, err error, secure bool) (string, string) {
	var oe *net.OpError
	var ne net.Error
	switch {
	case secure && errors.As(err, &oe) && oe.Op == "remote error":
		// TLS 1.3: a refused client certificate shows on the first read.
		return fmt.Sprintf("TLS: the broker at %s refused the box's client certificate: %v", addr, oe.Err), clientCertFix
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("MQTT: no CONNACK from %s within %s: is it an MQTT broker?", addr, brokerConnackWait), "check cloud.broker_url's port"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		what := fmt.Sprintf("MQTT: the broker at %s closed the connection without answering the box's CONNECT", addr)
		if secure {
			return what, "its log says why: often a client certificate it does not accept (" + clientCertFix + ")"
		}
		return what, "its log says why (a refused login, a banned client)"
	}
	return fmt.Sprintf("MQTT: CONNECT to %s: %v", addr, err), "check the broker's logs"
}

// mqttConnect sends an MQTT 3.1.1 CONNECT (clean session off, no will) on
// conn, reads the CONNACK and leaves with DISCONNECT. It returns the
// CONNACK's return code.
func mqttConnect(conn net.Conn, clientID, user, password string) (byte, error) {
	var vh []byte
	vh = appendMQTTString(vh, "MQTT")
	flags := byte(0)
	if user != "" {
		flags |= 0x80
	}
	if password != "" {
		flags |= 0x40
	}
	vh = append(vh, 4, flags) // protocol level 4 = 3.1.1
	vh = binary.BigEndian.AppendUint16(vh, mqttKeepAlive)
	vh = appendMQTTString(vh, clientID)
	if user != "" {
		vh = appendMQTTString(vh, user)
	}
	if password != "" {
		vh = appendMQTTString(vh, password)
	}
	pkt := append([]byte{0x10}, remainingLength(len(vh))...)
	pkt = append(pkt, vh...)
	_ = conn.SetDeadline(time.Now().Add(brokerConnackWait))
	if _, err := conn.Write(pkt); err != nil {
		return 0, err
	}
	var ack [4]byte
	if _, err := io.ReadFull(bufio.NewReader(conn), ack[:]); err != nil {
		return 0, err
	}
	if ack[0] != 0x20 || ack[1] != 2 {
		return 0, fmt.Errorf("the answer to CONNECT is not a CONNACK (% x)", ack[:])
	}
	if ack[3] == 0 {
		_, _ = conn.Write([]byte{0xe0, 0}) // DISCONNECT: the session stays, no will
	}
	return ack[3], nil
}

func appendMQTTString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// remainingLength is MQTT's variable-length integer.
func remainingLength(n int) []byte {
	var out []byte
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		out = append(out, d)
		if n == 0 {
			return out
		}
	}
}
