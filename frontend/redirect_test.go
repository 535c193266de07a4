package frontend

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRedirectHandler(t *testing.T) {
	cases := []struct {
		name         string
		method       string
		target, host string
		tlsPort      int
		wantStatus   int
		wantLocation string
	}{
		{"host", "GET", "/a/b?c=d", "example.com", 8443, 308, "https://example.com:8443/a/b?c=d"},
		{"host with port", "GET", "/", "example.com:80", 8443, 308, "https://example.com:8443/"},
		{"port 443 omitted", "GET", "/x", "example.com:8080", 443, 308, "https://example.com/x"},
		{"ipv4", "GET", "/", "127.0.0.1:8080", 8443, 308, "https://127.0.0.1:8443/"},
		{"ipv6 with port", "GET", "/", "[::1]:80", 8443, 308, "https://[::1]:8443/"},
		{"ipv6 port 443", "GET", "/", "[::1]", 443, 308, "https://[::1]/"},
		{"trailing dot", "GET", "/", "example.com.", 8443, 308, "https://example.com.:8443/"},
		{"escaped target kept", "GET", "/a%20b/%2F?q=%41", "example.com", 8443, 308, "https://example.com:8443/a%20b/%2F?q=%41"},
		{"absolute-form", "GET", "http://example.com/p?q=1", "example.com", 8443, 308, "https://example.com:8443/p?q=1"},
		{"asterisk-form", "OPTIONS", "*", "example.com", 8443, 308, "https://example.com:8443/"},
		{"POST keeps 308", "POST", "/form", "example.com", 8443, 308, "https://example.com:8443/form"},
		{"empty host", "GET", "/", "", 8443, 400, ""},
		{"bad char", "GET", "/", "exa$mple.com", 8443, 400, ""},
		{"userinfo", "GET", "/", "user@example.com", 8443, 400, ""},
		{"bare ipv6", "GET", "/", "::1", 8443, 400, ""},
		{"bracketed name", "GET", "/", "[example.com]:80", 8443, 400, ""},
		{"bracketed ipv4", "GET", "/", "[127.0.0.1]", 8443, 400, ""},
		{"ipv6 zone", "GET", "/", "[fe80::1%25eth0]:80", 8443, 400, ""},
		{"unterminated bracket", "GET", "/", "[::1:80", 8443, 400, ""},
		{"port not numeric", "GET", "/", "example.com:8x", 8443, 400, ""},
		{"port too big", "GET", "/", "example.com:65536", 8443, 400, ""},
		{"empty label", "GET", "/", "a..b", 8443, 400, ""},
		{"leading dot", "GET", "/", ".example.com", 8443, 400, ""},
		{"label too long", "GET", "/", strings.Repeat("a", 64) + ".com", 8443, 400, ""},
		{"name too long", "GET", "/", strings.Repeat("a.", 127) + "com", 8443, 400, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(c.method, c.target, nil)
			r.Host = c.host
			w := httptest.NewRecorder()
			redirectHandler(c.tlsPort).ServeHTTP(w, r)
			if w.Code != c.wantStatus {
				t.Errorf("status %d, want %d", w.Code, c.wantStatus)
			}
			if got := w.Header().Get("Location"); got != c.wantLocation {
				t.Errorf("Location %q, want %q", got, c.wantLocation)
			}
		})
	}
}

