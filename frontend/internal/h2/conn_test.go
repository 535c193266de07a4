package h2

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The engine's tests run real connections on loopback TCP, without TLS
// (prior-knowledge HTTP/2: the engine does not care how "h2" was agreed).
// Clients are x/net's Transport, for what a real client does, and a raw
// Framer, for what a real client would not do.

// waitLimit bounds every wait; it is never a speed assertion.
const waitLimit = 20 * time.Second

type server struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []*Conn
}

// startServer serves h with cfg on a loopback listener until the test ends.
// wrap, if non-nil, wraps each accepted connection.
func startServer(t testing.TB, cfg Config, h http.Handler, wrap func(net.Conn) net.Conn) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MalformedField == nil {
		cfg.MalformedField = connectionSpecific
	}
	s := &server{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			if wrap != nil {
				nc = wrap(nc)
			}
			c := NewConn(nc, h, &cfg)
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() { defer s.wg.Done(); c.Serve() }()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(waitLimit):
			t.Error("connections still serving after Close")
		}
	})
	return s
}

// connectionSpecific stands in for translate.MalformedField (RFC 9113
// §8.2.2), which this package cannot import.
func connectionSpecific(name, value string) bool {
	switch name {
	case "connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade":
		return true
	case "te":
		return value != "trailers"
	}
	return false
}

func (s *server) client() *http.Client {
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true) // prior knowledge, as the engine is served here
	return &http.Client{Transport: &http.Transport{Protocols: &protos}}
}

func (s *server) url(path string) string { return "http://" + s.ln.Addr().String() + path }

// echoHandler answers /size/N with N bytes and echoes a POST's body.
func echoHandler(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		w.Header().Set("X-Got", strconv.Itoa(len(b)))
		_, _ = w.Write(b)
		return
	}
	if n, ok := strings.CutPrefix(r.URL.Path, "/size/"); ok {
		size, _ := strconv.Atoi(n)
		chunk := bytes.Repeat([]byte("x"), 8192)
		for size > 0 {
			k := min(size, len(chunk))
			if _, err := w.Write(chunk[:k]); err != nil {
				return
			}
			size -= k
		}
		return
	}
	_, _ = io.WriteString(w, "hello "+r.URL.Path)
}

