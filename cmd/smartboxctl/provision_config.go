package main

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/smartbox-oss/smartbox/cmd/internal/boardprofile"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxconfig"
	"github.com/smartbox-oss/smartbox/cmd/internal/cli"
)

// cloudTable is the [cloud] a provisioned box gets: mutual TLS with the
// files provision writes, relative to the config's directory (boxconfig
// resolves them so), so that the card works wherever it is mounted.
func cloudTable(broker string) *boardprofile.Cloud {
	return &boardprofile.Cloud{BrokerURL: broker, CAFile: relCA, CertFile: relCert, KeyFile: relDeviceKey}
}

// brokerTLSSchemes are the schemes of a mutual-TLS broker URL (boxconfig's
// TLS schemes): a box provisioned with a client certificate has no password
// for a plain one.
var brokerTLSSchemes = []string{"ssl", "tls", "mqtts", "wss"}

// checkBroker checks a broker URL before anything is asked or written;
// where says which flag or answer it came from.
func checkBroker(broker, where string) error {
	u, err := url.Parse(broker)
	if err == nil && slices.Contains(brokerTLSSchemes, u.Scheme) {
		if host, port, err := net.SplitHostPort(u.Host); err == nil && host != "" && port != "" {
			return nil
		}
	}
	return cli.Usagef("%s %q: want a TLS broker URL, scheme://host:port with scheme %s, e.g. ssl://mqtt.example.com:8883",
		where, broker, strings.Join(brokerTLSSchemes, ", "))
}

// boxConfig is the config provision writes, parsed: its bytes and its slot
// count (for the store and the registration).
type boxConfig struct {
	data  []byte
	slots int
}

// ownConfig is a technician's config (--config), checked against the
// board before anything is asked or written.
type ownConfig struct {
	path string
	src  []byte
	// hasBoxID, hasDataDir: the file sets them (ParseConfig fills a
	// default data_dir, so the parsed config cannot say).
	hasBoxID, hasDataDir bool
}

// loadOwnConfig reads and checks --config: it parses, validates, is for
// the profile's hardware and names only pins the board has. Its box_id and
// data_dir, if set, must agree with the flags; its [cloud] is provision's.
func loadOwnConfig(path string, p boardprofile.Profile, boxID string) (*ownConfig, error) {
	src, err := readBounded(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	c, err := boxconfig.ParseConfig(path, src)
	if err != nil {
		return nil, err
	}
	if c.Cloud != nil {
		return nil, fmt.Errorf("%s: has a [cloud] table: leave it out, provision writes it (mutual TLS with the files in tls/)", path)
	}
	if c.BoxID != "" && c.BoxID != boxID {
		return nil, fmt.Errorf("%s: box_id is %q but --box-id is %q: remove box_id, provision writes it", path, c.BoxID, boxID)
	}
	if c.Hardware.Profile != p.Hardware {
		return nil, fmt.Errorf("%s: hardware.profile is %q but board profile %s needs %q (another --profile?)", path, c.Hardware.Profile, p.Name, p.Hardware)
	}
	// Validate needs a box id; the one the file will have.
	c.BoxID = boxID
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := p.CheckPins(c); err != nil {
		return nil, err
	}
	var top map[string]any
	if _, err := toml.Decode(string(src), &top); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err) // parsed above: not reached
	}
	_, hasBoxID := top["box_id"]
	_, hasDataDir := top["data_dir"]
	return &ownConfig{path: path, src: src, hasBoxID: hasBoxID, hasDataDir: hasDataDir}, nil
}

// renderConfig writes the config for the box: the profile's, or the
// technician's own with box_id, data_dir (unless it sets one) and [cloud]
// added; then checks the result as smartboxd will.
func renderConfig(p boardprofile.Profile, own *ownConfig, boxID, dataDir, broker string) (boxConfig, error) {
	var data []byte
	if own == nil {
		var err error
		if data, err = p.Render(boardprofile.Params{BoxID: boxID, DataDir: dataDir, Cloud: cloudTable(broker)}); err != nil {
			return boxConfig{}, err
		}
	} else {
		data = mergeOwnConfig(own, boxID, dataDir, broker)
	}
	c, err := boxconfig.ParseConfig(relConfig, data)
	if err == nil {
		err = c.Validate()
	}
	if err == nil {
		err = p.CheckPins(c)
	}
	if err != nil {
		return boxConfig{}, fmt.Errorf("the config provision would write: %w", err)
	}
	return boxConfig{data: data, slots: c.Hardware.Slots.Count}, nil
}

// mergeOwnConfig adds to a technician's config what provision decides. Top
// level keys go first (before any table, where TOML wants them), [cloud]
// last; a key the file already has would be a duplicate and fail the check.
func mergeOwnConfig(own *ownConfig, boxID, dataDir, broker string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# smartboxd config for box %s: %s with [cloud] added by `smartboxctl provision`.\n", boxID, own.path)
	if !own.hasBoxID {
		fmt.Fprintf(&b, "box_id = %s\n", strconv.Quote(boxID))
	}
	if !own.hasDataDir {
		fmt.Fprintf(&b, "data_dir = %s\n", strconv.Quote(dataDir))
	}
	b.WriteString("\n")
	b.Write(own.src)
	cl := cloudTable(broker)
	fmt.Fprintf(&b, "\n[cloud]\n# Mutual TLS: the broker knows this box by its client certificate's CN.\n"+
		"broker_url = %s\nca_file = %s\ncert_file = %s\nkey_file = %s\n",
		strconv.Quote(cl.BrokerURL), strconv.Quote(cl.CAFile), strconv.Quote(cl.CertFile), strconv.Quote(cl.KeyFile))
	return []byte(b.String())
}
