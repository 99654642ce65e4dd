// Package secretfile reads the files that hold a command's secrets
// (passwords, tokens, keys) the same way in smartboxd and smartbox-bridge:
// a secret file must be a regular file that neither its group nor others
// may read or write, and a data directory that holds secrets is 0700.
//
// A secret readable by others is a secret shared with every service and
// user on the machine: the broker password logs in as the cloud, the SMTP
// password sends mail as the depot. Refusing to start is the only way such a
// mistake gets noticed; the message names the file and the fix.
package secretfile

import (
	"fmt"
	"io"
	"io/fs"
	"os"
)

// LooseBits are the permission bits a secret file must not have: any
// access for group or others.
const LooseBits fs.FileMode = 0o077

// MaxSize bounds a password, token or key file: a secret is one short line
// (a signing key a PEM block of about 120 bytes), and a path mistyped to a
// log file must not be read whole.
const MaxSize = 4 << 10

// PrivateDirMode is the mode of a directory that holds secrets.
const PrivateDirMode fs.FileMode = 0o700

// Check says whether the file at path, described by fi, may hold a secret.
func Check(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&LooseBits != 0 {
		return fmt.Errorf("%s has mode %04o: it holds a secret and must not be readable by group or others (chmod 600 %s)",
			path, perm, path)
	}
	return nil
}

// Read reads the secret file at path, at most limit bytes. The file is
// checked (Check) before it is opened, so that a FIFO or device is never
// opened, and again once open, so that a file swapped in between is
// checked too.
func Read(path string, limit int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := Check(path, fi); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if err := Check(path, fi); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// PrivateDir makes dir (and its parents) if it is missing and makes it
// PrivateDirMode if it is looser: a directory of secrets made earlier by
// hand or by an older release with 0755 keeps them from nobody. was is the
// mode it had when it was changed (0 when it was not), for the caller to
// log.
func PrivateDir(dir string) (was fs.FileMode, err error) {
	if err := os.MkdirAll(dir, PrivateDirMode); err != nil {
		return 0, err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return 0, err
	}
	if !fi.IsDir() {
		return 0, fmt.Errorf("%s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&LooseBits != 0 {
		if err := os.Chmod(dir, PrivateDirMode); err != nil {
			return 0, fmt.Errorf("%s has mode %04o and cannot be made %04o: %w", dir, perm, PrivateDirMode, err)
		}
		return perm, nil
	}
	return 0, nil
}