// TestManyStreams: many concurrent requests on one connection, GETs of
// sizes from 0 to 300 KB (past every window) and POST echoes, all answered
// whole.
func TestManyStreams(t *testing.T) {
	s := startServer(t, Config{}, http.HandlerFunc(echoHandler), nil)
	cl := s.client()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			size := (i * 1543) % 300000
			var resp *http.Response
			var err error
			if i%3 == 0 {
				body := bytes.Repeat([]byte{byte('a' + i%26)}, size)
				resp, err = cl.Post(s.url("/echo"), "application/octet-stream", bytes.NewReader(body))
			} else {
				resp, err = cl.Get(s.url("/size/" + strconv.Itoa(size)))
			}
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil || len(b) != size || resp.StatusCode != 200 {
				errs <- fmt.Errorf("request %d: status %d, %d of %d bytes, err %v", i, resp.StatusCode, len(b), size, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// rawClient speaks frames to the engine directly.
type rawClient struct {
	t   testing.TB
	nc  net.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	hb  bytes.Buffer
	mu  sync.Mutex // guards writes
}

func dialRaw(t testing.TB, s *server, settings ...http2.Setting) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	c := &rawClient{t: t, nc: nc}
	c.fr = http2.NewFramer(nc, nc)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = 1 << 20
	c.enc = hpack.NewEncoder(&c.hb)
	if _, err := io.WriteString(nc, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(waitLimit))
	return c
}

func (c *rawClient) headers(id uint32, end bool, fields ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hb.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		_ = c.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hb.Bytes(), EndStream: end, EndHeaders: true}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) get(id uint32, path string, extra ...string) {
	c.headers(id, true, append([]string{":method", "GET", ":scheme", "http", ":authority", "test", ":path", path}, extra...)...)
}

func (c *rawClient) write(fn func(*http2.Framer) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := fn(c.fr); err != nil {
		c.t.Fatal(err)
	}
}

// streamResult is what a raw client saw on one stream.
type streamResult struct {
	status   string
	body     int
	data     []byte
	trailers map[string]string
	interim  []string // 1xx statuses
	ended    bool
	reset    http2.ErrCode
	wasRst   bool
}

// readUntil reads frames, answering PINGs and SETTINGS, until done says
// stop. It returns the results per stream and the GOAWAY, if any.
func (c *rawClient) readUntil(done func(map[uint32]*streamResult, *http2.GoAwayFrame) bool) (map[uint32]*streamResult, *http2.GoAwayFrame, error) {
	res := map[uint32]*streamResult{}
	var ga *http2.GoAwayFrame
	get := func(id uint32) *streamResult {
		if res[id] == nil {
			res[id] = &streamResult{}
		}
		return res[id]
	}
	for !done(res, ga) {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return res, ga, err
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			r := get(f.StreamID)
			if s := f.PseudoValue("status"); s != "" && s[0] != '1' {
				r.status = s
			} else if s != "" {
				r.interim = append(r.interim, s)
			} else {
				r.trailers = map[string]string{}
				for _, hf := range f.Fields {
					r.trailers[hf.Name] = hf.Value
				}
			}
			r.ended = r.ended || f.StreamEnded()
		case *http2.DataFrame:
			r := get(f.StreamID)
			r.body += len(f.Data())
			if len(r.data) < 1<<10 {
				r.data = append(r.data, f.Data()...)
			}
			r.ended = r.ended || f.StreamEnded()
		case *http2.RSTStreamFrame:
			r := get(f.StreamID)
			r.wasRst, r.reset = true, f.ErrCode
		case *http2.GoAwayFrame:
			g := *f
			ga = &g
		case *http2.PingFrame:
			if !f.IsAck() {
				data := f.Data
				c.write(func(fr *http2.Framer) error { return fr.WritePing(true, data) })
			}
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.write(func(fr *http2.Framer) error { return fr.WriteSettingsAck() })
			}
		}
	}
	return res, ga, nil
}

func allEnded(ids ...uint32) func(map[uint32]*streamResult, *http2.GoAwayFrame) bool {
	return func(res map[uint32]*streamResult, _ *http2.GoAwayFrame) bool {
		for _, id := range ids {
			r := res[id]
			if r == nil || !r.ended && !r.wasRst {
				return false
			}
		}
		return true
	}
}

// TestResets: streams reset by the client while their handlers wait have
// their contexts cancelled; the connection goes on serving.
func TestResets(t *testing.T) {
	var cancelled atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wait" {
			<-r.Context().Done()
			cancelled.Add(1)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	s := startServer(t, Config{}, h, nil)
	c := dialRaw(t, s)
	const n = 100
	for i := range n {
		id := uint32(2*i + 1)
		c.get(id, "/wait")
		c.write(func(fr *http2.Framer) error { return fr.WriteRSTStream(id, http2.ErrCodeCancel) })
	}
	deadline := time.Now().Add(waitLimit)
	for cancelled.Load() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := cancelled.Load(); got != n {
		t.Fatalf("%d of %d reset handlers saw their context cancelled", got, n)
	}
	c.get(2*n+1, "/after")
	res, _, err := c.readUntil(allEnded(2*n + 1))
	if err != nil {
		t.Fatal(err)
	}
	if r := res[2*n+1]; r.status != "200" || r.body != 2 {
		t.Errorf("request after the resets: %+v", *r)
	}
	for id, r := range res {
		if id <= 2*n && (r.status != "" || r.body > 0) {
			t.Errorf("stream %d answered after its reset: %+v", id, *r)
		}
	}
}

