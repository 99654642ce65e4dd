package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/tomlconf"
	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/cloud"
	"github.com/smartbox-oss/smartbox/sync/notify"
	"github.com/smartbox-oss/smartbox/sync/pgdb"
)

// DefaultConfigPath is where smartbox-bridge looks for its config.
const DefaultConfigPath = "/etc/smartbox/smartbox-bookings.toml"

// DefaultDataDir holds the stores (cloud.db, bookings.db, boxes.db), broker
// data and keys when the config names no data_dir.
const DefaultDataDir = "/var/lib/smartbox-bridge"

// Defaults for fields left out of the file.
const (
	defaultListen      = "127.0.0.1:1883"
	defaultAdminListen = "127.0.0.1:8480"
	defaultPublic      = "127.0.0.1:8490"
	// minReconcile keeps a typo ("15s") from spending the account's API
	// rate limit (Fleetio counts requests per minute per account).
	minReconcile = time.Minute
	// defaultOverdueGrace: a key brought back a few minutes late is not
	// worth an "overdue" message to the driver and the admin.
	defaultOverdueGrace = 10 * time.Minute
	maxOverdueGrace     = 24 * time.Hour
	// maxFleetioPerMinute and maxFleetioBurst bound the Fleetio request
	// budget: 6,000 a minute is 100 a second, past what any API account
	// is allowed; a burst beyond 1,000 is no budget at all.
	maxFleetioPerMinute = 6000
	maxFleetioBurst     = 1000
	defaultSMTPPort     = 587
	// minWebhookBody and maxWebhookBody bound fleetio.max_body: below 4 KiB
	// a delivery with a few custom fields would be refused; above 1 MiB the
	// webhook's bodies in flight (bookings.DefaultMaxBodiesInFlight) could
	// hold 32 MiB for clients that have not yet shown a valid signature.
	// maxReturnSettle: a key is seated in a second or two; a longer settle
	// would leave genuine returns unconfirmed.
	maxReturnSettle = time.Minute
	minWebhookBody  = 4 << 10
	maxWebhookBody  = 1 << 20
)

// Config is smartbox-bridge's TOML config file. See
// cmd/smartbox-bridge/smartbox-bookings.example.toml for the documented version of every
// field. Boxes are not in the config: they live in the store (register-box).
type Config struct {
	// Replica names this process among the replicas on one database (the
	// logs, the metrics, the rounds of periodic work, the queue's claims,
	// the MQTT client id); default the host name.
	Replica string        `toml:"replica"`
	DataDir string        `toml:"data_dir"`
	Broker  BrokerConfig  `toml:"broker"`
	Admin   AdminConfig   `toml:"admin"`
	Cloud   CloudConfig   `toml:"cloud"`
	Store   StoreConfig   `toml:"store"`
	Fleetio FleetioConfig `toml:"fleetio"`
	Notify  NotifyConfig  `toml:"notify"`

	// file is where the config came from, for error messages that name
	// the line of a field.
	file tomlconf.File
}

// BrokerConfig is either the embedded broker (the default) or an external
// one by URL.
type BrokerConfig struct {
	// Embedded is a pointer so that "not written" (default: embedded unless
	// url is set) differs from an explicit false.
	Embedded *bool `toml:"embedded"`

	// Embedded broker.
	Listen        string   `toml:"listen"`
	ListenTLS     string   `toml:"listen_tls"`
	CertFile      string   `toml:"cert_file"`
	KeyFile       string   `toml:"key_file"`
	ClientCAFile  string   `toml:"client_ca_file"`
	MessageExpiry Duration `toml:"message_expiry"`
	// TLSNames are the host names and addresses of the certificate the
	// bridge's CA issues the TLS listener when cert_file is not set
	// (default: listen_tls's host, localhost, 127.0.0.1, ::1): the names
	// boxes dial.
	TLSNames []string `toml:"tls_names"`
	// BoxURL is the broker URL new boxes are given (GET /v1/provisioning,
	// smartboxctl provision), e.g. "ssl://bridge.depot.example:8883";
	// default: ssl:// and listen_tls.
	BoxURL string `toml:"box_url"`

	// External broker.
	URL            string `toml:"url"`
	CAFile         string `toml:"ca_file"`
	ClientCertFile string `toml:"client_cert_file"`
	ClientKeyFile  string `toml:"client_key_file"`
	// Insecure allows a password login over a plain tcp:// (or ws://) url
	// to a host other than this machine; without it that is refused, as
	// the cloud's password, which reads and writes every box's topics,
	// would cross the network in clear.
	Insecure bool `toml:"insecure"`

	// The cloud's account, either way.
	Username     string `toml:"username"`
	PasswordFile string `toml:"password_file"`
	ClientID     string `toml:"client_id"`
	// ShareGroup subscribes the cloud to the boxes' topics as
	// $share/<group>/..., so that each box message reaches one replica;
	// default "smartbox-bridge" with [store] and an external broker.
	ShareGroup string `toml:"share_group"`
}

