package backend

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// desyncResponse is what an origin that sends content where there can be
// none may put on the wire after the response head: read as the next
// response, it would answer the next request, from any client.
const desyncResponse = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil"

// TestBodilessResponseWithContent: a 204, a 304 or the response to HEAD
// followed by content (RFC 9112 §6.3 rules 1 and 2: such a response ends
// with its header section). The client gets the response without content,
// the connection is retired, and the next request goes to a new connection
// and gets its own answer, never the stray bytes.
func TestBodilessResponseWithContent(t *testing.T) {
	tests := []struct {
		name, method string
		head         string
		// late: the stray bytes follow the head after a pause, when the
		// next request may already be on its way.
		late bool
	}{
		{"204 then bytes", "GET", "HTTP/1.1 204 No Content\r\n\r\n", false},
		{"204 with Content-Length", "GET", "HTTP/1.1 204 No Content\r\nContent-Length: 43\r\n\r\n", false},
		{"204 with Content-Length, content late", "GET", "HTTP/1.1 204 No Content\r\nContent-Length: 43\r\n\r\n", true},
		{"204 with Transfer-Encoding, content late", "GET", "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"304 then bytes", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 43\r\n\r\n", false},
		{"HEAD then bytes", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 43\r\n\r\n", false},
		{"HEAD chunked then bytes", "HEAD", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"Content-Length 0 then bytes", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := startOrigin(t, func(c *originConn) {
				if c.n > 1 {
					serveKeepAlive(c)
					return
				}
				if _, _, err := c.readRequest(); err != nil {
					return
				}
				if tt.late {
					c.write(tt.head)
					time.Sleep(200 * time.Millisecond)
					c.write(desyncResponse)
				} else {
					c.write(tt.head + desyncResponse)
				}
				// Answer anything else sent here, as a persistent origin
				// would: a second request on this connection gets the
				// stray response first.
				serveKeepAlive(c)
			})
			b := newTestBackend(t, Config{}, o.addr())
			resp, body := fetch(t, b, tt.method, "/", nil)
			if body != "" {
				t.Fatalf("first response: %d with content %q, want none", resp.StatusCode, body)
			}
			for i := 2; i <= 3; i++ {
				if _, body := fetch(t, b, "GET", "/", nil); body != "conn 2" {
					t.Fatalf("request %d answered with %q: the stray bytes were taken for a response", i, body)
				}
			}
			if s := stats(b); s.Opened != 2 {
				t.Errorf("opened %d connections, want 2 (the first retired, the second reused): %+v", s.Opened, s)
			}
		})
	}
}

// TestRequestContentLongerThanLength: an HTTP/2 or HTTP/3 request body
// that goes on past its content-length (RFC 9113 §8.1.1, RFC 9114 §4.1.2:
// malformed). The servers report the excess only on the read after the
// declared length, so the writer holds the last read back until the body
// ends: the origin never gets a complete request, and the connection is
// closed.
func TestRequestContentLongerThanLength(t *testing.T) {
	tests := []struct {
		name string
		body io.Reader
	}{
		// quic-go/http3: errTooMuchData with the declared bytes.
		{"excess reported with the last bytes", &scriptedBody{steps: []bodyStep{{"hello", errors.New("peer sent too much data")}}}},
		// x/net/http2: the declared bytes, then the error when the next
		// DATA frame comes.
		{"excess reported on the next read", &scriptedBody{steps: []bodyStep{{"hello", nil}, {"", errors.New("sender tried to send more than declared Content-Length")}}}},
		// A body that simply goes on.
		{"more bytes", &scriptedBody{steps: []bodyStep{{"hello", nil}, {" world", nil}}}},
		{"short", &scriptedBody{steps: []bodyStep{{"hel", nil}, {"", io.EOF}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan string, 1)
			o := startOrigin(t, func(c *originConn) {
				req, body, err := c.readRequest()
				if err == nil {
					got <- "complete request " + req.Method + " " + string(body)
					c.write(okResponse("ok"))
					serveKeepAlive(c)
					return
				}
				got <- "incomplete: " + err.Error()
			})
			b := newTestBackend(t, Config{}, o.addr())
			req, _ := http.NewRequest("POST", "http://origin.test/", tt.body)
			req.ContentLength = 5
			resp, err := b.RoundTrip(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				t.Errorf("RoundTrip succeeded (%d); want an error", resp.StatusCode)
			}
			select {
			case g := <-got:
				if strings.HasPrefix(g, "complete") {
					t.Errorf("the origin received a complete request: %s", g)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the origin saw nothing")
			}
		})
	}
	t.Run("exact length passes", func(t *testing.T) {
		o := startOrigin(t, serveKeepAlive)
		b := newTestBackend(t, Config{}, o.addr())
		req, _ := http.NewRequest("POST", "http://origin.test/", &scriptedBody{steps: []bodyStep{{"hel", nil}, {"lo", nil}, {"", io.EOF}}})
		req.ContentLength = 5
		resp, err := b.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	})
}

type bodyStep struct {
	data string
	err  error
}

// scriptedBody returns its steps one per Read, then io.EOF.
type scriptedBody struct{ steps []bodyStep }

func (b *scriptedBody) Read(p []byte) (int, error) {
	if len(b.steps) == 0 {
		return 0, io.EOF
	}
	s := &b.steps[0]
	n := copy(p, s.data)
	s.data = s.data[n:]
	if s.data != "" {
		return n, nil
	}
	err := s.err
	b.steps = b.steps[1:]
	return n, err
}

func (b *scriptedBody) Close() error { return nil }

// TestBrokenFirstChunk: a chunked response whose first chunk, read with the
// head, breaks the framing is a RoundTrip error (a 502 for the client), not
// a response cut short after its header went out; its connection is
// closed and the next request gets a new one.
func TestBrokenFirstChunk(t *testing.T) {
	const head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	tests := []struct{ name, content string }{
		{"size 0x", "0x2\r\nok\r\n0\r\n\r\n"},
		{"size negative", "-2\r\nok\r\n0\r\n\r\n"},
		{"size overflow", "ffffffffffffffffff\r\nok\r\n0\r\n\r\n"},
		{"size empty", "\r\nok\r\n0\r\n\r\n"},
		{"bare LF", "2\nok\r\n0\r\n\r\n"},
		{"bare CR", "2\r\rok\r\n0\r\n\r\n"},
		{"missing CRLF after data", "2\r\nokXY0\r\n\r\n"},
		{"CTL in extension", "2;a\x01\r\nok\r\n0\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := startOrigin(t, func(c *originConn) {
				if c.n > 1 {
					serveKeepAlive(c)
					return
				}
				c.readRequest()
				c.write(head + tt.content)
				io.Copy(io.Discard, c)
			})
			b := newTestBackend(t, Config{}, o.addr())
			if resp, err := get(t, b, "GET", "/", nil); err == nil {
				resp.Body.Close()
				t.Fatalf("got a response (%d); want an error", resp.StatusCode)
			}
			if _, body := fetch(t, b, "GET", "/", nil); body != "conn 2" {
				t.Fatalf("next request answered with %q, want conn 2", body)
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		o := startOrigin(t, func(c *originConn) {
			c.readRequest()
			c.write(head + "2;a=b\r\nok\r\n0\r\n\r\n")
			serveKeepAlive(c)
		})
		b := newTestBackend(t, Config{}, o.addr())
		if _, body := fetch(t, b, "GET", "/", nil); body != "ok" {
			t.Fatalf("body %q", body)
		}
	})
}
