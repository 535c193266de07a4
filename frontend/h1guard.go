package frontend

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// The HTTP/1.x framing guard.
//
// net/http's server parses request framing leniently in ways a front proxy
// must not (RFC 9112 §6.1, §6.3, §11.2, "request smuggling"): with both
// Content-Length and Transfer-Encoding it reads the body as chunked, drops
// Content-Length and keeps the connection open, where §6.1 says the
// connection MUST be closed; it folds identical Content-Length fields into
// one; it ignores Transfer-Encoding in an HTTP/1.0 request, so a chunked
// body becomes the next request (§6.1: the framing is faulty, close); and
// it unfolds obs-fold lines. The guard is a net.Conn wrapper that sits
// under net/http on every HTTP/1.x client connection and tracks the
// request framing as the bytes go by: a head, then a body delimited by
// Content-Length or by the chunked coding (§7.1), then the next head. It
// is stricter than net/http everywhere, so the two never disagree about
// where a message ends.
//
// A head that arrives in one read (the usual case) is checked in the
// caller's buffer, before net/http sees any of it, and never copied. If it
// must be refused, net/http reads in its place a request it refuses itself:
// "BAD" (400 Bad Request) or one with an unknown transfer coding (501 Not
// Implemented, RFC 9112 §6.1); either way it answers with "Connection:
// close" and closes. A head that spans reads cannot wait whole in the
// guard (net/http arms its header timeout only once it has the first
// bytes), so those go out at once and the guard keeps a copy (the shadow);
// net/http does nothing with a head before its final empty line, which the
// guard hands out only once the whole head is checked. If it must be
// refused, net/http reads a NUL byte and an empty line instead of the rest,
// which it refuses with 400 wherever the bytes it holds stop (request
// line, field name or value). Either way nothing of a refused request
// reaches the handler, so nothing reaches an origin.
//
// A body's chunked framing is checked as it streams. When it goes wrong,
// the bytes before the error have already been handed out; in place of the
// rest net/http reads a run of NUL bytes, which its own chunked reader
// refuses wherever it stands (chunk size, extension, the CRLF after data,
// a trailer line). The request body then fails, the handler's upstream
// request is aborted before its end (the origin never gets a complete
// request; translate answers 400 for content that failed on the client's
// side), and net/http closes the connection after the response.
//
// Heads above the size limit are not the guard's business: past holdLimit
// it stops keeping a copy and stops inspecting, and net/http, which can
// never accept a head that large, answers 431 and closes.
//
// Upgrades: hoplite does not serve HTTP/1.1 Upgrade (the backend refuses
// 101), so a connection is never hijacked; a future upgrade must switch
// the guard to gPass once the 101 is sent.

// guardState is where the guard stands in the request stream.
type guardState uint8

const (
	gHead         guardState = iota // at or inside a request head
	gLength                         // inside a Content-Length body
	gChunkSize                      // chunk-size digits
	gChunkExt                       // chunk extensions, up to CR
	gChunkLF                        // the LF ending a chunk-size line
	gChunkData                      // chunk data
	gDataCR                         // the CR after chunk data
	gDataLF                         // the LF after chunk data
	gTrailerStart                   // start of a trailer line, or of the final CRLF
	gTrailerName                    // a trailer field name
	gTrailerValue                   // a trailer field value
	gTrailerLF                      // the LF ending a trailer line
	gTrailerEnd                     // the LF of the final CRLF
	gPass                           // not inspecting: bytes pass unchanged
	gRefused                        // a head was refused: the refusal, then EOF
	gJunk                           // a chunked body failed: junk from now on
)

// verdict is what scan found at the end of a segment.
type verdict uint8

const (
	vOK        verdict = iota // every byte may be handed out
	vOpen                     // the bytes from rel on are an incomplete head
	vRefuse                   // a head from rel on is refused (400)
	vRefuse501                // likewise, for its transfer coding (501)
	vJunk                     // the chunked body fails at rel
	// vRefuseShadowed: the refused head began in an earlier read, and
	// net/http has its first bytes already.
	vRefuseShadowed
)

