package cloud

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// messageBudget is the most record bytes put in one message: the envelope,
// the batch's own fields (box id, ephemeral key, times) and the signature
// take well under the 8 KiB left over.
const messageBudget = wire.MaxMessageSize - 8<<10

// maxRevision bounds the have a box may claim: a box ahead of the cloud
// moves the cloud's revision to have+1 (see Answer), and a lying box must
// not push it to where it would wrap around.
const maxRevision = math.MaxUint64 >> 2

// errDeltaTooBig makes Answer fall back to a snapshot, which can be chunked.
var errDeltaTooBig = errors.New("delta too big for a message")

// Answer returns the signed record messages that bring a box from
// req.Have to the cloud's current revision, in the order to publish them:
//
//   - one or more deltas, each covering whole revisions, when the log still
//     holds every revision after req.Have;
//   - otherwise a snapshot in chunks (1..Chunks, same To): when Have is 0,
//     older than the log, or when a single revision is too big for a delta;
//   - nothing when the box is current (but see AnswerRequest);
//   - and, when req.Probe is set, last of all a probe answer (see
//     wire.RecordBatch.Probe) whether or not the box is current.
//
// A Have ahead of the cloud (a cloud restored from an old backup) moves the
// cloud's revision to Have+1 and answers with a snapshot there: the box
// refuses a snapshot older than what it holds, so the cloud must move past
// it rather than send its own, lower, number.
func (c *Cloud) Answer(req wire.SyncRequest) ([][]byte, error) {
	return c.answerMessages(req, false)
}

// AnswerRequest is Answer for a box's own sync request (Serve's, and a test
// cloud's): a box that is
// current gets a current answer too, an empty delta at the cloud's
// revision (wire.RecordBatch, "current answer"), so that the box can tell a
// request answered from one lost with the replica that took it, and asks
// again only after the latter (sync/link). A probe answer is one already.
func (c *Cloud) AnswerRequest(req wire.SyncRequest) ([][]byte, error) {
	return c.answerMessages(req, true)
}

