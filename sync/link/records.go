package link

import (
	"errors"
	"fmt"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/store"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// onRecords handles a RecordBatch: verify, check its place in the revision
// order, open its codes, apply (or stage) it.
func (l *Link) onRecords(payload []byte) {
	var b wire.RecordBatch
	if err := l.verifier.Open(payload, wire.KindRecords, l.opts.BoxID, &b); err != nil {
		l.probeRefused(payload, err)
		l.refuse("records", err)
		return
	}
	if b.Probe != "" {
		l.probeVerified(payload, b.Probe) // a probe answer (no records) then goes on as an old batch
	}
	rev, err := l.st.Revision()
	if err != nil {
		l.log.Error("sync: reading the revision", "err", err)
		return
	}
	if b.To < rev || (b.To == rev && !(b.Snapshot && l.w.resync)) {
		// A duplicate, a late copy, a replay of an old batch, or the
		// current answer.
		if b.To == rev {
			l.answered()
		}
		l.log.Debug("sync: old batch ignored", "from", b.From, "to", b.To, "have", rev)
		if b.To == rev {
			l.noteSynced() // the cloud has nothing newer
		}
		return
	}
	if !b.Snapshot && b.From != rev {
		// Not an answer that leaves the box anywhere: the request stays
		// pending, but the cloud is up, so the next wait is the first.
		l.w.unanswered = 0
		l.log.Info("sync: gap, asking again", "from", b.From, "to", b.To, "have", rev)
		l.requestSync("gap", false)
		return
	}
	batch, err := l.openBatch(b)
	if err != nil {
		l.refuse("records", fmt.Errorf("batch %d to %d: %w", b.From, b.To, err))
		return
	}
	l.answered()
	if b.Snapshot {
		l.applyChunk(b, batch)
		return
	}
	batch.Events = []box.Event{l.appliedEvent(fmt.Sprintf("delta revision %d to %d: %d keys, %d grants put, %d keys, %d grants deleted",
		b.From, b.To, len(b.Keys), len(b.Grants), len(b.DeleteKeys), len(b.DeleteGrants)))}
	if _, err := l.st.Apply(batch); err != nil {
		l.applyFailed(b, err)
		return
	}
	l.log.Info("sync: records applied", "from", b.From, "to", b.To)
	l.noteSynced()
	l.Kick()
	l.publishStatus()
}

func (l *Link) applyChunk(b wire.RecordBatch, batch store.Batch) {
	chunk, chunks := b.Chunk, b.Chunks
	if chunks == 0 && chunk <= 1 {
		chunk, chunks = 1, 1 // a snapshot in one message
	}
	batch.Events = []box.Event{l.appliedEvent(fmt.Sprintf("snapshot revision %d in %d chunks", b.To, chunks))}
	complete, err := l.st.StageChunk(b.To, chunk, chunks, batch)
	if err != nil {
		l.w.stageTo = 0
		l.applyFailed(b, err)
		return
	}
	if !complete {
		l.log.Debug("sync: snapshot chunk staged", "to", b.To, "chunk", chunk, "chunks", chunks)
		l.w.stageTo, l.w.lastChunkAt = b.To, l.now()
		return
	}
	l.w.stageTo, l.w.resync = 0, false
	l.log.Info("sync: snapshot applied", "to", b.To, "chunks", chunks)
	l.noteSynced()
	l.Kick()
	l.publishStatus()
}

func (l *Link) applyFailed(b wire.RecordBatch, err error) {
	var mismatch *store.RevisionMismatchError
	switch {
	case errors.As(err, &mismatch):
		l.requestSync("gap", false)
	case storeRefusal(err):
		l.refuse("records", fmt.Errorf("batch %d to %d: %w", b.From, b.To, err))
	default:
		l.log.Error("sync: applying records", "from", b.From, "to", b.To, "err", err)
	}
}

func (l *Link) appliedEvent(detail string) box.Event {
	return box.Event{Type: box.EventRecordsApplied, Time: l.opts.Now(), ClockUntrusted: !l.opts.ClockTrusted(), Detail: detail}
}

// openBatch turns a verified batch into a store batch, opening its sealed
// codes. A code that does not open refuses the whole batch.
func (l *Link) openBatch(b wire.RecordBatch) (store.Batch, error) {
	out := store.Batch{
		FromRevision: b.From, ToRevision: b.To, Snapshot: b.Snapshot,
		Keys: b.Keys, DeleteKeys: b.DeleteKeys, DeleteGrants: b.DeleteGrants,
		Grants: make([]box.GrantPut, len(b.Grants)),
	}
	var opener *wire.CodeOpener
	for i, g := range b.Grants {
		g.Uses = 0 // the box counts uses; Apply keeps its own anyway
		out.Grants[i] = box.GrantPut{Grant: g.Grant}
		if len(g.CodeSealed) == 0 {
			continue
		}
		if opener == nil {
			var err error
			if opener, err = wire.NewCodeOpener(l.key, b.Ephemeral, l.opts.BoxID, b.To); err != nil {
				return store.Batch{}, err
			}
		}
		code, err := opener.Open(g.ID, g.CodeSealed)
		if err != nil {
			return store.Batch{}, err
		}
		out.Grants[i].Code = code
	}
	return out, nil
}
