package frontend

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// HTTP/2 floods against a real TLS listener (docs/limits.md lists each
// case with its test). Every flood is bounded by a frame count and by
// waitLimit; no assertion is about speed.

// floodFrames bounds every flood: a server that has not hung up after
// this many frames never will.
const floodFrames = 100_000

// floodClient is a raw HTTP/2 client for floods: frames are buffered and
// flushed in batches, and a reader goroutine drains whatever the server
// sends (a flooder that reads is the hard case: x/net's own limit on queued
// control frames only catches one that does not), noting GOAWAY, until
// the connection closes.
type floodClient struct {
	t    *testing.T
	conn *tls.Conn
	bw   *bufio.Writer
	fr   *http2.Framer // writes only
	hb   bytes.Buffer
	enc  *hpack.Encoder

	done       chan struct{} // closed when the reader stops
	goAway     atomic.Int64  // GOAWAY error code + 1; 0 before any
	statusMu   sync.Mutex
	statuses   map[uint32]string // guarded by statusMu: :status per stream
	readFrames atomic.Int64
}

func (e *testEnv) dialFlood(t *testing.T) *floodClient {
	t.Helper()
	conn := e.dialTLS(t, "h2")
	c := &floodClient{t: t, conn: conn, bw: bufio.NewWriterSize(conn, 64<<10), done: make(chan struct{}), statuses: map[uint32]string{}}
	c.enc = hpack.NewEncoder(&c.hb)
	c.fr = http2.NewFramer(c.bw, nil)
	_, _ = c.bw.WriteString(http2.ClientPreface)
	_ = c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30})
	_ = c.fr.WriteWindowUpdate(0, 1<<30)
	if err := c.bw.Flush(); err != nil {
		t.Fatal(err)
	}
	rfr := http2.NewFramer(io.Discard, conn)
	rfr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	go func() {
		defer close(c.done)
		for {
			f, err := rfr.ReadFrame()
			if err != nil {
				var se http2.StreamError
				if errors.As(err, &se) {
					continue
				}
				return
			}
			c.readFrames.Add(1)
			switch f := f.(type) {
			case *http2.GoAwayFrame:
				c.goAway.CompareAndSwap(0, int64(f.ErrCode)+1)
			case *http2.MetaHeadersFrame:
				c.statusMu.Lock()
				c.statuses[f.StreamID] = f.PseudoValue("status")
				c.statusMu.Unlock()
			}
		}
	}()
	return c
}

