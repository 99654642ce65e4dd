// Package secretfile forwards to internal/secretfile, where the checks moved
// so that sync/bridge (outside cmd/) can use them too. It stays until the
// cmd files that import this path are moved over.
package secretfile

import (
	"io/fs"

	"github.com/smartbox-oss/smartbox/internal/secretfile"
)

// LooseBits and PrivateDirMode: see internal/secretfile.
const (
	LooseBits      = secretfile.LooseBits
	PrivateDirMode = secretfile.PrivateDirMode
)

// Check is internal/secretfile.Check.
func Check(path string, fi fs.FileInfo) error { return secretfile.Check(path, fi) }

// Read is internal/secretfile.Read.
func Read(path string, limit int64) ([]byte, error) { return secretfile.Read(path, limit) }

// PrivateDir is internal/secretfile.PrivateDir.
func PrivateDir(dir string) (fs.FileMode, error) { return secretfile.PrivateDir(dir) }
