//go:build !linux

package ntpsync

import "errors"

// Synced is known on Linux only (adjtimex).
func Synced() (bool, error) {
	return false, errors.New("the clock's NTP state is known on Linux only")
}
