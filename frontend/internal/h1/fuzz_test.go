package h1

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzParseRequest serves arbitrary bytes as a connection's input (the
// head parser, the chunked and length body readers, pipelining) and
// checks:
//   - nothing panics (a panic in the handler's body reads is caught by the
//     handler itself, since the engine would recover and log it);
//   - the framing of every request served is unambiguous: chunked with
//     one "Transfer-Encoding: chunked" and no Content-Length, or one
//     Content-Length whose value is the body's length, or neither and no
//     body;
//   - the outcome does not depend on how the bytes are cut into reads;
//   - what was served re-serialises: the requests, written out again
//     from what the handler saw, are served as the same requests.
func FuzzParseRequest(f *testing.F) {
	for _, tc := range refusalCases {
		f.Add([]byte(tc.req), uint8(0))
		f.Add([]byte(tc.req), uint8(6))
	}
	f.Add([]byte("GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"+
		"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"+
		"POST /3 HTTP/1.1\r\nHost: x\r\nTrailer: X-T\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n"+
		"GET http://h/4?q HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n\r\n"+
		"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		if len(data) > 16<<10 {
			return // re-serialised heads must stay under MaxHeaderBytes
		}
		whole := fuzzServe(t, data, 0)
		cut := fuzzServe(t, data, int(split%16)+1)
		if !reflect.DeepEqual(whole.reqs, cut.reqs) || whole.out != cut.out {
			t.Fatalf("reads of %d bytes change the outcome:\nwhole: %+v\n%q\ncut:   %+v\n%q",
				split%16+1, whole.reqs, whole.out, cut.reqs, cut.out)
		}
		var again []byte
		n := 0
		for _, r := range whole.reqs {
			checkFraming(t, r)
			if r.bodyErr {
				break
			}
			again = r.serialise(again)
			n++
		}
		re := fuzzServe(t, again, 0)
		if len(re.reqs) != n || n > 0 && !reflect.DeepEqual(re.reqs, whole.reqs[:n]) {
			t.Fatalf("re-serialised requests differ:\nfirst: %+v\nagain: %+v\nsent again: %q", whole.reqs[:n], re.reqs, again)
		}
	})
}

// fuzzReq is what the handler saw of one request.
type fuzzReq struct {
	method, uri, proto, host string
	header, trailer          http.Header
	contentLength            int64
	te                       []string
	close                    bool
	body                     string
	bodyErr                  bool
}

type fuzzResult struct {
	reqs []fuzzReq
	out  string // the responses, Date fields removed
}

func fuzzServe(t *testing.T, data []byte, split int) fuzzResult {
	var res fuzzResult
	var panicked any
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				panicked = fmt.Sprintf("%v", v)
				panic(v)
			}
		}()
		body, err := io.ReadAll(r.Body)
		res.reqs = append(res.reqs, fuzzReq{
			method: r.Method, uri: r.RequestURI, proto: r.Proto, host: r.Host,
			header: r.Header.Clone(), trailer: r.Trailer.Clone(),
			contentLength: r.ContentLength, te: slices.Clone(r.TransferEncoding), close: r.Close,
			body: string(body), bodyErr: err != nil,
		})
		if err != nil {
			w.WriteHeader(http.StatusUnprocessableEntity)
		}
	})
	var out bytes.Buffer
	c := &memConn{in: data, split: split, out: &out}
	NewConn(c, h, &Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Serve()
	if panicked != nil {
		t.Fatalf("panic serving %q: %v", data, panicked)
	}
	var lines []string
	for l := range strings.SplitSeq(out.String(), "\r\n") {
		if !strings.HasPrefix(l, "Date: ") {
			lines = append(lines, l)
		}
	}
	res.out = strings.Join(lines, "\r\n")
	return res
}

// checkFraming: RFC 9112 §6.3, one framing per request, and the body it
// says.
func checkFraming(t *testing.T, r fuzzReq) {
	cl := r.header["Content-Length"]
	if _, ok := r.header["Transfer-Encoding"]; ok {
		t.Fatalf("Transfer-Encoding left in the header: %+v", r)
	}
	switch {
	case r.te != nil:
		if len(cl) != 0 || r.contentLength != -1 || !slices.Equal(r.te, []string{"chunked"}) || r.proto == "HTTP/1.0" {
			t.Fatalf("ambiguous chunked framing: %+v", r)
		}
	case len(cl) > 0:
		n, err := strconv.ParseInt(cl[0], 10, 64)
		if len(cl) != 1 || err != nil || n != r.contentLength || r.te != nil ||
			!r.bodyErr && int64(len(r.body)) != n {
			t.Fatalf("ambiguous length framing: %+v", r)
		}
	default:
		if r.contentLength != 0 || r.te != nil || r.body != "" || r.bodyErr {
			t.Fatalf("a body without framing: %+v", r)
		}
	}
}

// serialise appends the request as a client would send it.
func (r fuzzReq) serialise(b []byte) []byte {
	b = fmt.Appendf(b, "%s %s %s\r\nHost: %s\r\n", r.method, r.uri, r.proto, r.host)
	b = appendFields(b, r.header)
	if r.te != nil {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	b = append(b, "\r\n"...)
	if r.te == nil {
		return append(b, r.body...)
	}
	if r.body != "" {
		b = fmt.Appendf(b, "%x\r\n%s\r\n", len(r.body), r.body)
	}
	b = append(b, "0\r\n"...)
	b = appendFields(b, r.trailer)
	return append(b, "\r\n"...)
}

func appendFields(b []byte, h http.Header) []byte {
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range h {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range keys {
		for _, v := range h[k] {
			b = fmt.Appendf(b, "%s: %s\r\n", k, v)
		}
	}
	return b
}

// memConn is a net.Conn that reads in (split bytes at a time, 0: all),
// then EOF, and writes to out.
type memConn struct {
	in    []byte
	split int
	out   io.Writer
}

func (c *memConn) Read(p []byte) (int, error) {
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	if c.split > 0 && len(p) > c.split {
		p = p[:c.split]
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	return n, nil
}

func (c *memConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return memAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return memAddr{} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

type memAddr struct{}

func (memAddr) Network() string { return "mem" }
func (memAddr) String() string  { return "mem:1" }
