package h1

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// waitLimit only guards against hangs; no test asserts a speed.
const waitLimit = 30 * time.Second

// testConn is one Conn serving a real loopback TCP connection.
type testConn struct {
	sc     *Conn
	client net.Conn
	br     *bufio.Reader
	done   chan struct{} // closed when Serve returns
}

// serveTCP accepts one loopback connection and serves it with h. wrap, if
// set, wraps the server's side (to cut its reads).
func serveTCP(t *testing.T, h http.Handler, cfg *Config, wrap func(net.Conn) net.Conn) *testConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, ok := <-accepted
	if !ok {
		t.Fatal("h1: accept failed")
	}
	if wrap != nil {
		server = wrap(server)
	}
	if cfg == nil {
		cfg = &Config{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	tc := &testConn{sc: NewConn(server, h, cfg), client: client, br: bufio.NewReader(client), done: make(chan struct{})}
	client.SetDeadline(time.Now().Add(waitLimit))
	go func() {
		defer close(tc.done)
		tc.sc.Serve()
	}()
	t.Cleanup(func() {
		client.Close()
		tc.sc.Close()
		<-tc.done
	})
	return tc
}

func (tc *testConn) send(t *testing.T, raw string) {
	t.Helper()
	if _, err := io.WriteString(tc.client, raw); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// read reads one response (to a request of method) with its body.
func (tc *testConn) read(t *testing.T, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(tc.br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading response body: %v", err)
	}
	return resp, string(body)
}

// expectEOF checks that the server closed the connection (after the
// responses read so far) and that Serve returned.
func (tc *testConn) expectEOF(t *testing.T) {
	t.Helper()
	if b, err := tc.br.ReadByte(); err == nil {
		rest, _ := tc.br.Peek(tc.br.Buffered())
		t.Errorf("connection not closed: read %q%q", b, rest)
	}
	select {
	case <-tc.done:
	case <-time.After(waitLimit):
		t.Error("Serve did not return")
	}
}

// okHandler answers the path, reading the body (echoed) if any.
var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusUnprocessableEntity)
		return
	}
	fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, body)
})

// TestPipelining: three requests in one write are answered in order, on
// one connection, bodies included.
func TestPipelining(t *testing.T) {
	tc := serveTCP(t, okHandler, nil, nil)
	tc.send(t, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"+
		"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"+
		"GET /3 HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, want := range []string{"GET /1 ", "POST /2 hello", "GET /3 "} {
		resp, body := tc.read(t, "GET")
		if resp.StatusCode != 200 || body != want || resp.Close {
			t.Errorf("got %d %q close=%v, want 200 %q kept", resp.StatusCode, body, resp.Close, want)
		}
	}
	// And the connection still serves.
	tc.send(t, "GET /4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if resp, body := tc.read(t, "GET"); body != "GET /4 " || !resp.Close {
		t.Errorf("last: %q close=%v", body, resp.Close)
	}
	tc.expectEOF(t)
}

// TestExpectContinue: RFC 9110 §10.1.1. "100 Continue" goes out only when
// the handler reads the body; a handler that answers without reading gets
// its final response sent with no 100 before it, and the connection
// closes (the client may or may not send the body now).
func TestExpectContinue(t *testing.T) {
	const head = "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
	t.Run("read", func(t *testing.T) {
		tc := serveTCP(t, okHandler, nil, nil)
		tc.send(t, head)
		resp, _ := tc.read(t, "POST")
		if resp.StatusCode != http.StatusContinue {
			t.Fatalf("first response %d, want 100", resp.StatusCode)
		}
		tc.send(t, "hello")
		resp, body := tc.read(t, "POST")
		if resp.StatusCode != 200 || body != "POST /up hello" || resp.Close {
			t.Errorf("final: %d %q close=%v", resp.StatusCode, body, resp.Close)
		}
	})
	t.Run("not read", func(t *testing.T) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no", http.StatusForbidden)
		})
		tc := serveTCP(t, h, nil, nil)
		tc.send(t, head)
		resp, _ := tc.read(t, "POST")
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("first response %d, want 403 (no 100 Continue)", resp.StatusCode)
		}
		if !resp.Close {
			t.Error("response to an unread Expect body without Connection: close")
		}
		tc.expectEOF(t)
	})
	t.Run("HTTP/1.0 ignored", func(t *testing.T) {
		// RFC 9110 §10.1.1: a 100-continue from an HTTP/1.0 client is
		// ignored; the body comes at once.
		tc := serveTCP(t, okHandler, nil, nil)
		tc.send(t, "POST /up HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello")
		resp, body := tc.read(t, "POST")
		if resp.StatusCode != 200 || body != "POST /up hello" {
			t.Errorf("got %d %q", resp.StatusCode, body)
		}
	})
}

