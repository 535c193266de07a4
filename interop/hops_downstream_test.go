package interop

// Downstream hop rules (client → hoplite), proven against the real binary:
// HTTP/1.0 and HTTP/1.1 persistence (RFC 9112 §9.3, §9.6, Appendix C.2.2)
// with ab and a raw TLS socket, and the connection-specific fields that
// make an HTTP/2 or HTTP/3 request malformed (RFC 9113 §8.2.2, RFC 9114
// §4.2), sent with raw framers because Go's clients refuse to send them.
//
// Hop-by-hop removal in both directions for every client protocol is
// proven by TestProtocolMatrix (matrix_test.go); it is not repeated here.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/qpack"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestHopHTTP10Client: an HTTP/1.0 connection persists only when the
// request says "Connection: keep-alive"; the response then says
// "Connection: keep-alive" and is framed by Content-Length. ab is an
// HTTP/1.0 keep-alive client: 1,000 requests must all be keep-alive on one
// client connection and need exactly one origin connection.
func TestHopHTTP10Client(t *testing.T) {
	ab := needTool(t, "ab")
	h := startHoplite(t, statsConfig(t, startEchoOrigin(t)), newPKI(t))

	t.Run("ab-keep-alive", func(t *testing.T) {
		// size=64: a fixed-length body; ab counts responses whose length
		// differs from the first as failed.
		r := execTool(t, 2*time.Minute, "", ab, "-k", "-n", "1000", "-c", "1", "-s", "30", h.url("/ab?size=64"))
		out := string(r.stdout)
		if r.code != 0 {
			t.Fatalf("ab failed: %v", r)
		}
		for _, want := range []struct{ label, value string }{
			{"Complete requests", "1000"},
			{"Failed requests", "0"},
			{"Keep-Alive requests", "1000"},
		} {
			m := regexp.MustCompile(`(?m)^` + want.label + `:\s+(\d+)`).FindStringSubmatch(out)
			if m == nil || m[1] != want.value {
				t.Errorf("ab reports %s: %v, want %s", want.label, m, want.value)
			}
		}
		if strings.Contains(out, "Non-2xx responses") {
			t.Errorf("ab got non-2xx responses")
		}
		if t.Failed() {
			t.Logf("ab output:\n%s", r)
		}
		s := h.serverStats(t, "app")
		t.Logf("origin pool after ab -k -n 1000 -c 1: %v", s)
		if s.Opened != 1 {
			t.Errorf("hoplite opened %d origin connections for 1000 requests on one client connection, want exactly 1", s.Opened)
		}
	})

	t.Run("raw-1.0-without-keep-alive-closes", func(t *testing.T) {
		c := dialRawH1(t, h)
		resp := c.do("GET", "/raw10?size=16", "HTTP/1.0")
		if resp.StatusCode != 200 || len(resp.body) != 16 {
			t.Fatalf("status %d, %d body bytes; want 200 and 16", resp.StatusCode, len(resp.body))
		}
		if v := resp.Header.Values("Connection"); slices.ContainsFunc(v, func(s string) bool { return strings.EqualFold(s, "keep-alive") }) {
			t.Errorf("response to an HTTP/1.0 request without keep-alive says Connection: %q", v)
		}
		if v := resp.Header.Values("Keep-Alive"); v != nil {
			t.Errorf("response to an HTTP/1.0 request without keep-alive advertises Keep-Alive: %q", v)
		}
		if closed, why := c.closedWithin(5 * time.Second); !closed {
			t.Errorf("HTTP/1.0 connection without keep-alive not closed after the response: %s", why)
		}
	})

	t.Run("raw-1.0-keep-alive-persists", func(t *testing.T) {
		c := dialRawH1(t, h)
		for i, target := range []string{"/raw10ka?size=16", "/raw10ka?size=32", "/raw10ka?size=64&trailer=1"} {
			resp := c.do("GET", target, "HTTP/1.0", "Connection: keep-alive")
			if resp.StatusCode != 200 {
				t.Fatalf("request %d (%s): status %d", i+1, target, resp.StatusCode)
			}
			ka := slices.ContainsFunc(resp.Header.Values("Connection"), func(s string) bool { return strings.EqualFold(s, "keep-alive") })
			cl := resp.Header.Get("Content-Length")
			if i < 2 {
				// A framed origin response: the connection must persist.
				if !ka || cl == "" {
					t.Errorf("request %d (%s): Connection %q, Content-Length %q; want keep-alive with a Content-Length",
						i+1, target, resp.Header.Values("Connection"), cl)
				}
				if resp.Close {
					t.Errorf("request %d: the response ends the connection", i+1)
				}
				continue
			}
			// The origin answered chunked, which HTTP/1.0 cannot carry: the
			// proxy must either frame it with Content-Length and keep the
			// connection, or not promise keep-alive and close.
			if ka && cl == "" {
				t.Errorf("request %d (%s): Connection: keep-alive without a Content-Length (RFC 9112 Appendix C.2.2)", i+1, target)
			}
			if !ka {
				if closed, why := c.closedWithin(5 * time.Second); !closed {
					t.Errorf("request %d: no keep-alive promised, but the connection stays open: %s", i+1, why)
				}
				t.Logf("an unframed origin body for an HTTP/1.0 keep-alive client: answered without keep-alive, connection closed")
				return
			}
			t.Logf("an unframed origin body for an HTTP/1.0 keep-alive client: answered keep-alive with Content-Length %s", cl)
		}
		// Still open: a request without keep-alive ends it.
		resp := c.do("GET", "/raw10ka?size=8", "HTTP/1.0")
		if resp.StatusCode != 200 {
			t.Fatalf("last request: status %d", resp.StatusCode)
		}
		if closed, why := c.closedWithin(5 * time.Second); !closed {
			t.Errorf("after an HTTP/1.0 request without keep-alive the connection stays open: %s", why)
		}
	})

	// RFC 9112 §9.3 for the other hop: the client's close is not the
	// origin's. Every client connection above ended; the origin connection
	// did not.
	s := h.serverStats(t, "app")
	if s.Opened != 1 {
		t.Errorf("after client connections closed, hoplite has opened %d origin connections, want still 1: %v", s.Opened, s)
	}
}