func (c *Cloud) answerMessages(req wire.SyncRequest, current bool) ([][]byte, error) {
	if req.V != wire.Version {
		return nil, fmt.Errorf("cloud: answer box %q: %w: v=%d", req.Box, wire.ErrVersion, req.V)
	}
	if req.Have > maxRevision {
		return nil, fmt.Errorf("cloud: answer box %q: %w: have %d is not a revision", req.Box, wire.ErrMalformed, req.Have)
	}
	if req.Probe != "" && !wire.ValidProbe(req.Probe) {
		return nil, fmt.Errorf("cloud: answer box %q: %w: probe nonce of %d bytes is not 1-%d letters, digits, - or _",
			req.Box, wire.ErrMalformed, len(req.Probe), wire.MaxProbeLen)
	}
	var cur uint64
	var err error
	if cur, err = c.Revision(req.Box); err != nil {
		return nil, err
	}
	if req.Have > cur {
		if err := c.rebase(req.Box, req.Have); err != nil {
			return nil, err
		}
	}
	var out [][]byte
	err = c.view("answer", req.Box, func(bt boxTx) error {
		cur = bt.meta().Rev
		if out, err = c.recordMessages(bt, req.Have, cur); err != nil {
			return err
		}
		if req.Probe == "" && (!current || len(out) > 0) {
			return nil
		}
		probe, err := c.probeAnswer(bt, cur, req.Probe) // without a nonce: the current answer
		out = append(out, probe)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// recordMessages is the record messages from have to cur (see Answer).
func (c *Cloud) recordMessages(bt boxTx, have, cur uint64) ([][]byte, error) {
	if have == cur {
		return nil, nil // current (or both empty)
	}
	if have > 0 && have >= bt.meta().LogStart {
		out, err := c.deltas(bt, have, cur)
		if !errors.Is(err, errDeltaTooBig) {
			return out, err
		}
	}
	return c.snapshot(bt, have, cur)
}

// probeAnswer is the signed answer to a probe: no records, at the cloud's
// revision, with the box's nonce; with none, the current answer.
func (c *Cloud) probeAnswer(bt boxTx, cur uint64, nonce string) ([]byte, error) {
	bb := &batchBuilder{c: c, bt: bt, b: wire.RecordBatch{V: wire.Version, Box: bt.boxID(),
		From: cur, To: cur, IssuedAt: c.opts.Now().UTC(), Probe: nonce}}
	return bb.sign()
}

// rebase moves a box's revision past have (see Answer) and empties its log,
// so that the next answer is a snapshot the box will take.
func (c *Cloud) rebase(boxID string, have uint64) error {
	return c.update("answer (rebase)", boxID, func(bt boxTx) error {
		m := bt.meta()
		if have <= m.Rev {
			return nil
		}
		c.log.Warn("box holds a revision ahead of the cloud (cloud restored from a backup?): moving past it with a snapshot",
			"box", boxID, "box_revision", have, "cloud_revision", m.Rev)
		if err := bt.deleteLog(m.LogStart+1, m.Rev); err != nil {
			return err
		}
		m.Rev, m.LogStart = have+1, have+1
		return bt.setMeta(m)
	})
}

// batchBuilder fills one RecordBatch up to the size budget.
type batchBuilder struct {
	c      *Cloud
	bt     boxTx
	sealer *wire.CodeSealer
	b      wire.RecordBatch
	bytes  int
	n      int
}

func (c *Cloud) newBuilder(bt boxTx, from, to uint64, now time.Time) (*batchBuilder, error) {
	sealer, err := wire.NewCodeSealer(bt.meta().Pub, bt.boxID(), to)
	if err != nil {
		return nil, err
	}
	return &batchBuilder{c: c, bt: bt, sealer: sealer, b: wire.RecordBatch{V: wire.Version, Box: bt.boxID(),
		From: from, To: to, Ephemeral: sealer.Ephemeral(), IssuedAt: now.UTC()}}, nil
}

// add reports the encoded size of a record, and records it.
func (bb *batchBuilder) account(v any) (int, error) {
	enc, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	return len(enc) + 1, nil // the comma
}

func (bb *batchBuilder) full(next int) bool {
	return bb.n > 0 && (bb.n >= bb.c.opts.ChunkRecords || bb.bytes+next > messageBudget)
}

// key decodes a stored key; false when doc is nil (the key is gone).
func (bb *batchBuilder) key(id string, doc []byte) (box.Key, bool, error) {
	if doc == nil {
		return box.Key{}, false, nil
	}
	var k box.Key
	if err := json.Unmarshal(doc, &k); err != nil {
		return k, false, fmt.Errorf("key %s: stored record: %w", id, err)
	}
	return k, true, nil
}

// grant returns a stored grant as sent: its code decrypted and sealed to
// the box for this batch; false when doc is nil (the grant is gone).
func (bb *batchBuilder) grant(id string, doc []byte) (wire.GrantRecord, bool, error) {
	g, ok, err := decodeGrant(id, doc)
	if err != nil || !ok {
		return wire.GrantRecord{}, ok, err
	}
	gr := wire.GrantRecord{Grant: g.Grant}
	if g.CodeEnc != nil {
		code, err := bb.c.decryptCode(bb.bt.boxID(), id, g.CodeEnc)
		if err != nil {
			return gr, false, err
		}
		gr.CodeSealed = bb.sealer.Seal(id, code)
	}
	return gr, true, nil
}

func (bb *batchBuilder) sign() ([]byte, error) {
	msg, err := bb.c.opts.Signer.Sign(wire.KindRecords, bb.bt.boxID(), bb.bt.meta().Pub, bb.b)
	if err != nil {
		return nil, fmt.Errorf("signing records %d..%d for box %s: %w", bb.b.From, bb.b.To, bb.bt.boxID(), err)
	}
	return msg, nil
}

// addRecords puts each id's record as it is now (its document in docs)
// into the batch, or a delete when it is gone, and counts the bytes against
// the message budget.
func addRecords[R any](bb *batchBuilder, ids []string, docs map[string][]byte,
	decode func(id string, doc []byte) (R, bool, error), put *[]R, del *[]string) error {
	for _, id := range sortedIDs(ids) {
		r, ok, err := decode(id, docs[id])
		if err != nil {
			return err
		}
		if !ok {
			*del = append(*del, id)
			bb.bytes += len(id) + 3 // the quoted id and its comma
			continue
		}
		n, err := bb.account(r)
		if err != nil {
			return err
		}
		bb.bytes += n
		*put = append(*put, r)
	}
	return nil
}

// deltas makes delta batches from have to cur, grouping whole revisions up
// to ChunkRecords records a message. The log names what each revision
// touched; the value sent is the record as it is now (or a delete when it
// is gone), so a record changed many times is sent once.
//
// Codes are always sent with a grant. The protocol lets the cloud leave a
// code out when it did not change, but sending it costs a few dozen bytes
// and makes a box that lost a code (a restored SD card) whole again.
func (c *Cloud) deltas(bt boxTx, have, cur uint64) ([][]byte, error) {
	now := c.opts.Now()
	var out [][]byte
	type group struct {
		from, to    uint64
		keys, grs   []string
		seenK, seen map[string]bool
	}
	newGroup := func(from uint64) *group {
		return &group{from: from, to: from, seenK: map[string]bool{}, seen: map[string]bool{}}
	}
	flush := func(g *group) error {
		bb, err := c.newBuilder(bt, g.from, g.to, now)
		if err != nil {
			return err
		}
		keys, err := bt.keysByID(g.keys)
		if err != nil {
			return err
		}
		grants, err := bt.grantsByID(g.grs)
		if err != nil {
			return err
		}
		if err := addRecords(bb, g.keys, keys, bb.key, &bb.b.Keys, &bb.b.DeleteKeys); err != nil {
			return err
		}
		if err := addRecords(bb, g.grs, grants, bb.grant, &bb.b.Grants, &bb.b.DeleteGrants); err != nil {
			return err
		}
		if bb.bytes > messageBudget {
			return errDeltaTooBig
		}
		msg, err := bb.sign()
		if err != nil {
			return err
		}
		out = append(out, msg)
		return nil
	}
	// The log of (have, cur], read in one pass before any record is.
	entries := make([]logEntry, 0, min(cur-have, uint64(c.opts.LogLimit)))
	next := have + 1
	err := bt.forEachLog(have+1, cur, func(r uint64, v []byte) error {
		if r != next {
			return errDeltaTooBig // trimmed meanwhile; a snapshot will do
		}
		next++
		var e logEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("box %s: log entry of revision %d: %w", bt.boxID(), r, err)
		}
		if e.size() > c.opts.ChunkRecords {
			return errDeltaTooBig
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if next != cur+1 {
		return nil, errDeltaTooBig
	}
	g := newGroup(have)
	for i, e := range entries {
		r := have + 1 + uint64(i)
		if len(g.keys)+len(g.grs)+e.size() > c.opts.ChunkRecords {
			if err := flush(g); err != nil {
				return nil, err
			}
			g = newGroup(g.to)
		}
		for _, id := range e.Keys {
			if !g.seenK[id] {
				g.seenK[id] = true
				g.keys = append(g.keys, id)
			}
		}
		for _, id := range e.Grants {
			if !g.seen[id] {
				g.seen[id] = true
				g.grs = append(g.grs, id)
			}
		}
		g.to = r
	}
	if err := flush(g); err != nil {
		return nil, err
	}
	return out, nil
}

// snapshot makes every record at revision cur, in chunks numbered from 1.
// All chunks share one sealing key (bound to box and cur), made fresh for
// this answer.
func (c *Cloud) snapshot(bt boxTx, have, cur uint64) ([][]byte, error) {
	now := c.opts.Now()
	first, err := c.newBuilder(bt, have, cur, now)
	if err != nil {
		return nil, err
	}
	first.b.Snapshot = true
	var batches []wire.RecordBatch
	bb := first
	next := func() {
		batches = append(batches, bb.b)
		bb = &batchBuilder{c: c, bt: bt, sealer: first.sealer, b: wire.RecordBatch{V: wire.Version, Box: bt.boxID(),
			From: have, To: cur, Snapshot: true, Ephemeral: first.b.Ephemeral, IssuedAt: first.b.IssuedAt}}
	}
	err = bt.forEachKey(func(id string, v []byte) error {
		var k box.Key
		if err := json.Unmarshal(v, &k); err != nil {
			return fmt.Errorf("key %s: stored record: %w", id, err)
		}
		n := len(v) + 1 // stored as the same JSON it is sent as
		if bb.full(n) {
			next()
		}
		bb.b.Keys = append(bb.b.Keys, k)
		bb.bytes += n
		bb.n++
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = bt.forEachGrant(func(id string, v []byte) error {
		gr, _, err := bb.grant(id, v)
		if err != nil {
			return err
		}
		n, err := bb.account(gr)
		if err != nil {
			return err
		}
		if bb.full(n) {
			next()
		}
		bb.b.Grants = append(bb.b.Grants, gr)
		bb.bytes += n
		bb.n++
		return nil
	})
	if err != nil {
		return nil, err
	}
	batches = append(batches, bb.b)
	out := make([][]byte, len(batches))
	for i := range batches {
		batches[i].Chunk, batches[i].Chunks = i+1, len(batches)
		bb.b = batches[i]
		if out[i], err = bb.sign(); err != nil {
			return nil, err
		}
	}
	return out, nil
}
