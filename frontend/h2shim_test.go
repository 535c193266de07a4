package frontend

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// x/net's server gets the TLS state through this assertion (http2.go
// connectionStater); the shim must keep satisfying it.
var _ interface{ ConnectionState() tls.ConnectionState } = (*shimConn)(nil)

// testMalformedField is the tests' own reading of RFC 9113 §8.2.2 (the
// product's list lives in translate, which frontend may not import).
func testMalformedField(name, value string) bool {
	switch name {
	case "connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade":
		return true
	case "te":
		return value != "trailers"
	}
	return false
}

func testShimConfig() shimConfig {
	return shimConfig{
		maxFrameSize:      16384,
		headerTableSize:   4096,
		maxHeaderListSize: 64<<10 + 320,
		malformed:         testMalformedField,
		// The defaults: the benchmarks and allocation checks measure the
		// shim with its flood counts running.
		floodWindow: DefaultH2FloodWindow,
		maxResets:   DefaultH2MaxResets,
		maxControl:  DefaultH2MaxControl,
		maxEmpty:    DefaultH2MaxEmptyFrames,
	}
}

// chunkReader hands out at most n bytes per Read.
type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[n:]
	return n, nil
}

// Read patterns for shimRead.
const (
	readFramer = iota // like x/net: preface, then 9-byte header and payload
	readTiny          // 3 bytes at a time
	readLarge         // 64 KiB at a time
)

// shimRead returns what x/net reads through a shim over in.
func shimRead(cfg shimConfig, in []byte, chunk, pattern int) ([]byte, error) {
	var s h2Shim
	s.init(&chunkReader{b: in, n: chunk}, cfg)
	var out []byte
	readFull := func(n int) (bool, error) {
		p := make([]byte, n)
		m, err := io.ReadFull(&s, p)
		out = append(out, p[:m]...)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return false, nil
		}
		return err == nil, err
	}
	switch pattern {
	case readFramer:
		if ok, err := readFull(len(http2.ClientPreface)); !ok {
			return out, err
		}
		for {
			if ok, err := readFull(frameHeaderLen); !ok {
				return out, err
			}
			h := out[len(out)-frameHeaderLen:]
			if ok, err := readFull(int(h[0])<<16 | int(h[1])<<8 | int(h[2])); !ok {
				return out, err
			}
		}
	default:
		p := make([]byte, map[int]int{readTiny: 3, readLarge: 64 << 10}[pattern])
		for {
			n, err := s.Read(p)
			out = append(out, p[:n]...)
			if err == io.EOF {
				return out, nil
			}
			if err != nil {
				return out, err
			}
		}
	}
}

// runShim passes in through the shim with every combination of source
// chunking and read pattern, checks they all give the same bytes, and
// returns them.
func runShim(t *testing.T, cfg shimConfig, in []byte) []byte {
	t.Helper()
	var first []byte
	for _, chunk := range []int{1, 7, 4096, len(in) + 1} {
		for _, pattern := range []int{readFramer, readTiny, readLarge} {
			out, err := shimRead(cfg, in, chunk, pattern)
			if err != nil {
				t.Fatalf("chunk %d pattern %d: %v", chunk, pattern, err)
			}
			if first == nil {
				first = out
			} else if !bytes.Equal(out, first) {
				t.Fatalf("chunk %d pattern %d: output differs from the first run", chunk, pattern)
			}
		}
	}
	return first
}

// xnetEvents reads stream (client preface first) with x/net's Framer set up
// as x/net's server sets it up, and describes each frame or error.
func xnetEvents(t *testing.T, cfg shimConfig, stream []byte) []string {
	t.Helper()
	if !bytes.HasPrefix(stream, []byte(http2.ClientPreface)) {
		t.Fatal("stream does not start with the client preface")
	}
	fr := http2.NewFramer(io.Discard, bytes.NewReader(stream[len(http2.ClientPreface):]))
	fr.ReadMetaHeaders = hpack.NewDecoder(cfg.headerTableSize, nil)
	fr.MaxHeaderListSize = cfg.maxHeaderListSize
	fr.SetMaxReadFrameSize(cfg.maxFrameSize)
	var ev []string
	for {
		f, err := fr.ReadFrame()
		if err == io.EOF {
			return ev
		}
		var se http2.StreamError
		if errors.As(err, &se) {
			ev = append(ev, fmt.Sprintf("STREAM_ERROR %d %v", se.StreamID, se.Code))
			continue
		}
		if err != nil {
			return append(ev, "ERROR "+err.Error())
		}
		ev = append(ev, describeFrame(f))
	}
}

func describeFrame(f http2.Frame) string {
	h := f.Header()
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if f.IsAck() {
			return "SETTINGS ACK"
		}
		var b strings.Builder
		b.WriteString("SETTINGS")
		_ = f.ForeachSetting(func(s http2.Setting) error {
			fmt.Fprintf(&b, " %d=%d", s.ID, s.Val)
			return nil
		})
		return b.String()
	case *http2.MetaHeadersFrame:
		var b strings.Builder
		fmt.Fprintf(&b, "HEADERS %d", h.StreamID)
		if f.StreamEnded() {
			b.WriteString(" END_STREAM")
		}
		if f.Truncated { // x/net's server answers 431
			b.WriteString(" TRUNCATED")
		}
		for _, hf := range f.Fields {
			v := hf.Value
			if len(v) > 40 {
				v = fmt.Sprintf("<%d bytes>", len(v))
			}
			fmt.Fprintf(&b, " %s=%s", hf.Name, v)
		}
		return b.String()
	case *http2.DataFrame:
		return fmt.Sprintf("DATA %d len=%d", h.StreamID, len(f.Data()))
	}
	return fmt.Sprintf("%v %d", h.Type, h.StreamID)
}

// frameTrace lists the raw frames of stream: type, flags, stream, length.
func frameTrace(stream []byte) []string {
	var tr []string
	p := stream[len(http2.ClientPreface):]
	for len(p) >= frameHeaderLen {
		n := int(p[0])<<16 | int(p[1])<<8 | int(p[2])
		tr = append(tr, fmt.Sprintf("%v/%#x/%d/%d", http2.FrameType(p[3]), p[4], uint32(p[5])<<24|uint32(p[6])<<16|uint32(p[7])<<8|uint32(p[8]), n))
		p = p[min(len(p), frameHeaderLen+n):]
	}
	return tr
}

// h2Stream builds a client's byte stream.
type h2Stream struct {
	buf bytes.Buffer
	fr  *http2.Framer
	hb  bytes.Buffer
	enc *hpack.Encoder
}

func newH2Stream() *h2Stream {
	s := &h2Stream{}
	s.buf.WriteString(http2.ClientPreface)
	s.fr = http2.NewFramer(&s.buf, nil)
	s.enc = hpack.NewEncoder(&s.hb)
	return s
}

