package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxconfig"
	"github.com/smartbox-oss/smartbox/cmd/internal/boxsocket"
	"github.com/smartbox-oss/smartbox/cmd/internal/buildinfo"
	"github.com/smartbox-oss/smartbox/cmd/internal/cli"
	"github.com/smartbox-oss/smartbox/cmd/internal/report"
	"github.com/smartbox-oss/smartbox/store"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes, as the kit defines them.
const (
	exitOK      = cli.ExitOK
	exitFailure = cli.ExitFailure
	exitUsage   = cli.ExitUsage
)

// discardLogger silences the store's log lines: the tool prints what matters.
var discardLogger = slog.New(slog.DiscardHandler)

// underDescriptions indents a summary's second line to the descriptions'
// column.
const underDescriptions = "                                    "

// commands: the reading ones (inspect.go) ask the running smartboxd on its
// socket, else read the store read-only; the writing ones (init, import,
// provision) need the store to themselves: smartboxd stopped.
var commands = &cli.Set{
	Name:   "smartboxctl",
	Header: "usage: smartboxctl COMMAND [flags]\n\ncommands:\n",
	Width:  8,
	Commands: []cli.Command{
		{Name: "init", Summary: "--data DIR --box-id ID              create the box's store (DIR/box.db)", Run: local(cmdInit)},
		{Name: "import", Summary: "--data DIR [--slots N] FILE.json    add or update keys and grants from a JSON file", Run: local(cmdImport)},
		// inspect.go (each also takes --socket PATH and --data DIR: see the footer)
		{Name: "status", Summary: "[--json]                            the box in words: cloud, sync, outbox, clock", Run: cmdStatus},
		{Name: "keys", Summary: "[--json]                            list keys", Run: cmdKeys},
		{Name: "grants", Summary: "[--json]                            list grants (never their codes)", Run: cmdGrants},
		{Name: "events", Summary: "[--after SEQ] [--limit N] [--json]  list events in the outbox", Run: cmdEvents},
		{Name: "slots", Summary: "[--json]                            list slots: key, sensor, lock", Run: cmdSlots},
		{Name: "release", Summary: "SLOT --by WHO --reason WHY          release a slot on the running smartboxd (audited)", Run: cmdRelease},
		// provision.go, trust.go
		{Name: "provision", Summary: "--target DIR --box-id ID --bridge URL --token-file F [--profile NAME] [--config FILE]\n" +
			underDescriptions + "[--name N] [--location L] [--broker URL] [--data-dir D] [--force]\n" +
			underDescriptions + "make a box's card in one step: store, device key, bridge-signed certificate, config\n" +
			underDescriptions + "(--offline --signing-key KID=BASE64 --ca-file F --broker URL: no network;\n" +
			underDescriptions + "then --target DIR --certificate FILE)", Run: cmdProvision},
		{Name: "trust", Summary: "--data DIR --cloud-key KID=BASE64 [--cloud-key ...] [--broker URL]\n" +
			underDescriptions + "trust the cloud's Ed25519 signing key(s) for sync (store only)", Run: local(cmdTrust)},
		{Name: "identity", Summary: "--data DIR                          print the box id and its X25519 sync public key\n" +
			underDescriptions + "(the cloud registers the box with it)", Run: local(cmdIdentity)},
		// doctor.go
		{Name: "doctor", Summary: "[--config FILE] [--socket PATH] [--data DIR] [--json]\n" +
			underDescriptions + "say what is wrong with this box and what to do", Run: cmdDoctor},
		// selftest.go
		{Name: "selftest", Summary: "[--socket PATH] [--config FILE] [--yes] [--json] [--only locks,keys,...]\n" +
			underDescriptions + "test the locks, sensors, keypad, reader, clock, store and cloud", Run: cmdSelftest},
	},
	Footer: "\nstatus, keys, grants, events and slots read the running smartboxd on --socket PATH\n" +
		"(default " + boxsocket.DefaultPath + "), else the store in --data DIR (default " + boxconfig.DefaultDataDir + ")\n" +
		"read-only; release needs the running smartboxd. init, import, trust and identity write\n" +
		"the store (or may): stop smartboxd first; provision writes a card, not a running box.\n" +
		"\nRun 'smartboxctl COMMAND -h' for a command's flags.\n",
}

// local adapts a command that works on the box's store alone: it needs no
// context, the store's calls are local and short.
func local(run func(args []string, stdout, stderr io.Writer) error) cli.RunFunc {
	return func(_ context.Context, args []string, stdout, stderr io.Writer) error {
		return run(args, stdout, stderr)
	}
}

