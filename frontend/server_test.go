package frontend

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// protoHandler answers with the protocol the request arrived on and hands
// it to the test.
func protoHandler(seen chan<- string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case seen <- r.Proto:
		default:
		}
		_, _ = w.Write([]byte("hello over " + r.Proto))
	})
}

// TestProtocolMatrix: every client protocol reaches the handler with the
// right r.Proto; HTTP/1.1 and HTTP/2 responses advertise HTTP/3 on the bound
// port, unless HTTP/3 is disabled; HTTP/3 responses do not.
func TestProtocolMatrix(t *testing.T) {
	type tc struct {
		mode         string
		disableHTTP3 bool
	}
	var cases []tc
	for _, m := range allModes {
		cases = append(cases, tc{mode: m})
		if m != modeH3 {
			cases = append(cases, tc{mode: m, disableHTTP3: true})
		}
	}
	for _, c := range cases {
		name := c.mode
		if c.disableHTTP3 {
			name += "/http3-disabled"
		}
		t.Run(name, func(t *testing.T) {
			seen := make(chan string, 1)
			env := startServer(t, Config{DisableHTTP3: c.disableHTTP3}, protoHandler(seen))
			r := get(env.client(t, c.mode), env.url("/proto"))
			if r.err != nil {
				t.Fatalf("GET: %v", r.err)
			}
			want := wantProto[c.mode]
			if got := recv(t, seen, "handler"); got != want {
				t.Errorf("handler saw r.Proto %q, want %q", got, want)
			}
			if r.resp.Proto != want {
				t.Errorf("response Proto %q, want %q", r.resp.Proto, want)
			}
			if r.body != "hello over "+want {
				t.Errorf("body %q", r.body)
			}

			altSvc := r.resp.Header.Values("Alt-Svc")
			switch {
			case c.disableHTTP3 || c.mode == modeH3:
				if len(altSvc) != 0 {
					t.Errorf("Alt-Svc %q, want none", altSvc)
				}
			default:
				wantAlt := `h3=":` + strconv.Itoa(env.port) + `"; ma=86400`
				if len(altSvc) != 1 || altSvc[0] != wantAlt {
					t.Errorf("Alt-Svc %q, want [%q]", altSvc, wantAlt)
				}
			}

			udp := env.srv.HTTP3Addr()
			if c.disableHTTP3 {
				if udp != nil {
					t.Errorf("HTTP3Addr() = %v with HTTP/3 disabled, want nil", udp)
				}
			} else if udp == nil || udp.(*net.UDPAddr).Port != env.port {
				t.Errorf("HTTP3Addr() = %v, want UDP port %d", udp, env.port)
			}
		})
	}
}

// TestBindAddresses: TCP and UDP end up on the same IP and port, whether
// the port is fixed or picked by the kernel, for an IP, a name or no host.
func TestBindAddresses(t *testing.T) {
	// A port free on both TCP and UDP for the fixed-port case (bounded).
	var fixed string
	for i := 0; i < 10 && fixed == ""; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a := l.Addr().String()
		u, err := net.ListenPacket("udp", a)
		_ = l.Close()
		if err == nil {
			_ = u.Close()
			fixed = a
		}
	}
	cases := []struct{ name, addr string }{
		{"ip port 0", "127.0.0.1:0"},
		{"name port 0", "localhost:0"},
		{"no host port 0", ":0"},
		{"fixed port", fixed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.addr == "" {
				t.Skip("no port free on both TCP and UDP")
			}
			env := startServer(t, Config{Addr: c.addr}, protoHandler(nil))
			tcp, udp := env.srv.Addr().(*net.TCPAddr), env.srv.HTTP3Addr().(*net.UDPAddr)
			if !tcp.IP.Equal(udp.IP) || tcp.Port != udp.Port {
				t.Errorf("TCP %v, UDP %v: want the same IP and port", tcp, udp)
			}
			if c.addr == fixed && tcp.String() != fixed {
				t.Errorf("bound %v, want %s", tcp, fixed)
			}
			for _, mode := range []string{modeH2, modeH3} {
				if r := get(env.client(t, mode), env.url("/")); r.err != nil || r.resp.Proto != wantProto[mode] {
					t.Errorf("%s GET via 127.0.0.1: %+v", mode, r)
				}
			}
		})
	}
}