func (c *floodClient) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// block encodes a request header block (the encoder lives as long as the
// connection, so repeated fields become indexed).
func (c *floodClient) block(kv ...string) []byte {
	c.hb.Reset()
	for i := 0; i < len(kv); i += 2 {
		_ = c.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return bytes.Clone(c.hb.Bytes())
}

func (c *floodClient) request(method, path string) []byte {
	return c.block(":method", method, ":scheme", "https", ":authority", "localhost", ":path", path)
}

// flood writes frames with each(i) for i from 0 until n, the server hangs
// up, or a write fails, flushing every 64 calls; it returns the calls made.
func (c *floodClient) flood(n int, each func(i int) error) int {
	i := 0
	for ; i < n && !c.closed(); i++ {
		if err := each(i); err != nil {
			break
		}
		if i%64 == 63 {
			if err := c.bw.Flush(); err != nil {
				break
			}
		}
	}
	_ = c.bw.Flush()
	return i
}

// wait waits for the reader to stop and returns the GOAWAY code seen
// (ok false: none).
func (c *floodClient) wait() (code http2.ErrCode, ok bool) {
	c.t.Helper()
	recv(c.t, c.done, "the server to close the connection")
	v := c.goAway.Load()
	return http2.ErrCode(v - 1), v != 0
}

// heapWatch samples the heap in use until stop; peak is the largest
// sample above the baseline taken at the start (after a GC).
type heapWatch struct {
	base, peak uint64
	stop       chan struct{}
	done       chan struct{}
}

func watchHeap() *heapWatch {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	w := &heapWatch{base: ms.HeapInuse, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > w.base && ms.HeapInuse-w.base > w.peak {
				w.peak = ms.HeapInuse - w.base
			}
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// end stops sampling and returns the peak growth in bytes.
func (w *heapWatch) end() uint64 {
	close(w.stop)
	<-w.done
	return w.peak
}

// maxHeapGrowth bounds the heap a flood may add: far above what a
// mitigated flood costs (a few MiB), far below what an unmitigated one
// buffering per frame would reach.
const maxHeapGrowth = 64 << 20

// bystander is a well-behaved client: it keeps sending GET /ok on its own
// connection until stop, and counts answers. A failure is reported.
type bystander struct {
	ok, failed atomic.Int64
	lastErr    atomic.Value
	stop       chan struct{}
	done       chan struct{}
}

func startBystander(t *testing.T, c *http.Client, url string) *bystander {
	b := &bystander{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for {
			r := get(c, url)
			switch {
			case r.err != nil:
				b.failed.Add(1)
				b.lastErr.Store(r.err.Error())
			case r.resp.StatusCode != http.StatusOK:
				b.failed.Add(1)
				b.lastErr.Store(r.resp.Status)
			default:
				b.ok.Add(1)
			}
			select {
			case <-b.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return b
}

// end stops the bystander and fails the test unless every request it made
// was answered 200, at least one after the flood ended.
func (b *bystander) end(t *testing.T) {
	t.Helper()
	before := b.ok.Load()
	for b.ok.Load() == before && b.failed.Load() == 0 {
		time.Sleep(10 * time.Millisecond) // one more after the flood (bounded by the client's timeout)
	}
	close(b.stop)
	<-b.done
	if n := b.failed.Load(); n > 0 {
		t.Errorf("well-behaved client: %d requests failed (last: %v), %d answered", n, b.lastErr.Load(), b.ok.Load())
	}
	t.Logf("well-behaved client: %d requests answered 200 during and after the flood", b.ok.Load())
}

// floodHandler answers /ok at once; every other request waits for its
// context, as a proxied request waits for its origin, and is counted.
type floodHandler struct {
	cur, peak, total atomic.Int64
}

func (h *floodHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/ok" {
		_, _ = io.WriteString(w, "ok")
		return
	}
	n := h.cur.Add(1)
	defer h.cur.Add(-1)
	h.total.Add(1)
	for p := h.peak.Load(); n > p && !h.peak.CompareAndSwap(p, n); p = h.peak.Load() {
	}
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(waitLimit):
	}
}

// TestHTTP2Floods: with the default limits, each flood, sent by a client
// that reads everything the server answers, ends in
// GOAWAY(ENHANCE_YOUR_CALM) and a closed connection; the heap stays
// bounded; a well-behaved client on another connection is served
// throughout. The "limits off" cases are the same floods with the shim's
// limits switched off: x/net alone answers them for ever (it bounds only
// handler goroutines and unread control frames), which is why the limits
// exist.
func TestHTTP2Floods(t *testing.T) {
	type attack struct {
		name  string
		open  func(c *floodClient) // before the flood
		frame func(c *floodClient, i int) error
	}
	attacks := []attack{
		{"rapid reset", nil, func(c *floodClient, i int) error {
			id := uint32(2*i + 1)
			if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.request("GET", "/wait"), EndStream: true, EndHeaders: true}); err != nil {
				return err
			}
			return c.fr.WriteRSTStream(id, http2.ErrCodeCancel)
		}},
		{"ping", nil, func(c *floodClient, i int) error { return c.fr.WritePing(false, [8]byte{byte(i)}) }},
		{"settings", nil, func(c *floodClient, i int) error {
			return c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
		}},
		{"priority", nil, func(c *floodClient, i int) error {
			return c.fr.WritePriority(uint32(2*i+1), http2.PriorityParam{Weight: 7})
		}},
		{"empty data", func(c *floodClient) {
			_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.request("POST", "/upload"), EndHeaders: true})
		}, func(c *floodClient, i int) error { return c.fr.WriteData(1, false, nil) }},
		{"empty continuation", func(c *floodClient) {
			b := c.request("GET", "/never")
			_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:2], EndStream: true})
		}, func(c *floodClient, i int) error { return c.fr.WriteContinuation(1, false, nil) }},
		{"unknown frames", nil, func(c *floodClient, i int) error { return c.fr.WriteRawFrame(0x2a, 0, 0, nil) }},
	}
	for _, limitsOn := range []bool{true, false} {
		for _, a := range attacks {
			name := a.name
			cfg := Config{DisableHTTP3: true}
			n := floodFrames
			if !limitsOn {
				name += "/limits off"
				cfg.H2MaxResets, cfg.H2MaxControlFrames, cfg.H2MaxEmptyFrames = -1, -1, -1
				n = floodFrames / 5
			}
			t.Run(name, func(t *testing.T) {
				h := &floodHandler{}
				env := startServer(t, cfg, h)
				by := startBystander(t, env.client(t, modeH2), env.url("/ok"))
				heap := watchHeap()
				c := env.dialFlood(t)
				if a.open != nil {
					a.open(c)
				}
				sent := c.flood(n, func(i int) error { return a.frame(c, i) })
				if limitsOn {
					code, ok := c.wait()
					if !ok || code != http2.ErrCodeEnhanceYourCalm {
						t.Errorf("after %d frames: GOAWAY %v (seen %v), want ENHANCE_YOUR_CALM", sent, code, ok)
					}
					// The client's frames pile up in socket buffers, so
					// how many it wrote says little; the handlers say how
					// many requests the server read before the verdict.
					if a.name == "rapid reset" && h.total.Load() > DefaultH2MaxResets+1 {
						t.Errorf("%d handlers started, want at most H2MaxResets+1 = %d", h.total.Load(), DefaultH2MaxResets+1)
					}
				} else {
					// x/net alone: still open after the whole flood; a
					// PING still gets its answer.
					before := c.readFrames.Load()
					_ = c.fr.WritePing(false, [8]byte{'a', 'l', 'i', 'v', 'e'})
					_ = c.bw.Flush()
					deadline := time.Now().Add(waitLimit)
					for c.readFrames.Load() == before && !c.closed() && time.Now().Before(deadline) {
						time.Sleep(5 * time.Millisecond)
					}
					if c.closed() {
						code, ok := c.wait()
						t.Logf("x/net closed the connection itself after %d frames (GOAWAY %v, seen %v)", sent, code, ok)
					} else {
						t.Logf("x/net alone: %d frames of %q answered, connection still open", sent, a.name)
					}
					_ = c.conn.Close()
				}
				growth := heap.end()
				if growth > maxHeapGrowth {
					t.Errorf("heap grew by %d MiB during the flood, want at most %d MiB", growth>>20, maxHeapGrowth>>20)
				}
				if p := h.peak.Load(); p > int64(DefaultMaxConcurrentStreams) {
					t.Errorf("%d handlers ran at once, more than SETTINGS_MAX_CONCURRENT_STREAMS %d", p, DefaultMaxConcurrentStreams)
				}
				t.Logf("%d frames sent; handlers started %d (at most %d at once); heap +%d KiB",
					sent, h.total.Load(), h.peak.Load(), growth>>10)
				by.end(t)
			})
		}
	}
}

