package interop

// Request smuggling and framing (issue 6), against the real binary.
//
// Downstream: every malformed HTTP/1.x message is refused with 400 (501
// for an unknown transfer coding) and the connection closed, and nothing
// of it reaches the origin: the origin here is a raw socket that records
// every byte it receives, so "nothing" means no request line, not a byte.
// A message whose head is valid but whose chunked body breaks reaches the
// origin only as an incomplete request on a connection that is then
// closed. HTTP/2 and HTTP/3 requests with malformed fields, or whose
// content disagrees with their content-length, are refused (a stream error
// or 400) and never reach the origin complete.
//
// Upstream: responses without content that are followed by content (204,
// 304, HEAD) retire the connection, and the next request gets its own
// answer on a new one; responses with framing in doubt are 502 and their
// connection is closed.
//
// docs/smuggling.md maps every case to its test.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/qpack"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// smugOrigin is a raw-socket origin that records everything it receives:
// each request read strictly (readRecordedRequest), complete or not, and
// the bytes of every connection. It answers complete requests by path
// (smugResponses), and otherwise with 200 and a body naming the connection
// and the request.
type smugOrigin struct {
	t  *testing.T
	ln net.Listener
	wg sync.WaitGroup

	accepted atomic.Int64
	closes   atomic.Int64 // connections the proxy closed

	mu    sync.Mutex
	conns map[net.Conn]bool
	reqs  []smugRecord // guarded by mu
	bytes int64        // guarded by mu: bytes received on all connections
}

type smugRecord struct {
	conn     int64
	target   string
	complete bool
	payload  string
	err      error
}

func (r smugRecord) String() string {
	if r.complete {
		return fmt.Sprintf("conn %d: complete %s payload %q", r.conn, r.target, r.payload)
	}
	return fmt.Sprintf("conn %d: INCOMPLETE %s: %v", r.conn, r.target, r.err)
}

// desync is what an origin that sends content where none can be puts
// after the head: read as the next response, it answers someone else's
// request.
const desync = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil"

// smugResponses are the scripted answers, by request target. After each,
// the origin reads on: a connection the proxy closes shows as a close.
var smugResponses = map[string]string{
	"/u/204-then-bytes":     "HTTP/1.1 204 No Content\r\n\r\n" + desync,
	"/u/204-cl-late":        "HTTP/1.1 204 No Content\r\nContent-Length: 43\r\n\r\n" + "\x00late" + desync,
	"/u/304-then-bytes":     "HTTP/1.1 304 Not Modified\r\nContent-Length: 43\r\n\r\n" + desync,
	"/u/head-then-bytes":    "HTTP/1.1 200 OK\r\nContent-Length: 43\r\n\r\n" + desync,
	"/u/cl-and-te":          "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	"/u/cl-duplicate":       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
	"/u/cl-conflicting":     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
	"/u/cl-plus":            "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
	"/u/te-gzip":            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok",
	"/u/te-http10":          "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	"/u/chunk-size-0x":      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nok\r\n0\r\n\r\n",
	"/u/chunk-bare-lf":      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n",
	"/u/chunk-missing-crlf": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXY0\r\n\r\n",
	"/u/bare-cr":            "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok",
	"/u/space-before-colon": "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
}

func startSmugOrigin(t *testing.T) *smugOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &smugOrigin{t: t, ln: ln, conns: map[net.Conn]bool{}}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := o.accepted.Add(1)
			o.mu.Lock()
			o.conns[c] = true
			o.mu.Unlock()
			o.wg.Add(1)
			go o.serve(c, n)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		o.mu.Lock()
		for c := range o.conns {
			c.Close()
		}
		o.mu.Unlock()
		o.wg.Wait()
	})
	return o
}

func (o *smugOrigin) addr() string { return o.ln.Addr().String() }

// countingReader counts the bytes the origin receives.
type countingReader struct {
	o *smugOrigin
	c net.Conn
}

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.c.Read(p)
	r.o.mu.Lock()
	r.o.bytes += int64(n)
	r.o.mu.Unlock()
	return n, err
}