// AdminConfig is the local admin HTTP endpoint the CLI subcommands use.
type AdminConfig struct {
	Listen string `toml:"listen"`
}

// CloudConfig tunes the cloud store.
type CloudConfig struct {
	// CodeKeyFile holds the 32-byte key (64 hex digits) that encrypts codes
	// at rest; "" keeps a random key in cloud.db (see sync/cloud Caveats).
	CodeKeyFile string `toml:"code_key_file"`
	LogLimit    int    `toml:"log_limit"`
}

// StoreConfig says where the bridge keeps its data: bbolt files in
// data_dir (neither field: one process, the default), or a PostgreSQL
// database that several replicas share. The URL names the database; its
// password goes in url_file (0600) or in PostgreSQL's own ~/.pgpass,
// never in this file.
type StoreConfig struct {
	URL     string `toml:"url"`
	URLFile string `toml:"url_file"`
	// MaxConns bounds this replica's connections to the database (0:
	// pgdb.DefaultMaxConns).
	MaxConns int `toml:"max_conns"`
}

// defaultShareGroup is the replicas' share group when none is given.
// maxShareGroup bounds broker.share_group: a topic level, short.
const (
	defaultShareGroup = "smartbox-bridge"
	maxShareGroup     = 64
)

// defaultReplica is the host name (a replica per machine), or "bridge".
func defaultReplica() string {
	h, err := os.Hostname()
	if err != nil || !box.ValidID(h) {
		return "bridge"
	}
	return h
}

// maxStoreConns bounds store.max_conns: PostgreSQL's default
// max_connections is 100, and every connection is a server process.
const maxStoreConns = 200

// FleetioConfig is the Fleetio integration's public side: the listener
// Fleetio's webhooks and the drivers' access pages reach, and who is told
// about Prompt reservations and overdue keys. The connection secrets are
// not here: `smartbox-bridge fleetio connect` stores them (0600).
type FleetioConfig struct {
	// PublicListen serves POST /webhooks/fleetio, GET /access/{token} and
	// GET /healthz. Put it behind a TLS reverse proxy: Fleetio wants https.
	PublicListen string `toml:"public_listen"`
	// PublicURL is the base of the links drivers get and the webhook URL to
	// give Fleetio, e.g. "https://keys.example.com". Default: http:// and
	// the listener's address (fine for a demo only).
	PublicURL      string   `toml:"public_url"`
	ReconcileEvery Duration `toml:"reconcile_every"`
	// OverdueGrace is how long past a booking's end a key may still be out
	// before it is overdue (default 10m; "0s" raises it at the end). A
	// pointer, so that an explicit "0s" differs from not written.
	OverdueGrace *Duration `toml:"overdue_grace"`
	AdminName    string    `toml:"admin_name"`
	AdminEmail   string    `toml:"admin_email"`
	AdminPhone   string    `toml:"admin_phone"`
	// ReturnSettle is how long a fob return's slot sensor must have seen
	// the key seated for an overdue key to count as back (default 2s, the
	// box's own return settle time; "0s" or not written: the default).
	ReturnSettle Duration `toml:"return_settle"`
	// MaxBody bounds one webhook delivery in bytes (default
	// bookings.DefaultMaxBody, 64 KiB; at most maxWebhookBody).
	MaxBody int64 `toml:"max_body"`
	// MaxBodiesPerAddress bounds the webhook bodies one client address
	// has being read at once (default bookings.DefaultMaxBodiesPerAddress;
	// 1..bookings.DefaultMaxBodiesInFlight).
	MaxBodiesPerAddress int `toml:"max_bodies_per_address"`
	// TrustedProxies are the reverse proxies in front of PublicListen
	// (addresses or CIDRs) whose X-Forwarded-For is believed, so that the
	// webhook's share per address is the client's, not the proxy's.
	TrustedProxies []string `toml:"trusted_proxies"`
	// RequestsPerMinute and RequestBurst size the bridge's own budget of
	// Fleetio requests (read-backs, custom-field write-backs, contact
	// lookups, reconcile's lists), one token bucket shared by every
	// replica on PostgreSQL. Fleetio publishes no limit (an older page
	// says 20 a minute): set it to the account's. Default
	// bookings.DefaultFleetioPerMinute (300) and DefaultFleetioBurst (30);
	// at most maxFleetioPerMinute and maxFleetioBurst. PINs never wait on
	// it: they go live from the signed webhook.
	RequestsPerMinute int `toml:"requests_per_minute"`
	RequestBurst      int `toml:"request_burst"`
}

