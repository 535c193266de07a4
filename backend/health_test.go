package backend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// deadAddr returns a loopback address nobody listens on: dials to it are
// refused at once.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// countDials makes p count its dials; dial, if not nil, replaces the
// address dialed.
func countDials(p *pool, n *atomic.Int32, addr string) {
	d := &net.Dialer{}
	if addr == "" {
		addr = p.addr
	}
	p.dial = func(ctx context.Context) (net.Conn, error) {
		n.Add(1)
		return d.DialContext(ctx, "tcp", addr)
	}
}

func wantUnavailable(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || !e.Unavailable() || !errors.Is(err, ErrNoHealthyServer) {
		t.Fatalf("got %v, want an Unavailable error for no healthy server", err)
	}
}

// TestPassiveHealth: MaxFails dial failures in a row mark a server down,
// and round-robin passes it over without dialing; after FailTimeout one
// trial request goes to it: a failure marks it down again at once, a
// response brings it back. Requests meanwhile fail over to the healthy
// server, since a failed dial provably never reached the origin.
func TestPassiveHealth(t *testing.T) {
	good := startOrigin(t, serveKeepAlive) // outside the bubble: its goroutines block on the network
	dead := deadAddr(t)
	synctest.Test(t, func(t *testing.T) {
		b := newTestBackend(t, Config{PassiveHealth: PassiveHealth{MaxFails: 3, FailTimeout: 10 * time.Second}}, dead, good.addr())
		var dials atomic.Int32
		countDials(b.pools[0], &dials, "")
		for range 6 { // servers alternate first: three requests meet the dead one
			fetch(t, b, "GET", "/", nil)
		}
		if s := b.Stats()[0]; dials.Load() != 3 || s.Healthy || s.MarkedDown != 1 || s.Failed != 3 {
			t.Fatalf("after 3 failures: %d dials, %+v", dials.Load(), s)
		}
		for range 4 {
			fetch(t, b, "GET", "/", nil)
		}
		if dials.Load() != 3 {
			t.Fatalf("a server marked down was dialed: %d dials", dials.Load())
		}

		time.Sleep(10 * time.Second)
		fetch(t, b, "GET", "/", nil)
		fetch(t, b, "GET", "/", nil)
		if s := b.Stats()[0]; dials.Load() != 4 || s.Healthy || s.MarkedDown != 2 {
			t.Fatalf("failed trial: %d dials, %+v; want one dial and down again", dials.Load(), s)
		}
		fetch(t, b, "GET", "/", nil)
		fetch(t, b, "GET", "/", nil)
		if dials.Load() != 4 {
			t.Fatalf("dialed during the second down period: %d dials", dials.Load())
		}

		// The server comes back: the next trial succeeds.
		countDials(b.pools[0], &dials, good.addr())
		time.Sleep(10 * time.Second)
		fetch(t, b, "GET", "/", nil)
		fetch(t, b, "GET", "/", nil)
		if s := b.Stats()[0]; dials.Load() != 5 || !s.Healthy || s.MarkedDown != 2 {
			t.Fatalf("successful trial: %d dials, %+v", dials.Load(), s)
		}
		fetch(t, b, "GET", "/", nil)
		fetch(t, b, "GET", "/", nil)
		if s := b.Stats()[0]; s.Reused != 1 {
			t.Fatalf("recovered server not back in rotation: %+v", s)
		}
	})
}

// TestAllServersDown: with every server marked down, RoundTrip fails at
// once with an Unavailable error (503) and dials nothing.
func TestAllServersDown(t *testing.T) {
	b := newTestBackend(t, Config{PassiveHealth: PassiveHealth{MaxFails: 1, FailTimeout: time.Hour}}, deadAddr(t), deadAddr(t))
	var dials atomic.Int32
	countDials(b.pools[0], &dials, "")
	countDials(b.pools[1], &dials, "")
	_, err := get(t, b, "GET", "/", nil)
	var e *Error
	if !errors.As(err, &e) || e.Op != "dial" || dials.Load() != 2 {
		t.Fatalf("first request: %v after %d dials; want a dial error after trying both", err, dials.Load())
	}
	for range 3 {
		_, err = get(t, b, "POST", "/", nil)
		wantUnavailable(t, err)
	}
	if dials.Load() != 2 {
		t.Fatalf("%d dials; servers marked down were dialed", dials.Load())
	}
	for _, s := range b.Stats() {
		if s.Healthy || s.MarkedDown != 1 {
			t.Fatalf("%+v", s)
		}
	}
}

