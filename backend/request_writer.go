package backend

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
)

// requestFraming is how a request's content is delimited on the HTTP/1.1
// hop (RFC 9112 §6).
type requestFraming int

const (
	frameNone    requestFraming = iota // no content
	frameLength                        // Content-Length
	frameChunked                       // Transfer-Encoding: chunked
)

// framingOf decides the request framing. It follows http.Request's client
// conventions: ContentLength > 0 is exact; 0 with a nil or http.NoBody Body
// means no content; otherwise the length is unknown and the content goes
// chunked, which every HTTP/1.1 origin must accept (RFC 9112 §7.1).
// Callers that know a body is empty set Body to nil.
func framingOf(req *http.Request) requestFraming {
	switch {
	case req.Body == nil || req.Body == http.NoBody:
		return frameNone
	case req.ContentLength > 0:
		return frameLength
	default:
		return frameChunked
	}
}

// writeRequestHead writes the request line and header section. Fields are
// written in sorted order so that the same request always produces the
// same bytes, whatever the client protocol (the protocol matrix relies on
// it). Framing fields come from framing, never from req.Header: the caller
// must already have removed hop-by-hop fields, and any Content-Length or
// Transfer-Encoding left in req.Header is ignored rather than trusted.
func writeRequestHead(w *bufio.Writer, req *http.Request, framing requestFraming) error {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	if !validMethod(method) {
		return fmt.Errorf("%w: method %q", errInvalidField, method)
	}
	target := req.URL.RequestURI()
	if !validTarget(target) {
		return fmt.Errorf("%w: request target %q", errInvalidField, target)
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	// RFC 9112 §3.2: a client MUST send Host in every HTTP/1.1 request.
	if !httpguts.ValidHostHeader(host) {
		return fmt.Errorf("%w: host %q", errInvalidField, host)
	}
	w.WriteString(method)
	w.WriteByte(' ')
	w.WriteString(target)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	// HTTP/1.1 persists by default (RFC 9112 §9.3), but origins such as
	// Apache httpd announce their idle timeout and request budget
	// ("Keep-Alive: timeout=5, max=100") only to a client that asks.
	w.WriteString("\r\nConnection: keep-alive\r\n")

	if err := writeFields(w, req.Header, skipOnRequest); err != nil {
		return err
	}
	switch framing {
	case frameLength:
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.FormatInt(req.ContentLength, 10))
		w.WriteString("\r\n")
	case frameChunked:
		w.WriteString("Transfer-Encoding: chunked\r\n")
		if len(req.Trailer) > 0 {
			// RFC 9110 §6.6.2: announce the trailer fields to come.
			first := true
			for _, k := range sortedKeys(req.Trailer) {
				if !httpguts.ValidHeaderFieldName(k) {
					return fmt.Errorf("%w: trailer name %q", errInvalidField, k)
				}
				if skipOnRequest(k) {
					continue
				}
				if first {
					w.WriteString("Trailer: ")
					first = false
				} else {
					w.WriteString(", ")
				}
				w.WriteString(k)
			}
			if !first {
				w.WriteString("\r\n")
			}
		}
	case frameNone:
		// RFC 9110 §8.6: a request whose method gives content a meaning
		// should say its length even when it is empty.
		if methodExpectsContent(method) {
			w.WriteString("Content-Length: 0\r\n")
		}
	}
	_, err := w.WriteString("\r\n")
	return err
}

// skipOnRequest reports the fields writeRequestHead writes itself, in any
// letter case: a "content-length" key left in a caller's header must not
// sit beside the framing this writer chose (RFC 9112 §6.3, §11.2). The
// same fields are never sent as trailers (RFC 9110 §6.5.1: framing and
// routing fields are forbidden there).
func skipOnRequest(k string) bool {
	// By length first: this runs for every field of every request.
	var f string
	switch len(k) {
	case len("Host"):
		f = "Host"
	case len("Trailer"):
		f = "Trailer"
	case len("Connection"):
		f = "Connection"
	case len("Content-Length"):
		f = "Content-Length"
	case len("Transfer-Encoding"):
		f = "Transfer-Encoding"
	default:
		return false
	}
	return strings.EqualFold(k, f)
}

