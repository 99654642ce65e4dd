package broker

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// PasswordCost is the bcrypt cost HashPassword uses: about 50 ms per check on
// a Raspberry Pi 4-class CPU, paid once per connect.
const PasswordCost = bcrypt.DefaultCost

// HashPassword returns a bcrypt hash of pw to keep in a user list or store.
func HashPassword(pw string) (string, error) {
	if pw == "" {
		return "", errors.New("broker: empty password")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), PasswordCost)
	if err != nil {
		// bcrypt looks at 72 bytes at most and refuses longer passwords
		// rather than silently ignoring the rest.
		return "", fmt.Errorf("broker: hashing password: %w", err)
	}
	return string(h), nil
}

// CheckPassword reports whether pw matches hash (from HashPassword, or any
// bcrypt hash). A malformed hash matches nothing.
func CheckPassword(hash, pw string) bool {
	return pw != "" && compareHash([]byte(hash), []byte(pw)) == nil
}

// compareHash is the bcrypt comparison, a variable only so that tests can
// count and pace the checks the broker makes.
var compareHash = bcrypt.CompareHashAndPassword

// isHash tells a bcrypt hash from, say, a plain password put in its place.
func isHash(h string) bool {
	_, err := bcrypt.Cost([]byte(h))
	return err == nil
}