const (
	// maxChunkLine bounds a chunk-size line with its extensions
	// (RFC 9112 §7.1.1 sets no limit; net/http refuses 4096 and more).
	maxChunkLine = 4096
	// maxChunkDigits: 15 hex digits are 2^60 bytes, more than anyone
	// sends; more are refused rather than risk overflow (RFC 9112 §7.1:
	// "anticipate potentially large hexadecimal numerals and prevent
	// parsing errors due to integer conversion overflows").
	maxChunkDigits = 15
	// maxLengthDigits keeps a Content-Length within int64.
	maxLengthDigits = 18
	// maxJunk bounds the junk handed out after a failed chunked body;
	// net/http stops reading at the first junk byte it meets.
	maxJunk = 1 << 20
)

// The requests net/http reads in place of a refused one. net/http answers
// the first with 400 and the second with 501, both with "Connection:
// close", and closes (server.go, conn.serve).
var (
	refusal400 = []byte("BAD\r\n\r\n")
	refusal501 = []byte("POST / HTTP/1.1\r\nHost: refused\r\nTransfer-Encoding: x-refused\r\n\r\n")
	// headJunk ends a refused head whose first bytes net/http already
	// has: a NUL, then an empty line. net/http refuses it with 400 wherever
	// the bytes it holds stop (request line, field name, field value:
	// the request-line parser and textproto refuse NUL everywhere).
	headJunk = []byte("\x00\r\n\r\n")
	// bodyJunk replaces the rest of a chunked body that failed: NUL bytes
	// are invalid in a chunk size, in the CRLF after data and in a trailer
	// line, and a line longer than net/http's limit ends a chunk
	// extension.
	bodyJunk = func() []byte {
		b := make([]byte, maxChunkLine+8)
		b[len(b)-2], b[len(b)-1] = '\r', '\n'
		return b
	}()
)

// h1Guard is the guarded connection: reads go through the framing
// tracker; everything else is the wrapped connection's.
type h1Guard struct {
	net.Conn
	holdLimit int

	state guardState
	out   []byte // a refusal, handed out before anything else
	junk  int    // junk bytes handed out

	// shadow is a copy of a head that did not arrive in one read: its
	// first bytes were handed out already (net/http must see them to arm
	// its header timeout), the rest is handed out once the head is
	// complete and valid.
	shadow []byte

	// The head being received: how many of its bytes were searched for
	// its end, and where its current line starts (offsets into the head).
	headSeen  int
	lineStart int

	remaining  int64 // Content-Length bytes left, or chunk data bytes left
	chunkLine  int   // bytes of the current chunk-size line
	digits     int   // hex digits of the current chunk size
	trailerLen int   // bytes of the trailer section so far

}

// h1GuardTLS is the guard on a TLS connection. net/http fills
// Request.TLS from ConnectionState when the connection is not a *tls.Conn
// itself (server.go, connectionStater).
type h1GuardTLS struct {
	h1Guard
	tc *tls.Conn
}

func (g *h1GuardTLS) ConnectionState() tls.ConnectionState { return g.tc.ConnectionState() }

// holdLimitFor is how many head bytes the guard holds back before it gives
// up: more than net/http can ever accept, its MaxHeaderBytes plus 4096
// (Server.initialReadLimitSize) plus one bufio buffer read ahead.
func holdLimitFor(maxHeaderBytes int) int {
	if maxHeaderBytes <= 0 {
		maxHeaderBytes = http.DefaultMaxHeaderBytes
	}
	return maxHeaderBytes + 2*4096 + 1
}

// newH1Guard wraps an HTTP/1.x client connection.
func newH1Guard(c net.Conn, maxHeaderBytes int) net.Conn {
	if tc, ok := c.(*tls.Conn); ok {
		g := &h1GuardTLS{tc: tc}
		g.Conn, g.holdLimit = c, holdLimitFor(maxHeaderBytes)
		return g
	}
	return &h1Guard{Conn: c, holdLimit: holdLimitFor(maxHeaderBytes)}
}

