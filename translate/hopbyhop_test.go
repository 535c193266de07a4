package translate

import (
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// hopFields are the hop-by-hop fields of RFC 9110 §7.6.1 and RFC 9112,
// spelled as a client might spell them (net/http canonicalizes them).
var hopFields = []string{"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Transfer-Encoding", "Upgrade"}

func TestRemoveHopByHop(t *testing.T) {
	tests := []struct {
		name string
		in   http.Header
		want http.Header
	}{
		{
			name: "fixed list",
			in: http.Header{
				"Connection":        {"keep-alive"},
				"Keep-Alive":        {"timeout=5, max=100"},
				"Proxy-Connection":  {"keep-alive"},
				"Te":                {"trailers"},
				"Transfer-Encoding": {"chunked"},
				"Upgrade":           {"websocket"},
				"Accept":            {"*/*"},
			},
			want: http.Header{"Accept": {"*/*"}},
		},
		{
			name: "fields named in Connection",
			in: http.Header{
				"Connection": {"X-A, x-b"},
				"X-A":        {"1"},
				"X-B":        {"2"},
				"X-C":        {"3"},
			},
			want: http.Header{"X-C": {"3"}},
		},
		{
			name: "odd case, spaces, tabs, empty elements",
			in: http.Header{
				"Connection": {" ,, x-ONE ,\tX-two\t, ,"},
				"X-One":      {"1"},
				"X-Two":      {"2"},
				"X-Three":    {"3"},
			},
			want: http.Header{"X-Three": {"3"}},
		},
		{
			name: "several Connection fields",
			in: http.Header{
				"Connection": {"x-a", "close", "X-B,x-c"},
				"X-A":        {"1"},
				"X-B":        {"2"},
				"X-C":        {"3"},
				"X-D":        {"4"},
			},
			want: http.Header{"X-D": {"4"}},
		},
		{
			name: "Connection naming an end-to-end field and a missing one",
			in: http.Header{
				"Connection":    {"Cache-Control, X-Absent"},
				"Cache-Control": {"no-cache"},
				"Accept":        {"text/html", "application/json"},
			},
			want: http.Header{"Accept": {"text/html", "application/json"}},
		},
		{
			name: "multiple values untouched",
			in: http.Header{
				"Set-Cookie": {"a=1", "b=2"},
				"Vary":       {"Accept", "Accept-Encoding"},
			},
			want: http.Header{
				"Set-Cookie": {"a=1", "b=2"},
				"Vary":       {"Accept", "Accept-Encoding"},
			},
		},
		{
			name: "empty",
			in:   http.Header{},
			want: http.Header{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			removeHopByHop(tt.in)
			if !reflect.DeepEqual(tt.in, tt.want) {
				t.Errorf("got %v\nwant %v", tt.in, tt.want)
			}
		})
	}
	removeHopByHop(nil) // must not panic
}

// hopRequestHeader is a downstream request header full of hop-by-hop
// fields, mixed with end-to-end fields that must pass unchanged.
func hopRequestHeader() http.Header {
	h := http.Header{}
	h.Add("Connection", "X-Private, keep-alive")
	h.Add("Connection", " , x-other-PRIVATE ,,Upgrade")
	h.Add("X-Private", "secret")
	h.Add("X-Other-Private", "secret2")
	h.Add("Keep-Alive", "timeout=5")
	h.Add("Proxy-Connection", "keep-alive")
	h.Add("TE", "trailers, deflate")
	h.Add("Transfer-Encoding", "chunked")
	h.Add("Upgrade", "websocket")
	h.Add("Accept", "text/html")
	h.Add("Accept", "application/json")
	h.Add("Cookie", "a=1")
	h.Add("Cookie", "b=2")
	h.Add("X-End-To-End", "kept")
	h.Add("Authorization", "Bearer t")
	return h
}

var requestHopNames = []string{"Connection", "X-Private", "X-Other-Private", "Keep-Alive", "Proxy-Connection", "Te", "Transfer-Encoding", "Upgrade"}

func TestRequestHopByHop(t *testing.T) {
	rt := &fakeRT{}
	h := newHandler(t, rt)
	r := httptest.NewRequest("GET", "http://example.com/x", nil)
	r.Header = hopRequestHeader()
	snapshot := r.Header.Clone()

	h.ServeHTTP(httptest.NewRecorder(), r)

	got := rt.hdrs[0]
	for _, k := range requestHopNames {
		if v, ok := got[k]; ok {
			t.Errorf("upstream got hop-by-hop %s: %q", k, v)
		}
	}
	for _, k := range []string{"Accept", "Cookie", "X-End-To-End", "Authorization"} {
		if !reflect.DeepEqual(got[k], snapshot[k]) {
			t.Errorf("upstream %s = %q, want %q", k, got[k], snapshot[k])
		}
	}
	// net/http reads the downstream header after the handler (HTTP/1.0
	// keep-alive, Connection: close): it must be as the client sent it.
	if !reflect.DeepEqual(r.Header, snapshot) {
		t.Errorf("downstream header modified:\ngot  %v\nwant %v", r.Header, snapshot)
	}
}

// Every hop-by-hop field, alone, over real clients: the frontend may let
// it through (HTTP/1.1) or refuse it (HTTP/2); either way the origin never
// sees it.
func TestRequestHopByHopRealClients(t *testing.T) {
	runModes(t, []mode{modeH1, modeH1TLS}, func(t *testing.T, m mode) {
		rt := &fakeRT{}
		srv, c := startProxy(t, m, newHandler(t, rt))
		req, _ := http.NewRequest("GET", srv.URL+"/", nil)
		req.Header.Set("Connection", "X-Private, x-also")
		req.Header.Set("X-Private", "1")
		req.Header.Set("X-Also", "2")
		req.Header.Set("Keep-Alive", "timeout=9")
		req.Header.Set("Proxy-Connection", "keep-alive")
		req.Header.Set("TE", "gzip")
		req.Header.Set("Upgrade", "h2c")
		req.Header.Set("X-Keep", "yes")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got := rt.hdrs[0]
		for _, k := range requestHopNames {
			if _, ok := got[k]; ok {
				t.Errorf("upstream got %s: %q", k, got[k])
			}
		}
		if got.Get("X-Keep") != "yes" {
			t.Errorf("X-Keep = %q", got.Get("X-Keep"))
		}
	})
}

func TestResponseHopByHop(t *testing.T) {
	rt := &fakeRT{reply: func(req *http.Request) (*http.Response, error) {
		h := http.Header{}
		h.Add("Connection", "X-Internal, close")
		h.Add("Connection", "x-INTERNAL-2 , ,")
		h.Add("X-Internal", "backend-7")
		h.Add("X-Internal-2", "10.0.0.7")
		h.Add("Keep-Alive", "timeout=5, max=1000")
		h.Add("Proxy-Connection", "keep-alive")
		h.Add("TE", "trailers")
		h.Add("Transfer-Encoding", "chunked")
		h.Add("Upgrade", "h2c")
		h.Add("Set-Cookie", "a=1")
		h.Add("Set-Cookie", "b=2")
		h.Add("Cache-Control", "no-store")
		h.Add("Content-Type", "text/plain")
		return newResp(req, http.StatusOK, h, "body"), nil
	}}
	h := newHandler(t, rt)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))

	got := rec.Result().Header
	for _, k := range []string{"Connection", "X-Internal", "X-Internal-2", "Keep-Alive", "Proxy-Connection", "Te", "Transfer-Encoding", "Upgrade"} {
		if _, ok := got[k]; ok {
			t.Errorf("downstream got hop-by-hop %s: %q", k, got[k])
		}
	}
	if want := []string{"a=1", "b=2"}; !reflect.DeepEqual(got["Set-Cookie"], want) {
		t.Errorf("Set-Cookie = %q, want %q", got["Set-Cookie"], want)
	}
	if got.Get("Cache-Control") != "no-store" || got.Get("Content-Type") != "text/plain" {
		t.Errorf("end-to-end fields changed: %v", got)
	}
	if rec.Body.String() != "body" {
		t.Errorf("body = %q", rec.Body.String())
	}
}

