package h2

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// stream is one request and its response (RFC 9113 §5.1). Serve creates
// it for a HEADERS frame that opens a stream, a worker runs its handler,
// and it leaves c.streams when both sides are done or it is reset.
type stream struct {
	c  *Conn
	id uint32

	// Guarded by c.mu:
	cond         sync.Cond           // on c.mu: body data, window, or the stream's end
	sendWindow   int64               // stream-level send window (§6.9.1)
	recvWindow   int64               // bytes the client may still send
	recvUnacked  int                 // bytes the handler consumed, not yet returned
	remoteClosed bool                // END_STREAM received: half-closed (remote)
	bodyClosed   bool                // the handler closed the body: DATA is discarded
	localClosed  bool                // the handler returned and the response ended
	gone         bool                // left c.streams
	running      bool                // the handler has not returned
	err          error               // why the stream ended early; reads and writes fail with it
	body         []byte              // received DATA, not yet read by the handler
	bodyOff      int                 // read offset in body
	declaredLen  int64               // Content-Length, or -1
	receivedLen  int64               // DATA bytes received
	wantContinue bool                // Expect: 100-continue, not answered yet
	trailers     []hpack.HeaderField // received, canonical names; moved to req.Trailer at EOF

	// Guarded by c.wmu:
	wclosed   bool // END_STREAM or RST_STREAM sent: nothing more goes out
	rstSent   bool // RST_STREAM sent: later frames in flight are ignored (§5.1)
	finalSent bool // the final response's HEADERS are out: no 100 Continue

	// The handler's (set by Serve before the handler starts):
	req    http.Request
	reqURL url.URL
	cancel context.CancelFunc
	rw     responseWriter
	rbody  requestBody
}

// Errors a handler's reads and writes see. A request whose stream was
// reset may be retried by the client only if it was refused; these are
// not refusals.
var errStreamReset = errors.New("h2: stream reset")

// newStream returns a stream for id. Streams are not pooled: a request's
// body may be closed by the upstream side after the handler has returned
// (http.RoundTripper may close it late), so the stream must stay valid for
// as long as anything refers to it.
func (c *Conn) newStream(id uint32) *stream {
	st := &stream{c: c, id: id}
	st.cond.L = &c.mu
	c.mu.Lock()
	st.sendWindow = c.peerInitial
	c.mu.Unlock()
	st.recvWindow = streamWindow
	st.declaredLen = -1
	return st
}

// receive takes one DATA payload. Called with c.mu held.
func (st *stream) receive(data []byte, end bool) error {
	st.receivedLen += int64(len(data))
	if st.declaredLen >= 0 && (st.receivedLen > st.declaredLen || end && st.receivedLen != st.declaredLen) {
		// §8.1.1: DATA that disagrees with Content-Length is malformed.
		return http2.StreamError{StreamID: st.id, Code: http2.ErrCodeProtocol}
	}
	if st.err == nil && !st.bodyClosed && len(data) > 0 {
		if st.bodyOff == len(st.body) {
			st.body, st.bodyOff = st.body[:0], 0
		}
		st.body = append(st.body, data...)
	} else if len(data) > 0 {
		// The handler is gone: the data is consumed here.
		st.c.returnConn(len(data))
	}
	if end {
		st.endRemote()
	}
	st.cond.Broadcast()
	return nil
}

// receiveTrailers takes the trailer section, which must end the stream and
// hold no pseudo-header field (§8.1). Called with c.mu held.
func (st *stream) receiveTrailers(f *headerList) error {
	if !f.StreamEnded() || len(f.PseudoFields()) > 0 {
		return http2.StreamError{StreamID: st.id, Code: http2.ErrCodeProtocol}
	}
	if st.declaredLen >= 0 && st.receivedLen != st.declaredLen {
		return http2.StreamError{StreamID: st.id, Code: http2.ErrCodeProtocol}
	}
	if f.truncated {
		return http2.StreamError{StreamID: st.id, Code: http2.ErrCodeProtocol}
	}
	for _, hf := range f.RegularFields() {
		if st.c.malformed(hf.Name, hf.Value) {
			return http2.StreamError{StreamID: st.id, Code: http2.ErrCodeProtocol}
		}
	}
	if st.err == nil {
		// Kept here, and put in Request.Trailer by the body Read that
		// returns io.EOF: the goroutine reading the body (the handler's,
		// or a RoundTripper's writer) is the one that may look at them
		// then, as with net/http.
		for _, hf := range f.RegularFields() {
			st.trailers = append(st.trailers, hpack.HeaderField{Name: st.c.canon.get(hf.Name), Value: hf.Value})
		}
	}
	st.endRemote()
	st.cond.Broadcast()
	return nil
}

// aborted reports whether the stream ended early (abort).
func (st *stream) aborted() bool {
	st.c.mu.Lock()
	defer st.c.mu.Unlock()
	return st.err != nil
}

// endRemote: the client has sent END_STREAM. Called with c.mu held.
func (st *stream) endRemote() {
	st.remoteClosed = true
	if st.localClosed {
		st.c.closeStream(st)
	}
}

// abort ends the stream early with err: the handler's reads and writes
// fail, its context is cancelled, and body bytes it did not read are given
// back to the connection window. Called with c.mu held.
func (st *stream) abort(err error) {
	if st.err != nil {
		return
	}
	st.err = err
	if n := len(st.body) - st.bodyOff; n > 0 {
		st.c.returnConn(n)
		st.body, st.bodyOff = st.body[:0], 0
	}
	if st.cancel != nil {
		st.cancel()
	}
	st.cond.Broadcast()
}