// TestHopHTTP11Client: HTTP/1.1 persists by default, advertising
// "Keep-Alive: timeout=N[, max=M]"; "Connection: close" from the client
// ends the connection after a response that says so; with
// downstream.max_requests_per_conn the last request allowed gets
// "Connection: close"; keep_alive_header: false drops the advertisement;
// an idle connection closes after downstream.idle_timeout. None of it
// touches the origin connection.
func TestHopHTTP11Client(t *testing.T) {
	t.Parallel()
	origin := startEchoOrigin(t)
	keepAlive := func(r rawResponse) string { return strings.Join(r.Header.Values("Keep-Alive"), ", ") }
	closes := func(r rawResponse) bool {
		return slices.ContainsFunc(r.Header.Values("Connection"), func(s string) bool { return strings.EqualFold(s, "close") })
	}

	t.Run("default", func(t *testing.T) {
		h := startHoplite(t, statsConfig(t, origin), newPKI(t))
		c := dialRawH1(t, h)
		for i := range 3 {
			r := c.do("GET", "/d?size=10", "HTTP/1.1")
			if r.StatusCode != 200 || closes(r) || r.Close {
				t.Fatalf("request %d: status %d, Connection %q; want 200 on a persistent connection", i+1, r.StatusCode, r.Header.Values("Connection"))
			}
			// The default downstream idle_timeout is 2m.
			if got := keepAlive(r); got != "timeout=120" {
				t.Errorf("request %d: Keep-Alive %q, want \"timeout=120\"", i+1, got)
			}
		}
		r := c.do("GET", "/d?size=10", "HTTP/1.1", "Connection: close")
		if !closes(r) {
			t.Errorf("response to Connection: close lacks Connection: close: %q", r.Header.Values("Connection"))
		}
		if got := keepAlive(r); got != "" {
			t.Errorf("response to Connection: close advertises Keep-Alive %q", got)
		}
		if closed, why := c.closedWithin(5 * time.Second); !closed {
			t.Errorf("connection not closed after Connection: close: %s", why)
		}
		s := h.serverStats(t, "app")
		if s.Opened != 1 || s.Idle != 1 {
			t.Errorf("the client's Connection: close reached the origin connection (RFC 9112 §9.3 applies per hop): %v", s)
		}
	})

	t.Run("max-requests-and-idle", func(t *testing.T) {
		cfg := statsConfig(t, origin)
		cfg.MaxRequestsPerConn = 3
		cfg.DownstreamIdleTimeout = 3 * time.Second
		h := startHoplite(t, cfg, newPKI(t))
		c := dialRawH1(t, h)
		for i, want := range []string{"timeout=3, max=2", "timeout=3, max=1"} {
			r := c.do("GET", "/m?size=10", "HTTP/1.1")
			if r.StatusCode != 200 || closes(r) {
				t.Fatalf("request %d: status %d, Connection %q", i+1, r.StatusCode, r.Header.Values("Connection"))
			}
			if got := keepAlive(r); got != want {
				t.Errorf("request %d: Keep-Alive %q, want %q", i+1, got, want)
			}
		}
		r := c.do("GET", "/m?size=10", "HTTP/1.1")
		if r.StatusCode != 200 || !closes(r) {
			t.Errorf("request 3 of 3: status %d, Connection %q; want 200 with Connection: close (RFC 9112 §9.6)", r.StatusCode, r.Header.Values("Connection"))
		}
		if got := keepAlive(r); got != "" {
			t.Errorf("request 3 of 3 advertises Keep-Alive %q", got)
		}
		if closed, why := c.closedWithin(5 * time.Second); !closed {
			t.Errorf("connection not closed after its last allowed request: %s", why)
		}

		// Idle: closed after idle_timeout, not long before or after.
		c = dialRawH1(t, h)
		if r := c.do("GET", "/m?size=10", "HTTP/1.1"); r.StatusCode != 200 {
			t.Fatalf("status %d", r.StatusCode)
		}
		start := time.Now()
		closed, why := c.closedWithin(10 * time.Second)
		idle := time.Since(start)
		if !closed {
			t.Errorf("idle connection not closed: %s", why)
		} else if idle < 2500*time.Millisecond || idle > 6*time.Second {
			t.Errorf("idle connection closed after %v, want about idle_timeout 3s", idle.Round(time.Millisecond))
		} else {
			t.Logf("idle client connection closed after %v (idle_timeout 3s)", idle.Round(time.Millisecond))
		}
		s := h.serverStats(t, "app")
		if s.Opened != 1 {
			t.Errorf("client connections ending opened more origin connections: %v", s)
		}
	})

	t.Run("no-keep-alive-header", func(t *testing.T) {
		cfg := statsConfig(t, origin)
		cfg.MaxRequestsPerConn = 3
		cfg.NoKeepAliveHeader = true
		h := startHoplite(t, cfg, newPKI(t))
		c := dialRawH1(t, h)
		for i := range 3 {
			r := c.do("GET", "/n?size=10", "HTTP/1.1")
			if got := keepAlive(r); got != "" {
				t.Errorf("request %d: Keep-Alive %q with keep_alive_header: false", i+1, got)
			}
			if last := i == 2; closes(r) != last {
				t.Errorf("request %d of 3: Connection %q", i+1, r.Header.Values("Connection"))
			}
		}
		if closed, why := c.closedWithin(5 * time.Second); !closed {
			t.Errorf("connection not closed after its last allowed request: %s", why)
		}
	})
}

