package main

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/tomlconf"
	"github.com/smartbox-oss/smartbox/sync/cloud"
)

// DefaultConfigPath is where smartbox-bridge looks for its config.
const DefaultConfigPath = "/etc/smartbox/smartbox-bridge.toml"

// DefaultDataDir holds bridge.db, broker data and keys when the config
// names no data_dir.
const DefaultDataDir = "/var/lib/smartbox-bridge"

// Defaults for fields left out of the file.
const (
	defaultListen      = "127.0.0.1:1883"
	defaultAdminListen = "127.0.0.1:8480"
	defaultCloudUser   = "cloud"
)

// Config is smartbox-bridge's TOML config file. See
// cmd/smartbox-bridge/smartbox-bridge.example.toml for the documented version of every
// field. Boxes are not in the config: they live in the store (register-box).
type Config struct {
	DataDir string       `toml:"data_dir"`
	Broker  BrokerConfig `toml:"broker"`
	Admin   AdminConfig  `toml:"admin"`
	Cloud   CloudConfig  `toml:"cloud"`

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

	// External broker.
	URL            string `toml:"url"`
	CAFile         string `toml:"ca_file"`
	ClientCertFile string `toml:"client_cert_file"`
	ClientKeyFile  string `toml:"client_key_file"`

	// The cloud's account, either way.
	Username     string `toml:"username"`
	PasswordFile string `toml:"password_file"`
	ClientID     string `toml:"client_id"`
}

// AdminConfig is the local admin HTTP endpoint the CLI subcommands use.
type AdminConfig struct {
	Listen string `toml:"listen"`
}

// CloudConfig tunes the cloud store.
type CloudConfig struct {
	// CodeKeyFile holds the 32-byte key (64 hex digits) that encrypts codes
	// at rest; "" keeps a random key in bridge.db (see sync/cloud Caveats).
	CodeKeyFile string `toml:"code_key_file"`
	LogLimit    int    `toml:"log_limit"`
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
		b.Username = defaultCloudUser
	}
	if b.ClientID == "" {
		b.ClientID = cloud.DefaultClientID
	}
	if c.Admin.Listen == "" {
		c.Admin.Listen = defaultAdminListen
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
	if !box.ValidID(b.Username) {
		return c.fieldErr("broker.username", "%q is not a valid user name: want 1-128 letters, digits or ._:@-", b.Username)
	}
	if strings.ContainsAny(b.ClientID, "+#/") || b.ClientID == "" {
		return c.fieldErr("broker.client_id", "%q is not a usable MQTT client id", b.ClientID)
	}
	if err := c.validateLoopback("admin.listen", c.Admin.Listen); err != nil {
		return err
	}
	if c.Cloud.LogLimit < 0 {
		return c.fieldErr("cloud.log_limit", "%d is negative", c.Cloud.LogLimit)
	}
	return nil
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
		if b.CertFile == "" || b.KeyFile == "" {
			return c.fieldErr("broker.listen_tls", "needs broker.cert_file and broker.key_file (the server certificate)")
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
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return c.fieldErr(field, "%q is not a loopback address: the admin endpoint serves this machine only", addr)
	}
	return nil
}

// fieldErr makes "file:line: field: msg" (tomlconf.File.FieldErr).
func (c *Config) fieldErr(field, format string, args ...any) error {
	return c.file.FieldErr(field, format, args...)
}
