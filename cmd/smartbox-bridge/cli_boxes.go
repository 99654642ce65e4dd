package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/cmd/internal/cli"
	"github.com/smartbox-oss/smartbox/cmd/internal/report"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/bridge/adminapi"
	"github.com/smartbox-oss/smartbox/sync/secretfile"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// The commands for boxes, their keys, grants, events and slots: each asks
// the running service through its admin API (client.go).

func cmdSigningKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset, d := newFlagSet("signing-key", stderr)
	if err := fset.Parse(args); err != nil {
		return err
	}
	// Read the key file directly: it works while the service is stopped,
	// and the file is the bridge user's anyway.
	cfg, err := loadConfigFor(d, false)
	if err != nil {
		return err
	}
	path := filepath.Join(cfg.DataDir, bridge.FileSigningKey)
	b, err := secretfile.Read(path, secretfile.MaxSize)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no signing key at %s yet: `smartbox-bridge serve` makes it on first start", path)
	}
	if err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	s, err := bridge.ParseSigningKey(b)
	if err != nil {
		return fmt.Errorf("signing key %s: %w", path, err)
	}
	fmt.Fprintln(stdout, bridge.PublicKeyLine(s))
	return nil
}

func cmdRegisterBox(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if isRecordCall(args) {
		return cmdRegisterRecord(ctx, args, stdout, stderr)
	}
	fset, d := newFlagSet("register-box", stderr)
	id := fset.String("id", "", "box id")
	pub := fset.String("public-key", "", "the box's X25519 public key, base64 (smartboxctl identity)")
	pwFile := fset.String("password-file", "", "file holding the box's MQTT password (first line); none: client certificate only, or keep the current one")
	slots := fset.Int("slots", 0, "how many key slots the box has (put-key refuses others); 0 keeps the number known")
	name := fset.String("name", "", "the box's name for drivers, e.g. \"Depot North\"")
	location := fset.String("location", "", "where the box is, for drivers' access pages and messages")
	replace := fset.Bool("replace", false, replaceUsage)
	return adminCall(ctx, fset, d, args, nil, func([]string) (request, error) {
		if err := errors.Join(required("id", *id), required("public-key", *pub)); err != nil {
			return request{}, cli.Usagef("%v", err)
		}
		if *slots < 0 || *slots > bridge.MaxSlots {
			return request{}, cli.Usagef("--slots %d: want 1..%d", *slots, bridge.MaxSlots)
		}
		req := adminapi.RegisterBoxRequest{ID: *id, PublicKey: *pub, Slots: *slots, Name: *name, Location: *location, Replace: *replace}
		if *pwFile != "" {
			pw, err := readSecretFile("--password-file", *pwFile)
			if err != nil {
				return request{}, err
			}
			req.Password = pw
		}
		return request{http.MethodPost, "/v1/boxes", req}, nil
	}, func(info adminapi.BoxInfo) error {
		auth := "password set"
		if !info.HasPassword {
			auth = "no password: the box needs a client certificate with CN=" + info.ID
		}
		if info.ExternalBroker {
			auth = "the bridge uses an external broker: give the box its account there (password file or client certificate)"
		}
		fmt.Fprintf(stdout, "registered box %s (%s)\n", info.ID, auth)
		if info.Slots > 0 || info.Location != "" {
			fmt.Fprintf(stdout, "  %d slots, location %q\n", info.Slots, info.Location)
		}
		return nil
	})
}

