package ntpsync

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Synced asks the kernel whether NTP keeps the clock synchronised: a
// time service clears STA_UNSYNC once it has disciplined the clock, and
// adjtimex says TIME_ERROR while it is set.
func Synced() (bool, error) {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return false, fmt.Errorf("asking the kernel for the clock's NTP state (adjtimex): %w", err)
	}
	return state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0, nil
}
