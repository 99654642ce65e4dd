package bookings

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Buckets of the store file.
var (
	bucketMeta       = []byte("meta")       // "schema", "seal_key"
	bucketSettings   = []byte("settings")   // "connection" -> Settings (JSON)
	bucketBoxes      = []byte("boxes")      // box id -> BoxInfo
	bucketLinks      = []byte("links")      // vehicle id (8 bytes BE) -> Link
	bucketDeliveries = []byte("deliveries") // delivery id -> Delivery
	bucketQueue      = []byte("queue")      // delivery id -> empty: the deliveries still to process
	bucketBookings   = []byte("bookings")   // assignment id -> Booking
	bucketTokens     = []byte("tokens")     // SHA-256 of an access token -> assignment id
	bucketPrompts    = []byte("prompts")    // assignment id -> Reservation
	bucketDrivers    = []byte("drivers")    // contact id -> driverCode (code sealed)
)

// internalDeliveryBase is where the ids of the deliveries the bridge queues
// itself start (CreateBooking, a driver code change): far above any id
// Fleetio hands out, so the two never collide, and unforgeable from outside
// since a webhook must carry Fleetio's signature.
const internalDeliveryBase = 1 << 62

const schemaVersion = 1

// Errors of the store, wrapped with what and which.
var (
	ErrNotConnected = errors.New("fleetio integration not connected")
	ErrNotFound     = errors.New("not found")
	ErrInvalid      = errors.New("invalid")
)

// Settings are the integration's connection secrets. They are stored in the
// store file (mode 0600) and never logged: LogValue and String mask them.
type Settings struct {
	APIKey        string `json:"api_key"`
	AccountToken  string `json:"account_token"`
	WebhookSecret string `json:"webhook_secret"`
	// Authorization is the fixed Authorization value the Fleetio webhook is
	// configured with; "" means none is checked.
	Authorization string `json:"authorization,omitempty"`
	// BaseURL is Fleetio's API base URL; "" means fleetio.DefaultBaseURL.
	BaseURL string `json:"base_url,omitempty"`
	// CodeMode is how drivers' codes are made; "" is CodePerAssignment.
	// It is kept apart from the secrets (see Store.SetCodeMode), so it
	// outlives a disconnect.
	CodeMode CodeMode `json:"code_mode,omitempty"`
}

// LogValue keeps the secrets out of logs.
func (s Settings) LogValue() slog.Value {
	return slog.GroupValue(slog.String("base_url", s.BaseURL), slog.String("code_mode", string(s.CodeMode)),
		slog.Bool("api_key_set", s.APIKey != ""), slog.Bool("authorization_set", s.Authorization != ""))
}

// String keeps the secrets out of %v.
func (s Settings) String() string { return "fleetio settings (credentials hidden)" }

// Validate checks that the three values Fleetio gives are there.
func (s Settings) Validate() error {
	switch {
	case s.APIKey == "":
		return fmt.Errorf("%w settings: api_key is empty", ErrInvalid)
	case s.AccountToken == "":
		return fmt.Errorf("%w settings: account_token is empty", ErrInvalid)
	case s.WebhookSecret == "":
		return fmt.Errorf("%w settings: webhook_secret is empty", ErrInvalid)
	}
	return nil
}

// Method is how a driver learns of a booking for a linked vehicle.
type Method string

const (
	// MethodAutomatic books at once and notifies the driver.
	MethodAutomatic Method = "automatic"
	// MethodPrompt records a reservation and tells the account admin, who
	// makes the booking.
	MethodPrompt Method = "prompt"
)

// Link ties a Fleetio vehicle to the key of that vehicle in a box.
type Link struct {
	VehicleID int64  `json:"vehicle_id"`
	BoxID     string `json:"box_id"`
	KeyID     string `json:"key_id"`
	Method    Method `json:"method"`
}

// Validate checks a link.
func (l Link) Validate() error {
	switch {
	case l.VehicleID <= 0:
		return fmt.Errorf("%w link: vehicle id %d is not positive", ErrInvalid, l.VehicleID)
	case l.BoxID == "" || l.KeyID == "":
		return fmt.Errorf("%w link of vehicle %d: box and key are needed", ErrInvalid, l.VehicleID)
	case l.Method != MethodAutomatic && l.Method != MethodPrompt:
		return fmt.Errorf("%w link of vehicle %d: method %q is not %q or %q", ErrInvalid, l.VehicleID, l.Method, MethodAutomatic, MethodPrompt)
	}
	return nil
}

