package bookings

import (
	"crypto/rand"
	"fmt"
	"io"
)

// PINLength is the length of a booking PIN: Keycafe's auto-generated codes
// are 6 digits, a million values, which the box's growing lockout makes
// impractical to guess.
const PINLength = 6

// NewPIN draws a PIN of n digits (4..16) from r (crypto/rand.Reader when
// nil), uniformly over the values that are not trivial (see TrivialPIN).
// Each digit is drawn by rejection sampling (bytes >= 250 are drawn again) so
// that no digit is likelier than another.
func NewPIN(r io.Reader, n int) (string, error) {
	if n < 4 || n > 16 {
		return "", fmt.Errorf("%w PIN length %d: want 4..16", ErrInvalid, n)
	}
	if r == nil {
		r = rand.Reader
	}
	buf := make([]byte, 1)
	pin := make([]byte, n)
	// A trivial PIN is rare (about 50 in a million of 6 digits), so a few
	// draws always do; the bound turns a broken reader into an error.
	for range 100 {
		for i := 0; i < n; {
			if _, err := io.ReadFull(r, buf); err != nil {
				return "", fmt.Errorf("draw PIN: %w", err)
			}
			if buf[0] >= 250 {
				continue
			}
			pin[i] = '0' + buf[0]%10
			i++
		}
		if !TrivialPIN(string(pin)) {
			return string(pin), nil
		}
	}
	return "", fmt.Errorf("draw PIN: only trivial PINs after 100 draws: is the random source broken?")
}

// TrivialPIN reports whether pin is a sequence a bystander or a guesser
// would try first: one digit repeated (000000), an ascending or descending
// run, wrapping or not (123456, 654321, 890123), or a repeated pair or triple
// (121212, 123123).
func TrivialPIN(pin string) bool {
	n := len(pin)
	if n < 2 {
		return true
	}
	asc, desc := true, true
	for i := 1; i < n; i++ {
		d := (int(pin[i]) - int(pin[i-1]) + 10) % 10
		asc = asc && d == 1
		desc = desc && d == 9
	}
	if asc || desc {
		return true
	}
	// Period 1 (all same), 2 (121212) or 3 (123123): each digit equals the
	// one p places before.
	for p := 1; p <= 3 && p < n; p++ {
		same := true
		for i := p; i < n; i++ {
			if pin[i] != pin[i-p] {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}
