package h1

import (
	"bytes"

	"golang.org/x/net/http/httpguts"
)

// The request head parser (RFC 9112 §2–§7, §11).
//
// parseHead takes a complete head, from the request line through the
// empty line that ends it, and reports the request it describes or why it
// is refused. It is strict where leniency lets two implementations
// disagree about where a message ends (RFC 9112 §11.2, request
// smuggling): both Content-Length and Transfer-Encoding, repeated or
// malformed Content-Length, any Transfer-Encoding but a final "chunked",
// Transfer-Encoding in HTTP/1.0, bare CR, obs-fold, whitespace before a
// colon, invalid tokens, a missing or repeated Host in HTTP/1.1, and a
// malformed request line are all refused. Lines end with CRLF or a bare
// LF (RFC 9112 §2.2 lets a recipient accept a bare LF); a CR anywhere
// else is refused. Nothing is copied: the result points into the head.

// reqHead is a parsed request head. Its slices point into the head.
type reqHead struct {
	method, target, version []byte
	major, minor            int
	fields                  []headField

	contentLength int64 // -1: none (or chunked)
	chunked       bool
	host          int  // index into fields, -1: none
	connClose     bool // "Connection: close" (RFC 9112 §9.6)
	connKeepAlive bool // "Connection: keep-alive" (RFC 9112 §C.2.2)
	expect100     bool // "Expect: 100-continue" (RFC 9110 §10.1.1)
	badExpect     bool // an Expect other than 100-continue (417)
}

// headField is one field line; value is trimmed of OWS.
type headField struct {
	name, value []byte
	off         int // offset of value in the head
	nameOff     int
}

// headError is a refused head: the status to answer and why.
type headError struct {
	status int
	reason string
}

func (e *headError) Error() string { return "h1: " + e.reason }

func refuse(reason string) *headError { return &headError{400, reason} }

var (
	errUnknownCoding = &headError{501, "unknown transfer coding"}
	errVersion       = &headError{505, "unsupported HTTP version"}
	errExpect        = &headError{417, "unsupported expectation"}
)

const (
	// maxLengthDigits keeps a Content-Length within int64.
	maxLengthDigits = 18
)

// parseHead parses head (ending with its empty line) into h, reusing
// h.fields.
func parseHead(head []byte, h *reqHead) *headError {
	*h = reqHead{fields: h.fields[:0], contentLength: -1, host: -1}
	line, rest, ok := cutLine(head)
	if !ok {
		return refuse("bare CR in request line")
	}
	if err := parseRequestLine(line, h); err != nil {
		return err
	}
	var hasCL, hasTE bool
	var te []byte
	for {
		off := len(head) - len(rest)
		line, rest, ok = cutLine(rest)
		if !ok {
			return refuse("bare CR") // RFC 9112 §2.2
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			// RFC 9112 §5.2: obs-fold is refused rather than unfolded;
			// on the first field line it is whitespace after the start
			// line (§2.2), refused too.
			return refuse("obs-fold or leading whitespace")
		}
		name, value, voff, err := parseFieldLine(line)
		if err != nil {
			return err
		}
		h.fields = append(h.fields, headField{name: name, value: value, off: off + voff, nameOff: off})
		switch {
		case equalFold(name, "content-length"):
			// RFC 9112 §6.3 rule 5, RFC 9110 §8.6: one value, 1*DIGIT;
			// repeated fields and lists, even of equal values, are
			// refused.
			if hasCL {
				return refuse("repeated Content-Length")
			}
			hasCL = true
			n, ok := parseLength(value)
			if !ok {
				return refuse("malformed Content-Length")
			}
			h.contentLength = n
		case equalFold(name, "transfer-encoding"):
			if hasTE {
				return refuse("repeated Transfer-Encoding")
			}
			hasTE, te = true, value
		case equalFold(name, "host"):
			// RFC 9112 §3.2: exactly one Host field.
			if h.host >= 0 {
				return refuse("repeated Host")
			}
			if !httpguts.ValidHostHeader(string(value)) {
				return refuse("malformed Host")
			}
			h.host = len(h.fields) - 1
		case equalFold(name, "connection"):
			forEachToken(value, func(t []byte) {
				switch {
				case equalFold(t, "close"):
					h.connClose = true
				case equalFold(t, "keep-alive"):
					h.connKeepAlive = true
				}
			})
		case equalFold(name, "expect"):
			// RFC 9110 §10.1.1: 100-continue is the only expectation.
			if equalFold(value, "100-continue") {
				h.expect100 = true
			} else if len(value) > 0 {
				h.badExpect = true
			}
		}
	}
	if len(rest) != 0 {
		return refuse("bytes after the head") // the caller's cut is wrong
	}
	switch {
	case hasTE && hasCL:
		// RFC 9112 §6.1: "a server MAY reject a request that contains
		// both Content-Length and Transfer-Encoding ... Regardless, the
		// server MUST close the connection after responding".
		return refuse("both Content-Length and Transfer-Encoding")
	case hasTE && h.minor == 0:
		// RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
		return refuse("Transfer-Encoding in HTTP/1.0")
	case hasTE:
		if err := checkTransferEncoding(te); err != nil {
			return err
		}
		h.chunked = true
	}
	if h.minor >= 1 && h.host < 0 {
		return refuse("missing Host") // RFC 9112 §3.2
	}
	if h.badExpect {
		return errExpect
	}
	return nil
}