// connSpecificCases are request fields that make an HTTP/2 or HTTP/3
// request malformed (RFC 9113 §8.2.2, RFC 9114 §4.2).
var connSpecificCases = []struct{ name, field, value string }{
	{"connection", "connection", "keep-alive"},
	{"keep-alive", "keep-alive", "timeout=5"},
	{"proxy-connection", "proxy-connection", "keep-alive"},
	{"transfer-encoding", "transfer-encoding", "chunked"},
	{"upgrade", "upgrade", "websocket"},
	{"te-gzip", "te", "gzip"},
	{"te-trailers-gzip", "te", "trailers, gzip"},
}

// responseConnSpecific are the fields no HTTP/2 or HTTP/3 response may
// carry; x-resp-hop is the field the recorder origin names in its own
// Connection field, which makes it hop-by-hop too.
var responseConnSpecific = []string{"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "x-resp-hop"}

// checkNoConnSpecific reports connection-specific fields in a decoded
// response field section.
func checkNoConnSpecific(t *testing.T, where string, fields []hpack.HeaderField) {
	t.Helper()
	for _, f := range fields {
		if slices.Contains(responseConnSpecific, strings.ToLower(f.Name)) {
			t.Errorf("%s carries the connection-specific field %s: %q", where, f.Name, f.Value)
		}
	}
}

// TestHopH2ConnectionSpecific sends HTTP/2 requests carrying each
// connection-specific field with a raw Framer. Each must get a stream
// error of type PROTOCOL_ERROR (RFC 9113 §8.1.1, §8.2.2; frontend's read
// shim, h2shim.go, since x/net alone answers 400), leave the connection
// usable, and never reach the origin. "TE: trailers", the one allowed, must pass, and its response
// must carry none of the hop-by-hop fields the origin sends.
func TestHopH2ConnectionSpecific(t *testing.T) {
	rec := startRecorder(t)
	cfg := singleBackend(rec.addr())
	h := startHoplite(t, cfg, newPKI(t))

	for _, tc := range connSpecificCases {
		t.Run(tc.name, func(t *testing.T) {
			path := "/h2-bad/" + tc.name
			c := dialH2Raw(t, h)
			out := c.get(path, hpack.HeaderField{Name: tc.field, Value: tc.value})
			switch {
			case out.rst != nil && *out.rst == http2.ErrCodeProtocol:
				// RFC 9113 §8.1.1: a stream error of type PROTOCOL_ERROR.
			case out.rst != nil:
				t.Errorf("%s: %s: RST_STREAM %v, want PROTOCOL_ERROR", path, tc.field, *out.rst)
			default:
				t.Errorf("%s: request with %s: %s got %s; want RST_STREAM(PROTOCOL_ERROR) (RFC 9113 §8.2.2, §8.1.1)",
					path, tc.field, tc.value, out)
			}
			if out.goaway != nil {
				t.Errorf("the server also sent GOAWAY(%v): a malformed request is a stream error, not a connection error", *out.goaway)
			}
			// A stream error leaves the connection (and its HPACK state)
			// usable.
			if out := c.get("/h2-ok/after-" + tc.name); out.status != "200" {
				t.Errorf("the next request on the same connection got %s, want 200", out)
			}
		})
	}

	t.Run("te-trailers-allowed", func(t *testing.T) {
		out := dialH2Raw(t, h).get("/h2-ok/te-trailers", hpack.HeaderField{Name: "te", Value: "trailers"})
		if out.status != "200" || string(out.body) != recorderBody {
			t.Fatalf("TE: trailers: got %s; want 200 with the recorder's body", out)
		}
		checkNoConnSpecific(t, "HTTP/2 response header", out.header)
		checkNoConnSpecific(t, "HTTP/2 response trailer", out.trailer)
	})

	// None of the malformed requests may have reached the origin.
	for _, r := range rec.drain() {
		if line := r.requestLine(); !strings.HasPrefix(line, "GET /h2-ok/") {
			t.Errorf("a malformed HTTP/2 request reached the origin: %q", r.Head)
		}
	}
}

// h2Outcome is what one raw HTTP/2 request produced.
type h2Outcome struct {
	status          string
	header, trailer []hpack.HeaderField
	body            []byte
	rst, goaway     *http2.ErrCode
	err             error // the connection ended otherwise
}

func (o h2Outcome) String() string {
	var parts []string
	if o.status != "" {
		parts = append(parts, fmt.Sprintf("status %s, body %q", o.status, tail(o.body, 200)))
	}
	if o.rst != nil {
		parts = append(parts, fmt.Sprintf("RST_STREAM(%v)", *o.rst))
	}
	if o.goaway != nil {
		parts = append(parts, fmt.Sprintf("GOAWAY(%v)", *o.goaway))
	}
	if o.err != nil {
		parts = append(parts, fmt.Sprintf("connection error %v", o.err))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// h2Raw is a raw HTTP/2 client connection: TLS with ALPN h2, preface and
// SETTINGS sent, driven through x/net's Framer with a hand-held HPACK
// encoder, so that it sends what Go's client refuses to.
type h2Raw struct {
	t     *testing.T
	h     *instance
	conn  *tls.Conn
	fr    *http2.Framer
	block bytes.Buffer
	enc   *hpack.Encoder
	next  uint32 // the next client stream ID
}

func dialH2Raw(t *testing.T, h *instance) *h2Raw {
	t.Helper()
	d := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: 5 * time.Second},
		Config:    &tls.Config{RootCAs: h.pki.Pool(), ServerName: "localhost", NextProtos: []string{"h2"}},
	}
	nc, err := d.Dial("tcp", h.addr)
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	conn := nc.(*tls.Conn)
	t.Cleanup(func() { conn.Close() })
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN negotiated %q, want h2", p)
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	c := &h2Raw{t: t, h: h, conn: conn, fr: http2.NewFramer(conn, conn), next: 1}
	c.fr.ReadMetaHeaders = hpack.NewDecoder(64<<10, nil)
	c.enc = hpack.NewEncoder(&c.block)
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c
}

// get sends a GET with the given extra fields on the next stream and reads
// until that stream ends, is reset, or the connection ends.
func (c *h2Raw) get(path string, extra ...hpack.HeaderField) h2Outcome {
	c.t.Helper()
	fields := []hpack.HeaderField{
		{Name: ":method", Value: "GET"},
		{Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: c.h.authority},
		{Name: ":path", Value: path},
		{Name: "user-agent", Value: "hoplite-interop-h2raw/1"},
	}
	return c.send(append(fields, extra...), nil, true)
}

// send sends exactly fields (pseudo-header fields included) and data on
// the next stream and reads until the stream ends.
func (c *h2Raw) send(fields []hpack.HeaderField, data []string, endStream bool) h2Outcome {
	c.t.Helper()
	id := c.next
	c.next += 2
	c.block.Reset()
	for _, f := range fields {
		if err := c.enc.WriteField(f); err != nil {
			c.t.Fatal(err)
		}
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.block.Bytes(), EndStream: len(data) == 0 && endStream, EndHeaders: true}); err != nil {
		return h2Outcome{err: err}
	}
	for i, d := range data {
		if d == pause {
			time.Sleep(300 * time.Millisecond)
			if i == len(data)-1 && endStream {
				c.fr.WriteData(id, true, nil)
			}
			continue
		}
		if err := c.fr.WriteData(id, endStream && i == len(data)-1, []byte(d)); err != nil {
			return h2Outcome{err: err}
		}
	}
	return c.read(id)
}