// run is main without the process: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && args[0] == "--version" {
		return cli.Exit(buildinfo.Fprint(stdout, "smartboxctl"), "smartboxctl", stderr)
	}
	return commands.Main(context.Background(), args, stdout, stderr)
}

// newFlagSet makes the flags of `smartboxctl name`.
func newFlagSet(name string, stderr io.Writer) *cli.FlagSet {
	return cli.NewFlagSet("smartboxctl "+name, stderr)
}

// dbPath is where the store lives in a data directory.
func dbPath(dir string) string { return filepath.Join(dir, "box.db") }

// openStore opens an existing store for a technician's command. It does
// not create one: a mistyped --data must not leave a new empty box behind.
func openStore(dir string, slots int) (*store.Store, error) {
	if dir == "" {
		return nil, cli.Usagef("--data DIR is required")
	}
	p := dbPath(dir)
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no store at %s: create it with 'smartboxctl init --data %s --box-id ID'", p, dir)
	}
	// A short lock timeout: when smartboxd holds the file, say so at once.
	s, err := store.Open(p, store.Options{Timeout: time.Second, Slots: slots, Logger: discardLogger})
	if err != nil {
		if errors.Is(err, store.ErrInUse) {
			return nil, fmt.Errorf("%w\n(smartboxd holds the store while it runs: stop it first, e.g. 'systemctl stop smartboxd')", err)
		}
		return nil, err
	}
	return s, nil
}

// withStore opens the store in dir, runs fn and closes the store, reporting
// a failed close (the last fsync) as the command's failure.
func withStore(dir string, slots int, fn func(s *store.Store) error) error {
	s, err := openStore(dir, slots)
	if err != nil {
		return err
	}
	return errors.Join(fn(s), s.Close())
}

func cmdInit(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("init", stderr)
	dir := fs.String("data", "", "data directory (the store is DIR/box.db)")
	id := fs.String("box-id", "", "this box's id (letters, digits, ._:@-)")
	if _, err := fs.ParseArgs(args); err != nil {
		return err
	}
	switch {
	case *dir == "":
		return cli.Usagef("--data DIR is required")
	case *id == "":
		return cli.Usagef("--box-id ID is required")
	case !box.ValidID(*id):
		return cli.Usagef("--box-id %q: want 1-128 letters, digits or ._:@-", *id)
	}
	if err := os.MkdirAll(*dir, 0o750); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	p := dbPath(*dir)
	_, statErr := os.Stat(p)
	existed := statErr == nil
	// Open with a box id creates the store, or checks that an existing one
	// is this box's (store.ErrWrongBox otherwise).
	s, err := store.Open(p, store.Options{BoxID: *id, Timeout: time.Second, Logger: discardLogger})
	if err != nil {
		return err
	}
	ident, err := s.Identity()
	if err == nil {
		if existed {
			fmt.Fprintf(stdout, "%s: already initialised for box %s (created %s)\n", p, ident.BoxID, ident.CreatedAt.Format(time.RFC3339))
		} else {
			fmt.Fprintf(stdout, "%s: created store for box %s (schema %d)\n", p, ident.BoxID, ident.SchemaVersion)
		}
	}
	return errors.Join(err, s.Close())
}

func cmdImport(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("import", stderr)
	dir := fs.String("data", "", "data directory (the store is DIR/box.db)")
	slots := fs.Int("slots", box.DefaultSlots, "the box's slot count: keys must be in slots 1..N")
	pos, err := fs.Positional(args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return cli.Usagef("FILE.json is required")
	case len(pos) > 1:
		return cli.Usagef("one file at a time, got %d", len(pos))
	case *slots < 1 || *slots > box.MaxSlots:
		return cli.Usagef("--slots %d is not in 1..%d", *slots, box.MaxSlots)
	case *dir == "":
		return cli.Usagef("--data DIR is required")
	}
	file := pos[0]
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	// Parse and validate the whole file before opening the store: a bad
	// record anywhere changes nothing.
	b, err := store.ParseImport(f, *slots)
	if err != nil {
		return fmt.Errorf("%s: %w (nothing was changed)", file, err)
	}
	return withStore(*dir, *slots, func(s *store.Store) error {
		changes, changed, err := describeImport(s, b)
		if err != nil {
			return err
		}
		if !changed {
			// Re-importing the same file is a no-op: no new revision, no
			// records_applied event to sync for nothing.
			fmt.Fprintf(stdout, "%s: nothing to change (%d keys, %d grants already as in the file)\n", file, len(b.Keys), len(b.Grants))
			return nil
		}
		before, err := s.Revision()
		if err != nil {
			return err
		}
		b.Events = append(b.Events, box.Event{
			Time:   time.Now(),
			Type:   box.EventRecordsApplied,
			Detail: fmt.Sprintf("import %s: %d keys, %d grants", filepath.Base(file), len(b.Keys), len(b.Grants)),
		})
		if _, err := s.Apply(b); err != nil {
			return fmt.Errorf("%s: %w (nothing was changed)", file, err)
		}
		after, err := s.Revision()
		if err != nil {
			return err
		}
		for _, c := range changes {
			fmt.Fprintln(stdout, c)
		}
		fmt.Fprintf(stdout, "imported %s: %d keys, %d grants; revision %d -> %d\n", file, len(b.Keys), len(b.Grants), before, after)
		return nil
	})
}

