package frontend_test

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"hoplite/backend"
	"hoplite/frontend/internal/h1"
	"hoplite/frontend/internal/h2"
	"hoplite/translate"
)

// The whole data path in one process, for allocations per request
// (`go test -run XXX -bench Proxy -benchmem ./frontend`): a client on an
// in-memory connection, hoplite's engine, translate's handler, backend's
// pool and a raw HTTP/1.1 origin on loopback TCP. The client side is
// in-memory so that the count is hoplite's, not a test client's.

// startRawOrigin answers every request head with a fixed 200 of 2 bytes,
// persistently.
func startRawOrigin(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")
				for {
					// Requests without a body: a head ends at an empty line.
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func proxyHandler(b *testing.B) http.Handler {
	be, err := backend.New(backend.Config{Name: "origin", Servers: []string{startRawOrigin(b)}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close() })
	h, err := translate.New(translate.Config{
		Routes:   []translate.Route{{Backend: "origin"}},
		Backends: map[string]http.RoundTripper{"origin": be},
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// BenchmarkProxyH1GET: one GET without a body per iteration, ping-pong on
// one persistent HTTP/1.1 client connection. The client allocates nothing
// (it reads the head with ReadSlice and the origin's 2-byte body), so the
// count is hoplite's.
func BenchmarkProxyH1GET(b *testing.B) {
	h := proxyHandler(b)
	client, server := net.Pipe()
	c := h1.NewConn(server, h, &h1.Config{Logger: slog.New(slog.DiscardHandler)})
	done := make(chan struct{})
	go func() { c.Serve(); close(done) }()
	req := []byte("GET /x HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	br := bufio.NewReader(client)
	var body [2]byte
	roundTrip := func() {
		if _, err := client.Write(req); err != nil {
			b.Fatal(err)
		}
		status, err := br.ReadSlice('\n')
		if err != nil || !bytes.HasPrefix(status, []byte("HTTP/1.1 200 ")) {
			b.Fatalf("status line %q, %v", status, err)
		}
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if len(line) == 2 {
				break
			}
		}
		// The origin's body is "ok", framed by Content-Length: 2.
		if _, err := io.ReadFull(br, body[:]); err != nil || string(body[:]) != "ok" {
			b.Fatalf("body %q, %v", body, err)
		}
	}
	pingPong(b, roundTrip, client, done)
}

// BenchmarkProxyH2GET: one GET without a body per iteration on one HTTP/2
// connection, from a raw Framer client. The client keeps its own
// allocations out of the count as far as it can: one writer goroutine fed
// by a channel, reused frames, and no HPACK decoding of the responses
// (hoplite encodes ":status: 200" as the static table's index 8, one byte
// 0x88, RFC 7541 Appendix A). What it still allocates is one HeadersFrame
// per response (x/net's Framer), about 1 of the figure.
func BenchmarkProxyH2GET(b *testing.B) {
	h := proxyHandler(b)
	client, server := net.Pipe()
	c := h2.NewConn(server, h, &h2.Config{Logger: slog.New(slog.DiscardHandler)})
	done := make(chan struct{})
	go func() { c.Serve(); close(done) }()
	bw := bufio.NewWriter(client)
	fr := http2.NewFramer(bw, client)
	fr.SetReuseFrames()
	// net.Pipe is synchronous, so the client writes on a goroutine of its
	// own while it reads: the preface and SETTINGS first, then a request
	// for each stream id it is sent.
	reqs := make(chan uint32, 1) // buffered: the writer may still be in the preface
	go func() {
		var hb bytes.Buffer
		enc := hpack.NewEncoder(&hb)
		_, _ = io.WriteString(bw, http2.ClientPreface)
		_ = fr.WriteSettings()
		_ = bw.Flush()
		for sid := range reqs {
			hb.Reset()
			for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "bench.example"}, {":path", "/x"}, {"user-agent", "bench"}, {"accept", "*/*"}} {
				_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: sid, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
			_ = bw.Flush()
		}
	}()
	id := uint32(1)
	roundTrip := func() {
		reqs <- id
		sid := id
		id += 2
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				b.Fatal(err)
			}
			switch f := f.(type) {
			case *http2.HeadersFrame:
				if frag := f.HeaderBlockFragment(); f.StreamID != sid || len(frag) == 0 || frag[0] != 0x88 {
					b.Fatalf("stream %d: response HEADERS %x, want :status 200 (0x88) first", f.StreamID, frag)
				}
				if f.StreamEnded() {
					return
				}
			case *http2.DataFrame:
				if f.StreamEnded() {
					return
				}
			case *http2.RSTStreamFrame:
				b.Fatalf("%v %v", f, f.ErrCode)
			case *http2.GoAwayFrame:
				b.Fatalf("%v %v", f, f.ErrCode)
			}
		}
	}
	pingPong(b, roundTrip, client, done)
	close(reqs)
}

// pingPong warms the path with one round trip, measures b.N more, then
// closes the client and waits for the engine to end.
func pingPong(b *testing.B, roundTrip func(), client net.Conn, done <-chan struct{}) {
	roundTrip()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		roundTrip()
	}
	b.StopTimer()
	client.Close()
	<-done
}
