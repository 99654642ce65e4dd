package box

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"
)

// Key is a physical key on its fob, and the slot it lives in.
// Keys are replicated records: the cloud (or an import) owns them.
type Key struct {
	ID     string `json:"id"`
	Name   string `json:"name,omitempty"`
	FobUID string `json:"fob_uid"` // EM4100 UID, 10 upper-case hex digits (see NormalizeFobUID)
	Slot   int    `json:"slot"`    // home slot, 1..N
}

// GrantKind says how a grant is used at the keypad.
type GrantKind string

const (
	// KindBooking is a booking PIN: it opens the slots of the grant's keys.
	KindBooking GrantKind = "booking"
	// KindDriverCode is a driver's own access code: it opens the grant's keys
	// and the keys of every active grant with the same DriverRef.
	KindDriverCode GrantKind = "driver_code"
)

// Grant lets a code open keys during a window. Grants are replicated records
// except for Uses, which the box counts itself.
//
// The code itself is not part of Grant: the store keeps only an HMAC of it
// (see store), so a Grant read back from the box never carries a code.
type Grant struct {
	ID        string    `json:"id"`
	Kind      GrantKind `json:"kind"`
	KeyIDs    []string  `json:"key_ids,omitempty"`
	From      time.Time `json:"from,omitzero"`      // zero: no start
	Until     time.Time `json:"until,omitzero"`     // zero: no end; the window is [From, Until)
	MaxUses   int       `json:"max_uses,omitempty"` // 0: unlimited
	Uses      int       `json:"uses,omitempty"`     // counted by the box
	Revoked   bool      `json:"revoked,omitempty"`
	Source    string    `json:"source,omitempty"`     // who made it, e.g. "fleetio", "import"
	DriverRef string    `json:"driver_ref,omitempty"` // e.g. a Fleetio contact id
}

// Windowed reports whether the grant has a start or an end.
func (g Grant) Windowed() bool { return !g.From.IsZero() || !g.Until.IsZero() }

// Ended reports whether the grant can never be used again at or after now
// (revoked, window over, or uses exhausted).
func (g Grant) Ended(now time.Time) bool {
	return g.Revoked || (!g.Until.IsZero() && !now.Before(g.Until)) || (g.MaxUses > 0 && g.Uses >= g.MaxUses)
}

// Usable says whether the grant may be used at now, and if not, why not.
func (g Grant) Usable(now time.Time) (bool, Reason) {
	switch {
	case g.Revoked:
		return false, ReasonRevoked
	case !g.From.IsZero() && now.Before(g.From):
		return false, ReasonNotYetValid
	case !g.Until.IsZero() && !now.Before(g.Until):
		return false, ReasonExpired
	case g.MaxUses > 0 && g.Uses >= g.MaxUses:
		return false, ReasonUsedUp
	}
	return true, ""
}

// Lockout is the wrong-code state, kept across restarts.
type Lockout struct {
	// Failures is the count of wrong codes not yet forgiven: one is
	// forgiven per Config.LockoutDecay since Since, and nothing else
	// forgives any (see Config).
	Failures int       `json:"failures"`
	Until    time.Time `json:"until,omitzero"` // keypad checks no code before this
	Since    time.Time `json:"since,omitzero"` // the decay of Failures counts from here
	// Spent is the guess budget's wrong codes spent (Config.LockoutBudget):
	// one is given back per Config.LockoutRefill since Refilled, and all by
	// a restore_keypad command. At the budget the keypad checks no code.
	Spent    int       `json:"spent,omitempty"`
	Refilled time.Time `json:"refilled,omitzero"` // the refill of Spent counts from here
}

// Validation errors. Errors from Validate wrap ErrInvalidRecord.
var ErrInvalidRecord = errors.New("invalid record")