func (o *smugOrigin) serve(c net.Conn, connNo int64) {
	defer o.wg.Done()
	defer func() {
		c.Close()
		o.mu.Lock()
		delete(o.conns, c)
		o.mu.Unlock()
	}()
	br := bufio.NewReader(countingReader{o, c})
	for reqNo := 1; ; reqNo++ {
		rec, err := readRecordedRequest(br)
		if err != nil && rec.Head == nil {
			if errors.Is(err, io.EOF) {
				o.closes.Add(1)
			}
			return
		}
		_, target, _ := strings.Cut(rec.requestLine(), " ")
		target, _, _ = strings.Cut(target, " ")
		o.mu.Lock()
		o.reqs = append(o.reqs, smugRecord{conn: connNo, target: target, complete: err == nil, payload: string(rec.Payload), err: err})
		o.mu.Unlock()
		if err != nil {
			return // an incomplete request: the proxy cut it short
		}
		resp, ok := smugResponses[target]
		if !ok {
			body := fmt.Sprintf("conn=%d req=%d %s %s payload=%q", connNo, reqNo, rec.Method, target, rec.Payload)
			resp = fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		}
		if late, ok := strings.CutPrefix(resp, "HTTP/1.1 204 No Content\r\nContent-Length: 43\r\n\r\n\x00late"); ok {
			// The content of a 204 that announces some, sent after a
			// pause: by then the proxy may have sent the next request.
			io.WriteString(c, "HTTP/1.1 204 No Content\r\nContent-Length: 43\r\n\r\n")
			time.Sleep(300 * time.Millisecond)
			resp = late
		}
		if _, err := io.WriteString(c, resp); err != nil {
			return
		}
	}
}

// records returns what the origin received so far.
func (o *smugOrigin) records() []smugRecord {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]smugRecord(nil), o.reqs...)
}

