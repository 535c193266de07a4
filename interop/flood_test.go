package interop

// Floods against the real binary (docs/limits.md lists each case and its
// test): HTTP/2 rapid reset, PING, SETTINGS, empty DATA and empty
// CONTINUATION floods; header-list bombs over HTTP/1.1, HTTP/2 and
// HTTP/3; the per-address connection limit over TCP and QUIC. Each attack
// is bounded by a frame or connection count and by time; hoplite must stay
// up, its memory (VmRSS/VmHWM from /proc) and open files must stay
// bounded, and a well-behaved client must be answered 200 throughout.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/qpack"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// procStats is what /proc says about a process.
type procStats struct {
	rssKiB, hwmKiB int64 // VmRSS, VmHWM
	fds            int   // open file descriptors
}

func readProcStats(t *testing.T, pid int) procStats {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading /proc/%d/status: %v", pid, err)
	}
	var s procStats
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			s.rssKiB = n
		case "VmHWM":
			s.hwmKiB = n
		}
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("reading /proc/%d/fd: %v", pid, err)
	}
	s.fds = len(ents)
	return s
}

func (s procStats) String() string {
	return fmt.Sprintf("VmRSS %d MiB, VmHWM %d MiB, %d open files", s.rssKiB>>10, s.hwmKiB>>10, s.fds)
}

// maxRSSGrowthKiB bounds how much hoplite's peak resident memory may grow
// during an attack. Generous: under -race the binary's memory is several
// times its normal size; an unbounded flood would exceed it by far.
const maxRSSGrowthKiB = 512 << 10

// checkBounded fails the test if hoplite has exited or its peak memory
// grew past maxRSSGrowthKiB since before.
func checkBounded(t *testing.T, h *instance, before procStats) procStats {
	t.Helper()
	if h.exited() {
		t.Fatalf("hoplite exited during the attack: %v", h.err)
	}
	after := readProcStats(t, h.cmd.Process.Pid)
	if g := after.hwmKiB - before.rssKiB; g > maxRSSGrowthKiB {
		t.Errorf("hoplite's peak memory grew by %d MiB (before: %v; after: %v), want at most %d MiB",
			g>>10, before, after, maxRSSGrowthKiB>>10)
	}
	t.Logf("hoplite before: %v; after: %v", before, after)
	return after
}

// goodClient is a well-behaved client: GET / with its own connections
// every 20ms until stop; every answer must be 200.
type goodClient struct {
	ok, failed atomic.Int64
	lastErr    atomic.Value
	stop, done chan struct{}
}

func startGoodClient(t *testing.T, c *http.Client, url string) *goodClient {
	g := &goodClient{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(g.done)
		for {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			resp, _, err := fetch(c, req)
			switch {
			case err != nil:
				g.failed.Add(1)
				g.lastErr.Store(err.Error())
			case resp.StatusCode != 200:
				g.failed.Add(1)
				g.lastErr.Store(resp.Status)
			default:
				g.ok.Add(1)
			}
			select {
			case <-g.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return g
}

// end stops the client after one more answer and reports failures.
func (g *goodClient) end(t *testing.T) {
	t.Helper()
	before, deadline := g.ok.Load()+g.failed.Load(), time.Now().Add(40*time.Second)
	for g.ok.Load()+g.failed.Load() == before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(g.stop)
	<-g.done
	if n := g.failed.Load(); n > 0 || g.ok.Load() == 0 {
		t.Errorf("well-behaved client: %d requests failed (last: %v), %d answered 200", n, g.lastErr.Load(), g.ok.Load())
	} else {
		t.Logf("well-behaved client: %d requests, all answered 200", g.ok.Load())
	}
}

// h2Flooder is a raw HTTP/2 connection for floods: buffered writes, and a
// reader that drains everything (a reading flooder is the hard case) and
// notes GOAWAY until the connection ends.
type h2Flooder struct {
	conn   *tls.Conn
	bw     *bufio.Writer
	fr     *http2.Framer
	hb     bytes.Buffer
	enc    *hpack.Encoder
	done   chan struct{}
	goAway atomic.Int64 // code + 1
}

func dialH2Flooder(t *testing.T, h *instance) *h2Flooder {
	t.Helper()
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second},
		Config: &tls.Config{RootCAs: h.pki.Pool(), ServerName: "localhost", NextProtos: []string{"h2"}}}
	nc, err := d.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	conn := nc.(*tls.Conn)
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	f := &h2Flooder{conn: conn, bw: bufio.NewWriterSize(conn, 64<<10), done: make(chan struct{})}
	f.enc = hpack.NewEncoder(&f.hb)
	f.fr = http2.NewFramer(f.bw, nil)
	f.bw.WriteString(http2.ClientPreface)
	f.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30})
	f.fr.WriteWindowUpdate(0, 1<<30)
	if err := f.bw.Flush(); err != nil {
		t.Fatal(err)
	}
	rfr := http2.NewFramer(io.Discard, conn)
	rfr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	go func() {
		defer close(f.done)
		for {
			fr, err := rfr.ReadFrame()
			if err != nil {
				var se http2.StreamError
				if errors.As(err, &se) {
					continue
				}
				return
			}
			if ga, ok := fr.(*http2.GoAwayFrame); ok {
				f.goAway.CompareAndSwap(0, int64(ga.ErrCode)+1)
			}
		}
	}()
	return f
}

