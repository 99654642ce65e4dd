package selftest

import "golang.org/x/sys/unix"

// ntpSynced reports whether the kernel says the system clock is
// synchronised (adjtimex: STA_UNSYNC clear).
func ntpSynced() bool {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	return err == nil && state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0
}
