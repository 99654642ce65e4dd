package store

import (
	"errors"
	"fmt"
)

// The store's errors. Apply refuses a record the box's rules refuse with
// box.ErrInvalidRecord, and a code that another grant which has not ended
// holds with box.ErrCodeInUse, as the cloud does.
var (
	// ErrInUse is returned by Open when another process (or another Store in
	// this process) holds the file.
	ErrInUse = errors.New("in use")
	// ErrSchema is returned by Open for a file this code cannot read: written
	// by a newer version, or not a SmartBox store at all.
	ErrSchema = errors.New("unsupported schema")
	// ErrRevisionMismatch is returned by Apply when a batch does not follow
	// the store's revision. The error is a *RevisionMismatchError.
	ErrRevisionMismatch = errors.New("revision mismatch")
	// ErrCorrupt is returned when the file is damaged (not a bbolt file, a
	// bad checksum, truncated, a record that does not decode).
	ErrCorrupt = errors.New("store file is corrupt")
	// ErrUnknownGrant is returned by Commit for a grant id the store does not
	// have (deleted by a sync since the controller read it).
	ErrUnknownGrant = errors.New("unknown grant")
	// ErrWrongBox is returned by Open when the file belongs to another box
	// than Options.BoxID.
	ErrWrongBox = errors.New("store belongs to another box")
	// ErrReadOnly is returned by every write on a store opened with
	// Options.ReadOnly.
	ErrReadOnly = errors.New("store is read-only")
)

// RevisionMismatchError says which revision the store has and which the
// batch expected. A batch with To <= Have was already applied (a duplicate);
// From > Have means the store missed something and needs a resend or a
// snapshot.
type RevisionMismatchError struct {
	Have     uint64
	From, To uint64
	Snapshot bool
}

func (e *RevisionMismatchError) Error() string {
	if e.Snapshot {
		return fmt.Sprintf("%v: have revision %d, snapshot is older (revision %d)", ErrRevisionMismatch, e.Have, e.To)
	}
	return fmt.Sprintf("%v: have revision %d, batch is from %d to %d", ErrRevisionMismatch, e.Have, e.From, e.To)
}

func (e *RevisionMismatchError) Unwrap() error { return ErrRevisionMismatch }