// TestPlainListener runs the plain-HTTP listener on a real socket: the
// default redirect (and following it lands on the TLS listener), requests
// with a bad or missing Host, and a custom PlainHandler (the ACME HTTP-01
// hook).
func TestPlainListener(t *testing.T) {
	t.Run("redirect", func(t *testing.T) {
		seen := make(chan string, 1)
		env := startServer(t, Config{PlainAddr: "127.0.0.1:0"}, protoHandler(seen))
		plain := "http://" + env.srv.PlainAddr().String()

		c := env.client(t, modeH1) // does not follow redirects
		r := get(c, plain+"/a/b?c=d")
		if r.err != nil {
			t.Fatal(r.err)
		}
		want := "https://127.0.0.1:" + strconv.Itoa(env.port) + "/a/b?c=d"
		if r.resp.StatusCode != http.StatusPermanentRedirect || r.resp.Header.Get("Location") != want {
			t.Fatalf("got %d Location %q, want 308 %q", r.resp.StatusCode, r.resp.Header.Get("Location"), want)
		}

		follow := &http.Client{Transport: c.Transport, Timeout: waitLimit}
		r = get(follow, plain+"/followed")
		if r.err != nil || r.resp.StatusCode != 200 || r.resp.Request.URL.String() != env.url("/followed") {
			t.Fatalf("following the redirect: %+v", r)
		}
		if p := recv(t, seen, "handler"); p != "HTTP/1.1" {
			t.Errorf("handler saw %q", p)
		}
	})

	t.Run("bad host", func(t *testing.T) {
		env := startServer(t, Config{PlainAddr: "127.0.0.1:0", DisableHTTP3: true}, protoHandler(nil))
		for _, req := range []string{
			"GET / HTTP/1.1\r\nHost: exa$mple.com\r\n\r\n", // passes net/http's check, not ours
			"GET / HTTP/1.0\r\n\r\n",                       // HTTP/1.0 may omit Host
			"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",          // net/http rejects it first
		} {
			conn, err := net.Dial("tcp", env.srv.PlainAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			_ = conn.SetDeadline(time.Now().Add(waitLimit))
			if _, err := io.WriteString(conn, req); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("%q: %v", req, err)
			}
			resp.Body.Close()
			_ = conn.Close()
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
				t.Errorf("%q: status %d Location %q, want 400 and none", req, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
	})

	t.Run("custom handler", func(t *testing.T) {
		acme := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tok, ok := strings.CutPrefix(r.URL.Path, "/.well-known/acme-challenge/"); ok {
				_, _ = io.WriteString(w, tok+".keyauth")
				return
			}
			http.NotFound(w, r)
		})
		env := startServer(t, Config{PlainAddr: "127.0.0.1:0", PlainHandler: acme}, protoHandler(nil))
		r := get(env.client(t, modeH1), "http://"+env.srv.PlainAddr().String()+"/.well-known/acme-challenge/tok123")
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.resp.StatusCode != 200 || r.body != "tok123.keyauth" {
			t.Errorf("got %d %q", r.resp.StatusCode, r.body)
		}
		if v := r.resp.Header.Values("Alt-Svc"); len(v) != 0 {
			t.Errorf("plain listener advertised Alt-Svc %q", v)
		}
	})
	// PlainMiddleware goes in front of the default redirect or of
	// PlainHandler: the ACME HTTP-01 responder answers its own path and
	// leaves everything else to the handler it wraps.
	acmeMiddleware := func(calls *atomic.Int32) func(http.Handler) http.Handler {
		return func(next http.Handler) http.Handler {
			calls.Add(1)
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tok, ok := strings.CutPrefix(r.URL.Path, "/.well-known/acme-challenge/"); ok {
					_, _ = io.WriteString(w, tok+".keyauth")
					return
				}
				next.ServeHTTP(w, r)
			})
		}
	}
	t.Run("middleware before redirect", func(t *testing.T) {
		var calls atomic.Int32
		env := startServer(t, Config{PlainAddr: "127.0.0.1:0", PlainMiddleware: acmeMiddleware(&calls)}, protoHandler(nil))
		c := env.client(t, modeH1)
		plain := "http://" + env.srv.PlainAddr().String()
		r := get(c, plain+"/.well-known/acme-challenge/tok123")
		if r.err != nil || r.resp.StatusCode != 200 || r.body != "tok123.keyauth" {
			t.Fatalf("challenge: %+v", r)
		}
		r = get(c, plain+"/page?q=1")
		want := "https://127.0.0.1:" + strconv.Itoa(env.port) + "/page?q=1"
		if r.err != nil || r.resp.StatusCode != http.StatusPermanentRedirect || r.resp.Header.Get("Location") != want {
			t.Fatalf("other request: %+v, want 308 to %s", r, want)
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("middleware applied %d times, want once", n)
		}
	})
	t.Run("middleware before custom handler", func(t *testing.T) {
		var calls atomic.Int32
		custom := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "custom") })
		env := startServer(t, Config{PlainAddr: "127.0.0.1:0", PlainHandler: custom, PlainMiddleware: acmeMiddleware(&calls)}, protoHandler(nil))
		c := env.client(t, modeH1)
		plain := "http://" + env.srv.PlainAddr().String()
		if r := get(c, plain+"/.well-known/acme-challenge/abc"); r.err != nil || r.body != "abc.keyauth" {
			t.Errorf("challenge: %+v", r)
		}
		if r := get(c, plain+"/x"); r.err != nil || r.resp.StatusCode != 200 || r.body != "custom" {
			t.Errorf("other request: %+v", r)
		}
	})
	t.Run("middleware returning nil", func(t *testing.T) {
		cfg, _ := testConfig(t, Config{PlainAddr: "127.0.0.1:0", PlainMiddleware: func(http.Handler) http.Handler { return nil }})
		srv, err := New(cfg, protoHandler(nil))
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(); err == nil || err.Error() != "frontend: Config.PlainMiddleware returned a nil handler" {
			t.Fatalf("Start: %v", err)
		}
		if srv.Addr() != nil || srv.PlainAddr() != nil {
			t.Error("listeners left open after the failed Start")
		}
	})
}
