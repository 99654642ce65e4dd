package fleetiotest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/box/boxtest"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/fleetio/fleetiotest"
)

const (
	apiKey  = "key-123"
	account = "acct-456"
)

var t0 = time.Date(2026, 11, 3, 15, 0, 0, 0, time.UTC)

type env struct {
	f     *fleetiotest.Server
	api   string
	clock *boxtest.Clock
	van   fleetio.Vehicle
	truck fleetio.Vehicle
	ada   fleetio.Contact
	bob   fleetio.Contact
}

func newEnv(t *testing.T, opts fleetiotest.Options) *env {
	t.Helper()
	clock := boxtest.NewClock(t0)
	opts.APIKey, opts.AccountToken, opts.Clock = apiKey, account, clock
	f := fleetiotest.New(opts)
	t.Cleanup(func() { _ = f.Close() })
	base, err := f.Start()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(base, "http://127.0.0.1:"))
	e := &env{f: f, api: f.APIURL(), clock: clock}
	e.van, err = f.AddVehicle(fleetio.Vehicle{Name: "Van 7", LicensePlate: "AB-123", VIN: "1FTFW1ET5DFC10312", Year: 2021, Make: "Ford", Model: "Transit"})
	require.NoError(t, err)
	e.truck, err = f.AddVehicle(fleetio.Vehicle{Name: "Truck 2", Make: "Volvo"})
	require.NoError(t, err)
	e.ada, err = f.AddContact(fleetio.Contact{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com", MobilePhoneNumber: "+15550100", GroupID: 9})
	require.NoError(t, err)
	e.bob, err = f.AddContact(fleetio.Contact{FirstName: "Bob", LastName: "Smith", Email: "Bob@Example.com"})
	require.NoError(t, err)
	return e
}

func (e *env) assign(t *testing.T, v fleetio.Vehicle, c fleetio.Contact, from time.Duration, until *time.Duration) fleetio.VehicleAssignment {
	t.Helper()
	a := fleetio.VehicleAssignment{VehicleID: v.ID, ContactID: c.ID, StartedAt: t0.Add(from)}
	if until != nil {
		end := t0.Add(*until)
		a.EndedAt = &end
	}
	out, err := e.f.CreateAssignment(a)
	require.NoError(t, err)
	return out
}

// do sends a request with the account's credentials unless hdr overrides.
func (e *env) do(t *testing.T, method, path, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.api+path, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Token "+apiKey)
	req.Header.Set("Account-Token", account)
	req.Header.Set("X-Api-Version", "2025-05-05")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

func (e *env) get(t *testing.T, path string, status int) map[string]any {
	t.Helper()
	resp, b := e.do(t, http.MethodGet, path, "", nil)
	require.Equal(t, status, resp.StatusCode, "GET %s: %s", path, b)
	require.Contains(t, resp.Header.Get("Content-Type"), "application/json")
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), "GET %s: %s", path, b)
	return m
}