// TestChunkedTrailers: a chunked request body with extensions and a
// trailer section (RFC 9112 §7.1); framing fields in the trailers are
// dropped (RFC 9110 §6.5.1).
func TestChunkedTrailers(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, declared := r.Trailer["X-T"]
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusUnprocessableEntity)
			return
		}
		fmt.Fprintf(w, "%s|%d|%v|%q|%q|%q", body, r.ContentLength, declared,
			r.Trailer.Values("X-T"), r.Trailer.Values("Content-Length"), r.TransferEncoding)
	})
	tc := serveTCP(t, h, nil, nil)
	tc.send(t, "POST /p HTTP/1.1\r\nHost: x\r\nTrailer: X-T\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"3;name=val\r\nabc\r\n"+"A\r\n0123456789\r\n"+"0\r\nX-T: one\r\nx-t: two\r\nContent-Length: 99\r\n\r\n"+
		"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
	_, body := tc.read(t, "POST")
	if want := `abc0123456789|-1|true|["one" "two"]|[]|["chunked"]`; body != want {
		t.Errorf("got  %s\nwant %s", body, want)
	}
	// The next request starts right after the trailer section.
	if _, body := tc.read(t, "GET"); body != `|0|false|[]|[]|[]` {
		t.Errorf("next request: %s", body)
	}
}

// TestHTTP10Persistence: HTTP/1.0 opts in with "Connection: keep-alive"
// (RFC 9112 §C.2.2, §9.3) and is told so; without it the connection
// closes after the response, which then needs no "Connection: close"
// (as net/http: closing is HTTP/1.0's default).
func TestHTTP10Persistence(t *testing.T) {
	tc := serveTCP(t, okHandler, nil, nil)
	for i := range 2 {
		tc.send(t, "GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
		resp, body := tc.read(t, "GET")
		if resp.Proto != "HTTP/1.0" || body != "GET /ka " || resp.Header.Get("Connection") != "keep-alive" || resp.Close {
			t.Fatalf("keep-alive %d: %s %q Connection %q close=%v", i, resp.Proto, body, resp.Header.Get("Connection"), resp.Close)
		}
	}
	tc.send(t, "GET /last HTTP/1.0\r\n\r\n")
	resp, body := tc.read(t, "GET")
	if body != "GET /last " || len(resp.Header["Connection"]) != 0 || !resp.Close {
		t.Errorf("last: %q Connection %q close=%v", body, resp.Header["Connection"], resp.Close)
	}
	tc.expectEOF(t)
}

// TestMaxRequestsPerConn: the last request allowed is answered with
// "Connection: close" (RFC 9112 §9.6) and the connection ends, even with
// more requests pipelined behind it.
func TestMaxRequestsPerConn(t *testing.T) {
	tc := serveTCP(t, okHandler, &Config{MaxRequestsPerConn: 2, KeepAliveHeader: true, IdleTimeout: 30 * time.Second}, nil)
	tc.send(t, strings.Repeat("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 3))
	resp, _ := tc.read(t, "GET")
	if resp.Close || resp.Header.Get("Keep-Alive") != "timeout=30, max=1" {
		t.Errorf("first: close=%v Keep-Alive %q", resp.Close, resp.Header.Get("Keep-Alive"))
	}
	resp, _ = tc.read(t, "GET")
	if !resp.Close || resp.Header.Get("Keep-Alive") != "" {
		t.Errorf("second: close=%v Keep-Alive %q", resp.Close, resp.Header.Get("Keep-Alive"))
	}
	tc.expectEOF(t)
}

// TestMaxHeaderBytes: a head over the limit gets 431 and the connection
// closes; the handler never runs. One at the limit is served.
func TestMaxHeaderBytes(t *testing.T) {
	const limit = 2048
	var calls sync.Map
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Store(r.URL.Path, true) })
	line := "GET /p HTTP/1.1\r\nHost: x\r\n"
	fits := line + "X-Big: " + strings.Repeat("a", limit-len(line)-len("X-Big: \r\n")) + "\r\n"
	if len(fits) != limit {
		t.Fatalf("test head %d bytes", len(fits))
	}
	for _, split := range []int{0, 100} {
		t.Run(fmt.Sprint("split-", split), func(t *testing.T) {
			tc := serveTCP(t, h, &Config{MaxHeaderBytes: limit}, splitter(split))
			tc.send(t, fits+"\r\n")
			if resp, _ := tc.read(t, "GET"); resp.StatusCode != 200 {
				t.Errorf("head at the limit: %d", resp.StatusCode)
			}
			tc.send(t, "GET /big HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", limit)+"\r\n\r\n")
			if resp, _ := tc.read(t, "GET"); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || !resp.Close {
				t.Errorf("head over the limit: %d close=%v, want 431 close", resp.StatusCode, resp.Close)
			}
			tc.expectEOF(t)
			if _, ok := calls.Load("/big"); ok {
				t.Error("the handler saw the oversized request")
			}
		})
	}
	// Beyond the pooled read buffer (8 KiB): the buffer grows to the limit.
	t.Run("large limit", func(t *testing.T) {
		tc := serveTCP(t, h, &Config{MaxHeaderBytes: 40 << 10}, nil)
		tc.send(t, "GET /large HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 30<<10)+"\r\n\r\n")
		if resp, _ := tc.read(t, "GET"); resp.StatusCode != 200 {
			t.Errorf("30 KiB head under a 40 KiB limit: %d", resp.StatusCode)
		}
	})
}

// TestDrain: Drain closes an idle connection at once; a request in
// progress is answered with "Connection: close", then the connection
// closes (RFC 9112 §9.6).
func TestDrain(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		tc := serveTCP(t, okHandler, nil, nil)
		tc.send(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		tc.read(t, "GET")
		tc.sc.Drain()
		tc.expectEOF(t)
	})
	t.Run("before the first request", func(t *testing.T) {
		tc := serveTCP(t, okHandler, nil, nil)
		tc.sc.Drain()
		tc.expectEOF(t)
	})
	t.Run("in flight", func(t *testing.T) {
		entered, release := make(chan struct{}), make(chan struct{})
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-release
			io.WriteString(w, strings.Repeat("x", 100<<10))
		})
		tc := serveTCP(t, h, nil, nil)
		tc.send(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /pipelined HTTP/1.1\r\nHost: x\r\n\r\n")
		<-entered
		tc.sc.Drain()
		close(release)
		resp, body := tc.read(t, "GET")
		if !resp.Close || len(body) != 100<<10 {
			t.Errorf("in-flight response: close=%v, %d body bytes", resp.Close, len(body))
		}
		tc.expectEOF(t)
	})
}

