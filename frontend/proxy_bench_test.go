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
// one persistent HTTP/1.1 client connection.
func BenchmarkProxyH1GET(b *testing.B) {
	h := proxyHandler(b)
	client, server := net.Pipe()
	c := h1.NewConn(server, h, &h1.Config{Logger: slog.New(slog.DiscardHandler)})
	done := make(chan struct{})
	go func() { c.Serve(); close(done) }()
	req := []byte("GET /x HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	br := bufio.NewReader(client)
	roundTrip := func() {
		if _, err := client.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	pingPong(b, roundTrip, client, done)
}

// BenchmarkProxyH2GET: one GET without a body per iteration on one HTTP/2
// connection, from a raw Framer client.
func BenchmarkProxyH2GET(b *testing.B) {
	h := proxyHandler(b)
	client, server := net.Pipe()
	c := h2.NewConn(server, h, &h2.Config{Logger: slog.New(slog.DiscardHandler)})
	done := make(chan struct{})
	go func() { c.Serve(); close(done) }()
	go func() { _, _ = io.WriteString(client, http2.ClientPreface) }()
	bw := bufio.NewWriter(client)
	fr := http2.NewFramer(bw, client)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	// net.Pipe is synchronous: the preface goes first, on its own.
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := f.(*http2.WindowUpdateFrame); ok {
			break
		}
	}
	write := func(fn func() error) {
		errc := make(chan error, 1)
		go func() {
			err := fn()
			if err == nil {
				err = bw.Flush()
			}
			errc <- err
		}()
		// Frames come back while the request is written.
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
	write(func() error { return fr.WriteSettings() })
	id := uint32(1)
	// The client's writes run on a goroutine of their own (net.Pipe is
	// synchronous); each one is waited for before the next, so that they
	// never share the bufio.Writer at once.
	wrote := make(chan struct{}, 1)
	wrote <- struct{}{}
	roundTrip := func() {
		<-wrote
		hb.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "bench.example"}, {":path", "/x"}, {"user-agent", "bench"}, {"accept", "*/*"}} {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		sid := id
		id += 2
		go func() {
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: sid, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
			_ = bw.Flush()
			wrote <- struct{}{}
		}()
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				b.Fatal(err)
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					b.Fatal("SETTINGS after the preface")
				}
			case *http2.MetaHeadersFrame:
				if s := f.PseudoValue("status"); s != "200" {
					b.Fatalf("status %s", s)
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