// BoxInfo is what a driver needs to find a box.
type BoxInfo struct {
	ID       string `json:"id"`
	Name     string `json:"name,omitempty"`
	Location string `json:"location,omitempty"`
}

// DeliveryState is where a webhook delivery is in the queue.
type DeliveryState string

const (
	DeliveryQueued DeliveryState = "queued" // to process (again at NextAttempt)
	DeliveryDone   DeliveryState = "done"
	DeliveryFailed DeliveryState = "failed" // a permanent error; kept for the admin
)

// Delivery is one webhook delivery as received: the raw body is kept so that
// it can be processed (again) after a restart.
type Delivery struct {
	ID          int64         `json:"id"`
	Event       string        `json:"event"`
	Body        []byte        `json:"body"`
	ReceivedAt  time.Time     `json:"received_at"`
	State       DeliveryState `json:"state"`
	Attempts    int           `json:"attempts,omitempty"`
	NextAttempt time.Time     `json:"next_attempt,omitzero"`
	LastError   string        `json:"last_error,omitempty"`
}

// BookingState is the life of a booking.
type BookingState string

const (
	BookingActive   BookingState = "active"   // a grant on the box
	BookingEnded    BookingState = "ended"    // grant revoked: assignment ended or deleted
	BookingUnlinked BookingState = "unlinked" // the vehicle has no linked key: recorded, no grant
)

// Booking is what the bridge made of one Fleetio vehicle assignment.
type Booking struct {
	AssignmentID int64        `json:"assignment_id"`
	VehicleID    int64        `json:"vehicle_id"`
	VehicleName  string       `json:"vehicle_name,omitempty"` // for people: messages, the access page
	ContactID    int64        `json:"contact_id"`
	ContactName  string       `json:"contact_name,omitempty"`
	BoxID        string       `json:"box_id,omitempty"`
	KeyID        string       `json:"key_id,omitempty"`
	GrantID      string       `json:"grant_id,omitempty"`
	From         time.Time    `json:"from"`
	Until        time.Time    `json:"until,omitzero"` // zero: open-ended
	State        BookingState `json:"state"`
	// ContactMethod is how the driver is told: "email", "sms" or "" (email when
	// the contact has an address, else sms).
	ContactMethod string `json:"contact,omitempty"`
	// DriverRef ties the booking grant to the driver ("fleetio:<contact>"):
	// a driver code grant with the same ref opens it.
	DriverRef string `json:"driver_ref,omitempty"`
	// DriverCode: the driver opens this booking with their driver code
	// (CodePerDriver, or CodeDriverOwn with a code set); the booking grant's
	// own code is a long one nobody is told. False: a per-assignment PIN.
	DriverCode bool `json:"driver_code,omitempty"`
	// WindowEdited: the admin changed the window (CreateBooking); it stays
	// as long as Fleetio's window, FleetioFrom/FleetioUntil, does not move.
	WindowEdited bool      `json:"window_edited,omitempty"`
	FleetioFrom  time.Time `json:"fleetio_from,omitzero"`
	FleetioUntil time.Time `json:"fleetio_until,omitzero"`
	// AccessLink is the access page's URL (it holds the token).
	AccessLink string `json:"access_link,omitempty"`
	// SealedPIN is the PIN, AES-GCM sealed, kept only until it is written
	// back and the driver told (Pending* false), then wiped.
	SealedPIN []byte `json:"sealed_pin,omitempty"`
	// Steps still to do, so that a retry after a failure redoes only them.
	PendingGrant     bool   `json:"pending_grant,omitempty"`
	PendingWriteBack bool   `json:"pending_write_back,omitempty"`
	PendingNotify    string `json:"pending_notify,omitempty"` // notification kind to send
	// NotifyCode: the code the driver knows changed (a driver code drawn
	// again), so an update notification carries it.
	NotifyCode bool `json:"notify_code,omitempty"`
	// UpdatedAt is the assignment's updated_at last acted on (after our own
	// PATCH, the one the PATCH returned): an equal or older read-back is stale.
	UpdatedAt time.Time `json:"updated_at"`
	Changed   time.Time `json:"changed"`
}