// TestStalledStream: a client that never opens one stream's window gets
// that stream's first 65,535 bytes only, and its other streams go on.
func TestStalledStream(t *testing.T) {
	s := startServer(t, Config{}, http.HandlerFunc(echoHandler), nil)
	c := dialRaw(t, s)
	c.write(func(fr *http2.Framer) error { return fr.WriteWindowUpdate(0, 1<<30) })
	c.get(1, "/size/1000000")
	for i := range 20 {
		id := uint32(3 + 2*i)
		c.get(id, "/size/100000")
		c.write(func(fr *http2.Framer) error { return fr.WriteWindowUpdate(id, 1<<20) })
	}
	var others []uint32
	for i := range 20 {
		others = append(others, uint32(3+2*i))
	}
	res, _, err := c.readUntil(allEnded(others...))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range others {
		if r := res[id]; r.status != "200" || r.body != 100000 {
			t.Errorf("stream %d: %+v, want 200 and 100000 bytes", id, *r)
		}
	}
	if r := res[1]; r == nil || r.ended || r.body > 65535 {
		t.Errorf("stalled stream: %+v, want at most 65535 bytes and no end", res[1])
	}
	// Opening the window lets the stalled stream finish.
	c.write(func(fr *http2.Framer) error { return fr.WriteWindowUpdate(1, 1<<30) })
	before := res[1].body
	more, _, err := c.readUntil(allEnded(1))
	if err != nil {
		t.Fatal(err)
	}
	if got := before + more[1].body; got != 1000000 {
		t.Errorf("stalled stream after WINDOW_UPDATE: %d bytes, want 1000000", got)
	}
}

// stallConn fails a write that cannot finish within d, as the frontend's
// write-stall deadline does.
type stallConn struct {
	net.Conn
	d time.Duration
}

func (c stallConn) Write(p []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.d))
	return c.Conn.Write(p)
}

// TestSlowReader: a client that stops reading is cut off by the write
// deadline: the handler's writes fail and Serve returns.
func TestSlowReader(t *testing.T) {
	writeErr := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		for range 2000 { // 128 MB: far more than any socket buffer
			if _, err := w.Write(chunk); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	})
	s := startServer(t, Config{}, h, func(nc net.Conn) net.Conn { return stallConn{nc, 200 * time.Millisecond} })
	c := dialRaw(t, s)
	c.write(func(fr *http2.Framer) error { return fr.WriteWindowUpdate(0, 1<<30) })
	c.write(func(fr *http2.Framer) error {
		return fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	})
	c.get(1, "/big")
	select {
	case err := <-writeErr:
		if err == nil {
			t.Fatal("128 MB written to a client that reads nothing")
		}
	case <-time.After(waitLimit):
		t.Fatal("handler still writing to a client that reads nothing")
	}
	s.mu.Lock()
	conn := s.conns[0]
	s.mu.Unlock()
	conn.mu.Lock()
	open := len(conn.streams)
	conn.mu.Unlock()
	deadline := time.Now().Add(waitLimit)
	for open > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		conn.mu.Lock()
		open = len(conn.streams)
		conn.mu.Unlock()
	}
	if open > 0 {
		t.Errorf("%d streams still open after the write failed", open)
	}
}

// TestMalformedRequests: requests RFC 9113 §8.1.1 calls malformed get
// RST_STREAM(PROTOCOL_ERROR) and never reach the handler; the connection
// goes on.
func TestMalformedRequests(t *testing.T) {
	var reached atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ok" {
			reached.Add(1)
		}
		_, _ = io.WriteString(w, "ok")
	})
	s := startServer(t, Config{}, h, nil)
	c := dialRaw(t, s)
	base := []string{":method", "GET", ":scheme", "http", ":authority", "test"}
	cases := [][]string{
		append(base[:6:6], ":path", "/bad", "connection", "keep-alive"),
		append(base[:6:6], ":path", "/bad", "te", "gzip"),
		append(base[:6:6], ":path", "/bad", "transfer-encoding", "chunked"),
		append(base[:6:6], ":path", ""),
		{":method", "GET", ":scheme", "http", ":authority", "test"},
		{":scheme", "http", ":authority", "test", ":path", "/bad"},
		append(base[:6:6], ":path", "/bad", "host", "other"),
		append(base[:6:6], ":path", "/bad", "content-length", "x"),
		append(base[:6:6], ":path", "/bad", "content-length", "+0"),
		{":method", "CONNECT", ":authority", "test", ":path", "/bad"},
		append(base[:6:6], ":path", "/bad", ":protocol", "websocket"),
	}
	var ids []uint32
	for i, fields := range cases {
		id := uint32(2*i + 1)
		ids = append(ids, id)
		c.headers(id, true, fields...)
	}
	last := uint32(2*len(cases) + 1)
	c.get(last, "/ok")
	res, ga, err := c.readUntil(allEnded(append(ids, last)...))
	if err != nil {
		t.Fatal(err, ga)
	}
	for i, id := range ids {
		if r := res[id]; !r.wasRst || r.reset != http2.ErrCodeProtocol {
			t.Errorf("case %d %v: %+v, want RST_STREAM(PROTOCOL_ERROR)", i, cases[i], *r)
		}
	}
	if r := res[last]; r.status != "200" {
		t.Errorf("request after the malformed ones: %+v", *r)
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("%d malformed requests reached the handler", n)
	}
}

