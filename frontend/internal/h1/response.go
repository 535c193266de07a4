package h1

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// The ResponseWriter.
//
// The status line and header are not serialised at WriteHeader but at
// commit: the first Flush, the first body byte that no longer fits the
// pending buffer, or the handler's return. A handler that returns with
// its whole body pending gets a Content-Length (one write(2) for the
// whole response); otherwise the body is chunked on HTTP/1.1 (RFC 9112
// §7.1) with trailers, or close-delimited for HTTP/1.0 (§6.3 rule 8).
// The header goes out as it stands at commit, not as it stood at
// WriteHeader (net/http snapshots it at WriteHeader).

const (
	wbufSize = 8 << 10 // the write buffer
	pendMax  = 4 << 10 // body bytes held before commit
)

var wbufPool = sync.Pool{New: func() any { return new([wbufSize]byte) }}

type response struct {
	c      *Conn
	req    *http.Request
	header http.Header // reused per connection, cleared per request

	status      int
	wroteHeader bool // a final status is chosen
	committed   bool // the head is in wb or on the wire
	headOnly    bool // HEAD: the body is counted, not sent
	bodyAllowed bool // not 204, 304 (RFC 9110 §15.3.5, §15.4.5)
	chunked     bool
	cl          int64 // the framing Content-Length, -1: none
	written     int64 // body bytes the handler wrote
	err         error // the first write failure

	arr *[wbufSize]byte // from wbufPool, for one response
	wb  []byte          // arr[:n]: before commit, the pending body
	hb  []byte          // head serialisation, reused per connection

	keys     []string // sorted header keys, reused
	trailers []string // declared trailer keys, reused
}

func (w *response) reset(c *Conn, req *http.Request) {
	hdr, hb, keys, tr := w.header, w.hb, w.keys, w.trailers
	clear(hdr)
	*w = response{c: c, req: req, header: hdr, hb: hb[:0], keys: keys[:0], trailers: tr[:0], cl: -1,
		headOnly: req.Method == http.MethodHead, bodyAllowed: true}
	w.arr = wbufPool.Get().(*[wbufSize]byte)
	w.wb = w.arr[:0]
}

func (w *response) release() {
	if w.arr != nil {
		wbufPool.Put(w.arr)
		w.arr, w.wb = nil, nil
	}
}

func (w *response) Header() http.Header { return w.header }

// WriteHeader sends 1xx at once; a final status waits for commit.
func (w *response) WriteHeader(code int) {
	if w.wroteHeader || w.committed {
		return // superfluous, as net/http: the first status wins
	}
	if code < 100 || code > 999 {
		w.c.cfg.log.Warn("h1: invalid WriteHeader code", "code", code)
		code = http.StatusInternalServerError
	}
	if code == http.StatusSwitchingProtocols {
		// Upgrades plug in here: send the 101, then hand the connection
		// (with the bytes already read in c.rd) to the upgraded protocol
		// through a Hijack on this writer. Not served yet: the backend
		// refuses 101, so a handler never asks for it.
		w.c.cfg.log.Warn("h1: 101 Switching Protocols is not supported")
		code = http.StatusInternalServerError
	}
	if code < 200 {
		w.writeInformational(code)
		return
	}
	w.status, w.wroteHeader = code, true
	if code == http.StatusNoContent || code == http.StatusNotModified {
		w.bodyAllowed = false
		return
	}
	if v := w.header["Content-Length"]; len(v) == 1 {
		// Known now, so that Write refuses bytes beyond it
		// (http.ErrContentLength, as net/http) rather than send a
		// response that lies about its length; commit reads the
		// field again.
		if n, ok := parseLength([]byte(v[0])); ok {
			w.cl = n
		}
	}
}

