package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/boardprofile"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxconfig"
	"github.com/smartbox-oss/smartbox/cmd/internal/cli"
	"github.com/smartbox-oss/smartbox/store"
	"github.com/smartbox-oss/smartbox/sync/bridge/adminapi"
	"github.com/smartbox-oss/smartbox/sync/secretfile"
)

// `smartboxctl provision` makes a box's card in one step on the
// technician's laptop: the store (identity, code secret, sync key, the
// bridge's signing key), a device key and the bridge-signed client
// certificate, the CA, and smartboxd.toml, all fetched from the bridge and
// registered with it. See provision_stage.go for how it stays atomic.

// Bounds of a provisioning run.
const (
	// provisionTimeout bounds all the calls to the bridge together (each
	// is bounded by adminapi.AdminCallTimeout): three small calls.
	provisionTimeout = 3 * adminapi.AdminCallTimeout
	// storeLockTimeout: a store held by a running smartboxd (a card still
	// in its box) is said at once.
	storeLockTimeout = time.Second
	// defaultProfile is the board a technician provisions most.
	defaultProfile = "smartbox-v1"
)

// provisionFlags are the command line of provision.
type provisionFlags struct {
	target, boxID, bridgeURL, tokenFile, profile, config string
	name, location, broker, dataDir                      string
	signingKey, caFile, certificate, expectKey           string
	force, offline                                       bool
}

func cmdProvision(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("provision", stderr)
	var f provisionFlags
	fs.StringVar(&f.target, "target", "", "the card's data partition, mounted (it is the box's /var/lib/smartbox)")
	fs.StringVar(&f.boxID, "box-id", "", "this box's id (letters, digits, ._:@-)")
	fs.StringVar(&f.bridgeURL, "bridge", "", "the bridge's admin API, e.g. https://bridge.example.com:8480")
	fs.StringVar(&f.tokenFile, "token-file", "", "the bridge's admin token (its DATA/admin.token, mode 0600)")
	fs.StringVar(&f.profile, "profile", defaultProfile, "board profile: "+boardprofile.Names())
	fs.StringVar(&f.config, "config", "", "your own smartboxd.toml instead of the profile's (checked against --profile's board; no [cloud])")
	fs.StringVar(&f.name, "name", "", "the box's name, for drivers")
	fs.StringVar(&f.location, "location", "", "where the box is, for drivers")
	fs.StringVar(&f.broker, "broker", "", "the broker the box connects to, e.g. ssl://mqtt.example.com:8883 (default: what the bridge advertises)")
	fs.StringVar(&f.dataDir, "data-dir", boxconfig.DefaultDataDir, "data_dir in the config: where the card is mounted on the box")
	fs.BoolVar(&f.force, "force", false, "replace another box's identity on the card (the old files move to DIR/.smartbox-replaced-TIME/), "+
		"and on the bridge a box of this id with another key or certificate (that box is cut off)")
	fs.BoolVar(&f.offline, "offline", false, "no network: needs --signing-key, --ca-file, --broker; prints the record to carry to the bridge")
	fs.StringVar(&f.signingKey, "signing-key", "", "with --offline: the bridge's signing key as KID=BASE64 (smartbox-bridge signing-key)")
	fs.StringVar(&f.expectKey, "expect-signing-key", "", "refuse a bridge whose signing key is not this: KID=BASE64, or its "+
		fingerprintPrefix+"HEX fingerprint (smartbox-bridge signing-key, or the fingerprint its admin reads out)")
	fs.StringVar(&f.caFile, "ca-file", "", "with --offline: the bridge's CA (its DATA/ca.crt)")
	fs.StringVar(&f.certificate, "certificate", "", "install the certificate the bridge signed for an --offline box (smartbox-bridge register-box --cert-out)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.target == "" {
		return cli.Usagef("--target DIR is required (the card's data partition)")
	}
	if f.certificate != "" {
		return installCertificate(f.target, f.certificate, stdout)
	}
	p, err := f.check()
	if err != nil {
		return err
	}
	// The technician's config is checked before anything is asked.
	var own *ownConfig
	if f.config != "" {
		if own, err = loadOwnConfig(f.config, p, f.boxID); err != nil {
			return err
		}
	}
	var token []byte
	if !f.offline {
		if token, err = secretfile.Read(f.tokenFile, secretfile.MaxSize); err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
	}
	if err := checkTarget(f.target); err != nil {
		return err
	}
	if err := checkCardNames(f.target); err != nil {
		return err
	}
	adopted, err := adoptStale(f.target, f.boxID)
	if err != nil {
		return err
	}
	cur, err := inspectTarget(f.target, f.boxID, f.force)
	if err != nil {
		return err
	}
	st, err := newStage(f.target)
	if err != nil {
		return err
	}
	defer st.remove()
	ctx, cancel := context.WithTimeout(ctx, provisionTimeout)
	defer cancel()
	r := &provisionRun{f: f, profile: p, own: own, cur: cur, st: st, out: stdout, errOut: stderr}
	r.did = append(r.did, adopted...)
	if !f.offline {
		r.admin = adminapi.NewAdminClient(strings.TrimRight(f.bridgeURL, "/"), strings.TrimSpace(string(token)))
	}
	return r.run(ctx)
}

