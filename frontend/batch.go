package frontend

import (
	"crypto/tls"
	"net"
	"sync"
)

// One write(2) per engine write, whatever crypto/tls makes of it.
//
// crypto/tls cuts a Write into records of at most 16 KiB (RFC 8446 §5.1)
// and hands each record to the connection below on its own: a 64 KiB batch
// of HTTP/2 frames, or a 32 KiB piece of an HTTP/1.1 body, became four or
// more write(2) calls. batchConn sits below crypto/tls and collects the
// records of one engine write; batchedTLS, the connection the engines get,
// brackets each of its Writes so that they leave in one write(2). Writes
// crypto/tls makes by itself (alerts, close_notify, key updates) go
// straight through.
//
// The batch buffer comes from a pool for the length of one Write: an idle
// connection holds none.

// batchConn is the connection below crypto/tls.
type batchConn struct {
	net.Conn
	mu       sync.Mutex // guards batching and buf
	batching bool
	buf      *[]byte
}

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// maxPooledBatch: a batch buffer grown past this goes to the GC, not back
// to the pool.
const maxPooledBatch = 256 << 10

func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.batching {
		*c.buf = append(*c.buf, p...)
		c.mu.Unlock()
		return len(p), nil
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// CloseWrite passes a half-close to the TCP connection, if it has one.
func (c *batchConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *batchConn) begin() {
	c.mu.Lock()
	c.batching = true
	c.buf = batchPool.Get().(*[]byte)
	c.mu.Unlock()
}

// end writes the batch out in one Write and gives the buffer back.
func (c *batchConn) end() error {
	c.mu.Lock()
	buf := c.buf
	c.batching, c.buf = false, nil
	c.mu.Unlock()
	var err error
	if len(*buf) > 0 {
		_, err = c.Conn.Write(*buf)
	}
	if cap(*buf) <= maxPooledBatch {
		*buf = (*buf)[:0]
		batchPool.Put(buf)
	}
	return err
}

// batchedTLS is the TLS connection the engines serve: a *tls.Conn whose
// Writes each leave in one write(2).
type batchedTLS struct {
	*tls.Conn
	bc *batchConn
}

// Write encrypts p and sends its records together. The engines serialise
// their writes, so one batch is open at a time.
func (c batchedTLS) Write(p []byte) (int, error) {
	c.bc.begin()
	n, err := c.Conn.Write(p)
	if ferr := c.bc.end(); ferr != nil && err == nil {
		// The bytes never left: crypto/tls counted them written.
		return 0, ferr
	}
	return n, err
}