// TestHTTP2RapidResetXNet pins x/net's own rapid-reset mitigation, which
// the shim's reset limit sits on top of: with the limit off, a client
// opening and resetting streams as fast as it can never gets more handlers
// running at once than SETTINGS_MAX_CONCURRENT_STREAMS, whatever the
// number of resets (x/net queues the rest, and ends the connection with
// ENHANCE_YOUR_CALM if more than four times that many wait).
func TestHTTP2RapidResetXNet(t *testing.T) {
	const streams = 20
	h := &floodHandler{}
	env := startServer(t, Config{DisableHTTP3: true, MaxConcurrentStreams: streams, H2MaxResets: -1}, h)
	c := env.dialFlood(t)
	sent := c.flood(floodFrames/5, func(i int) error {
		id := uint32(2*i + 1)
		if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.request("GET", "/wait"), EndStream: true, EndHeaders: true}); err != nil {
			return err
		}
		return c.fr.WriteRSTStream(id, http2.ErrCodeCancel)
	})
	_ = c.conn.Close()
	if p := h.peak.Load(); p > streams {
		t.Errorf("%d handlers at once, want at most %d", p, streams)
	}
	t.Logf("%d HEADERS+RST_STREAM pairs; %d handlers started, at most %d at once", sent, h.total.Load(), h.peak.Load())
}