// TestContentLengthMismatch: DATA beyond or short of Content-Length is
// malformed (§8.1.1).
func TestContentLengthMismatch(t *testing.T) {
	s := startServer(t, Config{}, http.HandlerFunc(echoHandler), nil)
	c := dialRaw(t, s)
	post := []string{":method", "POST", ":scheme", "http", ":authority", "test", ":path", "/p", "content-length", "5"}
	c.headers(1, false, post...)
	c.write(func(fr *http2.Framer) error { return fr.WriteData(1, true, []byte("toolong")) })
	c.headers(3, false, post...)
	c.write(func(fr *http2.Framer) error { return fr.WriteData(3, true, []byte("abc")) })
	c.headers(5, false, post...)
	c.write(func(fr *http2.Framer) error { return fr.WriteData(5, true, []byte("exact")) })
	res, _, err := c.readUntil(allEnded(1, 3, 5))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint32{1, 3} {
		if r := res[id]; !r.wasRst || r.reset != http2.ErrCodeProtocol {
			t.Errorf("stream %d: %+v, want RST_STREAM(PROTOCOL_ERROR)", id, *r)
		}
	}
	if r := res[5]; r.status != "200" || r.body != 5 {
		t.Errorf("exact length: %+v", *r)
	}
}

// TestHeaderListTooLarge: a decoded list over SETTINGS_MAX_HEADER_LIST_SIZE
// gets 431 from the engine; the next request on the connection is served.
func TestHeaderListTooLarge(t *testing.T) {
	s := startServer(t, Config{MaxHeaderListSize: 8 << 10}, http.HandlerFunc(echoHandler), nil)
	c := dialRaw(t, s)
	c.get(1, "/big", "x-big", strings.Repeat("b", 4000), "x-big2", strings.Repeat("c", 4000), "x-big3", strings.Repeat("d", 4000))
	c.get(3, "/after")
	res, _, err := c.readUntil(allEnded(1, 3))
	if err != nil {
		t.Fatal(err)
	}
	if res[1].status != "431" || res[3].status != "200" {
		t.Errorf("got %+v then %+v, want 431 then 200", *res[1], *res[3])
	}
}

// TestDrain: Drain sends GOAWAY(2^31-1) and a PING, then GOAWAY with the
// last stream id; the stream in flight completes, and Serve returns.
func TestDrain(t *testing.T) {
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		_, _ = io.WriteString(w, "done")
	})
	s := startServer(t, Config{}, h, nil)
	c := dialRaw(t, s)
	c.get(1, "/slow")
	deadline := time.Now().Add(waitLimit)
	var conn *Conn
	for conn == nil && time.Now().Before(deadline) {
		s.mu.Lock()
		if len(s.conns) > 0 {
			conn = s.conns[0]
		}
		s.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	if conn == nil {
		t.Fatal("no connection")
	}
	conn.Drain()
	var goaways []uint32
	_, _, err := c.readUntil(func(_ map[uint32]*streamResult, ga *http2.GoAwayFrame) bool {
		if ga != nil && (len(goaways) == 0 || goaways[len(goaways)-1] != ga.LastStreamID) {
			goaways = append(goaways, ga.LastStreamID)
		}
		return len(goaways) == 2
	})
	if err != nil {
		t.Fatal(err)
	}
	if goaways[0] != 1<<31-1 || goaways[1] != 1 {
		t.Errorf("GOAWAY last stream ids %v, want [2147483647 1]", goaways)
	}
	close(release)
	res, _, err := c.readUntil(allEnded(1))
	if err != nil {
		t.Fatal(err)
	}
	if res[1].status != "200" || res[1].body != 4 {
		t.Errorf("stream in flight: %+v", *res[1])
	}
	if _, err := c.fr.ReadFrame(); !errors.Is(err, io.EOF) {
		t.Errorf("after the drain: %v, want the connection closed", err)
	}
}

