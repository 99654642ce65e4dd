package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/cmd/internal/cli"
	"github.com/smartbox-oss/smartbox/cmd/internal/report"
	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/secretfile"
)

// stdin is where connect and driver-code read secrets when no file is
// given; a variable so that tests can feed it.
var stdin io.Reader = os.Stdin

// fleetioCommands are `smartbox-bridge fleetio COMMAND`: the Fleetio
// integration, driven through the admin API.
var fleetioCommands = &cli.Set{
	Name:   "smartbox-bridge fleetio",
	Header: "usage: smartbox-bridge fleetio COMMAND [flags]\n\n",
	Width:  15,
	Commands: []cli.Command{
		{Name: "connect", Summary: "[--secrets-file F] [--base-url URL] [--code-mode M]\n" +
			"api_key, account_token, webhook_secret (and optionally\n" +
			"authorization) as \"name = value\" lines, from F (mode 0600)\n" +
			"or stdin; checked against Fleetio's users/me", Run: cmdFleetioConnect},
		{Name: "disconnect", Summary: "revoke bookings not started, keep those in progress, forget the secrets", Run: cmdFleetioDisconnect},
		{Name: "status", Summary: "connected, webhook URL, code mode, counters", Run: cmdFleetioStatus},
		{Name: "code-mode", Summary: "per_assignment | per_driver | driver_own", Run: cmdFleetioCodeMode},
		{Name: "vehicles", Summary: "Fleetio's vehicles and their links", Run: cmdFleetioVehicles},
		{Name: "link", Summary: "VEHICLE --box B --key K [--method automatic|prompt]", Run: cmdFleetioLink},
		{Name: "unlink", Summary: "VEHICLE", Run: cmdFleetioUnlink},
		{Name: "reservations", Summary: "pending Prompt reservations", Run: cmdFleetioReservations},
		{Name: "book", Summary: "ASSIGNMENT [--from RFC3339 --until RFC3339 --contact email|sms]", Run: cmdFleetioBook},
		{Name: "bookings", Summary: "[--events] every grant of every box; FLEETIO marks the integration's", Run: cmdBookings},
		{Name: "driver-code", Summary: "CONTACT [--clear]   the driver's own code, read from stdin", Run: cmdFleetioDriverCode},
		{Name: "drivers", Summary: "drivers with a code (never the code)", Run: cmdFleetioDrivers},
		{Name: "reconcile", Summary: "compare with Fleetio now and repair", Run: cmdFleetioReconcile},
	},
	Footer: "\nEvery command takes --config FILE or --data DIR.\n",
}

func positiveID(name, v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, cli.Usagef("%s %q: want Fleetio's numeric id", name, v)
	}
	return n, nil
}

// maxSecretsFile bounds the --secrets-file (four secrets and comments).
const maxSecretsFile = 64 << 10

// readSecrets reads "name = value" lines (also "name: value"; # comments;
// values may be quoted). A file must not be readable by others: it holds
// the account's API key. Errors name the line, never a value.
func readSecrets(path string) (map[string]string, error) {
	var r io.Reader = stdin
	what := "stdin"
	if path != "" && path != "-" {
		b, err := secretfile.Read(path, maxSecretsFile)
		if err != nil {
			return nil, fmt.Errorf("--secrets-file: %w", err)
		}
		r, what = bytes.NewReader(b), path
	}
	out := map[string]string{}
	sc := bufio.NewScanner(io.LimitReader(r, maxSecretsFile))
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		i := strings.IndexAny(s, "=:")
		if i < 0 {
			return nil, fmt.Errorf("%s:%d: want \"name = value\"", what, line)
		}
		name := strings.ToLower(strings.TrimSpace(s[:i]))
		v := strings.TrimSpace(s[i+1:])
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		switch name {
		case "api_key", "account_token", "webhook_secret", "authorization":
		default:
			return nil, fmt.Errorf("%s:%d: unknown name %q (want api_key, account_token, webhook_secret, authorization)", what, line, name)
		}
		out[name] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	var missing []string
	for _, k := range []string{"api_key", "account_token", "webhook_secret"} {
		if out[k] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s: missing %s", what, strings.Join(missing, ", "))
	}
	return out, nil
}

