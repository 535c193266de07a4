package backend

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// responseHead is a parsed status line and header section, with the
// framing and persistence decisions RFC 9112 derives from them.
type responseHead struct {
	status     int
	reason     string
	protoMinor int // 0 or 1: HTTP/1.0 or HTTP/1.1
	header     http.Header

	// bodyLength is the content length: >= 0 exact, -1 chunked,
	// -2 delimited by the connection closing (RFC 9112 §6.3 rule 8).
	bodyLength int64
	// close is set when the connection must not carry another request:
	// Connection: close, HTTP/1.0 without keep-alive (RFC 9112 §9.3), or a
	// close-delimited body.
	close bool
	// hint is the origin's Keep-Alive parameters, if it sent any.
	hint keepAliveHint
}

const (
	lengthChunked   = -1
	lengthUntilEOF  = -2
	maxChunkLineLen = 4096 // chunk-size and extensions (RFC 9112 §7.1.1)
)

// keepAliveHint holds the origin's "Keep-Alive: timeout=N, max=M"
// (RFC 2068 §19.7.1.1, still sent by Apache httpd and others): timeout is
// how long the origin keeps an idle connection, max how many more requests
// it will take on it. Zero values mean "not sent".
type keepAliveHint struct {
	timeout time.Duration
	max     int
	hasMax  bool
}

// readResponseHead reads one response head. It skips interim (1xx)
// responses, handing each to got1xx when non-nil. method is the request's,
// which decides whether the response can have content (RFC 9112 §6.3).
func readResponseHead(br *bufio.Reader, method string, limit int, got1xx func(int, http.Header) error) (*responseHead, error) {
	for {
		h, err := readOneHead(br, limit)
		if err != nil {
			return nil, err
		}
		if h.status >= 200 {
			if err := h.decideFraming(method); err != nil {
				return nil, err
			}
			if h.bodyLength == lengthChunked {
				if err := checkBufferedChunk(br); err != nil {
					return nil, err
				}
			}
			if h.bodyLength == 0 && br.Buffered() > 0 {
				// Bytes after a response without content (a 204, a 304,
				// the answer to HEAD, Content-Length: 0) belong to no
				// response hoplite asked for: content the origin sent
				// where there can be none, or junk. The connection's
				// framing is in doubt; it must not carry another request
				// (RFC 9112 §6.3 rules 1 and 2, §11.2).
				h.close = true
			}
			return h, nil
		}
		if h.status == http.StatusSwitchingProtocols {
			return nil, errUnsupportedProto
		}
		// RFC 9110 §15.2: a 1xx response has no content and is followed by
		// the final response. Which ones to pass on is the caller's call.
		if got1xx != nil {
			if err := got1xx(h.status, h.header); err != nil {
				return nil, err
			}
		}
	}
}

func readOneHead(br *bufio.Reader, limit int) (*responseHead, error) {
	budget := limit
	line, err := readLine(br, &budget)
	if err != nil {
		return nil, err
	}
	h := &responseHead{}
	if err := h.parseStatusLine(line); err != nil {
		return nil, err
	}
	h.header, err = readFields(br, &budget)
	if err != nil {
		return nil, err
	}
	return h, nil
}

// parseStatusLine parses "HTTP/1.x SP 3DIGIT SP reason" (RFC 9112 §4).
// A missing reason phrase, with or without its SP, is accepted.
func (h *responseHead) parseStatusLine(line []byte) error {
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return fmt.Errorf("%w: status line %q", errMalformed, truncate(line))
	}
	switch line[7] {
	case '0':
		h.protoMinor = 0
	case '1':
		h.protoMinor = 1
	default:
		return fmt.Errorf("%w: version in %q", errMalformed, truncate(line))
	}
	code := line[9:12]
	for _, c := range code {
		if c < '0' || c > '9' {
			return fmt.Errorf("%w: status code in %q", errMalformed, truncate(line))
		}
	}
	h.status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if h.status < 100 {
		return fmt.Errorf("%w: status code %d", errMalformed, h.status)
	}
	if len(line) > 12 {
		if line[12] != ' ' {
			return fmt.Errorf("%w: status line %q", errMalformed, truncate(line))
		}
		h.reason = reasonPhrase(line[13:])
	}
	return nil
}

// reasonPhrase returns the reason phrase, without allocating for the
// usual "OK".
func reasonPhrase(b []byte) string {
	if string(b) == "OK" {
		return "OK"
	}
	return string(b)
}

