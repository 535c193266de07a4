package h1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// The refusal table: request smuggling and framing (RFC 9112 §2.2, §3,
// §5.1, §5.2, §6.1, §6.3, §7.1, §11.2). Every case runs through a Conn
// on loopback, the request in one read and cut into reads of 1 and 7
// bytes. It holds every case of frontend/h1guard_test.go (the guard's
// "guarded" column: the rules the guard added to net/http are this
// parser's own) and the cases only an own parser can answer.

// outcome is what the client saw for one raw request.
type outcome struct {
	status int  // 0: no response
	closed bool // the server closed the connection after the response
}

func (o outcome) String() string { return fmt.Sprintf("status %d, closed %t", o.status, o.closed) }

var (
	accepted  = outcome{200, false}
	refused   = outcome{400, true}
	refused51 = outcome{501, true}
	// bodyFailed: the head was valid, so the handler ran, but the body
	// failed before its end (the test handler answers 422); the
	// connection then closes.
	bodyFailed = outcome{422, true}
)

const (
	postHead = "POST /p HTTP/1.1\r\nHost: x\r\n"
	chunkedH = postHead + "Transfer-Encoding: chunked\r\n\r\n"
)

type refusalCase struct {
	name      string
	req       string
	want      outcome
	wantCalls int // requests the handler sees
}