// TestDefaults pins the documented defaults and that each protocol server
// received them.
func TestDefaults(t *testing.T) {
	cases := []struct {
		name string
		in   Config
		// want: ReadHeaderTimeout, IdleTimeout, MaxHeaderBytes, MaxConcurrentStreams, MaxReadFrameSize
		rht, idle     time.Duration
		mhb           int
		streams, fsiz uint32
	}{
		{"zero values", Config{}, 10 * time.Second, 2 * time.Minute, 64 << 10, 250, 1 << 14},
		{"explicit", Config{ReadHeaderTimeout: 3 * time.Second, IdleTimeout: 7 * time.Second,
			MaxHeaderBytes: 9000, MaxConcurrentStreams: 17, MaxReadFrameSize: 1 << 15},
			3 * time.Second, 7 * time.Second, 9000, 17, 1 << 15},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, _ := testConfig(t, c.in)
			s, err := New(cfg, protoHandler(nil))
			if err != nil {
				t.Fatal(err)
			}
			if s.cfg.ReadHeaderTimeout != c.rht || s.cfg.IdleTimeout != c.idle || s.cfg.MaxHeaderBytes != c.mhb ||
				s.cfg.MaxConcurrentStreams != c.streams || s.cfg.MaxReadFrameSize != c.fsiz {
				t.Errorf("normalized config %+v", s.cfg)
			}
			// HTTP/1.1 and HTTP/2: the engines' configurations.
			h1c, h2c := s.eng.h1TLS, s.eng.h2
			if h1c.ReadHeaderTimeout != c.rht || h1c.IdleTimeout != c.idle || h1c.MaxHeaderBytes != c.mhb {
				t.Errorf("h1.Config %+v", h1c)
			}
			if h2c.MaxConcurrentStreams != c.streams || h2c.MaxFrameSize != c.fsiz || h2c.IdleTimeout != c.idle ||
				h2c.MaxHeaderListSize != uint32(c.mhb+320) || h2c.PrefaceTimeout != c.rht {
				t.Errorf("h2.Config %+v", h2c)
			}
			// HTTP/3
			q := s.h3.QUICConfig
			if q.MaxIdleTimeout != c.idle || q.MaxIncomingStreams != int64(c.streams) || q.Allow0RTT ||
				q.HandshakeIdleTimeout != c.rht {
				t.Errorf("quic.Config %+v", q)
			}
			if s.h3.MaxHeaderBytes != c.mhb || s.h3.IdleTimeout != c.idle {
				t.Errorf("http3.Server MaxHeaderBytes %d IdleTimeout %v", s.h3.MaxHeaderBytes, s.h3.IdleTimeout)
			}
		})
	}
}

// TestNewErrors: invalid configurations are refused with an error that
// names the field, never a panic.
func TestNewErrors(t *testing.T) {
	cert, _ := newTestCert(t)
	good := func() Config {
		return Config{Addr: "127.0.0.1:0", TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	}
	cases := []struct {
		name    string
		mutate  func(*Config)
		nilH    bool
		wantSub string
	}{
		{"nil handler", func(*Config) {}, true, "nil handler"},
		{"empty addr", func(c *Config) { c.Addr = "" }, false, "Config.Addr"},
		{"nil tls", func(c *Config) { c.TLSConfig = nil }, false, "Config.TLSConfig is nil"},
		{"no certificate", func(c *Config) { c.TLSConfig = &tls.Config{} }, false, "Config.TLSConfig has no Certificates"},
		{"negative read header timeout", func(c *Config) { c.ReadHeaderTimeout = -1 }, false, "Config.ReadHeaderTimeout"},
		{"negative idle timeout", func(c *Config) { c.IdleTimeout = -1 }, false, "Config.IdleTimeout"},
		{"negative header bytes", func(c *Config) { c.MaxHeaderBytes = -1 }, false, "Config.MaxHeaderBytes"},
		{"frame size too small", func(c *Config) { c.MaxReadFrameSize = 1000 }, false, "Config.MaxReadFrameSize"},
		{"frame size too big", func(c *Config) { c.MaxReadFrameSize = 1 << 24 }, false, "Config.MaxReadFrameSize"},
		{"cipher suites without h2 mandatory suite", func(c *Config) {
			c.TLSConfig.MinVersion = tls.VersionTLS12
			c.TLSConfig.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305}
		}, false, "configure HTTP/2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := good()
			c.mutate(&cfg)
			var h http.Handler = protoHandler(nil)
			if c.nilH {
				h = nil
			}
			s, err := New(cfg, h)
			if err == nil {
				t.Fatalf("New succeeded: %+v", s)
			}
			if !strings.HasPrefix(err.Error(), "frontend: ") || !strings.Contains(err.Error(), c.wantSub) {
				t.Errorf("error %q, want prefix %q and %q", err, "frontend: ", c.wantSub)
			}
		})
	}
}

