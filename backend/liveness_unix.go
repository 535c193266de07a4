//go:build unix

package backend

import (
	"net"
	"syscall"
)

// peekAlive asks the kernel, without blocking and without consuming data,
// whether the socket has anything to read. One recv(MSG_PEEK|MSG_DONTWAIT)
// per reuse is far cheaper than a goroutine parked on every idle connection.
func peekAlive(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// EAGAIN: nothing to read, the connection is idle as it should be.
		// No error means EOF or stray bytes; any other error, a dead socket.
		alive = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true // never wait for readability
	})
	return err == nil && alive
}