// describeImport says, per record, what applying b will change. It never
// mentions a code, only whether one is set or changes.
func describeImport(s *store.Store, b store.Batch) (out []string, changed bool, err error) {
	defer func() {
		for _, l := range out {
			if !strings.HasSuffix(l, ": unchanged") {
				changed = true
			}
		}
	}()
	for _, k := range b.Keys {
		old, ok, err := s.KeyByID(k.ID)
		if err != nil {
			return nil, false, err
		}
		uid, _ := box.NormalizeFobUID(k.FobUID)
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("key %s: added (slot %d, fob %s)", k.ID, k.Slot, uid))
		case old.Slot != k.Slot || old.FobUID != uid || old.Name != k.Name:
			out = append(out, fmt.Sprintf("key %s: changed (slot %d, fob %s)", k.ID, k.Slot, uid))
		default:
			out = append(out, fmt.Sprintf("key %s: unchanged", k.ID))
		}
	}
	grants, err := s.Grants()
	if err != nil {
		return nil, false, err
	}
	byID := make(map[string]box.Grant, len(grants))
	for _, g := range grants {
		byID[g.ID] = g
	}
	for _, g := range b.Grants {
		old, ok := byID[g.ID]
		desc := fmt.Sprintf("%s, keys %s", g.Kind, report.List(g.KeyIDs))
		if !ok {
			out = append(out, fmt.Sprintf("grant %s: added (%s)", g.ID, desc))
			continue
		}
		var what []string
		if !sameGrant(old, g.Grant) {
			what = append(what, desc)
		}
		if g.Code != "" {
			same, err := codeUnchanged(s, g.ID, g.Code)
			if err != nil {
				return nil, false, err
			}
			if !same {
				what = append(what, "new code")
			}
		}
		if len(what) == 0 {
			out = append(out, fmt.Sprintf("grant %s: unchanged", g.ID))
		} else {
			out = append(out, fmt.Sprintf("grant %s: changed (%s)", g.ID, strings.Join(what, "; ")))
		}
	}
	for _, id := range b.DeleteKeys {
		out = append(out, fmt.Sprintf("key %s: deleted", id))
	}
	for _, id := range b.DeleteGrants {
		out = append(out, fmt.Sprintf("grant %s: deleted", id))
	}
	return out, false, nil
}

// sameGrant compares the replicated fields (Uses is the box's own count).
func sameGrant(a, b box.Grant) bool {
	return a.Kind == b.Kind && slices.Equal(a.KeyIDs, b.KeyIDs) && a.From.Equal(b.From) && a.Until.Equal(b.Until) &&
		a.MaxUses == b.MaxUses && a.Revoked == b.Revoked && a.Source == b.Source && a.DriverRef == b.DriverRef
}

// codeUnchanged asks the store's code index whether code already opens grant id.
func codeUnchanged(s *store.Store, id, code string) (bool, error) {
	gs, err := s.GrantsByCode(code)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(gs, func(g box.Grant) bool { return g.ID == id }), nil
}

// header says which box and which records revision a listing shows, and
// how far behind the cloud is on the box's events.
func header(w io.Writer, s *store.Store) error {
	id, err := s.Identity()
	if err != nil {
		return err
	}
	rev, err := s.Revision()
	if err != nil {
		return err
	}
	depth, err := s.OutboxDepth()
	if err != nil {
		return err
	}
	sync := "not provisioned for sync"
	if _, err := s.Provision(); err == nil {
		sync = "provisioned for sync"
	}
	fmt.Fprintf(w, "box %s: records revision %d, %d events in the outbox, %s\n", id.BoxID, rev, depth, sync)
	return nil
}