// parseRequestLine parses method SP request-target SP HTTP-version
// (RFC 9112 §3), with single spaces only.
func parseRequestLine(line []byte, h *reqHead) *headError {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return refuse("malformed request line")
	}
	sp2 := bytes.IndexByte(line[sp1+1:], ' ')
	if sp2 <= 0 {
		return refuse("malformed request line")
	}
	sp2 += sp1 + 1
	h.method, h.target, h.version = line[:sp1], line[sp1+1:sp2], line[sp2+1:]
	for _, c := range h.method {
		if !httpguts.IsTokenRune(rune(c)) {
			return refuse("malformed method") // RFC 9110 §9.1: a token
		}
	}
	if err := checkVersion(h); err != nil {
		return err
	}
	return checkTarget(h.method, h.target)
}

// checkVersion parses HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112
// §2.3). Any HTTP/1.x is served as HTTP/1.1 would be (minor versions are
// compatible); other majors get 505.
func checkVersion(h *reqHead) *headError {
	v := h.version
	if len(v) != 8 || string(v[:5]) != "HTTP/" || v[6] != '.' || !isDigit(v[5]) || !isDigit(v[7]) {
		return refuse("malformed HTTP version")
	}
	h.major, h.minor = int(v[5]-'0'), int(v[7]-'0')
	if h.major != 1 {
		return errVersion
	}
	return nil
}

// checkTarget checks the request-target (RFC 9112 §3.2): visible ASCII
// only, in origin-form ("/..."), absolute-form ("scheme://..."),
// authority-form (CONNECT only) or asterisk-form (OPTIONS only).
func checkTarget(method, t []byte) *headError {
	if len(t) == 0 {
		return refuse("empty request-target")
	}
	for _, c := range t {
		if c <= ' ' || c >= 0x7f {
			return refuse("invalid byte in request-target")
		}
	}
	switch {
	case string(method) == "CONNECT":
		// RFC 9112 §3.2.3: authority-form, host:port.
		if t[0] == '/' || bytes.IndexByte(t, '/') >= 0 || bytes.IndexByte(t, ':') <= 0 {
			return refuse("CONNECT needs authority-form")
		}
	case t[0] == '/':
	case len(t) == 1 && t[0] == '*':
		if string(method) != "OPTIONS" {
			return refuse("asterisk-form is for OPTIONS")
		}
	default:
		// RFC 9112 §3.2.2: absolute-form, scheme "://" authority.
		i := bytes.Index(t, []byte("://"))
		if i <= 0 || !isScheme(t[:i]) || i+3 >= len(t) || t[i+3] == '/' {
			return refuse("malformed request-target")
		}
	}
	return nil
}

