package backend

import (
	"net"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestIdleConnectionClosedByOrigin: the liveness check finds the origin's
// FIN before reuse, so the request goes on a new connection with no retry.
func TestIdleConnectionClosedByOrigin(t *testing.T) {
	closed := make(chan struct{})
	o := startOrigin(t, func(c *originConn) {
		if c.n == 1 {
			c.readRequest()
			c.write(okResponse("conn 1"))
			c.Close()
			close(closed)
			return
		}
		serveKeepAlive(c)
	})
	b := newTestBackend(t, Config{}, o.addr())
	fetch(t, b, "GET", "/", nil)
	<-closed
	pc := b.pools[0]
	waitFor(t, "the FIN to arrive", func() bool {
		pc.mu.Lock()
		defer pc.mu.Unlock()
		return len(pc.idle) == 1 && tcpState(t, pc.idle[0].nc) == unix.BPF_TCP_CLOSE_WAIT
	})
	if _, body := fetch(t, b, "POST", "/", strings.NewReader("x")); body != "conn 2" {
		t.Fatalf("answered on %q", body)
	}
	if s := stats(b); s.Retried != 0 || s.Failed != 0 || s.Retired.OriginClose != 1 {
		t.Fatalf("stats %+v: want no retry, no failure, one origin close", s)
	}
}

// tcpState reads the kernel's TCP state of nc, independently of the code
// under test.
func tcpState(t *testing.T, nc net.Conn) uint8 {
	rc, err := nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var info *unix.TCPInfo
	rc.Control(func(fd uintptr) { info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) })
	if err != nil {
		t.Fatal(err)
	}
	return info.State
}
