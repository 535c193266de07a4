package frontend

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"hoplite/frontend/internal/h1"
)

// Request smuggling and framing on HTTP/1.x (RFC 9112 §2.2, §5.1, §5.2,
// §6.1, §6.3, §7.1, §11.2), through hoplite's own HTTP/1.x engine
// (frontend/internal/h1) on loopback. Every case is sent in one write and
// also cut into reads of 1 and 7 bytes: the answer must not depend on how
// the bytes arrive. The "net/http" column records what net/http's server,
// which hoplite used before, answers by itself; where it differs from
// "want", it is a gap the engine's parser closes.

// h1Outcome is what the client saw for one raw request.
type h1Outcome struct {
	status int  // 0: no response
	closed bool // the server closed the connection after the response
}

func (o h1Outcome) String() string {
	return fmt.Sprintf("status %d, closed %t", o.status, o.closed)
}

// Outcomes.
var (
	accepted  = h1Outcome{200, false} // served, connection kept
	refused   = h1Outcome{400, true}
	refused51 = h1Outcome{501, true}
	// bodyFailed: the head was valid, so the handler ran, but the body
	// failed before its end (the test handler answers such a body with
	// 422; translate answers 400); the connection then closes.
	bodyFailed = h1Outcome{422, true}
)

const (
	postHead = "POST /p HTTP/1.1\r\nHost: x\r\n"
	chunkedH = postHead + "Transfer-Encoding: chunked\r\n\r\n"
)

type h1Case struct {
	name string
	req  string
	// netHTTP is net/http's own answer (for the record); want is the
	// engine's.
	netHTTP, want h1Outcome
	// wantCalls is how many requests reach the handler: zero for a
	// refused head, one for a body that fails.
	wantCalls int
}

