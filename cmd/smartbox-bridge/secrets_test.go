package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// Secret files others may read are refused at start, with the file and the
// fix in the message, as smartboxd refuses its own.
func TestServeRefusesLooseSecretFiles(t *testing.T) {
	dir := t.TempDir()
	secret := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte("s3cret-value\n"), mode))
		require.NoError(t, os.Chmod(p, mode))
		return p
	}
	loose := secret("loose", 0o644)
	groupRead := secret("group", 0o640)
	for _, tc := range []struct {
		name, field, toml, file string
	}{
		{"broker password", "broker.password_file",
			"[broker]\nlisten = \"127.0.0.1:0\"\npassword_file = \"" + loose + "\"\n", loose},
		{"smtp password", "notify.email.password_file",
			"[broker]\nlisten = \"127.0.0.1:0\"\n[notify.email]\nhost = \"127.0.0.1\"\nfrom = \"keys@example.com\"\nusername = \"u\"\npassword_file = \"" + groupRead + "\"\n", groupRead},
		{"sms token", "notify.sms.auth_token_file",
			"[broker]\nlisten = \"127.0.0.1:0\"\n[notify.sms]\naccount_sid = \"AC1\"\nfrom = \"+15551234567\"\nauth_token_file = \"" + loose + "\"\n", loose},
		{"code key", "cloud.code_key_file",
			"[broker]\nlisten = \"127.0.0.1:0\"\n[cloud]\ncode_key_file = \"" + loose + "\"\n", loose},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfgPath := filepath.Join(t.TempDir(), "bridge.toml")
			src := "data_dir = \"" + filepath.Join(t.TempDir(), "data") + "\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[fleetio]\npublic_listen = \"127.0.0.1:0\"\n" + tc.toml
			require.NoError(t, os.WriteFile(cfgPath, []byte(src), 0o600))
			cfg, err := LoadConfig(cfgPath)
			require.NoError(t, err)
			_, err = startService(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard)
			require.Error(t, err)
			msg := err.Error()
			require.Contains(t, msg, tc.field)
			require.Contains(t, msg, tc.file+" has mode ")
			require.Contains(t, msg, "chmod 600 "+tc.file)
			require.NotContains(t, msg, "s3cret")
		})
	}
}