// NotifyConfig says how drivers and the admin are told: email, SMS, or both
// (the booking's contact method picks).
type NotifyConfig struct {
	// TemplatesDir overrides built-in templates ("<kind>.<method>.tmpl").
	TemplatesDir string `toml:"templates_dir"`
	// TimeZone (IANA) shows booking times in that zone; "" keeps the offset
	// Fleetio gave them (the account's zone).
	TimeZone string       `toml:"time_zone"`
	Email    *EmailConfig `toml:"email"`
	SMS      *SMSConfig   `toml:"sms"`
}

// EmailConfig is the SMTP submission server.
type EmailConfig struct {
	Host         string `toml:"host"`
	Port         int    `toml:"port"`
	From         string `toml:"from"`
	Username     string `toml:"username"`
	PasswordFile string `toml:"password_file"`
	// StartTLS is "require" (default), "opportunistic" or "none".
	StartTLS string `toml:"starttls"`
}

// SMSConfig is an SMS gateway with Twilio's Messages API shape.
type SMSConfig struct {
	BaseURL             string `toml:"base_url"`
	AccountSID          string `toml:"account_sid"`
	AuthTokenFile       string `toml:"auth_token_file"`
	From                string `toml:"from"`
	MessagingServiceSID string `toml:"messaging_service_sid"`
}

// IsEmbedded says whether the bridge runs its own broker: unless told not to,
// or given an external broker's url.
func (b *BrokerConfig) IsEmbedded() bool { return b.URL == "" && (b.Embedded == nil || *b.Embedded) }

// Duration is a duration written as a string with a unit ("720h"); a bare
// number (toml's nanoseconds) is refused.
type Duration = tomlconf.Duration[durationExamples]

// durationExamples fit the bridge's durations in Duration's error message.
type durationExamples struct{}

func (durationExamples) DurationExamples() string { return `"720h"` }

// LoadConfig reads, decodes and validates the config file at path.
func LoadConfig(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := ParseConfig(path, src)
	if err != nil {
		return nil, err
	}
	return c, c.Validate()
}

// ParseConfig decodes src strictly (unknown keys are errors) and fills
// defaults. Call Validate once command-line overrides are applied. Errors
// name the file, the line where known, and the field.
func ParseConfig(path string, src []byte) (*Config, error) {
	c := &Config{file: tomlconf.File{Path: path, Src: src}}
	md, err := c.file.Decode(c)
	if err != nil {
		return nil, err
	}
	if und := md.Undecoded(); len(und) > 0 {
		if k := und[0].String(); k == "boxes" || strings.HasPrefix(k, "boxes.") {
			return nil, c.fieldErr("boxes", "boxes are not configured here: they live in the store (smartbox-bridge register-box)")
		}
	}
	if err := c.file.UnknownKey(md, "smartbox-bridge"); err != nil {
		return nil, err
	}
	c.fillDefaults()
	return c, nil
}