// Reservation is a pending Prompt booking: an assignment of a vehicle linked
// in Prompt mode, waiting for the admin to create the booking.
type Reservation struct {
	AssignmentID int64     `json:"assignment_id"`
	VehicleID    int64     `json:"vehicle_id"`
	ContactID    int64     `json:"contact_id"`
	ContactName  string    `json:"contact_name,omitempty"`
	BoxID        string    `json:"box_id"`
	KeyID        string    `json:"key_id"`
	From         time.Time `json:"from"`
	Until        time.Time `json:"until,omitzero"`
	UpdatedAt    time.Time `json:"updated_at"`
	Notified     bool      `json:"notified,omitempty"`
	// ContactMethod is the contact method the admin chose ("email", "sms", "").
	ContactMethod string `json:"contact,omitempty"`
	// Approved: the admin asked for the booking (CreateBooking) with Edit;
	// the worker makes it, even after a crash half-way.
	Approved bool         `json:"approved,omitempty"`
	Edit     *BookingEdit `json:"edit,omitempty"`
}

// Store is the integration's bbolt file. It is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	aead cipher.AEAD
}

// OpenStore opens (or creates, mode 0600) the store file at path.
func OpenStore(path string) (*Store, error) {
	// Timeout: a second bridge on the same file gets an error, not a hang.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("bridge store %s: open: %w", path, err)
	}
	// An existing file keeps its mode; the secrets inside need 0600.
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("bridge store %s: chmod 0600: %w", path, err)
	}
	s := &Store{db: db}
	var sealKey []byte
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketSettings, bucketBoxes, bucketLinks, bucketDeliveries,
			bucketQueue, bucketBookings, bucketTokens, bucketPrompts, bucketDrivers} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get([]byte("schema")); v == nil {
			if err := meta.Put([]byte("schema"), u64(schemaVersion)); err != nil {
				return err
			}
		} else if binary.BigEndian.Uint64(v) != schemaVersion {
			return fmt.Errorf("schema %d, this code knows %d", binary.BigEndian.Uint64(v), schemaVersion)
		}
		if v := meta.Get([]byte("seal_key")); v != nil {
			sealKey = bytes.Clone(v)
			return nil
		}
		sealKey = make([]byte, 32)
		if _, err := rand.Read(sealKey); err != nil {
			return err
		}
		return meta.Put([]byte("seal_key"), sealKey)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("bridge store %s: init: %w", path, err)
	}
	blk, err := aes.NewCipher(sealKey)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("bridge store %s: seal key: %w", path, err)
	}
	s.aead, _ = cipher.NewGCM(blk)
	return s, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
func id64(v int64) []byte { return u64(uint64(v)) }

func getJSON(b *bolt.Bucket, k []byte, v any) (bool, error) {
	raw := b.Get(k)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("decode record %x: %w", k, err)
	}
	return true, nil
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, raw)
}

// --- settings ---

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

// --- boxes and links ---

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
	var l Link
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		ok, err = getJSON(tx.Bucket(bucketLinks), id64(vehicleID), &l)
		return err
	})
	return l, ok, err
}

// Links lists every link by vehicle id.
func (s *Store) Links() ([]Link, error) {
	var out []Link
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLinks).ForEach(func(k, v []byte) error {
			var l Link
			if err := json.Unmarshal(v, &l); err != nil {
				return fmt.Errorf("link %x: %w", k, err)
			}
			out = append(out, l)
			return nil
		})
	})
	return out, err
}

// --- deliveries ---

// AddDelivery stores a new delivery and queues it, in one transaction.
// A delivery id already stored is a duplicate: nothing changes and added is
// false. Without connection settings it stores nothing: ErrNotConnected.
func (s *Store) AddDelivery(d Delivery) (added bool, err error) {
	if d.ID <= 0 {
		return false, fmt.Errorf("%w delivery id %d", ErrInvalid, d.ID)
	}
	d.State = DeliveryQueued
	err = s.db.Update(func(tx *bolt.Tx) error {
		// In the same transaction as the write: a webhook verified just
		// before a Disconnect forgot the settings must not land in the
		// queue Disconnect has just emptied.
		if tx.Bucket(bucketSettings).Get([]byte("connection")) == nil {
			return ErrNotConnected
		}
		k := id64(d.ID)
		if tx.Bucket(bucketDeliveries).Get(k) != nil {
			return nil
		}
		added = true
		if err := putJSON(tx.Bucket(bucketDeliveries), k, d); err != nil {
			return err
		}
		return tx.Bucket(bucketQueue).Put(k, nil)
	})
	if err != nil {
		return false, fmt.Errorf("bridge store: add delivery %d: %w", d.ID, err)
	}
	return added, nil
}