// Over real clients, a hop-by-hop field in the origin's response would
// break HTTP/2 (RFC 9113 §8.2.2) and HTTP/1.1 framing; none reaches them.
func TestResponseHopByHopRealClients(t *testing.T) {
	runModes(t, allModes, func(t *testing.T, m mode) {
		rt := &fakeRT{reply: func(req *http.Request) (*http.Response, error) {
			h := http.Header{}
			h.Set("Connection", "X-Internal")
			h.Set("X-Internal", "1")
			h.Set("Keep-Alive", "timeout=1")
			h.Set("Transfer-Encoding", "chunked")
			h.Set("Upgrade", "h2c")
			h.Set("X-Public", "2")
			return newResp(req, http.StatusOK, h, "hello"), nil
		}}
		srv, c := startProxy(t, m, newHandler(t, rt))
		resp, err := c.Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || string(body) != "hello" {
			t.Fatalf("body = %q, %v", body, err)
		}
		for _, k := range []string{"X-Internal", "Keep-Alive", "Upgrade"} {
			if _, ok := resp.Header[k]; ok {
				t.Errorf("client got %s", k)
			}
		}
		if resp.Header.Get("X-Public") != "2" {
			t.Errorf("X-Public = %q", resp.Header.Get("X-Public"))
		}
	})
}