var h1Cases = []h1Case{
	// RFC 9112 §6.1, §6.3 rule 3: both framings. net/http prefers chunked,
	// drops Content-Length and keeps the connection open; §6.1 says close.
	{"cl-and-te", postHead + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", accepted, refused, 0},
	{"te-and-cl", postHead + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", accepted, refused, 0},
	// RFC 9110 §8.6, RFC 9112 §6.3 rule 5: repeated Content-Length.
	{"cl-duplicate-identical", postHead + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", accepted, refused, 0},
	{"cl-duplicate-conflicting", postHead + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", refused, refused, 0},
	{"cl-list-identical", postHead + "Content-Length: 5, 5\r\n\r\nhello", refused, refused, 0},
	{"cl-list-conflicting", postHead + "Content-Length: 5, 6\r\n\r\nhello!", refused, refused, 0},
	// Content-Length = 1*DIGIT.
	{"cl-plus", postHead + "Content-Length: +1\r\n\r\nx", refused, refused, 0},
	{"cl-hex", postHead + "Content-Length: 0x10\r\n\r\n0123456789abcdef", refused, refused, 0},
	{"cl-underscore", postHead + "Content-Length: 1_0\r\n\r\n0123456789", refused, refused, 0},
	{"cl-empty", postHead + "Content-Length: \r\n\r\n", refused, refused, 0},
	{"cl-negative", postHead + "Content-Length: -1\r\n\r\n", refused, refused, 0},
	{"cl-inner-space", postHead + "Content-Length: 1 0\r\n\r\n0123456789", refused, refused, 0},
	{"cl-vtab-prefix", postHead + "Content-Length: \x0b1\r\n\r\nx", refused, refused, 0},
	// "Content-Length:  1": the extra space is OWS, not part of the value
	// (RFC 9110 §5.5), so this is a valid length of 1.
	{"cl-ows-valid", postHead + "Content-Length: \t 1 \r\n\r\nx", accepted, accepted, 1},
	// Transfer-Encoding obfuscations. net/http answers 501 to any value
	// but "chunked"; RFC 9112 §6.3 rule 4 makes "chunked not final" a 400,
	// §6.1 an unknown coding before chunked a 501, and anything that is
	// not a list of codings is a 400.
	{"te-chunked-chunked", postHead + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", refused51, refused, 0},
	{"te-gzip", postHead + "Transfer-Encoding: gzip\r\n\r\n", refused51, refused, 0},
	{"te-gzip-chunked", postHead + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", refused51, refused51, 0},
	{"te-space-before-colon", postHead + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", refused, refused, 0},
	{"te-vtab-prefix", postHead + "Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n", refused, refused, 0},
	{"te-quoted", postHead + "Transfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n", refused51, refused, 0},
	{"te-xchunked", postHead + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", refused51, refused, 0},
	{"te-trailing-junk", postHead + "Transfer-Encoding: chunked x\r\n\r\n0\r\n\r\n", refused51, refused, 0},
	{"te-parameter", postHead + "Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n", refused51, refused, 0},
	{"te-two-lines", postHead + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", refused51, refused, 0},
	{"te-first-line-leading-space", postHead + " Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", refused, refused, 0},
	// A field line starting with HTAB after another one is obs-fold:
	// net/http folds "Transfer-Encoding: chunked" into X's value and reads
	// no body, so the chunked bytes become a request of their own.
	{"te-line-tab-prefix-obs-fold", postHead + "X: y\r\n\tTransfer-Encoding: chunked\r\n\r\n", accepted, refused, 0},
	// "Transfer-Encoding:<HTAB>chunked": HTAB is OWS (RFC 9110 §5.6.3),
	// so this is plain chunked, read as such.
	{"te-tab-ows-valid", postHead + "Transfer-Encoding:\tchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", accepted, accepted, 1},
	// RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
	// net/http ignores it: no body, and the chunked bytes that follow are
	// served as a request of their own (the handler sees /smuggled).
	{"te-http10", "POST /p HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"GET /smuggled HTTP/1.0\r\nHost: x\r\n\r\n", h1Outcome{200, true}, refused, 0},
	// RFC 9112 §2.2: an empty line before the request line; net/http does
	// not skip it, nor does the guard.
	{"leading-empty-line", "\r\nGET /p HTTP/1.1\r\nHost: x\r\n\r\n", refused, refused, 0},
	// RFC 9112 §2.2: a bare CR.
	{"bare-cr-request-line", "GET /a\rb HTTP/1.1\r\nHost: x\r\n\r\n", refused, refused, 0},
	{"bare-cr-value", "GET /p HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", refused, refused, 0},
	{"bare-cr-end-of-value", "GET /p HTTP/1.1\r\nHost: x\r\nX-A: a\r\r\n\r\n", refused, refused, 0},
	// RFC 9112 §5.2: obs-fold; net/http unfolds it, the guard refuses.
	{"obs-fold", "GET /p HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", accepted, refused, 0},
	// RFC 9110 §5.1, RFC 9112 §5.1: field names.
	{"nul-in-name", "GET /p HTTP/1.1\r\nHost: x\r\nX\x00A: b\r\n\r\n", refused, refused, 0},
	{"non-token-name", "GET /p HTTP/1.1\r\nHost: x\r\nX(A): b\r\n\r\n", refused, refused, 0},
	{"space-before-colon", "GET /p HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n", refused, refused, 0},
	{"empty-name", "GET /p HTTP/1.1\r\nHost: x\r\n: b\r\n\r\n", refused, refused, 0},
	{"nul-in-value", "GET /p HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", refused, refused, 0},
	// RFC 9112 §7.1: chunked framing. The head is valid, so the handler
	// runs; its body must fail (the data before the error may arrive,
	// the end never does), and the connection close.
	{"chunk-bare-lf-size", chunkedH + "5\nhello\r\n0\r\n\r\n", bodyFailed, bodyFailed, 1},
	{"chunk-bare-lf-after-data", chunkedH + "5\r\nhello\n0\r\n\r\n", bodyFailed, bodyFailed, 1},
	{"chunk-bare-lf-last", chunkedH + "5\r\nhello\r\n0\n\r\n", bodyFailed, bodyFailed, 1},
	{"chunk-size-0x", chunkedH + "0x5\r\nhello\r\n0\r\n\r\n", bodyFailed, bodyFailed, 1},
	{"chunk-size-negative", chunkedH + "-1\r\nhello\r\n0\r\n\r\n", bodyFailed, bodyFailed, 1},
	{"chunk-size-space-before-ext", chunkedH + "1 ;a=b\r\nx\r\n0\r\n\r\n", bodyFailed, bodyFailed, 1},
	{"chunk-size-overflow", chunkedH + "ffffffffffffffffff\r\nhello\r\n0\r\n\r\n", bodyFailed, bodyFailed, 1},
	{"chunk-size-empty", chunkedH + "\r\nhello\r\n0\r\n\r\n", bodyFailed, bodyFailed, 1},
	{"chunk-missing-crlf-after-data", chunkedH + "5\r\nhelloXY0\r\n\r\n", bodyFailed, bodyFailed, 1},
	{"chunk-ext-oversized", chunkedH + "5;" + strings.Repeat("a", 5000) + "\r\nhello\r\n0\r\n\r\n", bodyFailed, bodyFailed, 1},
	// net/http ignores what a chunk extension holds; CTLs there are refused.
	{"chunk-ext-ctl", chunkedH + "5;a\x01b\r\nhello\r\n0\r\n\r\n", accepted, bodyFailed, 1},
	// Trailer lines are field lines: net/http unfolds obs-fold there too.
	{"trailer-obs-fold", chunkedH + "5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n", accepted, bodyFailed, 1},
	{"trailer-space-before-colon", chunkedH + "5\r\nhello\r\n0\r\nX-T : a\r\n\r\n", accepted, bodyFailed, 1},
	// Good messages pass.
	{"get", "GET /p HTTP/1.1\r\nHost: x\r\n\r\n", accepted, accepted, 1},
	{"post-length", postHead + "Content-Length: 5\r\n\r\nhello", accepted, accepted, 1},
	{"post-chunked-trailer", chunkedH + "5;ext=1\r\nhello\r\n0\r\nX-T: a\r\n\r\n", accepted, accepted, 1},
}

// h1TestServer serves the h1 engine on loopback; its reads can be cut
// into pieces of at most split bytes.
type h1TestServer struct {
	addr string
	mu   sync.Mutex
	reqs []string // "METHOD PATH body" of each request the handler saw
}

func startH1TestServer(t *testing.T, split int) *h1TestServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &h1TestServer{addr: ln.Addr().String()}
	var l net.Listener = ln
	if split > 0 {
		l = splitListener{l, split}
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, fmt.Sprintf("%s %s %q", r.Method, r.URL.Path, body))
		s.mu.Unlock()
		if err != nil {
			w.WriteHeader(http.StatusUnprocessableEntity)
			return
		}
		io.WriteString(w, "ok")
	})
	cfg := &h1.Config{ReadHeaderTimeout: waitLimit}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []*h1.Conn
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			hc := h1.NewConn(c, h, cfg)
			mu.Lock()
			conns = append(conns, hc)
			mu.Unlock()
			wg.Go(hc.Serve)
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

func (s *h1TestServer) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.reqs...)
}

// splitListener cuts every read of its connections to at most n bytes.
type splitListener struct {
	net.Listener
	n int
}

func (l splitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return splitConn{c, l.n}, nil
}

type splitConn struct {
	net.Conn
	n int
}

func (c splitConn) Read(p []byte) (int, error) {
	if len(p) > c.n {
		p = p[:c.n]
	}
	return c.Conn.Read(p)
}

// do sends raw and reads one response and whether the connection closed
// after it.
func (s *h1TestServer) do(t *testing.T, raw string) h1Outcome {
	t.Helper()
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitLimit))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return h1Outcome{}
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	out := h1Outcome{status: resp.StatusCode}
	// Closed: EOF (or a reset) soon; open: the read times out.
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var one [1]byte
	for {
		n, err := br.Read(one[:])
		if n > 0 {
			// A second response (a smuggled request was served): keep
			// reading until the connection goes quiet or ends.
			continue
		}
		out.closed = err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
		return out
	}
}

// TestH1Smuggling runs every case in one read and cut into reads of 1 and
// 7 bytes.
func TestH1Smuggling(t *testing.T) {
	for _, split := range []int{0, 1, 7} {
		s := startH1TestServer(t, split)
		for _, tc := range h1Cases {
			t.Run(fmt.Sprintf("%s/split-%d", tc.name, split), func(t *testing.T) {
				before := len(s.seen())
				if got := s.do(t, tc.req); got != tc.want {
					t.Errorf("got %v, want %v (net/http alone: %v)", got, tc.want, tc.netHTTP)
				}
				calls := s.seen()[before:]
				if len(calls) != tc.wantCalls {
					t.Errorf("the handler saw %d requests, want %d: %q", len(calls), tc.wantCalls, calls)
				}
			})
		}
	}
}

// TestH1Pipelining: pipelined requests of every framing pass, in
// order, with their bodies; a bad request after good ones is refused
// after their responses, and nothing after it is served.
func TestH1Pipelining(t *testing.T) {
	for _, split := range []int{0, 1, 5} {
		t.Run(fmt.Sprintf("split-%d", split), func(t *testing.T) {
			s := startH1TestServer(t, split)
			stream := "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n" +
				"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
				"POST /3 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n" +
				"GET /4 HTTP/1.1\r\nHost: x\r\n\r\n" +
				// Content-Length 0 followed at once by the next head.
				"POST /5 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" +
				"POST /6 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
				"GET /7-never HTTP/1.1\r\nHost: x\r\n\r\n"
			c, err := net.Dial("tcp", s.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(waitLimit))
			io.WriteString(c, stream)
			br := bufio.NewReader(c)
			var statuses []int
			for {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					break
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				statuses = append(statuses, resp.StatusCode)
			}
			if want := []int{200, 200, 200, 200, 200, 400}; fmt.Sprint(statuses) != fmt.Sprint(want) {
				t.Errorf("statuses %v, want %v", statuses, want)
			}
			want := []string{`GET /1 ""`, `POST /2 "hello"`, `POST /3 "abcde"`, `GET /4 ""`, `POST /5 ""`}
			if got := s.seen(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("the handler saw\n%q\nwant\n%q", got, want)
			}
		})
	}
}

// TestH1LargeHead: a head over the limit gets 431.
func TestH1LargeHead(t *testing.T) {
	s := startH1TestServer(t, 0)
	big := "GET /p HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", http.DefaultMaxHeaderBytes+10000) + "\r\n\r\n"
	if got := s.do(t, big); got.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversized head: %v, want 431", got)
	}
	if n := len(s.seen()); n != 0 {
		t.Errorf("the handler saw %d requests", n)
	}
}
