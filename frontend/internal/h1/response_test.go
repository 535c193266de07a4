package h1

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// The ResponseWriter: framing chosen at commit (RFC 9112 §6.3, §7.1),
// bodies a status forbids, declared lengths, trailers, interim responses,
// handler panics. Each case is followed by a second request on the same
// connection when the connection must persist.

const get11 = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"

func TestResponseFraming(t *testing.T) {
	big := strings.Repeat("0123456789", 10<<10) // beyond the pending buffer
	tests := []struct {
		name    string
		req     string
		h       http.HandlerFunc
		status  int
		body    string
		cl      int64 // -1: none
		te      []string
		trailer map[string]string
		closed  bool
		noCL    bool  // no Content-Length field at all (204, 304)
		wantErr error // what the handler's last Write returned
	}{
		{name: "whole body gets a length", req: get11,
			h:      func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") },
			status: 200, body: "hello", cl: 5},
		{name: "empty body", req: get11,
			h:      func(w http.ResponseWriter, r *http.Request) {},
			status: 200, cl: 0},
		{name: "large body is chunked", req: get11,
			h:      func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, big) },
			status: 200, body: big, cl: -1, te: []string{"chunked"}},
		{name: "declared length, large body", req: get11,
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "102400")
				io.WriteString(w, big)
			},
			status: 200, body: big, cl: int64(len(big))},
		{name: "flush then body is chunked", req: get11,
			h: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "a")
				w.(http.Flusher).Flush()
				io.WriteString(w, "b")
			},
			status: 200, body: "ab", cl: -1, te: []string{"chunked"}},
		{name: "trailers, declared and prefixed", req: get11,
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Trailer", "X-Sum")
				io.WriteString(w, "data")
				w.Header().Set("X-Sum", "42")
				w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
			},
			status: 200, body: "data", cl: -1, te: []string{"chunked"},
			trailer: map[string]string{"X-Sum": "42", "X-Late": "yes"}},
		{name: "handler's Transfer-Encoding is ignored", req: get11,
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Transfer-Encoding", "gzip")
				io.WriteString(w, "x")
			},
			status: 200, body: "x", cl: 1},
		{name: "HEAD counts the body", req: "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
			h:      func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") },
			status: 200, cl: 5},
		{name: "204 has no body", req: get11,
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "5")
				w.WriteHeader(http.StatusNoContent)
				io.WriteString(w, "hello")
			},
			status: 204, cl: 0, noCL: true, wantErr: http.ErrBodyNotAllowed},
		{name: "304 has no body", req: get11,
			h: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNotModified)
				io.WriteString(w, "hello")
			},
			status: 304, cl: 0, noCL: true, wantErr: http.ErrBodyNotAllowed},
		{name: "write beyond the declared length", req: get11,
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "2")
				io.WriteString(w, "hello")
			},
			// As net/http: the write is refused, the response ends short
			// of its length, and only the close tells the client.
			status: 200, cl: 2, closed: true, wantErr: http.ErrContentLength},
		{name: "shorter than declared closes", req: get11,
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "9")
				io.WriteString(w, "hello")
			},
			status: 200, body: "hello", cl: 9, closed: true},
		{name: "HTTP/1.0 unknown length is close-delimited", req: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
			h: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "a")
				w.(http.Flusher).Flush()
				io.WriteString(w, "b")
			},
			status: 200, body: "ab", cl: -1, closed: true},
		{name: "handler Connection: close", req: get11,
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Connection", "close")
				io.WriteString(w, "x")
			},
			status: 200, body: "x", cl: 1, closed: true},
		{name: "panic before the head is a 500", req: get11,
			h:      func(w http.ResponseWriter, r *http.Request) { panic("boom") },
			status: 500, body: "Internal Server Error: handler failed\n", cl: -2, closed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The handler's last Write error, passed on when it returns
			// (a channel, not the response's bytes, orders the two
			// goroutines for the race detector).
			lastErrc := make(chan error, 1)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/next" {
					io.WriteString(w, "next")
					return
				}
				var lastErr error
				defer func() { lastErrc <- lastErr }()
				rec := &errRecorder{ResponseWriter: w, err: &lastErr}
				tt.h(rec, r)
			})
			tc := serveTCP(t, h, nil, nil)
			tc.send(t, tt.req)
			method, _, _ := strings.Cut(tt.req, " ")
			resp, err := http.ReadResponse(tc.br, &http.Request{Method: method})
			if err != nil {
				t.Fatal(err)
			}
			body, berr := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || string(body) != tt.body {
				t.Errorf("status %d, body %d bytes %.20q (%v); want %d, %d bytes", resp.StatusCode, len(body), body, berr, tt.status, len(tt.body))
			}
			if tt.cl != -2 && resp.ContentLength != tt.cl {
				t.Errorf("Content-Length %d, want %d", resp.ContentLength, tt.cl)
			}
			if _, ok := resp.Header["Content-Length"]; ok && tt.noCL {
				t.Errorf("Content-Length %q on %d", resp.Header["Content-Length"], resp.StatusCode)
			}
			if strings.Join(resp.TransferEncoding, ",") != strings.Join(tt.te, ",") {
				t.Errorf("Transfer-Encoding %q, want %q", resp.TransferEncoding, tt.te)
			}
			for k, v := range tt.trailer {
				if got := resp.Trailer.Get(k); got != v {
					t.Errorf("trailer %s %q, want %q (trailers %v)", k, got, v, resp.Trailer)
				}
			}
			if lastErr := <-lastErrc; !errors.Is(lastErr, tt.wantErr) {
				t.Errorf("handler's Write: %v, want %v", lastErr, tt.wantErr)
			}
			if tt.closed {
				if !resp.Close && resp.ProtoMinor == 1 {
					t.Error("closing response without Connection: close")
				}
				tc.expectEOF(t)
				return
			}
			if resp.Close {
				t.Error("response says close")
			}
			tc.send(t, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
			if _, body := tc.read(t, "GET"); body != "next" {
				t.Errorf("next request on the connection: %q", body)
			}
		})
	}
}

