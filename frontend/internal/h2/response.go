package h2

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// responseWriter is a stream's http.ResponseWriter and http.Flusher.
//
// The response's HEADERS wait for the first body bytes past bodyHold, a
// Flush, or the handler's return: a response that fits is sent as HEADERS
// (with a Content-Length the handler did not set) and one DATA frame with
// END_STREAM, in one write(2). Past that, each Write becomes DATA frames
// within the flow-control windows (RFC 9113 §6.9) and the client's
// SETTINGS_MAX_FRAME_SIZE; they leave at the next Flush, when the write
// buffer fills, or at the end.
//
// Used by the handler's goroutine only.
type responseWriter struct {
	st        *stream
	header    http.Header
	head      bool     // a HEAD request: no content
	status    int      // 0 until WriteHeader
	committed bool     // HEADERS sent
	hold      []byte   // content held before the HEADERS go
	trailers  []string // declared by the Trailer field at commit
	err       error    // the first write failure
}

// bodyHold is how much content may wait for the HEADERS.
const bodyHold = 4 << 10

func (w *responseWriter) reset(st *stream, head bool) {
	*w = responseWriter{st: st, header: make(http.Header), head: head}
}

func (w *responseWriter) Header() http.Header { return w.header }

// WriteHeader sends a 1xx at once (except 101, which HTTP/2 does not
// have: RFC 9113 §8.6) and records the final status.
func (w *responseWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	if code < 100 || code > 999 {
		w.st.c.cfg.Logger.Error("h2: handler wrote an invalid status; 500 sent", "status", code)
		code = http.StatusInternalServerError
	}
	if code < 200 {
		if code != http.StatusSwitchingProtocols {
			w.writeHeaders(code, false, true)
		}
		return
	}
	w.status = code
}

// writeContinue answers Expect: 100-continue (RFC 9110 §10.1.1) unless the
// final response has begun. It runs on whichever goroutine first reads the
// body (a RoundTripper's writer, often), so it touches nothing of the
// handler's: a bare ":status: 100", decided under wmu.
func (st *stream) writeContinue() {
	c := st.c
	maxFrame := c.peerFrameSize()
	c.wmu.Lock()
	if st.finalSent {
		c.wmu.Unlock()
		return
	}
	if c.appendLocked(st, func(fr *http2.Framer) error {
		_ = c.enc.WriteField(hpack.HeaderField{Name: ":status", Value: "100"})
		return c.appendHeaders(st.id, false, maxFrame)
	}, false) != nil {
		c.wmu.Unlock()
		return
	}
	c.flushLocked()
}

// bodyAllowed: 1xx, 204 and 304 responses have no content (RFC 9110 §6.4.1).
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.head || !bodyAllowed(w.status) {
		return len(p), nil
	}
	if !w.committed {
		if len(w.hold)+len(p) <= bodyHold {
			w.hold = append(w.hold, p...)
			return len(p), nil
		}
		w.commit(false)
		if err := w.sendHeld(false); err != nil {
			return 0, err
		}
	}
	if err := w.st.sendData(p, false); err != nil {
		w.err = err
		return 0, err
	}
	return len(p), nil
}

// Flush sends the HEADERS, if not sent, and everything written.
func (w *responseWriter) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false)
		if w.sendHeld(false) != nil {
			return
		}
	}
	w.st.c.flush()
}

// commit sends the final HEADERS. end: with END_STREAM.
func (w *responseWriter) commit(end bool) {
	w.committed = true
	for _, v := range w.header["Trailer"] {
		for k := range strings.SplitSeq(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				w.trailers = append(w.trailers, http.CanonicalHeaderKey(k))
			}
		}
	}
	if err := w.writeHeaders(w.status, end, false); err != nil {
		w.err = err
	}
}

// sendHeld sends the content held before the HEADERS.
func (w *responseWriter) sendHeld(end bool) error {
	if w.err != nil {
		return w.err
	}
	if len(w.hold) == 0 && !end {
		return nil
	}
	err := w.st.sendData(w.hold, end)
	w.hold = w.hold[:0]
	if err != nil {
		w.err = err
	}
	return err
}