// block HPACK-encodes name/value pairs (Go's encoder indexes every field
// incrementally, RFC 7541 §6.2.1).
func (s *h2Stream) block(kv ...string) []byte {
	s.hb.Reset()
	for i := 0; i < len(kv); i += 2 {
		_ = s.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return bytes.Clone(s.hb.Bytes())
}

// request encodes a GET with extra fields.
func (s *h2Stream) request(path string, extra ...string) []byte {
	return s.block(append([]string{":method", "GET", ":scheme", "https", ":authority", "example.com", ":path", path}, extra...)...)
}

func (s *h2Stream) headers(stream uint32, frag []byte, endStream, endHeaders bool) *h2Stream {
	_ = s.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: frag, EndStream: endStream, EndHeaders: endHeaders})
	return s
}

func (s *h2Stream) bytes() []byte { return bytes.Clone(s.buf.Bytes()) }

func wantEvents(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("x/net reads:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestH2ShimSettings: SETTINGS frames with an identifier twice become one
// entry per identifier (first-appearance order, last value, RFC 9113
// §6.5.3), cut at the first invalid value (RFC 9113 §6.5.2), which wins over
// later ones; frames x/net must see as sent pass unchanged.
func TestH2ShimSettings(t *testing.T) {
	const (
		hts  = http2.SettingHeaderTableSize
		push = http2.SettingEnablePush
		mcs  = http2.SettingMaxConcurrentStreams
		iws  = http2.SettingInitialWindowSize
		mfs  = http2.SettingMaxFrameSize
		prio = http2.SettingNoRFC7540Priorities
	)
	set := func(kv ...uint32) []http2.Setting {
		var s []http2.Setting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, http2.Setting{ID: http2.SettingID(kv[i]), Val: kv[i+1]})
		}
		return s
	}
	many := func(n int) []http2.Setting {
		s := make([]http2.Setting, n)
		for i := range s {
			s[i] = http2.Setting{ID: http2.SettingID(0x100 + i%3), Val: uint32(i)}
		}
		return s
	}
	cases := []struct {
		name string
		in   []http2.Setting
		want []http2.Setting // nil: unchanged
	}{
		{"distinct", set(uint32(hts), 4096, uint32(push), 0, uint32(iws), 65535), nil},
		{"window twice, last wins", set(uint32(iws), 100, uint32(iws), 1), set(uint32(iws), 1)},
		{"interleaved", set(uint32(hts), 4096, uint32(iws), 100, uint32(hts), 0, uint32(mcs), 10, uint32(iws), 1),
			set(uint32(hts), 0, uint32(iws), 1, uint32(mcs), 10)},
		{"unknown identifier twice", set(0xf0, 1, 0xf0, 2), set(0xf0, 2)},
		{"earlier invalid push kept", set(uint32(push), 2, uint32(push), 1), set(uint32(push), 2)},
		{"earlier invalid frame size kept", set(uint32(mfs), 16384, uint32(iws), 5, uint32(mfs), 100, uint32(mfs), 16384),
			set(uint32(mfs), 100, uint32(iws), 5)},
		{"later invalid window", set(uint32(iws), 1, uint32(iws), 1<<31), set(uint32(iws), 1<<31)},
		{"invalid first, duplicates after", set(uint32(iws), 1<<31, uint32(hts), 1, uint32(hts), 2), set(uint32(iws), 1<<31)},
		{"invalid priorities setting kept", set(uint32(prio), 2, uint32(prio), 1), set(uint32(prio), 2)},
		{"invalid last, no duplicates", set(uint32(push), 1, uint32(mfs), 5), nil},
		{"100 entries", many(100), set(0x100, 99, 0x101, 97, 0x102, 98)},
		{"101 entries: x/net refuses them", many(101), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newH2Stream()
			_ = s.fr.WriteSettings(c.in...)
			in := s.bytes()
			want := in
			if c.want != nil {
				w := newH2Stream()
				_ = w.fr.WriteSettings(c.want...)
				want = w.bytes()
			}
			if got := runShim(t, testShimConfig(), in); !bytes.Equal(got, want) {
				t.Errorf("got  %x\nwant %x", got, want)
			}
		})
	}

	raw := []struct {
		name   string
		flags  http2.Flags
		stream uint32
		p      []byte
	}{
		{"ack", http2.FlagSettingsAck, 0, nil},
		{"ack with payload", http2.FlagSettingsAck, 0, []byte{0, 4, 0, 0, 0, 1, 0, 4, 0, 0, 0, 2}},
		{"on a stream", 0, 1, []byte{0, 4, 0, 0, 0, 1, 0, 4, 0, 0, 0, 2}},
		{"length not a multiple of 6", 0, 0, []byte{0, 4, 0, 0, 0, 1, 0, 4, 0, 0, 0, 2, 0}},
	}
	for _, c := range raw {
		t.Run(c.name, func(t *testing.T) {
			s := newH2Stream()
			_ = s.fr.WriteRawFrame(http2.FrameSettings, c.flags, c.stream, c.p)
			in := s.bytes()
			if got := runShim(t, testShimConfig(), in); !bytes.Equal(got, in) {
				t.Errorf("changed:\n got  %x\n want %x", got, in)
			}
		})
	}
}

