package fleetio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	testKey   = "sk_test_KEY_7f3a9c"
	testToken = "acct_TOKEN_51e0b2"
)

// harness is a Fleetio stand-in on loopback plus a client pointed at it.
// Sleeps are recorded, not slept, so back-off tests run in microseconds.
type harness struct {
	srv    *httptest.Server
	c      *Client
	logs   *bytes.Buffer
	mu     sync.Mutex
	sleeps []time.Duration
	calls  atomic.Int32
}

func newHarness(t *testing.T, h http.HandlerFunc, mod ...func(*Options)) *harness {
	t.Helper()
	hs := &harness{logs: &bytes.Buffer{}}
	hs.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hs.calls.Add(1)
		h(w, r)
	}))
	t.Cleanup(hs.srv.Close)
	o := Options{
		BaseURL:      hs.srv.URL + "/api",
		APIKey:       testKey,
		AccountToken: testToken,
		MaxRetries:   3,
		Timeout:      5 * time.Second,
		Logger:       slog.New(slog.NewTextHandler(&lockedWriter{w: hs.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Sleep: func(ctx context.Context, d time.Duration) error {
			hs.mu.Lock()
			hs.sleeps = append(hs.sleeps, d)
			hs.mu.Unlock()
			return ctx.Err()
		},
	}
	for _, m := range mod {
		m(&o)
	}
	c, err := New(o)
	require.NoError(t, err)
	hs.c = c
	return hs
}

func (h *harness) slept() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Duration(nil), h.sleeps...)
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func requireNoSecret(t *testing.T, s string) {
	t.Helper()
	require.NotContains(t, s, testKey)
	require.NotContains(t, s, testToken)
}

func TestNewOptions(t *testing.T) {
	ok := Options{APIKey: "k", AccountToken: "t"}
	tests := []struct {
		name string
		mod  func(*Options)
		err  string
	}{
		{"defaults", func(*Options) {}, ""},
		{"no key", func(o *Options) { o.APIKey = "" }, "APIKey is empty"},
		{"no token", func(o *Options) { o.AccountToken = "" }, "AccountToken is empty"},
		{"key with newline", func(o *Options) { o.APIKey = "k\r\nX-Evil: 1" }, "APIKey holds a control character"},
		{"bad scheme", func(o *Options) { o.BaseURL = "ftp://x/api" }, "BaseURL"},
		{"no host", func(o *Options) { o.BaseURL = "https:///api" }, "BaseURL"},
		{"user info", func(o *Options) { o.BaseURL = "https://u:p@x/api" }, "user info"},
		{"per page too big", func(o *Options) { o.PerPage = 101 }, "PerPage 101"},
		{"per page too small", func(o *Options) { o.PerPage = 1 }, "PerPage 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.mod(&o)
			c, err := New(o)
			if tt.err == "" {
				require.NoError(t, err)
				require.Equal(t, DefaultBaseURL, c.base.String())
				require.Equal(t, DefaultAPIVersion, c.opts.APIVersion)
				require.Equal(t, DefaultMaxRetries, c.opts.MaxRetries)
				return
			}
			require.ErrorContains(t, err, tt.err)
			require.NotContains(t, err.Error(), "X-Evil")
		})
	}
	c, err := New(Options{APIKey: "k", AccountToken: "t", MaxRetries: -1})
	require.NoError(t, err)
	require.Zero(t, c.opts.MaxRetries)
}