func ids(t *testing.T, page map[string]any) []int64 {
	t.Helper()
	recs, ok := page["records"].([]any)
	require.True(t, ok, "records: %v", page)
	var out []int64
	for _, r := range recs {
		out = append(out, int64(r.(map[string]any)["id"].(float64)))
	}
	return out
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestShapes(t *testing.T) {
	e := newEnv(t, fleetiotest.Options{})
	hour := 2 * time.Hour
	a := e.assign(t, e.van, e.ada, -time.Hour, &hour)

	t.Run("users/me", func(t *testing.T) {
		me := e.get(t, "/v1/users/me", http.StatusOK)
		require.Equal(t, "fleet.manager@example.com", me["email"])
		require.NotZero(t, me["id"])
	})
	t.Run("vehicle", func(t *testing.T) {
		v := e.get(t, fmt.Sprintf("/v1/vehicles/%d", e.van.ID), http.StatusOK)
		for _, k := range []string{"id", "name", "license_plate", "vin", "year", "make", "model"} {
			require.Contains(t, v, k)
		}
		require.Equal(t, "AB-123", v["license_plate"])
		e.get(t, "/v1/vehicles/999999", http.StatusNotFound)
		e.get(t, "/v1/vehicles/abc", http.StatusNotFound)
	})
	t.Run("contact", func(t *testing.T) {
		c := e.get(t, fmt.Sprintf("/v2/contacts/%d", e.ada.ID), http.StatusOK)
		for _, k := range []string{"id", "name", "first_name", "last_name", "email", "employee_number", "group_id", "custom_fields"} {
			require.Contains(t, c, k)
		}
		require.Equal(t, "Ada Lovelace", c["name"])
		require.Equal(t, "+15550100", c["mobile_phone_number"])
	})
	t.Run("assignment", func(t *testing.T) {
		page := e.get(t, "/v1/vehicle_assignments", http.StatusOK)
		require.ElementsMatch(t, []string{"start_cursor", "next_cursor", "per_page", "estimated_remaining_count", "filtered_by", "sorted_by", "records"}, keys(page))
		require.Nil(t, page["next_cursor"])
		require.EqualValues(t, 50, page["per_page"])
		recs := page["records"].([]any)
		require.Len(t, recs, 1)
		r := recs[0].(map[string]any)
		require.ElementsMatch(t, []string{"id", "created_at", "updated_at", "vehicle_id", "contact_id", "started_at", "ended_at", "current", "future", "custom_fields", "contact_full_name", "contact", "vehicle"}, keys(r))
		require.EqualValues(t, a.ID, r["id"])
		require.Equal(t, true, r["current"])
		require.Equal(t, false, r["future"])
		require.Equal(t, "Ada Lovelace", r["contact_full_name"])
		require.ElementsMatch(t, []string{"id", "email", "name", "group_id"}, keys(r["contact"].(map[string]any)))
		require.ElementsMatch(t, []string{"id", "name", "license_plate", "vin", "year", "make", "model"}, keys(r["vehicle"].(map[string]any)))
		// Times carry the account's offset, to the millisecond.
		require.Equal(t, "2026-11-03T09:00:00.000-05:00", r["started_at"])
		require.True(t, strings.HasSuffix(r["updated_at"].(string), "-05:00"), r["updated_at"])

		// The client's types decode the same bytes.
		var typed fleetio.CursorPage[fleetio.VehicleAssignment]
		_, b := e.do(t, http.MethodGet, "/v1/vehicle_assignments", "", nil)
		require.NoError(t, json.Unmarshal(b, &typed))
		require.Len(t, typed.Records, 1)
		require.True(t, typed.Records[0].StartedAt.Equal(t0.Add(-time.Hour)))
		require.Empty(t, typed.NextCursor)
	})
	t.Run("current and future follow the clock", func(t *testing.T) {
		e.clock.Advance(3 * time.Hour) // past ended_at
		got, ok := e.f.Assignment(a.ID)
		require.True(t, ok)
		require.False(t, got.Current)
		require.False(t, got.Future)
		e.clock.Set(t0.Add(-2 * time.Hour))
		got, _ = e.f.Assignment(a.ID)
		require.True(t, got.Future)
		require.False(t, got.Current)
		e.clock.Set(t0)
	})
	t.Run("requests are logged with the api version", func(t *testing.T) {
		reqs := e.f.Requests()
		require.NotEmpty(t, reqs)
		require.Equal(t, "2025-05-05", reqs[len(reqs)-1].APIVersion)
	})
}

func TestAuth(t *testing.T) {
	e := newEnv(t, fleetiotest.Options{})
	e.f.AddAPIKey("other-key", "other-account", false)
	e.f.AddAPIKey("ro-key", account, true)
	a := e.assign(t, e.van, e.ada, 0, nil)
	patch := fmt.Sprintf("/v1/vehicle_assignments/%d", a.ID)

	for _, tc := range []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		status int
	}{
		{"ok", "GET", "/v1/users/me", nil, 200},
		{"older token form", "GET", "/v1/users/me", map[string]string{"Authorization": `Token token="` + apiKey + `"`}, 200},
		{"no authorization", "GET", "/v1/users/me", map[string]string{"Authorization": ""}, 401},
		{"bearer scheme", "GET", "/v1/users/me", map[string]string{"Authorization": "Bearer " + apiKey}, 401},
		{"no account token", "GET", "/v1/vehicles", map[string]string{"Account-Token": ""}, 401},
		{"unknown key", "GET", "/v1/vehicles", map[string]string{"Authorization": "Token nope"}, 401},
		{"key of another account", "GET", "/v1/vehicles", map[string]string{"Authorization": "Token other-key"}, 403},
		{"our key, another account", "GET", "/v1/vehicles", map[string]string{"Account-Token": "other-account"}, 403},
		{"read-only key reads", "GET", "/v1/vehicle_assignments", map[string]string{"Authorization": "Token ro-key"}, 200},
		{"read-only key patches", "PATCH", patch, map[string]string{"Authorization": "Token ro-key"}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := ""
			if tc.method == "PATCH" {
				body = `{"custom_fields":{"keycafe_access_code":"1"}}`
			}
			resp, b := e.do(t, tc.method, tc.path, body, tc.hdr)
			require.Equal(t, tc.status, resp.StatusCode, "%s", b)
			if tc.status != 200 {
				var m map[string]string
				require.NoError(t, json.Unmarshal(b, &m))
				require.NotEmpty(t, m["error"])
			}
		})
	}
	got, _ := e.f.Assignment(a.ID)
	require.Nil(t, got.CustomFields[fleetio.FieldAccessCode], "a refused PATCH changed nothing")
}

