package backend

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawOrigin is an origin server on a loopback socket whose wire behaviour
// each test scripts exactly.
type rawOrigin struct {
	ln    net.Listener
	conns atomic.Int32 // connections accepted
	wg    sync.WaitGroup
}

// originConn is one accepted connection, numbered from 1.
type originConn struct {
	net.Conn
	br *bufio.Reader
	n  int
}

func startOrigin(t *testing.T, serve func(c *originConn)) *rawOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &rawOrigin{ln: ln}
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(o.conns.Add(1))
			o.wg.Add(1)
			go func() {
				defer o.wg.Done()
				defer nc.Close()
				serve(&originConn{Conn: nc, br: bufio.NewReader(nc), n: n})
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); o.wg.Wait() })
	return o
}

func (o *rawOrigin) addr() string { return o.ln.Addr().String() }

// readRequest reads one request and its content with net/http's parser,
// an independent check of what the backend wrote.
func (c *originConn) readRequest() (*http.Request, []byte, error) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	req, err := http.ReadRequest(c.br)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(req.Body)
	return req, body, err
}

func (c *originConn) write(s string) {
	io.WriteString(c, s)
}

// okResponse is a persistent response with content.
func okResponse(body string) string {
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// serveKeepAlive answers every request with okResponse until the client
// closes.
func serveKeepAlive(c *originConn) {
	for {
		if _, _, err := c.readRequest(); err != nil {
			return
		}
		c.write(okResponse(fmt.Sprintf("conn %d", c.n)))
	}
}

func newTestBackend(t *testing.T, cfg Config, addrs ...string) *Backend {
	t.Helper()
	cfg.Servers = addrs
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func get(t *testing.T, b *Backend, method, path string, body io.Reader) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(method, "http://origin.test"+path, body)
	if err != nil {
		t.Fatal(err)
	}
	return b.RoundTrip(req)
}

// fetch sends a request and reads the whole response.
func fetch(t *testing.T, b *Backend, method, path string, body io.Reader) (*http.Response, string) {
	t.Helper()
	resp, err := get(t, b, method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, string(data)
}

func stats(b *Backend) ServerStats { return b.Stats()[0] }

// waitFor polls cond for up to 5s; it synchronises with goroutines the
// test cannot otherwise observe, and asserts nothing about speed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
