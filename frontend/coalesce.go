package frontend

import (
	"crypto/tls"
	"net"
	"runtime"
	"sync"
	"time"
)

// coalesceConn batches the writes of an HTTP/2 connection.
//
// x/net's server flushes its frame buffer whenever its write queue runs
// empty. A handler writes its response HEADERS and waits for them to be
// written before it queues the DATA, so under load the queue runs empty
// after nearly every frame: two TLS records and two write(2) calls per
// response, each waking the client, where nginx and HAProxy send the
// responses of many streams in one. coalesceConn accepts each write into a
// buffer and hands the buffer to a flusher goroutine that first yields the
// processor: the frames other streams are about to queue (already
// runnable) join the same TLS record and system call. Nothing waits on a
// timer, so a lone response goes out after one scheduling round.
//
// Order is kept: one buffer, written in the order the writes came. What a
// write reports is only that the bytes were accepted; a failure of the
// connection shows on a later write, and on Close, as it would after the
// kernel accepted bytes the peer never read.
//
// Backpressure is kept too: past maxPending unsent bytes a write blocks
// until the flusher has written, as a write to a full socket would. The
// flusher sets its own write deadline of stall per write (x/net's
// WriteByteTimeout applies to the buffered writes, which never stall), so
// a client that stops reading is still cut off; SetWriteDeadline calls
// from above are therefore not passed down.
//
// Idle connections hold no buffer: it goes back to a pool once written.
type coalesceConn struct {
	net.Conn
	stall time.Duration // per underlying write; 0: no deadline

	mu       sync.Mutex
	cond     sync.Cond // signalled when the flusher has written; uses mu
	pending  *[]byte   // accepted, not yet handed to the flusher; guarded by mu
	unsent   int       // bytes accepted and not yet written; guarded by mu
	flushing bool      // a flusher goroutine is running; guarded by mu
	err      error     // sticky write error; guarded by mu
}

const (
	// maxPending bounds the unsent bytes per connection: x/net writes at
	// most a frame of MaxReadFrameSize plus its header per call, and a
	// handful of such writes make a full batch.
	maxPending = 256 << 10
	// coalesceBufSize is a pooled buffer's starting capacity: the frames of
	// a few dozen small responses.
	coalesceBufSize = 16 << 10
	// directWrite is the size from which a write is not batched: x/net's
	// own write buffer is 4 KiB, and what it passes on whole is content
	// that fills TLS records by itself.
	directWrite = 4 << 10
)

var coalesceBufs = sync.Pool{New: func() any { b := make([]byte, 0, coalesceBufSize); return &b }}

func newCoalesceConn(c net.Conn, stall time.Duration) *coalesceConn {
	cc := &coalesceConn{Conn: c, stall: stall}
	cc.cond.L = &cc.mu
	return cc
}

func (c *coalesceConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(p) >= directWrite {
		return c.writeDirect(p)
	}
	for c.err == nil && c.unsent > 0 && c.unsent+len(p) > maxPending {
		c.cond.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	if c.pending == nil {
		c.pending = coalesceBufs.Get().(*[]byte)
	}
	*c.pending = append(*c.pending, p...)
	c.unsent += len(p)
	if !c.flushing {
		c.flushing = true
		go c.flush()
	}
	return len(p), nil
}

// writeDirect writes a large p itself, once what came before it is
// written: it fills TLS records on its own, and copying it into the batch
// would cost more than the system call it could share. Called with mu
// held; later writes queue behind it.
func (c *coalesceConn) writeDirect(p []byte) (int, error) {
	for c.err == nil && c.flushing {
		c.cond.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	c.flushing = true // keeps the flusher from starting under us
	c.mu.Unlock()
	var err error
	if c.stall > 0 {
		err = c.Conn.SetWriteDeadline(time.Now().Add(c.stall))
	}
	n := 0
	if err == nil {
		n, err = c.Conn.Write(p)
	}
	c.mu.Lock()
	if err != nil {
		c.err = err
	}
	c.flushing = false
	if c.pending != nil && c.err == nil {
		c.flushing = true
		go c.flush()
	}
	c.cond.Broadcast()
	return n, err
}

// flush writes what has accumulated, after letting the goroutines that are
// ready to run add to it, until nothing is pending.
func (c *coalesceConn) flush() {
	runtime.Gosched()
	c.mu.Lock()
	for c.pending != nil && c.err == nil {
		buf := c.pending
		c.pending = nil
		c.mu.Unlock()

		var err error
		if c.stall > 0 {
			err = c.Conn.SetWriteDeadline(time.Now().Add(c.stall))
		}
		n := len(*buf)
		if err == nil {
			_, err = c.Conn.Write(*buf)
		}
		*buf = (*buf)[:0]
		if cap(*buf) <= 4*coalesceBufSize {
			coalesceBufs.Put(buf) // a rare huge batch is left to the collector
		}

		c.mu.Lock()
		c.unsent -= n
		if err != nil {
			c.err = err
		}
		c.cond.Broadcast()
	}
	c.flushing = false
	if c.pending != nil { // a write failed: drop what cannot be sent
		*c.pending = (*c.pending)[:0]
		coalesceBufs.Put(c.pending)
		c.pending = nil
	}
	c.cond.Broadcast()
	c.mu.Unlock()
}

// SetWriteDeadline is not passed down: see the type's comment.
func (c *coalesceConn) SetWriteDeadline(time.Time) error { return nil }

// SetDeadline sets the read deadline only, for the same reason.
func (c *coalesceConn) SetDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }

// Close writes what is pending (x/net sends GOAWAY just before it closes),
// within one stall timeout or, without one, the 5 seconds crypto/tls
// gives its own close_notify; then it closes the connection.
func (c *coalesceConn) Close() error {
	c.mu.Lock()
	if c.flushing && c.err == nil {
		grace := c.stall
		if grace <= 0 {
			grace = 5 * time.Second
		}
		deadline := time.AfterFunc(grace, func() { c.Conn.SetWriteDeadline(aLongTimeAgo) })
		defer deadline.Stop()
		for c.flushing {
			c.cond.Wait()
		}
	}
	c.err = net.ErrClosed
	c.mu.Unlock()
	return c.Conn.Close()
}

// aLongTimeAgo is a deadline in the past, set to unblock I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// servedConn is the connection x/net's server runs on: it reads through the
// shim (h2shim.go), writes through the coalescer, and reports the TLS
// state x/net checks (RFC 9113 §9.2) from the TLS connection under both.
type servedConn struct {
	*coalesceConn
	shim *shimConn
}

func newServedConn(c *tls.Conn, sc shimConfig, stall time.Duration) *servedConn {
	return &servedConn{coalesceConn: newCoalesceConn(c, stall), shim: newShimConn(c, sc)}
}

func (c *servedConn) Read(p []byte) (int, error) { return c.shim.Read(p) }

func (c *servedConn) ConnectionState() tls.ConnectionState { return c.shim.ConnectionState() }