// check checks the flags of a provisioning run (not --certificate).
func (f *provisionFlags) check() (boardprofile.Profile, error) {
	switch {
	case f.boxID == "":
		return boardprofile.Profile{}, cli.Usagef("--box-id ID is required")
	case !box.ValidID(f.boxID):
		return boardprofile.Profile{}, cli.Usagef("--box-id %q: want 1-128 letters, digits or ._:@-", f.boxID)
	}
	p, err := boardprofile.ByName(f.profile)
	if err != nil {
		return p, cli.Usagef("--profile: %v", err)
	}
	if f.offline {
		switch {
		case f.bridgeURL != "" || f.tokenFile != "":
			return p, cli.Usagef("--offline calls no bridge: drop --bridge and --token-file")
		case f.signingKey == "" || f.caFile == "" || f.broker == "":
			return p, cli.Usagef("--offline needs --signing-key KID=BASE64, --ca-file F and --broker URL (what the bridge would have said)")
		}
		if _, _, err := parseCloudKey(f.signingKey); err != nil {
			return p, cli.Usagef("--signing-key: %v", strings.TrimPrefix(err.Error(), "--cloud-key "))
		}
	} else {
		switch {
		case f.signingKey != "" || f.caFile != "":
			return p, cli.Usagef("--signing-key and --ca-file are for --offline: online, the bridge gives them")
		case f.bridgeURL == "":
			return p, cli.Usagef("--bridge URL is required (or --offline)")
		case f.tokenFile == "":
			return p, cli.Usagef("--token-file F is required: the bridge's admin token")
		}
		if err := checkBridgeURL(f.bridgeURL); err != nil {
			return p, err
		}
	}
	if f.broker != "" {
		if err := checkBroker(f.broker, "--broker"); err != nil {
			return p, err
		}
	}
	if !filepath.IsAbs(f.dataDir) {
		return p, cli.Usagef("--data-dir %q: want an absolute path on the box, e.g. %s", f.dataDir, boxconfig.DefaultDataDir)
	}
	return p, nil
}

// current is what the target holds of this box already.
type current struct {
	// same: DIR/box.db is this box's; other: it is another box's (with
	// --force, to be replaced).
	same, other bool
	syncPub     []byte
	provision   store.Provision // zero if the store has none
	deviceKey   *ecdsa.PrivateKey
	certPEM     []byte // nil: missing
	caPEM       []byte
	config      []byte
}

// inspectTarget reads what the target has. An identity of another box is
// refused without force.
func inspectTarget(target, boxID string, force bool) (current, error) {
	var c current
	p := filepath.Join(target, relStore)
	if _, err := os.Lstat(p); err != nil { // checkCardNames refused a link
		if errors.Is(err, os.ErrNotExist) {
			return c, nil
		}
		return c, fmt.Errorf("--target: %w", err)
	}
	s, err := store.Open(p, store.Options{Timeout: storeLockTimeout, Logger: discardLogger})
	if err != nil {
		if errors.Is(err, store.ErrInUse) {
			return c, fmt.Errorf("%w\n(a smartboxd holds it: provision a card that is not in a running box)", err)
		}
		if force {
			// Unreadable is not this box's: it moves aside like another's.
			c.other = true
			return c, nil
		}
		return c, fmt.Errorf("%s: %w (nothing was changed; --force moves it to %s/%sTIME/, never deletes it)", p, err, target, replacedPrefix)
	}
	defer s.Close()
	id, err := s.Identity()
	if err != nil {
		return c, err
	}
	if id.BoxID != boxID {
		if !force {
			return c, fmt.Errorf("%s is box %q's identity, not %q's: nothing was changed "+
				"(a card of another box? --force moves its files to %s/%sTIME/, never deletes them)",
				p, id.BoxID, boxID, target, replacedPrefix)
		}
		c.other = true
		return c, nil
	}
	c.same = true
	if c.syncPub, err = s.SyncPublicKey(); err != nil {
		return c, err
	}
	if c.provision, err = s.Provision(); err != nil && !errors.Is(err, store.ErrNotProvisioned) {
		return c, err
	}
	// What is missing or unreadable is made again.
	c.deviceKey, _ = loadDeviceKey(filepath.Join(target, relDeviceKey))
	c.certPEM, _ = readBounded(filepath.Join(target, relCert))
	c.caPEM, _ = readBounded(filepath.Join(target, relCA))
	c.config, _ = readBounded(filepath.Join(target, relConfig))
	return c, nil
}