// closeStream removes st from the connection. Called with c.mu held.
func (c *Conn) closeStream(st *stream) {
	if st.gone {
		return
	}
	st.gone = true
	delete(c.streams, st.id)
	c.armIdle()
	if len(c.streams) == 0 && (c.goAway == goAwayFinal || c.goAway == goAwayClient) && !c.closing {
		// Drained: the last stream is done. Serve's blocked read ends
		// now, and Serve closes the connection.
		c.closing = true
		_ = c.nc.SetReadDeadline(time.Now())
	}
}

// returnConn counts n connection-level bytes as consumed. Called with c.mu
// held; the WINDOW_UPDATE goes out with flushWindowUpdates.
func (c *Conn) returnConn(n int) {
	c.recvUnacked += n
}

// returnStream counts n of st's bytes as consumed. Called with c.mu held.
func (st *stream) returnStream(n int) {
	st.recvUnacked += n
}

// flushWindowUpdates sends the WINDOW_UPDATE frames that are due: once
// half a window has been consumed, so that a steady upload costs one
// frame per half window rather than one per DATA frame (§6.9).
func (c *Conn) flushWindowUpdates() {
	c.mu.Lock()
	var connInc uint32
	if c.recvUnacked >= connWindow/2 {
		connInc = uint32(c.recvUnacked)
		c.recvWindow += int64(c.recvUnacked)
		c.recvUnacked = 0
	}
	c.mu.Unlock()
	if connInc > 0 {
		c.writeFrame(func(fr *http2.Framer) error { return fr.WriteWindowUpdate(0, connInc) })
	}
}

// consumed is called by the handler's body reads: n bytes left st's
// buffer. Stream and connection windows are returned in batches.
func (st *stream) consumed(n int) {
	c := st.c
	c.mu.Lock()
	c.returnConn(n)
	st.returnStream(n)
	var streamInc uint32
	if st.recvUnacked >= streamWindow/2 && !st.remoteClosed && st.err == nil {
		streamInc = uint32(st.recvUnacked)
		st.recvWindow += int64(st.recvUnacked)
		st.recvUnacked = 0
	}
	c.mu.Unlock()
	if streamInc > 0 {
		_ = c.writeStreamFrame(st, func(fr *http2.Framer) error { return fr.WriteWindowUpdate(st.id, streamInc) }, false)
	}
	c.flushWindowUpdates()
}

// requestBody is the handler's Request.Body.
type requestBody struct{ st *stream }

func (b *requestBody) Read(p []byte) (int, error) {
	st := b.st
	c := st.c
	c.mu.Lock()
	if st.wantContinue {
		// Expect: 100-continue (RFC 9110 §10.1.1): the client waits for
		// this before it sends the body, so it goes when the body is
		// first read.
		st.wantContinue = false
		c.mu.Unlock()
		st.writeContinue()
		c.mu.Lock()
	}
	for st.bodyOff == len(st.body) && !st.remoteClosed && st.err == nil {
		st.cond.Wait()
	}
	if st.bodyOff < len(st.body) {
		n := copy(p, st.body[st.bodyOff:])
		st.bodyOff += n
		c.mu.Unlock()
		st.consumed(n)
		return n, nil
	}
	err := st.err
	trailers := st.trailers
	st.trailers = nil
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if len(trailers) > 0 {
		r := &st.req
		if r.Trailer == nil {
			r.Trailer = make(http.Header, len(trailers))
		}
		for _, f := range trailers {
			r.Trailer[f.Name] = append(r.Trailer[f.Name], f.Value)
		}
	}
	return 0, io.EOF
}

// Close: the handler is done with the body. What the client still sends
// is discarded as it arrives (receive).
func (b *requestBody) Close() error {
	st := b.st
	st.c.mu.Lock()
	if st.err == nil && !st.bodyClosed {
		st.bodyClosed = true
		if n := len(st.body) - st.bodyOff; n > 0 {
			st.c.returnConn(n)
		}
		st.body, st.bodyOff = st.body[:0], 0
	}
	st.c.mu.Unlock()
	st.c.flushWindowUpdates()
	return nil
}

// serve runs the handler on a worker goroutine, then ends the response.
func (st *stream) serve() {
	c := st.c
	defer c.handlers.Done()
	defer c.running.Add(-1)
	panicked := true
	defer func() {
		if panicked {
			if v := recover(); v != nil && v != http.ErrAbortHandler {
				c.cfg.Logger.Error("h2: handler panic", "remote", c.remote, "stream", st.id, "panic", v)
			}
			st.rw.abort()
		}
		st.finish()
	}()
	c.h.ServeHTTP(&st.rw, &st.req)
	panicked = false
	st.rw.end()
}

// finish runs after the handler: the stream is local-closed, and it is
// closed when the client has ended its side too; if the client is still
// sending, RST_STREAM(NO_ERROR) asks it to stop (§8.1).
func (st *stream) finish() {
	c := st.c
	c.mu.Lock()
	st.localClosed = true
	st.running = false
	stillSending := !st.remoteClosed && st.err == nil
	if st.remoteClosed || st.err != nil {
		c.closeStream(st)
	}
	c.mu.Unlock()
	if stillSending {
		c.resetStream(st.id, http2.ErrCodeNo)
	}
	st.cancel()
	c.flushWindowUpdates()
}
