package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/cli"
	"github.com/smartbox-oss/smartbox/store"
)

// keyFlags collects repeated --cloud-key KID=BASE64 values.
type keyFlags []string

func (k *keyFlags) String() string     { return strings.Join(*k, ",") }
func (k *keyFlags) Set(v string) error { *k = append(*k, v); return nil }

// base64Encodings are the encodings a pasted key may come in: the cloud
// prints standard base64, but URL-safe and unpadded forms travel through
// web pages and JSON tools unchanged.
var base64Encodings = []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding}

// parseCloudKey parses "KID=BASE64" into a key id and an Ed25519 public key.
func parseCloudKey(v string) (string, ed25519.PublicKey, error) {
	kid, b64, ok := strings.Cut(v, "=")
	if !ok || kid == "" || b64 == "" {
		return "", nil, cli.Usagef("--cloud-key %q: want KID=BASE64, e.g. cloud-1=MCowBQYDK2VwAyEA... (the key id and the public key the cloud prints)", v)
	}
	if !box.ValidID(kid) {
		return "", nil, cli.Usagef("--cloud-key: key id %q: want 1-128 letters, digits or ._:@-", kid)
	}
	b64 = strings.TrimSpace(b64)
	var raw []byte
	var err error
	for _, enc := range base64Encodings {
		if raw, err = enc.DecodeString(b64); err == nil {
			break
		}
	}
	if err != nil {
		return "", nil, cli.Usagef("--cloud-key %s: the key is not base64 (standard or URL-safe): %v", kid, err)
	}
	if len(raw) != ed25519.PublicKeySize {
		return "", nil, cli.Usagef("--cloud-key %s: the key is %d bytes, an Ed25519 public key is %d (is it the public key, in base64?)",
			kid, len(raw), ed25519.PublicKeySize)
	}
	return kid, ed25519.PublicKey(raw), nil
}

func cmdTrust(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("trust", stderr)
	dir := fs.String("data", "", "data directory (the store is DIR/box.db)")
	var keys keyFlags
	fs.Var(&keys, "cloud-key", "the cloud's Ed25519 public key as KID=BASE64; repeat for key rotation (all replace what the box had)")
	broker := fs.String("broker", "", "the broker the box is meant for, e.g. ssl://mqtt.example.com:8883 (for the record: smartboxd's [cloud] decides)")
	if _, err := fs.ParseArgs(args); err != nil {
		return err
	}
	if *dir == "" {
		return cli.Usagef("--data DIR is required")
	}
	if len(keys) == 0 {
		return cli.Usagef("--cloud-key KID=BASE64 is required: the box refuses every record batch it cannot verify")
	}
	p := store.Provision{CloudKeys: map[string]ed25519.PublicKey{}, BrokerURL: *broker, At: time.Now().UTC()}
	for _, v := range keys {
		kid, k, err := parseCloudKey(v)
		if err != nil {
			return err
		}
		if _, dup := p.CloudKeys[kid]; dup {
			return cli.Usagef("--cloud-key %s is given twice", kid)
		}
		p.CloudKeys[kid] = k
	}
	if *broker != "" {
		u, err := url.Parse(*broker)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return cli.Usagef("--broker %q: want scheme://host:port, e.g. ssl://mqtt.example.com:8883", *broker)
		}
	}
	if err := p.Validate(); err != nil {
		return err
	}
	return withStore(*dir, 0, func(s *store.Store) error {
		old, err := s.Provision()
		had := err == nil
		if err := s.SetProvision(p); err != nil {
			return err
		}
		if had {
			fmt.Fprintf(stdout, "replaced cloud keys %s with %s\n", keyIDs(old.CloudKeys), keyIDs(p.CloudKeys))
		} else {
			fmt.Fprintf(stdout, "provisioned with cloud keys %s\n", keyIDs(p.CloudKeys))
		}
		if p.BrokerURL != "" {
			fmt.Fprintf(stdout, "broker: %s\n", p.BrokerURL)
		}
		// The cloud needs the box's key next: print it here so that the
		// technician has both halves of the exchange in one place.
		return printIdentity(stdout, s)
	})
}

// keyIDs lists key ids for people: "cloud-1, cloud-2".
func keyIDs(keys map[string]ed25519.PublicKey) string {
	ids := slices.Sorted(maps.Keys(keys))
	for i, id := range ids {
		if id == "" {
			ids[i] = `""`
		}
	}
	return strings.Join(ids, ", ")
}

func cmdIdentity(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("identity", stderr)
	dir := fs.String("data", "", "data directory (the store is DIR/box.db)")
	if _, err := fs.ParseArgs(args); err != nil {
		return err
	}
	return withStore(*dir, 0, func(s *store.Store) error { return printIdentity(stdout, s) })
}

// printIdentity prints the box id and its X25519 sync public key, one
// "name: value" per line, for a person to read or a script to cut.
func printIdentity(w io.Writer, s *store.Store) error {
	id, err := s.Identity()
	if err != nil {
		return err
	}
	pub, err := s.SyncPublicKey()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "box_id: %s\n", id.BoxID)
	fmt.Fprintf(w, "sync_public_key: %s\n", base64.StdEncoding.EncodeToString(pub))
	if p, err := s.Provision(); err == nil {
		fmt.Fprintf(w, "cloud_keys: %s\n", keyIDs(p.CloudKeys))
	} else {
		fmt.Fprintln(w, "cloud_keys: none (not provisioned: smartboxctl provision or trust)")
	}
	return nil
}