// TestH2ShimHeaderBlocks: header blocks pass unchanged unless a field
// makes the request malformed (RFC 9113 §8.2.2); then x/net's frame reader
// returns a stream error PROTOCOL_ERROR for that block and reads what
// follows normally.
func TestH2ShimHeaderBlocks(t *testing.T) {
	prio := http2.PriorityParam{StreamDep: 0, Exclusive: true, Weight: 200}
	cases := []struct {
		name      string
		build     func(s *h2Stream)
		unchanged bool
		want      []string
	}{
		{"clean", func(s *h2Stream) {
			s.headers(1, s.request("/", "accept", "*/*"), true, true)
		}, true, []string{"HEADERS 1 END_STREAM :method=GET :scheme=https :authority=example.com :path=/ accept=*/*"}},
		{"clean padded with priority", func(s *h2Stream) {
			_ = s.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: s.request("/p"), EndStream: true, EndHeaders: true, PadLength: 17, Priority: prio})
		}, true, []string{"HEADERS 1 END_STREAM :method=GET :scheme=https :authority=example.com :path=/p"}},
		{"clean over continuation", func(s *h2Stream) {
			b := s.request("/c", "x-a", "1", "x-b", "2")
			s.headers(1, b[:3], true, false)
			_ = s.fr.WriteContinuation(1, false, b[3:9])
			_ = s.fr.WriteContinuation(1, true, b[9:])
		}, true, []string{"HEADERS 1 END_STREAM :method=GET :scheme=https :authority=example.com :path=/c x-a=1 x-b=2"}},
		{"te trailers", func(s *h2Stream) {
			s.headers(1, s.request("/", "te", "trailers"), true, true)
		}, true, []string{"HEADERS 1 END_STREAM :method=GET :scheme=https :authority=example.com :path=/ te=trailers"}},
		{"connection", func(s *h2Stream) {
			s.headers(1, s.request("/", "connection", "keep-alive"), true, true)
			s.headers(3, s.request("/next"), true, true)
		}, false, []string{
			"STREAM_ERROR 1 PROTOCOL_ERROR",
			"HEADERS 3 END_STREAM :method=GET :scheme=https :authority=example.com :path=/next"}},
		{"proxy-connection", func(s *h2Stream) {
			s.headers(1, s.request("/", "proxy-connection", "keep-alive"), true, true)
		}, false, []string{"STREAM_ERROR 1 PROTOCOL_ERROR"}},
		{"keep-alive", func(s *h2Stream) {
			s.headers(1, s.request("/", "keep-alive", "timeout=5"), true, true)
		}, false, []string{"STREAM_ERROR 1 PROTOCOL_ERROR"}},
		{"transfer-encoding", func(s *h2Stream) {
			s.headers(1, s.request("/", "transfer-encoding", "chunked"), true, true)
		}, false, []string{"STREAM_ERROR 1 PROTOCOL_ERROR"}},
		{"upgrade", func(s *h2Stream) {
			s.headers(1, s.request("/", "upgrade", "websocket"), true, true)
		}, false, []string{"STREAM_ERROR 1 PROTOCOL_ERROR"}},
		{"te gzip", func(s *h2Stream) {
			s.headers(1, s.request("/", "te", "gzip"), true, true)
		}, false, []string{"STREAM_ERROR 1 PROTOCOL_ERROR"}},
		{"malformed padded with priority", func(s *h2Stream) {
			_ = s.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: s.request("/", "connection", "close"), EndStream: true, EndHeaders: true, PadLength: 255, Priority: prio})
			s.headers(3, s.request("/next"), true, true)
		}, false, []string{
			"STREAM_ERROR 1 PROTOCOL_ERROR",
			"HEADERS 3 END_STREAM :method=GET :scheme=https :authority=example.com :path=/next"}},
		{"malformed field in the first of three frames", func(s *h2Stream) {
			b := s.block("connection", "close", ":method", "GET", "x-a", "1", "x-b", "2")
			s.headers(1, b[:4], true, false)
			_ = s.fr.WriteContinuation(1, false, b[4:10])
			_ = s.fr.WriteContinuation(1, true, b[10:])
		}, false, []string{"STREAM_ERROR 1 PROTOCOL_ERROR"}},
		{"malformed trailers", func(s *h2Stream) {
			s.headers(1, s.request("/up"), false, true)
			_ = s.fr.WriteData(1, false, []byte("body"))
			s.headers(1, s.block("x-sum", "1", "connection", "close"), true, true)
			s.headers(3, s.request("/next"), true, true)
		}, false, []string{
			"HEADERS 1 :method=GET :scheme=https :authority=example.com :path=/up",
			"DATA 1 len=4",
			"STREAM_ERROR 1 PROTOCOL_ERROR",
			"HEADERS 3 END_STREAM :method=GET :scheme=https :authority=example.com :path=/next"}},
		{"clean trailers", func(s *h2Stream) {
			s.headers(1, s.request("/up"), false, true)
			_ = s.fr.WriteData(1, false, []byte("body"))
			s.headers(1, s.block("x-sum", "1"), true, true)
		}, true, []string{
			"HEADERS 1 :method=GET :scheme=https :authority=example.com :path=/up",
			"DATA 1 len=4",
			"HEADERS 1 END_STREAM x-sum=1"}},
		{"malformed and otherwise invalid: x/net's own stream error", func(s *h2Stream) {
			s.headers(1, s.request("/", "connection", "close", "Bad-Name", "1"), true, true)
			s.headers(3, s.request("/next"), true, true)
		}, false, []string{
			"STREAM_ERROR 1 PROTOCOL_ERROR",
			"HEADERS 3 END_STREAM :method=GET :scheme=https :authority=example.com :path=/next"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newH2Stream()
			_ = s.fr.WriteSettings()
			c.build(s)
			in := s.bytes()
			cfg := testShimConfig()
			out := runShim(t, cfg, in)
			if c.unchanged != bytes.Equal(out, in) {
				t.Errorf("output unchanged: %v, want %v", !c.unchanged, c.unchanged)
			}
			if !c.unchanged && len(out) != len(in)+len(malformedMarker) {
				t.Errorf("output grew by %d bytes, want the %d of the marker", len(out)-len(in), len(malformedMarker))
			}
			wantEvents(t, xnetEvents(t, cfg, out), append([]string{"SETTINGS"}, c.want...)...)
		})
	}
}

// TestH2ShimMalformedTooLarge: a malformed request whose header list also
// exceeds SETTINGS_MAX_HEADER_LIST_SIZE gets x/net's own answer, a truncated
// block (431 from its server): x/net stops emitting fields at the overflow,
// so it never sees the marker. An extra CONTINUATION frame would have been a
// connection error instead (readMetaFrame: no budget left).
func TestH2ShimMalformedTooLarge(t *testing.T) {
	cfg := testShimConfig()
	cfg.maxHeaderListSize = 400
	s := newH2Stream()
	s.headers(1, s.request("/", "connection", "close", "x-a", strings.Repeat("a", 150), "x-b", strings.Repeat("b", 150)), true, true)
	s.headers(3, s.request("/next"), true, true)
	out := runShim(t, cfg, s.bytes())
	wantEvents(t, xnetEvents(t, cfg, out),
		"HEADERS 1 END_STREAM TRUNCATED :method=GET :scheme=https :authority=example.com :path=/ connection=close",
		"HEADERS 3 END_STREAM :method=GET :scheme=https :authority=example.com :path=/next")
}

// TestH2ShimMarkerContinuation: when the block's last frame has no room for
// the marker under the advertised frame size, END_HEADERS moves to one extra
// CONTINUATION frame holding it.
func TestH2ShimMarkerContinuation(t *testing.T) {
	cfg := testShimConfig()
	s := newH2Stream()
	b := s.request("/big", "x-big", strings.Repeat("a", 40000), "connection", "close")
	last := b[len(b)-int(cfg.maxFrameSize):] // a full-size last frame
	s.headers(1, b[:len(b)-len(last)], true, false)
	_ = s.fr.WriteContinuation(1, true, last)
	s.headers(3, s.request("/next"), true, true)
	in := s.bytes()
	out := runShim(t, cfg, in)

	trIn, trOut := frameTrace(in), frameTrace(out)
	want := []string{
		trIn[0],
		strings.Replace(trIn[1], "/0x4/", "/0x0/", 1), // END_HEADERS cleared
		fmt.Sprintf("CONTINUATION/0x4/1/%d", len(malformedMarker)),
		trIn[2],
	}
	if !slices.Equal(trOut, want) {
		t.Errorf("frames %q, want %q", trOut, want)
	}
	wantEvents(t, xnetEvents(t, cfg, out),
		"STREAM_ERROR 1 PROTOCOL_ERROR",
		"HEADERS 3 END_STREAM :method=GET :scheme=https :authority=example.com :path=/next")
}