func (c *Config) fillDefaults() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	b := &c.Broker
	// The embedded broker always has a plain listener: the bridge's own
	// cloud client connects there (keep it on loopback when boxes use TLS).
	if b.IsEmbedded() && b.URL == "" && b.Listen == "" {
		b.Listen = defaultListen
	}
	if b.Username == "" {
		b.Username = bridge.DefaultCloudUser
	}
	if c.Replica == "" {
		c.Replica = defaultReplica()
	}
	if b.ShareGroup == "" && b.URL != "" && (c.Store.URL != "" || c.Store.URLFile != "") {
		b.ShareGroup = defaultShareGroup
	}
	if b.ClientID == "" {
		// Replicas each hold a session of their own at the broker: one
		// client id for two would have them take it from each other.
		b.ClientID = cloud.DefaultClientID
		if b.ShareGroup != "" {
			b.ClientID = cloud.DefaultClientID + "-" + c.Replica
		}
	}
	if c.Admin.Listen == "" {
		c.Admin.Listen = defaultAdminListen
	}
	f := &c.Fleetio
	if f.PublicListen == "" {
		f.PublicListen = defaultPublic
	}
	if f.ReconcileEvery.Duration == 0 {
		f.ReconcileEvery.Duration = bridge.DefaultReconcileEvery
	}
	if f.OverdueGrace == nil {
		f.OverdueGrace = &Duration{Duration: defaultOverdueGrace}
	}
	if f.MaxBody == 0 {
		f.MaxBody = bookings.DefaultMaxBody
	}
	if f.MaxBodiesPerAddress == 0 {
		f.MaxBodiesPerAddress = bookings.DefaultMaxBodiesPerAddress
	}
	if f.RequestsPerMinute == 0 {
		f.RequestsPerMinute = bookings.DefaultFleetioPerMinute
	}
	if f.RequestBurst == 0 {
		f.RequestBurst = min(bookings.DefaultFleetioBurst, f.RequestsPerMinute)
	}
	if e := c.Notify.Email; e != nil {
		if e.Port == 0 {
			e.Port = defaultSMTPPort
		}
		if e.StartTLS == "" {
			e.StartTLS = string(notify.TLSRequire)
		}
	}
}

// Validate checks every field before anything is opened or listened on.
func (c *Config) Validate() error {
	b := &c.Broker
	if b.URL != "" && b.Embedded != nil && *b.Embedded {
		return c.fieldErr("broker.url", "is for an external broker, but broker.embedded = true: set embedded = false or drop url")
	}
	if !b.IsEmbedded() && b.URL == "" {
		return c.fieldErr("broker.embedded", "false needs broker.url (e.g. \"tcp://broker:1883\" or \"ssl://broker:8883\")")
	}
	if b.URL != "" {
		if err := c.validateExternal(); err != nil {
			return err
		}
	} else if err := c.validateEmbedded(); err != nil {
		return err
	}
	if err := c.validateBoxURL(); err != nil {
		return err
	}
	if !box.ValidID(b.Username) {
		return c.fieldErr("broker.username", "%q is not a valid user name: want 1-128 letters, digits or ._:@-", b.Username)
	}
	if strings.ContainsAny(b.ClientID, "+#/") || b.ClientID == "" {
		return c.fieldErr("broker.client_id", "%q is not a usable MQTT client id", b.ClientID)
	}
	if !box.ValidID(c.Replica) {
		return c.fieldErr("replica", "%q is not a valid replica name: want 1-128 letters, digits or ._:@-", c.Replica)
	}
	if g := b.ShareGroup; g != "" && (strings.ContainsAny(g, "+#/$") || len(g) > maxShareGroup) {
		return c.fieldErr("broker.share_group", "%q is not a share group name: want 1-%d characters, none of + # / $", g, maxShareGroup)
	}
	if err := c.validateLoopback("admin.listen", c.Admin.Listen); err != nil {
		return err
	}
	if c.Cloud.LogLimit < 0 {
		return c.fieldErr("cloud.log_limit", "%d is negative", c.Cloud.LogLimit)
	}
	if err := c.validateStore(); err != nil {
		return err
	}
	if err := c.validateFleetio(); err != nil {
		return err
	}
	return c.validateNotify()
}