func cmdFleetioConnect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset, d := newFlagSet("fleetio connect", stderr)
	file := fset.String("secrets-file", "", "file (mode 0600) with api_key, account_token, webhook_secret lines; default stdin")
	base := fset.String("base-url", "", "Fleetio's API base URL (default "+fleetio.DefaultBaseURL+")")
	mode := fset.String("code-mode", "", "per_assignment (default), per_driver or driver_own")
	return adminCall(ctx, fset, d, args, nil, func([]string) (request, error) {
		if *file == "" {
			fmt.Fprintln(stderr, "reading api_key, account_token, webhook_secret (\"name = value\" lines) from stdin...")
		}
		sec, err := readSecrets(*file)
		if err != nil {
			return request{}, err
		}
		return request{http.MethodPost, "/v1/fleetio/connect", bridge.ConnectRequest{APIKey: sec["api_key"], AccountToken: sec["account_token"],
			WebhookSecret: sec["webhook_secret"], Authorization: sec["authorization"], BaseURL: *base, CodeMode: bookings.CodeMode(*mode)}}, nil
	}, func(resp bridge.ConnectResponse) error {
		who := resp.User.Email
		if n := strings.TrimSpace(resp.User.FirstName + " " + resp.User.LastName); n != "" {
			who = n + " <" + resp.User.Email + ">"
		}
		fmt.Fprintf(stdout, "connected to Fleetio as %s (user %d)\n", who, resp.User.ID)
		fmt.Fprintf(stdout, "point the Fleetio webhook (vehicle assignment events) at:\n  %s\n", resp.WebhookURL)
		return nil
	})
}

func cmdFleetioDisconnect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset, d := newFlagSet("fleetio disconnect", stderr)
	return adminCall(ctx, fset, d, args, nil, post("/v1/fleetio/disconnect"), func(rep bridge.DisconnectReport) error {
		fmt.Fprintf(stdout, "disconnected from Fleetio: webhooks are refused, the secrets forgotten\n")
		fmt.Fprintf(stdout, "revoked %d booking(s) not started; kept %d in progress until their end; dropped %d queued deliveries and %d reservations\n",
			len(rep.Revoked), len(rep.Kept), rep.DeliveriesDropped, rep.ReservationsDropped)
		for _, bk := range rep.Kept {
			fmt.Fprintf(stdout, "  kept: assignment %d, grant %s on box %s until %s\n", bk.AssignmentID, bk.GrantID, bk.BoxID, when(bk.Until))
		}
		if len(rep.FieldsNotCleared) > 0 {
			fmt.Fprintf(stdout, "could not clear the Keycafe fields of assignments %v in Fleetio\n", rep.FieldsNotCleared)
		}
		return nil
	})
}

func cmdFleetioStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset, d := newFlagSet("fleetio status", stderr)
	return adminCall(ctx, fset, d, args, nil, get("/v1/fleetio/status"), func(st bridge.FleetioStatus) error {
		tw := report.NewTable(stdout)
		yes := map[bool]string{true: "yes", false: "no"}
		fmt.Fprintf(tw, "connected\t%s\n", yes[st.Connected])
		if st.BaseURL != "" {
			fmt.Fprintf(tw, "fleetio api\t%s\n", st.BaseURL)
		}
		fmt.Fprintf(tw, "webhook url\t%s\n", st.WebhookURL)
		fmt.Fprintf(tw, "access pages\t%s...\n", st.AccessURL)
		fmt.Fprintf(tw, "code mode\t%s\n", st.CodeMode)
		fmt.Fprintf(tw, "linked vehicles\t%d\n", st.Links)
		fmt.Fprintf(tw, "reservations\t%d\n", st.Pending)
		s := st.Stats
		fmt.Fprintf(tw, "queue depth\t%d\n", s.QueueDepth)
		fmt.Fprintf(tw, "webhooks\taccepted %d, rejected %d, ignored %d, duplicate %d\n", s.WebhooksAccepted, s.WebhooksRejected, s.WebhooksIgnored, s.WebhooksDuplicate)
		fmt.Fprintf(tw, "grants\tpushed %d, revoked %d\n", s.GrantsPushed, s.GrantsRevoked)
		fmt.Fprintf(tw, "notifications\tsent %d, failed %d\n", s.NotificationsSent, s.NotificationsFailed)
		fmt.Fprintf(tw, "fleetio errors\t%d\n", s.FleetioErrors)
		fmt.Fprintf(tw, "overdue keys\t%d\n", s.Overdue)
		fmt.Fprintf(tw, "reconcile repairs\t%d\n", s.Reconciled)
		return tw.Flush()
	})
}

