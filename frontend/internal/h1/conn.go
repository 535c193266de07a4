package h1

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"hoplite/frontend/internal/target"
)

// Conn serves one downstream HTTP/1.x connection.
type Conn struct {
	rwc net.Conn
	tc  tlsConn // rwc, when it is TLS
	h   http.Handler
	cfg config

	mu     sync.Mutex
	state  connState // guarded by mu
	closed bool      // guarded by mu: Close was called, or Serve ended
	// draining is set by Drain (under mu, read without it at commit).
	draining atomic.Bool
	// wmu serialises writes to rwc, and guards resp.committed for
	// writeContinue, which may run on a goroutine reading the body.
	wmu sync.Mutex

	ctx    context.Context
	cancel context.CancelFunc

	// Everything below belongs to Serve's goroutine (and the handler it
	// runs, on the same goroutine).
	rd         reader
	one        [1]byte
	head       reqHead
	req        *http.Request
	reqTmpl    http.Request // zero but for the connection's context
	url        url.URL
	reqHeader  http.Header
	body       body
	resp       response
	served     int  // requests read on this connection
	closeAfter bool // the current response is the connection's last
	remoteAddr string
	tlsState   *tls.ConnectionState
	strs       strCache
	slab       []string // backing for one-value header slices
	scratch    []byte
}

// tlsConn is what the engine uses of a TLS connection: a *tls.Conn, or a
// type that embeds one (frontend's write batching).
type tlsConn interface {
	ConnectionState() tls.ConnectionState
	NetConn() net.Conn
	CloseWrite() error
}

type connState uint8

const (
	stateNew    connState = iota // Serve has not started
	stateIdle                    // waiting for a request's first byte
	stateActive                  // a request is in progress
)

// NewConn prepares to serve c (a *tls.Conn after its handshake, or a
// plain TCP conn) with handler h. It reads nothing.
func NewConn(c net.Conn, h http.Handler, cfg *Config) *Conn {
	cc := &Conn{rwc: c, h: h, cfg: newConfig(cfg)}
	cc.tc, _ = c.(tlsConn)
	cc.rd.conn = c
	ctx := context.WithValue(context.Background(), http.LocalAddrContextKey, c.LocalAddr())
	cc.ctx, cc.cancel = context.WithCancel(ctx)
	cc.reqTmpl = *(&http.Request{}).WithContext(cc.ctx)
	cc.req = new(http.Request)
	cc.reqHeader = make(http.Header)
	cc.resp.header = make(http.Header)
	return cc
}

// Drain finishes gracefully: an idle connection closes at once; a request
// in progress is answered with "Connection: close" (if its head has not
// gone out yet) and the connection closes after it (RFC 9112 §9.6).
func (c *Conn) Drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining.Store(true)
	if c.state == stateIdle && !c.closed {
		// Wake the blocked first-byte read; Serve sees draining and ends.
		c.rwc.SetReadDeadline(aLongTimeAgo)
	}
}

var aLongTimeAgo = time.Unix(1, 0)

// Close ends the connection now: the request's context is cancelled and
// writes fail. Serve returns promptly.
func (c *Conn) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	if c.tc != nil {
		// Not tls.Conn.Close: it writes close_notify, which can block.
		c.tc.NetConn().Close()
		return
	}
	c.rwc.Close()
}

// Serve runs the connection until it ends, then closes it.
func (c *Conn) Serve() {
	defer c.end()
	if c.tc != nil {
		st := c.tc.ConnectionState()
		c.tlsState = &st
	}
	if a := c.rwc.RemoteAddr(); a != nil {
		c.remoteAddr = a.String()
	}
	for c.serveOne() {
	}
}

func (c *Conn) end() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.rd.release()
	c.resp.release()
	c.rwc.Close()
}

