package h2

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// seedFrames builds frame sequences a client might send after its preface.
func seedFrames() [][]byte {
	var out [][]byte
	build := func(fn func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer)) {
		var buf, hb bytes.Buffer
		fr := http2.NewFramer(&buf, nil)
		fr.AllowIllegalWrites = true
		enc := hpack.NewEncoder(&hb)
		fn(fr, enc, &hb)
		out = append(out, buf.Bytes())
	}
	block := func(enc *hpack.Encoder, hb *bytes.Buffer, kv ...string) []byte {
		hb.Reset()
		for i := 0; i+1 < len(kv); i += 2 {
			_ = enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		return bytes.Clone(hb.Bytes())
	}
	get := []string{":method", "GET", ":scheme", "https", ":authority", "a", ":path", "/"}
	post := []string{":method", "POST", ":scheme", "https", ":authority", "a", ":path", "/p", "content-length", "4"}
	build(func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(enc, hb, get...), EndStream: true, EndHeaders: true})
	})
	build(func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(enc, hb, post...), EndHeaders: true})
		_ = fr.WriteData(1, false, []byte("ab"))
		_ = fr.WriteWindowUpdate(0, 1000)
		_ = fr.WriteData(1, true, []byte("cd"))
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: block(enc, hb, get...), EndStream: true, EndHeaders: true})
		_ = fr.WriteRSTStream(3, http2.ErrCodeCancel)
	})
	build(func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer) {
		b := block(enc, hb, append(get, "x-a", "b", "trailer", "x-t")...)
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:3], EndHeaders: false})
		_ = fr.WriteContinuation(1, true, b[3:])
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 10}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
		_ = fr.WritePing(false, [8]byte{1})
		_ = fr.WritePriority(1, http2.PriorityParam{StreamDep: 1})
		_ = fr.WriteGoAway(1, http2.ErrCodeNo, nil)
	})
	build(func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(enc, hb, post...), EndHeaders: true})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(enc, hb, "x-t", "1"), EndStream: true, EndHeaders: true})
		_ = fr.WriteRawFrame(0x20, 0, 0, []byte("unknown"))
		_ = fr.WriteDataPadded(5, true, []byte("x"), make([]byte, 10))
	})
	return out
}

// FuzzConnFrames feeds frame sequences to a live engine connection after a
// valid preface: whatever the bytes, the engine must not panic, and once
// the client goes away Serve must return (no hang, every handler done).
func FuzzConnFrames(f *testing.F) {
	for _, s := range seedFrames() {
		f.Add(s)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set(http.TrailerPrefix+"X-Len", "1")
		_, _ = w.Write(b)
		_, _ = io.WriteString(w, "ok")
	})
	cfg := &Config{MalformedField: connectionSpecific, PrefaceTimeout: time.Second}
	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		c := NewConn(server, h, cfg)
		served := make(chan struct{})
		go func() { c.Serve(); close(served) }()
		// The client reads everything the server writes, until EOF.
		drained := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, client); close(drained) }()
		_ = client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, _ = io.WriteString(client, http2.ClientPreface)
		fr := http2.NewFramer(client, nil)
		_ = fr.WriteSettings()
		_, _ = client.Write(data)
		_ = client.Close()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return after the client closed")
		}
		<-drained
	})
}

// TestFloodCount: a kind of frame trips its limit past max within the
// window, and a count spread over more than the window does not.
func TestFloodCount(t *testing.T) {
	c := floodCount{max: 3}
	for i := range 3 {
		if c.hit(time.Hour) {
			t.Fatalf("tripped at frame %d of 3", i+1)
		}
	}
	if !c.hit(time.Hour) {
		t.Error("4 frames within the window: not tripped")
	}
	slow := floodCount{max: 3}
	for i := range 10 {
		if slow.hit(0) {
			t.Fatalf("a zero window tripped at frame %d", i+1)
		}
	}
	off := floodCount{max: -1}
	for range 10 {
		if off.hit(time.Hour) {
			t.Fatal("no limit, yet tripped")
		}
	}
}

// TestFrameCounter: the counter follows frame boundaries across reads of
// any size and trips on the frame kinds it counts.
func TestFrameCounter(t *testing.T) {
	var buf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	for i := range 5 {
		_ = fr.WriteData(1, false, make([]byte, 100)) // not counted here
		_ = fr.WritePing(false, [8]byte{byte(i)})
	}
	for _, chunk := range []int{1, 7, 4096} {
		fc := &frameCounter{r: &chunkReader{data: bytes.Clone(buf.Bytes()), n: chunk}, window: time.Hour, control: floodCount{max: 4}}
		fr := http2.NewFramer(io.Discard, fc)
		var err error
		pings := 0
		for err == nil {
			var f http2.Frame
			f, err = fr.ReadFrame()
			if _, ok := f.(*http2.PingFrame); ok {
				pings++
			}
		}
		if ce, ok := err.(http2.ConnectionError); !ok || http2.ErrCode(ce) != http2.ErrCodeEnhanceYourCalm || pings != 4 {
			t.Errorf("reads of %d bytes: %d PINGs read, then %v; want 4 and ENHANCE_YOUR_CALM", chunk, pings, err)
		}
	}
}

// chunkReader hands out data in reads of at most n bytes.
type chunkReader struct {
	data []byte
	n    int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n, len(r.data))
	copy(p, r.data[:k])
	r.data = r.data[k:]
	return k, nil
}