func (f *h2Flooder) request(method, path, authority string) []byte {
	f.hb.Reset()
	for _, kv := range [][2]string{{":method", method}, {":scheme", "https"}, {":authority", authority}, {":path", path}} {
		f.enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	return bytes.Clone(f.hb.Bytes())
}

// flood calls each until n calls, the connection's end or a write error,
// flushing every 64 calls, and returns the calls made.
func (f *h2Flooder) flood(n int, each func(i int) error) int {
	i := 0
	for ; i < n; i++ {
		select {
		case <-f.done:
			return i
		default:
		}
		if each(i) != nil {
			break
		}
		if i%64 == 63 && f.bw.Flush() != nil {
			break
		}
	}
	f.bw.Flush()
	return i
}

// TestFloodH2 runs each HTTP/2 flood of issue 6 against hoplite with its
// default limits, from a client that reads everything: each must end with
// GOAWAY(ENHANCE_YOUR_CALM) and a closed connection, well within 100,000
// frames.
func TestFloodH2(t *testing.T) {
	const maxFrames = 100_000
	h := startHoplite(t, singleBackend(startEchoOrigin(t)), newPKI(t))
	pid := h.cmd.Process.Pid
	good := startGoodClient(t, h.client(t, modeH2, nil), h.url("/good"))
	before := readProcStats(t, pid)

	attacks := []struct {
		name  string
		open  func(f *h2Flooder)
		frame func(f *h2Flooder, i int) error
	}{
		{"rapid-reset", nil, func(f *h2Flooder, i int) error {
			id := uint32(2*i + 1)
			if err := f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: f.request("GET", "/rr", h.authority), EndStream: true, EndHeaders: true}); err != nil {
				return err
			}
			return f.fr.WriteRSTStream(id, http2.ErrCodeCancel)
		}},
		{"ping", nil, func(f *h2Flooder, i int) error { return f.fr.WritePing(false, [8]byte{byte(i)}) }},
		{"settings", nil, func(f *h2Flooder, i int) error {
			return f.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: 1 << 16})
		}},
		{"empty-data", func(f *h2Flooder) {
			f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: f.request("POST", "/upload", h.authority), EndHeaders: true})
		}, func(f *h2Flooder, i int) error { return f.fr.WriteData(1, false, nil) }},
		{"empty-continuation", func(f *h2Flooder) {
			b := f.request("GET", "/never", h.authority)
			f.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:2], EndStream: true})
		}, func(f *h2Flooder, i int) error { return f.fr.WriteContinuation(1, false, nil) }},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			f := dialH2Flooder(t, h)
			if a.open != nil {
				a.open(f)
			}
			sent := f.flood(maxFrames, func(i int) error { return a.frame(f, i) })
			select {
			case <-f.done:
			case <-time.After(30 * time.Second):
				t.Fatalf("connection still open 30s after %d frames", sent)
			}
			if v := f.goAway.Load(); v != int64(http2.ErrCodeEnhanceYourCalm)+1 {
				t.Errorf("after %d frames: GOAWAY code %v, want ENHANCE_YOUR_CALM", sent, http2.ErrCode(v-1))
			}
			t.Logf("%d frames written before the connection closed", sent)
		})
	}
	after := checkBounded(t, h, before)
	// The flooders' connections are gone: hoplite's open files come back.
	deadline := time.Now().Add(20 * time.Second)
	for after.fds > before.fds+8 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		after = readProcStats(t, pid)
	}
	if after.fds > before.fds+8 {
		t.Errorf("hoplite holds %d open files after the floods, %d before", after.fds, before.fds)
	}
	good.end(t)
}