// read reads until stream id ends, is reset, or the connection ends,
// answering SETTINGS and PING and returning flow-control credit as it goes.
func (c *h2Raw) read(id uint32) h2Outcome {
	var out h2Outcome
	for range 1000 {
		f, err := c.fr.ReadFrame()
		if err != nil {
			out.err = err
			return out
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := c.fr.WriteSettingsAck(); err != nil {
					out.err = err
					return out
				}
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				c.fr.WritePing(true, f.Data)
			}
		case *http2.GoAwayFrame:
			code := f.ErrCode
			out.goaway = &code
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				code := f.ErrCode
				out.rst = &code
				return out
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID != id {
				continue
			}
			if out.status == "" {
				out.status = f.PseudoValue("status")
				out.header = f.RegularFields()
			} else {
				out.trailer = f.RegularFields()
			}
			if f.StreamEnded() {
				return out
			}
		case *http2.DataFrame:
			if f.StreamID != id {
				continue
			}
			out.body = append(out.body, f.Data()...)
			if n := len(f.Data()); n > 0 {
				c.fr.WriteWindowUpdate(0, uint32(n))
				c.fr.WriteWindowUpdate(id, uint32(n))
			}
			if f.StreamEnded() {
				return out
			}
		}
	}
	out.err = errors.New("more than 1000 frames")
	return out
}