// Read hands out the client's bytes as far as they are known good.
func (g *h1Guard) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if len(g.out) > 0 {
			n := copy(p, g.out)
			g.out = g.out[n:]
			return n, nil
		}
		switch g.state {
		case gPass:
			return g.Conn.Read(p)
		case gRefused:
			return 0, io.EOF
		case gJunk:
			if g.junk >= maxJunk {
				return 0, io.EOF
			}
			n := copy(p, bodyJunk)
			g.junk += n
			return n, nil
		}
		n, err := g.Conn.Read(p)
		if n == 0 {
			return 0, err
		}
		var rel int
		var v verdict
		if len(g.shadow) > 0 {
			rel, v = g.scanShadowed(p[:n])
		} else {
			rel, v = g.scan(p[:n], 0)
			if v == vOpen {
				// The head goes on in a later read: net/http gets its
				// first bytes now, the guard keeps a copy to check it
				// whole.
				g.shadow = append(g.shadow[:0], p[rel:n]...)
				rel = n
			}
		}
		switch v {
		case vOK, vOpen:
			return rel, err
		case vRefuse:
			g.out = refusal400
		case vRefuse501:
			g.out = refusal501
		case vRefuseShadowed:
			g.out = headJunk
		}
		// What precedes the refused head or the framing error; then the
		// refusal or the junk.
		if rel > 0 {
			return rel, nil
		}
	}
}

// scanShadowed scans seg, fresh bytes that continue the head in shadow,
// and returns how many of them may be handed out.
func (g *h1Guard) scanShadowed(seg []byte) (int, verdict) {
	if len(g.shadow)+len(seg) > g.holdLimit {
		// Larger than net/http accepts: it answers 431 and closes.
		g.shadow, g.state = nil, gPass
		return len(seg), vOK
	}
	prior := len(g.shadow)
	g.shadow = append(g.shadow, seg...)
	rel, v := g.scan(g.shadow, g.headSeen)
	switch {
	case v == vOK:
		g.shadow = g.shadow[:0]
		return len(seg), vOK
	case v == vOpen:
		// A head still open, the same or a later one: shadow it from
		// its start.
		g.shadow = g.shadow[:copy(g.shadow, g.shadow[rel:])]
		return len(seg), vOpen
	case rel < prior:
		// The refused head is the shadowed one, and net/http has its
		// first bytes: see headJunk.
		g.shadow = nil
		g.state = gRefused
		return 0, vRefuseShadowed
	}
	// The shadowed head was good; the trouble comes after it, in seg.
	g.shadow = nil
	return rel - prior, v
}

// scan follows the framing through seg. resume is how much of a head at
// the start of seg was searched before (a held head); it is zero for
// fresh bytes. It returns how many bytes of seg may be handed out and what
// comes after them.
func (g *h1Guard) scan(seg []byte, resume int) (int, verdict) {
	i := 0
	if g.state == gHead {
		g.headSeen = resume
	}
	for i < len(seg) {
		switch g.state {
		case gHead:
			end, found := g.findHeadEnd(seg[i:])
			if !found {
				return i, vOpen
			}
			if v := g.checkHead(seg[i : i+end]); v != vOK {
				g.state = gRefused
				return i, v
			}
			i += end
			g.headSeen, g.lineStart = 0, 0
		case gLength, gChunkData:
			k := int64(len(seg) - i)
			if k > g.remaining {
				k = g.remaining
			}
			i += int(k)
			g.remaining -= k
			if g.remaining == 0 {
				if g.state == gLength {
					g.state = gHead
				} else {
					g.state = gDataCR
				}
			}
		default:
			if !g.chunkByte(seg[i]) {
				g.state = gJunk
				return i, vJunk
			}
			i++
		}
	}
	return len(seg), vOK
}

// findHeadEnd looks for the empty line ending the head that starts at
// h[0], from g.headSeen on, and returns the length of the head through
// that line. Lines end with LF, CRLF being CR LF (RFC 9112 §2.2 lets a
// recipient accept a bare LF here, and net/http does). An empty first
// line also "ends" a head: checkHead refuses it.
func (g *h1Guard) findHeadEnd(h []byte) (int, bool) {
	for {
		j := indexLF(h, g.headSeen)
		if j < 0 {
			g.headSeen = len(h)
			return 0, false
		}
		g.headSeen = j + 1
		n := j - g.lineStart
		if n == 0 || n == 1 && h[j-1] == '\r' {
			return j + 1, true
		}
		g.lineStart = j + 1
	}
}

func indexLF(b []byte, from int) int {
	if i := bytes.IndexByte(b[from:], '\n'); i >= 0 {
		return from + i
	}
	return -1
}

