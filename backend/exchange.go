package backend

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxResponseHeaderBytes bounds a response's status line and header
// section, as nginx's proxy_buffer_size does; larger is a 502.
const maxResponseHeaderBytes = 64 << 10

// exchange is one request and its response on one connection.
//
// The request head is written first. A request without content is flushed
// with it and the response header timer starts at once. A request with
// content is written by a goroutine of its own, so that an origin that
// answers before reading all of it (RFC 9110 §15.5.14, or an early error)
// is heard; the timer then starts when the content is written.
//
// The connection goes back to the pool only when the response content was
// read to its end, the request content was written to its end, and neither
// side asked to close. Anything else closes it: that is how a client that
// vanishes mid-body costs a connection instead of poisoning the pool.
type exchange struct {
	p    *pool
	c    *conn
	req  *http.Request
	stop func() bool // stops the context watcher

	mu        sync.Mutex
	gotHeader bool // guarded by mu

	writeDone chan writeResult // the content writer's result; nil without content
	finished  atomic.Bool
	head      *responseHead

	// The response body and its usual reader live in the exchange: one
	// allocation per request instead of three.
	body   body
	length lengthReader
}

// failure describes an exchange that got no response, for the retry
// decision in pool.roundTrip.
type failure struct {
	err error
	// unsent: not one byte of the request reached the socket, so the
	// origin cannot have seen it.
	unsent bool
	// silentClose: the origin closed the connection before any byte of a
	// response; on a reused connection, the race with its idle close.
	silentClose bool
}

// roundTrip runs the exchange.
func (ex *exchange) roundTrip() (*http.Response, *failure) {
	c, req := ex.c, ex.req
	ctx := req.Context()
	ex.stop = context.AfterFunc(ctx, func() { c.nc.SetDeadline(aLongTimeAgo) })
	written := c.written

	framing := framingOf(req)
	if err := writeRequestHead(c.bw, req, framing); err != nil {
		ex.abort()
		return nil, &failure{err: &Error{Op: "write", Addr: ex.p.addr, Err: err}}
	}
	if framing == frameNone {
		if err := c.bw.Flush(); err != nil {
			ex.abort()
			return nil, &failure{err: ex.wrap("write", err), unsent: c.written == written && ctx.Err() == nil}
		}
		ex.armHeaderTimer()
	} else {
		ex.writeDone = make(chan writeResult, 1)
		go ex.writeContent(framing, written)
	}

	// Wait for the first byte separately: its absence is what makes a
	// retry safe.
	if _, err := c.br.Peek(1); err != nil {
		w, done := ex.contentResult(0)
		if !done && connGone(err) && ctx.Err() == nil {
			// The origin closed after taking the request, or part of it.
			// The writer, having just flushed, is about to say which:
			// only a request it wrote whole can count as a silent close,
			// the race a retry exists for. Closing the connection first
			// would turn its answer into an error.
			w, done = ex.contentResult(contentGrace)
		}
		ex.abort()
		if ctx.Err() != nil {
			return nil, &failure{err: ex.wrap("read header", err)}
		}
		if w.err != nil {
			return nil, &failure{err: ex.wrap("write", w.err), unsent: !w.sent}
		}
		// With content still being written, nothing is known.
		silent := connGone(err) && (framing == frameNone || done)
		return nil, &failure{err: ex.wrap("read header", err), silentClose: silent}
	}
	head, err := readResponseHead(c.br, req.Method, maxResponseHeaderBytes, got1xx(ctx))
	if err != nil {
		ex.abort()
		return nil, &failure{err: ex.wrap("read header", err)}
	}
	ex.headerArrived()
	ex.head = head
	return ex.response(), nil
}

// writeResult is the content writer's outcome: its error, and whether any
// byte of the request reached the socket.
type writeResult struct {
	err  error
	sent bool
}

// writeContent runs on its own goroutine for requests with content.
func (ex *exchange) writeContent(framing requestFraming, written int64) {
	err := writeRequestBody(ex.c.bw, ex.req, framing)
	if err == nil {
		err = ex.c.bw.Flush()
	}
	if err == nil {
		ex.armHeaderTimer()
	}
	// Report before anything else: the origin may already have answered,
	// and finish is waiting to learn whether the content went out whole.
	ex.writeDone <- writeResult{err, ex.c.written != written}
	ex.req.Body.Close()
	if err != nil {
		// Unblock the response reader, which finds err above: the exchange
		// cannot succeed.
		ex.c.nc.SetDeadline(aLongTimeAgo)
	}
}

// contentGrace bounds how long a complete response waits for the content
// writer to report. A response can only be complete once the origin has
// all the content, so a writer that finished normally reports at once;
// one that has not after this long is still busy with content the origin
// did not wait for.
const contentGrace = 100 * time.Millisecond

// contentSent reports whether the content writer finished without error,
// waiting for it at most contentGrace.
func (ex *exchange) contentSent() bool {
	w, done := ex.contentResult(contentGrace)
	return done && w.err == nil
}

// contentResult returns the content writer's result once it has finished,
// waiting for it at most wait. The result stays available to later calls.
func (ex *exchange) contentResult(wait time.Duration) (w writeResult, done bool) {
	if ex.writeDone == nil {
		return writeResult{}, false
	}
	select {
	case w = <-ex.writeDone:
		ex.writeDone <- w
		return w, true
	default:
	}
	if wait <= 0 {
		return writeResult{}, false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case w = <-ex.writeDone:
		ex.writeDone <- w
		return w, true
	case <-t.C:
		return writeResult{}, false
	}
}

