//go:build !linux

package harness

import "syscall"

// sysProcAttr: only Linux can tie a child's life to its parent; elsewhere Stop must be called.
func sysProcAttr() *syscall.SysProcAttr { return nil }