func (c *Config) validateFleetio() error {
	f := &c.Fleetio
	if err := c.hostPort("fleetio.public_listen", f.PublicListen); err != nil {
		return err
	}
	if f.PublicURL != "" {
		u, err := url.Parse(f.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return c.fieldErr("fleetio.public_url", "%q is not a base URL like \"https://keys.example.com\"", f.PublicURL)
		}
	}
	if d := f.ReconcileEvery.Duration; d < minReconcile {
		return c.fieldErr("fleetio.reconcile_every", "%s is shorter than %s: each round reads every assignment from Fleetio", d, minReconcile)
	}
	if d := f.OverdueGrace.Duration; d < 0 || d > maxOverdueGrace {
		return c.fieldErr("fleetio.overdue_grace", "%s: want 0s..%s", d, maxOverdueGrace)
	}
	if d := f.ReturnSettle.Duration; d < 0 || d > maxReturnSettle {
		return c.fieldErr("fleetio.return_settle", "%s: want 0s..%s", d, maxReturnSettle)
	}
	if f.MaxBody < minWebhookBody || f.MaxBody > maxWebhookBody {
		return c.fieldErr("fleetio.max_body", "%d bytes: want %d..%d (a delivery is a few KB)", f.MaxBody, minWebhookBody, maxWebhookBody)
	}
	if n := f.MaxBodiesPerAddress; n < 1 || n > bookings.DefaultMaxBodiesInFlight {
		return c.fieldErr("fleetio.max_bodies_per_address", "%d: want 1..%d", n, bookings.DefaultMaxBodiesInFlight)
	}
	if n := f.RequestsPerMinute; n < 1 || n > maxFleetioPerMinute {
		return c.fieldErr("fleetio.requests_per_minute", "%d: want 1..%d", n, maxFleetioPerMinute)
	}
	if n := f.RequestBurst; n < 1 || n > maxFleetioBurst || n > f.RequestsPerMinute {
		return c.fieldErr("fleetio.request_burst", "%d: want 1..%d and at most requests_per_minute (%d)",
			n, maxFleetioBurst, f.RequestsPerMinute)
	}
	if _, err := f.trustedProxies(); err != nil {
		return c.fieldErr("fleetio.trusted_proxies", "%v", err)
	}
	if f.AdminEmail != "" {
		if _, err := mail.ParseAddress(f.AdminEmail); err != nil {
			return c.fieldErr("fleetio.admin_email", "%q is not an email address", f.AdminEmail)
		}
	}
	if f.AdminPhone != "" && !validPhone(f.AdminPhone) {
		return c.fieldErr("fleetio.admin_phone", "%q is not an E.164 number like \"+15551234567\"", f.AdminPhone)
	}
	return nil
}

