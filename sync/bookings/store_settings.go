package bookings

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// SetSettings stores the connection settings (after Validate). A CodeMode
// other than "" is stored too (as SetCodeMode does); "" keeps the mode.
func (s *Store) SetSettings(st Settings) error {
	if err := st.Validate(); err != nil {
		return err
	}
	if err := st.CodeMode.Validate(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSettings)
		if st.CodeMode != "" {
			if err := b.Put([]byte("code_mode"), []byte(st.CodeMode)); err != nil {
				return err
			}
		}
		st.CodeMode = ""
		return putJSON(b, []byte("connection"), st)
	})
}

// SetCodeMode stores how drivers' codes are made. It is not a secret and is
// kept across a disconnect.
func (s *Store) SetCodeMode(m CodeMode) error {
	if err := m.Validate(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSettings).Put([]byte("code_mode"), []byte(m))
	})
}

// CodeMode returns the stored code mode (CodePerAssignment when none is).
func (s *Store) CodeMode() (m CodeMode, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		m = CodeMode(tx.Bucket(bucketSettings).Get([]byte("code_mode")))
		return nil
	})
	if m == "" {
		m = CodePerAssignment
	}
	return m, err
}

// Settings returns the connection settings (with the code mode as stored,
// "" for the default), or ErrNotConnected.
func (s *Store) Settings() (Settings, error) {
	var st Settings
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		b := tx.Bucket(bucketSettings)
		ok, err = getJSON(b, []byte("connection"), &st)
		st.CodeMode = CodeMode(b.Get([]byte("code_mode")))
		return err
	})
	if err != nil {
		return Settings{}, fmt.Errorf("bridge store: settings: %w", err)
	}
	if !ok {
		return Settings{}, ErrNotConnected
	}
	return st, nil
}

// ForgetSettings deletes the connection settings (disconnect); the code mode
// stays.
func (s *Store) ForgetSettings() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSettings).Delete([]byte("connection"))
	})
}

// PutBox stores what a driver is told about a box.
func (s *Store) PutBox(b BoxInfo) error {
	if b.ID == "" {
		return fmt.Errorf("%w box: empty id", ErrInvalid)
	}
	return s.db.Update(func(tx *bolt.Tx) error { return putJSON(tx.Bucket(bucketBoxes), []byte(b.ID), b) })
}

// Box returns a box's info; an unknown box gives BoxInfo{ID: id}.
func (s *Store) Box(id string) (BoxInfo, error) {
	b := BoxInfo{ID: id}
	err := s.db.View(func(tx *bolt.Tx) error {
		_, err := getJSON(tx.Bucket(bucketBoxes), []byte(id), &b)
		return err
	})
	return b, err
}

// PutLink links a vehicle to a key (or changes the link).
func (s *Store) PutLink(l Link) error {
	if err := l.Validate(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return putJSON(tx.Bucket(bucketLinks), id64(l.VehicleID), l) })
}

// DeleteLink unlinks a vehicle.
func (s *Store) DeleteLink(vehicleID int64) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketLinks).Delete(id64(vehicleID)) })
}

// LinkOf returns the vehicle's link, false if it has none.
func (s *Store) LinkOf(vehicleID int64) (Link, bool, error) {
	return get[Link](s, bucketLinks, vehicleID)
}

// Links lists every link by vehicle id.
func (s *Store) Links() ([]Link, error) { return list[Link](s, bucketLinks, "link") }
