package bookings

import (
	"encoding/json"
	"fmt"
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
	mode := st.CodeMode
	st.CodeMode = ""
	raw, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("bridge store: encode settings: %w", err)
	}
	return s.eng.update(func(tx storeTx) error {
		if mode != "" {
			if err := tx.putCodeMode(string(mode)); err != nil {
				return err
			}
		}
		return tx.putConnection(raw)
	})
}

// SetCodeMode stores how drivers' codes are made. It is not a secret and is
// kept across a disconnect.
func (s *Store) SetCodeMode(m CodeMode) error {
	if err := m.Validate(); err != nil {
		return err
	}
	return s.eng.update(func(tx storeTx) error { return tx.putCodeMode(string(m)) })
}

// CodeMode returns the stored code mode (CodePerAssignment when none is).
func (s *Store) CodeMode() (m CodeMode, err error) {
	err = s.eng.view(func(tx storeTx) error {
		v, err := tx.codeMode()
		m = CodeMode(v)
		return err
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
	err := s.eng.view(func(tx storeTx) error {
		raw, have, err := tx.connection()
		if err != nil || !have {
			return err
		}
		if err := json.Unmarshal(raw, &st); err != nil {
			return fmt.Errorf("decode connection settings: %w", err)
		}
		ok = true
		m, err := tx.codeMode()
		st.CodeMode = CodeMode(m)
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
	return s.eng.update(func(tx storeTx) error { return tx.deleteConnection() })
}

// PutBox stores what a driver is told about a box.
func (s *Store) PutBox(b BoxInfo) error {
	if b.ID == "" {
		return fmt.Errorf("%w box: empty id", ErrInvalid)
	}
	return putOne(s, tBoxes, boxKey(b.ID), b)
}

// Box returns a box's info; an unknown box gives BoxInfo{ID: id}.
func (s *Store) Box(id string) (BoxInfo, error) {
	b := BoxInfo{ID: id}
	err := s.eng.view(func(tx storeTx) error {
		got, ok, err := getRec[BoxInfo](tx, tBoxes, boxKey(id))
		if ok && err == nil {
			b = got
		}
		return err
	})
	return b, err
}

// PutLink links a vehicle to a key (or changes the link).
func (s *Store) PutLink(l Link) error {
	if err := l.Validate(); err != nil {
		return err
	}
	return putOne(s, tLinks, idKey(l.VehicleID), l)
}

// DeleteLink unlinks a vehicle.
func (s *Store) DeleteLink(vehicleID int64) error { return delOne(s, tLinks, idKey(vehicleID)) }

// LinkOf returns the vehicle's link, false if it has none.
func (s *Store) LinkOf(vehicleID int64) (Link, bool, error) {
	return get[Link](s, tLinks, vehicleID)
}

// Links lists every link by vehicle id.
func (s *Store) Links() ([]Link, error) { return list[Link](s, tLinks) }