// serveOne reads one request and answers it; it reports whether the
// connection goes on.
func (c *Conn) serveOne() bool {
	if c.rd.buffered() == 0 {
		if !c.waitFirstByte() {
			return false
		}
	}
	c.mu.Lock()
	if c.closed || c.draining.Load() && c.state != stateActive && c.rd.buffered() == 0 {
		c.mu.Unlock()
		return false
	}
	c.state = stateActive
	c.mu.Unlock()

	end, herr := c.readHead()
	if herr != nil {
		if herr.status != 0 {
			c.writeError(herr)
			c.lingerClose()
		}
		return false
	}
	c.rwc.SetReadDeadline(time.Time{}) // none on bodies (per-request deadlines are the handler's)
	headBytes := c.rd.b[c.rd.r : c.rd.r+end]
	if perr := parseHead(headBytes, &c.head); perr != nil {
		c.writeError(perr)
		c.lingerClose()
		return false
	}
	c.served++
	c.closeAfter = false
	req, perr := c.buildRequest(headBytes)
	c.rd.r += end
	if perr != nil {
		c.writeError(perr)
		c.lingerClose()
		return false
	}
	c.resp.reset(c, req)
	c.runHandler(req)
	c.resp.release()
	if c.closeAfter {
		c.lingerClose()
		return false
	}
	if c.req.Body != http.NoBody && !c.body.finish() {
		c.lingerClose()
		return false
	}
	return true
}

// waitFirstByte waits, holding no buffer, for the next request's first
// byte (IdleTimeout). On TLS the one-byte read costs no extra system
// call: tls.Conn holds the decrypted record.
func (c *Conn) waitFirstByte() bool {
	c.rd.release()
	c.mu.Lock()
	if c.closed || c.draining.Load() {
		c.mu.Unlock()
		return false
	}
	c.state = stateIdle
	c.rwc.SetReadDeadline(time.Now().Add(c.cfg.idleTimeout))
	c.mu.Unlock()
	n, _ := c.rwc.Read(c.one[:])
	if n == 0 {
		return false // EOF, the idle timeout, Drain or Close
	}
	c.rd.acquire()
	c.rd.b[0] = c.one[0]
	c.rd.r, c.rd.w = 0, 1
	return true
}

// readHead reads until the buffer holds a whole head and returns its
// length. A head error with status 0 means: close without a response
// (timeout, EOF, a read error).
func (c *Conn) readHead() (int, *headError) {
	c.rd.acquire()
	deadlineSet := false
	line, from := 0, 0
	for {
		var end int
		var ok bool
		end, ok, line, from = findHeadEnd(c.rd.b[c.rd.r:c.rd.w], line, from)
		if ok {
			// The limit counts the request line and fields, not the
			// final empty line.
			if end > c.cfg.maxHeaderBytes+2 {
				return 0, errHeadTooLarge
			}
			return end, nil
		}
		if c.rd.buffered() > c.cfg.maxHeaderBytes+2 {
			return 0, errHeadTooLarge
		}
		if !deadlineSet {
			// RFC 9112 §9.5 leaves timeouts to the server: the head
			// must arrive within ReadHeaderTimeout of its first byte
			// (slowloris).
			c.rwc.SetReadDeadline(time.Now().Add(c.cfg.readHeaderTimeout))
			deadlineSet = true
		}
		c.rd.grow(c.cfg.maxHeaderBytes + 4)
		if err := c.rd.fill(); err != nil {
			return 0, &headError{}
		}
	}
}

var errHeadTooLarge = &headError{431, "request head too large"}

// writeError answers a refused head and closes: a short text/plain body
// and "Connection: close" (RFC 9112 §6.1, §11.2: after a framing error
// the connection cannot be trusted).
func (c *Conn) writeError(e *headError) {
	text := http.StatusText(e.status)
	b := appendStatusLine(c.resp.hb[:0], 1, e.status)
	b = append(b, "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: "...)
	body := text + ": " + e.reason + "\n"
	b = appendInt(b, int64(len(body)))
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	c.resp.hb = b
	c.rwc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.rwc.Write(b)
}

// lingerClose closes the sending side, then reads (and drops) what the
// client still sends for a moment, so that the response is not lost to a
// TCP reset caused by unread bytes (as net/http's closeWriteAndWait).
func (c *Conn) lingerClose() {
	if c.tc != nil {
		c.tc.CloseWrite()
		if cw, ok := c.tc.NetConn().(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	} else if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		return
	}
	c.rwc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	c.rd.release()
	var junk [512]byte
	for total := 0; total < 256<<10; {
		n, err := c.rwc.Read(junk[:])
		total += n
		if err != nil {
			return
		}
	}
}

