package translate

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// trailerBody fills its response's trailer when it reaches EOF, as
// net/http's Transport and hoplite's backend do.
type trailerBody struct {
	r       io.Reader
	trailer http.Header
	fill    http.Header
}

func (b *trailerBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		for k, vv := range b.fill {
			b.trailer[k] = vv
		}
	}
	return n, err
}
func (b *trailerBody) Close() error { return nil }

// trailerRT answers with content and trailers known only at the end;
// declared lists the names announced up front (nil values, as net/http
// gives them before EOF).
func trailerRT(declared []string, fill http.Header) *fakeRT {
	return &fakeRT{reply: func(req *http.Request) (*http.Response, error) {
		resp := newResp(req, http.StatusOK, http.Header{"Content-Type": {"text/plain"}}, "")
		resp.Trailer = http.Header{}
		for _, k := range declared {
			resp.Trailer[k] = nil
		}
		resp.TransferEncoding = []string{"chunked"}
		resp.Body = &trailerBody{r: strings.NewReader("content"), trailer: resp.Trailer, fill: fill}
		return resp, nil
	}}
}

func hopTrailers() http.Header {
	return http.Header{
		"X-Checksum":        {"sha256=abc"},
		"Grpc-Status":       {"0"},
		"Server-Timing":     {"db;dur=53", "app;dur=47"},
		"Connection":        {"X-Private-Trailer"},
		"X-Private-Trailer": {"secret"},
		"Keep-Alive":        {"timeout=5"},
		"Upgrade":           {"h2c"},
		"Proxy-Connection":  {"close"},
	}
}

var wantTrailers = http.Header{
	"X-Checksum":    {"sha256=abc"},
	"Grpc-Status":   {"0"},
	"Server-Timing": {"db;dur=53", "app;dur=47"},
}

func TestTrailersRecorder(t *testing.T) {
	tests := []struct {
		name     string
		declared []string
	}{
		{"declared", []string{"X-Checksum", "Grpc-Status", "Server-Timing", "Connection", "X-Private-Trailer", "Keep-Alive"}},
		{"undeclared", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHandler(t, trailerRT(tt.declared, hopTrailers()))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			res := rec.Result()
			io.ReadAll(res.Body)
			if rec.Body.String() != "content" {
				t.Errorf("body = %q", rec.Body.String())
			}
			if !reflect.DeepEqual(res.Trailer, wantTrailers) {
				t.Errorf("trailers = %v\nwant %v", res.Trailer, wantTrailers)
			}
		})
	}
}

// Trailers reach real clients: HTTP/1.1 as a chunked trailer section,
// HTTP/2 as a trailing HEADERS frame; hop-by-hop names never.
func TestTrailersRealClients(t *testing.T) {
	runModes(t, allModes, func(t *testing.T, m mode) {
		for _, declared := range [][]string{{"X-Checksum", "Grpc-Status", "Server-Timing"}, nil} {
			t.Run(fmt.Sprintf("declared=%d", len(declared)), func(t *testing.T) {
				srv, c := startProxy(t, m, newHandler(t, trailerRT(declared, hopTrailers())))
				resp, err := c.Get(srv.URL + "/")
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err != nil || string(b) != "content" {
					t.Fatalf("body = %q, %v", b, err)
				}
				if m != modeH2 && !reflect.DeepEqual(resp.TransferEncoding, []string{"chunked"}) {
					t.Errorf("HTTP/1.1 TransferEncoding = %q, want chunked", resp.TransferEncoding)
				}
				if !reflect.DeepEqual(resp.Trailer, wantTrailers) {
					t.Errorf("trailers = %v\nwant %v", resp.Trailer, wantTrailers)
				}
			})
		}
	})
}

