package frontend

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Conn is a raw HTTP/2 client connection: TLS with ALPN h2, preface and
// SETTINGS sent, driven through x/net's Framer.
type h2Conn struct {
	t    *testing.T
	conn *tls.Conn
	fr   *http2.Framer
}

func (e *testEnv) dialH2(t *testing.T) *h2Conn {
	t.Helper()
	conn := e.dialTLS(t, "h2")
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN negotiated %q, want h2", p)
	}
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	// Large flow-control windows, so the test never has to send
	// WINDOW_UPDATE (RFC 9113 §6.9.2).
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteWindowUpdate(0, 1<<30); err != nil {
		t.Fatal(err)
	}
	return &h2Conn{t: t, conn: conn, fr: fr}
}

// readFrame reads the next frame, acknowledging SETTINGS along the way.
func (c *h2Conn) readFrame() http2.Frame {
	c.t.Helper()
	f, err := c.fr.ReadFrame()
	if err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
		if err := c.fr.WriteSettingsAck(); err != nil {
			c.t.Fatal(err)
		}
	}
	return f
}

// TestHTTP2Settings reads the server's first SETTINGS frame with a raw
// Framer: the Config's limits, and MAX_HEADER_LIST_SIZE from MaxHeaderBytes
// + 320 (room for ten fields' 32-byte overhead, RFC 9113 §6.5.2).
func TestHTTP2Settings(t *testing.T) {
	cases := []struct {
		name                        string
		cfg                         Config
		streams, frameSize, hdrList uint32
	}{
		{"defaults", Config{}, 250, 1 << 14, 64<<10 + 320},
		{"custom", Config{MaxConcurrentStreams: 123, MaxReadFrameSize: 32 << 10, MaxHeaderBytes: 10000}, 123, 32 << 10, 10000 + 320},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := startServer(t, c.cfg, protoHandler(nil))
			h2 := env.dialH2(t)
			f, err := h2.fr.ReadFrame() // RFC 9113 §3.4: the server preface is a SETTINGS frame
			if err != nil {
				t.Fatal(err)
			}
			sf, ok := f.(*http2.SettingsFrame)
			if !ok || sf.IsAck() {
				t.Fatalf("first frame %v, want SETTINGS", f)
			}
			got := map[http2.SettingID]uint32{}
			if err := sf.ForeachSetting(func(s http2.Setting) error { got[s.ID] = s.Val; return nil }); err != nil {
				t.Fatal(err)
			}
			want := map[http2.SettingID]uint32{
				http2.SettingMaxConcurrentStreams: c.streams,
				http2.SettingMaxFrameSize:         c.frameSize,
				http2.SettingMaxHeaderListSize:    c.hdrList,
			}
			for id, v := range want {
				if g, ok := got[id]; !ok || g != v {
					t.Errorf("%v = %d (present %v), want %d", id, g, ok, v)
				}
			}
		})
	}
}

