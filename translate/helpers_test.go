package translate

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// guard bounds every wait on a channel in these tests. It is not a timing
// assertion: nothing here is expected to take more than a few
// milliseconds, and a test that reaches the guard has deadlocked (for
// example, a response that is never flushed).
const guard = 10 * time.Second

// discardLogger keeps the handler's warnings out of the test output.
var discardLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeRT is the upstream side of every unit test: a RoundTripper that
// records what the handler sends and answers with a scripted function.
type fakeRT struct {
	mu    sync.Mutex
	reqs  []*http.Request
	hdrs  []http.Header // snapshot of each request's header when it arrived
	reply func(*http.Request) (*http.Response, error)
}

var _ http.RoundTripper = (*fakeRT)(nil)

func (f *fakeRT) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.hdrs = append(f.hdrs, req.Header.Clone())
	reply := f.reply
	f.mu.Unlock()
	if reply == nil {
		return newResp(req, http.StatusOK, nil, "ok"), nil
	}
	return reply(req)
}

// only returns the one request the fake received.
func (f *fakeRT) only(t *testing.T) *http.Request {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) != 1 {
		t.Fatalf("upstream got %d requests, want 1", len(f.reqs))
	}
	return f.reqs[0]
}

func (f *fakeRT) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

// newResp builds an HTTP/1.1 upstream response.
func newResp(req *http.Request, status int, h http.Header, body string) *http.Response {
	if h == nil {
		h = make(http.Header)
	}
	return &http.Response{
		Status:        http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: -1,
		Request:       req,
	}
}

// Errors a backend may return, described by behaviour only.
type (
	timeoutErr     struct{ msg string }
	unavailableErr struct{ msg string }
	tooLargeErr    struct{}
	// bothFalseErr has both methods and says no to both.
	bothFalseErr struct{}
)

func (e timeoutErr) Error() string         { return e.msg }
func (e timeoutErr) Timeout() bool         { return true }
func (e unavailableErr) Error() string     { return e.msg }
func (e unavailableErr) Unavailable() bool { return true }
func (tooLargeErr) Error() string          { return "backend: request content over the buffer limit" }
func (tooLargeErr) TooLarge() bool         { return true }
func (bothFalseErr) Error() string         { return "backend: neither" }
func (bothFalseErr) Timeout() bool         { return false }
func (bothFalseErr) Unavailable() bool     { return false }

// newHandler builds a Handler with one any-host route to rt.
func newHandler(t *testing.T, rt http.RoundTripper) *Handler {
	t.Helper()
	h, err := New(Config{
		Routes:   []Route{{PathPrefix: "/", Backend: "b"}},
		Backends: map[string]http.RoundTripper{"b": rt},
		Logger:   discardLogger,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

// recWriter records exactly what the handler did to the ResponseWriter,
// which httptest.ResponseRecorder cannot tell (it reports 200 for a
// handler that wrote nothing).
type recWriter struct {
	header http.Header
	codes  []int
	body   strings.Builder
}

func newRecWriter() *recWriter { return &recWriter{header: make(http.Header)} }

func (w *recWriter) Header() http.Header { return w.header }
func (w *recWriter) WriteHeader(code int) {
	w.codes = append(w.codes, code)
}
func (w *recWriter) Write(p []byte) (int, error) {
	if len(w.codes) == 0 {
		w.codes = append(w.codes, http.StatusOK)
	}
	return w.body.Write(p)
}

// deadlineWriter is a ResponseWriter that, like those of net/http, x/net
// http2 and quic-go http3, can set a read deadline; it records the calls.
type deadlineWriter struct {
	*httptest.ResponseRecorder
	mu        sync.Mutex
	deadlines []time.Time
}

func (w *deadlineWriter) SetReadDeadline(t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.deadlines = append(w.deadlines, t)
	return nil
}

// mode is a downstream protocol a real client speaks to the proxy.
type mode string

const (
	modeH1    mode = "h1"     // HTTP/1.1 over TCP
	modeH1TLS mode = "h1-tls" // HTTP/1.1 over TLS
	modeH2    mode = "h2"     // HTTP/2 over TLS
)

var allModes = []mode{modeH1, modeH1TLS, modeH2}

// startProxy serves h on a loopback server speaking m, and returns the
// server and a client for it. The server is closed at the end of the test.
func startProxy(t *testing.T, m mode, h http.Handler) (*httptest.Server, *http.Client) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	switch m {
	case modeH1:
		srv.Start()
	case modeH1TLS:
		srv.StartTLS()
	case modeH2:
		srv.EnableHTTP2 = true
		srv.StartTLS()
	default:
		t.Fatalf("unknown mode %q", m)
	}
	t.Cleanup(srv.Close)
	c := srv.Client()
	c.Timeout = guard // a response that never comes fails the test, not the run
	if tr, ok := c.Transport.(*http.Transport); ok {
		tr.DisableCompression = true
	}
	return srv, c
}

// runModes runs f once per downstream protocol, as a subtest.
func runModes(t *testing.T, modes []mode, f func(t *testing.T, m mode)) {
	t.Helper()
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) { f(t, m) })
	}
}

// wantProtoMajor is what the handler sees in r.ProtoMajor for each mode.
func wantProtoMajor(m mode) int {
	if m == modeH2 {
		return 2
	}
	return 1
}

// rawConn dials a plain-TCP test server for requests written by hand.
func rawConn(t *testing.T, srv *httptest.Server) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(guard))
	return c, bufio.NewReader(c)
}

// recvOrFail waits for a value on ch, failing the test at the guard.
func recvOrFail[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(guard):
		t.Fatalf("deadlock guard: %s never happened", what)
	}
	var zero T
	return zero
}

// ctxCancelled returns a context that is already cancelled.
func ctxCancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