func TestHeadersSent(t *testing.T) {
	var got http.Header
	var path, method string
	var body []byte
	h := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		got, path, method = r.Header.Clone(), r.URL.Path, r.Method
		body, _ = io.ReadAll(r.Body)
		writeJSON(w, 200, map[string]any{"id": 7, "email": "admin@example.com", "name": "Ada Admin"})
	})
	u, err := h.c.Me(context.Background())
	require.NoError(t, err)
	require.Equal(t, User{ID: 7, Email: "admin@example.com", Name: "Ada Admin"}, u)
	require.Equal(t, http.MethodGet, method)
	require.Equal(t, "/api/v1/users/me", path)
	require.Equal(t, "Token "+testKey, got.Get("Authorization"))
	require.Equal(t, testToken, got.Get("Account-Token"))
	require.Equal(t, DefaultAPIVersion, got.Get("X-Api-Version"))
	require.Equal(t, "application/json", got.Get("Accept"))
	require.Equal(t, DefaultUserAgent, got.Get("User-Agent"))
	require.Empty(t, got.Get("Content-Type"), "a GET has no body")
	require.Empty(t, body)

	_, err = h.c.PatchAssignmentCustomFields(context.Background(), 5, map[string]any{FieldAccessCode: "483920"})
	require.NoError(t, err)
	require.Equal(t, http.MethodPatch, method)
	require.Equal(t, "/api/v1/vehicle_assignments/5", path)
	require.Equal(t, "application/json", got.Get("Content-Type"))
	require.Equal(t, "Token "+testKey, got.Get("Authorization"))

	h2 := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		writeJSON(w, 200, map[string]any{"id": 1})
	}, func(o *Options) { o.APIVersion = "2024-01-01"; o.UserAgent = "test-agent" })
	_, err = h2.c.Me(context.Background())
	require.NoError(t, err)
	require.Equal(t, "2024-01-01", got.Get("X-Api-Version"))
	require.Equal(t, "test-agent", got.Get("User-Agent"))
}

// assignmentJSON is a vehicle assignment as Fleetio documents it.
func assignmentJSON(id int64) map[string]any {
	return map[string]any{
		"id": id, "created_at": "2025-06-01T08:00:00.000-05:00", "updated_at": "2025-06-02T09:30:00.123-05:00",
		"vehicle_id": 11, "contact_id": 22, "started_at": "2025-06-03T07:00:00-05:00", "ended_at": nil,
		"current": true, "future": false,
		"custom_fields":     map[string]any{FieldAccessCode: nil, FieldAccessLink: "https://x/b/1"},
		"contact_full_name": "Dana Driver",
		"contact":           map[string]any{"id": 22, "email": "dana@example.com", "name": "Dana Driver", "group_id": nil},
		"vehicle": map[string]any{"id": 11, "name": "Van 3", "license_plate": "KEY-123", "vin": "1FTBW2CM0HKA12345",
			"year": 2019, "make": "Ford", "model": "Transit"},
	}
}