// provisionRun is one run, its flags checked.
type provisionRun struct {
	f       provisionFlags
	profile boardprofile.Profile
	own     *ownConfig
	cur     current
	st      *stage
	admin   *adminapi.AdminClient // nil offline
	out     io.Writer
	errOut  io.Writer
	did     []string // what changed, for the report
	// What the card trusts, for the report's fingerprints.
	kid     string
	signKey ed25519.PublicKey
	caPEM   []byte
	// conflict: the bridge refused (409) a change only --force makes.
	conflict bool
}

func (r *provisionRun) run(ctx context.Context) error {
	f := r.f
	// What the bridge says (or the technician, offline).
	var kid, broker string
	var signKey ed25519.PublicKey
	var caPEM []byte
	var err error
	if r.admin == nil {
		kid, signKey, _ = parseCloudKey(f.signingKey) // checked
		if caPEM, err = readBounded(f.caFile); err != nil {
			return fmt.Errorf("--ca-file: %w", err)
		}
		broker = f.broker
	} else {
		pr, err := r.admin.Provisioning(ctx)
		if err != nil {
			return r.bridgeErr("GET /v1/provisioning", err)
		}
		if kid, signKey, err = parseCloudKey(pr.SigningKey.KeyID + "=" + pr.SigningKey.PublicKey); err != nil {
			return fmt.Errorf("the bridge's signing key (GET /v1/provisioning): %v", err)
		}
		caPEM = []byte(pr.CACert)
		broker = f.broker
		if broker == "" {
			if pr.BrokerURL == "" {
				return cli.Usagef("the bridge at %s does not say where boxes connect: give --broker ssl://HOST:8883", f.bridgeURL)
			}
			if err := checkBroker(pr.BrokerURL, "the bridge's broker_url"); err != nil {
				return fmt.Errorf("%v: give --broker", err)
			}
			broker = pr.BrokerURL
		}
	}
	if err := checkExpectedKey(f.expectKey, kid, signKey); err != nil {
		return err
	}
	r.kid, r.signKey, r.caPEM = kid, signKey, caPEM
	where := "--ca-file " + f.caFile
	if r.admin != nil {
		where = "the bridge's CA (GET /v1/provisioning)"
	}
	if _, err := parseCA(caPEM, where); err != nil {
		return err
	}
	cfg, err := renderConfig(r.profile, r.own, f.boxID, f.dataDir, broker)
	if err != nil {
		return err
	}

	// The store: kept if it is this box's, else made in the stage.
	syncPub, setKey := r.cur.syncPub, !hasKey(r.cur.provision, kid, signKey)
	if !r.cur.same {
		if syncPub, err = r.makeStore(cfg.slots, kid, signKey, broker); err != nil {
			return err
		}
		setKey = false
		r.did = append(r.did, "created the store (identity, code secret, sync key, signing key "+kid+")")
	}
	key := r.cur.deviceKey
	if key == nil {
		var keyPEM []byte
		if key, keyPEM, err = newDeviceKey(); err != nil {
			return err
		}
		if err := r.st.write(relDeviceKey, keyPEM, modeSecret); err != nil {
			return err
		}
		r.did = append(r.did, "made a device key (tls/box.key)")
	}
	if !bytes.Equal(r.cur.caPEM, caPEM) {
		if err := r.st.write(relCA, caPEM, modePublic); err != nil {
			return err
		}
		r.did = append(r.did, "wrote the bridge's CA (tls/ca.crt)")
	}
	if !bytes.Equal(r.cur.config, cfg.data) {
		if err := r.st.write(relConfig, cfg.data, modeConfig); err != nil {
			return err
		}
		r.did = append(r.did, fmt.Sprintf("wrote smartboxd.toml (%s, broker %s)", r.profile.Name, broker))
	}
	// The card's certificate is kept if it is valid for its key and, online,
	// still the bridge's current one (a later provisioning shuts it out).
	var curSerial string
	if r.cur.certPEM != nil {
		if c, err := checkCertificate(r.cur.certPEM, key, f.boxID, caPEM, relCert); err == nil {
			curSerial = c.SerialNumber.Text(16)
		}
	}

	reg := adminapi.RegisterBoxRequest{ID: f.boxID, PublicKey: base64.StdEncoding.EncodeToString(syncPub),
		Slots: cfg.slots, Name: f.name, Location: f.location}
	csr := ""
	if r.admin == nil {
		if curSerial == "" {
			if csr, err = makeCSR(key, f.boxID); err != nil {
				return err
			}
		}
		return r.finish(reg, csr, setKey, kid, signKey, broker)
	}
	// Every staged file is written and fsynced: from here on the bridge
	// changes, and a failure says what it now holds.
	// Only --force replaces a box the bridge has with another key: a
	// mistyped --box-id must not take over another box.
	reg.Replace = f.force
	var info adminapi.BoxInfo
	if err := r.admin.Do(ctx, http.MethodPost, "/v1/boxes", reg, &info); err != nil {
		return r.bridgeErr("POST /v1/boxes", err)
	}
	if curSerial != "" && curSerial != info.CertSerial {
		r.did = append(r.did, "replaced tls/box.crt: serial "+curSerial+" is no longer the bridge's current one")
		curSerial = ""
	}
	if curSerial != "" {
		return r.finish(reg, csr, setKey, kid, signKey, broker)
	}
	if csr, err = makeCSR(key, f.boxID); err != nil {
		return r.afterBridge(err, "box "+f.boxID+" registered with this card's sync key, and no new certificate", true)
	}
	call := "POST /v1/boxes/" + f.boxID + "/certificate"
	cr, err := r.admin.Certificate(ctx, f.boxID, []byte(csr), f.force)
	if err != nil {
		held := "box " + f.boxID + " registered with this card's sync key, and no new certificate"
		if ae, ok := errors.AsType[*adminapi.APIError](err); ok && ae.Status == http.StatusConflict {
			// The same command again would be refused again.
			r.conflict = true
			err = r.bridgeErr(call, err)
		} else {
			err = fmt.Errorf("%s: %w", call, err)
		}
		return r.afterBridge(err, held, true)
	}
	held := "box " + f.boxID + " registered with this card's sync key, and a new current certificate " +
		"(the card's previous certificate no longer connects)"
	c, err := checkCertificate([]byte(cr.Certificate), key, f.boxID, caPEM, "the certificate the bridge signed")
	if err != nil {
		return r.afterBridge(err, held, true)
	}
	held = fmt.Sprintf("box %s registered with this card's sync key, and as its current certificate serial %s "+
		"(the card's previous certificate no longer connects)", f.boxID, c.SerialNumber.Text(16))
	// box.crt last into the stage: everything else is there already.
	if err := r.st.write(relCert, []byte(cr.Certificate), modePublic); err != nil {
		r.st.keep = true
		return r.afterBridge(err, held, false)
	}
	r.did = append(r.did, "installed the bridge-signed client certificate (tls/box.crt, serial "+c.SerialNumber.Text(16)+
		", until "+c.NotAfter.UTC().Format(time.RFC3339)+")")
	if err := r.finish(reg, csr, setKey, kid, signKey, broker); err != nil {
		r.st.keep = true
		return r.afterBridge(err, held, false)
	}
	return nil
}