func cmdFleetioCodeMode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset, d := newFlagSet("fleetio code-mode", stderr)
	return adminCall(ctx, fset, d, args, []string{"MODE"}, func(pos []string) (request, error) {
		m := bookings.CodeMode(pos[0])
		if err := m.Validate(); err != nil {
			return request{}, cli.Usagef("%v", err)
		}
		return request{http.MethodPut, "/v1/fleetio/code-mode", bridge.CodeModeRequest{Mode: m}}, nil
	}, func(out bridge.CodeModeRequest) error {
		fmt.Fprintf(stdout, "code mode: %s (bookings made from now on)\n", out.Mode)
		return nil
	})
}

func cmdFleetioVehicles(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset, d := newFlagSet("fleetio vehicles", stderr)
	return adminCall(ctx, fset, d, args, nil, get("/v1/fleetio/vehicles"), func(vs []bridge.VehicleLink) error {
		tw := report.NewTable(stdout)
		fmt.Fprintln(tw, "VEHICLE\tNAME\tPLATE\tBOX\tKEY\tMETHOD")
		for _, v := range vs {
			bx, key, method := "-", "-", "not linked"
			if l := v.Link; l != nil {
				bx, key, method = l.BoxID, l.KeyID, string(l.Method)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", v.Vehicle.ID, report.Dash(v.Vehicle.Name), report.Dash(v.Vehicle.LicensePlate), bx, key, method)
		}
		return tw.Flush()
	})
}

func cmdFleetioLink(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset, d := newFlagSet("fleetio link", stderr)
	boxID := fset.String("box", "", "box id")
	keyID := fset.String("key", "", "the vehicle's key in that box")
	method := fset.String("method", string(bookings.ModeAutomatic), "automatic (book and tell the driver) or prompt (tell the admin)")
	return adminCall(ctx, fset, d, args, []string{"VEHICLE"}, func(pos []string) (request, error) {
		vid, err := positiveID("VEHICLE", pos[0])
		if err != nil {
			return request{}, err
		}
		if err := errors.Join(required("box", *boxID), required("key", *keyID)); err != nil {
			return request{}, cli.Usagef("%v", err)
		}
		switch bookings.LinkMode(*method) {
		case bookings.ModeAutomatic, bookings.ModePrompt:
		default:
			return request{}, cli.Usagef("--method %q: want automatic or prompt", *method)
		}
		return request{http.MethodPut, "/v1/fleetio/links/" + strconv.FormatInt(vid, 10),
			bridge.LinkRequest{BoxID: *boxID, KeyID: *keyID, Method: bookings.LinkMode(*method)}}, nil
	}, func(l bridge.Link) error {
		fmt.Fprintf(stdout, "vehicle %d linked to key %s of box %s (%s)\n", l.VehicleID, l.KeyID, l.BoxID, l.Method)
		return nil
	})
}

func cmdFleetioUnlink(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset, d := newFlagSet("fleetio unlink", stderr)
	var vid int64
	return adminCall(ctx, fset, d, args, []string{"VEHICLE"}, func(pos []string) (request, error) {
		var err error
		if vid, err = positiveID("VEHICLE", pos[0]); err != nil {
			return request{}, err
		}
		return request{http.MethodDelete, "/v1/fleetio/links/" + strconv.FormatInt(vid, 10), nil}, nil
	}, func(noAnswer) error {
		fmt.Fprintf(stdout, "vehicle %d unlinked\n", vid)
		return nil
	})
}

func cmdFleetioReservations(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset, d := newFlagSet("fleetio reservations", stderr)
	return adminCall(ctx, fset, d, args, nil, get("/v1/fleetio/reservations"), func(rs []bridge.Reservation) error {
		tw := report.NewTable(stdout)
		fmt.Fprintln(tw, "ASSIGNMENT\tVEHICLE\tDRIVER\tBOX\tKEY\tFROM\tUNTIL\tCONTACT")
		for _, r := range rs {
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.AssignmentID, r.VehicleID, report.Dash(r.ContactName), r.BoxID, r.KeyID,
				when(r.From), when(r.Until), report.Dash(r.ContactMethod))
		}
		return tw.Flush()
	})
}

