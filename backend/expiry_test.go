package backend

import (
	"io"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// The expiry tests run in a synctest bubble: the pool's clock and reaper
// timer are fake, so a 60-second idle timeout takes no real time. The
// origin runs outside the bubble, on real loopback sockets.

func TestIdleTimeoutRetiresConnection(t *testing.T) {
	o := startOrigin(t, serveKeepAlive)
	synctest.Test(t, func(t *testing.T) {
		b := newTestBackend(t, Config{IdleTimeout: 60 * time.Second}, o.addr())
		fetch(t, b, "GET", "/", nil)
		time.Sleep(59 * time.Second)
		synctest.Wait()
		if s := stats(b); s.Idle != 1 {
			t.Fatalf("before the idle timeout: %+v", s)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if s := stats(b); s.Idle != 0 || s.Retired.IdleTimeout != 1 {
			t.Fatalf("after the idle timeout: %+v", s)
		}
		fetch(t, b, "GET", "/", nil)
		if s := stats(b); s.Opened != 2 {
			t.Fatalf("opened %d, want a new connection", s.Opened)
		}
	})
}

// TestKeepAliveHintTimeout: "Keep-Alive: timeout=5" with the default 1s
// margin means the connection is not reused after 4s idle, although the
// configured idle timeout is longer.
func TestKeepAliveHintTimeout(t *testing.T) {
	o := startOrigin(t, func(c *originConn) {
		for {
			if _, _, err := c.readRequest(); err != nil {
				return
			}
			c.write("HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	synctest.Test(t, func(t *testing.T) {
		b := newTestBackend(t, Config{IdleTimeout: 60 * time.Second}, o.addr())
		fetch(t, b, "GET", "/", nil)
		time.Sleep(3900 * time.Millisecond)
		fetch(t, b, "GET", "/", nil)
		if s := stats(b); s.Opened != 1 || s.Reused != 1 {
			t.Fatalf("within the hint: %+v", s)
		}
		time.Sleep(4100 * time.Millisecond)
		synctest.Wait()
		fetch(t, b, "GET", "/", nil)
		if s := stats(b); s.Opened != 2 || s.Retired.OriginHint != 1 {
			t.Fatalf("past the hint: %+v", s)
		}
	})
}

// TestLearnedIdleTimeout: an origin that closes idle connections without
// announcing a timeout. The sweep sees the close within sweepInterval, the
// pool learns the idle time, and from then on retires connections that
// much less HintMargin before the origin would close them.
func TestLearnedIdleTimeout(t *testing.T) {
	closeNow := make(chan struct{})
	o := startOrigin(t, func(c *originConn) {
		if c.n == 1 {
			c.readRequest()
			c.write(okResponse("conn 1"))
			<-closeNow // the origin's idle timer, driven by the test
			return
		}
		serveKeepAlive(c)
	})
	synctest.Test(t, func(t *testing.T) {
		b := newTestBackend(t, Config{IdleTimeout: 60 * time.Second, HintMargin: time.Second}, o.addr())
		fetch(t, b, "GET", "/", nil)
		// Off the sweep's ticks, so that the reaper never runs while the
		// test itself does.
		time.Sleep(5*time.Second - sweepInterval/2)
		if s := stats(b); s.Idle != 1 || s.LearnedIdleTimeout != 0 {
			t.Fatalf("before the close: %+v", s)
		}
		close(closeNow)
		waitClosed(t, b)
		time.Sleep(sweepInterval)
		synctest.Wait()
		s := stats(b)
		if s.Idle != 0 || s.Retired.OriginClose != 1 {
			t.Fatalf("the sweep did not retire the closed connection: %+v", s)
		}
		if s.LearnedIdleTimeout < 5 || s.LearnedIdleTimeout > 5.5 {
			t.Fatalf("learned %vs, want 5s within the sweep interval", s.LearnedIdleTimeout)
		}
		fetch(t, b, "GET", "/", nil) // a new connection, now under the learned limit
		time.Sleep(time.Duration(s.LearnedIdleTimeout*float64(time.Second)) - time.Second + sweepInterval/2)
		synctest.Wait()
		if s := stats(b); s.Idle != 0 || s.Retired.Learned != 1 {
			t.Fatalf("the learned limit did not retire the connection: %+v", s)
		}
	})
}

// TestLearningIgnoresYoungCloses: a connection closed after a short idle
// time (an origin restart) teaches nothing.
func TestLearningIgnoresYoungCloses(t *testing.T) {
	closeNow := make(chan struct{})
	o := startOrigin(t, func(c *originConn) {
		c.readRequest()
		c.write(okResponse("x"))
		<-closeNow
	})
	synctest.Test(t, func(t *testing.T) {
		b := newTestBackend(t, Config{}, o.addr())
		fetch(t, b, "GET", "/", nil)
		time.Sleep(2*sweepInterval - sweepInterval/2)
		close(closeNow)
		waitClosed(t, b)
		time.Sleep(sweepInterval)
		synctest.Wait()
		if s := stats(b); s.Retired.OriginClose != 1 || s.LearnedIdleTimeout != 0 {
			t.Fatalf("%+v", s)
		}
	})
}

func TestMaxRequestsPerConn(t *testing.T) {
	o := startOrigin(t, serveKeepAlive)
	b := newTestBackend(t, Config{MaxRequestsPerConn: 3}, o.addr())
	for i := 0; i < 7; i++ {
		fetch(t, b, "GET", "/", nil)
	}
	if s := stats(b); s.Opened != 3 || s.Retired.MaxRequests != 2 {
		t.Fatalf("%+v", s)
	}
}

func TestMaxLifetime(t *testing.T) {
	o := startOrigin(t, serveKeepAlive)
	synctest.Test(t, func(t *testing.T) {
		b := newTestBackend(t, Config{MaxLifetime: 10 * time.Second}, o.addr())
		fetch(t, b, "GET", "/", nil)
		time.Sleep(5 * time.Second)
		fetch(t, b, "GET", "/", nil)
		time.Sleep(6 * time.Second)
		synctest.Wait()
		fetch(t, b, "GET", "/", nil)
		if s := stats(b); s.Opened != 2 || s.Reused != 1 || s.Retired.Lifetime != 1 {
			t.Fatalf("%+v", s)
		}
	})
}

// waitClosed waits, in real time, until the origin's FIN has reached the
// one idle connection: fake time stands still meanwhile.
func waitClosed(t *testing.T, b *Backend) {
	t.Helper()
	p := b.pools[0]
	for i := 0; i < 1e6; i++ {
		p.mu.Lock()
		closed := len(p.idle) == 1 && !p.idle[0].probe.alive()
		p.mu.Unlock()
		if closed {
			return
		}
		runtime.Gosched()
	}
	t.Fatal("the origin's close never arrived")
}

// TestReuseWindow: the margin kept short of an origin's idle timeout is
// HintMargin, but at most a quarter of the timeout.
func TestReuseWindow(t *testing.T) {
	tests := []struct {
		timeout, margin, want time.Duration
	}{
		{time.Second, time.Second, 750 * time.Millisecond}, // quarter: 3/4 usable, not 0
		{2 * time.Second, time.Second, 1500 * time.Millisecond},
		{4 * time.Second, time.Second, 3 * time.Second}, // quarter and margin meet
		{10 * time.Second, time.Second, 9 * time.Second},
		{10 * time.Second, 500 * time.Millisecond, 9500 * time.Millisecond},
		{0, time.Second, 0}, // no timeout known; callers skip it
	}
	for _, tt := range tests {
		if got := reuseWindow(tt.timeout, tt.margin); got != tt.want {
			t.Errorf("reuseWindow(%v, %v) = %v, want %v", tt.timeout, tt.margin, got, tt.want)
		}
	}
}

// TestShortKeepAliveTimeoutWire runs in real time against an origin that
// announces "Keep-Alive: timeout=1" and means it: it closes each
// connection that has sat idle 1s after its last response. With the
// default 1s HintMargin, scaled to 250ms, the pool may reuse a connection
// for 750ms of idleness: requests 300ms apart share one connection, and
// requests 900ms apart each get a fresh one, which the pool retires
// before the origin closes it. No request may fail or need a retry.
func TestShortKeepAliveTimeoutWire(t *testing.T) {
	tests := []struct {
		name     string
		gap      time.Duration
		requests int
		reuse    bool
	}{
		{"gap inside the window", 300 * time.Millisecond, 10, true},
		{"gap past the window", 900 * time.Millisecond, 4, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var idleCloses, peerCloses atomic.Int32 // how each origin connection ended
			o := startOrigin(t, func(c *originConn) {
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				for {
					req, err := http.ReadRequest(c.br)
					if err != nil {
						if ne, ok := err.(net.Error); ok && ne.Timeout() {
							idleCloses.Add(1) // the origin's idle timer
						} else {
							peerCloses.Add(1)
						}
						return
					}
					io.Copy(io.Discard, req.Body)
					c.write("HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 2\r\n\r\nok")
					c.SetReadDeadline(time.Now().Add(time.Second))
				}
			})
			b := newTestBackend(t, Config{IdleTimeout: 60 * time.Second}, o.addr())
			for i := range tt.requests {
				if i > 0 {
					time.Sleep(tt.gap)
				}
				if _, body := fetch(t, b, "GET", "/", nil); body != "ok" {
					t.Fatalf("request %d: body %q", i, body)
				}
			}
			s := stats(b)
			t.Logf("gap %v: origin saw %d connections; %+v", tt.gap, o.conns.Load(), s)
			if s.Failed != 0 || s.Retried != 0 {
				t.Fatalf("a request met a stale connection: failed %d, retried %d", s.Failed, s.Retried)
			}
			n := int(o.conns.Load())
			if uint64(n) != s.Opened {
				t.Fatalf("the origin accepted %d connections, the pool opened %d", n, s.Opened)
			}
			if tt.reuse {
				// One connection; a second only if the test was stalled
				// past the window once.
				if n > 2 || s.Reused < uint64(tt.requests-2) {
					t.Fatalf("%d connections, %d reused, for %d requests %v apart: want reuse", n, s.Reused, tt.requests, tt.gap)
				}
				if idleCloses.Load() != 0 {
					t.Fatalf("the origin closed %d connections on idle while the requests kept them busy", idleCloses.Load())
				}
				return
			}
			if n != tt.requests || s.Reused != 0 || s.Retired.OriginHint != uint64(tt.requests-1) {
				t.Fatalf("%d connections, %d reused, %d retired by the hint, for %d requests %v apart: want a fresh dial each, the pool retiring the last",
					n, s.Reused, s.Retired.OriginHint, tt.requests, tt.gap)
			}
			// The pool, not the origin, closed each idle connection: it
			// left at 750ms, before the origin's 1s.
			waitFor(t, "the origin to see the pool's closes", func() bool { return peerCloses.Load() == int32(tt.requests-1) })
			if idleCloses.Load() != 0 {
				t.Fatalf("the origin closed %d idle connections before the pool did", idleCloses.Load())
			}
		})
	}
}
