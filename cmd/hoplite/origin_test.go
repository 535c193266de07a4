package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startOrigin serves the echo origin on a loopback socket.
func startOrigin(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := (&origin{}).server()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// newClient returns a client with its own connection pool.
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

type originResponse struct {
	status  int
	header  http.Header
	trailer http.Header
	body    string
	length  int64
}

func do(t *testing.T, c *http.Client, method, url, body string, header ...string) originResponse {
	t.Helper()
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rb)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return originResponse{resp.StatusCode, resp.Header, resp.Trailer, string(b), resp.ContentLength}
}

func report(t *testing.T, r originResponse) originReport {
	t.Helper()
	var rep originReport
	if err := json.Unmarshal([]byte(r.body), &rep); err != nil {
		t.Fatalf("not a JSON report: %v: %q", err, r.body)
	}
	if got, want := r.header.Get("X-Origin-Conn"), itoa(rep.Conn); got != want {
		t.Errorf("X-Origin-Conn = %q, body says %s", got, want)
	}
	if got, want := r.header.Get("X-Origin-Request"), itoa(rep.Request); got != want {
		t.Errorf("X-Origin-Request = %q, body says %s", got, want)
	}
	return rep
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestOriginNumbersConnections checks what a user watches through the
// proxy: two requests on one keep-alive connection are conn 1 requests 1
// and 2, and a new connection is conn 2.
func TestOriginNumbersConnections(t *testing.T) {
	base := startOrigin(t)
	c1 := newClient(t)

	r := report(t, do(t, c1, "GET", base+"/a?x=1", "", "X-Test", "one"))
	if r.Conn != 1 || r.Request != 1 {
		t.Errorf("first request: conn %d request %d; want 1 1", r.Conn, r.Request)
	}
	if r.Method != "GET" || r.URI != "/a?x=1" || r.Proto != "HTTP/1.1" ||
		r.Host != strings.TrimPrefix(base, "http://") || r.BodyBytes != 0 {
		t.Errorf("report: %+v", r)
	}
	if got := r.Headers["X-Test"]; len(got) != 1 || got[0] != "one" {
		t.Errorf("headers[X-Test] = %q", got)
	}

	r = report(t, do(t, c1, "POST", base+"/b", "hello world"))
	if r.Conn != 1 || r.Request != 2 {
		t.Errorf("second request: conn %d request %d; want 1 2", r.Conn, r.Request)
	}
	if r.Method != "POST" || r.BodyBytes != 11 {
		t.Errorf("POST report: %+v", r)
	}

	r = report(t, do(t, newClient(t), "GET", base+"/", ""))
	if r.Conn != 2 || r.Request != 1 {
		t.Errorf("new connection: conn %d request %d; want 2 1", r.Conn, r.Request)
	}

	r = report(t, do(t, c1, "GET", base+"/", ""))
	if r.Conn != 1 || r.Request != 3 {
		t.Errorf("first connection again: conn %d request %d; want 1 3", r.Conn, r.Request)
	}
}

func TestOriginOptions(t *testing.T) {
	base := startOrigin(t)
	c := newClient(t)

	t.Run("status", func(t *testing.T) {
		r := do(t, c, "GET", base+"/?status=418", "")
		if r.status != 418 || report(t, r).URI != "/?status=418" {
			t.Errorf("status %d body %q", r.status, r.body)
		}
	})
	t.Run("status 204 has no body", func(t *testing.T) {
		r := do(t, c, "GET", base+"/?status=204&size=10", "")
		if r.status != 204 || r.body != "" {
			t.Errorf("status %d body %q", r.status, r.body)
		}
	})
	t.Run("size", func(t *testing.T) {
		r := do(t, c, "GET", base+"/?size=100000", "")
		if r.status != 200 || r.length != 100000 || r.body != strings.Repeat("x", 100000) {
			t.Errorf("status %d Content-Length %d body %d bytes", r.status, r.length, len(r.body))
		}
		if r.header.Get("X-Origin-Conn") == "" {
			t.Error("no X-Origin-Conn")
		}
	})
	t.Run("size 0", func(t *testing.T) {
		r := do(t, c, "GET", base+"/?size=0", "")
		if r.status != 200 || r.length != 0 || r.body != "" {
			t.Errorf("status %d Content-Length %d body %q", r.status, r.length, r.body)
		}
	})
	t.Run("echo", func(t *testing.T) {
		body := strings.Repeat("0123456789", 10000)
		r := do(t, c, "PUT", base+"/?echo=1&status=201", body)
		if r.status != 201 || r.body != body {
			t.Errorf("status %d, echoed %d of %d bytes", r.status, len(r.body), len(body))
		}
	})
	t.Run("trailer", func(t *testing.T) {
		r := do(t, c, "GET", base+"/?trailer=1", "")
		if got := r.trailer.Get("X-Origin-Trailer"); got != "done" {
			t.Errorf("trailer = %q (trailers %v)", got, r.trailer)
		}
		report(t, r)
	})
	t.Run("trailer with size and echo", func(t *testing.T) {
		r := do(t, c, "GET", base+"/?trailer=1&size=5", "")
		if r.body != "xxxxx" || r.trailer.Get("X-Origin-Trailer") != "done" {
			t.Errorf("body %q trailer %v", r.body, r.trailer)
		}
		r = do(t, c, "POST", base+"/?trailer&echo", "abc")
		if r.body != "abc" || r.trailer.Get("X-Origin-Trailer") != "done" {
			t.Errorf("body %q trailer %v", r.body, r.trailer)
		}
	})
	t.Run("delay", func(t *testing.T) {
		start := time.Now()
		r := do(t, c, "GET", base+"/?delay=60ms", "")
		if d := time.Since(start); d < 60*time.Millisecond || r.status != 200 {
			t.Errorf("status %d after %v; want 200 after at least 60ms", r.status, d)
		}
	})
	for _, q := range []string{
		"status=abc", "status=99", "status=101", "status=600",
		"delay=soon", "delay=-1s", "delay=1000h",
		"size=-1", "size=1k", "echo=maybe", "trailer=2", "echo=1&size=3",
	} {
		t.Run("bad "+q, func(t *testing.T) {
			r := do(t, c, "POST", base+"/?"+q, "some body")
			if r.status != 400 || !strings.Contains(r.body, "bad option") {
				t.Errorf("status %d body %q; want 400", r.status, r.body)
			}
		})
	}
	// Every answer above, 400s included, left the one connection reusable.
	if r := report(t, do(t, c, "GET", base+"/", "")); r.Conn != 1 {
		t.Errorf("connection was not reused: conn %d request %d", r.Conn, r.Request)
	}
}

// TestOriginEchoStreams checks that echo answers each piece of the body as
// it arrives rather than after the whole body.
func TestOriginEchoStreams(t *testing.T) {
	base := startOrigin(t)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", base+"/?echo=1", pr)
	done := make(chan *http.Response, 1)
	go func() {
		resp, err := newClient(t).Do(req)
		if err != nil {
			t.Error(err)
			pw.CloseWithError(err)
			close(done)
			return
		}
		done <- resp
	}()
	pw.Write([]byte("ping"))
	resp := <-done
	if resp == nil {
		return
	}
	defer resp.Body.Close()
	buf := make([]byte, 4)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("first piece: %q, %v", buf, err)
	}
	pw.Write([]byte("pong"))
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("second piece: %q, %v", buf, err)
	}
	pw.Close()
	if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) != 0 {
		t.Fatalf("rest: %q, %v", rest, err)
	}
}