// writeInformational sends a 1xx with the current header fields (103
// Early Hints carries Link), at once. RFC 9110 §15.2: never to an
// HTTP/1.0 client.
func (w *response) writeInformational(code int) {
	if w.req.ProtoMinor == 0 || w.err != nil {
		return
	}
	if code == http.StatusContinue {
		b := &w.c.body
		b.mu.Lock()
		sent := b.continueSent
		b.continueWanted, b.continueSent = false, true
		b.mu.Unlock()
		if sent {
			return
		}
	}
	b := appendStatusLine(w.hb[:0], 1, code)
	w.keys = sortedKeys(w.keys[:0], w.header)
	for _, k := range w.keys {
		b = appendField(b, k, w.header[k])
	}
	b = append(b, "\r\n"...)
	w.hb = b
	w.writeConn(b)
}

// writeContinue sends "100 Continue" unless the response has begun,
// from whichever goroutine reads the body first; it reports whether it
// sent it. It writes under c.wmu and records a failure only in its result
// (the body's), never in w, which is the handler's.
func (w *response) writeContinue() (bool, error) {
	c := w.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if w.committed {
		return false, nil
	}
	_, err := c.rwc.Write(continueLine)
	return true, err
}

var continueLine = []byte("HTTP/1.1 100 Continue\r\n\r\n")

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if !w.bodyAllowed {
		return 0, http.ErrBodyNotAllowed
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.headOnly {
		return len(p), nil
	}
	if !w.committed {
		if len(w.wb)+len(p) <= pendMax {
			w.wb = append(w.wb, p...)
			return len(p), nil
		}
		w.commit(false)
	}
	w.writeBody(p)
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

func (w *response) WriteString(s string) (int, error) {
	if !w.committed && w.err == nil && w.wroteHeader && w.bodyAllowed && !w.headOnly &&
		w.cl < 0 && len(w.wb)+len(s) <= pendMax {
		w.wb = append(w.wb, s...)
		w.written += int64(len(s))
		return len(s), nil
	}
	return w.Write([]byte(s))
}

// writeBody writes p after the head, framed.
func (w *response) writeBody(p []byte) {
	if len(p) == 0 || w.err != nil {
		return
	}
	if w.chunked {
		w.wb = appendChunkSize(w.wb, len(p))
	}
	if len(w.wb)+len(p)+2 <= cap(w.wb) {
		w.wb = append(w.wb, p...)
	} else {
		w.flushBuffer()
		w.writeConn(p)
	}
	if w.chunked {
		w.wb = append(w.wb, "\r\n"...)
	}
	if len(w.wb) >= wbufSize/2 {
		w.flushBuffer()
	}
}

func appendChunkSize(b []byte, n int) []byte {
	const hex = "0123456789abcdef"
	var tmp [16]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = hex[n&15]
		n >>= 4
		if n == 0 {
			break
		}
	}
	b = append(b, tmp[i:]...)
	return append(b, "\r\n"...)
}

func (w *response) Flush() { w.FlushError() }

// FlushError is http.ResponseController's Flush.
func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false)
	}
	w.flushBuffer()
	return w.err
}

func (w *response) flushBuffer() {
	if len(w.wb) > 0 {
		w.writeConn(w.wb)
		w.wb = w.wb[:0]
	}
}

func (w *response) writeConn(b []byte) {
	if w.err != nil {
		return
	}
	w.c.wmu.Lock()
	_, err := w.c.rwc.Write(b)
	w.c.wmu.Unlock()
	if err != nil {
		// The client is gone (or stalled past the write deadline): the
		// request's context ends, and so does the connection.
		w.err = err
		w.c.closeAfter = true
		w.c.cancel()
	}
}

