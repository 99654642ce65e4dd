package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/fleetio/fleetiotest"
)

func main() {
	run := run
	if len(os.Args) > 1 && (os.Args[1] == "assign" || os.Args[1] == "unassign") {
		cmd := os.Args[1]
		os.Args = os.Args[1:]
		run = func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			return runManager(ctx, cmd, args, stdout, stderr)
		}
	}
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fake-fleetio:", err)
		os.Exit(1)
	}
}

// run starts the fake and serves until ctx ends or a signal comes.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fake-fleetio", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to serve on (host:port)")
	key := fs.String("api-key", "", "the account's API key (required)")
	account := fs.String("account-token", "", "the account token (required)")
	hookURL := fs.String("webhook-url", "", "where vehicle_assignment_* webhooks go (empty: recorded, not sent)")
	hookSecret := fs.String("webhook-secret", "", "webhook secret for X-Fleetio-Webhook-Signature")
	hookAuth := fs.String("webhook-authorization", "", "fixed Authorization header value for webhooks")
	retries := fs.String("retry-intervals", "1s,5s,30s,2m,10m", "comma-separated waits before each webhook retry")
	seed := fs.Bool("seed", false, "add a few vehicles and contacts")
	verbose := fs.Bool("v", false, "log every request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" || *account == "" {
		return errors.New("--api-key and --account-token are required")
	}
	intervals, err := parseIntervals(*retries)
	if err != nil {
		return fmt.Errorf("--retry-intervals: %w", err)
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	f := fleetiotest.New(fleetiotest.Options{
		APIKey: *key, AccountToken: *account,
		WebhookURL: *hookURL, WebhookSecret: *hookSecret, WebhookAuthorization: *hookAuth,
		RetryIntervals: intervals, TriggeredBy: "fleet.manager@example.com", Logger: log,
	})
	defer f.Close()
	if *seed {
		if err := seedAccount(f); err != nil {
			return err
		}
	}

	mux := http.NewServeMux()
	mux.Handle("/api/", f)
	control(mux, f, *key)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ln, err := listenTCP(*listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "http://%s\n", ln.Addr())
	log.Info("fake fleetio serving", "base", "http://"+ln.Addr().String(), "api", "http://"+ln.Addr().String()+"/api", "webhook_url", *hookURL)

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

func parseIntervals(s string) ([]time.Duration, error) {
	out := []time.Duration{}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		d, err := time.ParseDuration(p)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("%q is not a duration like 5s", p)
		}
		out = append(out, d)
	}
	return out, nil
}