var refusalCases = []refusalCase{
	// RFC 9112 §6.1, §6.3 rule 3: both framings; §6.1 says close.
	{"cl-and-te", postHead + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", refused, 0},
	{"te-and-cl", postHead + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", refused, 0},
	// RFC 9110 §8.6, RFC 9112 §6.3 rule 5: repeated Content-Length.
	{"cl-duplicate-identical", postHead + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", refused, 0},
	{"cl-duplicate-conflicting", postHead + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", refused, 0},
	{"cl-duplicate-case", postHead + "Content-Length: 5\r\ncontent-length: 5\r\n\r\nhello", refused, 0},
	{"cl-list-identical", postHead + "Content-Length: 5, 5\r\n\r\nhello", refused, 0},
	{"cl-list-conflicting", postHead + "Content-Length: 5, 6\r\n\r\nhello!", refused, 0},
	// Content-Length = 1*DIGIT.
	{"cl-plus", postHead + "Content-Length: +1\r\n\r\nx", refused, 0},
	{"cl-hex", postHead + "Content-Length: 0x10\r\n\r\n0123456789abcdef", refused, 0},
	{"cl-underscore", postHead + "Content-Length: 1_0\r\n\r\n0123456789", refused, 0},
	{"cl-empty", postHead + "Content-Length: \r\n\r\n", refused, 0},
	{"cl-negative", postHead + "Content-Length: -1\r\n\r\n", refused, 0},
	{"cl-inner-space", postHead + "Content-Length: 1 0\r\n\r\n0123456789", refused, 0},
	{"cl-vtab-prefix", postHead + "Content-Length: \x0b1\r\n\r\nx", refused, 0},
	{"cl-overflow", postHead + "Content-Length: 99999999999999999999\r\n\r\nx", refused, 0},
	{"cl-ows-valid", postHead + "Content-Length: \t 1 \r\n\r\nx", accepted, 1},
	// RFC 9112 §6.3 rule 4: chunked not final is 400; §6.1: an unknown
	// coding before chunked is 501; anything not a list of codings 400.
	{"te-chunked-chunked", postHead + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", refused, 0},
	{"te-gzip", postHead + "Transfer-Encoding: gzip\r\n\r\n", refused, 0},
	{"te-chunked-gzip", postHead + "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", refused, 0},
	{"te-gzip-chunked", postHead + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", refused51, 0},
	{"te-empty", postHead + "Transfer-Encoding: \r\n\r\n", refused, 0},
	{"te-empty-element", postHead + "Transfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n", refused, 0},
	{"te-space-before-colon", postHead + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", refused, 0},
	{"te-vtab-prefix", postHead + "Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n", refused, 0},
	{"te-quoted", postHead + "Transfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n", refused, 0},
	{"te-xchunked", postHead + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", refused, 0},
	{"te-trailing-junk", postHead + "Transfer-Encoding: chunked x\r\n\r\n0\r\n\r\n", refused, 0},
	{"te-parameter", postHead + "Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n", refused, 0},
	{"te-two-lines", postHead + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", refused, 0},
	{"te-first-line-leading-space", postHead + " Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", refused, 0},
	{"te-line-tab-prefix-obs-fold", postHead + "X: y\r\n\tTransfer-Encoding: chunked\r\n\r\n", refused, 0},
	{"te-tab-ows-valid", postHead + "Transfer-Encoding:\tchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", accepted, 1},
	{"te-uppercase-valid", postHead + "transfer-encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n", accepted, 1},
	// RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing;
	// nothing after it is served.
	{"te-http10", "POST /p HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"GET /smuggled HTTP/1.0\r\nHost: x\r\n\r\n", refused, 0},
	// RFC 9112 §2.2: an empty line before the request line is refused.
	{"leading-empty-line", "\r\nGET /p HTTP/1.1\r\nHost: x\r\n\r\n", refused, 0},
	{"leading-bare-lf", "\nGET /p HTTP/1.1\r\nHost: x\r\n\r\n", refused, 0},
	// RFC 9112 §2.2: a bare CR.
	{"bare-cr-request-line", "GET /a\rb HTTP/1.1\r\nHost: x\r\n\r\n", refused, 0},
	{"bare-cr-value", "GET /p HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", refused, 0},
	{"bare-cr-end-of-value", "GET /p HTTP/1.1\r\nHost: x\r\nX-A: a\r\r\n\r\n", refused, 0},
	{"bare-cr-name", "GET /p HTTP/1.1\r\nHost: x\r\nX\r-A: a\r\n\r\n", refused, 0},
	{"bare-cr-empty-line", "GET /p HTTP/1.1\r\nHost: x\r\n\r\r\n", refused, 0},
	// RFC 9112 §2.2 lets a recipient accept a bare LF as a line end.
	{"bare-lf-lines-valid", "GET /p HTTP/1.1\nHost: x\n\n", accepted, 1},
	// RFC 9112 §5.2: obs-fold is refused.
	{"obs-fold", "GET /p HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", refused, 0},
	{"obs-fold-tab", "GET /p HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n", refused, 0},
	// RFC 9110 §5.1, RFC 9112 §5.1: field names and values.
	{"nul-in-name", "GET /p HTTP/1.1\r\nHost: x\r\nX\x00A: b\r\n\r\n", refused, 0},
	{"non-token-name", "GET /p HTTP/1.1\r\nHost: x\r\nX(A): b\r\n\r\n", refused, 0},
	{"space-before-colon", "GET /p HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n", refused, 0},
	{"tab-before-colon", "GET /p HTTP/1.1\r\nHost: x\r\nX-A\t: b\r\n\r\n", refused, 0},
	{"empty-name", "GET /p HTTP/1.1\r\nHost: x\r\n: b\r\n\r\n", refused, 0},
	{"no-colon", "GET /p HTTP/1.1\r\nHost: x\r\nX-A b\r\n\r\n", refused, 0},
	{"nul-in-value", "GET /p HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", refused, 0},
	{"del-in-value", "GET /p HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n", refused, 0},
	{"obs-text-value-valid", "GET /p HTTP/1.1\r\nHost: x\r\nX-A: caf\xc3\xa9\r\n\r\n", accepted, 1},
	// RFC 9112 §3: the request line.
	{"method-non-token", "GE(T /p HTTP/1.1\r\nHost: x\r\n\r\n", refused, 0},
	{"request-line-two-spaces", "GET  /p HTTP/1.1\r\nHost: x\r\n\r\n", refused, 0},
	{"request-line-tab", "GET\t/p HTTP/1.1\r\nHost: x\r\n\r\n", refused, 0},
	{"request-line-trailing-space", "GET /p HTTP/1.1 \r\nHost: x\r\n\r\n", refused, 0},
	{"request-line-no-version", "GET /p\r\nHost: x\r\n\r\n", refused, 0},
	{"version-lowercase", "GET /p http/1.1\r\nHost: x\r\n\r\n", refused, 0},
	{"version-two-digits", "GET /p HTTP/1.10\r\nHost: x\r\n\r\n", refused, 0},
	{"version-2", "GET /p HTTP/2.0\r\nHost: x\r\n\r\n", outcome{505, true}, 0},
	{"target-space", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", refused, 0},
	{"target-non-ascii", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", refused, 0},
	{"target-relative", "GET p HTTP/1.1\r\nHost: x\r\n\r\n", refused, 0},
	{"target-bad-escape", "GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", refused, 0},
	// RFC 9112 §3.2.2: absolute-form is accepted (its authority wins
	// over Host); a malformed one is refused.
	{"absolute-form-valid", "GET http://x/p HTTP/1.1\r\nHost: other\r\n\r\n", accepted, 1},
	{"absolute-form-no-authority", "GET http:///p HTTP/1.1\r\nHost: x\r\n\r\n", refused, 0},
	{"absolute-form-empty", "GET http:// HTTP/1.1\r\nHost: x\r\n\r\n", refused, 0},
	{"absolute-form-no-slashes", "GET http:x/p HTTP/1.1\r\nHost: x\r\n\r\n", refused, 0},
	{"absolute-form-bad-authority", "GET http://a\"b/p HTTP/1.1\r\nHost: x\r\n\r\n", refused, 0},
	{"connect-bad-authority", "CONNECT a\"b:443 HTTP/1.1\r\nHost: x\r\n\r\n", refused, 0},
	{"absolute-form-bad-scheme", "GET 1http://x/p HTTP/1.1\r\nHost: x\r\n\r\n", refused, 0},
	// RFC 9112 §3.2.3, §3.2.4: authority-form for CONNECT only,
	// asterisk-form for OPTIONS only.
	{"authority-form-get", "GET x:443 HTTP/1.1\r\nHost: x\r\n\r\n", refused, 0},
	{"connect-origin-form", "CONNECT /p HTTP/1.1\r\nHost: x\r\n\r\n", refused, 0},
	{"asterisk-get", "GET * HTTP/1.1\r\nHost: x\r\n\r\n", refused, 0},
	{"asterisk-options-valid", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", accepted, 1},
	// RFC 9112 §3.2: exactly one Host in HTTP/1.1; HTTP/1.0 may omit it.
	{"host-missing", "GET /p HTTP/1.1\r\n\r\n", refused, 0},
	{"host-two", "GET /p HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", refused, 0},
	{"host-two-identical", "GET /p HTTP/1.1\r\nHost: x\r\nhost: x\r\n\r\n", refused, 0},
	{"host-malformed", "GET /p HTTP/1.1\r\nHost: x y\r\n\r\n", refused, 0},
	{"host-empty-valid", "GET /p HTTP/1.1\r\nHost:\r\n\r\n", accepted, 1},
	{"host-missing-http10-valid", "GET /p HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", accepted, 1},
	// RFC 9110 §10.1.1: an expectation other than 100-continue is 417.
	{"expect-unknown", "GET /p HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n", outcome{417, true}, 0},
	// RFC 9110 §6.5.1: framing fields never go in trailers.
	{"trailer-declares-content-length", postHead + "Trailer: Content-Length\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", refused, 0},
	// RFC 9112 §7.1: chunked framing. The head is valid, so the handler
	// runs; its body fails and the connection closes.
	{"chunk-bare-lf-size", chunkedH + "5\nhello\r\n0\r\n\r\n", bodyFailed, 1},
	{"chunk-bare-lf-after-data", chunkedH + "5\r\nhello\n0\r\n\r\n", bodyFailed, 1},
	{"chunk-bare-lf-last", chunkedH + "5\r\nhello\r\n0\n\r\n", bodyFailed, 1},
	{"chunk-bare-cr-size", chunkedH + "5\rX\r\nhello\r\n0\r\n\r\n", bodyFailed, 1},
	{"chunk-size-0x", chunkedH + "0x5\r\nhello\r\n0\r\n\r\n", bodyFailed, 1},
	{"chunk-size-negative", chunkedH + "-1\r\nhello\r\n0\r\n\r\n", bodyFailed, 1},
	{"chunk-size-plus", chunkedH + "+5\r\nhello\r\n0\r\n\r\n", bodyFailed, 1},
	{"chunk-size-leading-space", chunkedH + " 5\r\nhello\r\n0\r\n\r\n", bodyFailed, 1},
	{"chunk-size-trailing-space", chunkedH + "5 \r\nhello\r\n0\r\n\r\n", bodyFailed, 1},
	{"chunk-size-space-before-ext", chunkedH + "1 ;a=b\r\nx\r\n0\r\n\r\n", bodyFailed, 1},
	{"chunk-size-overflow", chunkedH + "ffffffffffffffffff\r\nhello\r\n0\r\n\r\n", bodyFailed, 1},
	{"chunk-size-16-digits", chunkedH + "0000000000000005\r\nhello\r\n0\r\n\r\n", bodyFailed, 1},
	{"chunk-size-empty", chunkedH + "\r\nhello\r\n0\r\n\r\n", bodyFailed, 1},
	{"chunk-size-junk", chunkedH + "5x\r\nhello\r\n0\r\n\r\n", bodyFailed, 1},
	{"chunk-missing-crlf-after-data", chunkedH + "5\r\nhelloXY0\r\n\r\n", bodyFailed, 1},
	{"chunk-data-too-long", chunkedH + "3\r\nhello\r\n0\r\n\r\n", bodyFailed, 1},
	{"chunk-ext-oversized", chunkedH + "5;" + strings.Repeat("a", 5000) + "\r\nhello\r\n0\r\n\r\n", bodyFailed, 1},
	{"chunk-ext-ctl", chunkedH + "5;a\x01b\r\nhello\r\n0\r\n\r\n", bodyFailed, 1},
	{"chunk-eof", chunkedH + "5\r\nhel", bodyFailed, 1}, // the client half-closes
	{"trailer-obs-fold", chunkedH + "5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n", bodyFailed, 1},
	{"trailer-space-before-colon", chunkedH + "5\r\nhello\r\n0\r\nX-T : a\r\n\r\n", bodyFailed, 1},
	{"trailer-bare-lf", chunkedH + "5\r\nhello\r\n0\r\nX-T: a\n\r\n", bodyFailed, 1},
	{"trailer-no-colon", chunkedH + "5\r\nhello\r\n0\r\nX-T a\r\n\r\n", bodyFailed, 1},
	// Good messages pass.
	{"get", "GET /p HTTP/1.1\r\nHost: x\r\n\r\n", accepted, 1},
	{"post-length", postHead + "Content-Length: 5\r\n\r\nhello", accepted, 1},
	{"post-length-zero", postHead + "Content-Length: 0\r\n\r\n", accepted, 1},
	{"post-chunked-trailer", chunkedH + "5;ext=1\r\nhello\r\n0\r\nX-T: a\r\n\r\n", accepted, 1},
	{"post-chunked-uppercase-hex", chunkedH + "A\r\n0123456789\r\n0\r\n\r\n", accepted, 1},
}

// refusalServer is a handler that records what it saw.
type refusalServer struct {
	mu   sync.Mutex
	reqs []string // "METHOD PATH body" per request
}

func (s *refusalServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	s.mu.Lock()
	s.reqs = append(s.reqs, fmt.Sprintf("%s %s %q", r.Method, r.URL.Path, body))
	s.mu.Unlock()
	if err != nil {
		w.WriteHeader(http.StatusUnprocessableEntity)
		return
	}
	io.WriteString(w, "ok")
}

func (s *refusalServer) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.reqs...)
}

// do sends raw, then reads one response and whether the connection closed
// after it (EOF or a reset soon; open: the read times out, or a second
// response comes).
func do(t *testing.T, h http.Handler, raw string, split int) outcome {
	t.Helper()
	tc := serveTCP(t, h, nil, splitter(split))
	tc.send(t, raw) // loopback buffers hold every case
	if strings.HasSuffix(raw, "hel") {
		// chunk-eof: the client gives up on the body.
		tc.client.(interface{ CloseWrite() error }).CloseWrite()
	}
	resp, err := http.ReadResponse(tc.br, nil)
	if err != nil {
		return outcome{}
	}
	io.Copy(io.Discard, resp.Body)
	out := outcome{status: resp.StatusCode}
	tc.client.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err = tc.br.ReadByte()
	out.closed = err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
	return out
}

func TestRefusals(t *testing.T) {
	for _, split := range []int{0, 1, 7} {
		for _, tc := range refusalCases {
			t.Run(fmt.Sprintf("%s/split-%d", tc.name, split), func(t *testing.T) {
				t.Parallel()
				s := &refusalServer{}
				if got := do(t, s, tc.req, split); got != tc.want {
					t.Errorf("%v, want %v", got, tc.want)
				}
				if calls := s.seen(); len(calls) != tc.wantCalls {
					t.Errorf("the handler saw %d requests, want %d: %q", len(calls), tc.wantCalls, calls)
				}
			})
		}
	}
}

// TestRefusalAfterPipelined: pipelined requests of every framing are
// served in order; a refused one after them is answered after their
// responses, and nothing after it is served.
func TestRefusalAfterPipelined(t *testing.T) {
	for _, split := range []int{0, 1, 5} {
		t.Run(fmt.Sprint("split-", split), func(t *testing.T) {
			s := &refusalServer{}
			tc := serveTCP(t, s, nil, splitter(split))
			go io.WriteString(tc.client, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"+
				"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"+
				"POST /3 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n"+
				"GET /4 HTTP/1.1\r\nHost: x\r\n\r\n"+
				"POST /5 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"+
				"POST /6 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"+
				"GET /7-never HTTP/1.1\r\nHost: x\r\n\r\n")
			br := bufio.NewReader(tc.client)
			var statuses []int
			for {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					break
				}
				io.Copy(io.Discard, resp.Body)
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