// readFields reads a field section up to its empty line (RFC 9112 §5).
// Names must be tokens with no whitespace before the colon (§5.1); values
// lose their surrounding whitespace and must not hold control characters
// other than HTAB (RFC 9110 §5.5). obs-fold is replaced by a space, the
// option §5.2 leaves a proxy that does not reject the message.
func readFields(br *bufio.Reader, budget *int) (http.Header, error) {
	// The values are gathered into one buffer and become one string at the
	// end, and the header's value slices share one array: a typical
	// response costs a handful of allocations, not two per field.
	// The scratch space is pooled rather than on the stack, where 2 KiB
	// would make every handler goroutine grow its stack.
	sc := fieldScratchPool.Get().(*fieldScratch)
	defer sc.release()
	spans, values := sc.spans[:0], sc.values[:0]
	defer func() { sc.spans, sc.values = spans, values }()
	for {
		line, err := readLine(br, budget)
		if err != nil {
			return nil, err
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(spans) == 0 {
				return nil, fmt.Errorf("%w: continuation line without a field", errMalformed)
			}
			last := &spans[len(spans)-1]
			v := trimOWS(line)
			if !validValue(v) {
				return nil, fmt.Errorf("%w: value of %s", errMalformed, last.name)
			}
			if len(v) > 0 {
				if last.end > last.off { // no leading space where the value was empty
					values = append(values, ' ')
				}
				values = append(values, v...)
				last.end = len(values)
			}
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return nil, fmt.Errorf("%w: field line %q", errMalformed, truncate(line))
		}
		name := line[:colon]
		for _, c := range name {
			if !httpguts.IsTokenRune(rune(c)) {
				return nil, fmt.Errorf("%w: field name %q", errMalformed, truncate(name))
			}
		}
		v := trimOWS(line[colon+1:])
		if !validValue(v) {
			return nil, fmt.Errorf("%w: value of %s", errMalformed, truncate(name))
		}
		off := len(values)
		values = append(values, v...)
		spans = append(spans, fieldSpan{name: canonicalName(name), off: off, end: len(values)})
	}
	all := string(values)
	vv := make([]string, len(spans))
	h := make(http.Header, len(spans))
	for i, sp := range spans {
		vv[i] = all[sp.off:sp.end]
		if prev, ok := h[sp.name]; ok {
			h[sp.name] = append(prev, vv[i])
		} else {
			h[sp.name] = vv[i : i+1 : i+1]
		}
	}
	return h, nil
}

type fieldScratch struct {
	spans  []fieldSpan
	values []byte
}

var fieldScratchPool = sync.Pool{New: func() any {
	return &fieldScratch{spans: make([]fieldSpan, 0, 32), values: make([]byte, 0, 1024)}
}}

// release returns the scratch space to the pool, unless one huge head
// grew it.
func (sc *fieldScratch) release() {
	if cap(sc.values) <= 16<<10 && cap(sc.spans) <= 256 {
		clear(sc.spans[:cap(sc.spans)]) // drop the names it refers to
		fieldScratchPool.Put(sc)
	}
}

// fieldSpan is one field line read: its canonical name, and where its
// value lies in readFields' value buffer.
type fieldSpan struct {
	name     string
	off, end int
}