// Delivery returns a stored delivery.
func (s *Store) Delivery(id int64) (Delivery, error) {
	var d Delivery
	err := s.db.View(func(tx *bolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketDeliveries), id64(id), &d)
		if err == nil && !ok {
			err = fmt.Errorf("delivery %d: %w", id, ErrNotFound)
		}
		return err
	})
	return d, err
}

// Queued returns the queued deliveries, oldest id first, and the earliest
// NextAttempt among those not due at now (zero if none).
func (s *Store) Queued(now time.Time) (due []Delivery, next time.Time, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		ds := tx.Bucket(bucketDeliveries)
		return tx.Bucket(bucketQueue).ForEach(func(k, _ []byte) error {
			var d Delivery
			ok, err := getJSON(ds, k, &d)
			if err != nil || !ok {
				return err
			}
			if d.NextAttempt.After(now) {
				if next.IsZero() || d.NextAttempt.Before(next) {
					next = d.NextAttempt
				}
				return nil
			}
			due = append(due, d)
			return nil
		})
	})
	return due, next, err
}

// QueueDepth is how many deliveries wait to be processed.
func (s *Store) QueueDepth() (n int) {
	s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketQueue).Stats().KeyN
		return nil
	})
	return n
}

// UpdateDelivery stores d; a state other than queued takes it off the queue.
func (s *Store) UpdateDelivery(d Delivery) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		k := id64(d.ID)
		if err := putJSON(tx.Bucket(bucketDeliveries), k, d); err != nil {
			return err
		}
		if d.State == DeliveryQueued {
			return tx.Bucket(bucketQueue).Put(k, nil)
		}
		return tx.Bucket(bucketQueue).Delete(k)
	})
}

// --- bookings ---

// PutBooking stores a booking (and indexes its access token, if any).
func (s *Store) PutBooking(b Booking, token string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if token != "" {
			h := sha256.Sum256([]byte(token))
			if err := tx.Bucket(bucketTokens).Put(h[:], id64(b.AssignmentID)); err != nil {
				return err
			}
		}
		return putJSON(tx.Bucket(bucketBookings), id64(b.AssignmentID), b)
	})
}

// DeleteToken forgets an access token: its page answers 404 from now on.
func (s *Store) DeleteToken(token string) error {
	if token == "" {
		return nil
	}
	h := sha256.Sum256([]byte(token))
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketTokens).Delete(h[:]) })
}

// Booking returns the booking of an assignment, false if there is none.
func (s *Store) Booking(assignmentID int64) (Booking, bool, error) {
	var b Booking
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		ok, err = getJSON(tx.Bucket(bucketBookings), id64(assignmentID), &b)
		return err
	})
	return b, ok, err
}

// Bookings lists every booking by assignment id.
func (s *Store) Bookings() ([]Booking, error) {
	var out []Booking
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBookings).ForEach(func(k, v []byte) error {
			var b Booking
			if err := json.Unmarshal(v, &b); err != nil {
				return fmt.Errorf("booking %x: %w", k, err)
			}
			out = append(out, b)
			return nil
		})
	})
	return out, err
}

// BookingByToken finds the booking an access token belongs to. The token is
// looked up by its SHA-256, so the lookup's timing says nothing useful about
// the token, and the file holds no token that opens a page.
func (s *Store) BookingByToken(token string) (Booking, bool, error) {
	h := sha256.Sum256([]byte(token))
	var b Booking
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		id := tx.Bucket(bucketTokens).Get(h[:])
		if id == nil {
			return nil
		}
		ok, err = getJSON(tx.Bucket(bucketBookings), id, &b)
		return err
	})
	return b, ok, err
}

// --- prompt reservations ---

// PutReservation stores a pending Prompt reservation.
func (s *Store) PutReservation(r Reservation) error {
	return s.db.Update(func(tx *bolt.Tx) error { return putJSON(tx.Bucket(bucketPrompts), id64(r.AssignmentID), r) })
}

