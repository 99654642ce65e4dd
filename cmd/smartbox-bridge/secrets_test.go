package main

import (
	"bytes"
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

// An existing data directory that others may read is made 0700, and the log
// says so; a new one is made 0700.
func TestServeDataDirPrivate(t *testing.T) {
	t.Run("existing loose", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		require.NoError(t, os.Mkdir(dir, 0o755))
		require.NoError(t, os.Chmod(dir, 0o755))
		b := startBridge(t, dir, "")
		fi, err := os.Stat(dir)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
		require.Contains(t, b.log.String(), "made it 0700")
		require.Contains(t, b.log.String(), "was=0755")
	})
	t.Run("new", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "new", "data")
		b := startBridge(t, dir, "")
		fi, err := os.Stat(dir)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
		require.False(t, bytes.Contains([]byte(b.log.String()), []byte("made it 0700")))
	})
}

// The bridge's own secret files (the Ed25519 signing key, admin.token,
// cloud.passwd) are made 0600 and, once there, refused if others may read
// them: the message names the file and the fix.
func TestOwnSecretFilesRefusedWhenLoose(t *testing.T) {
	load := map[string]func(path string) error{
		fileSigningKey: func(p string) error { _, _, err := loadOrCreateSigningKey(p); return err },
		fileAdminToken: func(p string) error { _, err := loadOrCreateToken(p); return err },
		fileCloudPass:  func(p string) error { _, err := loadOrCreateToken(p); return err },
	}
	for name, fn := range load {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), name)
			require.NoError(t, fn(p), "made")
			fi, err := os.Stat(p)
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
			require.NoError(t, fn(p), "read back")

			for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
				require.NoError(t, os.Chmod(p, mode))
				err := fn(p)
				require.Error(t, err, "mode %04o", mode)
				require.Contains(t, err.Error(), p+" has mode ")
				require.Contains(t, err.Error(), "chmod 600 "+p)
			}
		})
	}
}
