package translate

import (
	"bytes"
	"crypto/tls"
	"io"
	"net/http"
	"testing"
)

// cannedTransport answers every request with the same small response, the
// shape nginx gives a static file, so that the benchmark measures the
// handler's own work: routing, header translation both ways, forwarding
// fields and the body copy.
type cannedTransport struct{ body []byte }

func (t cannedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
	}
	return &http.Response{
		Status: "200 OK", StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{
			"Server":         {"nginx"},
			"Date":           {"Sat, 21 Nov 2026 12:00:00 GMT"},
			"Content-Type":   {"application/octet-stream"},
			"Content-Length": {"1024"},
			"Last-Modified":  {"Sat, 21 Nov 2026 11:00:00 GMT"},
			"Connection":     {"keep-alive"},
			"Etag":           {`"6740a0b0-400"`},
			"Accept-Ranges":  {"bytes"},
		},
		ContentLength: int64(len(t.body)),
		Body:          io.NopCloser(bytes.NewReader(t.body)),
		Request:       req,
	}, nil
}

// discardWriter is a reusable http.ResponseWriter and http.Flusher.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) Flush()                      {}

// BenchmarkServeHTTP is the header translation hot path: one GET as
// curl or a browser sends it over HTTP/2, through the handler and back.
func BenchmarkServeHTTP(b *testing.B) {
	h, err := New(Config{
		Routes:   []Route{{Backend: "app"}},
		Backends: map[string]http.RoundTripper{"app": cannedTransport{body: make([]byte, 1024)}},
	})
	if err != nil {
		b.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "https://example.com/index.html?q=1", nil)
	req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/2.0", 2, 0
	req.RemoteAddr = "192.0.2.10:50000"
	req.RequestURI = "/index.html?q=1"
	req.TLS = &tls.ConnectionState{}
	req.Header = http.Header{
		"User-Agent":      {"curl/8.5.0"},
		"Accept":          {"*/*"},
		"Accept-Encoding": {"gzip, deflate, br"},
		"Accept-Language": {"en-US,en;q=0.9"},
		"Cookie":          {"session=0123456789abcdef"},
	}
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
		if w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
	}
}
