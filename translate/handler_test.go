package translate

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// readRequest parses a request as net/http's server would.
func readRequest(t *testing.T, raw string) *http.Request {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatalf("ReadRequest: %v", err)
	}
	r.RemoteAddr = "192.0.2.10:5555"
	return r
}

func TestOutgoingRequest(t *testing.T) {
	tests := []struct {
		name       string
		raw        string
		wantMethod string
		wantURI    string // RequestURI of the upstream URL
		wantHost   string
	}{
		{"simple GET", "GET /a/b HTTP/1.1\r\nHost: example.com\r\n\r\n", "GET", "/a/b", "example.com"},
		{"query kept", "GET /s?q=a+b&x=%2F&empty= HTTP/1.1\r\nHost: example.com\r\n\r\n", "GET", "/s?q=a+b&x=%2F&empty=", "example.com"},
		{"encoded slash kept", "GET /files/a%2Fb/c HTTP/1.1\r\nHost: example.com\r\n\r\n", "GET", "/files/a%2Fb/c", "example.com"},
		{"encoded slash and query", "GET /a%2F%2Fb?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n", "GET", "/a%2F%2Fb?x=1", "example.com"},
		{"escaped space", "GET /a%20b HTTP/1.1\r\nHost: example.com\r\n\r\n", "GET", "/a%20b", "example.com"},
		{"Host with port kept", "GET / HTTP/1.1\r\nHost: Example.COM:8443\r\n\r\n", "GET", "/", "Example.COM:8443"},
		{"custom method", "PURGE /cache HTTP/1.1\r\nHost: example.com\r\n\r\n", "PURGE", "/cache", "example.com"},
		{"absolute form", "GET http://example.com/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n", "GET", "/x?y", "example.com"},
		{"absolute form, empty path becomes /", "GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n", "GET", "/", "example.com"},
		{"absolute form, query only", "GET http://example.com?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n", "GET", "/?q=1", "example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := &fakeRT{}
			h := newHandler(t, rt)
			r := readRequest(t, tt.raw)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rt.count() != 1 {
				t.Fatalf("upstream not reached; downstream got %d %q", rec.Code, rec.Body.String())
			}
			out := rt.only(t)
			if out.Method != tt.wantMethod {
				t.Errorf("Method = %q, want %q", out.Method, tt.wantMethod)
			}
			if got := out.URL.RequestURI(); got != tt.wantURI {
				t.Errorf("RequestURI = %q, want %q", got, tt.wantURI)
			}
			if out.Host != tt.wantHost {
				t.Errorf("Host = %q, want %q", out.Host, tt.wantHost)
			}
			if out.RequestURI != "" {
				t.Errorf("out.RequestURI = %q, want empty (client requests)", out.RequestURI)
			}
			if out.URL.Scheme != "" || out.URL.Host != "" || out.URL.User != nil || out.URL.Fragment != "" {
				t.Errorf("URL carries more than path and query: %#v", out.URL)
			}
			if rec.Code != http.StatusOK {
				t.Errorf("status = %d", rec.Code)
			}
			if out.Context() == nil {
				t.Error("no context")
			}
		})
	}
}

// The request's context (and so its cancellation) reaches the upstream.
func TestOutgoingContextIsDownstreams(t *testing.T) {
	type key struct{}
	rt := &fakeRT{}
	h := newHandler(t, rt)
	r := httptest.NewRequest("GET", "/", nil)
	r = r.WithContext(context.WithValue(r.Context(), key{}, "v"))
	h.ServeHTTP(httptest.NewRecorder(), r)
	if got := rt.only(t).Context().Value(key{}); got != "v" {
		t.Errorf("upstream context lost the downstream's values: %v", got)
	}
}

func TestConnectNotImplemented(t *testing.T) {
	tests := []struct {
		name string
		req  func() *http.Request
	}{
		{"HTTP/1.1 authority-form", func() *http.Request {
			return readRequest(t, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
		}},
		{"HTTP/2 extended CONNECT with path", func() *http.Request {
			r := httptest.NewRequest("CONNECT", "https://example.com/chat", nil)
			r.ProtoMajor, r.ProtoMinor = 2, 0
			r.Header.Set(":protocol", "websocket")
			return r
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := &fakeRT{}
			h := newHandler(t, rt)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, tt.req())
			if rec.Code != http.StatusNotImplemented {
				t.Errorf("status = %d %q, want 501", rec.Code, rec.Body.String())
			}
			if rec.Code == http.StatusNotImplemented && rec.Body.String() != "Not Implemented\n" {
				t.Errorf("body = %q", rec.Body.String())
			}
			if rt.count() != 0 {
				t.Error("CONNECT reached the upstream")
			}
		})
	}
}