// errRecorder keeps the last error a Write returned.
type errRecorder struct {
	http.ResponseWriter
	err *error
}

func (r *errRecorder) Write(p []byte) (int, error) {
	n, err := r.ResponseWriter.Write(p)
	*r.err = err
	return n, err
}

func (r *errRecorder) Flush() { r.ResponseWriter.(http.Flusher).Flush() }

// TestInterimResponses: 103 Early Hints goes out at once with its fields
// (RFC 8297), before the final response; HTTP/1.0 gets none (RFC 9110
// §15.2).
func TestInterimResponses(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "final")
	})
	tc := serveTCP(t, h, nil, nil)
	tc.send(t, get11)
	resp, _ := tc.read(t, "GET")
	if resp.StatusCode != http.StatusEarlyHints || resp.Header.Get("Link") == "" {
		t.Fatalf("first: %d Link %q, want 103 with Link", resp.StatusCode, resp.Header.Get("Link"))
	}
	resp, body := tc.read(t, "GET")
	if resp.StatusCode != 200 || body != "final" || resp.Header.Get("Link") != "" {
		t.Errorf("final: %d %q Link %q", resp.StatusCode, body, resp.Header.Get("Link"))
	}
	tc.send(t, "GET / HTTP/1.0\r\n\r\n")
	if resp, body := tc.read(t, "GET"); resp.StatusCode != 200 || body != "final" {
		t.Errorf("HTTP/1.0: %d %q, want the final response only", resp.StatusCode, body)
	}
}

// TestResponseSplitting: CR and LF in a handler's field value cannot end
// the field (they become spaces, as net/http), and invalid names are
// dropped.
func TestResponseSplitting(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-A"] = []string{"a\r\nX-Injected: 1"}
		w.Header()["Bad Name"] = []string{"v"}
		io.WriteString(w, "ok")
	})
	tc := serveTCP(t, h, nil, nil)
	tc.send(t, get11)
	resp, body := tc.read(t, "GET")
	if body != "ok" || resp.Header.Get("X-Injected") != "" || resp.Header.Get("X-A") != "a  X-Injected: 1" {
		t.Errorf("body %q, header %v", body, resp.Header)
	}
	if _, ok := resp.Header["Bad Name"]; ok {
		t.Error("an invalid field name went out")
	}
}