// TestHTTP2ContinuationFloodXNet: CONTINUATION frames that carry header
// bytes (CVE-2024-27316 family) are x/net's to stop (since v0.23.0): a
// header block that grows past the header list limit ends the connection
// after a few frames, and the request never reaches the handler. (Empty
// CONTINUATION frames, which add nothing to that count, are the shim's:
// TestHTTP2Floods "empty continuation".)
func TestHTTP2ContinuationFloodXNet(t *testing.T) {
	h := &floodHandler{}
	env := startServer(t, Config{DisableHTTP3: true}, h)
	by := startBystander(t, env.client(t, modeH2), env.url("/ok"))
	heap := watchHeap()
	c := env.dialFlood(t)
	_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: c.request("GET", "/never"), EndStream: true})
	// Each fragment: literal fields without indexing (RFC 7541 §6.2.2),
	// a new 14-byte name and a 4 KiB value each.
	var frag bytes.Buffer
	enc := hpack.NewEncoder(&frag)
	for i := range 4 {
		_ = enc.WriteField(hpack.HeaderField{Name: "x-flood-" + strconv.Itoa(100000+i), Value: strings.Repeat("v", 4096), Sensitive: true})
	}
	sent := c.flood(floodFrames, func(i int) error { return c.fr.WriteContinuation(1, false, frag.Bytes()) })
	code, ok := c.wait()
	if !ok {
		t.Errorf("connection closed without GOAWAY after %d CONTINUATION frames", sent)
	}
	if n := h.total.Load(); n != 0 {
		t.Errorf("%d requests reached the handler", n)
	}
	if growth := heap.end(); growth > maxHeapGrowth {
		t.Errorf("heap grew by %d MiB", growth>>20)
	}
	t.Logf("%d CONTINUATION frames of %d bytes sent before GOAWAY %v", sent, frag.Len(), code)
	by.end(t)
}

// TestHTTP2HeaderListBomb: an HPACK bomb, one 100-byte field entered in
// the dynamic table and then referenced by one-byte indexed fields
// (RFC 7541 §6.1) until the decoded list is 30 times
// SETTINGS_MAX_HEADER_LIST_SIZE, gets 431 on its stream (x/net stops
// materialising fields at the limit) and the connection goes on.
func TestHTTP2HeaderListBomb(t *testing.T) {
	h := &floodHandler{}
	// The bomb fits one HEADERS frame within the default 16 KiB
	// SETTINGS_MAX_FRAME_SIZE: what is tested is the decoded list's limit.
	env := startServer(t, Config{DisableHTTP3: true}, h)
	heap := watchHeap()
	c := env.dialFlood(t)
	frag := c.request("GET", "/bomb")
	frag = append(frag, c.block("x-bomb", strings.Repeat("b", 100))...) // incremental indexing: dynamic index 62
	idx := bytes.Repeat([]byte{0x80 | 62}, 16000)                       // 16000 × (6+100+32) bytes ≈ 2.2 MB decoded
	frag = append(frag, idx...)
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: frag, EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: c.request("GET", "/ok"), EndStream: true, EndHeaders: true})
	_ = c.bw.Flush()
	deadline := time.Now().Add(waitLimit)
	var s1, s3 string
	for time.Now().Before(deadline) && !c.closed() {
		c.statusMu.Lock()
		s1, s3 = c.statuses[1], c.statuses[3]
		c.statusMu.Unlock()
		if s1 != "" && s3 != "" {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if s1 != "431" || s3 != "200" {
		t.Errorf("bomb answered %q, next request %q; want 431 and 200 on the same connection", s1, s3)
	}
	if n := h.total.Load(); n != 0 {
		t.Errorf("the bomb reached the handler")
	}
	if growth := heap.end(); growth > maxHeapGrowth {
		t.Errorf("heap grew by %d MiB", growth>>20)
	}
}