func (c *Config) validateNotify() error {
	n := &c.Notify
	if n.TimeZone != "" {
		if _, err := time.LoadLocation(n.TimeZone); err != nil {
			return c.fieldErr("notify.time_zone", "%q is not an IANA time zone like \"America/Chicago\"", n.TimeZone)
		}
	}
	if e := n.Email; e != nil {
		if e.Host == "" {
			return c.fieldErr("notify.email", "host is missing: the SMTP submission server's name")
		}
		if e.Port < 1 || e.Port > 65535 {
			return c.fieldErr("notify.email.port", "%d is not a port", e.Port)
		}
		if _, err := mail.ParseAddress(e.From); err != nil {
			return c.fieldErr("notify.email.from", "%q is not an address like \"SmartBox <keys@example.com>\"", e.From)
		}
		if (e.Username == "") != (e.PasswordFile == "") {
			return c.fieldErr("notify.email.username", "username and password_file go together (AUTH PLAIN)")
		}
		switch notify.TLSMode(e.StartTLS) {
		case notify.TLSRequire, notify.TLSOpportunistic, notify.TLSNone:
		default:
			return c.fieldErr("notify.email.starttls", "%q: want \"require\", \"opportunistic\" or \"none\"", e.StartTLS)
		}
	}
	if s := n.SMS; s != nil {
		if s.AccountSID == "" {
			return c.fieldErr("notify.sms", "account_sid is missing")
		}
		if s.AuthTokenFile == "" {
			return c.fieldErr("notify.sms", "auth_token_file is missing: the gateway's auth token, in a file (0600)")
		}
		if (s.From == "") == (s.MessagingServiceSID == "") {
			return c.fieldErr("notify.sms.from", "set from (an E.164 number) or messaging_service_sid, one of the two")
		}
		if s.From != "" && !validPhone(s.From) {
			return c.fieldErr("notify.sms.from", "%q is not an E.164 number like \"+15551234567\"", s.From)
		}
		if s.BaseURL != "" {
			if u, err := url.Parse(s.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return c.fieldErr("notify.sms.base_url", "%q is not a URL like \"https://api.twilio.com\"", s.BaseURL)
			}
		}
	}
	// The admin must be reachable by a configured channel, or Prompt
	// reservations would fail to be announced, over and over.
	f := &c.Fleetio
	byMail, bySMS := f.AdminEmail != "" && n.Email != nil, f.AdminPhone != "" && n.SMS != nil
	if (f.AdminEmail != "" || f.AdminPhone != "") && !byMail && !bySMS && (n.Email != nil || n.SMS != nil) {
		return c.fieldErr("fleetio.admin_email", "the admin has no address for the channels configured ([notify.email] needs admin_email, [notify.sms] admin_phone)")
	}
	return nil
}