// commit serialises the head in front of the pending body. final: the
// handler has returned, so the pending body is the whole body.
func (w *response) commit(final bool) {
	c, h, req := w.c, w.header, w.req
	c.wmu.Lock() // writeContinue reads committed on the body's goroutine
	w.committed = true
	c.wmu.Unlock()
	delete(h, "Transfer-Encoding") // the engine frames the body
	if v := h["Content-Length"]; len(v) == 1 {
		if n, ok := parseLength([]byte(v[0])); ok && w.bodyAllowed {
			w.cl = n
		}
	}
	if w.cl < 0 || !w.bodyAllowed {
		delete(h, "Content-Length")
	}
	declared := w.collectTrailers()
	pending := len(w.wb)
	switch {
	case !w.bodyAllowed:
	case w.cl >= 0:
	case final && !declared:
		// The whole body is here: frame it by length (RFC 9112 §6.3
		// rule 6), unless trailers need chunked.
		if !w.headOnly || w.written > 0 {
			w.cl = w.written
		}
	case w.headOnly:
	case req.ProtoMinor >= 1:
		w.chunked = true
	default:
		// RFC 9112 §6.3 rule 8: an HTTP/1.0 body of unknown length ends
		// with the connection.
		c.closeAfter = true
	}
	if w.cl >= 0 && w.cl < w.written && !w.headOnly {
		// The handler declared less than it wrote before commit.
		w.wb = w.wb[:0]
		pending = 0
		c.closeAfter = true
	}
	if final && w.cl > w.written && w.bodyAllowed && !w.headOnly {
		// The whole body is shorter than its declared length: the close
		// ends it (RFC 9112 §8), and the head can say so.
		c.closeAfter = true
	}
	closing := c.closeAfter || req.Close || c.draining.Load() || hasToken(h["Connection"], "close") ||
		c.cfg.maxRequests > 0 && c.served >= c.cfg.maxRequests
	if closing {
		c.closeAfter = true
	}

	b := appendStatusLine(w.hb[:0], req.ProtoMinor, w.status)
	if _, ok := h["Date"]; !ok {
		b = append(b, "Date: "...)
		b = appendDate(b)
		b = append(b, "\r\n"...)
	}
	if _, ok := h["Content-Type"]; !ok && w.bodyAllowed && pending > 0 {
		// As net/http: a body without a declared type gets a sniffed one
		// (RFC 9110 §8.3 lets a recipient guess; net/http clients expect it).
		b = append(b, "Content-Type: "...)
		b = append(b, http.DetectContentType(w.wb[:pending])...)
		b = append(b, "\r\n"...)
	}
	w.keys = sortedKeys(w.keys[:0], h)
	for _, k := range w.keys {
		switch k {
		case "Connection", "Keep-Alive", "Content-Length":
			continue
		}
		if strings.HasPrefix(k, http.TrailerPrefix) || w.chunked && slices.Contains(w.trailers, k) {
			continue
		}
		b = appendField(b, k, h[k])
	}
	if w.cl >= 0 {
		b = append(b, "Content-Length: "...)
		b = appendInt(b, w.cl)
		b = append(b, "\r\n"...)
	}
	if w.chunked {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	switch {
	case closing && req.ProtoMinor == 0:
		// RFC 9112 §9.3: closing is HTTP/1.0's default; as net/http, no
		// field says so (and clients that see "Connection: close" on
		// HTTP/1.0 keep it as a field).
	case closing:
		b = append(b, "Connection: close\r\n"...)
	case req.ProtoMinor == 0:
		// RFC 9112 §C.2.2: a persistent HTTP/1.0 connection says so.
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	if !closing && c.cfg.keepAliveHeader {
		// The Keep-Alive advertisement (RFC 2068 §19.7.1.1): when the
		// server will close, so that a client never sends into it.
		b = append(b, "Keep-Alive: "...)
		b = append(b, c.cfg.keepAliveTimeout...)
		if c.cfg.maxRequests > 0 {
			b = append(b, ", max="...)
			b = appendInt(b, int64(c.cfg.maxRequests-c.served))
		}
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	if w.chunked && pending > 0 {
		b = appendChunkSize(b, pending)
	}
	w.hb = b
	if w.headOnly {
		w.wb = w.wb[:0]
		pending = 0
	}
	if len(b)+pending+2 <= cap(w.wb) {
		// One buffer, one write: move the pending body behind the head.
		w.wb = w.wb[:len(b)+pending]
		copy(w.wb[len(b):], w.wb[:pending])
		copy(w.wb, b)
	} else {
		w.writeConn(b)
	}
	if w.chunked && pending > 0 {
		w.wb = append(w.wb, "\r\n"...)
	}
}

// collectTrailers records the keys declared in the Trailer field (RFC
// 9110 §6.6.2) and reports whether the response has trailers at all
// (declared, or set with http.TrailerPrefix).
func (w *response) collectTrailers() bool {
	any := false
	for _, v := range w.header["Trailer"] {
		for len(v) > 0 {
			var k string
			k, v, _ = strings.Cut(v, ",")
			if k = strings.TrimSpace(k); k != "" {
				w.trailers = append(w.trailers, http.CanonicalHeaderKey(k))
				any = true
			}
		}
	}
	for k := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			any = true
		}
	}
	return any
}

// finish ends the response after the handler returned.
func (w *response) finish() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	c := w.c
	if !w.committed {
		// Read what the handler left of the body before the head goes
		// out, so that the head can say whether the connection stays.
		if c.req.Body != http.NoBody && !c.body.finish() {
			c.closeAfter = true
		}
		w.commit(true)
	}
	if w.chunked && w.err == nil {
		w.wb = append(w.wb, "0\r\n"...)
		for _, k := range w.trailers {
			w.wb = appendField(w.wb, k, w.header[k])
		}
		for k, vv := range w.header {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				w.wb = appendField(w.wb, http.CanonicalHeaderKey(name), vv)
			}
		}
		w.wb = append(w.wb, "\r\n"...)
	}
	if w.bodyAllowed && !w.headOnly && w.cl >= 0 && w.written < w.cl {
		// A body shorter than its Content-Length: the client can tell only
		// by the close (RFC 9112 §8).
		c.closeAfter = true
	}
	w.flushBuffer()
}