// runHandler runs the handler; a panic is recovered, logged (but
// http.ErrAbortHandler) and ends the connection, with a 500 if nothing
// was sent yet.
func (c *Conn) runHandler(req *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			c.closeAfter = true
			if v == http.ErrAbortHandler {
				// The handler's way of saying the response is cut short
				// (as net/http reads it): the connection closes with
				// nothing more, so the client cannot take what it got
				// for a whole response.
				return
			}
			c.cfg.log.Error("h1: handler panic", "remote", c.remoteAddr, "method", req.Method,
				"target", req.RequestURI, "panic", v, "stack", string(debug.Stack()))
			if !c.resp.committed && c.resp.err == nil {
				c.writeError(&headError{500, "handler failed"})
			}
			return
		}
	}()
	c.h.ServeHTTP(&c.resp, req)
	if req.Body != http.NoBody && !c.body.end() {
		c.closeAfter = true
	}
	c.resp.finish()
}

// buildRequest fills the connection's http.Request from the parsed head,
// as net/http's readRequest would.
func (c *Conn) buildRequest(head []byte) (*http.Request, *headError) {
	h := &c.head
	req := c.req
	*req = c.reqTmpl
	c.strs.beginRequest()
	c.slab = c.slab[:0]
	req.Method = c.method(h.method)
	target := c.str(h.target)
	req.RequestURI = target
	c.url = url.URL{}
	if err := c.parseTarget(req.Method, target); err != nil {
		return nil, err
	}
	req.URL = &c.url
	req.ProtoMajor, req.ProtoMinor = 1, h.minor
	switch h.minor {
	case 0:
		req.Proto = "HTTP/1.0"
	case 1:
		req.Proto = "HTTP/1.1"
	default:
		req.Proto = c.str(h.version)
	}
	clear(c.reqHeader)
	req.Header = c.reqHeader
	for i := range h.fields {
		f := &h.fields[i]
		if i == h.host {
			continue // net/http keeps Host in req.Host only
		}
		key := c.canonicalKey(f.name)
		val := c.str(f.value)
		if vv, ok := req.Header[key]; ok {
			req.Header[key] = append(vv, val)
			continue
		}
		n := len(c.slab)
		c.slab = append(c.slab, val)
		req.Header[key] = c.slab[n : n+1 : n+1]
	}
	if pragma, ok := req.Header["Pragma"]; ok && len(pragma) > 0 && pragma[0] == "no-cache" {
		// RFC 9111 §5.4, as net/http: Pragma: no-cache is Cache-Control
		// no-cache when the latter is absent.
		if _, ok := req.Header["Cache-Control"]; !ok {
			req.Header["Cache-Control"] = noCache
		}
	}
	req.Host = c.url.Host
	if req.Host != "" && !httpguts.ValidHostHeader(req.Host) {
		// RFC 9112 §3.2.2: the authority of an absolute-form (or
		// authority-form) target replaces Host, so it must pass as one;
		// url.ParseRequestURI lets through bytes the Host check refuses.
		return nil, refuse("malformed authority in request-target")
	}
	if req.Host == "" && h.host >= 0 {
		req.Host = c.str(h.fields[h.host].value)
	}
	switch {
	case h.chunked:
		req.ContentLength = -1
		req.TransferEncoding = chunkedTE
		// As net/http: the framing is in TransferEncoding; the field
		// would only be forwarded by mistake (RFC 9110 §7.6.1, hop by
		// hop).
		delete(req.Header, "Transfer-Encoding")
	case h.contentLength > 0:
		req.ContentLength = h.contentLength
	}
	req.Close = h.connClose || h.minor == 0 && !h.connKeepAlive
	req.RemoteAddr = c.remoteAddr
	req.TLS = c.tlsState
	if h.chunked {
		for _, v := range req.Header["Trailer"] {
			for k := range strings.SplitSeq(v, ",") {
				k = http.CanonicalHeaderKey(strings.TrimSpace(k))
				switch k {
				case "":
					continue
				case "Transfer-Encoding", "Trailer", "Content-Length":
					// RFC 9110 §6.5.1: framing fields are never trailers.
					return nil, refuse("forbidden trailer field declared")
				}
				if req.Trailer == nil {
					req.Trailer = make(http.Header)
				}
				req.Trailer[k] = nil
			}
		}
	}
	if bh := c.body.reset(c, req, h); bh != nil {
		req.Body = bh
	} else {
		req.Body = http.NoBody
	}
	return req, nil
}