// TestStartBindErrors: a port in use on TCP, on UDP, or for the plain
// listener fails Start with "frontend: listen <net> <addr>: ...", and
// whatever Start had bound is released.
func TestStartBindErrors(t *testing.T) {
	t.Run("tcp", func(t *testing.T) {
		busy, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		addr := busy.Addr().String()
		cfg, _ := testConfig(t, Config{Addr: addr})
		s, err := New(cfg, protoHandler(nil))
		if err != nil {
			t.Fatal(err)
		}
		err = s.Start()
		if want := "frontend: listen tcp " + addr + ": "; err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("Start: %v, want prefix %q", err, want)
		}
		if s.Addr() != nil {
			t.Errorf("Addr() = %v after failed Start", s.Addr())
		}
	})
	t.Run("udp", func(t *testing.T) {
		busy, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		addr := busy.LocalAddr().String()
		cfg, _ := testConfig(t, Config{Addr: addr})
		s, err := New(cfg, protoHandler(nil))
		if err != nil {
			t.Fatal(err)
		}
		err = s.Start()
		if err != nil && strings.HasPrefix(err.Error(), "frontend: listen tcp ") {
			t.Skipf("TCP side of %s is taken by someone else: %v", addr, err)
		}
		if want := "frontend: listen udp " + addr + ": "; err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("Start: %v, want prefix %q", err, want)
		}
		// The TCP listener bound before the UDP failure was released.
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("TCP %s still bound after failed Start: %v", addr, err)
		}
		_ = l.Close()
	})
	t.Run("plain", func(t *testing.T) {
		busy, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		plain := busy.Addr().String()
		cfg, _ := testConfig(t, Config{PlainAddr: plain})
		s, err := New(cfg, protoHandler(nil))
		if err != nil {
			t.Fatal(err)
		}
		err = s.Start()
		if want := "frontend: listen tcp " + plain + ": "; err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("Start: %v, want prefix %q", err, want)
		}
		if s.Addr() != nil || s.HTTP3Addr() != nil || s.PlainAddr() != nil {
			t.Errorf("addresses still set after failed Start")
		}
	})
}

// TestLifecycleMisuse: Start twice, Start after Shutdown, Shutdown before
// Start and Shutdown twice neither panic nor hang.
func TestLifecycleMisuse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()

	cfg, _ := testConfig(t, Config{})
	s, err := New(cfg, protoHandler(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown before Start: %v", err)
	}
	if err := s.Start(); !errors.Is(err, http.ErrServerClosed) || !strings.HasPrefix(err.Error(), "frontend: ") {
		t.Errorf("Start after Shutdown: %v, want frontend: ... ErrServerClosed", err)
	}
	if s.Addr() != nil {
		t.Errorf("Addr() = %v, want nil", s.Addr())
	}

	env := startServer(t, Config{}, protoHandler(nil))
	if err := env.srv.Start(); err == nil || !strings.HasPrefix(err.Error(), "frontend: ") {
		t.Errorf("second Start: %v", err)
	}
	if err := env.srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := env.srv.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

// TestServeLoopErrorLogged: a serve loop that stops for a reason other than
// Shutdown is reported through Config.Logger.
func TestServeLoopErrorLogged(t *testing.T) {
	records := make(chan slog.Record, 64)
	env := startServer(t, Config{Logger: slog.New(recordHandler{records})}, protoHandler(nil))
	// Pull the TCP listener out from under net/http.
	_ = env.srv.tcpLn.Close()
	for i := 0; ; i++ {
		if i == cap(records) {
			t.Fatal("no serve loop record")
		}
		r := recv(t, records, "log record")
		if r.Message != "frontend: serve loop stopped" {
			continue
		}
		attrs := map[string]string{}
		r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
		if attrs["listener"] != "https" || attrs["err"] == "" || r.Level != slog.LevelError {
			t.Errorf("record %v %v", r.Level, attrs)
		}
		return
	}
}

// slowHandler serves /slow by signalling entered, then blocking until
// release is closed, then writing the full body; anything else gets "ok".
type slowHandler struct {
	entered chan struct{}
	release chan struct{}
	calls   atomic.Int32
	body    string
}

func newSlowHandler() *slowHandler {
	return &slowHandler{
		entered: make(chan struct{}),
		release: make(chan struct{}),
		body:    strings.Repeat("in-flight response body. ", 4096), // ~100 KB: several h2/h3 DATA frames
	}
}

func (h *slowHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/slow" {
		_, _ = w.Write([]byte("ok"))
		return
	}
	if h.calls.Add(1) == 1 {
		close(h.entered)
	}
	<-h.release
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(h.body))
}