// writeFields writes h in sorted key order, validating every name and value
// so that nothing the caller passes can split a field or a message
// (RFC 9110 §5.1, §5.5).
func writeFields(w *bufio.Writer, h http.Header, skip func(string) bool) error {
	// Pooled, not on the stack: see readFields.
	fp := fieldsPool.Get().(*[]field)
	fields := (*fp)[:0]
	defer func() {
		clear(fields)
		if cap(fields) <= 256 {
			*fp = fields
			fieldsPool.Put(fp)
		}
	}()
	for k, vv := range h {
		if !skip(k) {
			fields = append(fields, field{k, vv})
		}
	}
	slices.SortFunc(fields, func(a, b field) int { return strings.Compare(a.name, b.name) })
	for _, f := range fields {
		if !httpguts.ValidHeaderFieldName(f.name) {
			return fmt.Errorf("%w: name %q", errInvalidField, f.name)
		}
		for _, v := range f.values {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("%w: value of %s", errInvalidField, f.name)
			}
			w.WriteString(f.name)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	return nil
}

type field struct {
	name   string
	values []string
}

var fieldsPool = sync.Pool{New: func() any { f := make([]field, 0, 32); return &f }}

// sortedKeys returns h's names, sorted.
func sortedKeys(h http.Header) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// writeRequestBody copies the content in the chosen framing, flushing as
// data arrives so that a streamed upload reaches the origin as it is
// produced. A Content-Length body that ends early is an error: the origin
// would otherwise wait for bytes that never come, or read the next request
// as content.
func writeRequestBody(w *bufio.Writer, req *http.Request, framing requestFraming) error {
	bufp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bufp)
	buf := *bufp
	switch framing {
	case frameLength:
		remaining := req.ContentLength
		for remaining > 0 {
			n, err := req.Body.Read(buf[:min(int64(len(buf)), remaining)])
			if n > 0 {
				remaining -= int64(n)
				if remaining == 0 && err != io.EOF {
					// The last bytes go out only once the content is known
					// to end here: see contentEnds.
					if err == nil {
						err = contentEnds(req.Body)
					}
					if err != nil {
						return clientContentError(err)
					}
					err = io.EOF
				}
				if _, werr := w.Write(buf[:n]); werr != nil {
					return werr
				}
				if werr := w.Flush(); werr != nil {
					return werr
				}
			}
			if err == io.EOF {
				if remaining > 0 {
					return errBodyShort
				}
				break
			}
			if err != nil {
				return clientContentError(err)
			}
		}
		return nil
	case frameChunked:
		for {
			n, err := req.Body.Read(buf)
			if n > 0 {
				// RFC 9112 §7.1: chunk = chunk-size CRLF chunk-data CRLF.
				w.WriteString(strconv.FormatInt(int64(n), 16))
				w.WriteString("\r\n")
				w.Write(buf[:n])
				w.WriteString("\r\n")
				if werr := w.Flush(); werr != nil {
					return werr
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return clientContentError(err)
			}
		}
		// RFC 9112 §7.1: last-chunk, then the trailer section, then CRLF.
		w.WriteString("0\r\n")
		if err := writeFields(w, req.Trailer, skipOnRequest); err != nil {
			return err
		}
		w.WriteString("\r\n")
		return w.Flush()
	}
	return nil
}

// clientContentError marks an error reading the request content: it is the
// client's (a chunked coding the frontend refused, content that disagrees
// with its length, a client that went away), not the origin's, and
// Error.ClientError reports it.
func clientContentError(err error) error {
	if err == errBodyLong {
		return err
	}
	return &contentError{err}
}

type contentError struct{ err error }

func (e *contentError) Error() string { return "reading the request content: " + e.err.Error() }
func (e *contentError) Unwrap() error { return e.err }

// contentEnds confirms that a request body has no byte left after its
// Content-Length. An HTTP/2 or HTTP/3 client declares content-length and
// then sends DATA; with more DATA than declared the request is malformed
// (RFC 9113 §8.1.1, RFC 9114 §4.1.2) and must not be forwarded, but the
// servers report the excess only on the read after the declared length
// (x/net when the next DATA frame arrives, quic-go/http3 through
// errTooMuchData). Until this returns nil, the last read of the content is
// held back, so that the origin never holds a complete request that the
// client sent malformed: the connection is closed instead. It costs no
// extra write: the last bytes go out in one write once confirmed. HTTP/1.x bodies
// end at their Content-Length by construction and return io.EOF at once.
func contentEnds(body io.Reader) error {
	var one [1]byte
	// quic-go may return (0, nil) for a frame that carries no data (an
	// empty DATA frame, the trailers); each such read consumes a frame.
	for range 1000 {
		n, err := body.Read(one[:])
		switch {
		case n > 0:
			return errBodyLong
		case err == io.EOF:
			return nil
		case err != nil:
			return err
		}
	}
	return errBodyLong
}

// validMethod reports whether m is a token (RFC 9110 §9.1).
func validMethod(m string) bool {
	for i := 0; i < len(m); i++ {
		if !httpguts.IsTokenRune(rune(m[i])) {
			return false
		}
	}
	return m != ""
}

// validTarget accepts the request targets a reverse proxy sends: the
// origin form, which starts with "/", and the asterisk form of OPTIONS
// (RFC 9112 §3.2.1, §3.2.4), without anything that would break the
// request line. A URL whose raw path encodes its first slash ("%2F...")
// would otherwise make a target no origin can parse.
func validTarget(t string) bool {
	if t != "*" && (t == "" || t[0] != '/') {
		return false
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

func methodExpectsContent(m string) bool {
	return m == http.MethodPost || m == http.MethodPut || m == http.MethodPatch
}