// receivedFor returns the records whose target starts with prefix.
func (o *smugOrigin) receivedFor(prefix string) []smugRecord {
	var out []smugRecord
	for _, r := range o.records() {
		if strings.HasPrefix(r.target, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// The outcomes of a malformed HTTP/1.x message.
const (
	refuse400 = "400"
	refuse501 = "501"
	// bodyBroken: the head was valid and went on its way; the chunked
	// body broke. The client gets 400 and the connection closes; the
	// origin never gets a complete request.
	bodyBroken = "body"
)

const smugPost = "POST %s HTTP/1.1\r\nHost: localhost\r\n"

// smugH1Cases: the HTTP/1.1 list. %s is the request target, unique
// per case. docs/smuggling.md has the RFC sections.
var smugH1Cases = []struct{ name, req, want string }{
	{"cl-and-te", smugPost + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", refuse400},
	{"cl-duplicate-identical", smugPost + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", refuse400},
	{"cl-conflicting", smugPost + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", refuse400},
	{"cl-list-identical", smugPost + "Content-Length: 5, 5\r\n\r\nhello", refuse400},
	{"cl-plus", smugPost + "Content-Length: +1\r\n\r\nx", refuse400},
	{"cl-hex", smugPost + "Content-Length: 0x10\r\n\r\n0123456789abcdef", refuse400},
	{"cl-underscore", smugPost + "Content-Length: 1_0\r\n\r\n0123456789", refuse400},
	{"cl-empty", smugPost + "Content-Length: \r\n\r\n", refuse400},
	{"cl-inner-space", smugPost + "Content-Length: 1 0\r\n\r\n0123456789", refuse400},
	{"cl-vtab-prefix", smugPost + "Content-Length: \x0b1\r\n\r\nx", refuse400},
	{"cl-negative", smugPost + "Content-Length: -1\r\n\r\n", refuse400},
	{"te-chunked-chunked", smugPost + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", refuse400},
	{"te-gzip", smugPost + "Transfer-Encoding: gzip\r\n\r\n", refuse400},
	{"te-gzip-chunked", smugPost + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", refuse501},
	{"te-space-before-colon", smugPost + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", refuse400},
	{"te-line-tab-prefix-obs-fold", smugPost + "X: y\r\n\tTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", refuse400},
	{"te-first-line-space-prefix", smugPost + " Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", refuse400},
	{"te-vtab-prefix", smugPost + "Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n", refuse400},
	{"te-quoted", smugPost + "Transfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n", refuse400},
	{"te-xchunked", smugPost + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", refuse400},
	{"te-trailing-junk", smugPost + "Transfer-Encoding: chunked x\r\n\r\n0\r\n\r\n", refuse400},
	{"te-two-lines", smugPost + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", refuse400},
	{"te-http10", "POST %s HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"GET /smug/smuggled-after-http10 HTTP/1.0\r\nHost: localhost\r\n\r\n", refuse400},
	{"bare-cr-in-value", "GET %s HTTP/1.1\r\nHost: localhost\r\nX-A: a\rb\r\n\r\n", refuse400},
	{"bare-cr-end-of-line", "GET %s HTTP/1.1\r\nHost: localhost\r\nX-A: a\r\r\n\r\n", refuse400},
	{"bare-cr-request-line", "GET %s\r HTTP/1.1\r\nHost: localhost\r\n\r\n", refuse400},
	{"obs-fold", "GET %s HTTP/1.1\r\nHost: localhost\r\nX-A: a\r\n b\r\n\r\n", refuse400},
	{"nul-in-name", "GET %s HTTP/1.1\r\nHost: localhost\r\nX\x00A: b\r\n\r\n", refuse400},
	{"non-token-name", "GET %s HTTP/1.1\r\nHost: localhost\r\nX(A): b\r\n\r\n", refuse400},
	{"space-before-colon", "GET %s HTTP/1.1\r\nHost: localhost\r\nX-A : b\r\n\r\n", refuse400},
	{"chunk-bare-lf-size-line", smugPost + "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", bodyBroken},
	{"chunk-bare-lf-after-data", smugPost + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", bodyBroken},
	{"chunk-size-0x", smugPost + "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", bodyBroken},
	{"chunk-size-negative", smugPost + "Transfer-Encoding: chunked\r\n\r\n-1\r\nhello\r\n0\r\n\r\n", bodyBroken},
	{"chunk-size-space-semicolon", smugPost + "Transfer-Encoding: chunked\r\n\r\n1 ;\r\nx\r\n0\r\n\r\n", bodyBroken},
	{"chunk-size-overflow", smugPost + "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n", bodyBroken},
	{"chunk-missing-crlf-after-data", smugPost + "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXY0\r\n\r\n", bodyBroken},
	{"chunk-ext-oversized", smugPost + "Transfer-Encoding: chunked\r\n\r\n5;" + strings.Repeat("e", 5000) + "\r\nhello\r\n0\r\n\r\n", bodyBroken},
	{"chunk-ext-ctl", smugPost + "Transfer-Encoding: chunked\r\n\r\n5;a\x01b\r\nhello\r\n0\r\n\r\n", bodyBroken},
	{"trailer-obs-fold", smugPost + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n", bodyBroken},
}

// rawExchange writes raw on a new HTTP/1.1 TLS connection and returns the
// status of the first response and whether the connection closed after it.
func rawExchange(t *testing.T, h *instance, raw string) (status int, closed bool, detail string) {
	return rawExchangeWait(t, h, raw, 3*time.Second)
}

// rawExchangeWait is rawExchange waiting at most wait for the close.
func rawExchangeWait(t *testing.T, h *instance, raw string, wait time.Duration) (status int, closed bool, detail string) {
	t.Helper()
	c := dialRawH1(t, h)
	c.conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c.conn, raw); err != nil {
		t.Fatalf("writing: %v", err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, false, fmt.Sprintf("no response: %v", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	closed, why := c.closedWithin(wait)
	return resp.StatusCode, closed, fmt.Sprintf("body %q %s", body, why)
}

// TestSmugglingH1Client sends every malformed HTTP/1.1 message of the
// issue on a connection of its own.
func TestSmugglingH1Client(t *testing.T) {
	t.Parallel()
	o := startSmugOrigin(t)
	h := startHoplite(t, singleBackend(o.addr()), newPKI(t))

	for _, tc := range smugH1Cases {
		t.Run(tc.name, func(t *testing.T) {
			target := "/smug/" + tc.name
			status, closed, detail := rawExchange(t, h, fmt.Sprintf(tc.req, target))
			switch tc.want {
			case refuse400, refuse501:
				if strconv.Itoa(status) != tc.want || !closed {
					t.Errorf("status %d, closed %t (%s); want %s and the connection closed", status, closed, detail, tc.want)
				}
			case bodyBroken:
				// The head went upstream; the content failed on the way
				// (the guard refused the chunked coding), so the upstream
				// request failed because of the client: 400.
				if status != 400 || !closed {
					t.Errorf("status %d, closed %t (%s); want 400 and the connection closed", status, closed, detail)
				}
			}
			t.Logf("status %d, closed %t", status, closed)
		})
	}
	// Nothing of a refused head reaches the origin, not a byte; of a
	// broken body, never a complete request. Give the proxy a moment to
	// send anything it would.
	time.Sleep(time.Second)
	for _, tc := range smugH1Cases {
		target := "/smug/" + tc.name
		for _, r := range o.receivedFor(target) {
			switch {
			case r.complete:
				t.Errorf("%s: the origin received a complete request: %v", tc.name, r)
			case tc.want != bodyBroken:
				t.Errorf("%s: bytes of a refused request reached the origin: %v", tc.name, r)
			default:
				t.Logf("%s: the origin got an incomplete request, then its connection closed: %v", tc.name, r)
			}
		}
	}
	if recs := o.receivedFor("/smug/smuggled"); len(recs) > 0 {
		t.Errorf("the request smuggled after Transfer-Encoding in HTTP/1.0 reached the origin: %v", recs)
	}
	// hoplite still serves.
	c := dialRawH1(t, h)
	if r := c.do("GET", "/after", "HTTP/1.1"); r.StatusCode != 200 {
		t.Errorf("GET after the cases: %d", r.StatusCode)
	}
}

// TestSmugglingH1ClientValid: the look-alikes that are valid HTTP/1.1 are
// served, and the origin gets them framed correctly (RFC 9110 §5.6.3: OWS
// is SP or HTAB and not part of a value).
func TestSmugglingH1ClientValid(t *testing.T) {
	t.Parallel()
	o := startSmugOrigin(t)
	h := startHoplite(t, singleBackend(o.addr()), newPKI(t))
	cases := []struct{ name, req, payload string }{
		{"te-tab-ows", smugPost + "Transfer-Encoding:\tchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "hello"},
		{"cl-ows", smugPost + "Content-Length: \t 5 \r\n\r\nhello", "hello"},
		{"chunked-ext-trailer", smugPost + "Transfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", "hello"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			target := "/valid/" + tc.name
			status, closed, detail := rawExchangeWait(t, h, fmt.Sprintf(tc.req, target), 500*time.Millisecond)
			if status != 200 || closed {
				t.Fatalf("status %d, closed %t (%s); want 200 on a persistent connection", status, closed, detail)
			}
			recs := o.receivedFor(target)
			if len(recs) != 1 || !recs[0].complete || recs[0].payload != tc.payload {
				t.Fatalf("origin got %v, want one complete request with payload %q", recs, tc.payload)
			}
		})
	}
}

// TestSmugglingH1Pipelining: pipelined requests of every framing reach the
// origin in order with their payloads; a malformed one after them is
// refused after their responses, and the request behind it never reaches
// the origin.
func TestSmugglingH1Pipelining(t *testing.T) {
	t.Parallel()
	o := startSmugOrigin(t)
	h := startHoplite(t, singleBackend(o.addr()), newPKI(t))
	stream := "GET /pipe/1 HTTP/1.1\r\nHost: localhost\r\n\r\n" +
		"POST /pipe/2 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /pipe/3 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n" +
		"GET /pipe/4 HTTP/1.1\r\nHost: localhost\r\n\r\n" +
		"POST /pipe/5 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
		"GET /pipe/6-never HTTP/1.1\r\nHost: localhost\r\n\r\n"
	c := dialRawH1(t, h)
	c.conn.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c.conn, stream)
	var statuses []int
	for {
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			break
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
	}
	if want := "[200 200 200 200 400]"; fmt.Sprint(statuses) != want {
		t.Errorf("statuses %v, want %s", statuses, want)
	}
	var got []string
	for _, r := range o.receivedFor("/pipe/") {
		got = append(got, fmt.Sprintf("%s %q %t", r.target, r.payload, r.complete))
	}
	want := []string{`/pipe/1 "" true`, `/pipe/2 "hello" true`, `/pipe/3 "abcde" true`, `/pipe/4 "" true`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("origin received\n%q\nwant\n%q", got, want)
	}
}

// TestSmugglingPlainListener: the plain-HTTP listener (redirects, ACME
// HTTP-01) has the same guard: without it net/http would answer these
// with a redirect on a connection kept open.
func TestSmugglingPlainListener(t *testing.T) {
	t.Parallel()
	o := startSmugOrigin(t)
	cfg := singleBackend(o.addr())
	cfg.PlainListen = freeAddr(t)
	h := startHoplite(t, cfg, newPKI(t))
	waitTCP(t, h.proc, cfg.PlainListen)
	for _, tc := range []struct{ name, req string }{
		{"cl-and-te", "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"cl-duplicate-identical", "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"},
		{"te-http10", "POST / HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\nGET /x HTTP/1.0\r\n\r\n"},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: localhost\r\nX-A: a\r\n b\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", cfg.PlainListen, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, tc.req)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no response: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			_, rerr := br.ReadByte()
			if resp.StatusCode != 400 || rerr == nil || errors.Is(rerr, os.ErrDeadlineExceeded) {
				t.Errorf("status %d, then %v; want 400 and the connection closed", resp.StatusCode, rerr)
			}
		})
	}
}

// pause in a list of DATA payloads makes the sender wait before the next,
// so that the proxy has read (and could have forwarded) what came before.
const pause = "\x00pause"

// h2Fields builds a header block list from name, value pairs.
func h2Fields(kv ...string) []hpack.HeaderField {
	var out []hpack.HeaderField
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

// smugFieldCases are malformed HTTP/2 and HTTP/3 request fields (RFC 9113
// §8.2.1, §8.3; RFC 9114 §4.1.2, §4.2, §4.3). by says who refuses the
// request: the protocol library (x/net, quic-go) or hoplite (the HTTP/2
// shim with translate.MalformedField; translate's handler check for
// HTTP/3).
var smugFieldCases = []struct {
	name     string
	fields   []string // after :method GET, :scheme, :authority; nil path means the case sets it
	h2by     string
	h3by     string
	noPseudo bool // the case gives all pseudo-header fields itself
}{
	{name: "value-cr", fields: []string{"x-a", "a\rb"}, h2by: "x/net", h3by: "quic-go"},
	{name: "value-lf", fields: []string{"x-a", "a\nb"}, h2by: "x/net", h3by: "quic-go"},
	{name: "value-crlf-injection", fields: []string{"x-a", "a\r\ntransfer-encoding: chunked"}, h2by: "x/net", h3by: "quic-go"},
	{name: "value-nul", fields: []string{"x-a", "a\x00b"}, h2by: "x/net", h3by: "quic-go"},
	{name: "value-leading-space", fields: []string{"x-a", " a"}, h2by: "hoplite", h3by: "hoplite"},
	{name: "value-trailing-space", fields: []string{"x-a", "a "}, h2by: "hoplite", h3by: "hoplite"},
	{name: "value-leading-tab", fields: []string{"x-a", "\ta"}, h2by: "hoplite", h3by: "hoplite"},
	{name: "value-trailing-tab", fields: []string{"x-a", "a\t"}, h2by: "hoplite", h3by: "hoplite"},
	{name: "content-length-trailing-space", fields: []string{"content-length", "0 "}, h2by: "hoplite", h3by: "quic-go"},
	{name: "name-uppercase", fields: []string{"X-A", "a"}, h2by: "x/net", h3by: "quic-go"},
	{name: "name-empty", fields: []string{"", "a"}, h2by: "x/net", h3by: "quic-go"},
	{name: "name-space", fields: []string{"x a", "a"}, h2by: "x/net", h3by: "quic-go"},
	{name: "pseudo-unknown", fields: []string{":foo", "a"}, h2by: "x/net", h3by: "quic-go"},
	{name: "pseudo-after-regular", fields: []string{"x-a", "a", ":method", "GET"}, h2by: "x/net", h3by: "quic-go"},
	{name: "pseudo-duplicate-method", fields: []string{":method", "GET"}, h2by: "x/net", h3by: "quic-go"},
	{name: "pseudo-status-in-request", fields: []string{":status", "200"}, h2by: "x/net", h3by: "quic-go"},
	{name: "pseudo-missing-path", noPseudo: true, fields: []string{":method", "GET", ":scheme", "https", ":authority", "localhost"}, h2by: "x/net", h3by: "quic-go"},
	{name: "pseudo-empty-path", noPseudo: true, fields: []string{":method", "GET", ":scheme", "https", ":authority", "localhost", ":path", ""}, h2by: "x/net", h3by: "quic-go"},
}

// TestSmugglingH2Fields: each malformed HTTP/2 request gets a stream error
// (RST_STREAM PROTOCOL_ERROR, RFC 9113 §8.1.1) or a 400, never reaches the
// origin, and leaves the connection usable.
func TestSmugglingH2Fields(t *testing.T) {
	t.Parallel()
	o := startSmugOrigin(t)
	h := startHoplite(t, singleBackend(o.addr()), newPKI(t))
	for _, tc := range smugFieldCases {
		t.Run(tc.name, func(t *testing.T) {
			path := "/h2smug/" + tc.name
			var fields []hpack.HeaderField
			if !tc.noPseudo {
				fields = h2Fields(":method", "GET", ":scheme", "https", ":authority", h.authority, ":path", path)
			}
			fields = append(fields, h2Fields(tc.fields...)...)
			c := dialH2Raw(t, h)
			out := c.send(fields, nil, true)
			refused := out.rst != nil && *out.rst == http2.ErrCodeProtocol || out.status == "400"
			if !refused {
				t.Errorf("got %s; want RST_STREAM(PROTOCOL_ERROR) or 400 (refused by %s)", out, tc.h2by)
			}
			if out.goaway != nil {
				t.Errorf("GOAWAY(%v): a malformed request is a stream error", *out.goaway)
			}
			t.Logf("%s: %s", tc.name, out)
			if next := c.get("/h2ok/after-" + tc.name); next.status != "200" {
				t.Errorf("next request on the connection: %s", next)
			}
		})
	}
	for _, r := range o.records() {
		if strings.HasPrefix(r.target, "/h2smug/") || !strings.HasPrefix(r.target, "/h2ok/") {
			t.Errorf("a malformed HTTP/2 request reached the origin: %v", r)
		}
	}
}

// TestSmugglingH2ContentLength: request content longer or shorter than
// its content-length (RFC 9113 §8.1.1: malformed). The client gets a
// stream error or an error status; the origin never gets a complete
// request.
func TestSmugglingH2ContentLength(t *testing.T) {
	t.Parallel()
	o := startSmugOrigin(t)
	h := startHoplite(t, singleBackend(o.addr()), newPKI(t))
	cases := []struct {
		name string
		cl   string
		data []string
	}{
		{"longer-one-frame", "5", []string{"hello world"}},
		{"longer-second-frame", "5", []string{"hello", " world"}},
		{"longer-empty-then-byte", "5", []string{"hello", "", "!"}},
		{"longer-second-frame-later", "5", []string{"hello", pause, " world"}},
		{"shorter", "10", []string{"hello"}},
		{"shorter-empty", "5", []string{""}},
		{"shorter-later", "10", []string{"hello", pause}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := "/h2cl/" + tc.name
			c := dialH2Raw(t, h)
			out := c.send(h2Fields(":method", "POST", ":scheme", "https", ":authority", h.authority, ":path", path,
				"content-length", tc.cl), tc.data, true)
			if !(out.rst != nil && *out.rst == http2.ErrCodeProtocol || out.status == "400") {
				t.Errorf("got %s; want RST_STREAM(PROTOCOL_ERROR) or 400", out)
			}
			t.Logf("%s: %s", tc.name, out)
			time.Sleep(300 * time.Millisecond)
			for _, r := range o.receivedFor(path) {
				if r.complete {
					t.Errorf("the origin received a complete request: %v", r)
				} else {
					t.Logf("the origin got an incomplete request: %v", r)
				}
			}
		})
	}
	t.Run("exact", func(t *testing.T) {
		c := dialH2Raw(t, h)
		out := c.send(h2Fields(":method", "POST", ":scheme", "https", ":authority", h.authority, ":path", "/h2cl/exact",
			"content-length", "5"), []string{"hel", "lo"}, true)
		if out.status != "200" {
			t.Fatalf("got %s, want 200", out)
		}
		if r := o.receivedFor("/h2cl/exact"); len(r) != 1 || !r[0].complete || r[0].payload != "hello" {
			t.Fatalf("origin got %v", r)
		}
	})
}

func h3Fields(kv ...string) []qpack.HeaderField {
	var out []qpack.HeaderField
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, qpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

// TestSmugglingH3Fields: TestSmugglingH2Fields over HTTP/3: the stream is
// reset with H3_MESSAGE_ERROR (RFC 9114 §4.1.2) by quic-go, or answered
// 400 by hoplite, and the request never reaches the origin.
func TestSmugglingH3Fields(t *testing.T) {
	t.Parallel()
	o := startSmugOrigin(t)
	h := startHoplite(t, singleBackend(o.addr()), newPKI(t))
	for _, tc := range smugFieldCases {
		t.Run(tc.name, func(t *testing.T) {
			path := "/h3smug/" + tc.name
			var fields []qpack.HeaderField
			if !tc.noPseudo {
				fields = h3Fields(":method", "GET", ":scheme", "https", ":authority", h.authority, ":path", path)
			}
			fields = append(fields, h3Fields(tc.fields...)...)
			c := dialH3Raw(t, h)
			out := c.send(fields, nil)
			refused := out.reset != nil && out.reset.Remote && out.reset.ErrorCode == h3MessageError || out.status == "400"
			if !refused {
				t.Errorf("got %s; want the stream reset with H3_MESSAGE_ERROR or 400 (refused by %s)", out, tc.h3by)
			}
			t.Logf("%s: %s", tc.name, out)
			if next := c.get("/h3ok/after-" + tc.name); next.status != "200" {
				t.Errorf("next request on the connection: %s", next)
			}
		})
	}
	for _, r := range o.records() {
		if !strings.HasPrefix(r.target, "/h3ok/") {
			t.Errorf("a malformed HTTP/3 request reached the origin: %v", r)
		}
	}
}

// TestSmugglingH3ContentLength: TestSmugglingH2ContentLength over HTTP/3.
func TestSmugglingH3ContentLength(t *testing.T) {
	t.Parallel()
	o := startSmugOrigin(t)
	h := startHoplite(t, singleBackend(o.addr()), newPKI(t))
	cases := []struct {
		name string
		cl   string
		data []string
	}{
		{"longer-one-frame", "5", []string{"hello world"}},
		{"longer-second-frame", "5", []string{"hello", " world"}},
		{"longer-empty-then-byte", "5", []string{"hello", "", "!"}},
		{"longer-second-frame-later", "5", []string{"hello", pause, " world"}},
		{"shorter", "10", []string{"hello"}},
		{"shorter-no-data", "5", nil},
		{"shorter-later", "10", []string{"hello", pause}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := "/h3cl/" + tc.name
			out := dialH3Raw(t, h).send(h3Fields(":method", "POST", ":scheme", "https", ":authority", h.authority, ":path", path,
				"content-length", tc.cl), tc.data)
			if !(out.reset != nil && out.reset.ErrorCode == h3MessageError || out.status == "400") {
				t.Errorf("got %s; want the stream reset with H3_MESSAGE_ERROR or 400", out)
			}
			t.Logf("%s: %s", tc.name, out)
			time.Sleep(300 * time.Millisecond)
			for _, r := range o.receivedFor(path) {
				if r.complete {
					t.Errorf("the origin received a complete request: %v", r)
				} else {
					t.Logf("the origin got an incomplete request: %v", r)
				}
			}
		})
	}
	t.Run("exact", func(t *testing.T) {
		out := dialH3Raw(t, h).send(h3Fields(":method", "POST", ":scheme", "https", ":authority", h.authority, ":path", "/h3cl/exact",
			"content-length", "5"), []string{"hel", "lo"})
		if out.status != "200" {
			t.Fatalf("got %s, want 200", out)
		}
		if r := o.receivedFor("/h3cl/exact"); len(r) != 1 || !r[0].complete || r[0].payload != "hello" {
			t.Fatalf("origin got %v", r)
		}
	})
}

// TestSmugglingUpstream: responses without content followed by content
// retire their connection, and the next request gets its own answer on a
// new connection; responses whose framing is in doubt are 502 and their
// connection is closed, not pooled.
func TestSmugglingUpstream(t *testing.T) {
	t.Parallel()
	bodiless := []struct{ name, method, path string }{
		{"204-then-bytes", "GET", "/u/204-then-bytes"},
		{"204-content-length-content-late", "GET", "/u/204-cl-late"},
		{"304-then-bytes", "GET", "/u/304-then-bytes"},
		{"head-then-bytes", "HEAD", "/u/head-then-bytes"},
	}
	for _, tc := range bodiless {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := startSmugOrigin(t)
			h := startHoplite(t, statsConfig(t, o.addr()), newPKI(t))
			c := h.client(t, modeH1, nil)
			req, _ := http.NewRequest(tc.method, h.url(tc.path), nil)
			resp, body, err := fetch(c, req)
			if err != nil {
				t.Fatal(err)
			}
			if len(body) != 0 {
				t.Errorf("%s: status %d with content %q, want none", tc.path, resp.StatusCode, body)
			}
			for i := 1; i <= 2; i++ {
				code, body, err := doGet(c, h.url("/u/next"))
				if err != nil || code != 200 || !strings.HasPrefix(body, "conn=2 ") {
					t.Fatalf("next request %d: %d %q %v; want 200 from a new origin connection (conn=2)", i, code, body, err)
				}
			}
			s := h.serverStats(t, "app")
			if s.Opened != 2 {
				t.Errorf("pool: %v; want opened=2", s)
			}
		})
	}
	t.Run("framing-in-doubt", func(t *testing.T) {
		t.Parallel()
		o := startSmugOrigin(t)
		h := startHoplite(t, statsConfig(t, o.addr()), newPKI(t))
		c := h.client(t, modeH1, nil)
		var bad []string
		for p := range smugResponses {
			if !strings.Contains(p, "then-bytes") && !strings.Contains(p, "late") && p != "/u/cl-duplicate" {
				bad = append(bad, p)
			}
		}
		sort.Strings(bad)
		for _, p := range bad {
			code, body, err := doGet(c, h.url(p))
			if err != nil || code != http.StatusBadGateway {
				t.Errorf("%s: %d %q %v; want 502", p, code, body, err)
			}
			// The connection was closed, not pooled: the next request
			// goes to another one.
			badConn := int64(-1)
			for _, r := range o.receivedFor(p) {
				badConn = r.conn
			}
			code, body, err = doGet(c, h.url("/u/next"))
			if err != nil || code != 200 || strings.HasPrefix(body, fmt.Sprintf("conn=%d ", badConn)) {
				t.Errorf("after %s (origin conn %d): %d %q %v; want 200 from another connection", p, badConn, code, body, err)
			}
		}
		// Each bad response's connection was closed by hoplite.
		deadline := time.Now().Add(5 * time.Second)
		for o.closes.Load() < int64(len(bad)) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if got := o.closes.Load(); got < int64(len(bad)) {
			t.Errorf("hoplite closed %d origin connections, want %d (one per bad response)", got, len(bad))
		}
		s := h.serverStats(t, "app")
		t.Logf("pool: %v", s)
		if want := uint64(len(bad) + 1); s.Opened != want {
			t.Errorf("opened %d origin connections, want %d", s.Opened, want)
		}
	})

	// Identical repeated Content-Length fields from an origin are one
	// length (RFC 9110 §8.6 lets a recipient replace them with one): the
	// response passes with one Content-Length, and the connection stays.
	t.Run("content-length-repeated-identical", func(t *testing.T) {
		t.Parallel()
		o := startSmugOrigin(t)
		h := startHoplite(t, statsConfig(t, o.addr()), newPKI(t))
		c := h.client(t, modeH1, nil)
		req, _ := http.NewRequest("GET", h.url("/u/cl-duplicate"), nil)
		resp, body, err := fetch(c, req)
		if err != nil || resp.StatusCode != 200 || string(body) != "ok" || len(resp.Header["Content-Length"]) > 1 {
			t.Fatalf("%v %v %q %v", resp, err, body, resp.Header)
		}
	})
}