func cmdBoxes(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset, d := newFlagSet("boxes", stderr)
	return adminCall(ctx, fset, d, args, nil, get("/v1/boxes"), func(boxes []adminapi.BoxInfo) error {
		tw := report.NewTable(stdout)
		fmt.Fprintln(tw, "BOX\tONLINE\tREVISION\tCLOUD REVISION\tOUTBOX\tLAST SEQ\tSOFTWARE")
		for _, b := range boxes {
			online, rev, outbox, seq, sw := "never seen", "-", "-", "-", "-"
			if st := b.Status; st != nil {
				online = "no"
				if st.Online {
					online = "yes"
				}
				rev, outbox, seq, sw = fmt.Sprint(st.Revision), fmt.Sprint(st.OutboxDepth), fmt.Sprint(st.LastSeq), report.Dash(st.Software)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", b.ID, online, rev, b.Revision, outbox, seq, sw)
		}
		return tw.Flush()
	})
}

func cmdPutKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset, d := newFlagSet("put-key", stderr)
	boxID := fset.String("box", "", "box id")
	keyID := fset.String("key", "", "key id")
	fob := fset.String("fob", "", "the key's fob UID (10 hex digits)")
	slot := fset.Int("slot", 0, "the key's home slot (1..N)")
	name := fset.String("name", "", "name shown to people, e.g. the vehicle")
	return adminCall(ctx, fset, d, args, nil, func([]string) (request, error) {
		if err := errors.Join(required("box", *boxID), required("key", *keyID), required("fob", *fob)); err != nil {
			return request{}, cli.Usagef("%v", err)
		}
		if *slot < 1 {
			return request{}, cli.Usagef("--slot: want the home slot, 1 or more")
		}
		return request{http.MethodPut, "/v1/boxes/" + esc(*boxID) + "/keys/" + esc(*keyID),
			bridge.PutKeyRequest{Name: *name, FobUID: *fob, Slot: *slot}}, nil
	}, func(rev bridge.RevisionResponse) error {
		fmt.Fprintf(stdout, "key %s on box %s: revision %d\n", *keyID, *boxID, rev.Revision)
		return nil
	})
}

func cmdPutGrant(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset, d := newFlagSet("put-grant", stderr)
	boxID := fset.String("box", "", "box id")
	grantID := fset.String("grant", "", "grant id")
	kind := fset.String("kind", "", "booking or driver_code")
	code := fset.String("code", "", "the PIN (4-16 digits); leave out to keep a grant's current code")
	keys := fset.String("keys", "", "key ids the grant opens, comma-separated")
	from := fset.String("from", "", "start of the window, RFC 3339 (none: now)")
	until := fset.String("until", "", "end of the window, RFC 3339 (none: open-ended)")
	maxUses := fset.Int("max-uses", 0, "use limit (0: unlimited)")
	driver := fset.String("driver", "", "driver reference, e.g. a Fleetio contact id")
	return adminCall(ctx, fset, d, args, nil, func([]string) (request, error) {
		if err := errors.Join(required("box", *boxID), required("grant", *grantID), required("kind", *kind)); err != nil {
			return request{}, cli.Usagef("%v", err)
		}
		switch box.GrantKind(*kind) {
		case box.KindBooking, box.KindDriverCode:
		default:
			return request{}, cli.Usagef("--kind %q: want %s or %s", *kind, box.KindBooking, box.KindDriverCode)
		}
		req := bridge.PutGrantRequest{Kind: box.GrantKind(*kind), Code: *code, MaxUses: *maxUses, DriverRef: *driver}
		if *keys != "" {
			for k := range strings.SplitSeq(*keys, ",") {
				if k = strings.TrimSpace(k); k != "" {
					req.KeyIDs = append(req.KeyIDs, k)
				}
			}
		}
		var err error
		if req.From, err = parseTime("from", *from); err != nil {
			return request{}, err
		}
		if req.Until, err = parseTime("until", *until); err != nil {
			return request{}, err
		}
		if *maxUses < 0 {
			return request{}, cli.Usagef("--max-uses: %d is negative", *maxUses)
		}
		return request{http.MethodPut, "/v1/boxes/" + esc(*boxID) + "/grants/" + esc(*grantID), req}, nil
	}, func(rev bridge.RevisionResponse) error {
		// Never echo the code back: terminals are logged and screens shared.
		fmt.Fprintf(stdout, "grant %s on box %s: revision %d\n", *grantID, *boxID, rev.Revision)
		return nil
	})
}

func cmdRevokeGrant(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset, d := newFlagSet("revoke-grant", stderr)
	boxID := fset.String("box", "", "box id")
	grantID := fset.String("grant", "", "grant id")
	return adminCall(ctx, fset, d, args, nil, func([]string) (request, error) {
		if err := errors.Join(required("box", *boxID), required("grant", *grantID)); err != nil {
			return request{}, cli.Usagef("%v", err)
		}
		return request{http.MethodPost, "/v1/boxes/" + esc(*boxID) + "/grants/" + esc(*grantID) + "/revoke", nil}, nil
	}, func(rev bridge.RevisionResponse) error {
		fmt.Fprintf(stdout, "grant %s on box %s revoked: revision %d\n", *grantID, *boxID, rev.Revision)
		return nil
	})
}

