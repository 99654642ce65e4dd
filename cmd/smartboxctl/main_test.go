package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/smartbox-oss/smartbox/store"
)

// ctl runs smartboxctl in-process and returns its exit code and output.
func ctl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

// initBox makes a store with the demo records imported.
func initBox(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	code, out, errOut := ctl(t, "init", "--data", dir, "--box-id", "box-1")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "created store for box box-1")
	code, out, errOut = ctl(t, "import", "--data", dir, "../smartboxd/demo-records.json")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "key key-1: added (slot 1, fob 01000734E0)")
	require.Contains(t, out, "grant booking-1001: added (booking, keys key-1)")
	require.Contains(t, out, "revision 0 -> 1")
	return dir
}

// demoCodes are the codes in cmd/smartboxd/demo-records.json.
var demoCodes = []string{"123456", "246810", "135790", "9999"}

func requireNoCode(t *testing.T, out string) {
	t.Helper()
	for _, c := range demoCodes {
		require.NotContains(t, out, c, "output shows a code")
	}
}

func TestImportAndList(t *testing.T) {
	dir := initBox(t)

	code, out, _ := ctl(t, "grants", "--data", dir)
	require.Equal(t, exitOK, code)
	require.Regexp(t, `booking-1003 +booking +key-3,key-4 +always +0/unlimited +no +import +driver-7`, out)
	require.Contains(t, out, "driver-7-code")
	require.Contains(t, out, "0/unlimited")
	requireNoCode(t, out)

	code, out, _ = ctl(t, "keys", "--data", dir)
	require.Equal(t, exitOK, code)
	require.Regexp(t, `4 +key-4 +0100074D55 +Car 8 \(Toyota Corolla\)`, out)

	code, out, _ = ctl(t, "events", "--data", dir)
	require.Equal(t, exitOK, code)
	require.Contains(t, out, "records_applied")
	requireNoCode(t, out)

	// The same file again changes nothing: no new revision, no event.
	code, out, _ = ctl(t, "import", "--data", dir, "../smartboxd/demo-records.json")
	require.Equal(t, exitOK, code)
	require.Contains(t, out, "nothing to change")

	// A changed window and a new code are reported, never the code itself.
	f := writeFile(t, "change.json", `{"grants": [
		{"id": "booking-1001", "kind": "booking", "key_ids": ["key-1"], "code": "777111", "max_uses": 2}]}`)
	code, out, errOut := ctl(t, "import", f, "--data", dir) // flags after the file too
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "grant booking-1001: changed (booking, keys key-1; new code)")
	require.Contains(t, out, "revision 1 -> 2")
	require.NotContains(t, out, "777111")
	code, out, _ = ctl(t, "grants", "--data", dir)
	require.Equal(t, exitOK, code)
	require.Contains(t, out, "0/2")
	require.NotContains(t, out, "777111")

	code, out, _ = ctl(t, "events", "--data", dir, "--after", "1", "--limit", "5")
	require.Equal(t, exitOK, code)
	require.Equal(t, 3, strings.Count(out, "\n"), "the box line, the table header and event 2:\n%s", out)
	require.Contains(t, out, "\n2 ")
}

func TestImportBadFileChangesNothing(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"syntax", `{"keys": [`, "nothing was changed"},
		{"unknown field", `{"keys": [{"id": "k9", "fob_uid": "0100000000", "slot": 9, "colour": "red"}]}`, "colour"},
		{"bad fob", `{"keys": [{"id": "k9", "fob_uid": "xyz", "slot": 9}]}`, `fob_uid "xyz"`},
		{"slot out of range", `{"keys": [{"id": "k9", "fob_uid": "0100000000", "slot": 13}]}`, "slot 13"},
		{"second record bad", `{"grants": [
			{"id": "g-ok", "kind": "booking", "key_ids": ["key-1"], "code": "55555555"},
			{"id": "g-17", "kind": "booking", "key_ids": ["key-1"]}]}`, `grants[1] (id "g-17")`},
		{"code in use", `{"grants": [{"id": "g-new", "kind": "booking", "key_ids": ["key-2"], "code": "123456"}]}`, "booking-1001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := initBox(t)
			_, before, _ := ctl(t, "grants", "--data", dir)
			_, evBefore, _ := ctl(t, "events", "--data", dir)
			code, out, errOut := ctl(t, "import", "--data", dir, writeFile(t, "bad.json", tc.body))
			require.Equal(t, exitFailure, code, out)
			require.Contains(t, errOut, tc.want)
			require.Contains(t, errOut, "nothing was changed")
			requireNoCode(t, errOut)
			_, after, _ := ctl(t, "grants", "--data", dir)
			_, evAfter, _ := ctl(t, "events", "--data", dir)
			require.Equal(t, before, after)
			require.Equal(t, evBefore, evAfter)
		})
	}
}

func TestInUse(t *testing.T) {
	dir := initBox(t)
	s, err := store.Open(filepath.Join(dir, "box.db"), store.Options{Logger: discardLogger})
	require.NoError(t, err)
	defer s.Close()
	code, _, errOut := ctl(t, "grants", "--data", dir)
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "in use")
	require.Contains(t, errOut, "smartboxd holds "+filepath.Join(dir, "box.db")+" but its socket")
}

func TestUsage(t *testing.T) {
	dir := initBox(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no command", nil, exitUsage, "usage: smartboxctl"},
		{"help", []string{"help"}, exitOK, "usage: smartboxctl"},
		{"unknown command", []string{"flash"}, exitUsage, `unknown command "flash"`},
		{"unknown flag", []string{"grants", "--data", dir, "--codes"}, exitUsage, "flag provided but not defined: -codes"},
		{"no data", []string{"keys", "--data", ""}, exitUsage, "--data DIR is required"},
		{"no file", []string{"import", "--data", dir}, exitUsage, "FILE.json is required"},
		{"bad slots", []string{"import", "--data", dir, "--slots", "0", "x.json"}, exitUsage, "--slots 0"},
		{"init without id", []string{"init", "--data", dir}, exitUsage, "--box-id ID is required"},
		{"init bad id", []string{"init", "--data", dir, "--box-id", "a b"}, exitUsage, `--box-id "a b"`},
		{"init other box", []string{"init", "--data", dir, "--box-id", "box-2"}, exitFailure, "another box"},
		{"no store", []string{"keys", "--data", t.TempDir()}, exitFailure, "smartboxctl init"},
		{"missing file", []string{"import", "--data", dir, "/nonexistent.json"}, exitFailure, "nonexistent.json"},
		{"negative limit", []string{"events", "--data", dir, "--limit", "-1"}, exitUsage, "--limit -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := ctl(t, tc.args...)
			require.Equal(t, tc.code, code, errOut)
			require.Contains(t, errOut, tc.want)
		})
	}
	// init again with the same id is fine.
	code, out, _ := ctl(t, "init", "--data", dir, "--box-id", "box-1")
	require.Equal(t, exitOK, code)
	require.Contains(t, out, "already initialised for box box-1")
}
