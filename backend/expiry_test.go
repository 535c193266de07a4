package backend

import (
	"runtime"
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