func TestCursorPagination(t *testing.T) {
	const total = 5
	var queries []map[string]string
	var mu sync.Mutex
	h := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/api/v1/vehicle_assignments", r.URL.Path)
		q := map[string]string{}
		for k := range r.URL.Query() {
			q[k] = r.URL.Query().Get(k)
		}
		mu.Lock()
		queries = append(queries, q)
		mu.Unlock()
		per, _ := strconv.Atoi(q["per_page"])
		start := 0
		if c := q["start_cursor"]; c != "" {
			start, _ = strconv.Atoi(strings.TrimPrefix(c, "cur-"))
		}
		var recs []any
		for i := start; i < min(start+per, total); i++ {
			recs = append(recs, assignmentJSON(int64(100+i)))
		}
		var next any // JSON null on the last page, as Fleetio sends it
		if start+per < total {
			next = fmt.Sprintf("cur-%d", start+per)
		}
		writeJSON(w, 200, map[string]any{
			"start_cursor": q["start_cursor"], "next_cursor": next, "per_page": per,
			"estimated_remaining_count": max(0, total-start-per), "filtered_by": []any{map[string]any{"vehicle_id": map[string]any{"eq": "11"}}},
			"sorted_by": []any{map[string]any{"updated_at": "asc"}}, "records": recs,
		})
	}, func(o *Options) { o.PerPage = 2 })

	since := time.Date(2025, 6, 1, 0, 0, 0, 0, time.FixedZone("CDT", -5*3600))
	got, err := h.c.ListVehicleAssignments(context.Background(), AssignmentFilter{
		VehicleID: 11, ContactID: 22, UpdatedSince: since, SortBy: "updated_at"})
	require.NoError(t, err)
	require.Len(t, got, total)
	for i, a := range got {
		require.Equal(t, int64(100+i), a.ID)
	}
	require.Len(t, queries, 3, "5 records at 2 a page")
	require.Equal(t, []string{"", "cur-2", "cur-4"}, []string{queries[0]["start_cursor"], queries[1]["start_cursor"], queries[2]["start_cursor"]})
	for _, q := range queries {
		require.Equal(t, "2", q["per_page"])
		require.Equal(t, "11", q["filter[vehicle_id][eq]"])
		require.Equal(t, "22", q["filter[contact_id][eq]"])
		require.Equal(t, "2025-06-01T05:00:00Z", q["filter[updated_at][gte]"])
		require.Equal(t, "asc", q["sort[updated_at]"])
	}

	a := got[0]
	require.Equal(t, int64(11), a.VehicleID)
	require.Nil(t, a.EndedAt)
	require.True(t, a.Current)
	_, offset := a.StartedAt.Zone()
	require.Equal(t, -5*3600, offset, "offset kept")
	require.Equal(t, "Dana Driver", a.Contact.Name)
	require.Equal(t, "KEY-123", a.Vehicle.LicensePlate)
	require.Equal(t, 2019, a.Vehicle.Year)
	require.Nil(t, a.CustomFields[FieldAccessCode])
	require.Contains(t, a.CustomFields, FieldAccessCode)

	// Stopping the iterator early fetches no further page.
	queries = nil
	for a, err := range h.c.VehicleAssignments(context.Background(), AssignmentFilter{}) {
		require.NoError(t, err)
		require.Equal(t, int64(100), a.ID)
		break
	}
	require.Len(t, queries, 1)
}

func TestCursorLoopRefused(t *testing.T) {
	h := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"next_cursor": "same", "records": []any{assignmentJSON(1)}})
	})
	_, err := h.c.ListVehicleAssignments(context.Background(), AssignmentFilter{})
	require.ErrorContains(t, err, "repeats an earlier page")
	require.EqualValues(t, 2, h.calls.Load())
}

func TestLegacyPagePagination(t *testing.T) {
	h := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		page = max(page, 1)
		w.Header().Set("X-Pagination-Current-Page", strconv.Itoa(page))
		w.Header().Set("X-Pagination-Total-Pages", "3")
		w.Header().Set("X-Pagination-Total-Count", "3")
		writeJSON(w, 200, []any{map[string]any{"id": page, "name": fmt.Sprintf("Van %d", page)}})
	})
	vs, err := h.c.ListVehicles(context.Background(), VehicleFilter{Name: "Van"})
	require.NoError(t, err)
	require.Len(t, vs, 3)
	require.Equal(t, "Van 3", vs[2].Name)
	require.EqualValues(t, 3, h.calls.Load())
}

func TestRetryAfter429(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter string
		want       time.Duration
	}{
		{"seconds", "7", 7 * time.Second},
		{"capped", "86400", DefaultMaxRetryAfter},
		{"http date", "", 0}, // filled in below
		{"garbage falls back to back-off", "soon", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
			ra, want := tt.retryAfter, tt.want
			if tt.name == "http date" {
				ra, want = now.Add(12*time.Second).Format(http.TimeFormat), 12*time.Second
			}
			var n atomic.Int32
			h := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 {
					w.Header().Set("Retry-After", ra)
					writeJSON(w, 429, map[string]any{"error": "Too many requests detected from your account token"})
					return
				}
				writeJSON(w, 200, map[string]any{"id": 3, "name": "Van"})
			}, func(o *Options) { o.Now = func() time.Time { return now } })
			v, err := h.c.GetVehicle(context.Background(), 3)
			require.NoError(t, err)
			require.Equal(t, "Van", v.Name)
			s := h.slept()
			require.Len(t, s, 1)
			if want < 0 {
				require.GreaterOrEqual(t, s[0], DefaultMinBackoff/2)
				require.LessOrEqual(t, s[0], DefaultMinBackoff)
			} else {
				require.Equal(t, want, s[0])
			}
		})
	}
}