// finish installs the stage, stores a new signing key and reports.
func (r *provisionRun) finish(reg adminapi.RegisterBoxRequest, csr string, setKey bool, kid string, signKey ed25519.PublicKey, broker string) error {
	if err := r.st.install(r.cur.other); err != nil {
		return err
	}
	if setKey {
		if err := r.setSigningKey(kid, signKey, broker); err != nil {
			return err
		}
		r.did = append(r.did, "stored the bridge's signing key "+kid)
	}
	return r.report(reg, csr)
}

// afterBridge is a failure after the bridge was changed: it says what the
// bridge now holds. install: the staged files are installed all the same
// (the card must hold the sync key the bridge registered), without a
// certificate; else the stage, with the certificate, is kept for the next
// run (adoptStale) and named.
func (r *provisionRun) afterBridge(err error, held string, install bool) error {
	what := "the card has everything else"
	if install {
		if ierr := r.st.install(r.cur.other); ierr != nil {
			r.st.keep = true
			err = errors.Join(err, ierr)
			install = false
		}
	}
	if !install {
		what = "what was made for the card (store, device key, certificate) is kept in " + r.st.dir
	}
	next := "running the same command again completes the card"
	if r.conflict {
		next = "with --force, running the same command again completes the card"
	}
	return fmt.Errorf("%w\nthe bridge at %s now has %s; %s; %s", err, r.f.bridgeURL, held, what, next)
}

