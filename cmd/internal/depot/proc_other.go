//go:build !linux

package depot

import "syscall"

// childAttrs: its own process group (see proc_linux.go; only Linux can ask
// for a signal when the parent dies).
func childAttrs() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
