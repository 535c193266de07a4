package backend

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestWriteRequest(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		target  string
		body    io.Reader
		length  int64
		header  http.Header
		trailer http.Header
		want    string
	}{
		{name: "GET sorted fields", method: "GET", target: "/a%2Fb?q=1",
			header: http.Header{"X-B": {"2"}, "Accept": {"*/*"}, "X-A": {"1", "one"}},
			want:   "GET /a%2Fb?q=1 HTTP/1.1\r\nHost: origin.test\r\nConnection: keep-alive\r\nAccept: */*\r\nX-A: 1\r\nX-A: one\r\nX-B: 2\r\n\r\n"},
		{name: "POST without content says so", method: "POST", target: "/",
			want: "POST / HTTP/1.1\r\nHost: origin.test\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"},
		{name: "POST with length", method: "POST", target: "/", body: strings.NewReader("hello"), length: 5,
			want: "POST / HTTP/1.1\r\nHost: origin.test\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello"},
		{name: "unknown length goes chunked with trailers", method: "PUT", target: "/", body: strings.NewReader("hello"), length: -1,
			trailer: http.Header{"X-Sum": {"9"}},
			want:    "PUT / HTTP/1.1\r\nHost: origin.test\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 9\r\n\r\n"},
		{name: "framing fields in the header are not trusted", method: "POST", target: "/", body: strings.NewReader("hi"), length: 2,
			header: http.Header{"Content-Length": {"999"}, "Transfer-Encoding": {"chunked"}, "Host": {"evil"}},
			want:   "POST / HTTP/1.1\r\nHost: origin.test\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi"},
		{name: "OPTIONS asterisk", method: "OPTIONS", target: "*",
			want: "OPTIONS * HTTP/1.1\r\nHost: origin.test\r\nConnection: keep-alive\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, "http://origin.test/", nil)
			if tt.target == "*" {
				req.URL.Path = "*"
			} else {
				req.URL, _ = req.URL.Parse(tt.target)
			}
			if tt.header != nil {
				req.Header = tt.header
			}
			if tt.body != nil {
				req.Body = io.NopCloser(tt.body)
				req.ContentLength = tt.length
			}
			req.Trailer = tt.trailer
			var buf bytes.Buffer
			w := bufio.NewWriter(&buf)
			framing := framingOf(req)
			if err := writeRequestHead(w, req, framing); err != nil {
				t.Fatal(err)
			}
			if framing != frameNone {
				if err := writeRequestBody(w, req, framing); err != nil {
					t.Fatal(err)
				}
			}
			w.Flush()
			if got := buf.String(); got != tt.want {
				t.Fatalf("wrote\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// TestWriteRequestRejectsInjection: nothing a caller passes can split a
// field or the request line (RFC 9110 §5.5, RFC 9112 §3).
func TestWriteRequestRejectsInjection(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*http.Request)
	}{
		{"CRLF in value", func(r *http.Request) { r.Header.Set("X-A", "a\r\nX-Evil: 1") }},
		{"LF in value", func(r *http.Request) { r.Header["X-A"] = []string{"a\nb"} }},
		{"NUL in value", func(r *http.Request) { r.Header["X-A"] = []string{"a\x00b"} }},
		{"space in name", func(r *http.Request) { r.Header["X A"] = []string{"1"} }},
		{"colon in name", func(r *http.Request) { r.Header["X:A"] = []string{"1"} }},
		{"bad method", func(r *http.Request) { r.Method = "GET /x HTTP/1.1\r\n" }},
		{"space in target", func(r *http.Request) { r.URL.RawQuery = "a b" }},
		{"CRLF in host", func(r *http.Request) { r.Host = "a\r\nX: y" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "http://origin.test/", nil)
			tt.mod(req)
			err := writeRequestHead(bufio.NewWriter(io.Discard), req, frameNone)
			if !errors.Is(err, errInvalidField) {
				t.Fatalf("got %v, want errInvalidField", err)
			}
		})
	}
}

func TestReadResponseHead(t *testing.T) {
	tests := []struct {
		name, in  string
		method    string
		status    int
		length    int64
		close     bool
		header    http.Header
		hintMax   int
		hintLimit bool
	}{
		{name: "no reason phrase", in: "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", status: 200, length: 0},
		{name: "bare LF lines", in: "HTTP/1.1 200 OK\nContent-Length: 3\n\n", status: 200, length: 3},
		{name: "obs-fold unfolded", in: "HTTP/1.1 200 OK\r\nX-A: one\r\n  two\r\nContent-Length: 0\r\n\r\n", status: 200,
			header: http.Header{"X-A": {"one two"}, "Content-Length": {"0"}}},
		{name: "OWS trimmed", in: "HTTP/1.1 200 OK\r\nX-A: \t v \t\r\nContent-Length: 0\r\n\r\n", status: 200,
			header: http.Header{"X-A": {"v"}, "Content-Length": {"0"}}},
		{name: "identical CL list", in: "HTTP/1.1 200 OK\r\nContent-Length: 4, 4\r\n\r\n", status: 200, length: 4,
			header: http.Header{"Content-Length": {"4"}}},
		{name: "HEAD keeps CL, no content", in: "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", method: "HEAD", status: 200, length: 0,
			header: http.Header{"Content-Length": {"99"}}},
		{name: "1xx skipped", in: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", status: 201},
		{name: "close-delimited", in: "HTTP/1.1 200 OK\r\n\r\n", status: 200, length: lengthUntilEOF, close: true},
		{name: "chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n", status: 200, length: lengthChunked},
		{name: "keep-alive hint", in: "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=7\r\nContent-Length: 0\r\n\r\n", status: 200, hintMax: 7, hintLimit: true},
		{name: "http/1.0 closes", in: "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", status: 200, close: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			var interim []int
			h, err := readResponseHead(bufio.NewReader(strings.NewReader(tt.in)), method, 4096, func(code int, _ http.Header) error {
				interim = append(interim, code)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if h.status != tt.status || h.bodyLength != tt.length || h.close != tt.close {
				t.Fatalf("status %d length %d close %v", h.status, h.bodyLength, h.close)
			}
			if tt.header != nil {
				for k, v := range tt.header {
					if got := h.header[k]; strings.Join(got, "|") != strings.Join(v, "|") {
						t.Fatalf("%s: %q, want %q", k, got, v)
					}
				}
			}
			if h.hint.hasMax != tt.hintLimit || h.hint.max != tt.hintMax {
				t.Fatalf("hint %+v", h.hint)
			}
			if tt.name == "1xx skipped" && (len(interim) != 2 || interim[0] != 100 || interim[1] != 103) {
				t.Fatalf("interim responses %v, want 100 and 103", interim)
			}
		})
	}
}

func TestResponseHeaderTooLarge(t *testing.T) {
	in := "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 10000) + "\r\n\r\n"
	_, err := readResponseHead(bufio.NewReaderSize(strings.NewReader(in), 16), "GET", 4096, nil)
	if !errors.Is(err, errHeaderTooLarge) {
		t.Fatalf("got %v", err)
	}
}

// FuzzReadResponse: the parser never panics, and whatever it accepts has
// one well-defined framing.
func FuzzReadResponse(f *testing.F) {
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	f.Add("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX: y\r\n\r\n")
	f.Add("HTTP/1.0 200 OK\r\n\r\nrest")
	f.Add("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
	f.Add("HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 1, 1\r\n\r\nx")
	f.Fuzz(func(t *testing.T, in string) {
		br := bufio.NewReaderSize(strings.NewReader(in), 64)
		h, err := readResponseHead(br, "GET", 1024, nil)
		if err != nil {
			return
		}
		_, te := h.header["Transfer-Encoding"]
		_, cl := h.header["Content-Length"]
		if te && cl {
			t.Fatalf("accepted both Transfer-Encoding and Content-Length: %q", in)
		}
		if h.bodyLength < lengthUntilEOF || (h.bodyLength == lengthUntilEOF && !h.close) {
			t.Fatalf("length %d close %v for %q", h.bodyLength, h.close, in)
		}
		var r io.Reader
		switch {
		case h.bodyLength >= 0:
			r = &lengthReader{br: br, remaining: h.bodyLength}
		case h.bodyLength == lengthChunked:
			r = &chunkedReader{br: br, trailer: http.Header{}}
		default:
			r = eofReader{br: br}
		}
		io.Copy(io.Discard, io.LimitReader(r, 1<<20))
	})
}