// bridgeErr is a failed admin call's error, saying what to do.
func (r *provisionRun) bridgeErr(call string, err error) error {
	var ue *adminapi.UnreachableError
	if errors.As(err, &ue) {
		return fmt.Errorf("%w (nothing was changed: check --bridge, or provision --offline)", err)
	}
	if ae, ok := errors.AsType[*adminapi.APIError](err); ok && ae.Status == http.StatusConflict {
		// The bridge's message says what it has (another key, another
		// certificate) and asks whether the box id is right.
		return fmt.Errorf("the bridge at %s refused %s: %v\n--force replaces it there too, cutting off the box that has the old card",
			r.f.bridgeURL, call, err)
	}
	if strings.Contains(err.Error(), "bearer token") {
		return fmt.Errorf("the bridge at %s refused the token in %s: %v (nothing was changed: it is the bridge's DATA/admin.token)",
			r.f.bridgeURL, r.f.tokenFile, err)
	}
	return fmt.Errorf("the bridge at %s: %s: %w (nothing was changed)", r.f.bridgeURL, call, err)
}

// hasKey says whether p trusts exactly key under kid.
func hasKey(p store.Provision, kid string, key ed25519.PublicKey) bool {
	k, ok := p.CloudKeys[kid]
	return ok && k.Equal(key)
}

// makeStore creates the box's store in the stage, with the signing key,
// and returns its sync public key.
func (r *provisionRun) makeStore(slots int, kid string, key ed25519.PublicKey, broker string) ([]byte, error) {
	p := r.st.path(relStore)
	s, err := store.Open(p, store.Options{BoxID: r.f.boxID, Slots: slots, Timeout: storeLockTimeout, Logger: discardLogger})
	if err != nil {
		return nil, err
	}
	err = s.SetProvision(store.Provision{CloudKeys: map[string]ed25519.PublicKey{kid: key}, BrokerURL: broker, At: time.Now().UTC()})
	var pub []byte
	if err == nil {
		pub, err = s.SyncPublicKey()
	}
	if err = errors.Join(err, s.Close()); err != nil {
		return nil, fmt.Errorf("making the store: %w", err)
	}
	// The holder file is this process's: it would only mislead on the box.
	_ = os.Remove(p + pidSuffix)
	r.st.added(relStore)
	return pub, nil
}

// setSigningKey stores the bridge's (new) signing key in the box's own
// store, in place: bbolt's commit is atomic.
func (r *provisionRun) setSigningKey(kid string, key ed25519.PublicKey, broker string) error {
	return withStore(r.f.target, 0, func(s *store.Store) error {
		return s.SetProvision(store.Provision{CloudKeys: map[string]ed25519.PublicKey{kid: key}, BrokerURL: broker, At: time.Now().UTC()})
	})
}

// report says what the run did. Offline, stdout is the record to carry to
// the bridge (JSON, for a file) and what was done goes to stderr.
func (r *provisionRun) report(reg adminapi.RegisterBoxRequest, csr string) error {
	w := r.out
	if r.admin == nil {
		w = r.errOut
	}
	if len(r.did) == 0 {
		fmt.Fprintf(w, "%s: nothing to change\n", r.f.target)
	}
	for _, d := range r.did {
		fmt.Fprintf(w, "%s: %s\n", r.f.target, d)
	}
	fmt.Fprintf(w, "trusts: signing key %s (%s), CA %s: compare them with the bridge's own (smartbox-bridge provisioning)\n",
		r.kid, keyFingerprint(r.signKey), caFingerprint(r.caPEM))
	if r.admin != nil {
		fmt.Fprintf(w, "box %s: registered with the bridge at %s (%d slots)\n", r.f.boxID, r.f.bridgeURL, reg.Slots)
		return nil
	}
	if csr != "" {
		fmt.Fprintf(w, "next: save this record, run 'smartbox-bridge register-box --record FILE --cert-out box.crt' on the bridge, "+
			"then 'smartboxctl provision --target %s --certificate box.crt'\n", r.f.target)
	}
	enc := json.NewEncoder(r.out)
	enc.SetIndent("", "  ")
	return enc.Encode(adminapi.ProvisionRecord{Register: reg, CSR: csr})
}