func cmdEvents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset, d := newFlagSet("events", stderr)
	boxID := fset.String("box", "", "box id")
	after := fset.Uint64("after", 0, "show events after this sequence number")
	limit := fset.Int("limit", 100, "at most this many events")
	return adminCall(ctx, fset, d, args, nil, func([]string) (request, error) {
		if err := required("box", *boxID); err != nil {
			return request{}, err
		}
		if *limit < 1 || *limit > 100_000 {
			return request{}, cli.Usagef("--limit %d: want 1..100000", *limit)
		}
		return request{http.MethodGet, fmt.Sprintf("/v1/boxes/%s/events?after=%d&limit=%d", esc(*boxID), *after, *limit), nil}, nil
	}, func(evs []box.Event) error { return report.Events(stdout, evs) })
}

func cmdReleaseSlot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset, d := newFlagSet("release-slot", stderr)
	boxID := fset.String("box", "", "box id")
	slot := fset.Int("slot", 0, "slot to open (1..N)")
	by, reason, ttl, wait := commandFlags(fset)
	if err := fset.Parse(args); err != nil {
		return err
	}
	if err := errors.Join(required("box", *boxID), required("by", *by), required("reason", *reason)); err != nil {
		return cli.Usagef("%v", err)
	}
	if *slot < 1 {
		return cli.Usagef("--slot: want a slot number, 1 or more")
	}
	req := bridge.CommandRequest{Kind: wire.CommandReleaseSlot, Slot: *slot, By: *by, Reason: *reason, TTL: ttl.String()}
	return sendCommand(ctx, d, *boxID, req, *wait, fmt.Sprintf("release slot %d", *slot),
		fmt.Sprintf("released slot %d", *slot), stdout)
}

// cmdRestoreKeypad gives a keypad closed by a spent guess budget its
// budget back: drivers' codes are checked again at once.
func cmdRestoreKeypad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset, d := newFlagSet("restore-keypad", stderr)
	boxID := fset.String("box", "", "box id")
	by, reason, ttl, wait := commandFlags(fset)
	if err := fset.Parse(args); err != nil {
		return err
	}
	if err := errors.Join(required("box", *boxID), required("by", *by), required("reason", *reason)); err != nil {
		return cli.Usagef("%v", err)
	}
	req := bridge.CommandRequest{Kind: wire.CommandRestoreKeypad, By: *by, Reason: *reason, TTL: ttl.String()}
	return sendCommand(ctx, d, *boxID, req, *wait, "restore the keypad", "restored its keypad", stdout)
}

// commandFlags are the flags every signed command takes.
func commandFlags(fset *cli.FlagSet) (by, reason *string, ttl, wait *time.Duration) {
	by = fset.String("by", "", "who asks (kept in the box's events)")
	reason = fset.String("reason", "", "why (kept in the box's events)")
	ttl = fset.Duration("ttl", bridge.DefaultCommandTTL, "the command is void after this")
	wait = fset.Duration("wait", 30*time.Second, "wait this long for the box's answer (0: do not wait)")
	return by, reason, ttl, wait
}

// sendCommand sends a signed command to a box and, unless wait is 0, waits
// for its answer: what says what the command asks, done what the box did.
func sendCommand(ctx context.Context, d *dirFlags, boxID string, req bridge.CommandRequest, wait time.Duration, what, done string, stdout io.Writer) error {
	// Not adminCall: the answer is a command id to poll with the same client.
	c, err := newAdminClient(d)
	if err != nil {
		return err
	}
	var cmd bridge.CommandResponse
	if err := c.do(ctx, http.MethodPost, "/v1/boxes/"+esc(boxID)+"/commands", req, &cmd); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "command %s sent to box %s: %s (good until %s)\n", cmd.ID, boxID, what, cmd.Expires.Local().Format(time.DateTime))
	if wait <= 0 {
		return nil
	}
	// Poll: the box answers within a second when online; offline, the
	// broker queues the command until the box is back or it expires.
	deadline := time.Now().Add(wait)
	for {
		var res bridge.CommandResultResponse
		if err := c.do(ctx, http.MethodGet, "/v1/boxes/"+esc(boxID)+"/commands/"+esc(cmd.ID), nil, &res); err != nil {
			return err
		}
		if res.Answered {
			if !res.Result.OK {
				return fmt.Errorf("box %s refused command %s: %s", boxID, cmd.ID, res.Result.Error)
			}
			fmt.Fprintf(stdout, "box %s %s\n", boxID, done)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer from box %s within %s (offline?); the command stays good until %s",
				boxID, wait, cmd.Expires.Local().Format(time.DateTime))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
