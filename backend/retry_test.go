package backend

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
)

// brokenWriteConn fails its failOn-th Write after accepting accept bytes,
// as a socket the origin reset does. It hides syscall.Conn, so the
// liveness check cannot see the reset first: the case left is the reset
// that arrives between the check and the write.
type brokenWriteConn struct {
	net.Conn
	writes, failOn, accept int
}

func (c *brokenWriteConn) Write(p []byte) (int, error) {
	c.writes++
	if c.writes == c.failOn {
		n, _ := c.Conn.Write(p[:c.accept])
		return n, syscall.EPIPE
	}
	return c.Conn.Write(p)
}

// TestRetryUnsentRequest: a request none of whose bytes reached the socket
// is retried whatever its method; one partly written is not.
func TestRetryUnsentRequest(t *testing.T) {
	tests := []struct {
		name      string
		accept    int
		wantRetry bool
	}{
		{"nothing written", 0, true},
		{"partly written", 10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := startOrigin(t, serveKeepAlive)
			b := newTestBackend(t, Config{}, o.addr())
			p := b.pools[0]
			dial := p.dial
			first := true
			p.dial = func(ctx context.Context) (net.Conn, error) {
				nc, err := dial(ctx)
				if err != nil || !first {
					return nc, err
				}
				first = false
				return &brokenWriteConn{Conn: nc, failOn: 2, accept: tt.accept}, nil
			}
			fetch(t, b, "GET", "/", nil)
			resp, err := get(t, b, "POST", "/", nil)
			if tt.wantRetry {
				if err != nil {
					t.Fatalf("unsent POST not retried: %v", err)
				}
				resp.Body.Close()
			} else if err == nil {
				t.Fatal("a partly sent POST was retried")
			}
			if got := stats(b).Retried == 1; got != tt.wantRetry {
				t.Fatalf("retried %d", stats(b).Retried)
			}
		})
	}
}

// TestBufferRequestBody: content of unknown length goes with a
// Content-Length when buffering is on, and over the limit fails with a
// TooLarge error (413) before anything is sent.
func TestBufferRequestBody(t *testing.T) {
	got := make(chan *http.Request, 1)
	o := startOrigin(t, func(c *originConn) {
		for {
			req, body, err := c.readRequest()
			if err != nil {
				return
			}
			req.Body = io.NopCloser(strings.NewReader(string(body)))
			got <- req
			c.write(okResponse("ok"))
		}
	})
	b := newTestBackend(t, Config{BufferRequestBody: 8}, o.addr())
	req, _ := http.NewRequest("POST", "http://origin.test/", io.NopCloser(strings.NewReader("12345678")))
	req.ContentLength = -1
	resp, err := b.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	r := <-got
	if r.ContentLength != 8 || len(r.TransferEncoding) != 0 {
		t.Fatalf("origin got length %d encoding %v", r.ContentLength, r.TransferEncoding)
	}
	req, _ = http.NewRequest("POST", "http://origin.test/", io.NopCloser(strings.NewReader("123456789")))
	req.ContentLength = -1
	_, err = b.RoundTrip(req)
	var e *Error
	if !errors.As(err, &e) || !e.TooLarge() {
		t.Fatalf("got %v, want a TooLarge error", err)
	}
	if s := stats(b); s.Opened != 1 || s.Reused != 0 {
		t.Fatalf("%+v: the oversized request must not reach the origin", s)
	}
}
