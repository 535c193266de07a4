package backend

import (
	"bufio"
	"net"
	"sync"
	"time"
)

// conn is one upstream connection. While busy it belongs to the request
// that holds it; while idle, its fields are guarded by the pool's mutex.
type conn struct {
	nc    net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	probe probe // liveness of the idle socket

	created  time.Time
	written  int64         // bytes the socket accepted; owned by the writer
	requests int           // responses completed on this connection
	hint     keepAliveHint // from the latest response

	// Set when the connection goes idle: since when, until when it may be
	// reused, and which retirement reason applies then.
	idleSince    time.Time
	expires      time.Time
	expiryReason retireReason
}

func newConn(nc net.Conn) *conn {
	c := &conn{nc: nc, br: bufio.NewReaderSize(nc, 8<<10), created: time.Now()}
	c.bw = bufio.NewWriterSize(countingWriter{c}, 4<<10)
	c.probe.init(nc)
	return c
}

// countingWriter counts what the socket accepts: a request none of whose
// bytes were accepted provably never reached the origin.
type countingWriter struct{ c *conn }

func (w countingWriter) Write(p []byte) (int, error) {
	n, err := w.c.nc.Write(p)
	w.c.written += int64(n)
	return n, err
}

// alive reports whether an idle connection may be reused. An idle HTTP/1.1
// connection has nothing to read: if it is readable, the origin either
// closed it (EOF, RST) or sent bytes no request asked for, and either way
// a request sent on it would be lost or answered wrongly (RFC 9112 §9.3.1,
// §9.6).
func (c *conn) alive() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	return c.probe.alive()
}

// aLongTimeAgo is a deadline in the past, set to unblock I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// copyBufPool holds buffers for copying request bodies.
var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
