//go:build !linux

package main

import "errors"

// ntpSynced is known on Linux only (adjtimex).
func ntpSynced() (bool, error) {
	return false, errors.New("the clock's NTP state is known on Linux only")
}
