package secretfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), mode))
		require.NoError(t, os.Chmod(p, mode)) // past the umask
		return p
	}
	good := write("good", "s3cret\n", 0o600)
	b, err := Read(good, 64)
	require.NoError(t, err)
	require.Equal(t, "s3cret\n", string(b))

	for _, tc := range []struct {
		name string
		mode os.FileMode
	}{{"world-readable", 0o644}, {"group-readable", 0o640}, {"group-writable", 0o620}, {"others-executable", 0o601}} {
		t.Run(tc.name, func(t *testing.T) {
			p := write(tc.name, "s3cret", tc.mode)
			_, err := Read(p, 64)
			require.Error(t, err)
			require.Contains(t, err.Error(), p+" has mode ")
			require.Contains(t, err.Error(), "chmod 600 "+p)
			require.NotContains(t, err.Error(), "s3cret")
		})
	}
	t.Run("too large", func(t *testing.T) {
		_, err := Read(write("big", "0123456789", 0o600), 4)
		require.ErrorContains(t, err, "larger than 4 bytes")
	})
	t.Run("directory", func(t *testing.T) {
		_, err := Read(dir, 4)
		require.ErrorContains(t, err, "is not a regular file")
	})
	t.Run("fifo is not opened", func(t *testing.T) {
		p := filepath.Join(dir, "fifo")
		require.NoError(t, syscall.Mkfifo(p, 0o600))
		_, err := Read(p, 4) // would block in open if it were opened
		require.ErrorContains(t, err, "is not a regular file")
	})
	t.Run("missing", func(t *testing.T) {
		_, err := Read(filepath.Join(dir, "nope"), 4)
		require.ErrorIs(t, err, os.ErrNotExist)
	})
}

func TestPrivateDir(t *testing.T) {
	root := t.TempDir()
	t.Run("made 0700", func(t *testing.T) {
		d := filepath.Join(root, "new", "data")
		was, err := PrivateDir(d)
		require.NoError(t, err)
		require.Zero(t, was)
		fi, err := os.Stat(d)
		require.NoError(t, err)
		require.Equal(t, PrivateDirMode, fi.Mode().Perm())
	})
	t.Run("a looser one is tightened", func(t *testing.T) {
		d := filepath.Join(root, "loose")
		require.NoError(t, os.Mkdir(d, 0o755))
		require.NoError(t, os.Chmod(d, 0o755))
		was, err := PrivateDir(d)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o755), was)
		fi, err := os.Stat(d)
		require.NoError(t, err)
		require.Equal(t, PrivateDirMode, fi.Mode().Perm())
	})
	t.Run("a file is not a directory", func(t *testing.T) {
		f := filepath.Join(root, "file")
		require.NoError(t, os.WriteFile(f, nil, 0o600))
		_, err := PrivateDir(f)
		require.Error(t, err)
	})
}
