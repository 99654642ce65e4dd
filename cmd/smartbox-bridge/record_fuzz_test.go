package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzReadRecord feeds arbitrary bytes as the provisioning record of
// `register-box --record FILE` (what smartboxctl provision --offline
// wrote, carried to the bridge by hand): readRecord never panics, refuses
// with an error naming --record, or gives a record with a box id and a
// request that encodes and reads back the same.
func FuzzReadRecord(f *testing.F) {
	// One file per fuzzing process, rewritten per input: inputs run one
	// at a time within a process.
	path := filepath.Join(f.TempDir(), "depot-1.json")
	f.Add([]byte(`{"register":{"id":"depot-1","public_key":"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=","slots":12,"name":"Depot 1"},` +
		`"csr":"-----BEGIN CERTIFICATE REQUEST-----\nMIHL\n-----END CERTIFICATE REQUEST-----\n"}`))
	f.Add([]byte(`{"register":{"id":"depot-1"}}`))
	f.Add([]byte(`{"register":{"id":"depot-1","public_key":"x"},"csr":"x","cert":"y"}`))
	f.Add([]byte(`{"register":{"id":"depot-1"},"csr":"x"} trailing`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		require.NoError(t, os.WriteFile(path, data, 0o600))
		rec, err := readRecord(path)
		if err != nil {
			require.True(t, strings.HasPrefix(err.Error(), "--record "), "the error names the flag: %v", err)
			return
		}
		require.NotEmpty(t, rec.Register.ID)
		require.NotEmpty(t, rec.CSR)
		enc, err := json.Marshal(rec)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, enc, 0o600))
		again, err := readRecord(path)
		require.NoError(t, err, "its own encoding: %s", enc)
		require.Equal(t, rec, again)
	})
}
