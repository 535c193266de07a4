package translate

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// routingHandler builds a Handler whose backends are named fakes, so that
// a test can tell which one a request reached.
func routingHandler(t *testing.T, routes []Route) (*Handler, map[string]*fakeRT) {
	t.Helper()
	fakes := make(map[string]*fakeRT)
	backends := make(map[string]http.RoundTripper)
	for _, r := range routes {
		if _, ok := fakes[r.Backend]; !ok {
			f := &fakeRT{}
			fakes[r.Backend] = f
			backends[r.Backend] = f
		}
	}
	h, err := New(Config{Routes: routes, Backends: backends, Logger: discardLogger})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h, fakes
}

func TestRouting(t *testing.T) {
	routes := []Route{
		// Declared least specific first, so that order of declaration
		// cannot be what makes the tests pass.
		{Host: "", PathPrefix: "/", Backend: "any-root"},
		{Host: "", PathPrefix: "/static/", Backend: "any-static"},
		{Host: "*.example.com", PathPrefix: "/", Backend: "wild-root"},
		{Host: "*.example.com", PathPrefix: "/api/v1/long/prefix", Backend: "wild-long"},
		{Host: "www.example.com", PathPrefix: "/", Backend: "www-root"},
		{Host: "www.example.com", PathPrefix: "/api", Backend: "www-api"},
		{Host: "www.example.com", PathPrefix: "/api/v2", Backend: "www-api-v2"},
		{Host: "Mixed.Example.ORG.", PathPrefix: "/", Backend: "mixed"},
	}
	tests := []struct {
		name, host, path string
		want             string // backend name
	}{
		{"exact host, root", "www.example.com", "/", "www-root"},
		{"exact host beats wildcard with longer prefix", "www.example.com", "/api/v1/long/prefix/x", "www-api"},
		{"exact host beats any-host static", "www.example.com", "/static/app.js", "www-root"},
		{"longest prefix wins", "www.example.com", "/api/v2/users", "www-api-v2"},
		{"shorter prefix when longer does not match", "www.example.com", "/api/v3", "www-api"},
		{"host is case-insensitive", "WWW.Example.COM", "/api", "www-api"},
		{"port ignored", "www.example.com:8443", "/api", "www-api"},
		{"trailing dot ignored", "www.example.com.", "/api", "www-api"},
		{"port and trailing dot ignored", "WWW.EXAMPLE.COM.:443", "/api", "www-api"},
		{"route host lowered and dot-trimmed", "mixed.example.org", "/", "mixed"},
		{"wildcard matches one label", "shop.example.com", "/", "wild-root"},
		{"wildcard longest prefix", "shop.example.com", "/api/v1/long/prefix", "wild-long"},
		{"wildcard with port and case", "SHOP.example.com:80", "/", "wild-root"},
		{"wildcard beats any host", "shop.example.com", "/static/x", "wild-root"},
		{"wildcard skips apex", "example.com", "/", "any-root"},
		{"wildcard skips two labels", "a.b.example.com", "/", "any-root"},
		{"wildcard skips empty label", ".example.com", "/", "any-root"},
		{"wildcard skips suffix lookalike", "shop.notexample.com", "/", "any-root"},
		{"any host, longest prefix", "other.test", "/static/x", "any-static"},
		{"any host, root", "other.test", "/x", "any-root"},
		{"empty host header", "", "/x", "any-root"},
		{"IPv6 host", "[::1]:8080", "/static/", "any-static"},
	}
	h, fakes := routingHandler(t, routes)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://placeholder"+tt.path, nil)
			r.Host = tt.host
			got := h.match(r)
			if got == nil {
				t.Fatalf("match(%q, %q) = nil, want %s", tt.host, tt.path, tt.want)
			}
			if got.name != tt.want {
				t.Errorf("match(%q, %q) = %s, want %s", tt.host, tt.path, got.name, tt.want)
			}
			// ServeHTTP must use the same route.
			before := fakes[tt.want].count()
			h.ServeHTTP(httptest.NewRecorder(), r)
			if fakes[tt.want].count() != before+1 {
				t.Errorf("ServeHTTP did not reach backend %s", tt.want)
			}
		})
	}
}

func TestRoutingDeclarationOrderBreaksTies(t *testing.T) {
	h, _ := routingHandler(t, []Route{
		{Host: "a.test", PathPrefix: "/x", Backend: "first"},
		{Host: "a.test", PathPrefix: "/x", Backend: "second"},
	})
	r := httptest.NewRequest("GET", "/x", nil)
	r.Host = "a.test"
	if got := h.match(r); got == nil || got.name != "first" {
		t.Fatalf("match = %v, want the first declared route", got)
	}
}