// H3_MESSAGE_ERROR (RFC 9114 §8.1): the stream error for a malformed
// request (§4.1.2).
const h3MessageError = 0x10e

// TestHopH3ConnectionSpecific is TestHopH2ConnectionSpecific over HTTP/3.
// quic-go's client drops connection-specific fields silently
// (http3/request_writer.go), so the HEADERS frame is QPACK-encoded here
// and sent on a raw QUIC stream. The request stream must be reset with
// H3_MESSAGE_ERROR (RFC 9114 §4.1.2, §4.2) and the request must never
// reach the origin.
func TestHopH3ConnectionSpecific(t *testing.T) {
	rec := startRecorder(t)
	cfg := singleBackend(rec.addr())
	h := startHoplite(t, cfg, newPKI(t))

	for _, tc := range connSpecificCases {
		t.Run(tc.name, func(t *testing.T) {
			path := "/h3-bad/" + tc.name
			c := dialH3Raw(t, h)
			out := c.get(path, qpack.HeaderField{Name: tc.field, Value: tc.value})
			switch {
			case out.reset != nil && out.reset.Remote && out.reset.ErrorCode == h3MessageError:
				// RFC 9114 §4.1.2: a malformed request is a stream error of
				// type H3_MESSAGE_ERROR.
			default:
				t.Errorf("%s: request with %s: %s got %s; want the stream reset with H3_MESSAGE_ERROR (RFC 9114 §4.1.2, §4.2)",
					path, tc.field, tc.value, out)
			}
			// A stream error leaves the connection usable.
			if out := c.get("/h3-ok/after-" + tc.name); out.status != "200" {
				t.Errorf("the next request on the same connection got %s, want 200", out)
			}
		})
	}

	t.Run("te-trailers-allowed", func(t *testing.T) {
		out := dialH3Raw(t, h).get("/h3-ok/te-trailers", qpack.HeaderField{Name: "te", Value: "trailers"})
		if out.status != "200" || string(out.body) != recorderBody {
			t.Fatalf("TE: trailers: got %s; want 200 with the recorder's body", out)
		}
		checkNoConnSpecific(t, "HTTP/3 response header", out.header)
		checkNoConnSpecific(t, "HTTP/3 response trailer", out.trailer)
	})

	for _, r := range rec.drain() {
		if line := r.requestLine(); !strings.HasPrefix(line, "GET /h3-ok/") {
			t.Errorf("a malformed HTTP/3 request reached the origin: %q", r.Head)
		}
	}
}