// checkHead checks a complete request head, from its request line through
// the empty line, and sets the body state it announces.
func (g *h1Guard) checkHead(h []byte) verdict {
	line, rest := cutLine(h)
	if len(line) == 0 || hasCR(line) {
		// An empty request line, or a bare CR (RFC 9112 §2.2).
		return vRefuse
	}
	http10 := len(line) >= 9 && string(line[len(line)-9:]) == " HTTP/1.0"
	var (
		hasCL, hasTE bool
		length       int64
		te           verdict
	)
	for {
		line, rest = cutLine(rest)
		if len(line) == 0 {
			break
		}
		if hasCR(line) {
			return vRefuse // RFC 9112 §2.2: a bare CR is invalid
		}
		if line[0] == ' ' || line[0] == '\t' {
			// RFC 9112 §5.2: obs-fold (or, on the first field line,
			// whitespace after the start line, §2.2) is refused rather
			// than unfolded.
			return vRefuse
		}
		colon := -1
		for k, c := range line {
			if c == ':' {
				colon = k
				break
			}
			if !httpguts.IsTokenRune(rune(c)) {
				// RFC 9110 §5.1, RFC 9112 §5.1: a field name is a token,
				// with no whitespace before the colon.
				return vRefuse
			}
		}
		if colon <= 0 {
			return vRefuse
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		for _, c := range value {
			if isCTL[c] {
				return vRefuse // RFC 9110 §5.5: CTLs, NUL above all
			}
		}
		switch {
		case len(name) == 14 && asciiEqualFold(name, "content-length"):
			// RFC 9112 §6.3 rule 5, RFC 9110 §8.6: one value, 1*DIGIT.
			// Repeated fields and lists, even of equal values, are refused.
			if hasCL {
				return vRefuse
			}
			hasCL = true
			n, ok := parseLength(value)
			if !ok {
				return vRefuse
			}
			length = n
		case len(name) == 17 && asciiEqualFold(name, "transfer-encoding"):
			if hasTE {
				return vRefuse // two field lines: refused, not combined
			}
			hasTE = true
			te = checkTransferEncoding(value)
		}
	}
	switch {
	case hasTE && hasCL:
		// RFC 9112 §6.1: "a server MAY reject a request that contains both
		// Content-Length and Transfer-Encoding ... Regardless, the server
		// MUST close the connection after responding".
		return vRefuse
	case hasTE && http10:
		// RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means
		// faulty framing; the connection must be closed.
		return vRefuse
	case hasTE && te != vOK:
		return te
	case hasTE:
		g.state, g.remaining, g.chunkLine, g.digits = gChunkSize, 0, 0, 0
	case length > 0:
		g.state, g.remaining = gLength, length
	}
	return vOK
}

// checkTransferEncoding accepts exactly "chunked" (any case). RFC 9112
// §6.3 rule 4: chunked must be the final coding, else 400; §6.1: chunked
// at most once, and a coding the server does not understand is 501. Any
// other syntax is 400.
func checkTransferEncoding(v []byte) verdict {
	if asciiEqualFold(v, "chunked") {
		return vOK
	}
	chunked, last := 0, false
	for len(v) > 0 {
		var elem []byte
		if k := indexByte(v, ','); k >= 0 {
			elem, v = trimOWS(v[:k]), v[k+1:]
		} else {
			elem, v = trimOWS(v), nil
		}
		if len(elem) == 0 {
			return vRefuse
		}
		for _, c := range elem {
			if !httpguts.IsTokenRune(rune(c)) {
				return vRefuse // quotes, parameters, junk: not a plain coding
			}
		}
		last = asciiEqualFold(elem, "chunked")
		if last {
			chunked++
		}
	}
	if chunked != 1 || !last {
		return vRefuse
	}
	return vRefuse501
}

// chunkByte follows one byte of chunked framing outside chunk data
// (RFC 9112 §7.1): chunk-size [ chunk-ext ] CRLF, chunk-data CRLF, and
// after the last chunk the trailer section and CRLF. It is stricter than
// net/http: no whitespace after the size, no bare LF or CR anywhere, no
// CTLs in extensions, trailer lines checked like field lines.
func (g *h1Guard) chunkByte(c byte) bool {
	switch g.state {
	case gChunkSize:
		g.chunkLine++
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
			g.digits++
			if g.digits > maxChunkDigits {
				return false
			}
			g.remaining = g.remaining<<4 | int64(unhex(c))
		case c == ';' && g.digits > 0:
			g.state = gChunkExt
		case c == '\r' && g.digits > 0:
			g.state = gChunkLF
		default:
			return false
		}
	case gChunkExt:
		g.chunkLine++
		switch {
		case c == '\r':
			g.state = gChunkLF
		case c < ' ' && c != '\t' || c == 0x7f || g.chunkLine >= maxChunkLine:
			return false
		}
	case gChunkLF:
		if c != '\n' {
			return false
		}
		g.chunkLine, g.digits = 0, 0
		if g.remaining == 0 {
			g.state, g.trailerLen = gTrailerStart, 0
		} else {
			g.state = gChunkData
		}
	case gDataCR:
		if c != '\r' {
			return false
		}
		g.state = gDataLF
	case gDataLF:
		if c != '\n' {
			return false
		}
		g.state = gChunkSize
	default: // the trailer section (RFC 9112 §7.1.2)
		g.trailerLen++
		if g.trailerLen > g.holdLimit {
			return false
		}
		switch g.state {
		case gTrailerStart:
			switch {
			case c == '\r':
				g.state = gTrailerEnd
			case httpguts.IsTokenRune(rune(c)):
				g.state = gTrailerName
			default:
				return false // obs-fold, bare LF, empty name
			}
		case gTrailerName:
			switch {
			case c == ':':
				g.state = gTrailerValue
			case !httpguts.IsTokenRune(rune(c)):
				return false
			}
		case gTrailerValue:
			switch {
			case c == '\r':
				g.state = gTrailerLF
			case c < ' ' && c != '\t' || c == 0x7f:
				return false
			}
		case gTrailerLF:
			if c != '\n' {
				return false
			}
			g.state = gTrailerStart
		case gTrailerEnd:
			if c != '\n' {
				return false
			}
			g.state = gHead // the message is complete
		}
	}
	return true
}