func TestPagination(t *testing.T) {
	e := newEnv(t, fleetiotest.Options{})
	var want []int64
	for i := range 7 {
		want = append(want, e.assign(t, e.van, e.ada, time.Duration(i)*time.Hour, nil).ID)
	}

	for _, param := range []string{"start_cursor", "next_cursor"} {
		t.Run(param, func(t *testing.T) {
			var got []int64
			q := "per_page=3"
			var remaining []float64
			for pages := 0; ; pages++ {
				require.Less(t, pages, 5)
				page := e.get(t, "/v1/vehicle_assignments?"+q, http.StatusOK)
				require.EqualValues(t, 3, page["per_page"])
				got = append(got, ids(t, page)...)
				remaining = append(remaining, page["estimated_remaining_count"].(float64))
				next, _ := page["next_cursor"].(string)
				if next == "" {
					break
				}
				q = "per_page=3&" + param + "=" + url.QueryEscape(next)
			}
			require.Equal(t, want, got)
			require.Equal(t, []float64{4, 1, 0}, remaining)
		})
	}

	t.Run("a record created between pages shifts nothing", func(t *testing.T) {
		page := e.get(t, "/v1/vehicle_assignments?per_page=2&sort[started_at]=desc", http.StatusOK)
		first := ids(t, page)
		require.Equal(t, []int64{want[6], want[5]}, first)
		// A new assignment that sorts before the cursor must not push an
		// already-seen record onto the next page.
		e.assign(t, e.truck, e.bob, 100*time.Hour, nil)
		next := page["next_cursor"].(string)
		page = e.get(t, "/v1/vehicle_assignments?per_page=2&sort[started_at]=desc&start_cursor="+url.QueryEscape(next), http.StatusOK)
		require.Equal(t, []int64{want[4], want[3]}, ids(t, page))
		require.Equal(t, []any{map[string]any{"started_at": "desc"}}, page["sorted_by"])
	})

	for _, tc := range []struct{ name, q string }{
		{"per_page too small", "per_page=1"},
		{"per_page too big", "per_page=101"},
		{"per_page not a number", "per_page=ten"},
		{"foreign cursor", "start_cursor=bm9wZQ"},
		{"garbage cursor", "start_cursor=!!!"},
		{"cursors disagree", "start_cursor=a&next_cursor=b"},
		{"unknown filter field", "filter[color][eq]=red"},
		{"unknown operator", "filter[vehicle_id][ne]=1"},
		{"filter without operator", "filter[vehicle_id]=1"},
		{"filter value not a number", "filter[vehicle_id][eq]=van"},
		{"filter value not a time", "filter[updated_at][gte]=yesterday"},
		{"unknown sort field", "sort[color]=asc"},
		{"bad sort direction", "sort[id]=up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := e.get(t, "/v1/vehicle_assignments?"+tc.q, http.StatusBadRequest)
			require.NotEmpty(t, m["error"])
		})
	}
}