// TestPassiveHealthCounts: error statuses are responses and never mark a
// server down; Disabled turns passive health off.
func TestPassiveHealthCounts(t *testing.T) {
	t.Run("error status", func(t *testing.T) {
		o := startOrigin(t, func(c *originConn) {
			for {
				if _, _, err := c.readRequest(); err != nil {
					return
				}
				c.write("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
			}
		})
		b := newTestBackend(t, Config{PassiveHealth: PassiveHealth{MaxFails: 1}}, o.addr())
		for range 3 {
			if resp, _ := fetch(t, b, "GET", "/", nil); resp.StatusCode != 503 {
				t.Fatalf("status %d", resp.StatusCode)
			}
		}
		if s := stats(b); !s.Healthy || s.MarkedDown != 0 {
			t.Fatalf("%+v", s)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		b := newTestBackend(t, Config{PassiveHealth: PassiveHealth{Disabled: true, MaxFails: 1}}, deadAddr(t))
		var dials atomic.Int32
		countDials(b.pools[0], &dials, "")
		for range 5 {
			if _, err := get(t, b, "GET", "/", nil); err == nil {
				t.Fatal("no error from a dead server")
			}
		}
		if s := stats(b); dials.Load() != 5 || !s.Healthy || s.MarkedDown != 0 {
			t.Fatalf("%d dials, %+v", dials.Load(), s)
		}
	})
}

// healthOrigin answers every request with the status in status, and
// sends each request's host and target to seen if there is room.
func healthOrigin(t *testing.T, status *atomic.Int32, seen chan string) *rawOrigin {
	return startOrigin(t, func(c *originConn) {
		for {
			req, _, err := c.readRequest()
			if err != nil {
				return
			}
			select {
			case seen <- req.Host + " " + req.RequestURI:
			default:
			}
			c.write(fmt.Sprintf("HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n", status.Load()))
		}
	})
}

// TestActiveHealthCheck: a server goes down after UnhealthyThreshold
// failing checks and comes back after HealthyThreshold passing ones. The
// checks ask for the configured path with the server as Host, on
// connections of their own that the pool's counters never see.
func TestActiveHealthCheck(t *testing.T) {
	var status atomic.Int32
	status.Store(503)
	seen := make(chan string, 1)
	o := healthOrigin(t, &status, seen)
	synctest.Test(t, func(t *testing.T) {
		hc := &HealthCheck{Path: "/healthz?full=1", Interval: 5 * time.Second, Timeout: 2 * time.Second,
			HealthyThreshold: 2, UnhealthyThreshold: 3, ExpectStatus: StatusRange{200, 200}}
		b := newTestBackend(t, Config{HealthCheck: hc}, o.addr())
		time.Sleep(10*time.Second + time.Millisecond) // two failing checks
		if s := stats(b); !s.Healthy {
			t.Fatalf("down before the threshold: %+v", s)
		}
		if got, want := <-seen, o.addr()+" /healthz?full=1"; got != want {
			t.Fatalf("check sent %q, want %q", got, want)
		}
		time.Sleep(5 * time.Second) // the third
		if s := stats(b); s.Healthy || s.MarkedDown != 1 {
			t.Fatalf("after 3 failing checks: %+v", s)
		}
		conns := o.conns.Load()
		_, err := get(t, b, "GET", "/", nil)
		wantUnavailable(t, err)
		if o.conns.Load() != conns {
			t.Fatal("a request went to a server marked down")
		}

		status.Store(200)
		time.Sleep(5 * time.Second)
		if s := stats(b); s.Healthy {
			t.Fatalf("up after one passing check: %+v", s)
		}
		time.Sleep(5 * time.Second)
		s := stats(b)
		if !s.Healthy || s.MarkedDown != 1 {
			t.Fatalf("after 2 passing checks: %+v", s)
		}
		if s.Opened != 0 || s.Reused != 0 || s.Idle != 0 || s.Busy != 0 {
			t.Fatalf("health checks counted in the pool: %+v", s)
		}
		if n := o.conns.Load(); n != 5 {
			t.Fatalf("origin saw %d connections, want one per check (5)", n)
		}
		fetch(t, b, "GET", "/", nil)
		if s := stats(b); s.Opened != 1 {
			t.Fatalf("%+v", s)
		}
	})
}

// TestHealthCheckTimeout: an origin that accepts but never answers fails
// its checks by Timeout, and the checker is not stuck on it. Real time:
// a bubble's clock cannot advance while a check blocks on the network.
func TestHealthCheckTimeout(t *testing.T) {
	o := startOrigin(t, func(c *originConn) { c.readRequest(); c.br.ReadByte() })
	b := newTestBackend(t, Config{HealthCheck: &HealthCheck{Path: "/", Interval: 10 * time.Millisecond,
		Timeout: 20 * time.Millisecond, UnhealthyThreshold: 2}}, o.addr())
	waitFor(t, "the server marked down", func() bool { return !stats(b).Healthy })
	if s := stats(b); s.MarkedDown != 1 || o.conns.Load() < 2 {
		t.Fatalf("%+v after %d checks", s, o.conns.Load())
	}
}

// TestCloseStopsHealthChecks: Close ends the checker goroutines, and no
// check starts after it.
func TestCloseStopsHealthChecks(t *testing.T) {
	var status atomic.Int32
	status.Store(200)
	o := healthOrigin(t, &status, nil)
	before := runtime.NumGoroutine()
	b, err := New(Config{Name: "t", Servers: []string{o.addr(), deadAddr(t), o.addr()},
		HealthCheck: &HealthCheck{Path: "/", Interval: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "checks", func() bool { return o.conns.Load() >= 4 })
	b.Close()
	waitFor(t, "checker goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
	// A check dialed just before Close may still be in the accept queue.
	time.Sleep(20 * time.Millisecond)
	conns := o.conns.Load()
	time.Sleep(50 * time.Millisecond)
	if n := o.conns.Load(); n != conns {
		t.Fatalf("%d checks after Close", n-conns)
	}
	b.Close() // twice is harmless
}

func TestParseStatusRange(t *testing.T) {
	tests := []struct {
		in   string
		want StatusRange
		ok   bool
	}{
		{"200", StatusRange{200, 200}, true},
		{"2xx", StatusRange{200, 299}, true},
		{"3XX", StatusRange{300, 399}, true},
		{"599", StatusRange{599, 599}, true},
		{"600", StatusRange{}, false},
		{"099", StatusRange{}, false},
		{"2x", StatusRange{}, false},
		{"20x", StatusRange{}, false},
		{"", StatusRange{}, false},
	}
	for _, tt := range tests {
		got, err := ParseStatusRange(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseStatusRange(%q) = %v, %v", tt.in, got, err)
		}
	}
	if (StatusRange{}).match(204) != true || (StatusRange{}).match(301) {
		t.Error("zero StatusRange is not 2xx")
	}
}