var (
	chunkedTE = []string{"chunked"}
	noCache   = []string{"no-cache"}
)

// parseTarget sets c.url from the request-target (url.ParseRequestURI's
// semantics), with a fast path for the usual origin-form.
func (c *Conn) parseTarget(method, t string) *headError {
	if method == http.MethodConnect && t[0] != '/' {
		// RFC 9112 §3.2.3: authority-form. net/http: URL{Host: target}.
		c.url.Host = t
		return nil
	}
	if target.Parse(t, &c.url) != nil {
		return refuse("malformed request-target")
	}
	return nil
}

// reader is the connection's read buffer. The array comes from a pool
// for the time a request is in progress (or bytes of the next one wait).
type reader struct {
	conn net.Conn
	arr  *[rbufSize]byte
	b    []byte // arr[:], or a larger buffer for a large head
	r, w int    // b[r:w] is buffered
}

const rbufSize = 8 << 10

var rbufPool = sync.Pool{New: func() any { return new([rbufSize]byte) }}

var (
	errBufferFull   = errors.New("h1: read buffer full")
	errMalformedEOL = errors.New("h1: malformed line ending")
)

func (rd *reader) buffered() int { return rd.w - rd.r }

func (rd *reader) acquire() {
	if rd.b == nil {
		rd.arr = rbufPool.Get().(*[rbufSize]byte)
		rd.b = rd.arr[:]
	}
}

// release gives the buffer back, if it holds nothing.
func (rd *reader) release() {
	if rd.b == nil || rd.r < rd.w {
		return
	}
	if rd.arr != nil {
		rbufPool.Put(rd.arr)
	}
	rd.arr, rd.b, rd.r, rd.w = nil, nil, 0, 0
}

// grow makes room to read more: compacts, or (for a head larger than the
// pooled buffer) moves to a larger buffer of at most limit bytes.
func (rd *reader) grow(limit int) {
	if rd.w < len(rd.b) {
		return
	}
	if rd.r > 0 {
		n := copy(rd.b, rd.b[rd.r:rd.w])
		rd.r, rd.w = 0, n
		return
	}
	if len(rd.b) >= limit {
		return
	}
	nb := make([]byte, min(2*len(rd.b), max(limit, len(rd.b))))
	n := copy(nb, rd.b[rd.r:rd.w])
	if rd.arr != nil {
		rbufPool.Put(rd.arr)
		rd.arr = nil
	}
	rd.b, rd.r, rd.w = nb, 0, n
}

// fill reads more bytes into the buffer.
func (rd *reader) fill() error {
	if rd.w == len(rd.b) {
		if rd.r == 0 {
			return errBufferFull
		}
		n := copy(rd.b, rd.b[rd.r:rd.w])
		rd.r, rd.w = 0, n
	}
	n, err := rd.conn.Read(rd.b[rd.w:])
	rd.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// need makes n bytes buffered.
func (rd *reader) need(n int) error {
	for rd.buffered() < n {
		if err := rd.fill(); err != nil {
			return err
		}
	}
	return nil
}

// line returns the next CRLF-terminated line, without its CRLF, of at
// most max bytes; a bare LF or CR is errMalformedEOL (RFC 9112 §7.1 chunk
// lines and trailer lines end with CRLF).
func (rd *reader) line(max int) ([]byte, error) {
	searched := 0
	for {
		buf := rd.b[rd.r:rd.w]
		if i := indexLF(buf[searched:]); i >= 0 {
			j := searched + i
			if j == 0 || buf[j-1] != '\r' {
				return nil, errMalformedEOL
			}
			line := buf[:j-1]
			if len(line) > max {
				return nil, errLineTooLong
			}
			for _, c := range line {
				if c == '\r' {
					return nil, errMalformedEOL
				}
			}
			rd.r += j + 1
			return line, nil
		}
		searched = len(buf)
		if searched > max+1 {
			return nil, errLineTooLong
		}
		if err := rd.fill(); err != nil {
			if err == errBufferFull {
				return nil, errLineTooLong
			}
			return nil, err
		}
	}
}
