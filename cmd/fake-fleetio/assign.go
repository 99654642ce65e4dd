package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/smartbox-oss/smartbox/cmd/internal/cli"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
)

// The fleet manager's side for the demo and for trying the bridge by hand,
// without curl: `assign` creates an assignment through the control API and
// waits until the bridge has written the Keycafe fields back, then shows them
// as Fleetio's assignment page would; `unassign` deletes one.
//
//	fake-fleetio assign --url http://127.0.0.1:8090 --api-key k --account-token t --vehicle 1 --contact 4 --hours 8
//	fake-fleetio unassign --url http://127.0.0.1:8090 --api-key k 6

// manager is the assign or unassign subcommand.
func manager(cmd string) cli.RunFunc {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		return runManager(ctx, cmd, args, stdout, stderr)
	}
}

// runManager runs the assign and unassign subcommands.
func runManager(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("fake-fleetio "+cmd, stderr)
	base := fs.String("url", "http://127.0.0.1:8090", "the fake's base URL (as it printed at start)")
	key := fs.String("api-key", "", "the account's API key (required)")
	account := fs.String("account-token", "", "the account token (assign: to read the assignment back)")
	vehicle := fs.Int64("vehicle", 0, "assign: vehicle id")
	contact := fs.Int64("contact", 0, "assign: contact (driver) id")
	hours := fs.Float64("hours", 8, "assign: length of the assignment from now, in hours (0: open-ended)")
	wait := fs.Duration("wait", 30*time.Second, "assign: how long to wait for the Keycafe fields (0: do not wait)")
	// Flags may come after the assignment id too (unassign 6 --api-key k).
	pos, err := fs.Positional(args)
	if err != nil {
		return err
	}
	if *key == "" {
		return cli.Usagef("--api-key is required")
	}
	ctl := func(method, path string, body any) ([]byte, error) {
		var rd io.Reader
		if body != nil {
			b, err := json.Marshal(body)
			if err != nil {
				return nil, err
			}
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(*base, "/")+path, rd)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Token "+*key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return nil, err
		}
		if resp.StatusCode/100 != 2 {
			return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(out)))
		}
		return out, nil
	}

	switch cmd {
	case "unassign":
		if len(pos) != 1 {
			return cli.Usagef("give the assignment id")
		}
		if _, err := ctl(http.MethodDelete, "/_fake/vehicle_assignments/"+pos[0], nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "assignment %s deleted\n", pos[0])
		return nil
	}

	if *vehicle <= 0 || *contact <= 0 {
		return cli.Usagef("--vehicle and --contact are required")
	}
	now := time.Now().UTC().Truncate(time.Second)
	body := map[string]any{"vehicle_id": *vehicle, "contact_id": *contact, "started_at": now}
	if *hours > 0 {
		body["ended_at"] = now.Add(time.Duration(*hours * float64(time.Hour)))
	}
	out, err := ctl(http.MethodPost, "/_fake/vehicle_assignments", body)
	if err != nil {
		return err
	}
	var a fleetio.VehicleAssignment
	if err := json.Unmarshal(out, &a); err != nil {
		return fmt.Errorf("control API answer: %w", err)
	}
	fmt.Fprintf(stdout, "assignment %d: vehicle %d to contact %d from %s", a.ID, a.VehicleID, a.ContactID, a.StartedAt.Format(time.RFC3339))
	if a.EndedAt != nil {
		fmt.Fprintf(stdout, " until %s", a.EndedAt.Format(time.RFC3339))
	}
	fmt.Fprintln(stdout)
	if *wait <= 0 {
		return nil
	}
	if *account == "" {
		return cli.Usagef("--account-token is needed to wait for the Keycafe fields (or --wait 0)")
	}
	c, err := fleetio.New(fleetio.Options{BaseURL: strings.TrimRight(*base, "/") + "/api", APIKey: *key, AccountToken: *account})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	for {
		got, err := c.FindVehicleAssignment(ctx, a.VehicleID, a.ID)
		if err == nil {
			if code, _ := got.CustomFields[fleetio.FieldAccessCode].(string); code != "" {
				fmt.Fprintf(stdout, "Keycafe fields written back by the bridge:\n")
				for _, f := range []string{fleetio.FieldAccessCode, fleetio.FieldAccessLink, fleetio.FieldAccessInstructions} {
					v, _ := got.CustomFields[f].(string)
					fmt.Fprintf(stdout, "  %s: %s\n", f, v)
				}
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("assignment %d: no Keycafe access code after %s (is the vehicle linked in Automatic mode, the bridge connected? a Prompt vehicle waits for the admin: --wait 0)", a.ID, *wait)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