func cmdFleetioBook(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset, d := newFlagSet("fleetio book", stderr)
	from := fset.String("from", "", "start, RFC 3339 (default: the assignment's)")
	until := fset.String("until", "", "end, RFC 3339 (default: the assignment's)")
	contact := fset.String("contact", "", "tell the driver by email or sms (default: email if they have an address)")
	var id int64
	return adminCall(ctx, fset, d, args, []string{"ASSIGNMENT"}, func(pos []string) (request, error) {
		var err error
		if id, err = positiveID("ASSIGNMENT", pos[0]); err != nil {
			return request{}, err
		}
		// Checked here too only so that a typo is a usage error (exit 2)
		// before anything is sent.
		if err := bookings.ValidContactMethod(*contact); err != nil {
			return request{}, cli.Usagef("--contact %q: %v", *contact, err)
		}
		req := bridge.BookRequest{ContactMethod: *contact}
		for _, f := range []struct {
			name, v string
			to      **time.Time
		}{{"from", *from, &req.From}, {"until", *until, &req.Until}} {
			if f.v == "" {
				continue
			}
			t, err := parseTime(f.name, f.v)
			if err != nil {
				return request{}, err
			}
			*f.to = &t
		}
		return request{http.MethodPost, "/v1/fleetio/reservations/" + strconv.FormatInt(id, 10) + "/book", req}, nil
	}, func(bk bridge.Booking) error {
		fmt.Fprintf(stdout, "booking for assignment %d: %s\n", id, describeBooking(bk))
		return nil
	})
}

func describeBooking(bk bridge.Booking) string {
	s := fmt.Sprintf("state %s", bk.State)
	if bk.GrantID != "" {
		s += fmt.Sprintf(", grant %s on box %s", bk.GrantID, report.Dash(bk.BoxID))
	}
	if !bk.From.IsZero() {
		s += fmt.Sprintf(", %s..%s", when(bk.From), when(bk.Until))
	}
	if bk.ContactMethod != "" {
		s += ", driver told by " + bk.ContactMethod
	}
	return s
}

// when is a time for a table, local, or "-" (open).
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