var (
	idPattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`)
	fobPattern = regexp.MustCompile(`^[0-9A-F]{10}$`)
)

// ValidID reports whether s can be a key, grant or box id.
func ValidID(s string) bool { return idPattern.MatchString(s) }

// NormalizeFobUID upper-cases a fob UID and drops spaces and colons, so that
// "01 00 07 34 e0" and "01000734E0" name the same fob. It reports false when
// the result is not 10 hex digits (40 bits, an EM4100 UID).
func NormalizeFobUID(s string) (string, bool) {
	b := make([]byte, 0, 10)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == ':' || c == '-':
			continue
		case c >= 'a' && c <= 'f':
			c -= 'a' - 'A'
		}
		b = append(b, c)
	}
	u := string(b)
	return u, fobPattern.MatchString(u)
}

// Validate checks a key record. slots is the box's slot count (0: not checked).
func (k Key) Validate(slots int) error {
	if !ValidID(k.ID) {
		return fmt.Errorf("%w: key id %q: want 1-128 letters, digits or ._:@-", ErrInvalidRecord, k.ID)
	}
	if _, ok := NormalizeFobUID(k.FobUID); !ok {
		return fmt.Errorf("%w: key %s: fob_uid %q is not 10 hex digits", ErrInvalidRecord, k.ID, k.FobUID)
	}
	if k.Slot < 1 || (slots > 0 && k.Slot > slots) {
		if slots > 0 {
			return fmt.Errorf("%w: key %s: slot %d is not in 1..%d", ErrInvalidRecord, k.ID, k.Slot, slots)
		}
		return fmt.Errorf("%w: key %s: slot %d is not a slot number", ErrInvalidRecord, k.ID, k.Slot)
	}
	return nil
}

// Validate checks a grant record (without its code; see ValidCode).
func (g Grant) Validate() error {
	if !ValidID(g.ID) {
		return fmt.Errorf("%w: grant id %q: want 1-128 letters, digits or ._:@-", ErrInvalidRecord, g.ID)
	}
	switch g.Kind {
	case KindBooking:
		if len(g.KeyIDs) == 0 {
			return fmt.Errorf("%w: grant %s: a booking needs at least one key", ErrInvalidRecord, g.ID)
		}
	case KindDriverCode:
		if g.DriverRef == "" {
			return fmt.Errorf("%w: grant %s: a driver code needs a driver_ref", ErrInvalidRecord, g.ID)
		}
	default:
		return fmt.Errorf("%w: grant %s: kind %q is not %q or %q", ErrInvalidRecord, g.ID, g.Kind, KindBooking, KindDriverCode)
	}
	for _, k := range g.KeyIDs {
		if !ValidID(k) {
			return fmt.Errorf("%w: grant %s: key id %q", ErrInvalidRecord, g.ID, k)
		}
	}
	if !g.From.IsZero() && !g.Until.IsZero() && !g.From.Before(g.Until) {
		return fmt.Errorf("%w: grant %s: window from %s is not before until %s", ErrInvalidRecord, g.ID,
			g.From.Format(time.RFC3339), g.Until.Format(time.RFC3339))
	}
	if g.MaxUses < 0 || g.Uses < 0 {
		return fmt.Errorf("%w: grant %s: negative use count", ErrInvalidRecord, g.ID)
	}
	return nil
}

// Code length bounds. A code is digits only: the keypad has nothing else
// (besides * and #, which are commands).
const (
	MinCodeLength = 4
	MaxCodeLength = 16 // Keycafe takes custom codes of 4 to 16 digits
)

// ValidCode checks that code can be typed on the keypad.
func ValidCode(code string) error {
	if len(code) < MinCodeLength || len(code) > MaxCodeLength {
		return fmt.Errorf("%w: code must be %d to %d digits, got %d characters", ErrInvalidRecord, MinCodeLength, MaxCodeLength, len(code))
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return fmt.Errorf("%w: code must be digits only", ErrInvalidRecord)
		}
	}
	return nil
}

// MaxDriverRefLength bounds a driver ref: it is part of the store's index
// keys (bbolt keys are at most 32 KiB; real refs are short ids).
const MaxDriverRefLength = 256

// ErrCodeInUse is returned when a code is already the code of another grant
// of the box that has not ended: at the keypad, one code must mean one grant.
// The box's store and the cloud both refuse such a grant with it.
var ErrCodeInUse = errors.New("code already in use")

// GrantPut is a grant as the cloud, the bridge or an import sends it: with
// its code in clear. Code "" keeps the grant's current code. The code lives
// only in memory: the box's store writes its HMAC, the cloud its sealed
// form, and no log or error ever carries it.
type GrantPut struct {
	Grant
	Code string `json:"code,omitempty"`
}

// LogValue keeps the code out of logs.
func (g GrantPut) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", g.ID), slog.String("kind", string(g.Kind)),
		slog.Bool("code_given", g.Code != ""))
}

// Validate checks a grant and its code (if given) as the box will: the
// record (Grant.Validate), a driver ref the store can index, and a code the
// keypad can type. The cloud runs the same check, so that it never signs a
// batch the box would refuse (the box would be stuck at its revision). The
// code is never part of an error. A grant without a code is the
// receiver's to judge: acceptable if it already holds one for it.
func (g GrantPut) Validate() error {
	if err := g.Grant.Validate(); err != nil {
		return err
	}
	if len(g.DriverRef) > MaxDriverRefLength {
		return fmt.Errorf("%w: grant %s: driver_ref is %d bytes, at most %d", ErrInvalidRecord, g.ID, len(g.DriverRef), MaxDriverRefLength)
	}
	if strings.IndexByte(g.DriverRef, 0) >= 0 {
		return fmt.Errorf("%w: grant %s: driver_ref holds a NUL byte", ErrInvalidRecord, g.ID)
	}
	if g.Code != "" {
		if err := ValidCode(g.Code); err != nil {
			return fmt.Errorf("grant %s: %w", g.ID, err)
		}
	}
	return nil
}

// Normalized validates a key (slots: the box's slot count, 0: not checked)
// and returns it with its fob UID normalised (see NormalizeFobUID), as the
// box's store and the cloud keep it.
func (k Key) Normalized(slots int) (Key, error) {
	if err := k.Validate(slots); err != nil {
		return k, err
	}
	k.FobUID, _ = NormalizeFobUID(k.FobUID)
	return k, nil
}
