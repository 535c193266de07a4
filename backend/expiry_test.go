package backend

import (
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