func TestFilters(t *testing.T) {
	e := newEnv(t, fleetiotest.Options{})
	a1 := e.assign(t, e.van, e.ada, -time.Hour, nil)
	e.clock.Advance(time.Minute)
	a2 := e.assign(t, e.truck, e.ada, time.Hour, nil)
	e.clock.Advance(time.Minute)
	a3 := e.assign(t, e.van, e.bob, 2*time.Hour, nil)
	mark := a2.UpdatedAt

	for _, tc := range []struct {
		name, path string
		want       []int64
	}{
		{"vehicle_id", "/v1/vehicle_assignments?filter[vehicle_id][eq]=" + fmt.Sprint(e.van.ID), []int64{a1.ID, a3.ID}},
		{"contact_id", "/v1/vehicle_assignments?filter[contact_id][eq]=" + fmt.Sprint(e.ada.ID), []int64{a1.ID, a2.ID}},
		{"both", fmt.Sprintf("/v1/vehicle_assignments?filter[vehicle_id][eq]=%d&filter[contact_id][eq]=%d", e.van.ID, e.bob.ID), []int64{a3.ID}},
		{"updated_at gte in UTC", "/v1/vehicle_assignments?filter[updated_at][gte]=" + url.QueryEscape(mark.UTC().Format(time.RFC3339Nano)), []int64{a2.ID, a3.ID}},
		{"updated_at gt with offset", "/v1/vehicle_assignments?filter[updated_at][gt]=" + url.QueryEscape(mark.Format(time.RFC3339Nano)), []int64{a3.ID}},
		{"started_at lt", "/v1/vehicle_assignments?filter[started_at][lt]=" + url.QueryEscape(t0.Format(time.RFC3339)), []int64{a1.ID}},
		{"started_at gte a date", "/v1/vehicle_assignments?filter[started_at][gte]=2026-11-04", nil},
		{"vehicle's assignments", fmt.Sprintf("/v1/vehicles/%d/vehicle_assignments", e.truck.ID), []int64{a2.ID}},
		{"sort desc", "/v1/vehicle_assignments?sort[id]=desc", []int64{a3.ID, a2.ID, a1.ID}},
		{"contacts by email, any case", "/v2/contacts?filter[email][eq]=bob@example.com", []int64{e.bob.ID}},
		{"contacts by email, no match", "/v2/contacts?filter[email][eq]=eve@example.com", nil},
		{"vehicles by name like", "/v1/vehicles?filter[name][like]=van", []int64{e.van.ID}},
		{"all vehicles", "/v1/vehicles", []int64{e.van.ID, e.truck.ID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page := e.get(t, tc.path, http.StatusOK)
			require.Equal(t, tc.want, ids(t, page))
		})
	}
	e.get(t, "/v1/vehicles/999999/vehicle_assignments", http.StatusNotFound)
	page := e.get(t, "/v1/vehicle_assignments?filter[vehicle_id][eq]=1", http.StatusOK)
	require.Equal(t, []any{map[string]any{"vehicle_id": map[string]any{"eq": "1"}}}, page["filtered_by"])
}