func sortedKeys(keys []string, h http.Header) []string {
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// appendField appends "name: value" lines; an invalid name is skipped,
// and CR, LF and NUL in a value become spaces (as net/http does), so that
// a handler cannot split the response.
func appendField(b []byte, name string, values []string) []byte {
	if !httpguts.ValidHeaderFieldName(name) {
		return b
	}
	for _, v := range values {
		b = append(b, name...)
		b = append(b, ": "...)
		for i := 0; i < len(v); i++ {
			c := v[i]
			if c == '\r' || c == '\n' || c == 0 {
				c = ' '
			}
			b = append(b, c)
		}
		b = append(b, "\r\n"...)
	}
	return b
}

func appendStatusLine(b []byte, minor, code int) []byte {
	if minor == 0 {
		b = append(b, "HTTP/1.0 "...)
	} else {
		b = append(b, "HTTP/1.1 "...)
	}
	b = appendInt(b, int64(code))
	b = append(b, ' ')
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + itoa(int64(code))
	}
	b = append(b, text...)
	return append(b, "\r\n"...)
}

func hasToken(values []string, token string) bool {
	for _, v := range values {
		found := false
		forEachToken([]byte(v), func(t []byte) {
			if equalFold(t, token) {
				found = true
			}
		})
		if found {
			return true
		}
	}
	return false
}

// The Date field (RFC 9110 §6.6.1), formatted once a second.
type dateStamp struct {
	sec int64
	b   []byte
}

var date atomic.Pointer[dateStamp]

func appendDate(b []byte) []byte {
	now := time.Now()
	d := date.Load()
	if d == nil || d.sec != now.Unix() {
		d = &dateStamp{sec: now.Unix(), b: now.UTC().AppendFormat(make([]byte, 0, 29), http.TimeFormat)}
		date.Store(d)
	}
	return append(b, d.b...)
}
