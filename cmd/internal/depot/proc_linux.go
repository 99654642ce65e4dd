package depot

import "syscall"

// childAttrs: a box process gets SIGTERM if the simulator dies without
// stopping it (killed, crashed), so no orphan keeps a slot released; and it
// runs in its own process group, so that a Ctrl-C at the terminal reaches
// the simulator, which stops the boxes in order, rather than every box at
// once.
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
}
