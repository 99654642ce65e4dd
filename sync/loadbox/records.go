package loadbox

import (
	"fmt"
	"time"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// records is a box's replicated records in memory, with the revision they
// are at. Only the Box's worker touches it (under Box.mu for readers).
type records struct {
	rev    uint64
	keys   map[string]box.Key
	grants map[string]box.GrantPut // the code in clear: memory only, never logged
	// stage holds the chunks of a snapshot being received (to, chunk -> batch).
	stageTo uint64
	stage   map[int]wire.RecordBatch
	// seen is when each grant id was first applied; kept across deletes
	// and snapshots (one entry per grant id ever held: a test's bound).
	seen map[string]time.Time
}

func newRecords() *records {
	return &records{keys: map[string]box.Key{}, grants: map[string]box.GrantPut{}, seen: map[string]time.Time{}}
}

// check validates a batch's records as the box's store does, and opens its
// codes, before anything is applied.
func check(b *wire.RecordBatch, open func(grantID string, sealed []byte) (string, error), slots int) ([]box.Key, []box.GrantPut, error) {
	keys := make([]box.Key, len(b.Keys))
	for i, k := range b.Keys {
		n, err := k.Normalized(slots)
		if err != nil {
			return nil, nil, fmt.Errorf("keys[%d]: %w", i, err)
		}
		keys[i] = n
	}
	grants := make([]box.GrantPut, len(b.Grants))
	for i, g := range b.Grants {
		gp := box.GrantPut{Grant: g.Grant}
		gp.Uses = 0 // the box counts uses
		if len(g.CodeSealed) > 0 {
			code, err := open(g.ID, g.CodeSealed)
			if err != nil {
				return nil, nil, err
			}
			gp.Code = code
		}
		if err := gp.Validate(); err != nil {
			return nil, nil, fmt.Errorf("grants[%d]: %w", i, err)
		}
		grants[i] = gp
	}
	return keys, grants, nil
}

// apply puts checked records at now; a snapshot first drops everything.
func (r *records) apply(now time.Time, snapshot bool, to uint64, keys []box.Key, grants []box.GrantPut, delKeys, delGrants []string) error {
	if snapshot {
		r.keys, r.grants = map[string]box.Key{}, map[string]box.GrantPut{}
	}
	for _, id := range delKeys {
		delete(r.keys, id)
	}
	for _, id := range delGrants {
		delete(r.grants, id)
	}
	for _, k := range keys {
		r.keys[k.ID] = k
	}
	for _, g := range grants {
		if old, ok := r.grants[g.ID]; ok && g.Code == "" {
			g.Code = old.Code // no code sent: keep the one it has
		} else if !ok && g.Code == "" && !g.Revoked {
			return fmt.Errorf("grant %s: %w: a new grant needs a code unless revoked", g.ID, box.ErrInvalidRecord)
		}
		r.grants[g.ID] = g
		if _, ok := r.seen[g.ID]; !ok {
			r.seen[g.ID] = now
		}
	}
	r.rev = to
	return nil
}