// end completes the response after the handler returned.
func (w *responseWriter) end() {
	if w.st.aborted() {
		return // reset, or the connection is gone: nothing to complete
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		w.abort()
		return
	}
	trailers := w.collectTrailers()
	if !w.committed {
		if _, ok := w.header["Content-Length"]; !ok && !w.head && bodyAllowed(w.status) && len(trailers) == 0 {
			w.header["Content-Length"] = []string{strconv.Itoa(len(w.hold))}
		}
		w.commit(len(w.hold) == 0 && len(trailers) == 0)
		if len(w.hold) > 0 {
			_ = w.sendHeld(len(trailers) == 0)
		}
	} else if len(trailers) == 0 {
		w.st.endStream()
	}
	if len(trailers) > 0 && w.err == nil {
		w.err = w.writeTrailers(trailers)
	}
	if w.err != nil {
		w.abort()
		return
	}
	w.st.c.flush()
}

// abort resets the stream: the handler panicked, or the response could not
// be completed. The client must not take a cut response for a whole one.
func (w *responseWriter) abort() {
	if w.st.aborted() {
		return // already reset, or the connection is gone
	}
	w.st.c.resetStream(w.st.id, http2.ErrCodeInternal)
}

// collectTrailers returns the trailer fields to send: those the Trailer
// field declared, and those named with http.TrailerPrefix.
func (w *responseWriter) collectTrailers() []hpack.HeaderField {
	var out []hpack.HeaderField
	c := w.st.c
	add := func(k string, vv []string) {
		name := c.lowerRespName(k)
		for _, v := range vv {
			if !c.malformed(name, v) {
				out = append(out, hpack.HeaderField{Name: name, Value: v})
			}
		}
	}
	for _, k := range w.trailers {
		add(k, w.header[k])
	}
	for k, vv := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			add(strings.TrimPrefix(k, http.TrailerPrefix), vv)
		}
	}
	return out
}

// writeHeaders encodes and sends a HEADERS block with :status code and the
// handler's fields (for a final response or a 1xx: RFC 9113 §8.1).
func (w *responseWriter) writeHeaders(code int, end, flush bool) error {
	st, c := w.st, w.st.c
	maxFrame := c.peerFrameSize()
	c.wmu.Lock()
	err := c.appendLocked(st, func(fr *http2.Framer) error {
		_ = c.enc.WriteField(hpack.HeaderField{Name: ":status", Value: statusText(code)})
		for k, vv := range w.header {
			if strings.HasPrefix(k, http.TrailerPrefix) {
				continue
			}
			name := c.lowerResp.get(k)
			for _, v := range vv {
				if !c.malformed(name, v) {
					_ = c.enc.WriteField(hpack.HeaderField{Name: name, Value: v})
				}
			}
		}
		if code >= 200 {
			if _, ok := w.header["Date"]; !ok {
				_ = c.enc.WriteField(hpack.HeaderField{Name: "date", Value: httpDate()})
			}
			st.finalSent = true
		}
		return c.appendHeaders(st.id, end, maxFrame)
	}, end)
	if err != nil || !flush {
		c.wmu.Unlock()
		return err
	}
	c.flushLocked()
	return nil
}

// writeTrailers sends the trailer section, ending the stream.
func (w *responseWriter) writeTrailers(fields []hpack.HeaderField) error {
	st, c := w.st, w.st.c
	maxFrame := c.peerFrameSize()
	c.wmu.Lock()
	err := c.appendLocked(st, func(fr *http2.Framer) error {
		for _, f := range fields {
			_ = c.enc.WriteField(f)
		}
		return c.appendHeaders(st.id, true, maxFrame)
	}, true)
	c.wmu.Unlock()
	return err
}

// lowerRespName is a response field name in lower case. Called on a
// handler's goroutine: the cache is under wmu.
func (c *Conn) lowerRespName(k string) string {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.lowerResp.get(k)
}

func (c *Conn) peerFrameSize() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peerMaxFrame
}