// Reservation returns the pending reservation of an assignment.
func (s *Store) Reservation(assignmentID int64) (Reservation, bool, error) {
	var r Reservation
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		ok, err = getJSON(tx.Bucket(bucketPrompts), id64(assignmentID), &r)
		return err
	})
	return r, ok, err
}

// DeleteReservation drops a reservation (booked, or the assignment is gone).
func (s *Store) DeleteReservation(assignmentID int64) error {
	// Looked up first: every booking made or ended asks, few have one, and
	// a write transaction is a commit (two fsyncs) that also holds up the
	// webhook's intake and the other workers.
	var had bool
	if err := s.db.View(func(tx *bolt.Tx) error {
		had = tx.Bucket(bucketPrompts).Get(id64(assignmentID)) != nil
		return nil
	}); err != nil || !had {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketPrompts).Delete(id64(assignmentID)) })
}

// Reservations lists the pending reservations by assignment id.
func (s *Store) Reservations() ([]Reservation, error) {
	var out []Reservation
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPrompts).ForEach(func(k, v []byte) error {
			var r Reservation
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("reservation %x: %w", k, err)
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// --- bridge-made deliveries ---

// AddInternalDelivery queues a delivery the bridge makes itself, so that the
// worker reads assignment assignmentID of vehicle vehicleID back and acts on
// it, with the same retries and durability as Fleetio's. event says why.
func (s *Store) AddInternalDelivery(event string, assignmentID, vehicleID int64, now time.Time) (Delivery, error) {
	var d Delivery
	err := s.db.Update(func(tx *bolt.Tx) error {
		d = internalDelivery(tx, event, assignmentID, vehicleID, now)
		if err := putJSON(tx.Bucket(bucketDeliveries), id64(d.ID), d); err != nil {
			return err
		}
		return tx.Bucket(bucketQueue).Put(id64(d.ID), nil)
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("bridge store: queue %s of assignment %d: %w", event, assignmentID, err)
	}
	return d, nil
}

func internalDelivery(tx *bolt.Tx, event string, assignmentID, vehicleID int64, now time.Time) Delivery {
	seq, _ := tx.Bucket(bucketDeliveries).NextSequence() // fails only on a read-only tx
	id := int64(internalDeliveryBase + seq)
	body, _ := json.Marshal(map[string]any{"id": id, "event": event, "triggered_by": "smartbox-bridge",
		"payload": map[string]int64{"id": assignmentID, "vehicle_id": vehicleID}})
	return Delivery{ID: id, Event: event, Body: body, ReceivedAt: now, State: DeliveryQueued}
}

// ApproveReservation stores r (approved, with its edit) and queues the
// delivery that makes its booking, in one transaction: once it returns, the
// booking will be made, whatever happens to this process.
func (s *Store) ApproveReservation(r Reservation, now time.Time) (Delivery, error) {
	var d Delivery
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := putJSON(tx.Bucket(bucketPrompts), id64(r.AssignmentID), r); err != nil {
			return err
		}
		d = internalDelivery(tx, EventCreateBooking, r.AssignmentID, r.VehicleID, now)
		if err := putJSON(tx.Bucket(bucketDeliveries), id64(d.ID), d); err != nil {
			return err
		}
		return tx.Bucket(bucketQueue).Put(id64(d.ID), nil)
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("bridge store: approve reservation %d: %w", r.AssignmentID, err)
	}
	return d, nil
}

// DropQueue takes every queued delivery off the queue as failed with reason
// (a disconnect: they belong to the old connection) and deletes the pending
// reservations. It returns how many of each.
func (s *Store) DropQueue(reason string) (deliveries, reservations int, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		ds, q := tx.Bucket(bucketDeliveries), tx.Bucket(bucketQueue)
		var ids [][]byte
		q.ForEach(func(k, _ []byte) error { ids = append(ids, bytes.Clone(k)); return nil })
		for _, k := range ids {
			var d Delivery
			if ok, err := getJSON(ds, k, &d); err != nil {
				return err
			} else if ok {
				d.State, d.LastError = DeliveryFailed, reason
				if err := putJSON(ds, k, d); err != nil {
					return err
				}
			}
			if err := q.Delete(k); err != nil {
				return err
			}
		}
		deliveries = len(ids)
		ps := tx.Bucket(bucketPrompts)
		var rs [][]byte
		ps.ForEach(func(k, _ []byte) error { rs = append(rs, bytes.Clone(k)); return nil })
		for _, k := range rs {
			if err := ps.Delete(k); err != nil {
				return err
			}
		}
		reservations = len(rs)
		return nil
	})
	return deliveries, reservations, err
}