func TestRetry5xxThenSuccess(t *testing.T) {
	var n atomic.Int32
	h := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) {
		case 1:
			writeJSON(w, 502, map[string]any{"error": "bad gateway"})
		case 2:
			w.WriteHeader(503)
		default:
			writeJSON(w, 200, map[string]any{"id": 9, "email": "x@example.com", "mobile_phone_number": "+15550100"})
		}
	})
	c, err := h.c.GetContact(context.Background(), 9)
	require.NoError(t, err)
	require.Equal(t, "+15550100", c.Phone())
	s := h.slept()
	require.Len(t, s, 2)
	// Full jitter above MinBackoff (sync/internal/retry): retry k waits in
	// [b, b*2^(k-1)], within the bounds equal jitter gave.
	require.GreaterOrEqual(t, s[0], DefaultMinBackoff/2)
	require.LessOrEqual(t, s[0], DefaultMinBackoff)
	require.GreaterOrEqual(t, s[1], DefaultMinBackoff)
	require.LessOrEqual(t, s[1], 2*DefaultMinBackoff)
	require.Contains(t, h.logs.String(), "retrying")
}

func TestBackoffCapped(t *testing.T) {
	c, err := New(Options{APIKey: "k", AccountToken: "t", MinBackoff: time.Second, MaxBackoff: 4 * time.Second})
	require.NoError(t, err)
	for attempt := range 70 { // far past where 2^attempt would overflow
		d := c.retry.Delay(attempt+1, 0)
		require.GreaterOrEqual(t, d, 500*time.Millisecond)
		require.LessOrEqual(t, d, 4*time.Second)
	}
}

func TestRetriesExhausted(t *testing.T) {
	h := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 503, map[string]any{"error": "maintenance"})
	})
	_, err := h.c.Me(context.Background())
	require.ErrorContains(t, err, "giving up after 4 attempts")
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, 503, apiErr.StatusCode)
	require.Equal(t, "maintenance", apiErr.Message)
	require.EqualValues(t, 4, h.calls.Load(), "1 try + MaxRetries 3")
	require.Len(t, h.slept(), 3)

	h429 := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "2")
		writeJSON(w, 429, map[string]any{"error": "Too many requests"})
	})
	_, err = h429.c.Me(context.Background())
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, 429, apiErr.StatusCode)
	require.Equal(t, 2*time.Second, apiErr.RetryAfter)
	require.Equal(t, []time.Duration{2 * time.Second, 2 * time.Second, 2 * time.Second}, h429.slept())
}

func TestClientErrorsNotRetried(t *testing.T) {
	tests := []struct {
		status int
		body   string
		msg    string
		notFnd bool
	}{
		{403, `{"error":"You are not authorized to perform this action."}`, "You are not authorized to perform this action.", false},
		{401, `{"error":"Unauthorized"}`, "Unauthorized", false},
		{404, `{"error":"Not found"}`, "Not found", true},
		{422, `{"errors":{"custom_fields":["keycafe_access_code is required"]}}`, `{"custom_fields":["keycafe_access_code is required"]}`, false},
		{400, `not json at all`, "", false},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			h := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			_, err := h.c.PatchAssignmentCustomFields(context.Background(), 4, map[string]any{FieldAccessCode: "1"})
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			require.Equal(t, tt.status, apiErr.StatusCode)
			require.Equal(t, tt.msg, apiErr.Message)
			require.Equal(t, tt.body, apiErr.Body)
			require.Equal(t, "/v1/vehicle_assignments/4", apiErr.Path)
			require.Equal(t, tt.notFnd, errors.Is(err, ErrNotFound))
			require.EqualValues(t, 1, h.calls.Load(), "no retry")
			require.Empty(t, h.slept())
			require.Contains(t, err.Error(), "HTTP "+strconv.Itoa(tt.status))
		})
	}
}

