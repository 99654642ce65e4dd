//go:build !linux && !darwin && !freebsd && !netbsd && !openbsd

package main

// isTerminal is false where we cannot ask: EOF on stdin then keeps the
// daemon running until a signal, which is the safe choice for a service.
func isTerminal(uintptr) bool { return false }
