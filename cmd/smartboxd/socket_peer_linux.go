package main

import (
	"net"

	"golang.org/x/sys/unix"
)

// unixPeerUID is the uid of the process at c's other end, as the kernel
// recorded it at connect (SO_PEERCRED); -1 if it cannot be read.
func unixPeerUID(c *net.UnixConn) int {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1
	}
	uid := -1
	_ = raw.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			uid = int(cred.Uid)
		}
	})
	return uid
}