// parseLength parses 1*DIGIT (RFC 9110 §8.6): no sign, no base prefix, no
// separators, no inner whitespace.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > maxLengthDigits {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// cutLine returns the line at the start of b without its LF or CRLF, and
// what follows.
func cutLine(b []byte) (line, rest []byte) {
	j := indexByte(b, '\n')
	if j < 0 {
		return b, nil
	}
	line, rest = b[:j], b[j+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

func hasCR(b []byte) bool { return indexByte(b, '\r') >= 0 }

func indexByte(b []byte, c byte) int { return bytes.IndexByte(b, c) }

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

// asciiEqualFold compares b with the lower-case ASCII string s.
func asciiEqualFold(b []byte, s string) bool {
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

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// isCTL holds the bytes a field value must not contain: CTLs but HTAB,
// and DEL (RFC 9110 §5.5, field-vchar).
var isCTL = func() (t [256]bool) {
	for c := 0; c < ' '; c++ {
		t[c] = c != '\t'
	}
	t[0x7f] = true
	return t
}()

// The TLS listener.
//
// net/http serves a *tls.Conn itself and reads it directly: the guard can
// only sit under net/http if net/http gets the guard instead, and then it
// no longer sees a *tls.Conn, so it neither completes the handshake nor
// dispatches on ALPN. serveTLS does both: it completes each handshake
// (bounded as net/http bounds it), hands HTTP/1.x connections (ALPN
// http/1.1 or none) to the server wrapped in the guard, and every other
// protocol (h2, acme-tls/1) as the *tls.Conn it is, for net/http to
// dispatch through TLSNextProto exactly as before. Both kinds go through
// listeners of their own that the server tracks, so Shutdown and Close
// reach every connection, and closing either listener closes the TCP
// listener.

// serveTLS serves ln, a TLS listener, with hs until ln is closed or hs
// shuts down. maxHeaderBytes is hs's MaxHeaderBytes (the guard's limit).
func serveTLS(hs *http.Server, ln net.Listener, maxHeaderBytes int) error {
	q := &connQueues{inner: ln, done: make(chan struct{})}
	q.h1 = queueListener{q: q, ch: make(chan net.Conn)}
	q.other = queueListener{q: q, ch: make(chan net.Conn)}
	errc := make(chan error, 2)
	go func() { errc <- hs.Serve(&q.h1) }()
	go func() { errc <- hs.Serve(&q.other) }()
	acceptErr := q.acceptLoop(hs, maxHeaderBytes)
	err1, err2 := <-errc, <-errc
	switch {
	case errors.Is(err1, http.ErrServerClosed) || errors.Is(err2, http.ErrServerClosed):
		return http.ErrServerClosed
	case acceptErr != nil:
		return acceptErr
	}
	return err1
}

type connQueues struct {
	inner     net.Listener
	h1, other queueListener
	done      chan struct{}
	once      sync.Once
}

func (q *connQueues) close() {
	q.once.Do(func() {
		close(q.done)
		q.inner.Close()
	})
}

// acceptLoop accepts TLS connections and completes their handshakes on
// goroutines of their own, until the listener fails or is closed.
func (q *connQueues) acceptLoop(hs *http.Server, maxHeaderBytes int) error {
	var delay time.Duration
	for {
		c, err := q.inner.Accept()
		if err != nil {
			select {
			case <-q.done:
				return nil
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				q.close()
				return err
			}
			// Like net/http for temporary errors (EMFILE and the like):
			// back off and try again, rather than stop serving.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			if hs.ErrorLog != nil {
				hs.ErrorLog.Printf("http: Accept error: %v; retrying in %v", err, delay)
			}
			time.Sleep(delay)
			continue
		}
		delay = 0
		go q.dispatch(hs, c, maxHeaderBytes)
	}
}

// dispatch completes the handshake of c as net/http would (server.go
// conn.serve) and queues it for the server.
func (q *connQueues) dispatch(hs *http.Server, c net.Conn, maxHeaderBytes int) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		q.deliver(&q.h1, newH1Guard(c, maxHeaderBytes))
		return
	}
	timeout := handshakeTimeout(hs)
	if timeout > 0 {
		tc.SetDeadline(time.Now().Add(timeout))
	}
	// Bounded by the deadline; net/http's own call has no other bound
	// either (its context ends only with the connection).
	err := tc.Handshake()
	if err != nil {
		reason := err.Error()
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
			re.Conn.Close()
			reason = "client sent an HTTP request to an HTTPS server"
		}
		if hs.ErrorLog != nil {
			hs.ErrorLog.Printf("http: TLS handshake error from %s: %v", c.RemoteAddr(), reason)
		}
		c.Close()
		return
	}
	if timeout > 0 {
		tc.SetDeadline(time.Time{})
	}
	switch tc.ConnectionState().NegotiatedProtocol {
	case "", "http/1.1", "http/1.0": // net/http's own HTTP/1.x (validNextProto)
		q.deliver(&q.h1, newH1Guard(tc, maxHeaderBytes))
	default:
		q.deliver(&q.other, tc)
	}
}