// TestRequestTrailers: trailers reach the handler's Request.Trailer after
// the body; response trailers go out after the DATA.
func TestRequestTrailers(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		w.Header().Set(http.TrailerPrefix+"X-Out", "t2")
		_, _ = io.WriteString(w, r.Trailer.Get("X-In"))
	})
	s := startServer(t, Config{}, h, nil)
	c := dialRaw(t, s)
	c.headers(1, false, ":method", "POST", ":scheme", "http", ":authority", "test", ":path", "/t", "trailer", "x-in")
	c.write(func(fr *http2.Framer) error { return fr.WriteData(1, false, []byte("body")) })
	c.headers(1, true, "x-in", "t1")
	res, _, err := c.readUntil(allEnded(1))
	if err != nil {
		t.Fatal(err)
	}
	if r := res[1]; r.status != "200" || string(r.data) != "t1" || r.trailers["x-out"] != "t2" {
		t.Errorf("got status %q body %q trailers %v; want 200, the request trailer t1 echoed, and trailer x-out: t2", r.status, r.data, r.trailers)
	}
}

// TestDataAfterClientReset: DATA on a stream the client reset is a stream
// error STREAM_CLOSED (RFC 9113 §5.1), whether or not its handler is still
// running.
func TestDataAfterClientReset(t *testing.T) {
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release })
	s := startServer(t, Config{}, h, nil)
	defer close(release)
	c := dialRaw(t, s)
	c.headers(1, false, ":method", "POST", ":scheme", "http", ":authority", "test", ":path", "/p")
	c.write(func(fr *http2.Framer) error { return fr.WriteRSTStream(1, http2.ErrCodeCancel) })
	c.write(func(fr *http2.Framer) error { return fr.WriteData(1, true, []byte("late")) })
	res, _, err := c.readUntil(allEnded(1))
	if err != nil {
		t.Fatal(err)
	}
	if r := res[1]; !r.wasRst || r.reset != http2.ErrCodeStreamClosed {
		t.Errorf("DATA after RST_STREAM: %+v, want RST_STREAM(STREAM_CLOSED)", *r)
	}
}

// TestMalformedFlood: requests the engine must refuse count against
// MaxResets (CVE-2019-9514); past it the connection ends with
// GOAWAY(ENHANCE_YOUR_CALM). Refused streams over the concurrency limit do
// not count.
func TestMalformedFlood(t *testing.T) {
	s := startServer(t, Config{MaxResets: 10, FloodWindow: time.Hour}, http.HandlerFunc(echoHandler), nil)
	c := dialRaw(t, s)
	for i := range 11 {
		c.get(uint32(2*i+1), "/bad", "connection", "close")
	}
	_, ga, err := c.readUntil(func(_ map[uint32]*streamResult, ga *http2.GoAwayFrame) bool { return ga != nil })
	if err != nil {
		t.Fatal(err)
	}
	if ga.ErrCode != http2.ErrCodeEnhanceYourCalm {
		t.Errorf("GOAWAY %v, want ENHANCE_YOUR_CALM", ga.ErrCode)
	}
}

// TestClosedStreamDataReturnsWindow: DATA the client sends on a stream
// already closed still comes back as connection-level window (RFC 9113
// §6.9: it counted against the connection), so it cannot starve the
// connection's other streams.
func TestClosedStreamDataReturnsWindow(t *testing.T) {
	s := startServer(t, Config{}, http.HandlerFunc(echoHandler), nil)
	c := dialRaw(t, s)
	c.get(1, "/x")
	if _, _, err := c.readUntil(allEnded(1)); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 16<<10)
	for range 40 { // 640 KiB: past half the 1 MiB connection window
		c.write(func(fr *http2.Framer) error { return fr.WriteData(1, false, chunk) })
	}
	var got uint32
	for got < 512<<10 {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d bytes of connection window back: %v", got, err)
		}
		if wu, ok := f.(*http2.WindowUpdateFrame); ok && wu.StreamID == 0 {
			got += wu.Increment
		}
	}
}

