package main

import "syscall"

// childAttr makes the kernel kill a child when the harness dies, however it
// dies: a leftover pimhook or receiver would skew the next run.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