// splitter cuts every read of the server's side to at most n bytes (0:
// no cut), so that heads and bodies span reads.
func splitter(n int) func(net.Conn) net.Conn {
	if n == 0 {
		return nil
	}
	return func(c net.Conn) net.Conn { return splitConn{c.(*net.TCPConn), n} }
}

type splitConn struct {
	*net.TCPConn
	n int
}

func (c splitConn) Read(p []byte) (int, error) {
	if len(p) > c.n {
		p = p[:c.n]
	}
	return c.TCPConn.Read(p)
}

// The timeouts run on net.Pipe in a synctest bubble: the fake clock makes
// the deadlines exact, with no wall-clock bounds.

// pipeConn serves one end of a net.Pipe; it returns the client's end.
func pipeConn(t *testing.T, h http.Handler, cfg *Config) (net.Conn, *Conn, chan struct{}) {
	client, server := net.Pipe()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	sc := NewConn(server, h, cfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc.Serve()
	}()
	t.Cleanup(func() { client.Close(); sc.Close(); <-done })
	return client, sc, done
}

// TestIdleTimeout: the wait for a request's first byte, before the first
// request and between requests, ends after IdleTimeout.
func TestIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const idle = 7 * time.Second
		client, _, done := pipeConn(t, okHandler, &Config{IdleTimeout: idle, ReadHeaderTimeout: time.Hour})
		br := bufio.NewReader(client)
		start := time.Now()
		time.Sleep(idle - time.Second)
		io.WriteString(client, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request within the idle timeout: %v", err)
		}
		io.ReadAll(resp.Body)
		served := time.Now()
		if served.Sub(start) != idle-time.Second {
			t.Fatalf("fake clock moved %v while serving", served.Sub(start)-(idle-time.Second))
		}
		<-done
		if got := time.Since(served); got != idle {
			t.Errorf("closed %v after the response, want %v", got, idle)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("after the idle timeout: %v, want EOF", err)
		}
	})
}

