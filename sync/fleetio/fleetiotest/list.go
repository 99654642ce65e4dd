package fleetiotest

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Cursor pages, as Fleetio's newer list endpoints serve them.
const (
	defaultPerPage = 50
	minPerPage     = 2
	maxPerPage     = 100
)

// listSpec says which fields a list endpoint filters and sorts on.
type listSpec struct {
	filters map[string]bool
	sorts   map[string]bool
}

func fieldSet(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

var filterOps = fieldSet("eq", "like", "lt", "lte", "gt", "gte")

type condition struct {
	field, op, value string
}

type sortKey struct {
	field string
	desc  bool
}

// listQuery is a parsed list request.
type listQuery struct {
	conds   []condition
	sort    []sortKey
	perPage int
	after   *cursor // nil: from the start
	rawCur  string
}

// cursor is a keyset position: the sort values and id of the last record of
// the previous page. Keyset rather than offset, so that records created or
// deleted between two pages shift nothing.
type cursor struct {
	Values []any `json:"v"`
	ID     int64 `json:"id"`
}

func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string, nsort int) (*cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("cursor %q is not one this server issued", s)
	}
	var c cursor
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&c); err != nil || len(c.Values) != nsort {
		return nil, fmt.Errorf("cursor %q is not one this server issued (or the sort changed)", s)
	}
	for i, v := range c.Values {
		if n, ok := v.(json.Number); ok {
			f, err := n.Float64()
			if err != nil {
				return nil, fmt.Errorf("cursor %q: bad value", s)
			}
			c.Values[i] = f
		}
	}
	return &c, nil
}

// parseListQuery reads per_page, start_cursor / next_cursor (Fleetio's docs
// and its own connector disagree on the name: both are taken),
// filter[field][op] and sort[field]. Errors name the parameter.
func parseListQuery(q url.Values, spec listSpec) (listQuery, error) {
	lq := listQuery{perPage: defaultPerPage}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range q {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range keys {
		vals := q[k]
		v := vals[len(vals)-1]
		switch {
		case k == "per_page":
			n, err := strconv.Atoi(v)
			if err != nil || n < minPerPage || n > maxPerPage {
				return lq, fmt.Errorf("per_page %q: must be a whole number from %d to %d", v, minPerPage, maxPerPage)
			}
			lq.perPage = n
		case k == "start_cursor" || k == "next_cursor":
			if v == "" {
				continue
			}
			if lq.rawCur != "" && lq.rawCur != v {
				return lq, fmt.Errorf("start_cursor and next_cursor disagree")
			}
			lq.rawCur = v
		case strings.HasPrefix(k, "filter["):
			field, op, ok := parseBrackets(k, "filter", 2)
			if !ok {
				return lq, fmt.Errorf("%s: want filter[field][op]", k)
			}
			if !spec.filters[field] {
				return lq, fmt.Errorf("%s: cannot filter on %q", k, field)
			}
			if !filterOps[op] {
				return lq, fmt.Errorf("%s: unknown operator %q (eq, like, lt, lte, gt, gte)", k, op)
			}
			lq.conds = append(lq.conds, condition{field: field, op: op, value: v})
		case strings.HasPrefix(k, "sort["):
			field, _, ok := parseBrackets(k, "sort", 1)
			if !ok {
				return lq, fmt.Errorf("%s: want sort[field]", k)
			}
			if !spec.sorts[field] {
				return lq, fmt.Errorf("%s: cannot sort on %q", k, field)
			}
			switch strings.ToLower(v) {
			case "asc":
				lq.sort = append(lq.sort, sortKey{field: field})
			case "desc":
				lq.sort = append(lq.sort, sortKey{field: field, desc: true})
			default:
				return lq, fmt.Errorf("%s=%q: want asc or desc", k, v)
			}
		}
	}
	if len(lq.sort) == 0 {
		lq.sort = []sortKey{{field: "id"}}
	}
	if lq.rawCur != "" {
		c, err := decodeCursor(lq.rawCur, len(lq.sort))
		if err != nil {
			return lq, err
		}
		lq.after = c
	}
	return lq, nil
}

// parseBrackets splits "filter[a][b]" into a, b (n = 2) or "sort[a]" (n = 1).
func parseBrackets(k, prefix string, n int) (string, string, bool) {
	rest, ok := strings.CutPrefix(k, prefix)
	if !ok {
		return "", "", false
	}
	var parts []string
	for rest != "" {
		if rest[0] != '[' {
			return "", "", false
		}
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return "", "", false
		}
		parts = append(parts, rest[1:end])
		rest = rest[end+1:]
	}
	if len(parts) != n || parts[0] == "" {
		return "", "", false
	}
	if n == 2 {
		return parts[0], parts[1], parts[1] != ""
	}
	return parts[0], "", true
}