// armHeaderTimer starts the response header timeout, unless the header is
// already here.
func (ex *exchange) armHeaderTimer() {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if !ex.gotHeader {
		ex.setReadDeadline(time.Now().Add(ex.p.cfg.ResponseHeaderTimeout))
	}
}

func (ex *exchange) headerArrived() {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	ex.gotHeader = true
	ex.setReadDeadline(time.Time{})
}

// setReadDeadline sets a deadline without undoing a cancellation: the
// context watcher may have set a past deadline just before.
func (ex *exchange) setReadDeadline(t time.Time) {
	ex.c.nc.SetReadDeadline(t)
	if ex.req.Context().Err() != nil {
		ex.c.nc.SetDeadline(aLongTimeAgo)
	}
}

// response builds the http.Response for the parsed head.
func (ex *exchange) response() *http.Response {
	h := ex.head
	resp := &http.Response{
		Status:        statusLine(h.status, h.reason),
		StatusCode:    h.status,
		Proto:         protoNames[h.protoMinor],
		ProtoMajor:    1,
		ProtoMinor:    h.protoMinor,
		Header:        h.header,
		ContentLength: -1,
		Close:         h.close,
		Request:       ex.req,
	}
	br := ex.c.br
	switch n := h.bodyLength; {
	case n == 0:
		resp.ContentLength = 0
		resp.Body = http.NoBody
		ex.finish(nil)
	case n > 0:
		resp.ContentLength = n
		ex.length = lengthReader{br: br, remaining: n}
		ex.body = body{r: &ex.length, ex: ex}
		resp.Body = &ex.body
	case n == lengthChunked:
		// The Trailer field announces trailer names (RFC 9110 §6.6.2); the
		// values arrive after the content, as with net/http.
		resp.Trailer = announcedTrailers(h.header)
		resp.TransferEncoding = []string{"chunked"}
		ex.body = body{r: &chunkedReader{br: br, trailer: resp.Trailer}, ex: ex}
		resp.Body = &ex.body
	default:
		ex.body = body{r: eofReader{br: br}, ex: ex}
		resp.Body = &ex.body
	}
	delete(h.header, "Transfer-Encoding")
	return resp
}

var protoNames = [...]string{"HTTP/1.0", "HTTP/1.1"}

// statusLine is Response.Status: "200 OK", without an allocation when
// the reason is the usual one.
func statusLine(code int, reason string) string {
	if code == http.StatusOK && reason == "OK" {
		return "200 OK"
	}
	return strconv.Itoa(code) + " " + reason
}

func announcedTrailers(h http.Header) http.Header {
	t := make(http.Header)
	for _, v := range h["Trailer"] {
		for _, name := range splitList(v) {
			t[textproto.CanonicalMIMEHeaderKey(name)] = nil
		}
	}
	return t
}

// body is the Response.Body: it gives the connection back when the content
// was read to its end, and closes it on any other outcome.
type body struct {
	r  io.Reader
	ex *exchange
}

func (b *body) Read(p []byte) (int, error) {
	if b.ex.finished.Load() {
		return 0, io.EOF
	}
	n, err := b.r.Read(p)
	switch {
	case err == io.EOF:
		b.ex.finish(nil)
	case err != nil:
		err = b.ex.wrap("read body", err)
		b.ex.finish(err)
	}
	return n, err
}

// Close before the end abandons the content: the connection is closed, as
// draining an unknown amount could cost more than a new connection.
func (b *body) Close() error {
	b.ex.finish(errAbandoned)
	return nil
}

var errAbandoned = errors.New("response body closed before its end")

// finish ends the exchange once: err == nil means the response content was
// read to its end.
func (ex *exchange) finish(err error) {
	if !ex.finished.CompareAndSwap(false, true) {
		return
	}
	// If the context watcher already ran, it set a past deadline on the
	// connection: it cannot be reused.
	watched := ex.stop()
	reason := keep
	switch {
	case !watched:
		reason = retireError
	case err != nil:
		reason = retireError
	case ex.head.close:
		reason = retireOriginClose
	}
	if ex.writeDone != nil && !ex.contentSent() {
		// The origin answered in full before all the content was written
		// (RFC 9110 §15.5.14 and the like): it will not read the rest as
		// content, so the connection cannot carry another request.
		reason = retireError
		go ex.req.Body.Close()
	}
	c := ex.c
	c.requests++
	c.hint = ex.head.hint
	ex.p.put(c, reason)
}

// abort ends an exchange that failed before a response: the connection
// state is unknown, so it is closed.
func (ex *exchange) abort() {
	if !ex.finished.CompareAndSwap(false, true) {
		return
	}
	ex.stop()
	if ex.writeDone != nil {
		// The writer may be blocked reading a slow client's content; closing
		// that content unblocks it, and it finds the connection closed.
		go ex.req.Body.Close()
	}
	ex.p.put(ex.c, retireError)
}

// wrap turns an I/O error into an *Error, telling a timeout from a
// cancellation.
func (ex *exchange) wrap(op string, err error) error {
	if ctxErr := ex.req.Context().Err(); ctxErr != nil {
		return &Error{Op: op, Addr: ex.p.addr, Err: ctxErr}
	}
	return &Error{Op: op, Addr: ex.p.addr, Err: err, timeout: errors.Is(err, os.ErrDeadlineExceeded)}
}

// connGone reports the errors of a connection the origin closed.
func connGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// got1xx forwards interim responses to the caller's httptrace hook, the
// interface net/http's Transport offers for them.
func got1xx(ctx context.Context) func(int, http.Header) error {
	trace := httptrace.ContextClientTrace(ctx)
	if trace == nil || trace.Got1xxResponse == nil {
		return nil
	}
	return func(code int, h http.Header) error { return trace.Got1xxResponse(code, textproto.MIMEHeader(h)) }
}