// --- driver codes ---

// driverCode is a driver's code (CodePerDriver drawn, or CodeDriverOwn set
// by the admin), sealed like PINs, and the boxes its grant is on.
type driverCode struct {
	ContactID int64           `json:"contact_id"`
	Sealed    []byte          `json:"sealed"`
	Own       bool            `json:"own,omitempty"` // set by the admin (CodeDriverOwn)
	Boxes     map[string]bool `json:"boxes,omitempty"`
	Changed   time.Time       `json:"changed"`
}

func (s *Store) driverCode(contactID int64) (driverCode, bool, error) {
	var dc driverCode
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		ok, err = getJSON(tx.Bucket(bucketDrivers), id64(contactID), &dc)
		return err
	})
	return dc, ok, err
}

func (s *Store) putDriverCode(dc driverCode) error {
	return s.db.Update(func(tx *bolt.Tx) error { return putJSON(tx.Bucket(bucketDrivers), id64(dc.ContactID), dc) })
}

func (s *Store) deleteDriverCode(contactID int64) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketDrivers).Delete(id64(contactID)) })
}

func (s *Store) driverCodes() ([]driverCode, error) {
	var out []driverCode
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDrivers).ForEach(func(k, v []byte) error {
			var dc driverCode
			if err := json.Unmarshal(v, &dc); err != nil {
				return fmt.Errorf("driver code %x: %w", k, err)
			}
			out = append(out, dc)
			return nil
		})
	})
	return out, err
}

// forgetSecrets wipes every sealed PIN and driver code (disconnect).
func (s *Store) forgetSecrets() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		bs := tx.Bucket(bucketBookings)
		var wipe []Booking
		if err := bs.ForEach(func(k, v []byte) error {
			var b Booking
			if err := json.Unmarshal(v, &b); err != nil {
				return fmt.Errorf("booking %x: %w", k, err)
			}
			if b.SealedPIN != nil {
				b.SealedPIN = nil
				wipe = append(wipe, b)
			}
			return nil
		}); err != nil {
			return err
		}
		for _, b := range wipe {
			if err := putJSON(bs, id64(b.AssignmentID), b); err != nil {
				return err
			}
		}
		if err := tx.DeleteBucket(bucketDrivers); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bucketDrivers)
		return err
	})
}

// --- PIN sealing ---

// sealPIN encrypts a PIN for the booking record, bound to the assignment.
func (s *Store) sealPIN(assignmentID int64, pin string) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce) // crypto/rand.Read never fails (Go >= 1.24)
	return s.aead.Seal(nonce, nonce, []byte(pin), id64(assignmentID))
}

// sealDriverCode encrypts a driver's code, bound to the contact (the
// additional data differs from a PIN's, so one can't pass for the other).
func (s *Store) sealDriverCode(contactID int64, code string) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, []byte(code), driverAD(contactID))
}

func (s *Store) openDriverCode(contactID int64, sealed []byte) (string, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return "", fmt.Errorf("driver %d: sealed code too short", contactID)
	}
	pt, err := s.aead.Open(nil, sealed[:n], sealed[n:], driverAD(contactID))
	if err != nil {
		return "", fmt.Errorf("driver %d: open sealed code: %w", contactID, err)
	}
	return string(pt), nil
}

func driverAD(contactID int64) []byte { return append([]byte("driver:"), id64(contactID)...) }

// openPIN decrypts what sealPIN made.
func (s *Store) openPIN(assignmentID int64, sealed []byte) (string, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return "", fmt.Errorf("booking %d: sealed PIN too short", assignmentID)
	}
	pt, err := s.aead.Open(nil, sealed[:n], sealed[n:], id64(assignmentID))
	if err != nil {
		return "", fmt.Errorf("booking %d: open sealed PIN: %w", assignmentID, err)
	}
	return string(pt), nil
}