// validValue reports whether v may be a field value: no control characters
// other than HTAB (RFC 9110 §5.5), as httpguts.ValidHeaderFieldValue, on
// bytes.
func validValue(v []byte) bool {
	for _, c := range v {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// readLine returns one line without its terminator, charging it to budget.
// RFC 9112 §2.2: CRLF ends a line, and a recipient may accept a bare LF; a
// bare CR elsewhere is invalid.
func readLine(br *bufio.Reader, budget *int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		// A line longer than the buffer: collect it, within budget.
		buf := append([]byte(nil), line...)
		for err == bufio.ErrBufferFull {
			if len(buf) > *budget {
				return nil, errHeaderTooLarge
			}
			line, err = br.ReadSlice('\n')
			buf = append(buf, line...)
		}
		line = buf
	}
	if err != nil {
		return nil, err
	}
	*budget -= len(line)
	if *budget < 0 {
		return nil, errHeaderTooLarge
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, fmt.Errorf("%w: bare CR", errMalformed)
	}
	return line, nil
}

func trimOWS(b []byte) []byte {
	return bytes.Trim(b, " \t")
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// decideFraming applies RFC 9112 §6.3 to find the content length, and
// §9.3 to find whether the connection persists. Any doubt is an error: the
// response is not forwarded and the connection is closed (§11.2).
func (h *responseHead) decideFraming(method string) error {
	te, hasTE := h.header["Transfer-Encoding"]
	cl, hasCL := h.header["Content-Length"]

	h.close = connectionHas(h.header, "close") ||
		(h.protoMinor == 0 && !connectionHas(h.header, "keep-alive"))
	h.hint = parseKeepAlive(h.header["Keep-Alive"])

	if hasCL {
		n, err := parseContentLength(cl)
		if err != nil {
			return err
		}
		// One canonical value is forwarded; a HEAD or 304 response keeps it
		// as the length of the representation (RFC 9110 §8.6).
		if len(cl) != 1 || !plainDecimal(cl[0]) {
			h.header["Content-Length"] = []string{strconv.FormatInt(n, 10)}
		}
		h.bodyLength = n
	}

	// §6.3 rules 1 and 2: these responses never have content, whatever
	// their fields say.
	if method == http.MethodHead || h.status == http.StatusNoContent || h.status == http.StatusNotModified {
		h.bodyLength = 0
		if h.status == http.StatusNoContent && (hasTE || hasCL && h.header["Content-Length"][0] != "0") {
			// RFC 9110 §8.6, RFC 9112 §6.1: a 204 never carries either
			// field. One that announces content probably sends it, and
			// those bytes would be read as the next response: retire the
			// connection. (HEAD and 304 responses may carry both, as the
			// GET's framing.)
			h.close = true
		}
		return nil
	}
	if hasTE {
		// §6.3 rule 3: TE with CL is an attempt at smuggling or a broken
		// origin; a proxy must not forward it. HTTP/1.0 has no TE (§6.1).
		if hasCL {
			return fmt.Errorf("%w: both Transfer-Encoding and Content-Length", errFraming)
		}
		if h.protoMinor == 0 {
			return fmt.Errorf("%w: Transfer-Encoding in an HTTP/1.0 response", errFraming)
		}
		// Only "chunked", once, is accepted: any other coding would have to
		// be re-applied on the next hop, which HTTP/2 and HTTP/3 cannot do.
		if len(te) != 1 || !strings.EqualFold(strings.TrimSpace(te[0]), "chunked") {
			return fmt.Errorf("%w: Transfer-Encoding %q", errFraming, strings.Join(te, ", "))
		}
		h.bodyLength = lengthChunked
		return nil
	}
	if !hasCL {
		// §6.3 rule 8: read until the origin closes; the connection ends.
		h.bodyLength = lengthUntilEOF
		h.close = true
	}
	return nil
}

// checkBufferedChunk checks the first chunk of a chunked response as far
// as it arrived with the head: its chunk-size line and the CRLF after its
// data. An origin usually writes the head and the start of the content
// together, so broken chunked framing is found here, while the response
// can still become a 502 (RFC 9112 §7.1, §11.2), rather than later, when
// its header is on its way to the client and the only signal left is to
// cut the response short. The bytes stay buffered for the chunked reader,
// which checks every chunk with the same rules.
func checkBufferedChunk(br *bufio.Reader) error {
	buf, _ := br.Peek(br.Buffered())
	nl := bytes.IndexByte(buf, '\n')
	if nl < 0 {
		if len(buf) > maxChunkLineLen {
			return fmt.Errorf("%w: chunk line too long", errFraming)
		}
		return nil // the line is not all here; the chunked reader checks it
	}
	n, err := parseChunkLine(buf[:nl+1])
	if err != nil {
		return err
	}
	size := int(n)
	if size > 0 && len(buf) >= nl+1+size+2 && string(buf[nl+1+size:nl+1+size+2]) != "\r\n" {
		return fmt.Errorf("%w: chunk data not followed by CRLF", errFraming)
	}
	return nil
}

// parseContentLength accepts 1*DIGIT, and a list of identical values
// (RFC 9110 §8.6); anything else is framing in doubt.
func parseContentLength(vv []string) (int64, error) {
	n := int64(-1)
	for _, v := range vv {
		for part := range strings.SplitSeq(v, ",") {
			part = strings.TrimSpace(part)
			m, ok := parseDecimal(part)
			if !ok {
				return 0, fmt.Errorf("%w: Content-Length %q", errFraming, v)
			}
			if n >= 0 && m != n {
				return 0, fmt.Errorf("%w: conflicting Content-Length values", errFraming)
			}
			n = m
		}
	}
	return n, nil
}

// plainDecimal reports whether s is 1*DIGIT without leading zeros: the
// form strconv.FormatInt gives, so a value parsed from it needs no rewrite.
func plainDecimal(s string) bool {
	if s == "" || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseDecimal parses 1*DIGIT into a non-negative int64, refusing signs,
// spaces, other bases and overflow.
func parseDecimal(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// connectionHas reports whether the Connection field lists option
// (RFC 9110 §7.6.1; options are case-insensitive).
func connectionHas(h http.Header, option string) bool {
	for _, v := range h["Connection"] {
		for opt := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(opt), option) {
				return true
			}
		}
	}
	return false
}

// splitList splits a comma-separated field value into its non-empty,
// trimmed elements (RFC 9110 §5.6.1).
func splitList(v string) []string {
	var out []string
	for e := range strings.SplitSeq(v, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// parseKeepAlive reads "timeout=N, max=M" leniently: unknown parameters and
// bad values are ignored, since the hint only ever shortens reuse.
func parseKeepAlive(vv []string) keepAliveHint {
	var hint keepAliveHint
	for _, v := range vv {
		for param := range strings.SplitSeq(v, ",") {
			k, val, ok := strings.Cut(strings.TrimSpace(param), "=")
			if !ok {
				continue
			}
			n, ok := parseDecimal(strings.Trim(strings.TrimSpace(val), `"`))
			if !ok || n > 1<<31 {
				continue
			}
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "timeout":
				hint.timeout = time.Duration(n) * time.Second
			case "max":
				hint.max, hint.hasMax = int(n), true
			}
		}
	}
	return hint
}