// TestReadHeaderTimeout: a head must be complete ReadHeaderTimeout after
// its first byte; a stalled client is closed without a response, and the
// handler never runs.
func TestReadHeaderTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const rht = 3 * time.Second
		called := false
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true })
		client, _, done := pipeConn(t, h, &Config{IdleTimeout: time.Second, ReadHeaderTimeout: rht})
		start := time.Now()
		io.WriteString(client, "GET / HTTP/1.1\r\nHost:")
		time.Sleep(rht - time.Second) // past IdleTimeout: that wait ended with the first byte
		io.WriteString(client, " x\r\n")
		<-done
		if got := time.Since(start); got != rht {
			t.Errorf("closed after %v, want %v", got, rht)
		}
		if b, err := io.ReadAll(client); len(b) != 0 || err != nil {
			t.Errorf("a response to a stalled head: %q %v", b, err)
		}
		if called {
			t.Error("the handler ran")
		}
	})
}

// TestUnreadBody: a body the handler leaves is read by the engine up to
// maxDrain and the connection kept; beyond that, the connection closes
// (the response says so).
func TestUnreadBody(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) })
	t.Run("small", func(t *testing.T) {
		tc := serveTCP(t, h, nil, nil)
		tc.send(t, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"+
			"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"+
			"GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
		for _, want := range []string{"/a", "/b", "/c"} {
			if resp, body := tc.read(t, "GET"); body != want || resp.Close {
				t.Errorf("%q close=%v, want %q kept", body, resp.Close, want)
			}
		}
	})
	t.Run("large", func(t *testing.T) {
		tc := serveTCP(t, h, nil, nil)
		tc.send(t, fmt.Sprintf("POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", maxDrain+1))
		if resp, body := tc.read(t, "POST"); body != "/big" || !resp.Close {
			t.Errorf("%q close=%v, want /big with close", body, resp.Close)
		}
		tc.expectEOF(t)
	})
}

// TestClose: Close during a handler cancels the request's context and
// ends Serve.
func TestClose(t *testing.T) {
	entered := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
	})
	tc := serveTCP(t, h, nil, nil)
	tc.send(t, get11)
	<-entered
	tc.sc.Close()
	tc.expectEOF(t)
}

// TestAbortHandler: a handler that panics with http.ErrAbortHandler
// before its response went out leaves the client nothing but the close:
// not a status it would take for the response; any other panic before the
// response gets 500.
func TestAbortHandler(t *testing.T) {
	abort := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Partial", "1")
		_, _ = io.WriteString(w, "partial")
		panic(http.ErrAbortHandler)
	})
	tc := serveTCP(t, abort, nil, nil)
	tc.send(t, get11)
	tc.expectEOF(t)

	crash := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic("bug") })
	tc = serveTCP(t, crash, nil, nil)
	tc.send(t, get11)
	resp, err := http.ReadResponse(tc.br, nil)
	if err != nil || resp.StatusCode != 500 {
		t.Fatalf("a panicking handler: %v, %v; want 500", resp, err)
	}
}

// TestBodyAfterHandler: an http.RoundTripper may read or close a request
// body on its own goroutine after the handler returned (backend's request
// writer does). Such a late Read fails and a late Close does nothing; the
// next request on the connection keeps its own body.
func TestBodyAfterHandler(t *testing.T) {
	late := make(chan io.ReadCloser, 1)
	var mu sync.Mutex
	var bodies []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/first" {
			late <- r.Body // kept past the handler's return
			_, _ = io.WriteString(w, "first")
			return
		}
		b, err := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, fmt.Sprintf("%s %v", b, err))
		mu.Unlock()
		_, _ = io.WriteString(w, "second")
	})
	tc := serveTCP(t, h, nil, nil)
	tc.send(t, "POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	resp, err := http.ReadResponse(tc.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	old := <-late
	lateDone := make(chan error, 1)
	go func() {
		_, err := old.Read(make([]byte, 10))
		old.Close()
		lateDone <- err
	}()
	tc.send(t, "POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nsecond")
	if err := <-lateDone; err == nil {
		t.Error("a Read of the first request's body after its handler returned succeeded")
	}
	resp, err = http.ReadResponse(tc.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 1 || bodies[0] != "second <nil>" {
		t.Errorf("second request's handler read %q, want [\"second <nil>\"]", bodies)
	}
}