// sendData sends p as DATA frames, waiting for flow-control window
// (RFC 9113 §6.9.1): a stream whose window is used up waits alone, the
// others go on. end sets END_STREAM on the last frame.
func (st *stream) sendData(p []byte, end bool) error {
	c := st.c
	for {
		c.mu.Lock()
		for st.err == nil && !c.closing && len(p) > 0 && (st.sendWindow <= 0 || c.sendWindow <= 0) {
			c.mu.Unlock()
			// What is buffered must reach the client before it can
			// answer with WINDOW_UPDATE (an active flusher writes it).
			c.flush()
			c.mu.Lock()
			if st.err == nil && !c.closing && (st.sendWindow <= 0 || c.sendWindow <= 0) {
				st.cond.Wait()
			}
		}
		if st.err != nil {
			err := st.err
			c.mu.Unlock()
			return err
		}
		if c.closing {
			c.mu.Unlock()
			return errConnClosed
		}
		n := int(min(int64(len(p)), st.sendWindow, c.sendWindow, int64(c.peerMaxFrame)))
		st.sendWindow -= int64(n)
		c.sendWindow -= int64(n)
		c.mu.Unlock()
		last := n == len(p)
		c.wmu.Lock()
		err := c.appendLocked(st, func(*http2.Framer) error {
			c.appendData(st.id, p[:n], end && last)
			return nil
		}, end && last)
		if err != nil {
			c.wmu.Unlock()
			return err
		}
		if len(c.wbuf) >= maxBuffered {
			c.flushLocked()
		} else {
			c.wmu.Unlock()
		}
		p = p[n:]
		if last {
			return nil
		}
	}
}

// endStream ends a committed response without trailers: END_STREAM on the
// stream's last DATA frame if it is still in the buffer, else an empty
// DATA frame.
func (st *stream) endStream() {
	c := st.c
	c.wmu.Lock()
	_ = c.appendLocked(st, func(*http2.Framer) error {
		if !c.endOnLastData(st.id) {
			c.appendData(st.id, nil, true)
		}
		return nil
	}, true)
	c.wmu.Unlock()
}

// statusText is the :status value; the common ones need no conversion.
func statusText(code int) string {
	switch code {
	case 200:
		return "200"
	case 204:
		return "204"
	case 206:
		return "206"
	case 301:
		return "301"
	case 302:
		return "302"
	case 304:
		return "304"
	case 400:
		return "400"
	case 404:
		return "404"
	case 500:
		return "500"
	case 502:
		return "502"
	case 503:
		return "503"
	case 504:
		return "504"
	}
	return strconv.Itoa(code)
}

// dateCache is the Date field value of the current second (RFC 9110
// §6.6.1), formatted once per second rather than per response.
var dateCache atomic.Pointer[dateStamp]

type dateStamp struct {
	unix int64
	text string
}

func httpDate() string {
	now := time.Now()
	if d := dateCache.Load(); d != nil && d.unix == now.Unix() {
		return d.text
	}
	d := &dateStamp{unix: now.Unix(), text: now.UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.text
}

// writeTooLarge answers a request whose header list passed
// SETTINGS_MAX_HEADER_LIST_SIZE with 431 (RFC 6585 §5) from the engine, and
// asks the client to stop sending its body (RFC 9113 §8.1).
func (c *Conn) writeTooLarge(id uint32, ended bool) {
	const body = "431 request header fields too large\n"
	c.mu.Lock()
	maxFrame := c.peerMaxFrame
	// The body fits any new stream's window; the connection's may be
	// spent, and then the answer goes without it.
	withBody := c.sendWindow >= int64(len(body))
	if withBody {
		c.sendWindow -= int64(len(body))
	}
	c.mu.Unlock()
	c.wmu.Lock()
	err := c.appendLocked(nil, func(fr *http2.Framer) error {
		_ = c.enc.WriteField(hpack.HeaderField{Name: ":status", Value: "431"})
		if withBody {
			_ = c.enc.WriteField(hpack.HeaderField{Name: "content-type", Value: "text/plain; charset=utf-8"})
			_ = c.enc.WriteField(hpack.HeaderField{Name: "content-length", Value: strconv.Itoa(len(body))})
		}
		if err := c.appendHeaders(id, !withBody, maxFrame); err != nil {
			return err
		}
		if withBody {
			c.appendData(id, []byte(body), true)
		}
		if !ended {
			return fr.WriteRSTStream(id, http2.ErrCodeNo)
		}
		return nil
	}, false)
	if err != nil {
		c.wmu.Unlock()
		return
	}
	c.flushLocked()
}
