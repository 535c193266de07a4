package frontend

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// HTTP/2 request rules over real TLS connections (RFC 9113 §6.5.3, §8.2.2,
// §9.2), as the engine in frontend/internal/h2 applies them.

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
func TestHTTP2TLSState(t *testing.T) {
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