// TestFloodHeaderBombs: header lists far over downstream.max_header_bytes
// (64 KiB) get 431 over every protocol, and the next request on a fresh or
// the same connection is served: HTTP/1.1 (100 fields of 1 KiB; net/http),
// HTTP/2 (an HPACK bomb: one 100-byte field indexed once, then referenced
// 16,000 times by one-byte indexed fields, decoding to 2 MB from one HEADERS
// frame within the default 16 KiB SETTINGS_MAX_FRAME_SIZE; hoplite enforces
// SETTINGS_MAX_HEADER_LIST_SIZE on the decoded list) and HTTP/3 (a 150 KB QPACK
// field section, and a 4 KB one of static-table references decoding to
// 128 KB; quic-go's MaxHeaderBytes, on the frame and on the decoded list).
func TestFloodHeaderBombs(t *testing.T) {
	h := startHoplite(t, singleBackend(startEchoOrigin(t)), newPKI(t))
	before := readProcStats(t, h.cmd.Process.Pid)

	t.Run("h1", func(t *testing.T) {
		c := dialRawH1(t, h)
		var fields []string
		for i := range 100 {
			fields = append(fields, fmt.Sprintf("X-Bomb-%d: %s", i, strings.Repeat("b", 1024)))
		}
		if r := c.do("GET", "/bomb", "HTTP/1.1", fields...); r.StatusCode != 431 || r.Header.Get("Via") != "" {
			t.Errorf("100 KiB header: status %d, Via %q; want 431 from hoplite itself (no Via: not the origin's answer)", r.StatusCode, r.Header.Get("Via"))
		}
		if r := dialRawH1(t, h).do("GET", "/after", "HTTP/1.1"); r.StatusCode != 200 {
			t.Errorf("next request: %d", r.StatusCode)
		}
	})

	t.Run("h2", func(t *testing.T) {
		c := dialH2Raw(t, h)
		idx := make([]hpack.HeaderField, 0, 16001)
		idx = append(idx, hpack.HeaderField{Name: "x-bomb", Value: strings.Repeat("b", 100)})
		for range 16000 {
			idx = append(idx, hpack.HeaderField{Name: "x-bomb", Value: strings.Repeat("b", 100)})
		}
		// Go's encoder indexes the first and refers to it by index after.
		out := c.get("/bomb", idx...)
		if out.status != "431" || slices.ContainsFunc(out.header, func(f hpack.HeaderField) bool { return f.Name == "via" }) {
			t.Errorf("HPACK bomb: %s, header %v; want status 431 from hoplite itself (no Via: not the origin's answer)", out, out.header)
		}
		if out := c.get("/after"); out.status != "200" {
			t.Errorf("next request on the same connection: %s", out)
		}
	})

	t.Run("h3", func(t *testing.T) {
		c := dialH3Raw(t, h)
		// A HEADERS frame longer than the limit: quic-go stops reading it
		// (STOP_SENDING, H3_EXCESSIVE_LOAD) and answers 431.
		var fields []qpack.HeaderField
		for i := range 2000 {
			fields = append(fields, qpack.HeaderField{Name: fmt.Sprintf("x-bomb-%d", i), Value: strings.Repeat("b", 64)})
		}
		if status, via := h3Status(t, c, fields); status != "431" || via {
			t.Errorf("QPACK field section of 150 KB: status %q (Via %t), want 431 from hoplite itself", status, via)
		}
		// A QPACK bomb: 4,000 one-byte references to the static table's
		// "accept-encoding: gzip, deflate, br" (RFC 9204 Appendix A,
		// index 31) decode to 128 KB from 4 KB.
		fields = fields[:0]
		for range 4000 {
			fields = append(fields, qpack.HeaderField{Name: "accept-encoding", Value: "gzip, deflate, br"})
		}
		if status, via := h3Status(t, c, fields); status != "431" || via {
			t.Errorf("QPACK static-table bomb: status %q (Via %t), want 431 from hoplite itself", status, via)
		}
		if out := c.get("/after"); out.status != "200" {
			t.Errorf("next request on the same connection: %s", out)
		}
	})
	checkBounded(t, h, before)
}