func seedAccount(f *fleetiotest.Server) error {
	for _, v := range []fleetio.Vehicle{
		{Name: "Van 7", LicensePlate: "KC-7007", VIN: "1FTBW2CM5GKA12345", Year: 2021, Make: "Ford", Model: "Transit"},
		{Name: "Truck 12", LicensePlate: "KC-1212", VIN: "4V4NC9EH0LN123456", Year: 2020, Make: "Volvo", Model: "VNL"},
		{Name: "Car 3", LicensePlate: "KC-3003", VIN: "JTDKN3DU5A0123456", Year: 2019, Make: "Toyota", Model: "Prius"},
	} {
		if _, err := f.AddVehicle(v); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	for _, c := range []fleetio.Contact{
		{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com", EmployeeNumber: "E-100", MobilePhoneNumber: "+15550100"},
		{FirstName: "Grace", LastName: "Hopper", Email: "grace@example.com", EmployeeNumber: "E-101"},
	} {
		if _, err := f.AddContact(c); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	for _, k := range []string{fleetio.FieldAccessInstructions, fleetio.FieldAccessLink, fleetio.FieldAccessCode} {
		f.DefineCustomField(k, false)
	}
	return nil
}

// assignmentChange is the control API's body; absent fields are unchanged.
type assignmentChange struct {
	VehicleID *int64          `json:"vehicle_id"`
	ContactID *int64          `json:"contact_id"`
	StartedAt *time.Time      `json:"started_at"`
	EndedAt   json.RawMessage `json:"ended_at"` // a time, or null for open-ended
}

func (c assignmentChange) apply(a *fleetio.VehicleAssignment) error {
	if c.VehicleID != nil {
		a.VehicleID = *c.VehicleID
	}
	if c.ContactID != nil {
		a.ContactID = *c.ContactID
	}
	if c.StartedAt != nil {
		a.StartedAt = *c.StartedAt
	}
	if len(c.EndedAt) > 0 {
		var end *time.Time
		if err := json.Unmarshal(c.EndedAt, &end); err != nil {
			return fmt.Errorf("ended_at: %w", err)
		}
		a.EndedAt = end
	}
	return nil
}

// control mounts the control API (a fleet manager's clicks).
func control(mux *http.ServeMux, f *fleetiotest.Server, key string) {
	authed := func(h func(w http.ResponseWriter, r *http.Request) (any, int, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Token ")
			if subtle.ConstantTimeCompare([]byte(got), []byte(key)) != 1 {
				reply(w, http.StatusUnauthorized, map[string]string{"error": "Unauthorized"})
				return
			}
			v, status, err := h(w, r)
			if err != nil {
				reply(w, status, map[string]string{"error": err.Error()})
				return
			}
			reply(w, status, v)
		}
	}
	readChange := func(w http.ResponseWriter, r *http.Request) (assignmentChange, error) {
		var c assignmentChange
		d := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		d.DisallowUnknownFields()
		if err := d.Decode(&c); err != nil {
			return c, fmt.Errorf("body: %w", err)
		}
		return c, nil
	}
	pathID := func(r *http.Request) (int64, error) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("assignment id %q: not a number", r.PathValue("id"))
		}
		return id, nil
	}
	mux.Handle("POST /_fake/vehicle_assignments", authed(func(w http.ResponseWriter, r *http.Request) (any, int, error) {
		c, err := readChange(w, r)
		if err != nil {
			return nil, http.StatusBadRequest, err
		}
		var a fleetio.VehicleAssignment
		if err := c.apply(&a); err != nil {
			return nil, http.StatusBadRequest, err
		}
		out, err := f.CreateAssignment(a)
		if err != nil {
			return nil, http.StatusUnprocessableEntity, err
		}
		return out, http.StatusCreated, nil
	}))
	mux.Handle("PATCH /_fake/vehicle_assignments/{id}", authed(func(w http.ResponseWriter, r *http.Request) (any, int, error) {
		id, err := pathID(r)
		if err != nil {
			return nil, http.StatusNotFound, err
		}
		c, err := readChange(w, r)
		if err != nil {
			return nil, http.StatusBadRequest, err
		}
		if _, ok := f.Assignment(id); !ok {
			return nil, http.StatusNotFound, fmt.Errorf("assignment %d: %w", id, fleetiotest.ErrNotFound)
		}
		var applyErr error
		out, err := f.UpdateAssignment(id, func(a *fleetio.VehicleAssignment) { applyErr = c.apply(a) })
		switch {
		case applyErr != nil:
			return nil, http.StatusBadRequest, applyErr
		case err != nil:
			return nil, http.StatusUnprocessableEntity, err
		}
		return out, http.StatusOK, nil
	}))
	mux.Handle("DELETE /_fake/vehicle_assignments/{id}", authed(func(w http.ResponseWriter, r *http.Request) (any, int, error) {
		id, err := pathID(r)
		if err != nil {
			return nil, http.StatusNotFound, err
		}
		out, err := f.DeleteAssignment(id)
		if err != nil {
			return nil, http.StatusNotFound, err
		}
		return out, http.StatusOK, nil
	}))
	mux.Handle("PUT /_fake/webhook", authed(func(w http.ResponseWriter, r *http.Request) (any, int, error) {
		// Point the webhook elsewhere (a bridge started after the fake):
		// later deliveries, and retries of pending ones, go there.
		var body struct {
			URL string `json:"url"`
		}
		d := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<12))
		d.DisallowUnknownFields()
		if err := d.Decode(&body); err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("body: %w", err)
		}
		if body.URL != "" {
			if u, err := url.Parse(body.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, http.StatusBadRequest, fmt.Errorf("url %q: want http(s)://host/path", body.URL)
			}
		}
		f.SetWebhookURL(body.URL)
		return body, http.StatusOK, nil
	}))
	mux.Handle("GET /_fake/deliveries", authed(func(w http.ResponseWriter, r *http.Request) (any, int, error) {
		type delivery struct {
			ID        int64                 `json:"id"`
			Event     string                `json:"event"`
			Body      json.RawMessage       `json:"body"`
			Attempts  []fleetiotest.Attempt `json:"attempts"`
			Delivered bool                  `json:"delivered"`
			GaveUp    bool                  `json:"gave_up"`
		}
		out := []delivery{}
		for _, d := range f.Deliveries() {
			out = append(out, delivery{d.ID, d.Event, d.Body, d.Attempts, d.Delivered, d.GaveUp})
		}
		return out, http.StatusOK, nil
	}))
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
