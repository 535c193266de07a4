package h1

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

// A typical browser GET head (about 500 bytes).
const benchGET = "GET /assets/app.js?v=123 HTTP/1.1\r\n" +
	"Host: www.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
	"Accept: */*\r\n" +
	"Accept-Language: en-US,en;q=0.5\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Referer: https://www.example.com/\r\n" +
	"Cookie: session=abcdef0123456789; theme=dark\r\n" +
	"Sec-Fetch-Dest: script\r\n" +
	"Sec-Fetch-Mode: no-cors\r\n" +
	"Sec-Fetch-Site: same-origin\r\n" +
	"Connection: keep-alive\r\n" +
	"\r\n"

// benchConn is an in-memory downstream connection for the engine alone:
// it hands out n copies of req, then EOF. pingPong: one request per
// response, as a client that waits for each answer (the engine must write
// the response before it reads again); else as many requests per read as
// fit (pipelining).
type benchConn struct {
	req      []byte
	n        int // requests left to hand out
	off      int // into req, of the request being handed out
	pingPong bool
	answered bool // pingPong: a response was written since the last request
	written  int64
	b        *testing.B
}

func (c *benchConn) Read(p []byte) (int, error) {
	if c.off == 0 {
		if c.n == 0 {
			return 0, io.EOF
		}
		if c.pingPong && !c.answered {
			c.b.Fatal("h1: the engine reads the next request before answering this one")
		}
		c.answered = false
	}
	total := 0
	for len(p) > 0 && c.n > 0 {
		k := copy(p, c.req[c.off:])
		p, total, c.off = p[k:], total+k, c.off+k
		if c.off == len(c.req) {
			c.off = 0
			c.n--
			if c.pingPong {
				break
			}
		}
	}
	return total, nil
}

func (c *benchConn) Write(p []byte) (int, error) {
	c.answered = true
	c.written += int64(len(p))
	return len(p), nil
}

func (c *benchConn) Close() error                     { return nil }
func (c *benchConn) LocalAddr() net.Addr              { return memAddr{} }
func (c *benchConn) RemoteAddr() net.Addr             { return memAddr{} }
func (c *benchConn) SetDeadline(time.Time) error      { return nil }
func (c *benchConn) SetReadDeadline(time.Time) error  { return nil }
func (c *benchConn) SetWriteDeadline(time.Time) error { return nil }

var (
	benchBody = []byte("hello, world\n")
	textPlain = []string{"text/plain"}
)

// BenchmarkServeGET serves b.N GETs without a body on one connection,
// with a trivial handler: the engine's cost per request, no system calls.
func BenchmarkServeGET(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Not Header().Set: its one-element slice is the handler's
		// allocation, not the engine's.
		w.Header()["Content-Type"] = textPlain
		w.Write(benchBody)
	})
	for _, mode := range []struct {
		name     string
		pingPong bool
	}{{"pingpong", true}, {"pipelined", false}} {
		b.Run(mode.name, func(b *testing.B) {
			// Warm the connection's caches (strings, header maps) on a
			// first request, as steady state is what is measured.
			c := &benchConn{req: []byte(benchGET), n: b.N + 1, pingPong: mode.pingPong, answered: true, b: b}
			sc := NewConn(c, h, &Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			b.ReportAllocs()
			b.SetBytes(int64(len(benchGET)))
			b.ResetTimer()
			sc.Serve()
			b.StopTimer()
			if c.n != 0 || c.written == 0 {
				b.Fatalf("%d requests not served", c.n)
			}
			b.ReportMetric(float64(c.written)/float64(b.N+1), "resp-bytes/op")
		})
	}
}

// BenchmarkServeGETLoopback: the same, ping-pong over loopback TCP, with
// a net/http client-free raw reader (system calls included; the
// allocations counted are both sides').
func BenchmarkServeGETLoopback(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Not Header().Set: its one-element slice is the handler's
		// allocation, not the engine's.
		w.Header()["Content-Type"] = textPlain
		w.Write(benchBody)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		NewConn(c, h, &Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Serve()
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	req := []byte(benchGET)
	buf := make([]byte, 4096)
	roundTrip := func() {
		if _, err := client.Write(req); err != nil {
			b.Fatal(err)
		}
		// The response is one write of a known length: read until its
		// body's last byte.
		for n := 0; ; {
			k, err := client.Read(buf[n:])
			if err != nil {
				b.Fatal(err)
			}
			n += k
			if n >= len(benchBody) && string(buf[n-len(benchBody):n]) == string(benchBody) {
				return
			}
		}
	}
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
