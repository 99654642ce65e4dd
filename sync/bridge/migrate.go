package bridge

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// renamedFiles are the data directory's files that had other names before
// they were named by role: the cloud's store was "bridge.db" (the service's
// name), the integration's "fleetio.db" (the other side's name), the box
// accounts' "auth.db".
var renamedFiles = []struct{ old, new string }{
	{"bridge.db", FileCloudDB},
	{"fleetio.db", FileBookingsDB},
	{"auth.db", FileBoxesDB},
}

// migrateDataDir moves the files with an old name to their new one, before
// anything is opened. A directory with both names for one file is refused,
// naming both: which holds the data is the admin's call, never a guess.
// Nothing to move is a no-op.
func migrateDataDir(dir string, log *slog.Logger) error {
	var moves [][2]string
	for _, r := range renamedFiles {
		from, to := filepath.Join(dir, r.old), filepath.Join(dir, r.new)
		oldThere, err := exists(from)
		if err != nil {
			return err
		}
		if !oldThere {
			continue
		}
		newThere, err := exists(to)
		if err != nil {
			return err
		}
		if newThere {
			return fmt.Errorf("data dir: both %s (the old name) and %s are there: keep the one with the data and remove the other", from, to)
		}
		moves = append(moves, [2]string{from, to})
	}
	if len(moves) == 0 {
		return nil
	}
	for _, m := range moves {
		if err := os.Rename(m[0], m[1]); err != nil {
			return fmt.Errorf("data dir: rename %s to %s: %w", m[0], m[1], err)
		}
		log.Info("data dir: renamed a file to its new name", "old", filepath.Base(m[0]), "new", filepath.Base(m[1]))
	}
	// A rename is durable once the directory is: without this a power cut
	// could bring back the old name, and the next start would move it again
	// (harmless) or find both (refused).
	return syncDir(dir)
}

func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("data dir: %w", err)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("data dir: sync %s: %w", dir, err)
	}
	return nil
}
