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
	// keep: remove leaves the directory, which holds a certificate the
	// bridge issued that is not installed (adoptStale takes it next run).
	keep bool
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

// adoptStale finishes what an earlier run staged for boxID and did not
// install (a power cut during the renames, or a failure after the bridge
// was changed): a target without box.db takes a staged box.db of this box,
// the store the bridge has registered (a new one would be another key,
// which the bridge refuses without --force); and a staged certificate of
// this box is installed with the key it certifies (the bridge's current
// one: a new key would need --force too). It says what it took.
func adoptStale(target, boxID string) ([]string, error) {
	var took []string
	stale, _ := filepath.Glob(filepath.Join(target, stagePrefix+"*"))
	if _, err := os.Lstat(filepath.Join(target, relStore)); errors.Is(err, fs.ErrNotExist) {
		for _, d := range stale {
			if storeID(filepath.Join(d, relStore)) != boxID {
				continue
			}
			if err := os.Rename(filepath.Join(d, relStore), filepath.Join(target, relStore)); err != nil {
				return took, fmt.Errorf("taking %s from an interrupted run: %w", filepath.Join(target, relStore), err)
			}
			took = append(took, "took box.db from the run that was interrupted")
			break
		}
	}
	st := &stage{target: target}
	for _, d := range stale {
		certPEM, err := readBounded(filepath.Join(d, relCert))
		if err != nil {
			continue
		}
		keyFrom := filepath.Join(d, relDeviceKey)
		if _, err := os.Lstat(keyFrom); err != nil {
			keyFrom = filepath.Join(target, relDeviceKey)
		}
		key, err := loadDeviceKey(keyFrom)
		if err != nil || !certifies(certPEM, key, boxID) {
			continue
		}
		if err := os.MkdirAll(filepath.Join(target, tlsDir), modeTLSDir); err != nil {
			return took, err
		}
		for _, rel := range []string{relDeviceKey, relCert} {
			from := filepath.Join(d, rel)
			if _, err := os.Lstat(from); err != nil {
				continue
			}
			if err := st.moveAside(rel); err != nil {
				return took, err
			}
			if err := os.Rename(from, filepath.Join(target, rel)); err != nil {
				return took, fmt.Errorf("taking %s from an interrupted run: %w", filepath.Join(target, rel), err)
			}
		}
		took = append(took, "took the certificate the bridge issued to the run that was interrupted (tls/box.crt)")
		break
	}
	if len(took) == 0 {
		return nil, nil
	}
	return took, syncDirs(target, filepath.Join(target, tlsDir), st.replaced)
}

// storeID is the box id of the store at p, "" if there is none readable.
func storeID(p string) string {
	if _, err := os.Lstat(p); err != nil {
		return ""
	}
	s, err := store.Open(p, store.Options{Timeout: storeLockTimeout, Logger: discardLogger})
	if err != nil {
		return ""
	}
	id, err := s.Identity()
	_ = s.Close()
	_ = os.Remove(p + pidSuffix) // the holder file is this process's
	if err != nil {
		return ""
	}
	return id.BoxID
}

// checkCardNames refuses a card whose names provision writes or reads are
// symlinks (or tls a non-directory): provision runs as the technician on
// the laptop and must not write, through a link planted on a card, to
// somewhere else. An existing tls is made 0700 (it holds box.key).
func checkCardNames(target string) error {
	for _, rel := range []string{relStore, relStore + pidSuffix, relConfig, tlsDir} {
		fi, err := os.Lstat(filepath.Join(target, rel))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("--target: %w", err)
		}
		p := filepath.Join(target, rel)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s is a symbolic link: nothing was changed (provision writes only real files on the card: remove the link)", p)
		case rel == tlsDir && !fi.IsDir():
			return fmt.Errorf("%s is not a directory: nothing was changed (it must be the card's tls directory: move it away)", p)
		case rel != tlsDir && !fi.Mode().IsRegular():
			return fmt.Errorf("%s is not a regular file: nothing was changed (move it away)", p)
		}
	}
	for _, rel := range []string{relDeviceKey, relCert, relCA} {
		p := filepath.Join(target, rel)
		if fi, err := os.Lstat(p); err == nil && !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file (a symbolic link?): nothing was changed (move it away)", p)
		}
	}
	if fi, err := os.Lstat(filepath.Join(target, tlsDir)); err == nil && fi.Mode().Perm() != modeTLSDir {
		if err := os.Chmod(filepath.Join(target, tlsDir), modeTLSDir); err != nil {
			return fmt.Errorf("making %s mode 0700 (it holds the device key): %w", filepath.Join(target, tlsDir), err)
		}
	}
	return nil
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
func (s *stage) remove() {
	if !s.keep {
		_ = os.RemoveAll(s.dir)
	}
}

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