// Regression: the downstream's Connection: close (and an HTTP/1.0
// request's implicit close) is hop-by-hop. It must not reach the
// RoundTripper as Request.Close, which net/http's Transport turns back
// into "Connection: close" and a closed origin connection (ARCHITECTURE:
// "the client's Connection: close does not close the origin connection").
func TestDownstreamCloseNotForwarded(t *testing.T) {
	tests := []struct{ name, raw string }{
		{"HTTP/1.1 Connection: close", "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"},
		{"HTTP/1.0 without keep-alive", "GET / HTTP/1.0\r\nHost: a.test\r\n\r\n"},
		{"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nHost: a.test\r\nConnection: keep-alive\r\n\r\n"},
		{"HTTP/1.1 persistent", "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := &fakeRT{}
			h := newHandler(t, rt)
			h.ServeHTTP(httptest.NewRecorder(), readRequest(t, tt.raw))
			out := rt.only(t)
			if out.Close {
				t.Errorf("upstream Request.Close = true; the downstream connection's fate leaks to the origin hop")
			}
			if out.Header.Get("Connection") != "" {
				t.Errorf("upstream Connection = %q", out.Header.Get("Connection"))
			}
		})
	}
}

// The same regression seen from a real origin behind net/http's
// Transport: the origin receives "Connection: close".
func TestDownstreamCloseReachesOriginThroughTransport(t *testing.T) {
	seen := make(chan string, 1)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("Connection")
	}))
	defer origin.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	rt := &fakeRT{reply: func(req *http.Request) (*http.Response, error) {
		req.URL.Scheme = "http"
		req.URL.Host = origin.Listener.Addr().String()
		return tr.RoundTrip(req)
	}}
	h := newHandler(t, rt)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, readRequest(t, "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"))
	if got := recvOrFail(t, seen, "origin request"); got != "" {
		t.Errorf("origin saw Connection: %q, want none", got)
	}
}

// Golden files: testdata/outgoing/NAME.in holds a downstream request as it
// arrives; NAME.golden the upstream request as net/http's Request.Write
// would put it on the wire (header fields sorted). Run with -update to
// rewrite them, then review the diff.
func TestOutgoingGolden(t *testing.T) {
	ins, err := filepath.Glob(filepath.Join("testdata", "outgoing", "*.in"))
	if err != nil || len(ins) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			rt := &fakeRT{reply: func(req *http.Request) (*http.Response, error) {
				if err := req.Write(&got); err != nil {
					t.Errorf("Write: %v", err)
				}
				return newResp(req, http.StatusOK, nil, ""), nil
			}}
			h := newHandler(t, rt)
			h.ServeHTTP(httptest.NewRecorder(), readRequest(t, string(raw)))
			dump := strings.ReplaceAll(got.String(), "\r\n", "\n")
			goldenPath := strings.TrimSuffix(in, ".in") + ".golden"
			if *update {
				if err := os.WriteFile(goldenPath, []byte(dump), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatal(err)
			}
			if dump != string(want) {
				t.Errorf("upstream request differs from %s:\n--- got\n%s\n--- want\n%s", goldenPath, dump, want)
			}
		})
	}
}

// HEAD: the origin's Content-Length (the GET's) reaches the client; without
// one, the client must not be told "Content-Length: 0".
func TestHeadContentLength(t *testing.T) {
	runModes(t, allModes, func(t *testing.T, m mode) {
		for _, tt := range []struct {
			name   string
			length string
			want   int64
		}{
			{"origin length", "1234", 1234},
			{"no origin length", "", -1},
		} {
			t.Run(tt.name, func(t *testing.T) {
				rt := &fakeRT{reply: func(req *http.Request) (*http.Response, error) {
					h := http.Header{"Content-Type": {"text/html"}}
					if tt.length != "" {
						h.Set("Content-Length", tt.length)
					}
					return newResp(req, http.StatusOK, h, ""), nil
				}}
				srv, c := startProxy(t, m, newHandler(t, rt))
				resp, err := c.Head(srv.URL + "/")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.ContentLength != tt.want {
					t.Errorf("ContentLength = %d (%q), want %d", resp.ContentLength, resp.Header.Get("Content-Length"), tt.want)
				}
			})
		}
	})
}
