//go:build !linux

package main

import "syscall"

// childAttr is empty where there is no parent-death signal: children end
// when their stdin closes or the harness stops them.
func childAttr() *syscall.SysProcAttr { return nil }