func isScheme(s []byte) bool {
	for i, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && (isDigit(c) || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// parseFieldLine splits name ":" OWS value OWS (RFC 9112 §5.1): name is
// a token, with no whitespace before the colon; the value has no CTL but
// HTAB (RFC 9110 §5.5).
func parseFieldLine(line []byte) (name, value []byte, voff int, err *headError) {
	colon := -1
	for k, c := range line {
		if c == ':' {
			colon = k
			break
		}
		if !httpguts.IsTokenRune(rune(c)) {
			return nil, nil, 0, refuse("invalid field name")
		}
	}
	if colon <= 0 {
		return nil, nil, 0, refuse("invalid field line")
	}
	voff = colon + 1
	v := line[voff:]
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v, voff = v[1:], voff+1
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	for _, c := range v {
		if isCTL[c] {
			return nil, nil, 0, refuse("invalid byte in field value")
		}
	}
	return line[:colon], v, voff, nil
}

// checkTransferEncoding accepts exactly "chunked" (any case). RFC 9112
// §6.3 rule 4: chunked must be the final coding, else 400; §6.1: chunked
// at most once, and a coding the server does not understand is 501. Any
// other syntax is 400.
func checkTransferEncoding(v []byte) *headError {
	if equalFold(v, "chunked") {
		return nil
	}
	chunked, last := 0, false
	for len(v) > 0 {
		var elem []byte
		if k := bytes.IndexByte(v, ','); k >= 0 {
			elem, v = trimOWS(v[:k]), v[k+1:]
		} else {
			elem, v = trimOWS(v), nil
		}
		if len(elem) == 0 {
			return refuse("malformed Transfer-Encoding")
		}
		for _, c := range elem {
			if !httpguts.IsTokenRune(rune(c)) {
				return refuse("malformed Transfer-Encoding")
			}
		}
		last = equalFold(elem, "chunked")
		if last {
			chunked++
		}
	}
	if chunked != 1 || !last {
		return refuse("chunked is not the final coding, once")
	}
	return errUnknownCoding
}

// parseLength parses 1*DIGIT (RFC 9110 §8.6).
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > maxLengthDigits {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// cutLine returns the line at the start of b without its LF or CRLF, and
// what follows; ok is false if the line holds a CR anywhere else.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	j := bytes.IndexByte(b, '\n')
	if j < 0 {
		line = b
	} else {
		line, rest = b[:j], b[j+1:]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest, bytes.IndexByte(line, '\r') < 0
}

// findHeadEnd looks for the empty line ending the head at the start of b
// and returns the length of the head through that line. line is the
// start of the line the scan is in, from where it resumes (line <= from;
// b[line:from] holds no LF and no bare CR): when the head is not
// complete yet, the next call passes the returned line and from, so that
// a head arriving a byte at a time is scanned once, not once per byte.
//
// An empty first line also ends a head: parseHead refuses it (RFC 9112
// §2.2 lets a server ignore it; the guard refused it, and so does this
// engine). So does a CR that does not end a line (§2.2, a bare CR): the
// head is cut right after it, for parseHead to refuse at once rather than
// wait for an end that would not parse either.
func findHeadEnd(b []byte, line, from int) (n int, ok bool, nextLine, nextFrom int) {
	for {
		i := bytes.IndexByte(b[from:], '\n')
		if i < 0 {
			// No line end yet: a CR followed by anything (it cannot be
			// LF) is already bare; a CR at the end is judged by the byte
			// after it, so the next scan starts on it.
			if k := bytes.IndexByte(b[from:], '\r'); k >= 0 && from+k+1 < len(b) {
				return from + k + 2, true, 0, 0
			}
			return 0, false, line, max(line, len(b)-1)
		}
		j := from + i
		if k := bytes.IndexByte(b[from:j], '\r'); k >= 0 && from+k != j-1 {
			return j + 1, true, 0, 0
		}
		if j == line || j == line+1 && b[line] == '\r' {
			return j + 1, true, 0, 0 // an empty line
		}
		line, from = j+1, j+1
	}
}

func forEachToken(v []byte, f func([]byte)) {
	for len(v) > 0 {
		var t []byte
		if k := bytes.IndexByte(v, ','); k >= 0 {
			t, v = v[:k], v[k+1:]
		} else {
			t, v = v, nil
		}
		if t = trimOWS(t); len(t) > 0 {
			f(t)
		}
	}
}

// trimOWS removes OWS, SP and HTAB only (RFC 9110 §5.6.3).
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold compares b with the lower-case ASCII string s.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isCTL holds the bytes a field value must not contain: CTLs but HTAB,
// and DEL (RFC 9110 §5.5).
var isCTL = func() (t [256]bool) {
	for c := 0; c < ' '; c++ {
		t[c] = c != '\t'
	}
	t[0x7f] = true
	return t
}()
