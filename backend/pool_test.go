package backend

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSequentialRequestsUseOneConnection(t *testing.T) {
	o := startOrigin(t, serveKeepAlive)
	b := newTestBackend(t, Config{}, o.addr())
	for i := 0; i < 1000; i++ {
		_, body := fetch(t, b, "GET", "/", nil)
		if body != "conn 1" {
			t.Fatalf("request %d answered on %q", i, body)
		}
	}
	s := stats(b)
	if s.Opened != 1 || s.Reused != 999 || o.conns.Load() != 1 {
		t.Fatalf("opened %d reused %d origin conns %d; want 1, 999, 1", s.Opened, s.Reused, o.conns.Load())
	}
	if s.Idle != 1 || s.Busy != 0 {
		t.Fatalf("idle %d busy %d; want 1, 0", s.Idle, s.Busy)
	}
}

func TestReuseOnlyAfterBodyReadToEnd(t *testing.T) {
	o := startOrigin(t, serveKeepAlive)
	b := newTestBackend(t, Config{}, o.addr())
	first, err := get(t, b, "GET", "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The first response's content is unread: its connection is busy.
	if _, body := fetch(t, b, "GET", "/", nil); body != "conn 2" {
		t.Fatalf("second request answered on %q, want a new connection", body)
	}
	io.ReadAll(first.Body)
	first.Body.Close()
	if _, body := fetch(t, b, "GET", "/", nil); body != "conn 2" && body != "conn 1" {
		t.Fatalf("third request answered on %q", body)
	}
	if s := stats(b); s.Opened != 2 || s.Reused != 1 {
		t.Fatalf("opened %d reused %d; want 2, 1", s.Opened, s.Reused)
	}
}

func TestAbandonedBodyClosesConnection(t *testing.T) {
	o := startOrigin(t, serveKeepAlive)
	b := newTestBackend(t, Config{}, o.addr())
	resp, err := get(t, b, "GET", "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // before reading: state unknown, never pooled
	fetch(t, b, "GET", "/", nil)
	if s := stats(b); s.Opened != 2 || s.Retired.Error != 1 {
		t.Fatalf("opened %d retired-error %d; want 2, 1", s.Opened, s.Retired.Error)
	}
}

// TestRetirement covers each way an origin ends persistence (RFC 9112 §9.3,
// §9.6, §6.3) and the way it keeps it.
func TestRetirement(t *testing.T) {
	tests := []struct {
		name     string
		response string
		reused   bool
		reason   func(ServerStats) uint64
	}{
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false,
			func(s ServerStats) uint64 { return s.Retired.OriginClose }},
		{"connection close among options", "HTTP/1.1 200 OK\r\nConnection: x-foo, CLOSE\r\nX-Foo: 1\r\nContent-Length: 2\r\n\r\nok", false,
			func(s ServerStats) uint64 { return s.Retired.OriginClose }},
		{"http/1.0 without keep-alive", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false,
			func(s ServerStats) uint64 { return s.Retired.OriginClose }},
		{"http/1.0 with keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", true, nil},
		{"keep-alive max=0", "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=0\r\nContent-Length: 2\r\n\r\nok", false,
			func(s ServerStats) uint64 { return s.Retired.OriginHint }},
		{"keep-alive max=1", "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=1\r\nContent-Length: 2\r\n\r\nok", true, nil},
		// timeout=1 is below the 1s default margin, which shrinks to a
		// quarter of it: 750ms of reuse (reuseWindow).
		{"keep-alive timeout below margin", "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 2\r\n\r\nok", true, nil},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", true, nil},
		{"HEAD-like 304 with length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", true, nil},
		{"204", "HTTP/1.1 204 No Content\r\n\r\n", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := startOrigin(t, func(c *originConn) {
				for {
					if _, _, err := c.readRequest(); err != nil {
						return
					}
					c.write(tt.response)
					if !tt.reused {
						return // the origin closes as it said it would
					}
				}
			})
			b := newTestBackend(t, Config{}, o.addr())
			fetch(t, b, "GET", "/", nil)
			fetch(t, b, "GET", "/", nil)
			s := stats(b)
			if want := map[bool]uint64{true: 1, false: 2}[tt.reused]; s.Opened != want {
				t.Fatalf("opened %d connections, want %d", s.Opened, want)
			}
			if tt.reason != nil && tt.reason(s) != 2 {
				t.Fatalf("retirement reason counted %d, want 2: %+v", tt.reason(s), s.Retired)
			}
		})
	}
}

