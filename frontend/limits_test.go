package frontend

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// otherClientIP is a second loopback address (Linux routes all of
// 127.0.0.0/8 to lo): the well-behaved client of the per-address limit
// tests comes from it.
const otherClientIP = "127.0.0.2"

func TestClientKey(t *testing.T) {
	cases := []struct {
		addr net.Addr
		want string // "" for not keyed
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 1}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 1}, "192.0.2.7"}, // v4-mapped: the IPv4 address
		{&net.UDPAddr{IP: net.ParseIP("2001:db8:1:2:aaaa::1"), Port: 1}, "2001:db8:1:2::"},
		{&net.UDPAddr{IP: net.ParseIP("2001:db8:1:2:bbbb::9"), Port: 1}, "2001:db8:1:2::"}, // same /64
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 1}, "::"},
		{&net.UnixAddr{Name: "@x", Net: "unix"}, ""},
		{&net.TCPAddr{}, ""},
	}
	for _, c := range cases {
		k, ok := clientKey(c.addr)
		got := ""
		if ok {
			got = k.String()
		}
		if got != c.want {
			t.Errorf("clientKey(%v) = %q, want %q", c.addr, got, c.want)
		}
	}
}

func TestIPLimiter(t *testing.T) {
	l := newIPLimiter(2)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	if a1, a2, a3, b1 := l.acquire(a), l.acquire(a), l.acquire(a), l.acquire(b); !a1 || !a2 || a3 || !b1 {
		t.Fatal("acquire: want two for a, then refused, and b apart")
	}
	l.release(a)
	if !l.acquire(a) {
		t.Fatal("acquire after release refused")
	}
	l.release(a)
	l.release(a)
	l.release(b)
	if len(l.n) != 0 || l.refused.Load() != 1 {
		t.Errorf("after releasing everything: %v entries, %d refused; want none and 1", l.n, l.refused.Load())
	}
}

// dialFrom opens a TLS connection to addr from the local IP from (empty:
// the system's choice) and completes the handshake.
func (e *testEnv) dialFrom(from, proto string) (*tls.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := tls.DialWithDialer(d, "tcp", e.srv.Addr().String(), e.tlsClientConfig(proto))
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(waitLimit))
	return c, nil
}

// h1Get sends one HTTP/1.1 request on c and reads the status line.
func h1Get(c net.Conn, path string) (string, error) {
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		return "", err
	}
	b := make([]byte, 12)
	if _, err := io.ReadFull(c, b); err != nil {
		return "", err
	}
	return string(b), nil
}

