package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/smartbox-oss/smartbox/store"
)

// Staging: provision writes every file into a fresh directory inside the
// target (the same file system, so that a rename moves it in one step),
// fsyncs them, and only then renames them into place, box.db last: its
// presence is the box's identity, so a card with a box.db is a finished one.
// Nothing is ever deleted: a file provision replaces moves to
// DIR/.smartbox-replaced-<UTC time>/ first.
//
// A failure before the renames leaves the target as it was (the staging
// directory is removed). A power cut during the renames leaves some of the
// new files in place and the rest in the staging directory; without the new
// box.db the card has no (new) identity, and running the same command again
// finishes it: it takes the staged box.db (adoptStaleStore: the store the
// bridge has registered), makes what else is missing, and removes the stale
// staging directory.

// Names in the target directory.
const (
	stagePrefix    = ".smartbox-provision-"
	replacedPrefix = ".smartbox-replaced-"
	tlsDir         = "tls"
	relDeviceKey   = "tls/box.key"
	relCert        = "tls/box.crt"
	relCA          = "tls/ca.crt"
	relConfig      = "smartboxd.toml"
	relStore       = "box.db"
	// pidSuffix is the store's holder file next to box.db (store.writePID).
	pidSuffix = ".pid"
)

// Modes of what provision writes.
const (
	modeSecret = 0o600 // box.key (box.db: bbolt makes it so)
	modePublic = 0o644 // box.crt, ca.crt: certificates are public
	// modeConfig: smartboxd's group may read its config; it holds paths,
	// no secret.
	modeConfig = 0o640
	modeTLSDir = 0o700
)

// installOrder is the order of the final renames: box.db last.
var installOrder = []string{relDeviceKey, relCA, relCert, relConfig, relStore}

// stage is one run's staging directory.
type stage struct {
	target string
	dir    string
	files  map[string]bool // rel paths written
	// replaced is where replaced files go, made on first use.
	replaced string
}

// newStage makes the staging directory; that it can be made is the check
// that the target exists and is writable.
func newStage(target string) (*stage, error) {
	if err := checkTarget(target); err != nil {
		return nil, err
	}
	// A staging directory left by a run cut short holds copies of nothing
	// installed (what was renamed out of it is in place): it goes.
	stale, _ := filepath.Glob(filepath.Join(target, stagePrefix+"*"))
	for _, d := range stale {
		_ = os.RemoveAll(d)
	}
	dir, err := os.MkdirTemp(target, stagePrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("--target %s is not writable: %w", target, err)
	}
	if err := os.Mkdir(filepath.Join(dir, tlsDir), modeTLSDir); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return &stage{target: target, dir: dir, files: map[string]bool{}}, nil
}

// adoptStaleStore finishes an install that a power cut interrupted before
// box.db's rename: a target without box.db whose staging directory holds
// this box's store takes that store, the one the bridge already has
// registered (a new one would be another key, which the bridge refuses
// without --force). It says whether it did.
func adoptStaleStore(target, boxID string) (bool, error) {
	if _, err := os.Lstat(filepath.Join(target, relStore)); !errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	stale, _ := filepath.Glob(filepath.Join(target, stagePrefix+"*", relStore))
	for _, p := range stale {
		s, err := store.Open(p, store.Options{Timeout: storeLockTimeout, Logger: discardLogger})
		if err != nil {
			continue // unfinished or unreadable: the run starts over
		}
		id, err := s.Identity()
		_ = s.Close()
		_ = os.Remove(p + pidSuffix)
		if err != nil || id.BoxID != boxID {
			continue
		}
		to := filepath.Join(target, relStore)
		if err := os.Rename(p, to); err != nil {
			return false, fmt.Errorf("taking %s from an interrupted run: %w", to, err)
		}
		return true, syncDir(target)
	}
	return false, nil
}

// checkTarget says whether the target is a directory.
func checkTarget(target string) error {
	fi, err := os.Stat(target)
	if err != nil {
		return fmt.Errorf("--target %s: %w (mount the card's data partition and name its directory)", target, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("--target %s is not a directory (the card's data partition, mounted)", target)
	}
	return nil
}

// path is where rel is staged.
func (s *stage) path(rel string) string { return filepath.Join(s.dir, rel) }

// write stages rel with mode, fsynced.
func (s *stage) write(rel string, b []byte, mode fs.FileMode) error {
	p := s.path(rel)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	s.files[rel] = true
	return nil
}

// added records a file staged by someone else (the store, fsynced by bbolt).
func (s *stage) added(rel string) { s.files[rel] = true }

// remove drops the staging directory: after install it holds nothing of
// value, after a failure it is all there is of the run.
func (s *stage) remove() { _ = os.RemoveAll(s.dir) }

// moveAside moves target/rel to the replaced directory, if it exists.
func (s *stage) moveAside(rel string) error {
	from := filepath.Join(s.target, rel)
	if _, err := os.Lstat(from); os.IsNotExist(err) {
		return nil
	}
	if s.replaced == "" {
		s.replaced = filepath.Join(s.target, replacedPrefix+time.Now().UTC().Format("20060102T150405.000000000Z"))
		if err := os.Mkdir(s.replaced, modeTLSDir); err != nil {
			return fmt.Errorf("making %s for the files replaced: %w", s.replaced, err)
		}
	}
	to := filepath.Join(s.replaced, rel)
	if err := os.MkdirAll(filepath.Dir(to), modeTLSDir); err != nil {
		return err
	}
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("moving %s aside to %s: %w", from, to, err)
	}
	return nil
}

// install renames the staged files into place, box.db last, moving what
// they replace aside, and fsyncs the directories. oldStore says the target's
// box.db is to be replaced (--force, another box): it moves aside first, so
// that a cut leaves no identity rather than the old one beside new files.
func (s *stage) install(oldStore bool) error {
	if err := syncDir(s.dir); err != nil {
		return err
	}
	if err := syncDir(s.path(tlsDir)); err != nil {
		return err
	}
	if oldStore {
		for _, rel := range []string{relStore, relStore + pidSuffix} {
			if err := s.moveAside(rel); err != nil {
				return err
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(s.target, tlsDir), modeTLSDir); err != nil {
		return fmt.Errorf("making %s: %w", filepath.Join(s.target, tlsDir), err)
	}
	for _, rel := range installOrder {
		if !s.files[rel] {
			continue
		}
		if err := s.moveAside(rel); err != nil {
			return err
		}
		if rel == relStore {
			// Everything else must be durable before the identity is.
			if err := syncDirs(s.target, filepath.Join(s.target, tlsDir), s.replaced); err != nil {
				return err
			}
		}
		if err := os.Rename(s.path(rel), filepath.Join(s.target, rel)); err != nil {
			return fmt.Errorf("installing %s: %w (run the same command again to finish)", filepath.Join(s.target, rel), err)
		}
	}
	return syncDirs(s.target, filepath.Join(s.target, tlsDir), s.replaced)
}

// syncDirs fsyncs each directory named ("" skipped).
func syncDirs(dirs ...string) error {
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// syncDir fsyncs a directory, so that the names in it survive a power cut.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
