package h1

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// The request body: Content-Length or chunked (RFC 9112 §6.3, §7.1),
// streamed from the connection's read buffer to the handler, never
// buffered whole. A chunked body is checked as strictly as a head: chunk
// lines of bounded length and digits, CRLF only, trailer lines parsed as
// field lines. A body that fails fails for good: every later Read
// returns the same error, and the connection closes after the response
// (the bytes after the failure cannot be framed).

const (
	// maxChunkLine bounds a chunk-size line with its extensions
	// (RFC 9112 §7.1.1 sets no limit; net/http refuses 4096 and more).
	maxChunkLine = 4096
	// maxChunkDigits: 15 hex digits are 2^60 bytes; more are refused
	// (RFC 9112 §7.1: "prevent parsing errors due to integer conversion
	// overflows").
	maxChunkDigits = 15
	// maxDrain is how much of an unread body the engine reads after the
	// handler returns to keep the connection (net/http: 256 KiB).
	maxDrain = 256 << 10
)

var (
	errBodyClosed   = http.ErrBodyReadAfterClose
	errChunkLine    = errors.New("h1: malformed chunk line (the request body is incomplete; safe to retry)")
	errTrailer      = errors.New("h1: malformed trailer section (the request body is incomplete; safe to retry)")
	errBodyTooShort = errors.New("h1: connection ended before the end of the request body (safe to retry)")
)

type bodyState uint8

const (
	bsLength    bodyState = iota // Content-Length bytes left in remaining
	bsChunkLine                  // at a chunk-size line
	bsChunkData                  // remaining bytes of chunk data, then CRLF
	bsDone                       // read to its end
)

// body is the request body; one per connection, reused. The handler gets
// a bodyHandle, not the body: an http.RoundTripper may read or close a
// request body on a goroutine of its own, even after the handler returned
// (backend's request writer does), so every access takes mu and checks
// that the handle's request is still the current one.
type body struct {
	mu  sync.Mutex // guards every field below, and c.rd while a handler runs
	gen uint32     // the current request's handle generation

	c         *Conn
	state     bodyState
	remaining int64
	err       error // sticky: io.EOF at the end, or why the body failed
	closed    bool  // the handler closed it
	// continueWanted: "Expect: 100-continue" and no 100 sent yet.
	continueWanted bool
	continueSent   bool
	req            *http.Request
}

// reset makes b the body of req and returns the handler's handle to it
// (nil: req has no body).
func (b *body) reset(c *Conn, req *http.Request, h *reqHead) *bodyHandle {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gen++
	b.c, b.req = c, req
	b.err, b.closed, b.continueSent = nil, false, false
	b.continueWanted = h.expect100 && h.minor >= 1
	b.remaining = 0
	switch {
	case h.chunked:
		b.state = bsChunkLine
	case h.contentLength > 0:
		b.state, b.remaining = bsLength, h.contentLength
	default:
		b.state, b.err = bsDone, io.EOF
		return nil
	}
	return &bodyHandle{b: b, gen: b.gen}
}

// end cuts every handle off once the handler has returned, and reports
// whether the body is the engine's alone again. If a Read is in progress
// on another goroutine, the read deadline ends it; the body is then in no
// known state and the connection must close.
func (b *body) end() bool {
	if b.mu.TryLock() {
		b.gen++
		b.mu.Unlock()
		return true
	}
	_ = b.c.rwc.SetReadDeadline(time.Now())
	b.mu.Lock()
	b.gen++
	if b.err == nil || b.err == io.EOF {
		b.err = errBodyTooShort
	}
	b.mu.Unlock()
	return false
}

// bodyHandle is one request's Request.Body.
type bodyHandle struct {
	b   *body
	gen uint32
}

// Read reads the body. The first Read sends "100 Continue" if the client
// asked for it and the response has not started (RFC 9110 §10.1.1).
func (h *bodyHandle) Read(p []byte) (int, error) {
	b := h.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if h.gen != b.gen {
		return 0, errBodyClosed
	}
	return b.readLocked(p)
}

// Close marks the body closed; what is left is drained (or the
// connection closed) after the handler returns.
func (h *bodyHandle) Close() error {
	b := h.b
	b.mu.Lock()
	if h.gen == b.gen {
		b.closed = true
	}
	b.mu.Unlock()
	return nil
}

// readLocked reads the body for the handler. Called with b.mu held.
func (b *body) readLocked(p []byte) (int, error) {
	if b.closed {
		return 0, errBodyClosed
	}
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.continueWanted {
		b.continueWanted = false
		sent, err := b.c.resp.writeContinue()
		b.continueSent = sent
		if err != nil {
			b.err = err
			return 0, err
		}
	}
	// A failed read is sticky; the engine sees it in finish and closes
	// the connection.
	n, err := b.read(p)
	b.err = err
	if err == nil {
		return n, nil
	}
	return n, err
}

