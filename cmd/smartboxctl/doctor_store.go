package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// storeLockWait bounds the wait for the store's file lock: smartboxd holds
// it for as long as it runs, so waiting longer tells nothing more.
const storeLockWait = time.Second

// checkStore checks DIR/box.db: there, not damaged (bbolt's own Check on a
// read-only open, which takes a shared lock and writes nothing), and not
// held by a daemon that does not answer.
func (d *doctor) checkStore() {
	p := dbPath(d.dataDir)
	if d.status != nil {
		d.ok("store", "%s is smartboxd's, which answers (revision %d, %d events in the outbox)", p, d.status.Revision, d.status.Outbox)
		return
	}
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.problem("store", fmt.Sprintf("no store at %s", p),
			"provision the box ('smartboxctl provision --target DIR ...'), or pass --data DIR if it lives elsewhere")
		return
	case err != nil:
		d.problem("store", fmt.Sprintf("%s: %v", p, err), "run doctor as root or as smartboxd's user")
		return
	case fi.IsDir():
		d.problem("store", fmt.Sprintf("%s is a directory", p), "remove it and provision the box again")
		return
	}
	errs, err := checkBolt(p)
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		d.problem("store", fmt.Sprintf("%s holds %s but does not answer on %s", storeHolder(p), p, d.socketPath),
			"restart it ('systemctl restart smartboxd'); if it is not smartboxd, stop that process")
	case err != nil:
		d.problem("store", fmt.Sprintf("%s is damaged: %v", p, err), damagedFix)
	case len(errs) > 0:
		d.problem("store", fmt.Sprintf("%s is damaged: %d inconsistencies, the first: %v", p, len(errs), errs[0]), damagedFix)
	default:
		d.ok("store", "%s opens and passes bbolt's consistency check (%d bytes)", p, fi.Size())
	}
}

const damagedFix = "keep a copy of the file, then restore it from a backup or provision the box again (events not yet sent are lost; the cloud sends the records again)"

// checkBolt opens path read-only and runs bbolt's Check. A damaged file
// can make bbolt panic or fault on a read past its end: that is an error
// here too.
func checkBolt(path string) (errs []error, err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = fmt.Errorf("bbolt panicked reading it: %v", r)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: storeLockWait})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		if st, err := os.Stat(path); err == nil && st.Size() < tx.Size() {
			return fmt.Errorf("the file is %d bytes but its pages need %d (truncated?)", st.Size(), tx.Size())
		}
		for e := range tx.Check() {
			errs = append(errs, e)
		}
		return nil
	})
	return errs, err
}

// storeHolder names the process holding the store's lock, from the pid
// file the store writes beside it ("<path>.pid").
func storeHolder(path string) string {
	b, err := os.ReadFile(path + ".pid")
	if err != nil {
		return "another process"
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return "another process"
	}
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return fmt.Sprintf("another process (the pid file names %d, which is gone)", pid)
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return fmt.Sprintf("pid %d", pid)
	}
	return fmt.Sprintf("%s (pid %d)", strings.TrimSpace(string(comm)), pid)
}