func TestNoRoute(t *testing.T) {
	h, fakes := routingHandler(t, []Route{
		{Host: "www.example.com", PathPrefix: "/", Backend: "www"},
		{Host: "*.example.net", PathPrefix: "/app", Backend: "net"},
	})
	tests := []struct{ name, host, path string }{
		{"unknown host", "other.test", "/"},
		{"wildcard apex", "example.net", "/app"},
		{"wildcard path mismatch", "a.example.net", "/other"},
		{"host suffix only", "xwww.example.com", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tt.path, nil)
			r.Host = tt.host
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != http.StatusNotFound {
				t.Errorf("status = %d, want 404", rec.Code)
			}
			if got := rec.Body.String(); got != "Not Found\n" {
				t.Errorf("body = %q, want %q", got, "Not Found\n")
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type = %q, want text/plain", ct)
			}
			for name, f := range fakes {
				if f.count() != 0 {
					t.Errorf("backend %s was called", name)
				}
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	ok := &fakeRT{}
	backends := map[string]http.RoundTripper{"b": ok, "nil": nil}
	tests := []struct {
		name    string
		routes  []Route
		wantErr string
	}{
		{"no routes", nil, "no routes"},
		{"empty routes", []Route{}, "no routes"},
		{"unknown backend", []Route{{Backend: "missing"}}, `unknown backend "missing"`},
		{"empty backend name", []Route{{}}, `unknown backend ""`},
		{"nil transport", []Route{{Backend: "nil"}}, `unknown backend "nil"`},
		{"host with port", []Route{{Host: "example.com:80", Backend: "b"}}, "invalid host"},
		{"host with slash", []Route{{Host: "example.com/x", Backend: "b"}}, "invalid host"},
		{"host with space", []Route{{Host: "exa mple.com", Backend: "b"}}, "invalid host"},
		{"star inside label", []Route{{Host: "a*.example.com", Backend: "b"}}, "invalid host"},
		{"star without dot", []Route{{Host: "*example.com", Backend: "b"}}, "invalid host"},
		{"two stars", []Route{{Host: "*.*.example.com", Backend: "b"}}, "invalid host"},
		{"star alone", []Route{{Host: "*", Backend: "b"}}, "invalid host"},
		{"star not first", []Route{{Host: "www.*.com", Backend: "b"}}, "invalid host"},
		{"path without slash", []Route{{PathPrefix: "api", Backend: "b"}}, "must start with /"},
		{"second route bad", []Route{{Backend: "b"}, {PathPrefix: "x", Backend: "b"}}, "route 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(Config{Routes: tt.routes, Backends: backends})
			if err == nil {
				t.Fatalf("New succeeded (%v), want error containing %q", h, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "translate: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestNewAccepts(t *testing.T) {
	backends := map[string]http.RoundTripper{"b": &fakeRT{}}
	for _, r := range []Route{
		{Backend: "b"},
		{Host: "example.com", Backend: "b"},
		{Host: "EXAMPLE.COM.", Backend: "b"},
		{Host: "*.example.com", PathPrefix: "/api", Backend: "b"},
		{Host: "xn--bcher-kva.example", PathPrefix: "/", Backend: "b"},
	} {
		if _, err := New(Config{Routes: []Route{r}, Backends: backends}); err != nil {
			t.Errorf("New(%+v): %v", r, err)
		}
	}
}

// An empty PathPrefix means "/", so the route takes every path.
func TestEmptyPrefixIsRoot(t *testing.T) {
	h, fakes := routingHandler(t, []Route{{Host: "a.test", Backend: "b"}})
	r := httptest.NewRequest("GET", "/deep/path?q=1", nil)
	r.Host = "a.test"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if fakes["b"].count() != 1 {
		t.Fatalf("status %d; backend not reached", rec.Code)
	}
	if got, _ := io.ReadAll(rec.Body); string(got) != "ok" {
		t.Errorf("body = %q", got)
	}
}

// FuzzRouteMatch checks that matching never panics and that a match obeys
// Route's documented rules, restated here independently of route.go.
func FuzzRouteMatch(f *testing.F) {
	f.Add("*.example.com", "/api", "a.example.com:8443", "/api/x")
	f.Add("*.example.com", "/", "a.b.example.com", "/")
	f.Add("*.example.com", "/", "example.com", "/")
	f.Add("Example.COM.", "", "example.com.", "/")
	f.Add("", "/", "", "")
	f.Add("www.example.com", "/a", "WWW.EXAMPLE.COM.:80", "/a")
	f.Add("*.x", "/", ".x", "/")
	f.Add("*..", "/", "a.", "/")
	f.Add("k.test", "/", "\u212a.test", "/")
	f.Add("host", "/", "[host]:1", "/")
	f.Fuzz(func(t *testing.T, pattern, prefix, host, path string) {
		h, err := New(Config{
			Routes:   []Route{{Host: pattern, PathPrefix: prefix, Backend: "b"}},
			Backends: map[string]http.RoundTripper{"b": &fakeRT{}},
			Logger:   discardLogger,
		})
		if err != nil {
			return
		}
		r := &http.Request{Method: "GET", Host: host, URL: &url.URL{Path: path}, Header: http.Header{}}
		got := h.match(r)
		if got == nil {
			return
		}
		if prefix == "" {
			prefix = "/"
		}
		if path == "" {
			path = "/" // an absolute-form target without a path
		}
		if !strings.HasPrefix(path, prefix) {
			t.Errorf("path %q matched prefix %q", path, prefix)
		}
		// The request host without port or one trailing dot.
		hn := host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			hn = hh
		}
		hn = strings.TrimSuffix(hn, ".")
		p := strings.TrimSuffix(strings.ToLower(pattern), ".")
		switch {
		case p == "":
		case strings.HasPrefix(p, "*."):
			i := strings.IndexByte(hn, '.')
			if i <= 0 || !strings.EqualFold(hn[i+1:], p[2:]) {
				t.Errorf("host %q matched %q: not exactly one label in front", host, pattern)
			}
		default:
			if !strings.EqualFold(hn, p) {
				t.Errorf("host %q matched %q", host, pattern)
			}
		}
	})
}