// An upstream response without trailers sets none.
func TestNoTrailers(t *testing.T) {
	h := newHandler(t, &fakeRT{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	for k := range rec.Header() {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			t.Errorf("trailer %s set", k)
		}
	}
	copyTrailers(rec.Header(), http.Header{"X-Empty": nil})
	if _, ok := rec.Header()[http.TrailerPrefix+"X-Empty"]; ok {
		t.Error("a trailer without value was declared")
	}
}

// Regression: a request's trailer section, which net/http's HTTP/1.1
// server merges into Request.Trailer only at the end of the content
// (declared or not), must lose its hop-by-hop fields before the upstream
// writes it. outgoing used to clean the map when the request was built,
// before any value had arrived.
func TestRequestTrailersHopByHop(t *testing.T) {
	got := make(chan http.Header, 1)
	rt := &fakeRT{reply: func(req *http.Request) (*http.Response, error) {
		io.ReadAll(req.Body)
		got <- req.Trailer.Clone()
		return newResp(req, http.StatusOK, nil, ""), nil
	}}
	srv, _ := startProxy(t, modeH1, newHandler(t, rt))
	c, br := rawConn(t, srv)
	fmt.Fprint(c, "POST /upload HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"+
		"4\r\ndata\r\n0\r\n"+
		"X-Checksum: 1234\r\n"+
		"Connection: X-Private\r\n"+
		"X-Private: secret\r\n"+
		"Keep-Alive: timeout=1\r\n"+
		"\r\n")
	tr := recvOrFail(t, got, "upstream request")
	if tr.Get("X-Checksum") != "1234" {
		t.Errorf("X-Checksum trailer = %q, want 1234", tr.Get("X-Checksum"))
	}
	for _, k := range []string{"Connection", "X-Private", "Keep-Alive"} {
		if v, ok := tr[k]; ok {
			t.Errorf("upstream request trailer has hop-by-hop %s: %q", k, v)
		}
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// requestTrailerBody fills the downstream request's trailer at EOF, either
// in the announced map (net/http, x/net http2) or in a new map (quic-go).
type requestTrailerBody struct {
	r      io.Reader
	req    *http.Request
	fill   http.Header
	newMap bool
}

func (b *requestTrailerBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		if b.newMap {
			b.req.Trailer = b.fill.Clone()
		} else {
			for k, vv := range b.fill {
				b.req.Trailer[k] = vv
			}
		}
	}
	return n, err
}
func (b *requestTrailerBody) Close() error { return nil }

func TestRequestTrailers(t *testing.T) {
	fill := http.Header{
		"X-Checksum": {"1234"},
		"Connection": {"X-Private"},
		"X-Private":  {"secret"},
		"Keep-Alive": {"timeout=1"},
		"Te":         {"trailers"},
	}
	tests := []struct {
		name     string
		announce []string
		newMap   bool
		content  string
		length   int64
		method   string
		want     http.Header // upstream trailer after EOF; nil for none
	}{
		{"filled in the announced map", []string{"X-Checksum", "Keep-Alive"}, false, "data", -1, "POST", http.Header{"X-Checksum": {"1234"}}},
		{"filled in a new map (HTTP/3)", []string{"X-Checksum"}, true, "data", -1, "POST", http.Header{"X-Checksum": {"1234"}}},
		{"known length", []string{"X-Checksum"}, false, "data", 4, "PUT", http.Header{"X-Checksum": {"1234"}}},
		{"no content, no trailers", []string{"X-Checksum"}, false, "", 0, "GET", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var announced, final http.Header
			var content string
			rt := &fakeRT{reply: func(req *http.Request) (*http.Response, error) {
				announced = req.Trailer.Clone()
				if req.Body != nil {
					b, _ := io.ReadAll(req.Body)
					content = string(b)
				}
				final = req.Trailer.Clone()
				return newResp(req, http.StatusOK, nil, ""), nil
			}}
			h := newHandler(t, rt)
			r := httptest.NewRequest(tt.method, "/", nil)
			r.Trailer = http.Header{}
			for _, k := range tt.announce {
				r.Trailer[k] = nil
			}
			r.Body = &requestTrailerBody{r: strings.NewReader(tt.content), req: r, fill: fill, newMap: tt.newMap}
			r.ContentLength = tt.length
			h.ServeHTTP(httptest.NewRecorder(), r)

			if content != tt.content {
				t.Errorf("content = %q, want %q", content, tt.content)
			}
			if tt.want == nil {
				if len(final) != 0 {
					t.Errorf("upstream trailer = %v, want none", final)
				}
				return
			}
			for k, vv := range announced {
				if vv != nil || hopNamed(k) {
					t.Errorf("announced trailer %s = %q: want only end-to-end names, no values", k, vv)
				}
			}
			if !reflect.DeepEqual(final, tt.want) {
				t.Errorf("upstream trailer = %v, want %v", final, tt.want)
			}
			if !tt.newMap && r.Trailer.Get("Keep-Alive") != "timeout=1" {
				t.Errorf("downstream trailer modified: %v", r.Trailer)
			}
		})
	}
}

func hopNamed(k string) bool {
	for _, h := range hopFields {
		if strings.EqualFold(k, h) {
			return true
		}
	}
	return false
}

// A real HTTP/2 client's request trailers reach the upstream.
func TestRequestTrailersH2(t *testing.T) {
	got := make(chan http.Header, 1)
	rt := &fakeRT{reply: func(req *http.Request) (*http.Response, error) {
		io.ReadAll(req.Body)
		got <- req.Trailer.Clone()
		return newResp(req, http.StatusOK, nil, ""), nil
	}}
	srv, c := startProxy(t, modeH2, newHandler(t, rt))
	req, _ := http.NewRequest("POST", srv.URL+"/upload", nil)
	req.Trailer = http.Header{"X-Checksum": nil}
	req.Body = &requestTrailerBody{r: strings.NewReader("data"), req: req, fill: http.Header{"X-Checksum": {"1234"}}}
	req.ContentLength = -1
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tr := recvOrFail(t, got, "upstream request")
	if !reflect.DeepEqual(tr, http.Header{"X-Checksum": {"1234"}}) {
		t.Errorf("upstream trailer = %v", tr)
	}
}