// TestH2ShimDynamicTable: the shadow decoder's dynamic table stays equal to
// x/net's across blocks, malformed ones included: fields indexed by a clean
// block and by a malformed one (before and after its offending field), a
// dynamic table size update (RFC 7541 §6.3) and evictions, all referenced
// by later blocks that must decode downstream exactly as without the shim.
func TestH2ShimDynamicTable(t *testing.T) {
	s := newH2Stream()
	_ = s.fr.WriteSettings()
	s.headers(1, s.request("/a", "x-a", "1", "x-shared", "s"), true, true)
	s.headers(3, s.request("/b", "x-b", "2", "x-shared", "s", "connection", "keep-alive", "x-after", "z"), true, true)
	c := s.request("/c", "x-a", "1", "x-b", "2", "x-after", "z", "x-shared", "s")
	if len(c) > 12 {
		t.Fatalf("block C is %d bytes: the encoder did not reference the table", len(c))
	}
	s.headers(5, c, true, true)
	s.enc.SetMaxDynamicTableSize(100) // evicts all but the newest entries
	s.headers(7, s.request("/d", "x-d", "4"), true, true)
	s.headers(9, s.request("/e", "x-d", "4", "x-a", "1", "connection", "close"), true, true)
	s.headers(11, s.request("/d", "x-d", "4"), true, true)
	in := s.bytes()

	cfg := testShimConfig()
	out := runShim(t, cfg, in)
	wantEvents(t, xnetEvents(t, cfg, out),
		"SETTINGS",
		"HEADERS 1 END_STREAM :method=GET :scheme=https :authority=example.com :path=/a x-a=1 x-shared=s",
		"STREAM_ERROR 3 PROTOCOL_ERROR",
		"HEADERS 5 END_STREAM :method=GET :scheme=https :authority=example.com :path=/c x-a=1 x-b=2 x-after=z x-shared=s",
		"HEADERS 7 END_STREAM :method=GET :scheme=https :authority=example.com :path=/d x-d=4",
		"STREAM_ERROR 9 PROTOCOL_ERROR",
		"HEADERS 11 END_STREAM :method=GET :scheme=https :authority=example.com :path=/d x-d=4")
	// The clean blocks decode downstream exactly as they do without the shim.
	var clean []string
	for _, e := range xnetEvents(t, cfg, in) {
		if !strings.HasPrefix(e, "HEADERS 3 ") && !strings.HasPrefix(e, "HEADERS 9 ") {
			clean = append(clean, e)
		}
	}
	var shimmed []string
	for _, e := range xnetEvents(t, cfg, out) {
		if !strings.HasPrefix(e, "STREAM_ERROR") {
			shimmed = append(shimmed, e)
		}
	}
	if !slices.Equal(clean, shimmed) {
		t.Errorf("clean blocks differ:\n with shim %q\n without   %q", shimmed, clean)
	}
}

// TestH2ShimNoCheck: with MalformedField nil, header blocks are not
// inspected; SETTINGS still are.
func TestH2ShimNoCheck(t *testing.T) {
	cfg := testShimConfig()
	cfg.malformed = nil
	s := newH2Stream()
	_ = s.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
	s.headers(1, s.request("/", "connection", "close"), true, true)
	out := runShim(t, cfg, s.bytes())
	wantEvents(t, xnetEvents(t, cfg, out),
		"SETTINGS 4=1",
		"HEADERS 1 END_STREAM :method=GET :scheme=https :authority=example.com :path=/ connection=close")
}

// TestH2ShimPassthrough: frames the shim has no business with pass
// unchanged, and DATA payload is read from the connection straight into
// the reader's buffer.
func TestH2ShimPassthrough(t *testing.T) {
	s := newH2Stream()
	_ = s.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
	s.headers(1, s.request("/up"), false, true)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB
	_ = s.fr.WriteData(1, false, big)
	_ = s.fr.WriteDataPadded(1, false, []byte("padded"), []byte{0, 0, 0})
	_ = s.fr.WriteData(1, false, nil)
	_ = s.fr.WriteWindowUpdate(0, 1000)
	_ = s.fr.WritePing(false, [8]byte{1, 2, 3})
	_ = s.fr.WritePriority(3, http2.PriorityParam{StreamDep: 1, Weight: 7})
	_ = s.fr.WriteRawFrame(0xfa, 0xff, 1, []byte("unknown type"))
	_ = s.fr.WriteSettings()
	_ = s.fr.WriteSettingsAck()
	_ = s.fr.WriteRSTStream(1, http2.ErrCodeCancel)
	_ = s.fr.WriteGoAway(1, http2.ErrCodeNo, []byte("bye"))
	in := s.bytes()
	if out := runShim(t, testShimConfig(), in); !bytes.Equal(out, in) {
		t.Fatal("stream changed")
	}

	// Zero copy: with the DATA header read, the payload read goes to the
	// source with the caller's own buffer.
	src := &recordingReader{r: bytes.NewReader(in)}
	var sh h2Shim
	sh.init(src, testShimConfig())
	hdr := make([]byte, frameHeaderLen)
	if _, err := io.ReadFull(&sh, make([]byte, len(http2.ClientPreface))); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := io.ReadFull(&sh, hdr); err != nil {
			t.Fatal(err)
		}
		payload := make([]byte, int(hdr[0])<<16|int(hdr[1])<<8|int(hdr[2]))
		if _, err := io.ReadFull(&sh, payload); err != nil {
			t.Fatal(err)
		}
		if http2.FrameType(hdr[3]) == http2.FrameData {
			if !bytes.Equal(payload, big) {
				t.Fatal("DATA payload changed")
			}
			if src.last != &payload[len(payload)-1] {
				t.Error("DATA payload was not read straight into the caller's buffer")
			}
			break
		}
	}
}

// recordingReader notes where the last byte of each read landed.
type recordingReader struct {
	r    io.Reader
	last *byte
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.last = &p[n-1]
	}
	return n, err
}

