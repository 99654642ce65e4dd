package main

import "golang.org/x/sys/unix"

// isTerminal reports whether fd is a terminal (a /dev/null stdin is a
// character device too, so the file mode cannot tell).
func isTerminal(fd uintptr) bool {
	_, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
	return err == nil
}