func TestCloseDelimitedBody(t *testing.T) {
	o := startOrigin(t, func(c *originConn) {
		c.readRequest()
		c.write("HTTP/1.1 200 OK\r\n\r\nuntil the end")
	})
	b := newTestBackend(t, Config{}, o.addr())
	resp, body := fetch(t, b, "GET", "/", nil)
	if body != "until the end" || resp.ContentLength != -1 || !resp.Close {
		t.Fatalf("body %q length %d close %v", body, resp.ContentLength, resp.Close)
	}
	if s := stats(b); s.Retired.OriginClose != 1 || s.Idle != 0 {
		t.Fatalf("retired %+v idle %d", s.Retired, s.Idle)
	}
}

// TestFramingInDoubt: RFC 9112 §6.3 and §11.2: a response whose framing is
// in doubt is not forwarded and its connection is closed.
func TestFramingInDoubt(t *testing.T) {
	tests := []struct{ name, response string }{
		{"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
		{"conflicting CL", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"},
		{"conflicting CL list", "HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok"},
		{"signed CL", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok"},
		{"hex CL", "HTTP/1.1 200 OK\r\nContent-Length: 0x2\r\n\r\nok"},
		{"underscore CL", "HTTP/1.1 200 OK\r\nContent-Length: 1_0\r\n\r\nok"},
		{"empty CL", "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\nok"},
		{"TE gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok"},
		{"TE chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
		{"TE on HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
		{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok"},
		{"bare CR in field", "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok"},
		{"NUL in value", "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok"},
		{"bad status line", "HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok"},
		{"HTTP/2 status line", "HTTP/2 200 OK\r\nContent-Length: 2\r\n\r\nok"},
		{"101 without upgrade", "HTTP/1.1 101 Switching Protocols\r\n\r\n"},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n"},
		{"chunk size overflow", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nok\r\n0\r\n\r\n"},
		{"chunk without CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n"},
		{"chunk line bare LF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n"},
		{"short CL body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok"},
		{"truncated chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			originClosed := contains(tt.name, "short") || contains(tt.name, "truncated")
			seen := make(chan error, 1)
			o := startOrigin(t, func(c *originConn) {
				if c.n > 1 {
					serveKeepAlive(c)
					return
				}
				c.readRequest()
				c.write(tt.response)
				if originClosed {
					c.Close()
					seen <- io.EOF
					return
				}
				// The proxy must close the connection: wait to see it.
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, err := c.br.ReadByte()
				seen <- err
			})
			b := newTestBackend(t, Config{}, o.addr())
			resp, err := get(t, b, "GET", "/", nil)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if err == nil {
				t.Fatalf("response accepted, want an error")
			}
			var e *Error
			if !errors.As(err, &e) || e.Timeout() {
				t.Fatalf("error %v: want a non-timeout *Error", err)
			}
			if err := <-seen; err != io.EOF {
				t.Fatalf("origin saw %v, want the proxy to close the connection", err)
			}
			// The next request gets a fresh connection and succeeds.
			if _, body := fetch(t, b, "GET", "/", nil); body != "conn 2" {
				t.Fatalf("next request answered on %q", body)
			}
			if s := stats(b); s.Retired.Error != 1 {
				t.Fatalf("retired %+v, want one error", s.Retired)
			}
		})
	}
}

func TestChunkedTrailers(t *testing.T) {
	o := startOrigin(t, func(c *originConn) {
		for {
			if _, _, err := c.readRequest(); err != nil {
				return
			}
			c.write("HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n" +
				"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\nX-Late: yes\r\n\r\n")
		}
	})
	b := newTestBackend(t, Config{}, o.addr())
	for i := 0; i < 2; i++ {
		resp, body := fetch(t, b, "GET", "/", nil)
		if body != "hello world" {
			t.Fatalf("body %q", body)
		}
		if got := resp.Trailer.Get("X-Sum"); got != "42" {
			t.Fatalf("trailer X-Sum %q", got)
		}
		if got := resp.Trailer.Get("X-Late"); got != "yes" {
			t.Fatalf("unannounced trailer X-Late %q", got)
		}
	}
	if s := stats(b); s.Opened != 1 {
		t.Fatalf("opened %d, want 1: a chunked response keeps the connection", s.Opened)
	}
}

func TestStrayBytesMakeIdleConnectionDead(t *testing.T) {
	sent := make(chan struct{})
	o := startOrigin(t, func(c *originConn) {
		if c.n == 1 {
			c.readRequest()
			// A 204 followed by bytes no request asked for.
			c.write("HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil")
			close(sent)
			io.Copy(io.Discard, c)
			return
		}
		serveKeepAlive(c)
	})
	b := newTestBackend(t, Config{}, o.addr())
	fetch(t, b, "GET", "/", nil)
	<-sent
	pc := b.pools[0]
	waitFor(t, "the stray bytes to arrive", func() bool {
		pc.mu.Lock()
		defer pc.mu.Unlock()
		// Bytes that arrived with the 204 retire the connection at once
		// (readResponseHead); later ones make the idle connection dead.
		return len(pc.idle) == 0 || len(pc.idle) == 1 && !pc.idle[0].alive()
	})
	if _, body := fetch(t, b, "GET", "/", nil); body != "conn 2" {
		t.Fatalf("answered on %q: the stray response was taken for the answer", body)
	}
}

// TestReusedConnectionRace: the origin takes the request on a reused
// connection and closes without a byte of response, as an origin closing
// an idle connection does. Idempotent requests are retried on a fresh
// connection; others never are.
func TestReusedConnectionRace(t *testing.T) {
	tests := []struct {
		name, method, idempotencyKey string
		body                         string
		replayable                   bool // GetBody set
		wantRetry                    bool
	}{
		{name: "GET", method: "GET", wantRetry: true},
		{name: "HEAD", method: "HEAD", wantRetry: true},
		{name: "DELETE", method: "DELETE", wantRetry: true},
		{name: "POST", method: "POST", wantRetry: false},
		{name: "POST with idempotency key", method: "POST", idempotencyKey: "k1", wantRetry: true},
		{name: "PATCH", method: "PATCH", wantRetry: false},
		{name: "PUT replayable content", method: "PUT", body: "content", replayable: true, wantRetry: true},
		{name: "PUT consumed content", method: "PUT", body: "content", wantRetry: false},
		{name: "POST replayable content", method: "POST", body: "content", replayable: true, wantRetry: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var seen []string // method seen on each connection, "conn:method"
			o := startOrigin(t, func(c *originConn) {
				for i := 0; ; i++ {
					req, _, err := c.readRequest()
					if err != nil {
						return
					}
					mu.Lock()
					seen = append(seen, req.Method)
					mu.Unlock()
					if c.n == 1 && i == 1 {
						return // close without answering the second request
					}
					c.write(okResponse("ok"))
				}
			})
			b := newTestBackend(t, Config{}, o.addr())
			fetch(t, b, "GET", "/", nil)
			req, _ := http.NewRequest(tt.method, "http://origin.test/", nil)
			if tt.body != "" {
				req, _ = http.NewRequest(tt.method, "http://origin.test/", strings.NewReader(tt.body))
				if !tt.replayable {
					req.GetBody = nil
				}
			}
			if tt.idempotencyKey != "" {
				req.Header.Set("Idempotency-Key", tt.idempotencyKey)
			}
			resp, err := b.RoundTrip(req)
			if tt.wantRetry {
				if err != nil {
					t.Fatalf("lost to the race: %v", err)
				}
				resp.Body.Close()
			} else if err == nil {
				t.Fatalf("a non-idempotent request was retried")
			}
			s := stats(b)
			if got := s.Retried == 1; got != tt.wantRetry {
				t.Fatalf("retried %d", s.Retried)
			}
			mu.Lock()
			defer mu.Unlock()
			want := 2
			if tt.wantRetry {
				want = 3
			}
			if len(seen) != want {
				t.Fatalf("origin saw %v, want %d requests", seen, want)
			}
		})
	}
}

func TestPoolLimitAndWaitQueue(t *testing.T) {
	o := startOrigin(t, serveKeepAlive)
	b := newTestBackend(t, Config{MaxConnsPerServer: 1, MaxWaiters: 1}, o.addr())
	held, err := get(t, b, "GET", "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan string)
	go func() {
		resp, err := get(t, b, "GET", "/", nil)
		if err != nil {
			waited <- err.Error()
			return
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		waited <- string(data)
	}()
	pc := b.pools[0]
	waitFor(t, "the second request to queue", func() bool {
		pc.mu.Lock()
		defer pc.mu.Unlock()
		return len(pc.waiters) == 1
	})
	_, err = get(t, b, "GET", "/", nil)
	var e *Error
	if !errors.As(err, &e) || !e.Unavailable() || !errors.Is(err, ErrPoolFull) {
		t.Fatalf("third request: %v, want ErrPoolFull", err)
	}
	io.ReadAll(held.Body)
	held.Body.Close()
	if got := <-waited; got != "conn 1" {
		t.Fatalf("queued request got %q, want the released connection", got)
	}
	if s := stats(b); s.Opened != 1 || s.Reused != 1 {
		t.Fatalf("opened %d reused %d", s.Opened, s.Reused)
	}
}

func TestWaiterCancelled(t *testing.T) {
	o := startOrigin(t, serveKeepAlive)
	b := newTestBackend(t, Config{MaxConnsPerServer: 1}, o.addr())
	held, err := get(t, b, "GET", "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://origin.test/", nil)
		_, err := b.RoundTrip(req)
		done <- err
	}()
	pc := b.pools[0]
	waitFor(t, "the request to queue", func() bool {
		pc.mu.Lock()
		defer pc.mu.Unlock()
		return len(pc.waiters) == 1
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	io.ReadAll(held.Body)
	held.Body.Close()
	if s := stats(b); s.Idle != 1 {
		t.Fatalf("idle %d: the released connection should be pooled, not handed to a gone waiter", s.Idle)
	}
}

func TestResponseHeaderTimeout(t *testing.T) {
	o := startOrigin(t, func(c *originConn) {
		c.readRequest()
		io.Copy(io.Discard, c) // never answer
	})
	b := newTestBackend(t, Config{ResponseHeaderTimeout: 100 * time.Millisecond}, o.addr())
	_, err := get(t, b, "GET", "/", nil)
	var e *Error
	if !errors.As(err, &e) || !e.Timeout() {
		t.Fatalf("got %v, want a timeout", err)
	}
	if s := stats(b); s.Retired.Error != 1 || s.Idle != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestDialFailover(t *testing.T) {
	dead := startOrigin(t, serveKeepAlive)
	deadAddr := dead.addr()
	dead.ln.Close()
	o := startOrigin(t, serveKeepAlive)
	b := newTestBackend(t, Config{}, deadAddr, o.addr())
	for i := 0; i < 4; i++ {
		fetch(t, b, "GET", "/", nil)
	}
	all := b.Stats()
	if all[0].Failed != 2 || all[1].Opened != 1 {
		t.Fatalf("stats %+v", all)
	}
	b2 := newTestBackend(t, Config{}, deadAddr)
	_, err := get(t, b2, "GET", "/", nil)
	var e *Error
	if !errors.As(err, &e) || e.Op != "dial" || e.Timeout() || e.Unavailable() {
		t.Fatalf("got %v, want a dial error (502)", err)
	}
}

// TestClientGoneMidBody: the request content fails half way, as when a
// client disappears; the upstream connection is closed, never pooled.
func TestClientGoneMidBody(t *testing.T) {
	originSaw := make(chan error, 1)
	o := startOrigin(t, func(c *originConn) {
		_, _, err := c.readRequest()
		originSaw <- err
	})
	b := newTestBackend(t, Config{}, o.addr())
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte("part of it"))
		pw.CloseWithError(errors.New("client went away"))
	}()
	req, _ := http.NewRequest("POST", "http://origin.test/", pr)
	req.ContentLength = 100
	if _, err := b.RoundTrip(req); err == nil {
		t.Fatal("want an error")
	}
	if err := <-originSaw; err == nil {
		t.Fatal("origin read a complete request")
	}
	if s := stats(b); s.Idle != 0 || s.Retired.Error != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCancelWhileWaitingForResponse(t *testing.T) {
	o := startOrigin(t, func(c *originConn) {
		c.readRequest()
		io.Copy(io.Discard, c)
	})
	b := newTestBackend(t, Config{}, o.addr())
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://origin.test/", nil)
	done := make(chan error)
	go func() { _, err := b.RoundTrip(req); done <- err }()
	waitFor(t, "the request to be sent", func() bool { return stats(b).Busy == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if s := stats(b); s.Idle != 0 || s.Busy != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestEarlyResponseBeforeContent(t *testing.T) {
	o := startOrigin(t, func(c *originConn) {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		http.ReadRequest(c.br) // the head only
		c.write("HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n")
		io.Copy(io.Discard, c)
	})
	b := newTestBackend(t, Config{}, o.addr())
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest("POST", "http://origin.test/", pr)
	req.ContentLength = 1 << 20
	resp, err := b.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 413 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if s := stats(b); s.Idle != 0 || s.Retired.Error != 1 {
		t.Fatalf("stats %+v: a connection with unsent content must not be pooled", s)
	}
}

// TestPostKeepsConnection: a request with content whose response is read
// to its end before the content writer reports must not cost the
// connection (seen as "error" retirements behind nginx).
func TestPostKeepsConnection(t *testing.T) {
	o := startOrigin(t, serveKeepAlive)
	b := newTestBackend(t, Config{}, o.addr())
	for i := 0; i < 200; i++ {
		if _, body := fetch(t, b, "POST", "/", strings.NewReader("content")); body != "conn 1" {
			t.Fatalf("request %d answered on %q", i, body)
		}
	}
	if s := stats(b); s.Opened != 1 || s.Retired.Error != 0 {
		t.Fatalf("opened %d, retired %+v; want one connection, no errors", s.Opened, s.Retired)
	}
}
