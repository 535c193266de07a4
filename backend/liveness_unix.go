//go:build unix

package backend

import (
	"net"
	"syscall"
)

// probe asks the kernel, without blocking and without consuming data,
// whether an idle socket has anything to read. One recv(MSG_PEEK|
// MSG_DONTWAIT) per reuse is far cheaper than a goroutine parked on every
// idle connection. The raw connection and the callback are bound once per
// connection, so a check allocates nothing.
type probe struct {
	rc    syscall.RawConn // nil: the socket cannot be inspected
	check func(fd uintptr) bool
	quiet bool // the last check's finding
	buf   [1]byte
}

func (p *probe) init(nc net.Conn) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	p.rc = rc
	p.check = func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// EAGAIN: nothing to read, the connection is idle as it should be.
		// No error means EOF or stray bytes; any other error, a dead socket.
		p.quiet = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true // never wait for readability
	}
}

// alive reports whether the socket is silent. A socket that cannot be
// inspected counts as alive: the retry rules still cover a dead one.
func (p *probe) alive() bool {
	if p.rc == nil {
		return true
	}
	p.quiet = false
	return p.rc.Read(p.check) == nil && p.quiet
}