// row is one record as JSON fields, with its encoded form for the page.
type row struct {
	id     int64
	fields map[string]any
	raw    json.RawMessage
}

func toRow(id int64, rec any) (row, error) {
	m, err := wireFields(rec)
	if err != nil {
		return row{}, err
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return row{}, err
	}
	return row{id: id, fields: m, raw: raw}, nil
}

// pageBody is the wire shape of a cursor page. next_cursor is null on the
// last page, as Fleetio sends it.
type pageBody struct {
	StartCursor             *string             `json:"start_cursor"`
	NextCursor              *string             `json:"next_cursor"`
	PerPage                 int                 `json:"per_page"`
	EstimatedRemainingCount int                 `json:"estimated_remaining_count"`
	FilteredBy              []map[string]any    `json:"filtered_by"`
	SortedBy                []map[string]string `json:"sorted_by"`
	Records                 []json.RawMessage   `json:"records"`
}

// page filters, sorts and cuts rows per lq.
func page(rows []row, lq listQuery) (pageBody, error) {
	var kept []row
	for _, r := range rows {
		ok, err := matches(r, lq.conds)
		if err != nil {
			return pageBody{}, err
		}
		if ok {
			kept = append(kept, r)
		}
	}
	order := func(a, b row) int {
		for _, k := range lq.sort {
			c := compareValues(a.fields[k.field], b.fields[k.field])
			if k.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return cmp.Compare(a.id, b.id)
	}
	slices.SortFunc(kept, order)
	if lq.after != nil {
		pos := row{id: lq.after.ID, fields: map[string]any{}}
		for i, k := range lq.sort {
			pos.fields[k.field] = lq.after.Values[i]
		}
		i, _ := slices.BinarySearchFunc(kept, pos, order)
		for i < len(kept) && order(kept[i], pos) <= 0 {
			i++
		}
		kept = kept[i:]
	}
	body := pageBody{PerPage: lq.perPage, FilteredBy: []map[string]any{}, SortedBy: []map[string]string{}, Records: []json.RawMessage{}}
	if lq.rawCur != "" {
		c := lq.rawCur
		body.StartCursor = &c
	}
	for _, c := range lq.conds {
		body.FilteredBy = append(body.FilteredBy, map[string]any{c.field: map[string]string{c.op: c.value}})
	}
	for _, k := range lq.sort {
		dir := "asc"
		if k.desc {
			dir = "desc"
		}
		body.SortedBy = append(body.SortedBy, map[string]string{k.field: dir})
	}
	n := min(lq.perPage, len(kept))
	for _, r := range kept[:n] {
		body.Records = append(body.Records, r.raw)
	}
	body.EstimatedRemainingCount = len(kept) - n
	if n > 0 && len(kept) > n {
		last := kept[n-1]
		c := cursor{ID: last.id}
		for _, k := range lq.sort {
			c.Values = append(c.Values, last.fields[k.field])
		}
		next := encodeCursor(c)
		body.NextCursor = &next
	}
	return body, nil
}

func matches(r row, conds []condition) (bool, error) {
	for _, c := range conds {
		ok, err := match(r.fields[c.field], c)
		if err != nil {
			return false, err
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

// match compares a record's field with a filter value by the field's type:
// numbers numerically, timestamps as times (the value may be RFC 3339 with
// any offset, or a date), other strings as text (like: case-insensitive
// substring). A null field matches only eq "" or eq "null".
func match(field any, c condition) (bool, error) {
	if field == nil {
		return c.op == "eq" && (c.value == "" || c.value == "null"), nil
	}
	var d int
	switch f := field.(type) {
	case float64:
		v, err := strconv.ParseFloat(c.value, 64)
		if err != nil {
			return false, fmt.Errorf("filter[%s][%s]=%q: not a number", c.field, c.op, c.value)
		}
		if c.op == "like" {
			return strings.Contains(strconv.FormatFloat(f, 'f', -1, 64), c.value), nil
		}
		d = cmp.Compare(f, v)
	case bool:
		v, err := strconv.ParseBool(c.value)
		if err != nil || c.op != "eq" {
			return false, fmt.Errorf("filter[%s][%s]=%q: want eq true or false", c.field, c.op, c.value)
		}
		return f == v, nil
	case string:
		if c.op == "like" {
			return strings.Contains(strings.ToLower(f), strings.ToLower(c.value)), nil
		}
		if ft, ok := parseTime(f); ok {
			vt, ok := parseTime(c.value)
			if !ok {
				return false, fmt.Errorf("filter[%s][%s]=%q: not a time (RFC 3339 or YYYY-MM-DD)", c.field, c.op, c.value)
			}
			d = ft.Compare(vt)
		} else if c.op == "eq" {
			return strings.EqualFold(f, c.value), nil
		} else {
			d = strings.Compare(f, c.value)
		}
	default:
		return false, fmt.Errorf("filter[%s]: field cannot be filtered", c.field)
	}
	switch c.op {
	case "eq":
		return d == 0, nil
	case "lt":
		return d < 0, nil
	case "lte":
		return d <= 0, nil
	case "gt":
		return d > 0, nil
	case "gte":
		return d >= 0, nil
	}
	return false, fmt.Errorf("filter[%s][%s]: unknown operator", c.field, c.op)
}

func parseTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// compareValues orders two JSON field values; nulls sort last.
func compareValues(a, b any) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	switch x := a.(type) {
	case float64:
		if y, ok := b.(float64); ok {
			return cmp.Compare(x, y)
		}
	case string:
		if y, ok := b.(string); ok {
			xt, okx := parseTime(x)
			yt, oky := parseTime(y)
			if okx && oky {
				return xt.Compare(yt)
			}
			return strings.Compare(x, y)
		}
	case bool:
		if y, ok := b.(bool); ok {
			switch {
			case x == y:
				return 0
			case !x:
				return -1
			}
			return 1
		}
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

// timeFields are printed as Fleetio prints times: always three fractional
// digits and the account offset ("2017-11-03T10:15:38.741-05:00"), where
// time.Time's JSON would drop trailing zeros.
var timeFields = []string{"created_at", "updated_at", "started_at", "ended_at"}

// wireFields is rec as the JSON fields Fleetio sends: custom_fields always
// present (an object, {} when empty: the shared types omit it when empty)
// and times in Fleetio's format.
func wireFields(rec any) (map[string]any, error) {
	raw, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if m["custom_fields"] == nil {
		m["custom_fields"] = map[string]any{}
	}
	for _, k := range timeFields {
		s, ok := m[k].(string)
		if !ok {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", k, s, err)
		}
		m[k] = t.Format(fleetioTime)
	}
	return m, nil
}

const fleetioTime = "2006-01-02T15:04:05.000Z07:00"

// wire is rec encoded as Fleetio sends it.
func wire(rec any) (json.RawMessage, error) {
	m, err := wireFields(rec)
	if err != nil {
		return nil, err
	}
	return json.Marshal(m)
}