// TestGracefulShutdown: a request in flight when Shutdown starts completes
// with its full response (HTTP/1.1 with Connection: close), Shutdown
// returns nil once every connection is gone, and afterwards new
// connections are refused on TCP and the UDP port is released.
//
// For HTTP/3, Shutdown returning nil is itself evidence of the GOAWAY: the
// quic-go client keeps an idle connection open for reuse and closes it
// after its last stream only once it has received GOAWAY; without it
// Shutdown would wait for waitLimit and fail.
func TestGracefulShutdown(t *testing.T) {
	for _, mode := range allModes {
		t.Run(mode, func(t *testing.T) {
			h := newSlowHandler()
			env := startServer(t, Config{PlainAddr: "127.0.0.1:0"}, h)
			t.Cleanup(func() {
				select {
				case <-h.release:
				default:
					close(h.release)
				}
			})
			client := env.client(t, mode)

			respc := make(chan response, 1)
			go func() { respc <- get(client, env.url("/slow")) }()
			recv(t, h.entered, "request to reach the handler")

			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			shutdownErr := make(chan error, 1)
			go func() { shutdownErr <- env.srv.Shutdown(ctx) }()
			// Every serve loop has returned: each protocol server is draining.
			recv(t, env.srv.acceptStopped, "serve loops to stop")
			close(h.release)

			r := recv(t, respc, "in-flight response")
			if r.err != nil {
				t.Fatalf("in-flight request failed: %v", r.err)
			}
			if r.resp.StatusCode != http.StatusOK || r.body != h.body {
				t.Fatalf("in-flight response: status %d, %d body bytes, want 200 and %d", r.resp.StatusCode, len(r.body), len(h.body))
			}
			if r.resp.Proto != wantProto[mode] {
				t.Errorf("Proto %q", r.resp.Proto)
			}
			if mode == modeH1 && !r.resp.Close {
				// net/http's client sets Response.Close for HTTP/1.1 only
				// when the response carries "Connection: close" (and then
				// deletes that field: transfer.go shouldClose). The raw
				// bytes are checked in TestHTTP1ShutdownConnectionClose.
				t.Errorf("HTTP/1.1 response during drain without Connection: close")
			}
			if err := recv(t, shutdownErr, "Shutdown"); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}

			// New connections are refused.
			for _, addr := range []net.Addr{env.srv.Addr(), env.srv.PlainAddr()} {
				if c, err := net.Dial("tcp", addr.String()); err == nil {
					_ = c.Close()
					t.Errorf("TCP %s still accepts after Shutdown", addr)
				}
			}
			if r := get(env.shortH3Client(t), env.url("/")); r.err == nil {
				t.Errorf("HTTP/3 request after Shutdown succeeded")
			}
			udp, err := net.ListenPacket("udp", env.srv.HTTP3Addr().String())
			if err != nil {
				t.Errorf("UDP %s still bound after Shutdown: %v", env.srv.HTTP3Addr(), err)
			} else {
				_ = udp.Close()
			}
		})
	}
}

// TestShutdownContextDone: when ctx ends before the drain does, Shutdown
// closes everything at once and reports ctx's error; the blocked request's
// client sees its connection fail rather than hang.
func TestShutdownContextDone(t *testing.T) {
	for _, mode := range allModes {
		t.Run(mode, func(t *testing.T) {
			h := newSlowHandler()
			env := startServer(t, Config{}, h)
			t.Cleanup(func() { close(h.release) }) // runs before the server's cleanup
			client := env.client(t, mode)

			respc := make(chan response, 1)
			go func() { respc <- get(client, env.url("/slow")) }()
			recv(t, h.entered, "request to reach the handler")

			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			err := env.srv.Shutdown(ctx)
			if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "frontend: ") {
				t.Fatalf("Shutdown with done ctx: %v, want frontend: ... context.Canceled", err)
			}
			if r := recv(t, respc, "aborted response"); r.err == nil {
				t.Errorf("request blocked in handler succeeded after forced close: status %d", r.resp.StatusCode)
			}
			if c, err := net.Dial("tcp", env.srv.Addr().String()); err == nil {
				_ = c.Close()
				t.Errorf("TCP still accepts after forced Shutdown")
			}
		})
	}
}

// TestRegisterOnShutdown: hooks run as soon as the drain begins, while a
// request is still in flight: that is where the owner of upgraded
// connections closes them, since Shutdown would not.
func TestRegisterOnShutdown(t *testing.T) {
	h := newSlowHandler()
	hookRan := make(chan struct{})
	env := startConfigured(t, Config{}, h, func(s *Server) {
		s.RegisterOnShutdown(func() { close(hookRan) })
	})
	t.Cleanup(func() {
		select {
		case <-h.release:
		default:
			close(h.release)
		}
	})
	respc := make(chan response, 1)
	go func() { respc <- get(env.client(t, modeH1), env.url("/slow")) }()
	recv(t, h.entered, "request to reach the handler")

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- env.srv.Shutdown(ctx) }()
	recv(t, hookRan, "shutdown hook") // the handler is still blocked here
	close(h.release)
	if r := recv(t, respc, "response"); r.err != nil {
		t.Errorf("in-flight request: %v", r.err)
	}
	if err := recv(t, shutdownErr, "Shutdown"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