func (b *body) read(p []byte) (int, error) {
	rd := &b.c.rd
	for {
		switch b.state {
		case bsDone:
			return 0, io.EOF
		case bsLength, bsChunkData:
			if b.remaining == 0 {
				if b.state == bsLength {
					b.state = bsDone
					return 0, io.EOF
				}
				// RFC 9112 §7.1: chunk-data CRLF.
				if err := rd.need(2); err != nil {
					return 0, errBodyTooShort
				}
				if rd.b[rd.r] != '\r' || rd.b[rd.r+1] != '\n' {
					return 0, errChunkLine
				}
				rd.r += 2
				b.state = bsChunkLine
				continue
			}
			if rd.buffered() == 0 {
				if err := rd.fill(); err != nil {
					return 0, errBodyTooShort
				}
			}
			n := copy(p[:min(int64(len(p)), b.remaining)], rd.b[rd.r:rd.w])
			rd.r += n
			b.remaining -= int64(n)
			if b.remaining == 0 && b.state == bsLength {
				b.state = bsDone
				return n, io.EOF
			}
			return n, nil
		case bsChunkLine:
			line, err := rd.line(maxChunkLine)
			if err != nil {
				if err == errLineTooLong || err == errMalformedEOL {
					return 0, errChunkLine
				}
				return 0, errBodyTooShort
			}
			n, ok := parseChunkLine(line)
			if !ok {
				return 0, errChunkLine
			}
			if n == 0 {
				if err := b.readTrailers(); err != nil {
					return 0, err
				}
				b.state = bsDone
				return 0, io.EOF
			}
			b.state, b.remaining = bsChunkData, n
		}
	}
}

// parseChunkLine parses chunk-size [ chunk-ext ] (RFC 9112 §7.1.1): hex
// digits, then extensions up to the line's end with no CTL but HTAB. No
// whitespace after the size: BWS there is how implementations disagree.
func parseChunkLine(line []byte) (int64, bool) {
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			goto ext
		}
		if i >= maxChunkDigits {
			return 0, false
		}
		n = n<<4 | int64(d)
	}
ext:
	if i == 0 {
		return 0, false
	}
	if i < len(line) {
		if line[i] != ';' {
			return 0, false
		}
		for _, c := range line[i+1:] {
			if isCTL[c] {
				return 0, false
			}
		}
	}
	return n, true
}

// readTrailers reads the trailer section after the last chunk (RFC 9112
// §7.1.2) into the request's Trailer. Fields that must not be trailers
// (RFC 9110 §6.5.1: framing, routing) are dropped.
func (b *body) readTrailers() error {
	rd := &b.c.rd
	total := 0
	for {
		line, err := rd.line(b.c.cfg.maxHeaderBytes - total)
		if err != nil {
			if err == errLineTooLong || err == errMalformedEOL {
				return errTrailer
			}
			return errBodyTooShort
		}
		total += len(line) + 2
		if len(line) == 0 {
			return nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errTrailer // RFC 9112 §5.2: obs-fold
		}
		name, value, _, perr := parseFieldLine(line)
		if perr != nil {
			return errTrailer
		}
		key := b.c.canonicalKey(name)
		switch key {
		case "Content-Length", "Transfer-Encoding", "Trailer", "Host", "Connection", "Keep-Alive", "Te", "Upgrade":
			continue
		}
		if b.req.Trailer == nil {
			b.req.Trailer = make(http.Header)
		}
		b.req.Trailer[key] = append(b.req.Trailer[key], b.c.str(value))
	}
}

// finish reads what the handler left of the body, up to maxDrain, and
// reports whether the connection can carry another request.
func (b *body) finish() bool {
	if b.err == io.EOF {
		return true
	}
	if b.err != nil {
		return false
	}
	if b.continueWanted {
		// The client waits for 100 Continue before sending the body; it
		// never got one, so the body's bytes may or may not come.
		return false
	}
	if b.state == bsLength && b.remaining > maxDrain {
		return false
	}
	b.closed = false
	var scratch [512]byte
	drained := 0
	for drained <= maxDrain {
		n, err := b.read(scratch[:])
		drained += n
		if err == io.EOF {
			b.err = io.EOF
			return true
		}
		if err != nil {
			b.err = err
			return false
		}
	}
	return false
}

var errLineTooLong = errors.New("h1: line too long")

func indexLF(b []byte) int { return bytes.IndexByte(b, '\n') }