func TestPatchRoundTrip(t *testing.T) {
	e := newEnv(t, fleetiotest.Options{})
	a := e.assign(t, e.van, e.ada, 0, nil)
	path := fmt.Sprintf("/v1/vehicle_assignments/%d", a.ID)

	patch := func(body string, status int) map[string]any {
		t.Helper()
		resp, b := e.do(t, http.MethodPatch, path, body, nil)
		require.Equal(t, status, resp.StatusCode, "%s", b)
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m))
		return m
	}

	m := patch(`{"custom_fields":{"keycafe_access_code":"483920","keycafe_access_link":"https://x/b/tok"}}`, 200)
	require.Equal(t, "483920", m["custom_fields"].(map[string]any)["keycafe_access_code"])
	// Merged: a second PATCH keeps the first's fields.
	m = patch(`{"vehicle_assignment":{"custom_fields":{"keycafe_access_instructions":"Box at gate 3"}}}`, 200)
	cf := m["custom_fields"].(map[string]any)
	require.Equal(t, "483920", cf["keycafe_access_code"])
	require.Equal(t, "Box at gate 3", cf["keycafe_access_instructions"])

	// Read back through the list and through the seed API.
	page := e.get(t, "/v1/vehicle_assignments?filter[id][eq]="+fmt.Sprint(a.ID), http.StatusOK)
	rec := page["records"].([]any)[0].(map[string]any)
	require.Equal(t, "https://x/b/tok", rec["custom_fields"].(map[string]any)["keycafe_access_link"])
	got, _ := e.f.Assignment(a.ID)
	require.Equal(t, "483920", got.CustomFields[fleetio.FieldAccessCode])
	require.True(t, got.UpdatedAt.After(a.UpdatedAt), "PATCH bumps updated_at")

	// null clears; a number is taken as text.
	m = patch(`{"custom_fields":{"keycafe_access_code":null,"keycafe_access_link":42}}`, 200)
	cf = m["custom_fields"].(map[string]any)
	require.Contains(t, cf, "keycafe_access_code")
	require.Nil(t, cf["keycafe_access_code"])
	require.Equal(t, "42", cf["keycafe_access_link"])

	for _, tc := range []struct{ name, body string }{
		{"not json", `{"custom_fields":`},
		{"no custom_fields", `{"name":"x"}`},
		{"custom_fields not an object", `{"custom_fields":"x"}`},
		{"a value that is an object", `{"custom_fields":{"keycafe_access_code":{"a":1}}}`},
		{"array body", `[1]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := patch(tc.body, http.StatusBadRequest)
			require.NotEmpty(t, m["error"])
		})
	}
	resp, _ := e.do(t, http.MethodPatch, "/v1/vehicle_assignments/999999", `{"custom_fields":{}}`, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, _ = e.do(t, http.MethodPatch, path, `{"custom_fields":{"x":"`+strings.Repeat("a", 2<<20)+`"}}`, nil)
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)

	t.Run("defined fields", func(t *testing.T) {
		e.f.DefineCustomField(fleetio.FieldAccessCode, false)
		e.f.DefineCustomField(fleetio.FieldAccessLink, false)
		e.f.DefineCustomField(fleetio.FieldAccessInstructions, false)
		e.f.DefineCustomField("cost_center", true)
		m := patch(`{"custom_fields":{"keycafe_access_code":"111111"}}`, http.StatusUnprocessableEntity)
		require.Contains(t, fmt.Sprint(m["errors"]), "cost_center is required")
		m = patch(`{"custom_fields":{"cost_center":"A1","keycafe_acces_code":"1"}}`, http.StatusUnprocessableEntity)
		require.Contains(t, fmt.Sprint(m["errors"]), "keycafe_acces_code")
		m = patch(`{"custom_fields":{"cost_center":"A1","keycafe_access_code":"111111"}}`, 200)
		require.Equal(t, "111111", m["custom_fields"].(map[string]any)["keycafe_access_code"])
	})
}

func TestFailuresOnDemand(t *testing.T) {
	e := newEnv(t, fleetiotest.Options{})

	t.Run("FailNext 429", func(t *testing.T) {
		e.f.FailNext(2, http.StatusTooManyRequests)
		for range 2 {
			resp, b := e.do(t, "GET", "/v1/vehicles", "", nil)
			require.Equal(t, 429, resp.StatusCode)
			require.Equal(t, "1", resp.Header.Get("Retry-After"))
			require.JSONEq(t, `{"error":"`+fleetiotest.TooManyRequestsBody+`"}`, string(b))
			require.Contains(t, string(b), "Too many requests detected from your account token")
		}
		e.get(t, "/v1/vehicles", http.StatusOK)
	})
	t.Run("FailNext 503 and SetRetryAfter", func(t *testing.T) {
		e.f.SetRetryAfter(0)
		e.f.FailNext(1, http.StatusServiceUnavailable)
		e.f.FailNext(1, http.StatusTooManyRequests)
		e.get(t, "/v1/vehicles", http.StatusServiceUnavailable)
		resp, _ := e.do(t, "GET", "/v1/vehicles", "", nil)
		require.Equal(t, "0", resp.Header.Get("Retry-After"))
		e.get(t, "/v1/vehicles", http.StatusOK)
	})
	t.Run("unauthenticated requests don't use up failures", func(t *testing.T) {
		e.f.FailNext(1, http.StatusInternalServerError)
		resp, _ := e.do(t, "GET", "/v1/vehicles", "", map[string]string{"Authorization": ""})
		require.Equal(t, 401, resp.StatusCode)
		e.get(t, "/v1/vehicles", http.StatusInternalServerError)
	})
	t.Run("RateLimit per minute of the clock", func(t *testing.T) {
		e.f.RateLimit(3)
		for range 3 {
			e.get(t, "/v1/users/me", http.StatusOK)
		}
		e.clock.Advance(20 * time.Second)
		resp, _ := e.do(t, "GET", "/v1/users/me", "", nil)
		require.Equal(t, 429, resp.StatusCode)
		require.Equal(t, "40", resp.Header.Get("Retry-After"))
		e.clock.Advance(40 * time.Second)
		e.get(t, "/v1/users/me", http.StatusOK)
		e.f.RateLimit(0)
	})
}

func TestSeedErrors(t *testing.T) {
	e := newEnv(t, fleetiotest.Options{})
	_, err := e.f.CreateAssignment(fleetio.VehicleAssignment{VehicleID: 424242, ContactID: e.ada.ID, StartedAt: t0})
	require.ErrorIs(t, err, fleetiotest.ErrNotFound)
	_, err = e.f.CreateAssignment(fleetio.VehicleAssignment{VehicleID: e.van.ID, ContactID: e.ada.ID})
	require.ErrorContains(t, err, "started_at")
	before := t0.Add(-time.Hour)
	_, err = e.f.CreateAssignment(fleetio.VehicleAssignment{VehicleID: e.van.ID, ContactID: e.ada.ID, StartedAt: t0, EndedAt: &before})
	require.ErrorContains(t, err, "before started_at")
	_, err = e.f.UpdateAssignment(424242, func(*fleetio.VehicleAssignment) {})
	require.ErrorIs(t, err, fleetiotest.ErrNotFound)
	_, err = e.f.DeleteAssignment(424242)
	require.ErrorIs(t, err, fleetiotest.ErrNotFound)
	_, err = e.f.AddVehicle(fleetio.Vehicle{ID: e.van.ID})
	require.Error(t, err)
	_, err = e.f.AddUser(fleetio.User{})
	require.Error(t, err)

	u, err := e.f.AddUser(fleetio.User{Email: "admin@depot.example", Name: "Depot Admin"})
	require.NoError(t, err)
	me := e.get(t, "/v1/users/me", http.StatusOK)
	require.Equal(t, "admin@depot.example", me["email"])
	require.EqualValues(t, u.ID, me["id"])
	require.Len(t, e.f.Vehicles(), 2)
	require.Len(t, e.f.Contacts(), 2)
}