// tchar reports whether b may appear in a field name (RFC 9110 §5.6.2).
func tchar(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tchar(s[i]) {
			return false
		}
	}
	return true
}

// FuzzRemoveHopByHop builds a header from fuzzed "name: value" lines and
// checks the rules of RFC 9110 §7.6.1 on the result.
func FuzzRemoveHopByHop(f *testing.F) {
	f.Add("Connection: x-a, X-B\nX-A: 1\nX-B: 2\nX-C: 3")
	f.Add("connection: ,, keep-alive ,\tx-ONE\nx-one: 1\nkeep-alive: timeout=5\nte: trailers\nAccept: */*")
	f.Add("Connection: close\nConnection: upgrade, x-y\nUpgrade: websocket\nX-Y: 1\nTransfer-Encoding: chunked\nProxy-Connection: keep-alive")
	f.Add("Connection: Cache-Control\nCache-Control: no-cache\nSet-Cookie: a\nSet-Cookie: b")
	f.Add("Connection:\nConnection: ,\nX: y")
	f.Add("Connection: \u00a0x-nbsp\nX-Nbsp: 1")
	f.Fuzz(func(t *testing.T, data string) {
		h := http.Header{}
		for line := range strings.SplitSeq(data, "\n") {
			name, value, ok := strings.Cut(line, ":")
			if !ok || !validToken(name) {
				continue
			}
			h.Add(name, strings.TrimSpace(value))
		}
		orig := h.Clone()

		// What the Connection fields name (case-insensitive tokens).
		named := map[string]bool{}
		for _, v := range orig["Connection"] {
			for opt := range strings.SplitSeq(v, ",") {
				if opt = strings.TrimSpace(opt); validToken(opt) {
					named[http.CanonicalHeaderKey(opt)] = true
				}
			}
		}

		removeHopByHop(h)

		for k := range h {
			for _, hop := range hopFields {
				if strings.EqualFold(k, hop) {
					t.Errorf("hop-by-hop %s remains", k)
				}
			}
			for n := range named {
				if strings.EqualFold(k, n) {
					t.Errorf("%s named in Connection remains", k)
				}
			}
			if !reflect.DeepEqual(h[k], orig[k]) {
				t.Errorf("%s changed: %q → %q", k, orig[k], h[k])
			}
		}
		for k := range orig {
			hop := false
			for _, name := range hopFields {
				hop = hop || strings.EqualFold(k, name)
			}
			if !hop && !named[k] {
				if _, ok := h[k]; !ok {
					t.Errorf("end-to-end %s removed", k)
				}
			}
		}
	})
}