// TestFloodConnsPerIP: with downstream.max_conns_per_ip 16, a seventeenth
// TLS connection from 127.0.0.1 is closed at once, and twenty QUIC
// handshakes at once from 127.0.0.1 get at most sixteen connections;
// meanwhile a client from 127.0.0.2 is served over both.
func TestFloodConnsPerIP(t *testing.T) {
	const limit = 16
	cfg := singleBackend(startEchoOrigin(t))
	cfg.DownstreamExtra = []string{"max_conns_per_ip: " + strconv.Itoa(limit)}
	h := startHoplite(t, cfg, newPKI(t))
	tlsConf := &tls.Config{RootCAs: h.pki.Pool(), ServerName: "localhost", NextProtos: []string{"http/1.1"}}

	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range limit {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", h.addr, tlsConf)
		if err != nil {
			t.Fatalf("connection %d of %d: %v", i+1, limit, err)
		}
		held = append(held, c)
	}
	if c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", h.addr, tlsConf); err == nil {
		c.Close()
		t.Errorf("connection %d from 127.0.0.1 was let in", limit+1)
	}

	// The other address, over TCP and QUIC.
	other := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	tr := &http.Transport{TLSClientConfig: tlsConf, DialContext: other.DialContext}
	defer tr.CloseIdleConnections()
	if resp, _, err := fetch(&http.Client{Transport: tr, Timeout: 20 * time.Second}, mustRequest(t, h.url("/other"))); err != nil || resp.StatusCode != 200 {
		t.Errorf("client from 127.0.0.2 over TCP: %v %v", resp, err)
	}
	for _, c := range held {
		c.Close()
	}
	held = nil

	qConf := &tls.Config{RootCAs: h.pki.Pool(), ServerName: "localhost", NextProtos: []string{http3.NextProtoH3}}
	var (
		mu      sync.Mutex
		conns   []*quic.Conn
		refused int
		wg      sync.WaitGroup
	)
	for range 20 + limit {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			c, err := quic.DialAddr(ctx, h.addr, qConf, &quic.Config{HandshakeIdleTimeout: 5 * time.Second})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				refused++
				return
			}
			conns = append(conns, c)
		})
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			c.CloseWithError(0, "")
		}
	}()
	if len(conns) == 0 || len(conns) > limit {
		t.Errorf("%d QUIC connections from one address, want 1 to %d", len(conns), limit)
	}
	t.Logf("QUIC: %d connections, %d refused", len(conns), refused)
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.2")})
	if err != nil {
		t.Fatal(err)
	}
	qtr := &quic.Transport{Conn: udp}
	defer udp.Close()
	defer qtr.Close()
	udpAddr, _ := net.ResolveUDPAddr("udp", h.addr)
	h3 := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: h.pki.Pool()},
		Dial: func(ctx context.Context, _ string, c *tls.Config, q *quic.Config) (*quic.Conn, error) {
			return qtr.DialEarly(ctx, udpAddr, c, q)
		}}
	defer h3.Close()
	if resp, _, err := fetch(&http.Client{Transport: h3, Timeout: 20 * time.Second}, mustRequest(t, h.url("/other"))); err != nil || resp.StatusCode != 200 {
		t.Errorf("client from 127.0.0.2 over QUIC: %v %v", resp, err)
	}
}

// h3Status sends GET /bomb with extra fields on a new request stream of c
// and returns the status of the response and whether it carries Via (a
// response forwarded from the origin does). Unlike h3Raw.get it reads the
// response even when the server stopped reading the request.
func h3Status(t *testing.T, c *h3Raw, extra []qpack.HeaderField) (status string, via bool) {
	t.Helper()
	var block bytes.Buffer
	enc := qpack.NewEncoder(&block)
	for _, f := range append([]qpack.HeaderField{
		{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: c.h.authority}, {Name: ":path", Value: "/bomb"},
	}, extra...) {
		if err := enc.WriteField(f); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	str, err := c.conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	frame := quicvarint.Append(nil, 0x01) // HEADERS
	frame = quicvarint.Append(frame, uint64(block.Len()))
	_, werr := str.Write(append(frame, block.Bytes()...))
	str.Close()
	str.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(str)
	typ, err1 := quicvarint.Read(r)
	n, err2 := quicvarint.Read(r)
	if err1 != nil || err2 != nil || typ != 0x01 || n > 1<<16 {
		t.Logf("no HEADERS frame in the response (type %d, %v, %v; write: %v)", typ, err1, err2, werr)
		return "", false
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return "", false
	}
	decode := qpack.NewDecoder().Decode(payload)
	for {
		f, err := decode()
		if err != nil {
			return status, via
		}
		switch f.Name {
		case ":status":
			status = f.Value
		case "via":
			via = true
		}
	}
}

func mustRequest(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
