package fleetiotest

import (
	"net/url"
	"testing"
)

// FuzzListQuery feeds list parameters from outside: parsing and paging must
// answer with an error or a page, never panic.
func FuzzListQuery(f *testing.F) {
	for _, s := range []string{
		"per_page=3&start_cursor=eyJ2IjpbMl0sImlkIjoyfQ",
		"filter[updated_at][gte]=2026-11-03T10:00:00.000-05:00&sort[started_at]=desc",
		"filter[vehicle_id][eq]=12&next_cursor=x",
		"filter[ended_at][eq]=null",
		"filter[[]][]=&sort[]=asc",
	} {
		f.Add(s)
	}
	rows := []row{}
	for i, rec := range []map[string]any{
		{"id": 1, "vehicle_id": 12, "started_at": "2026-11-03T10:00:00.000-05:00", "ended_at": nil, "updated_at": "2026-11-03T10:00:00.000-05:00", "current": true},
		{"id": 2, "vehicle_id": 13, "started_at": "2026-11-04T10:00:00.000-05:00", "ended_at": "2026-11-05T10:00:00.000-05:00", "updated_at": "2026-11-03T11:00:00.000-05:00", "current": false},
	} {
		r, err := toRow(int64(i+1), rec)
		if err != nil {
			f.Fatal(err)
		}
		rows = append(rows, r)
	}
	f.Fuzz(func(t *testing.T, q string) {
		vals, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		lq, err := parseListQuery(vals, assignmentList)
		if err != nil {
			return
		}
		_, _ = page(rows, lq)
	})
}

// FuzzPatch feeds PATCH bodies: an error or custom fields of strings and
// nulls, never a panic.
func FuzzPatch(f *testing.F) {
	for _, s := range []string{
		`{"custom_fields":{"keycafe_access_code":"483920"}}`,
		`{"vehicle_assignment":{"custom_fields":{"a":null,"b":1.5e3,"c":true}}}`,
		`{"custom_fields":[]}`, `null`, `{"custom_fields":{"":"x"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fields, err := parsePatch(body)
		if err != nil {
			return
		}
		for k, v := range fields {
			if _, ok := v.(string); !ok && v != nil {
				t.Fatalf("field %q is %T", k, v)
			}
		}
	})
}