// h3Outcome is what one raw HTTP/3 request produced.
type h3Outcome struct {
	status          string
	header, trailer []hpack.HeaderField
	body            []byte
	reset           *quic.StreamError
	err             error
}

func (o h3Outcome) String() string {
	var parts []string
	if o.status != "" {
		parts = append(parts, fmt.Sprintf("status %s, body %q", o.status, tail(o.body, 200)))
	}
	if o.reset != nil {
		parts = append(parts, fmt.Sprintf("stream reset %v (code %#x, remote %t)", o.reset, uint64(o.reset.ErrorCode), o.reset.Remote))
	}
	if o.err != nil {
		parts = append(parts, fmt.Sprintf("error %v", o.err))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// h3Raw is a raw HTTP/3 client connection: QUIC with ALPN h3 and a control
// stream carrying an empty SETTINGS frame (RFC 9114 §6.2.1); requests are
// QPACK-encoded HEADERS frames on request streams written by hand.
type h3Raw struct {
	t    *testing.T
	h    *instance
	conn *quic.Conn
}

func dialH3Raw(t *testing.T, h *instance) *h3Raw {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	tlsConf := &tls.Config{RootCAs: h.pki.Pool(), ServerName: "localhost", NextProtos: []string{http3.NextProtoH3}}
	conn, err := quic.DialAddr(ctx, h.addr, tlsConf, &quic.Config{HandshakeIdleTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("QUIC dial %s: %v", h.addr, err)
	}
	t.Cleanup(func() { conn.CloseWithError(0, "") })
	ctrl, err := conn.OpenUniStream()
	if err != nil {
		t.Fatal(err)
	}
	// Stream type 0x00 (control), then SETTINGS (type 0x04), length 0.
	if _, err := ctrl.Write([]byte{0x00, 0x04, 0x00}); err != nil {
		t.Fatal(err)
	}
	return &h3Raw{t: t, h: h, conn: conn}
}

// get sends one GET with the given extra fields on a new request stream
// and reads the response frames, or the stream error.
func (c *h3Raw) get(path string, extra ...qpack.HeaderField) h3Outcome {
	c.t.Helper()
	fields := []qpack.HeaderField{
		{Name: ":method", Value: "GET"},
		{Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: c.h.authority},
		{Name: ":path", Value: path},
		{Name: "user-agent", Value: "hoplite-interop-h3raw/1"},
	}
	return c.send(append(fields, extra...), nil)
}

// send sends exactly fields and data frames on a new request stream,
// ends it, and reads the response or the stream error.
func (c *h3Raw) send(fields []qpack.HeaderField, data []string) h3Outcome {
	c.t.Helper()
	var block bytes.Buffer
	enc := qpack.NewEncoder(&block)
	for _, f := range fields {
		if err := enc.WriteField(f); err != nil {
			c.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	str, err := c.conn.OpenStreamSync(ctx)
	if err != nil {
		return h3Outcome{err: err}
	}
	frame := quicvarint.Append(nil, 0x01) // HEADERS
	frame = quicvarint.Append(frame, uint64(block.Len()))
	frame = append(frame, block.Bytes()...)
	for _, d := range data {
		if d == pause {
			if _, err := str.Write(frame); err != nil {
				return h3Outcome{err: fmt.Errorf("writing: %w", err)}
			}
			frame = frame[:0]
			time.Sleep(300 * time.Millisecond)
			continue
		}
		frame = quicvarint.Append(frame, 0x00) // DATA
		frame = quicvarint.Append(frame, uint64(len(d)))
		frame = append(frame, d...)
	}
	if _, err := str.Write(frame); err != nil {
		return h3Outcome{err: fmt.Errorf("writing: %w", err)}
	}
	str.Close()
	return readH3Response(str)
}

// readH3Response reads a request stream to its end or its error and
// parses the frames that arrived (RFC 9114 §7.1: type, length, payload).
func readH3Response(str *quic.Stream) h3Outcome {
	str.SetReadDeadline(time.Now().Add(10 * time.Second))
	data, err := io.ReadAll(io.LimitReader(str, 1<<20))
	var out h3Outcome
	if err != nil {
		var se *quic.StreamError
		if errors.As(err, &se) {
			out.reset = se
		} else {
			out.err = err
		}
	}
	// Parse whatever frames arrived (RFC 9114 §7.1: type, length, payload).
	r := bytes.NewReader(data)
	dec := qpack.NewDecoder()
	for i := 0; r.Len() > 0 && i < 1000; i++ {
		typ, err1 := quicvarint.Read(r)
		n, err2 := quicvarint.Read(r)
		if err1 != nil || err2 != nil || n > uint64(r.Len()) {
			out.err = errors.Join(out.err, fmt.Errorf("truncated HTTP/3 frame in %d response bytes", len(data)))
			break
		}
		payload := make([]byte, n)
		r.Read(payload)
		switch typ {
		case 0x00: // DATA
			out.body = append(out.body, payload...)
		case 0x01: // HEADERS
			var fs []hpack.HeaderField
			status := ""
			decode := dec.Decode(payload)
			for range 1000 {
				f, err := decode()
				if err == io.EOF {
					break
				}
				if err != nil {
					out.err = errors.Join(out.err, fmt.Errorf("QPACK: %w", err))
					break
				}
				if f.Name == ":status" {
					status = f.Value
					continue
				}
				fs = append(fs, hpack.HeaderField{Name: f.Name, Value: f.Value})
			}
			if out.status == "" {
				out.status, out.header = status, fs
			} else {
				out.trailer = fs
			}
		}
	}
	return out
}