// TestH2ShimGivesUp: on what x/net will treat as a connection error the
// shim hands every byte on unchanged from there, so x/net raises its own
// error; a SETTINGS frame with duplicates at the end shows nothing is
// rewritten any more.
func TestH2ShimGivesUp(t *testing.T) {
	dupSettings := func(s *h2Stream) {
		_ = s.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
	}
	cases := []struct {
		name  string
		build func(s *h2Stream)
	}{
		{"oversized frame", func(s *h2Stream) {
			_ = s.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: append(s.request("/", "connection", "close"), make([]byte, 16384)...), EndHeaders: true})
		}},
		{"oversized settings", func(s *h2Stream) {
			_ = s.fr.WriteRawFrame(http2.FrameSettings, 0, 0, make([]byte, 16386))
		}},
		{"continuation without headers", func(s *h2Stream) {
			_ = s.fr.WriteContinuation(1, true, s.request("/"))
		}},
		{"other frame inside a header block", func(s *h2Stream) {
			b := s.request("/", "connection", "close")
			s.headers(1, b[:3], true, false)
			_ = s.fr.WritePing(false, [8]byte{})
			_ = s.fr.WriteContinuation(1, true, b[3:])
		}},
		{"continuation for another stream", func(s *h2Stream) {
			b := s.request("/", "connection", "close")
			s.headers(1, b[:3], true, false)
			_ = s.fr.WriteContinuation(3, true, b[3:])
		}},
		{"hpack error", func(s *h2Stream) {
			s.headers(1, []byte{0x80}, true, true) // index 0 (RFC 7541 §6.1)
		}},
		{"truncated block", func(s *h2Stream) {
			b := s.request("/", "connection", "close")
			s.headers(1, b[:len(b)-2], true, true)
		}},
		{"padded without pad length", func(s *h2Stream) {
			_ = s.fr.WriteRawFrame(http2.FrameHeaders, http2.FlagHeadersPadded|http2.FlagHeadersEndHeaders, 1, nil)
		}},
		{"priority too short", func(s *h2Stream) {
			_ = s.fr.WriteRawFrame(http2.FrameHeaders, http2.FlagHeadersPriority|http2.FlagHeadersEndHeaders, 1, []byte{0, 0})
		}},
		{"padding longer than the frame, block continues", func(s *h2Stream) {
			_ = s.fr.WriteRawFrame(http2.FrameHeaders, http2.FlagHeadersPadded, 1, []byte{200, 0x82})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newH2Stream()
			c.build(s)
			dupSettings(s)
			in := s.bytes()
			if out := runShim(t, testShimConfig(), in); !bytes.Equal(out, in) {
				t.Errorf("changed:\n got  %q\n want %q", frameTrace(out), frameTrace(in))
			}
		})
	}

	t.Run("bad preface", func(t *testing.T) {
		var b bytes.Buffer
		b.WriteString("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
		fr := http2.NewFramer(&b, nil)
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
		in := b.Bytes()
		for _, pattern := range []int{readTiny, readLarge} {
			out, err := shimRead(testShimConfig(), in, 5, pattern)
			if err != nil || !bytes.Equal(out, in) {
				t.Errorf("pattern %d: changed (err %v)", pattern, err)
			}
		}
	})

	// x/net resets the stream of a HEADERS frame whose padding exceeds it
	// without decoding the block (parseHeadersFrame), and goes on: so does
	// the shim.
	t.Run("padding longer than the frame, block ends", func(t *testing.T) {
		s := newH2Stream()
		_ = s.fr.WriteRawFrame(http2.FrameHeaders, http2.FlagHeadersPadded|http2.FlagHeadersEndHeaders, 1, []byte{200, 0x82})
		dupSettings(s)
		s.headers(3, s.request("/", "connection", "close"), true, true)
		cfg := testShimConfig()
		wantEvents(t, xnetEvents(t, cfg, runShim(t, cfg, s.bytes())),
			"STREAM_ERROR 1 PROTOCOL_ERROR", "SETTINGS 4=1", "STREAM_ERROR 3 PROTOCOL_ERROR")
	})
}

// errAfterReader returns err once its bytes are out.
type errAfterReader struct {
	b   []byte
	err error
}