// TestConnsPerIPTCP: with MaxConnsPerIP 4, a fifth TLS connection from
// 127.0.0.1 is closed before its handshake while four are open; a client
// from another address is served meanwhile; once one of the four closes, a
// new one is let in. The plain listener counts on its own.
func TestConnsPerIPTCP(t *testing.T) {
	const limit = 4
	env := startServer(t, Config{DisableHTTP3: true, MaxConnsPerIP: limit, PlainAddr: "127.0.0.1:0",
		PlainHandler: protoHandler(nil)}, protoHandler(nil))
	var held []*tls.Conn
	for i := range limit {
		c, err := env.dialFrom("127.0.0.1", "http/1.1")
		if err != nil {
			t.Fatalf("connection %d within the limit: %v", i+1, err)
		}
		defer c.Close()
		if s, err := h1Get(c, "/"); err != nil || s != "HTTP/1.1 200" {
			t.Fatalf("connection %d: %q, %v", i+1, s, err)
		}
		held = append(held, c)
	}
	if c, err := env.dialFrom("127.0.0.1", "http/1.1"); err == nil {
		c.Close()
		t.Fatalf("connection %d from the same address was let in", limit+1)
	} else {
		t.Logf("connection %d refused: %v", limit+1, err)
	}
	other, err := env.dialFrom(otherClientIP, "http/1.1")
	if err != nil {
		t.Fatalf("client from %s refused: %v", otherClientIP, err)
	}
	if s, err := h1Get(other, "/"); err != nil || s != "HTTP/1.1 200" {
		t.Fatalf("client from %s: %q, %v", otherClientIP, s, err)
	}
	other.Close()

	// The plain listener has its own count.
	plain, err := net.DialTimeout("tcp", env.srv.PlainAddr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = plain.SetDeadline(time.Now().Add(waitLimit))
	if s, err := h1Get(plain, "/"); err != nil || s != "HTTP/1.1 200" {
		t.Fatalf("plain listener: %q, %v", s, err)
	}
	plain.Close()

	held[0].Close()
	deadline := time.Now().Add(waitLimit)
	for {
		c, err := env.dialFrom("127.0.0.1", "http/1.1")
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still refused after one of the %d connections closed: %v", limit, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := env.srv.tcpLim.refused.Load(); n < 1 {
		t.Errorf("refused count %d", n)
	}
}

// quicDialFrom opens a QUIC connection with ALPN h3 from the local IP from.
func (e *testEnv) quicDialFrom(t *testing.T, from string) (*quic.Conn, error) {
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(from)})
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: udp}
	t.Cleanup(func() { _ = tr.Close(); _ = udp.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return tr.Dial(ctx, e.srv.HTTP3Addr(), e.tlsClientConfig(http3.NextProtoH3), &quic.Config{HandshakeIdleTimeout: 5 * time.Second})
}

// TestConnsPerIPQUIC: with MaxConnsPerIP 4, twenty QUIC handshakes at once
// from 127.0.0.1 get at most four connections (past two, the server asks
// for a Retry); the rest are refused (CONNECTION_REFUSED). A client from
// another address gets its HTTP/3 response meanwhile, and a closed
// connection frees its place.
func TestConnsPerIPQUIC(t *testing.T) {
	const limit = 4
	env := startServer(t, Config{MaxConnsPerIP: limit}, protoHandler(nil))
	var (
		mu    sync.Mutex
		conns []*quic.Conn
		errs  []error
		wg    sync.WaitGroup
	)
	for range 20 {
		wg.Go(func() {
			c, err := env.quicDialFrom(t, "127.0.0.1")
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			conns = append(conns, c)
		})
	}
	wg.Wait()
	if len(conns) == 0 || len(conns) > limit {
		t.Fatalf("%d QUIC connections from one address, want 1 to %d", len(conns), limit)
	}
	for _, err := range errs {
		var te *quic.TransportError
		if !errors.As(err, &te) || te.ErrorCode != quic.ConnectionRefused {
			t.Errorf("refused handshake: %v, want CONNECTION_REFUSED", err)
		}
	}
	t.Logf("%d connections, %d refused", len(conns), len(errs))

	// Another address is served.
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(otherClientIP)})
	if err != nil {
		t.Fatal(err)
	}
	qtr := &quic.Transport{Conn: udp}
	h3 := &http3.Transport{TLSClientConfig: env.tlsClientConfig(), Dial: func(ctx context.Context, addr string, tlsConf *tls.Config, conf *quic.Config) (*quic.Conn, error) {
		return qtr.DialEarly(ctx, env.srv.HTTP3Addr(), tlsConf, conf)
	}}
	t.Cleanup(func() { _ = h3.Close(); _ = qtr.Close(); _ = udp.Close() })
	r := get(&http.Client{Transport: h3, Timeout: waitLimit}, "https://127.0.0.1:"+strconv.Itoa(env.port)+"/")
	if r.err != nil || r.resp.StatusCode != 200 {
		t.Fatalf("client from %s: %+v", otherClientIP, r)
	}

	for _, c := range conns {
		_ = c.CloseWithError(0, "")
	}
	deadline := time.Now().Add(waitLimit)
	for {
		c, err := env.quicDialFrom(t, "127.0.0.1")
		if err == nil {
			_ = c.CloseWithError(0, "")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still refused after the connections closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestQUICLimits pins the explicit QUIC settings and shows a client held
// to its stream credit: with MaxConcurrentStreams 5 it can open five
// request streams and no sixth (quic-go's client refuses before sending,
// as RFC 9000 §4.6 asks; a peer that sent one anyway would get
// STREAM_LIMIT_ERROR), and sixteen unidirectional streams; once one
// request stream is done the server grants another.
func TestQUICLimits(t *testing.T) {
	qc := quicConfig(Config{MaxConcurrentStreams: 5, IdleTimeout: time.Minute, ReadHeaderTimeout: 7 * time.Second})
	if qc.MaxIncomingStreams != 5 || qc.MaxIncomingUniStreams != quicMaxUniStreams || qc.MaxIdleTimeout != time.Minute ||
		qc.HandshakeIdleTimeout != 7*time.Second || qc.Allow0RTT || qc.MaxStreamReceiveWindow != quicMaxStreamWindow ||
		qc.MaxConnectionReceiveWindow != quicMaxConnWindow {
		t.Errorf("quicConfig = %+v", qc)
	}

	env := startServer(t, Config{MaxConcurrentStreams: 5}, protoHandler(nil))
	c, err := env.quicDialFrom(t, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(0, "")
	var streams []*quic.Stream
	for i := range 5 {
		s, err := c.OpenStream()
		if err != nil {
			t.Fatalf("request stream %d: %v", i+1, err)
		}
		streams = append(streams, s)
	}
	var sl *quic.StreamLimitReachedError
	if _, err := c.OpenStream(); !errors.As(err, &sl) {
		t.Fatalf("sixth request stream: %v, want StreamLimitReachedError", err)
	}
	for i := range quicMaxUniStreams {
		if _, err := c.OpenUniStream(); err != nil {
			t.Fatalf("unidirectional stream %d: %v", i+1, err)
		}
	}
	if _, err := c.OpenUniStream(); !errors.As(err, &sl) {
		t.Fatalf("unidirectional stream %d: %v, want StreamLimitReachedError", quicMaxUniStreams+1, err)
	}
	streams[0].CancelWrite(0)
	streams[0].CancelRead(0)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if _, err := c.OpenStreamSync(ctx); err != nil {
		t.Fatalf("no new credit after a stream ended: %v", err)
	}
}

// bigHandler streams size bytes (query "size") in 32 KiB writes and
// reports the write error, if any, and how much went out.
type bigHandler struct {
	done chan bigResult
}

type bigResult struct {
	written int64
	err     error
}

func (h *bigHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	size, _ := strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
	buf := make([]byte, 32<<10)
	var n int64
	var err error
	for n < size && err == nil {
		var m int
		m, err = w.Write(buf[:min(int64(len(buf)), size-n)])
		n += int64(m)
	}
	select {
	case h.done <- bigResult{n, err}:
	default:
	}
}

// smallBufferConn dials addr over TCP with a 4 KiB receive buffer, so that
// a client that does not read stalls the server quickly.
func smallBufferConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: nil}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestWriteStall: a client that asks for a large response and stops
// reading is dropped after WriteStallTimeout, over HTTP/1.1 and HTTP/2
// (the handler's write fails long before the response is out); a client
// that reads slowly but steadily gets a response that takes many times
// that timeout in full.
func TestWriteStall(t *testing.T) {
	// Well above TCP's own pauses: a sender facing a zero window waits
	// for the persist timer (200 ms and up on Linux) even when the reader
	// is reading.
	const stall = time.Second
	const huge = 1 << 30
	// A server per case, so that no handler's result can be taken for
	// another's.
	start := func(t *testing.T) (*testEnv, *bigHandler) {
		h := &bigHandler{done: make(chan bigResult, 1)}
		return startServer(t, Config{DisableHTTP3: true, WriteStallTimeout: stall}, h), h
	}

	t.Run("h1 stalled", func(t *testing.T) {
		env, h := start(t)
		conf := env.tlsClientConfig("http/1.1")
		conf.ServerName = "127.0.0.1"
		c := tls.Client(smallBufferConn(t, env.srv.Addr().String()), conf)
		if _, err := io.WriteString(c, "GET /?size="+strconv.Itoa(huge)+" HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res := recv(t, h.done, "the handler's write to fail")
		if res.err == nil || res.written >= huge {
			t.Fatalf("handler wrote %d bytes, err %v; want a write error", res.written, res.err)
		}
		t.Logf("stalled HTTP/1.1 client dropped after %d bytes: %v", res.written, res.err)
	})

	t.Run("h2 stalled", func(t *testing.T) {
		env, h := start(t)
		conf := env.tlsClientConfig("h2")
		conf.ServerName = "127.0.0.1"
		c := tls.Client(smallBufferConn(t, env.srv.Addr().String()), conf)
		fr := http2.NewFramer(c, c)
		_, _ = io.WriteString(c, http2.ClientPreface)
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
		_ = fr.WriteWindowUpdate(0, 1<<31-1-65535)
		var hb []byte
		enc := hpack.NewEncoder(sliceWriter{&hb})
		for _, kv := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "localhost"}, {":path", "/?size=" + strconv.Itoa(huge)}} {
			_ = enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb, EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		res := recv(t, h.done, "the handler's write to fail")
		if res.err == nil || res.written >= huge {
			t.Fatalf("handler wrote %d bytes, err %v; want a write error", res.written, res.err)
		}
		t.Logf("stalled HTTP/2 client dropped after %d bytes: %v", res.written, res.err)
	})

	for _, mode := range []string{modeH1, modeH2} {
		t.Run(mode+" slow reader", func(t *testing.T) {
			env, h := start(t)
			const size = 4 << 20
			resp, err := env.client(t, mode).Get(env.url("/?size=" + strconv.Itoa(size)))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			start := time.Now()
			buf := make([]byte, 32<<10)
			var got int64
			var rerr error
			for rerr == nil {
				var n int
				n, rerr = io.ReadFull(resp.Body, buf)
				got += int64(n)
				time.Sleep(20 * time.Millisecond) // about 1.6 MB/s: 2.6 s in all
			}
			if got != size || !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
				t.Fatalf("read %d of %d bytes: %v", got, size, rerr)
			}
			res := recv(t, h.done, "the handler")
			if res.err != nil {
				t.Fatalf("handler: %v", res.err)
			}
			t.Logf("slow reader got all %d bytes in %v (write stall timeout %v)", got, time.Since(start).Round(time.Millisecond), stall)
		})
	}
}

type sliceWriter struct{ b *[]byte }

func (w sliceWriter) Write(p []byte) (int, error) { *w.b = append(*w.b, p...); return len(p), nil }

// TestLimitDefaults: zero selects the documented defaults, a negative
// count or timeout means no limit and is kept, a negative window is an
// error naming the field.
func TestLimitDefaults(t *testing.T) {
	base, _ := testConfig(t, Config{})
	got, err := normalize(base)
	if err != nil {
		t.Fatal(err)
	}
	if got.MaxConnsPerIP != DefaultMaxConnsPerIP || got.WriteStallTimeout != DefaultWriteStallTimeout ||
		got.H2FloodWindow != DefaultH2FloodWindow || got.H2MaxResets != DefaultH2MaxResets ||
		got.H2MaxControlFrames != DefaultH2MaxControl || got.H2MaxEmptyFrames != DefaultH2MaxEmptyFrames {
		t.Errorf("defaults: %+v", got)
	}
	off := base
	off.MaxConnsPerIP, off.WriteStallTimeout, off.H2MaxResets, off.H2MaxControlFrames, off.H2MaxEmptyFrames = -1, -1, -1, -1, -1
	got, err = normalize(off)
	if err != nil {
		t.Fatal(err)
	}
	if got.MaxConnsPerIP != -1 || got.WriteStallTimeout != -1 || got.H2MaxResets != -1 || got.H2MaxControlFrames != -1 || got.H2MaxEmptyFrames != -1 {
		t.Errorf("off: %+v", got)
	}
	s, err := New(off, protoHandler(nil))
	if err != nil {
		t.Fatal(err)
	}
	if s.tcpLim != nil || s.plainLim != nil || s.quicLim != nil || s.eng.h2.MaxResets != -1 || s.eng.h2.MaxControlFrames != -1 || s.eng.h2.MaxEmptyFrames != -1 {
		t.Errorf("limits off, yet limiters %v %v %v, HTTP/2 flood limits %+v", s.tcpLim, s.plainLim, s.quicLim, s.eng.h2)
	}
	bad := base
	bad.H2FloodWindow = -time.Second
	if _, err := normalize(bad); err == nil || !strings.Contains(err.Error(), "Config.H2FloodWindow") {
		t.Errorf("negative window: %v", err)
	}
}