func (q *connQueues) deliver(l *queueListener, c net.Conn) {
	select {
	case l.ch <- c:
	case <-q.done:
		c.Close()
	}
}

// handshakeTimeout is net/http's Server.tlsHandshakeTimeout: the smallest
// positive of ReadHeaderTimeout, ReadTimeout and WriteTimeout.
func handshakeTimeout(hs *http.Server) time.Duration {
	var d time.Duration
	for _, t := range []time.Duration{hs.ReadHeaderTimeout, hs.ReadTimeout, hs.WriteTimeout} {
		if t > 0 && (d == 0 || t < d) {
			d = t
		}
	}
	return d
}

// looksLikeHTTP is net/http's tlsRecordHeaderLooksLikeHTTP.
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// queueListener is one of the two listeners serveTLS hands connections
// to the server through.
type queueListener struct {
	q  *connQueues
	ch chan net.Conn
}

func (l *queueListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.q.done:
		return nil, net.ErrClosed
	}
}

func (l *queueListener) Close() error {
	l.q.close()
	return nil
}

func (l *queueListener) Addr() net.Addr { return l.q.inner.Addr() }

// guardListener wraps every connection of a plain-HTTP listener in the
// guard.
type guardListener struct {
	net.Listener
	maxHeaderBytes int
}

func (l guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newH1Guard(c, l.maxHeaderBytes), nil
}
