//go:build linux || darwin || freebsd || netbsd || openbsd

package dispatch

import (
	"crypto/tls"
	"net"
	"syscall"
)

// canPeek says that stillOpen looks at the socket.
const canPeek = true

// stillOpen reports whether an idle connection can carry a request: the
// receiver has not closed or reset it, nor sent anything unasked. It peeks
// at the socket without waiting.
func stillOpen(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		// Nothing to read is what an open, quiet connection gives; an
		// end of stream, bytes or any other error mean it is done.
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true // never wait for the socket
	})
	return err == nil && open
}