// TestHTTP2ShutdownGoAway drives a raw HTTP/2 connection through a drain:
// with a request in flight, Shutdown makes the server send
// GOAWAY(NO_ERROR, last stream 1); the request then completes in full.
func TestHTTP2ShutdownGoAway(t *testing.T) {
	h := newSlowHandler()
	env := startServer(t, Config{DisableHTTP3: true}, h)
	t.Cleanup(func() {
		select {
		case <-h.release:
		default:
			close(h.release)
		}
	})
	c := env.dialH2(t)

	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range []hpack.HeaderField{
		{Name: ":method", Value: "GET"},
		{Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: env.srv.Addr().String()},
		{Name: ":path", Value: "/slow"},
	} {
		if err := enc.WriteField(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	recv(t, h.entered, "request to reach the handler")

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- env.srv.Shutdown(ctx) }()

	// Until the final GOAWAY: SETTINGS, SETTINGS ack, WINDOW_UPDATE may
	// come first, and so may the first GOAWAY of a two-step drain (last
	// stream 2^31-1, then a PING; RFC 9113 §6.8).
	var ga *http2.GoAwayFrame
	for i := 0; ga == nil; i++ {
		if i == 20 {
			t.Fatal("no GOAWAY in 20 frames")
		}
		switch f := c.readFrame().(type) {
		case *http2.GoAwayFrame:
			if f.LastStreamID != 1<<31-1 {
				ga = f
			}
		case *http2.MetaHeadersFrame, *http2.DataFrame:
			t.Fatalf("response before release: %v", f)
		}
	}
	if ga.ErrCode != http2.ErrCodeNo || ga.LastStreamID != 1 {
		t.Errorf("GOAWAY code %v last stream %d, want NO_ERROR and 1", ga.ErrCode, ga.LastStreamID)
	}
	close(h.release)

	var status string
	var body bytes.Buffer
	for i := 0; ; i++ {
		if i == 1000 {
			t.Fatal("response not complete in 1000 frames")
		}
		f := c.readFrame()
		if f.Header().StreamID != 1 {
			continue
		}
		end := false
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			status = f.PseudoValue("status")
			end = f.StreamEnded()
		case *http2.DataFrame:
			body.Write(f.Data())
			end = f.StreamEnded()
		case *http2.RSTStreamFrame:
			t.Fatalf("stream reset: %v", f.ErrCode)
		}
		if end {
			break
		}
	}
	if status != "200" || body.String() != h.body {
		t.Errorf("response: status %q, %d body bytes; want 200, %d", status, body.Len(), len(h.body))
	}
	_ = c.conn.Close()
	if err := recv(t, shutdownErr, "Shutdown"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestAltSvcOverridable: Alt-Svc comes from the wrapper on the TCP
// handler and the wrapped handler can override it.
func TestAltSvcOverridable(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Del("Alt-Svc")
	})
	env := startServer(t, Config{}, h)
	r := get(env.client(t, modeH2), env.url("/"))
	if r.err != nil {
		t.Fatal(r.err)
	}
	if v := r.resp.Header.Values("Alt-Svc"); len(v) != 0 {
		t.Errorf("Alt-Svc %q after the handler deleted it", v)
	}
}

// TestHTTP2HeaderListTooLarge pins how x/net v0.62.0 enforces
// SETTINGS_MAX_HEADER_LIST_SIZE (MaxHeaderBytes + 320) on a raw connection:
// fields that each fit but together exceed the limit get a 431 response on
// that stream; a single field longer than the whole limit is an HPACK
// decoding error that takes down the connection with
// GOAWAY(COMPRESSION_ERROR) (frame.go: hdec.SetMaxStringLength).
func TestHTTP2HeaderListTooLarge(t *testing.T) {
	const limit = 4096 // list size limit 4416
	cases := []struct {
		name       string
		fields     []hpack.HeaderField
		wantStatus string
		wantGoAway http2.ErrCode
	}{
		{"fits", []hpack.HeaderField{{Name: "x-a", Value: strings.Repeat("a", 1000)}}, "200", 0},
		{"sum over limit", []hpack.HeaderField{
			{Name: "x-a", Value: strings.Repeat("a", 1800)},
			{Name: "x-b", Value: strings.Repeat("b", 1800)},
			{Name: "x-c", Value: strings.Repeat("c", 1800)},
		}, "431", 0},
		{"one field over limit", []hpack.HeaderField{{Name: "x-a", Value: strings.Repeat("a", 5000)}}, "", http2.ErrCodeCompression},
	}
	env := startServer(t, Config{MaxHeaderBytes: limit, DisableHTTP3: true}, protoHandler(nil))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := env.dialH2(t)
			var hb bytes.Buffer
			enc := hpack.NewEncoder(&hb)
			fields := append([]hpack.HeaderField{
				{Name: ":method", Value: "GET"},
				{Name: ":scheme", Value: "https"},
				{Name: ":authority", Value: env.srv.Addr().String()},
				{Name: ":path", Value: "/"},
			}, tc.fields...)
			for _, f := range fields {
				if err := enc.WriteField(f); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
				t.Fatal(err)
			}
			for i := 0; ; i++ {
				if i == 20 {
					t.Fatal("no answer in 20 frames")
				}
				switch f := c.readFrame().(type) {
				case *http2.MetaHeadersFrame:
					if got := f.PseudoValue("status"); got != tc.wantStatus {
						t.Errorf("status %q, want %q", got, tc.wantStatus)
					}
					return
				case *http2.GoAwayFrame:
					if f.ErrCode != tc.wantGoAway {
						t.Errorf("GOAWAY %v, want %v (status %q)", f.ErrCode, tc.wantGoAway, tc.wantStatus)
					}
					return
				}
			}
		})
	}
}