func cmdBookings(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset, d := newFlagSet("bookings", stderr)
	events := fset.Bool("events", false, "list each booking's events under it")
	return adminCall(ctx, fset, d, args, nil, get("/v1/bookings"), func(rows []bridge.BookingRow) error {
		tw := report.NewTable(stdout)
		fmt.Fprintln(tw, "BOX\tGRANT\tKIND\tKEYS\tFROM\tUNTIL\tSTATE\tFLEETIO\tASSIGNMENT\tDRIVER\tEVENTS\tLIVE")
		for _, r := range rows {
			state := "active"
			if r.Revoked {
				state = "revoked"
			}
			fl, asg, driver := "no", "-", report.Dash(r.DriverRef)
			if r.Fleetio {
				fl = "yes"
			}
			if bk := r.Booking; bk != nil {
				state, asg = string(bk.State), strconv.FormatInt(bk.AssignmentID, 10)
				if bk.ContactName != "" {
					driver = bk.ContactName
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", report.Dash(r.BoxID), report.Dash(r.GrantID), report.Dash(string(r.Kind)),
				report.List(r.KeyIDs), when(r.From), when(r.Until), state, fl, asg, driver, len(r.Events)+len(r.BoxEvents), liveCell(r.Booking))
			if *events {
				for _, e := range r.Events {
					fmt.Fprintf(tw, "\t  %s\t%s\t%s\t%s\t%s\t\t\t\t\t\n", e.Time.Local().Format("2006-01-02 15:04:05"), e.Type,
						report.Dash(e.BoxID), report.Dash(e.KeyID), report.Dash(bookingEventNote(e)))
				}
				for _, e := range r.BoxEvents {
					fmt.Fprintf(tw, "\t  %s\t%s\t%s\t%s\t%s\t\t\t\t\t\n", e.Time.Local().Format("2006-01-02 15:04:05"), e.Type,
						r.BoxID, report.Dash(e.KeyID), report.Dash(string(e.Reason)))
				}
			}
		}
		return tw.Flush()
	})
}

// liveCell is the LIVE column: whether the box holds the booking's grant
// ("live since 2026-12-02 14:02") or not yet, with the box's revision and
// the grant's; "-" for a grant with no active booking behind it.
func liveCell(bk *bridge.Booking) string {
	switch {
	case bk == nil || bk.State != bookings.BookingActive || bk.GrantRevision == 0:
		return "-"
	case !bk.LiveAt.IsZero():
		return "live since " + when(bk.LiveAt)
	case bk.BoxRevision == 0:
		return fmt.Sprintf("not yet (grant at rev %d, box not heard since)", bk.GrantRevision)
	}
	return fmt.Sprintf("not yet (box at rev %d, grant at %d)", bk.BoxRevision, bk.GrantRevision)
}

// bookingEventNote is the last column of an event under `bookings
// --events`: its reason, or for a return what let the key in and whether
// the bridge takes it as proof.
func bookingEventNote(e bridge.BookingEvent) string {
	if e.ReturnBy == "" && !e.Unconfirmed {
		return string(e.Reason)
	}
	note := "return_by: " + cmp.Or(string(e.ReturnBy), "unknown")
	if e.Unconfirmed {
		note += ", not confirmed by the slot sensor"
	}
	return note
}

func cmdFleetioDriverCode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset, d := newFlagSet("fleetio driver-code", stderr)
	clearCode := fset.Bool("clear", false, "forget the driver's code and revoke its grants")
	var id int64
	return adminCall(ctx, fset, d, args, []string{"CONTACT"}, func(pos []string) (request, error) {
		var err error
		if id, err = positiveID("CONTACT", pos[0]); err != nil {
			return request{}, err
		}
		path := "/v1/fleetio/drivers/" + strconv.FormatInt(id, 10) + "/code"
		if *clearCode {
			return request{http.MethodDelete, path, nil}, nil
		}
		// The code comes from stdin, never argv: ps and shell history would
		// show it.
		fmt.Fprintf(stderr, "reading the code for contact %d from stdin (one line)...\n", id)
		line, err := bufio.NewReader(io.LimitReader(stdin, 256)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return request{}, fmt.Errorf("read code: %w", err)
		}
		code := strings.TrimSpace(line)
		if code == "" {
			return request{}, errors.New("no code on stdin")
		}
		if err := bookings.ValidDriverCode(code); err != nil {
			return request{}, err
		}
		return request{http.MethodPut, path, bridge.DriverCodeRequest{Code: code}}, nil
	}, func(noAnswer) error {
		done := "set"
		if *clearCode {
			done = "cleared"
		}
		fmt.Fprintf(stdout, "driver code of contact %d %s\n", id, done)
		return nil
	})
}

func cmdFleetioDrivers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset, d := newFlagSet("fleetio drivers", stderr)
	return adminCall(ctx, fset, d, args, nil, get("/v1/fleetio/drivers"), func(ds []bridge.DriverCodeInfo) error {
		tw := report.NewTable(stdout)
		fmt.Fprintln(tw, "CONTACT\tCODE\tBOXES")
		for _, dc := range ds {
			kind := "drawn (per_driver)"
			if dc.Own {
				kind = "own (set by admin)"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\n", dc.ContactID, kind, report.List(dc.Boxes))
		}
		return tw.Flush()
	})
}

func cmdFleetioReconcile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset, d := newFlagSet("fleetio reconcile", stderr)
	return adminCall(ctx, fset, d, args, nil, post("/v1/fleetio/reconcile"), func(rep bridge.ReconcileReport) error {
		fmt.Fprintf(stdout, "reconciled: %d linked vehicles, %d assignments, %d bookings looked up, %d repairs\n",
			rep.Vehicles, rep.Assignments, rep.Checked, len(rep.Repairs))
		for _, r := range rep.Repairs {
			fmt.Fprintf(stdout, "  assignment %d (vehicle %d): %s\n", r.AssignmentID, r.VehicleID, r.Why)
		}
		return nil
	})
}
