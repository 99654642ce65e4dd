package store

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/smartbox-oss/smartbox/box"
)

// Commit applies c in one transaction: each grant in c.UseGrants is used
// once, the lockout is replaced if c.Lockout is set, and c.Events go to the
// outbox with the next sequence numbers (any Seq they carry is ignored; a
// zero Time becomes the store's clock). If a grant has no uses left the error
// wraps box.ErrUsedUp, and for a grant the store does not have it wraps
// ErrUnknownGrant; either way nothing is written. The events returned are
// those written: at the outbox quota a refusal-class event is counted
// instead (see appendEvents), and a refusals_merged may come first.
func (s *Store) Commit(c box.Change) ([]box.Event, error) {
	if len(c.UseGrants) == 0 && c.Lockout == nil && len(c.Events) == 0 {
		return nil, nil
	}
	now := s.now()
	var out []box.Event
	err := s.update("commit", func(tx *bolt.Tx) error {
		for _, id := range c.UseGrants {
			g, ok, err := getGrant(tx, id)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("using grant %q: %w", id, ErrUnknownGrant)
			}
			if g.MaxUses > 0 && g.Uses >= g.MaxUses {
				return fmt.Errorf("using grant %q (used %d of %d times): %w", id, g.Uses, g.MaxUses, box.ErrUsedUp)
			}
			g.Uses++
			if err := putGrant(tx, g); err != nil {
				return err
			}
		}
		if c.Lockout != nil {
			v, err := json.Marshal(c.Lockout)
			if err != nil {
				return fmt.Errorf("encoding lockout: %w", err)
			}
			if err := tx.Bucket(bucketLockout).Put(lockoutState, v); err != nil {
				return err
			}
		}
		var err error
		out, err = s.appendEvents(tx, c.Events, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