func (r *errAfterReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, r.err
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// TestH2ShimReadError: a read error in the middle of a frame the shim holds
// for inspection comes with the bytes read so far, unchanged, as it would
// without the shim.
func TestH2ShimReadError(t *testing.T) {
	s := newH2Stream()
	_ = s.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
	in := s.bytes()
	for _, cut := range []int{len(in) - 3, len(in) - 12 - 4} { // inside the payload; inside the header
		var sh h2Shim
		sh.init(&errAfterReader{b: in[:cut], err: io.ErrUnexpectedEOF}, testShimConfig())
		got, err := io.ReadAll(&sh)
		if err != io.ErrUnexpectedEOF || !bytes.Equal(got, in[:cut]) {
			t.Errorf("cut at %d: read %d bytes, err %v; want %d unchanged and ErrUnexpectedEOF", cut, len(got), err, cut)
		}
	}
}

// loopReader replays head once, then loop forever.
type loopReader struct {
	head, loop []byte
	off        int
}

func (r *loopReader) Read(p []byte) (int, error) {
	if len(r.head) > 0 {
		n := copy(p, r.head)
		r.head = r.head[n:]
		return n, nil
	}
	n := copy(p, r.loop[r.off:])
	r.off = (r.off + n) % len(r.loop)
	return n, nil
}

// framerRead reads one frame from r as x/net's Framer does, into buf.
func framerRead(r io.Reader, hdr, buf []byte) error {
	if _, err := io.ReadFull(r, hdr); err != nil {
		return err
	}
	_, err := io.ReadFull(r, buf[:int(hdr[0])<<16|int(hdr[1])<<8|int(hdr[2])])
	return err
}

// TestH2ShimAllocs: in steady state the shim allocates nothing per frame:
// DATA, control frames, SETTINGS rewritten, header blocks (indexed fields)
// clean and malformed.
func TestH2ShimAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	s := newH2Stream()
	_ = s.fr.WriteSettings()
	s.headers(1, s.request("/", "accept", "*/*"), true, true)
	s.headers(3, s.request("/", "accept", "*/*", "connection", "close"), true, true)
	head := s.bytes()
	s.buf.Reset()
	const frames = 7
	s.headers(5, s.request("/", "accept", "*/*"), false, true) // all indexed now
	_ = s.fr.WriteData(5, false, make([]byte, 16384))
	_ = s.fr.WriteData(5, true, make([]byte, 100))
	s.headers(7, s.request("/", "accept", "*/*", "connection", "close"), true, true)
	_ = s.fr.WriteWindowUpdate(0, 1<<16)
	_ = s.fr.WritePing(false, [8]byte{})
	_ = s.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
	loop := s.bytes()

	var sh h2Shim
	sh.init(&loopReader{head: head, loop: loop}, testShimConfig())
	hdr, buf := make([]byte, frameHeaderLen), make([]byte, 1<<20)
	if _, err := io.ReadFull(&sh, buf[:len(http2.ClientPreface)]); err != nil {
		t.Fatal(err)
	}
	for range 3 + 2*frames { // the head, and twice round the loop
		if err := framerRead(&sh, hdr, buf); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(200, func() {
		for range frames {
			if err := framerRead(&sh, hdr, buf); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per round of %d frames, want 0", allocs, frames)
	}
}

// TestH2ShimLimitsMatchXNet: the limits the shim applies are the ones x/net
// advertises in its SETTINGS (a header table size it does not announce is
// the initial 4096).
func TestH2ShimLimitsMatchXNet(t *testing.T) {
	env := startServer(t, Config{MaxReadFrameSize: 32 << 10, MaxHeaderBytes: 10000, DisableHTTP3: true}, protoHandler(nil))
	c := env.dialH2(t)
	f, err := c.fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok {
		t.Fatalf("first frame %v, want SETTINGS", f)
	}
	want := map[http2.SettingID]uint32{
		http2.SettingMaxFrameSize:      env.srv.h2.MaxReadFrameSize,
		http2.SettingMaxHeaderListSize: h2MaxHeaderListSize(env.srv.https),
		http2.SettingHeaderTableSize:   h2DecoderTableSize(env.srv.h2),
	}
	for id, w := range want {
		v, ok := sf.Value(id)
		if !ok && id == http2.SettingHeaderTableSize {
			v, ok = 4096, true
		}
		if !ok || v != w {
			t.Errorf("x/net advertises %v = %d (present %v); the shim uses %d", id, v, ok, w)
		}
	}
}

// h2Send writes a request header block on a raw connection, with enc kept
// for the whole connection so that later blocks reference the dynamic table.
func h2Send(t *testing.T, fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer, stream uint32, endStream bool, kv ...string) {
	t.Helper()
	hb.Reset()
	for i := 0; i < len(kv); i += 2 {
		if err := enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: hb.Bytes(), EndStream: endStream, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
}

// TestHTTP2MalformedRequests: over a real TLS connection, a request with a
// connection-specific field (RFC 9113 §8.2.2) gets RST_STREAM(PROTOCOL_ERROR)
// and never reaches the handler; "te: trailers" is served; the connection
// and its HPACK state carry on, and so do trailers with such a field.
func TestHTTP2MalformedRequests(t *testing.T) {
	seen := make(chan string, 100)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.URL.Path
		if r.URL.Path == "/trailers" {
			if _, err := io.ReadAll(r.Body); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, "ok")
	})
	env := startServer(t, Config{DisableHTTP3: true, MalformedField: testMalformedField}, h)
	c := env.dialH2(t)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	req := func(method, path string, extra ...string) []string {
		return append([]string{":method", method, ":scheme", "https", ":authority", env.srv.Addr().String(), ":path", path, "x-shared", "v"}, extra...)
	}
	await := func(stream uint32) string {
		t.Helper()
		for range 50 {
			f := c.readFrame()
			if ga, ok := f.(*http2.GoAwayFrame); ok {
				t.Fatalf("GOAWAY %v", ga.ErrCode)
			}
			if f.Header().StreamID != stream {
				continue
			}
			switch f := f.(type) {
			case *http2.RSTStreamFrame:
				return "RST_STREAM " + f.ErrCode.String()
			case *http2.MetaHeadersFrame:
				return "status " + f.PseudoValue("status")
			}
		}
		t.Fatalf("no answer on stream %d in 50 frames", stream)
		return ""
	}

	cases := []struct {
		path  string
		extra []string
		want  string
	}{
		{"/clean", nil, "status 200"},
		{"/bad-connection", []string{"connection", "keep-alive"}, "RST_STREAM PROTOCOL_ERROR"},
		{"/te-trailers", []string{"te", "trailers"}, "status 200"},
		{"/bad-te", []string{"te", "gzip"}, "RST_STREAM PROTOCOL_ERROR"},
		{"/bad-proxy-connection", []string{"proxy-connection", "keep-alive"}, "RST_STREAM PROTOCOL_ERROR"},
		{"/bad-keep-alive", []string{"keep-alive", "timeout=5"}, "RST_STREAM PROTOCOL_ERROR"},
		{"/bad-transfer-encoding", []string{"transfer-encoding", "chunked"}, "RST_STREAM PROTOCOL_ERROR"},
		{"/bad-upgrade", []string{"upgrade", "h2c"}, "RST_STREAM PROTOCOL_ERROR"},
		{"/bad-connection", []string{"connection", "keep-alive"}, "RST_STREAM PROTOCOL_ERROR"}, // now indexed
		{"/clean-again", []string{"x-extra", "1"}, "status 200"},
	}
	stream := uint32(1)
	for _, tc := range cases {
		h2Send(t, c.fr, enc, &hb, stream, true, req("GET", tc.path, tc.extra...)...)
		if got := await(stream); got != tc.want {
			t.Errorf("%s %v: %s, want %s", tc.path, tc.extra, got, tc.want)
		}
		stream += 2
	}

	// Trailers are a header block too (RFC 9113 §8.1).
	h2Send(t, c.fr, enc, &hb, stream, false, req("POST", "/trailers")...)
	if err := c.fr.WriteData(stream, false, []byte("body")); err != nil {
		t.Fatal(err)
	}
	h2Send(t, c.fr, enc, &hb, stream, true, "x-checksum", "1", "connection", "close")
	if got := await(stream); got != "RST_STREAM PROTOCOL_ERROR" {
		t.Errorf("trailers with a connection field: %s, want RST_STREAM PROTOCOL_ERROR", got)
	}
	stream += 2
	h2Send(t, c.fr, enc, &hb, stream, true, req("GET", "/last")...)
	if got := await(stream); got != "status 200" {
		t.Errorf("request after malformed trailers: %s, want status 200", got)
	}

	var paths []string
	for len(seen) > 0 {
		paths = append(paths, <-seen)
	}
	slices.Sort(paths)
	if want := []string{"/clean", "/clean-again", "/last", "/te-trailers", "/trailers"}; !slices.Equal(paths, want) {
		t.Errorf("handler saw %q, want %q", paths, want)
	}
}

// TestHTTP2DuplicateSettings: a SETTINGS frame naming INITIAL_WINDOW_SIZE
// twice (100, then 1) is acknowledged, not answered with GOAWAY, and the
// last value applies (RFC 9113 §6.5.3): the response's first DATA frame
// carries one byte.
func TestHTTP2DuplicateSettings(t *testing.T) {
	const body = "hello, world"
	env := startServer(t, Config{DisableHTTP3: true, MalformedField: testMalformedField},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, body) }))
	conn := env.dialTLS(t, "h2")
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1},
	); err != nil {
		t.Fatal(err)
	}
	read := func() http2.Frame {
		t.Helper()
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("read frame: %v", err)
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v", f.ErrCode)
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := fr.WriteSettingsAck(); err != nil {
					t.Fatal(err)
				}
			}
		}
		return f
	}
	for acked := false; !acked; {
		if sf, ok := read().(*http2.SettingsFrame); ok && sf.IsAck() {
			acked = true
		}
	}

	var hb bytes.Buffer
	h2Send(t, fr, hpack.NewEncoder(&hb), &hb, 1, true,
		":method", "GET", ":scheme", "https", ":authority", env.srv.Addr().String(), ":path", "/")
	var got []byte
	first := true
	for ended := false; !ended; {
		df, ok := read().(*http2.DataFrame)
		if !ok || df.StreamID != 1 {
			continue
		}
		if first {
			first = false
			if n := len(df.Data()); n != 1 {
				t.Fatalf("first DATA frame carries %d bytes, want 1 (SETTINGS_INITIAL_WINDOW_SIZE 1)", n)
			}
			if err := fr.WriteWindowUpdate(1, 1000); err != nil {
				t.Fatal(err)
			}
		}
		got = append(got, df.Data()...)
		ended = df.StreamEnded()
	}
	if string(got) != body {
		t.Errorf("body %q, want %q", got, body)
	}
}