func TestContextCancel(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	h := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := h.c.Me(ctx); errc <- err }()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("request never arrived")
	}
	cancel()
	select {
	case err := <-errc:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("cancel did not end the call")
	}
	require.EqualValues(t, 1, h.calls.Load(), "no retry after the caller gave up")

	// Cancelled during a back-off wait. The server counts the call before
	// the client has read the 500, so wait for the client to be in its
	// back-off, not for the call: a cancel before then ends the request
	// itself, without the 500 in the error. The wait is an injected one that
	// only the cancel ends: no timer races the cancel.
	backingOff := make(chan struct{}, 1)
	h2 := newHarness(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) },
		func(o *Options) {
			o.Sleep = func(ctx context.Context, d time.Duration) error {
				backingOff <- struct{}{}
				<-ctx.Done()
				return ctx.Err()
			}
			o.MinBackoff = time.Hour
			o.MaxBackoff = time.Hour
		})
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { _, err := h2.c.Me(ctx2); errc <- err }()
	select {
	case <-backingOff:
	case <-time.After(10 * time.Second):
		t.Fatal("the client never backed off")
	}
	require.EqualValues(t, 1, h2.calls.Load())
	cancel2()
	select {
	case err := <-errc:
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorContains(t, err, "HTTP 500")
	case <-time.After(10 * time.Second):
		t.Fatal("cancel did not end the back-off")
	}
}

func TestAttemptTimeoutRetried(t *testing.T) {
	var n atomic.Int32
	h := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			<-r.Context().Done() // hang until the client's per-attempt timeout
			return
		}
		writeJSON(w, 200, map[string]any{"id": 1})
	}, func(o *Options) { o.Timeout = 100 * time.Millisecond })
	u, err := h.c.Me(context.Background())
	require.NoError(t, err)
	require.Equal(t, int64(1), u.ID)
	require.Len(t, h.slept(), 1)
}

func TestNetworkErrorRetried(t *testing.T) {
	h := newHarness(t, func(w http.ResponseWriter, r *http.Request) {})
	h.srv.Close() // nothing listens any more: connection refused
	_, err := h.c.Me(context.Background())
	require.ErrorContains(t, err, "giving up after 4 attempts")
	require.Len(t, h.slept(), 3)
	requireNoSecret(t, err.Error())
}

func TestPatchBodyShape(t *testing.T) {
	var body map[string]any
	h := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		a := assignmentJSON(42)
		a["custom_fields"] = body["custom_fields"]
		writeJSON(w, 200, a)
	})
	a, err := h.c.PatchAssignmentCustomFields(context.Background(), 42, map[string]any{
		FieldAccessCode:         "483920",
		FieldAccessLink:         "https://bridge.example/b/tok",
		FieldAccessInstructions: nil, // cleared
	})
	require.NoError(t, err)
	require.Equal(t, map[string]any{"custom_fields": map[string]any{
		FieldAccessCode: "483920", FieldAccessLink: "https://bridge.example/b/tok", FieldAccessInstructions: nil,
	}}, body)
	require.Equal(t, int64(42), a.ID)
	require.Equal(t, "483920", a.CustomFields[FieldAccessCode])

	// An empty 204 answer is fine too.
	h204 := newHarness(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	a, err = h204.c.PatchAssignmentCustomFields(context.Background(), 42, map[string]any{FieldAccessCode: "1"})
	require.NoError(t, err)
	require.Zero(t, a.ID)

	_, err = h204.c.PatchAssignmentCustomFields(context.Background(), 42, nil)
	require.ErrorContains(t, err, "no fields")
	_, err = h204.c.PatchAssignmentCustomFields(context.Background(), 0, map[string]any{"a": "b"})
	require.ErrorContains(t, err, "must be positive")
}

