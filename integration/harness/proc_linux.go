//go:build linux

package harness

import "syscall"

// sysProcAttr makes the kernel kill a server if the test binary dies (crash, timeout, ^C), so no
// Samba is left holding ports 389/636 and no apiserver outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