// TestHTTP2ShimTLSState: behind the shim, x/net still sees the TLS
// connection state. Request.TLS is set over h2; and x/net's own TLS checks
// run (RFC 9113 §9.2.2: a TLS 1.2 CBC suite gets INADEQUATE_SECURITY), which
// they do only when the connection has a ConnectionState method.
func TestHTTP2ShimTLSState(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			_, _ = io.WriteString(w, "no TLS state")
			return
		}
		fmt.Fprintf(w, "%s %v", r.TLS.NegotiatedProtocol, r.TLS.HandshakeComplete)
	})
	cert, pool := newTestCert(t)
	tlsConf := &tls.Config{
		Certificates: []tls.Certificate{cert},
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA},
	}
	env := startServer(t, Config{DisableHTTP3: true, TLSConfig: tlsConf, MalformedField: testMalformedField}, h)
	env.pool = pool
	r := get(env.client(t, modeH2), env.url("/"))
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.resp.ProtoMajor != 2 || r.body != "h2 true" {
		t.Errorf("%s: handler saw %q, want TLS state with h2", r.resp.Proto, r.body)
	}

	conn, err := tls.Dial("tcp", env.srv.Addr().String(), &tls.Config{
		RootCAs:      pool,
		NextProtos:   []string{"h2"},
		MaxVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, http2.ClientPreface)
	f, err := http2.NewFramer(io.Discard, conn).ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if ga, ok := f.(*http2.GoAwayFrame); !ok || ga.ErrCode != http2.ErrCodeInadequateSecurity {
		t.Errorf("first frame %v, want GOAWAY INADEQUATE_SECURITY", f)
	}
}

// benchStream is a browser-like client stream: GETs with the header set of
// a current browser (paths vary, so each block carries one new literal),
// every fourth request a POST with a 64 KiB body in 16 KiB DATA frames, a
// connection WINDOW_UPDATE per request and a PING every sixteenth.
type benchStream struct {
	head   []byte // preface and SETTINGS
	body   []byte // the requests
	frames []int  // frames per request
}

func newBenchStream(requests int) benchStream {
	s := newH2Stream()
	_ = s.fr.WriteSettings(
		http2.Setting{ID: http2.SettingHeaderTableSize, Val: 65536},
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 6291456},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: 262144},
	)
	_ = s.fr.WriteWindowUpdate(0, 15663105)
	bs := benchStream{head: s.bytes()}
	s.buf.Reset()
	body := make([]byte, 16384)
	for i := range requests {
		stream := uint32(2*i + 1)
		post := i%4 == 3
		method := "GET"
		if post {
			method = "POST"
		}
		kv := []string{
			":method", method, ":authority", "www.example.com", ":scheme", "https",
			":path", fmt.Sprintf("/static/js/chunk-%d.%08x.js?v=%d", i, i*2654435761, i%7),
			"sec-ch-ua", `"Chromium";v="131", "Not_A Brand";v="24"`,
			"sec-ch-ua-mobile", "?0",
			"sec-ch-ua-platform", `"Linux"`,
			"user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
			"accept", "*/*",
			"sec-fetch-site", "same-origin",
			"sec-fetch-mode", "no-cors",
			"sec-fetch-dest", "script",
			"referer", "https://www.example.com/app/dashboard",
			"accept-encoding", "gzip, deflate, br, zstd",
			"accept-language", "en-US,en;q=0.9,de;q=0.8",
			"cookie", "session=3f6c2a9e1b7d4c8f9a0e5d2b6c1f8a7e; theme=dark; _ga=GA1.1.1234567890.1700000000; consent=analytics%3Dtrue%26ads%3Dfalse",
			"priority", "u=1",
		}
		if post {
			kv = append(kv, "content-type", "application/json", "content-length", "65536", "origin", "https://www.example.com")
		}
		s.headers(stream, s.block(kv...), !post, true)
		n := 1
		if post {
			for j := range 4 {
				_ = s.fr.WriteData(stream, j == 3, body)
			}
			n += 4
		}
		_ = s.fr.WriteWindowUpdate(0, 32768)
		n++
		if i%16 == 15 {
			_ = s.fr.WritePing(false, [8]byte{byte(i)})
			n++
		}
		bs.frames = append(bs.frames, n)
	}
	bs.body = s.bytes()
	return bs
}

// BenchmarkH2Shim measures the read side per request (one op = the frames
// of one request): x/net's Framer alone and behind the shim, and the raw
// read pattern alone and through the shim.
func BenchmarkH2Shim(b *testing.B) {
	bs := newBenchStream(1024)
	cfg := testShimConfig()
	cfg.maxFrameSize = DefaultMaxReadFrameSize
	open := func(shim bool) io.Reader {
		src := io.MultiReader(bytes.NewReader(bs.head), bytes.NewReader(bs.body))
		if !shim {
			return src
		}
		s := &h2Shim{}
		s.init(src, cfg)
		return s
	}
	for _, withShim := range []bool{false, true} {
		name := "framer"
		if withShim {
			name = "framer+shim"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var fr *http2.Framer
			reset := func() {
				r := open(withShim)
				_, _ = io.ReadFull(r, make([]byte, len(http2.ClientPreface)))
				fr = http2.NewFramer(io.Discard, r)
				fr.ReadMetaHeaders = hpack.NewDecoder(cfg.headerTableSize, nil)
				fr.MaxHeaderListSize = cfg.maxHeaderListSize
				fr.SetMaxReadFrameSize(cfg.maxFrameSize)
				for range 2 { // SETTINGS, WINDOW_UPDATE
					if _, err := fr.ReadFrame(); err != nil {
						b.Fatal(err)
					}
				}
			}
			reset()
			req := 0
			for b.Loop() {
				if req == len(bs.frames) {
					b.StopTimer()
					reset()
					req = 0
					b.StartTimer()
				}
				for range bs.frames[req] {
					if _, err := fr.ReadFrame(); err != nil {
						b.Fatal(err)
					}
				}
				req++
			}
		})
		name = "read"
		if withShim {
			name = "read+shim"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			hdr, buf := make([]byte, frameHeaderLen), make([]byte, cfg.maxFrameSize)
			var r io.Reader
			reset := func() {
				r = open(withShim)
				_, _ = io.ReadFull(r, buf[:len(http2.ClientPreface)])
				for range 2 {
					if err := framerRead(r, hdr, buf); err != nil {
						b.Fatal(err)
					}
				}
			}
			reset()
			req := 0
			for b.Loop() {
				if req == len(bs.frames) {
					b.StopTimer()
					reset()
					req = 0
					b.StartTimer()
				}
				for range bs.frames[req] {
					if err := framerRead(r, hdr, buf); err != nil {
						b.Fatal(err)
					}
				}
				req++
			}
		})
	}
}

// gapReader serves parts one after another and sleeps gap before every
// part but the first (in a synctest bubble the sleep is instant and the
// clock jumps).
type gapReader struct {
	parts [][]byte
	gap   time.Duration
}

func (r *gapReader) Read(p []byte) (int, error) {
	for len(r.parts) > 0 && len(r.parts[0]) == 0 {
		r.parts = r.parts[1:]
		if len(r.parts) > 0 {
			time.Sleep(r.gap)
		}
	}
	if len(r.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.parts[0])
	r.parts[0] = r.parts[0][n:]
	return n, nil
}