func TestSecretsNeverInErrorsOrLogs(t *testing.T) {
	// A misbehaving server echoes the credentials back in its error bodies.
	var n atomic.Int32
	h := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		echo := map[string]any{"error": "bad credentials " + r.Header.Get("Authorization") + " / " + r.Header.Get("Account-Token")}
		if n.Add(1) == 1 {
			writeJSON(w, 500, echo)
			return
		}
		writeJSON(w, 403, echo)
	})
	_, err := h.c.Me(context.Background())
	require.Error(t, err)
	requireNoSecret(t, err.Error())
	require.Contains(t, err.Error(), "[REDACTED]")
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	requireNoSecret(t, apiErr.Body)
	requireNoSecret(t, apiErr.Message)
	requireNoSecret(t, fmt.Sprintf("%+v %#v", err, apiErr))
	requireNoSecret(t, h.logs.String())
	require.Contains(t, h.logs.String(), "HTTP 500")

	// A body that does not decode: the decode error carries no secret either.
	hbad := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"id": "`+r.Header.Get("Authorization")+`"}`)
	})
	_, err = hbad.c.Me(context.Background())
	require.ErrorContains(t, err, "decode answer")
	requireNoSecret(t, err.Error())
}

func TestFindContactByEmail(t *testing.T) {
	h := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/api/v2/contacts", r.URL.Path)
		email := r.URL.Query().Get("filter[email][eq]")
		var recs []any
		if strings.EqualFold(email, "dana@example.com") {
			recs = append(recs, map[string]any{"id": 22, "name": "Dana Driver", "first_name": "Dana", "last_name": "Driver",
				"email": "Dana@Example.com", "employee_number": "E-7", "group_id": 3, "work_phone_number": "+15550101",
				"custom_fields": map[string]any{"shoe_size": "9"}})
		}
		writeJSON(w, 200, map[string]any{"next_cursor": nil, "per_page": 100, "records": recs})
	})
	c, err := h.c.FindContactByEmail(context.Background(), " dana@example.com ")
	require.NoError(t, err)
	require.Equal(t, int64(22), c.ID)
	require.Equal(t, "E-7", c.EmployeeNumber)
	require.Equal(t, "+15550101", c.Phone())

	_, err = h.c.FindContactByEmail(context.Background(), "nobody@example.com")
	require.ErrorIs(t, err, ErrNotFound)
	_, err = h.c.FindContactByEmail(context.Background(), "")
	require.ErrorContains(t, err, "email is empty")
}

func TestFindVehicleAssignment(t *testing.T) {
	h := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/api/v1/vehicles/11/vehicle_assignments", r.URL.Path)
		writeJSON(w, 200, map[string]any{"records": []any{assignmentJSON(1), assignmentJSON(2)}})
	})
	a, err := h.c.FindVehicleAssignment(context.Background(), 11, 2)
	require.NoError(t, err)
	require.Equal(t, int64(2), a.ID)
	_, err = h.c.FindVehicleAssignment(context.Background(), 11, 3)
	require.ErrorIs(t, err, ErrNotFound)

	all, err := h.c.ListVehicleAssignmentsForVehicle(context.Background(), 11, AssignmentFilter{VehicleID: 99})
	require.NoError(t, err)
	require.Len(t, all, 2)
}

func TestGetVehicleNotFoundAndBadID(t *testing.T) {
	h := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 404, map[string]any{"error": "Record not found"})
	})
	_, err := h.c.GetVehicle(context.Background(), 5)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = h.c.GetVehicle(context.Background(), -1)
	require.ErrorContains(t, err, "vehicle id -1")
	_, err = h.c.GetContact(context.Background(), 0)
	require.ErrorContains(t, err, "contact id 0")
	require.EqualValues(t, 1, h.calls.Load())
}
