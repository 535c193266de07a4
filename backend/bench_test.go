package backend

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// nginxHead is the response head nginx sends for a static file.
const nginxHead = "HTTP/1.1 200 OK\r\n" +
	"Server: nginx/1.22.1\r\n" +
	"Date: Sat, 21 Nov 2026 12:00:00 GMT\r\n" +
	"Content-Type: application/octet-stream\r\n" +
	"Content-Length: 1024\r\n" +
	"Last-Modified: Sat, 21 Nov 2026 11:00:00 GMT\r\n" +
	"Connection: keep-alive\r\n" +
	"ETag: \"6740a0b0-400\"\r\n" +
	"Accept-Ranges: bytes\r\n\r\n"

// benchRequest is a GET as translate hands it to the backend.
func benchRequest() *http.Request {
	req, _ := http.NewRequest("GET", "http://example.com/index.html?q=1", nil)
	req.Header = http.Header{
		"User-Agent":        {"curl/8.5.0"},
		"Accept":            {"*/*"},
		"Accept-Encoding":   {"gzip, deflate, br"},
		"Accept-Language":   {"en-US,en;q=0.9"},
		"Cookie":            {"session=0123456789abcdef"},
		"Via":               {"2 hoplite"},
		"X-Forwarded-For":   {"192.0.2.10"},
		"X-Forwarded-Proto": {"https"},
		"X-Forwarded-Host":  {"example.com"},
		"Forwarded":         {`for=192.0.2.10;host=example.com;proto=https`},
	}
	return req
}

func BenchmarkWriteRequestHead(b *testing.B) {
	req := benchRequest()
	w := bufio.NewWriterSize(io.Discard, 4<<10)
	b.ReportAllocs()
	for b.Loop() {
		if err := writeRequestHead(w, req, frameNone); err != nil {
			b.Fatal(err)
		}
		w.Flush()
	}
}

func BenchmarkReadResponseHead(b *testing.B) {
	r := strings.NewReader(nginxHead)
	br := bufio.NewReaderSize(r, 8<<10)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(nginxHead)
		br.Reset(r)
		h, err := readResponseHead(br, "GET", maxResponseHeaderBytes, nil)
		if err != nil || h.bodyLength != 1024 {
			b.Fatal(h, err)
		}
	}
}

// benchOrigin answers every request head with nginxHead and 1 KiB of
// content, as fast as a raw socket allows.
func benchOrigin(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	resp := []byte(nginxHead + strings.Repeat("x", 1024))
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				br := bufio.NewReader(nc)
				for {
					// Requests without content end at the empty line.
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) == 2 {
							break
						}
					}
					if _, err := nc.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// BenchmarkPoolGetPut is the pool's own cost per request on a warm
// connection: take it (expiry and liveness check included) and park it.
func BenchmarkPoolGetPut(b *testing.B) {
	addr := benchOrigin(b)
	cfg := Config{Name: "bench", Servers: []string{addr}}
	cfg.setDefaults()
	p := newPool(addr, &cfg)
	defer p.close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, _, err := p.get(ctx, false)
		if err != nil {
			b.Fatal(err)
		}
		p.put(c, keep)
	}
	if p.opened.Load() != 1 {
		b.Fatalf("opened %d connections, want 1", p.opened.Load())
	}
}

// BenchmarkRoundTrip is a whole upstream exchange on loopback: pool, request
// writer, response parser and body, against a raw origin.
func BenchmarkRoundTrip(b *testing.B) {
	addr := benchOrigin(b)
	be, err := New(Config{Name: "bench", Servers: []string{addr}})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	req := benchRequest()
	var sink bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		resp, err := be.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		sink.Reset()
		sink.ReadFrom(resp.Body)
		resp.Body.Close()
		if sink.Len() != 1024 {
			b.Fatalf("read %d bytes", sink.Len())
		}
	}
}