// TestExpectContinue: "100 Continue" goes when the handler first reads the
// body (RFC 9110 §10.1.1), from the reading goroutine, and never once the
// final response is out.
func TestExpectContinue(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		done := make(chan []byte)
		go func() { b, _ := io.ReadAll(r.Body); done <- b }() // as a RoundTripper's writer
		_, _ = w.Write(<-done)
	})
	s := startServer(t, Config{}, h, nil)
	c := dialRaw(t, s)
	post := func(id uint32, path string) {
		c.headers(id, false, ":method", "POST", ":scheme", "http", ":authority", "test", ":path", path, "expect", "100-continue")
	}
	post(1, "/read")
	res, _, err := c.readUntil(func(res map[uint32]*streamResult, _ *http2.GoAwayFrame) bool {
		return res[1] != nil && len(res[1].interim) > 0
	})
	if err != nil {
		t.Fatal(err)
	}
	c.write(func(fr *http2.Framer) error { return fr.WriteData(1, true, []byte("body")) })
	post(3, "/refuse")
	more, _, err := c.readUntil(allEnded(1, 3))
	if err != nil {
		t.Fatal(err)
	}
	if r := more[1]; res[1].interim[0] != "100" || r.status != "200" || string(r.data) != "body" {
		t.Errorf("read body: interim %v, then %+v; want 100, then 200 with the body", res[1].interim, *r)
	}
	if r := more[3]; r.status != "413" || len(r.interim) != 0 {
		t.Errorf("refused without reading: %+v; want 413 and no 100", *r)
	}
}

// TestHeaderBlockContinuation: a request split over HEADERS and
// CONTINUATION frames is decoded whole (RFC 9113 §4.3); CONTINUATION
// frames after the block went over the header-list limit end the
// connection with PROTOCOL_ERROR (the CONTINUATION flood).
func TestHeaderBlockContinuation(t *testing.T) {
	s := startServer(t, Config{MaxHeaderListSize: 4 << 10}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Header.Get("X-Split"))
	}), nil)
	c := dialRaw(t, s)
	c.hb.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "test"}, {":path", "/"}, {"x-split", "joined"}} {
		_ = c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	block := bytes.Clone(c.hb.Bytes())
	c.write(func(fr *http2.Framer) error {
		return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:3], EndStream: true})
	})
	for i := 3; i < len(block); i += 4 {
		frag, last := block[i:min(i+4, len(block))], i+4 >= len(block)
		c.write(func(fr *http2.Framer) error { return fr.WriteContinuation(1, last, frag) })
	}
	res, _, err := c.readUntil(allEnded(1))
	if err != nil {
		t.Fatal(err)
	}
	if r := res[1]; r.status != "200" || string(r.data) != "joined" {
		t.Errorf("split block: %+v, want 200 and the split field's value", *r)
	}

	c.hb.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "test"}, {":path", "/"}, {"x-big", strings.Repeat("b", 3000)}, {"x-big2", strings.Repeat("c", 3000)}} {
		_ = c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	big := bytes.Clone(c.hb.Bytes())
	c.write(func(fr *http2.Framer) error {
		return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: big, EndStream: true})
	})
	c.write(func(fr *http2.Framer) error { return fr.WriteContinuation(3, false, []byte{0x80 | 62}) })
	_, ga, err := c.readUntil(func(_ map[uint32]*streamResult, ga *http2.GoAwayFrame) bool { return ga != nil })
	if err != nil {
		t.Fatal(err)
	}
	if ga.ErrCode != http2.ErrCodeProtocol {
		t.Errorf("CONTINUATION after the limit: GOAWAY %v, want PROTOCOL_ERROR", ga.ErrCode)
	}
}
