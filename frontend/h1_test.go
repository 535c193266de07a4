package frontend

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// dialTLS opens a raw TLS connection offering protos, with a deadline that
// only guards against hangs.
func (e *testEnv) dialTLS(t *testing.T, protos ...string) *tls.Conn {
	t.Helper()
	conn, err := tls.Dial("tcp", e.srv.Addr().String(), e.tlsClientConfig(protos...))
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(waitLimit))
	return conn
}

// TestHTTP1ReadHeaderTimeout: a client that sends half a request header
// and stalls is disconnected without a response, and the half request never
// reaches the handler.
//
// The half header goes second on a kept-alive connection, after a complete
// request: that proves the TLS handshake is done, so the close cannot be
// the handshake timeout (net/http bounds the handshake by ReadHeaderTimeout
// too, see h1.go).
func TestHTTP1ReadHeaderTimeout(t *testing.T) {
	var halfSeen atomic.Bool
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/half" {
			halfSeen.Store(true)
		}
	})
	env := startServer(t, Config{ReadHeaderTimeout: time.Second, DisableHTTP3: true}, h)

	// On a loaded machine the handshake or first request may run out of
	// ReadHeaderTimeout; such an attempt is repeated, a bounded number of
	// times.
	var conn *tls.Conn
	var br *bufio.Reader
	for attempt := 1; conn == nil; attempt++ {
		c := env.dialTLS(t, "http/1.1")
		r := bufio.NewReader(c)
		_, err := io.WriteString(c, "GET /full HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		if err == nil {
			var resp *http.Response
			if resp, err = http.ReadResponse(r, nil); err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
		if err != nil {
			if attempt == 5 {
				t.Fatalf("no complete first request in %d attempts: %v", attempt, err)
			}
			_ = c.Close()
			continue
		}
		conn, br = c, r
	}

	if _, err := io.WriteString(conn, "GET /half HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: "); err != nil {
		t.Fatal(err)
	}
	// The server closes: the read ends with EOF (TLS close_notify), not with
	// our own failsafe deadline and not with a response.
	n, err := br.Read(make([]byte, 1024))
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatalf("connection still open at failsafe deadline")
	case n > 0:
		t.Fatalf("server answered a half header (%d bytes)", n)
	case !errors.Is(err, io.EOF):
		t.Fatalf("read: %v, want EOF", err)
	}
	if halfSeen.Load() {
		t.Errorf("half request reached the handler")
	}
}

// TestMaxHeaderBytes: a request header over the limit gets 431 on HTTP/1.1
// and HTTP/3; on HTTP/2 the client, once it has the server's SETTINGS,
// refuses to send it (SETTINGS_MAX_HEADER_LIST_SIZE; the server side is in
// TestHTTP2HeaderListTooLarge).
//
// net/http reads MaxHeaderBytes + 4096 bytes before it gives up, so "big"
// is well past that.
func TestMaxHeaderBytes(t *testing.T) {
	const limit = 4096
	cases := []struct {
		name       string
		mode       string
		size       int
		wantStatus int  // when the request goes through
		wantErr    bool // client-side refusal
	}{
		{"h1 small", modeH1, 1024, http.StatusOK, false},
		{"h1 big", modeH1, 4 * limit, http.StatusRequestHeaderFieldsTooLarge, false},
		{"h2 small", modeH2Std, 1024, http.StatusOK, false},
		{"h2 big refused by client", modeH2Std, 4 * limit, 0, true},
		{"h3 small", modeH3, 1024, http.StatusOK, false},
		{"h3 big", modeH3, 4 * limit, http.StatusRequestHeaderFieldsTooLarge, false},
	}
	env := startServer(t, Config{MaxHeaderBytes: limit}, protoHandler(nil))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, env.url("/"), nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Big", strings.Repeat("a", c.size))
			client := env.client(t, c.mode)
			if c.wantErr {
				// A first request, so that the client has read the
				// server's SETTINGS before it sends the big one.
				if r := get(client, env.url("/")); r.err != nil {
					t.Fatal(r.err)
				}
			}
			resp, err := client.Do(req)
			if c.wantErr {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("request sent, status %d; want client-side refusal", resp.StatusCode)
				}
				if !strings.Contains(err.Error(), "header list larger than peer's advertised limit") {
					t.Errorf("client error %v, want the header list refusal", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != c.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, c.wantStatus)
			}
		})
	}
}

// TestHTTP1ShutdownConnectionClose reads the raw HTTP/1.1 response written
// during a drain: net/http adds "Connection: close" by itself once
// Shutdown has begun (Server.doKeepAlives is false), and then closes.
func TestHTTP1ShutdownConnectionClose(t *testing.T) {
	h := newSlowHandler()
	env := startServer(t, Config{DisableHTTP3: true}, h)
	t.Cleanup(func() {
		select {
		case <-h.release:
		default:
			close(h.release)
		}
	})
	conn := env.dialTLS(t, "http/1.1")
	if _, err := io.WriteString(conn, "GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	recv(t, h.entered, "request to reach the handler")

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- env.srv.Shutdown(ctx) }()
	recv(t, env.srv.acceptStopped, "serve loops to stop")
	close(h.release)

	// The server closes after this response: read to EOF, then parse.
	raw, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("reading to EOF: %v", err)
	}
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw)))
	if status, err := tp.ReadLine(); err != nil || status != "HTTP/1.1 200 OK" {
		t.Errorf("status line %q, %v", status, err)
	}
	hdr, err := tp.ReadMIMEHeader()
	if err != nil {
		t.Fatal(err)
	}
	if got := hdr.Values("Connection"); len(got) != 1 || got[0] != "close" {
		t.Errorf("Connection %q, want [close]", got)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != h.body {
		t.Errorf("body: %d bytes, %v; want %d bytes", len(body), err, len(h.body))
	}
	if err := recv(t, shutdownErr, "Shutdown"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
