package bridge

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// An existing data directory that others may read is made 0700, and the log
// says so; a new one is made 0700.
func TestServeDataDirPrivate(t *testing.T) {
	t.Run("existing loose", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		require.NoError(t, os.Mkdir(dir, 0o755))
		require.NoError(t, os.Chmod(dir, 0o755))
		b := startTest(t, Options{DataDir: dir})
		fi, err := os.Stat(dir)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
		require.Contains(t, b.log.String(), "made it 0700")
		require.Contains(t, b.log.String(), "was=0755")
	})
	t.Run("new", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "new", "data")
		b := startTest(t, Options{DataDir: dir})
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
		FileSigningKey:    func(p string) error { _, _, err := loadOrCreateSigningKey(p); return err },
		FileAdminToken:    func(p string) error { _, err := loadOrCreateToken(p); return err },
		FileCloudPassword: func(p string) error { _, err := loadOrCreateToken(p); return err },
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