// trustedProxies parses TrustedProxies: each an address (one host) or a
// CIDR prefix.
func (f *FleetioConfig) trustedProxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range f.TrustedProxies {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%q is not an address or CIDR like \"10.0.0.5\" or \"10.0.0.0/24\"", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// validPhone is a loose E.164 check: "+" and 7 to 15 digits.
func validPhone(s string) bool {
	d, ok := strings.CutPrefix(s, "+")
	if !ok || len(d) < 7 || len(d) > 15 {
		return false
	}
	for _, r := range d {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func (c *Config) validateEmbedded() error {
	b := &c.Broker
	for _, f := range []struct{ field, v string }{
		{"broker.ca_file", b.CAFile}, {"broker.client_cert_file", b.ClientCertFile}, {"broker.client_key_file", b.ClientKeyFile},
	} {
		if f.v != "" {
			return c.fieldErr(f.field, "is for an external broker (broker.url); the embedded broker uses cert_file, key_file and client_ca_file")
		}
	}
	if err := c.hostPort("broker.listen", b.Listen); err != nil {
		return err
	}
	if b.ListenTLS != "" {
		if err := c.hostPort("broker.listen_tls", b.ListenTLS); err != nil {
			return err
		}
		if (b.CertFile == "") != (b.KeyFile == "") {
			return c.fieldErr("broker.cert_file", "and broker.key_file go together (or leave both out: the bridge's CA issues the certificate)")
		}
		if b.CertFile != "" && len(b.TLSNames) > 0 {
			return c.fieldErr("broker.tls_names", "is for the certificate the bridge's CA issues; broker.cert_file names its own")
		}
		for i, n := range b.TLSNames {
			if n == "" || strings.ContainsAny(n, " /:") && net.ParseIP(n) == nil {
				return c.fieldErr("broker.tls_names", "entry %d %q: want a host name or an IP address", i+1, n)
			}
		}
	} else {
		for _, f := range []struct{ field, v string }{
			{"broker.cert_file", b.CertFile}, {"broker.key_file", b.KeyFile}, {"broker.client_ca_file", b.ClientCAFile},
		} {
			if f.v != "" {
				return c.fieldErr(f.field, "is set but broker.listen_tls is not: TLS files need a TLS listener")
			}
		}
	}
	if d := b.MessageExpiry.Duration; d != 0 && d < 24*time.Hour {
		// mochi's own default is 24 h, and a box off over a weekend
		// would lose its queued batches: refuse anything shorter.
		return c.fieldErr("broker.message_expiry", "%s is shorter than 24h: a box offline over a weekend would lose its queued messages", d)
	}
	return nil
}

// validateBoxURL checks [broker] box_url, what new boxes are told to dial
// (the embedded broker's TLS listener or an external broker, as the
// network sees it).
func (c *Config) validateBoxURL() error {
	v := c.Broker.BoxURL
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || u.Port() == "" {
		return c.fieldErr("broker.box_url", "%q is not a broker URL like \"ssl://bridge.example:8883\"", v)
	}
	switch u.Scheme {
	case "ssl", "tls", "mqtts", "tcp", "mqtt":
	default:
		return c.fieldErr("broker.box_url", "scheme %q: want ssl:// (TLS) or tcp://", u.Scheme)
	}
	return nil
}

func (c *Config) validateExternal() error {
	b := &c.Broker
	u, err := url.Parse(b.URL)
	if err != nil || u.Host == "" {
		return c.fieldErr("broker.url", "%q is not a broker URL like \"tcp://host:1883\" or \"ssl://host:8883\"", b.URL)
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
	default:
		return c.fieldErr("broker.url", "scheme %q: want tcp://, ssl:// (TLS), ws:// or wss://", u.Scheme)
	}
	for _, f := range []struct{ field, v string }{
		{"broker.listen", b.Listen}, {"broker.listen_tls", b.ListenTLS}, {"broker.cert_file", b.CertFile},
		{"broker.key_file", b.KeyFile}, {"broker.client_ca_file", b.ClientCAFile},
	} {
		if f.v != "" {
			return c.fieldErr(f.field, "is for the embedded broker, but broker.url names an external one")
		}
	}
	if b.MessageExpiry.Duration != 0 {
		return c.fieldErr("broker.message_expiry", "is for the embedded broker; set the external broker's own expiry")
	}
	if (b.ClientCertFile == "") != (b.ClientKeyFile == "") {
		return c.fieldErr("broker.client_cert_file", "needs broker.client_key_file too (and the other way round)")
	}
	if b.PasswordFile == "" && b.ClientCertFile == "" {
		return c.fieldErr("broker.password_file", "missing: an external broker needs the cloud's password (or client_cert_file)")
	}
	plain := u.Scheme == "tcp" || u.Scheme == "mqtt" || u.Scheme == "ws"
	if plain && b.PasswordFile != "" && !b.Insecure && !tomlconf.LoopbackHost(u.Hostname()) {
		return c.fieldErr("broker.url", "%q would send the cloud's password in clear to %s: use TLS "+
			"(e.g. \"ssl://%s:8883\", broker.ca_file for a private CA), or set broker.insecure = true on a network you trust",
			b.URL, u.Hostname(), u.Hostname())
	}
	return nil
}

func (c *Config) hostPort(field, addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return c.fieldErr(field, "%q is not host:port (e.g. \"127.0.0.1:1883\")", addr)
	}
	return nil
}

// validateLoopback keeps the admin endpoint on this machine: it can put
// grants on any box, and a bearer token in a file is only as safe as the
// machine the file is on.
func (c *Config) validateLoopback(field, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return c.fieldErr(field, "%q is not host:port (e.g. \"127.0.0.1:8480\")", addr)
	}
	if !tomlconf.LoopbackHost(host) {
		return c.fieldErr(field, "%q is not a loopback address: the admin endpoint serves this machine only", addr)
	}
	return nil
}

func (c *Config) validateStore() error {
	st := &c.Store
	if st.URL != "" && st.URLFile != "" {
		return c.fieldErr("store.url", "and store.url_file are both set: give one")
	}
	if st.URL != "" {
		if !pgdb.IsURL(st.URL) {
			return c.fieldErr("store.url", "%q is not a postgres:// URL", pgdb.Redact(st.URL))
		}
		if u, err := url.Parse(st.URL); err != nil {
			return c.fieldErr("store.url", "does not parse as a URL")
		} else if _, has := u.User.Password(); has {
			return c.fieldErr("store.url", "holds a password: put the URL in store.url_file (0600), or the password in ~/.pgpass")
		}
	}
	if st.MaxConns < 0 || st.MaxConns > maxStoreConns {
		return c.fieldErr("store.max_conns", "%d is outside 0..%d", st.MaxConns, maxStoreConns)
	}
	return nil
}

// storeURL is the database URL of [store], read from url_file when given;
// "" keeps the bbolt files.
func (c *Config) storeURL() (string, error) {
	st := &c.Store
	if st.URLFile == "" {
		return st.URL, nil
	}
	u, err := readSecretFile("store.url_file", st.URLFile)
	if err != nil {
		return "", err
	}
	if !pgdb.IsURL(u) {
		return "", fmt.Errorf("store.url_file %s: not a postgres:// URL", st.URLFile)
	}
	return u, nil
}

// fieldErr makes "file:line: field: msg" (tomlconf.File.FieldErr).
func (c *Config) fieldErr(field, format string, args ...any) error {
	return c.file.FieldErr(field, format, args...)
}

// bridgeOptions maps the config to sync/bridge's options, reading the
// secret and certificate files it names (wiring.go): the library takes
// values, not files.
func (c *Config) bridgeOptions(log *slog.Logger) (bridge.Options, error) {
	b, f := &c.Broker, &c.Fleetio
	o := bridge.Options{
		DataDir:     c.DataDir,
		AdminListen: c.Admin.Listen,
		Broker: bridge.BrokerOptions{
			URL: b.URL, Listen: b.Listen, ListenTLS: b.ListenTLS, MessageExpiry: b.MessageExpiry.Duration,
			TLSNames: b.TLSNames, BoxURL: b.BoxURL,
			Username: b.Username, ClientID: b.ClientID, ShareGroup: b.ShareGroup,
		},
		Cloud: bridge.CloudOptions{LogLimit: c.Cloud.LogLimit},
		Fleetio: bridge.FleetioOptions{
			PublicListen: f.PublicListen, PublicURL: f.PublicURL, ReconcileEvery: f.ReconcileEvery.Duration,
			OverdueGrace: f.OverdueGrace.Duration, ReturnSettle: f.ReturnSettle.Duration, MaxBody: f.MaxBody,
			MaxBodiesPerAddress: f.MaxBodiesPerAddress,
			RequestsPerMinute:   f.RequestsPerMinute, RequestBurst: f.RequestBurst,
			// There is no admin web page yet: the admin link of a Prompt
			// reservation is the command that makes the booking.
			AdminLink: func(id string) string { return "smartbox-bridge fleetio book " + id },
		},
		Logger: log,
	}
	var err error
	if o.Fleetio.TrustedProxies, err = f.trustedProxies(); err != nil { // checked by Validate
		return o, fmt.Errorf("fleetio.trusted_proxies: %w", err)
	}
	if b.PasswordFile != "" {
		if o.Broker.Password, err = readSecretFile("broker.password_file", b.PasswordFile); err != nil {
			return o, err
		}
	}
	if b.URL != "" {
		if o.Broker.ClientTLS, err = externalTLS(b); err != nil {
			return o, err
		}
	} else if b.ListenTLS != "" {
		if o.Broker.TLS, err = embeddedTLS(b); err != nil {
			return o, err
		}
	}
	if o.Store.URL, err = c.storeURL(); err != nil {
		return o, err
	}
	o.Store.MaxConns, o.Store.Replica = int32(c.Store.MaxConns), c.Replica
	if k := c.Cloud.CodeKeyFile; k != "" {
		if o.Cloud.CodeKey, err = readCodeKey(k); err != nil {
			return o, err
		}
	}
	o.Fleetio.Admin, o.Fleetio.AdminMethod = c.adminRecipient()
	if o.Notifier, o.Zone, err = newNotifier(c.Notify, log); err != nil {
		return o, err
	}
	return o, nil
}

// adminRecipient is who hears of Prompt reservations and overdue keys, and
// the channel configured for them (email first).
func (c *Config) adminRecipient() (notify.Recipient, notify.Method) {
	f, n := &c.Fleetio, &c.Notify
	r := notify.Recipient{Name: f.AdminName, Email: f.AdminEmail, Phone: f.AdminPhone}
	switch {
	case r.Email != "" && n.Email != nil:
		return r, notify.MethodEmail
	case r.Phone != "" && n.SMS != nil:
		return r, notify.MethodSMS
	}
	return r, ""
}