// readFrames reads r as x/net's Framer does (preface, then header and
// payload) and returns how many whole frames it got before err.
func readFrames(r io.Reader) (frames int, err error) {
	if _, err := io.ReadFull(r, make([]byte, len(http2.ClientPreface))); err != nil {
		return 0, err
	}
	hdr, buf := make([]byte, frameHeaderLen), make([]byte, 1<<20)
	for {
		if err := framerRead(r, hdr, buf); err != nil {
			return frames, err
		}
		frames++
	}
}

// TestH2ShimFloodLimits: each kind of frame the flood limits count trips
// its limit when more than max arrive within the window, and the shim
// then hands out errH2Flood in place of the frame (x/net answers it with
// GOAWAY(ENHANCE_YOUR_CALM), TestHTTP2Floods); max frames, a pause of a
// window and max more pass. Frames that carry something (data, a window
// increment, END_STREAM) are never counted. The count goes on after the
// shim has given up inspecting.
func TestH2ShimFloodLimits(t *testing.T) {
	const max = 10
	const window = 2 * time.Second
	cfg := testShimConfig()
	cfg.floodWindow, cfg.maxResets, cfg.maxControl, cfg.maxEmpty = window, max, max, max
	pad := make([]byte, 20)
	cases := []struct {
		name    string
		head    func(s *h2Stream) // frames before the flood
		frame   func(s *h2Stream, i int)
		counted bool
	}{
		{"rst_stream", nil, func(s *h2Stream, i int) { _ = s.fr.WriteRSTStream(uint32(2*i+1), http2.ErrCodeCancel) }, true},
		{"ping", nil, func(s *h2Stream, i int) { _ = s.fr.WritePing(false, [8]byte{byte(i)}) }, true},
		{"ping ack", nil, func(s *h2Stream, i int) { _ = s.fr.WritePing(true, [8]byte{byte(i)}) }, true},
		{"settings", nil, func(s *h2Stream, i int) {
			_ = s.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(i)})
		}, true},
		{"settings with duplicates", nil, func(s *h2Stream, i int) {
			_ = s.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(i)})
		}, true},
		{"settings ack", nil, func(s *h2Stream, i int) { _ = s.fr.WriteSettingsAck() }, true},
		{"priority", nil, func(s *h2Stream, i int) {
			_ = s.fr.WritePriority(uint32(2*i+1), http2.PriorityParam{Weight: 1})
		}, true},
		{"priority_update", nil, func(s *h2Stream, i int) {
			_ = s.fr.WriteRawFrame(http2.FramePriorityUpdate, 0, 0, []byte{0, 0, 0, 1, 'u', '=', '1'})
		}, true},
		{"empty data", nil, func(s *h2Stream, i int) { _ = s.fr.WriteData(1, false, nil) }, true},
		{"padding only data", nil, func(s *h2Stream, i int) { _ = s.fr.WriteDataPadded(1, false, nil, pad) }, true},
		{"pad length only data", nil, func(s *h2Stream, i int) { _ = s.fr.WriteDataPadded(1, false, nil, []byte{}) }, true},
		{"empty continuation", func(s *h2Stream) { s.headers(1, s.request("/"), true, false) },
			func(s *h2Stream, i int) { _ = s.fr.WriteContinuation(1, false, nil) }, true},
		{"empty headers", nil, func(s *h2Stream, i int) { _ = s.fr.WriteRawFrame(http2.FrameHeaders, 0, uint32(2*i+1), nil) }, true},
		{"empty headers ending the block", nil, func(s *h2Stream, i int) {
			_ = s.fr.WriteRawFrame(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, uint32(2*i+1), nil)
		}, true},
		{"malformed requests", nil, func(s *h2Stream, i int) { s.headers(uint32(2*i+1), s.request("/", "connection", "close"), true, true) }, true},
		{"unknown type", nil, func(s *h2Stream, i int) { _ = s.fr.WriteRawFrame(0x2a, 0, 0, nil) }, true},
		{"ping after giving up", func(s *h2Stream) {
			_ = s.fr.WriteContinuation(1, true, s.request("/")) // no block open: the shim gives up
		}, func(s *h2Stream, i int) { _ = s.fr.WritePing(false, [8]byte{}) }, true},

		{"window_update", nil, func(s *h2Stream, i int) { _ = s.fr.WriteWindowUpdate(0, 1) }, false},
		{"data", nil, func(s *h2Stream, i int) { _ = s.fr.WriteData(1, false, []byte("x")) }, false},
		{"padded data", nil, func(s *h2Stream, i int) { _ = s.fr.WriteDataPadded(1, false, []byte("x"), pad) }, false},
		{"empty data ending a stream", nil, func(s *h2Stream, i int) { _ = s.fr.WriteData(uint32(2*i+1), true, nil) }, false},
		{"padding only data ending a stream", nil, func(s *h2Stream, i int) { _ = s.fr.WriteDataPadded(uint32(2*i+1), true, nil, pad) }, false},
		{"headers", nil, func(s *h2Stream, i int) { s.headers(uint32(2*i+1), s.request("/"), true, true) }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newH2Stream()
				if c.head != nil {
					c.head(s)
				}
				headFrames := len(frameTrace(s.bytes()))
				var parts [][]byte
				i := 0
				for _, n := range []int{max, max + 1} { // a window's pause between
					s.buf.Reset()
					for range n {
						c.frame(s, i)
						i++
					}
					parts = append(parts, s.bytes())
				}
				parts[0] = append(newH2StreamHead(c.head), parts[0]...)
				var sh h2Shim
				sh.init(&gapReader{parts: parts, gap: window}, cfg)
				frames, err := readFrames(&sh)
				frames -= headFrames
				if c.counted {
					if err != errH2Flood || frames != 2*max {
						t.Errorf("%d frames then %v; want %d frames then %v", frames, err, 2*max, errH2Flood)
					}
					// Sticky: nothing more comes out.
					if n, err := sh.Read(make([]byte, 100)); n != 0 || err != errH2Flood {
						t.Errorf("read after the verdict: %d, %v", n, err)
					}
				} else if err != io.EOF || frames != 2*max+1 {
					t.Errorf("%d frames then %v; want all %d then EOF", frames, err, 2*max+1)
				}
			})
		})
	}

	t.Run("no limit", func(t *testing.T) {
		cfg := cfg
		cfg.maxControl = -1
		s := newH2Stream()
		for range 100 * max {
			_ = s.fr.WritePing(false, [8]byte{})
		}
		var sh h2Shim
		sh.init(bytes.NewReader(s.bytes()), cfg)
		if frames, err := readFrames(&sh); err != io.EOF || frames != 100*max {
			t.Errorf("%d frames then %v; want %d then EOF", frames, err, 100*max)
		}
	})
}

// newH2StreamHead returns the preface and the frames head writes, as the
// stream TestH2ShimFloodLimits builds starts (its encoder state is not
// needed: the flood frames carry no header blocks that refer to it, and
// "headers" encodes the same request each time).
func newH2StreamHead(head func(*h2Stream)) []byte {
	s := newH2Stream()
	if head != nil {
		head(s)
	}
	return s.bytes()
}
