package translate

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func TestViaRequest(t *testing.T) {
	tests := []struct {
		name         string
		major, minor int
		via          string // Config.Via
		existing     []string
		want         []string
	}{
		{"HTTP/1.0", 1, 0, "", nil, []string{"1.0 hoplite"}},
		{"HTTP/1.1", 1, 1, "", nil, []string{"1.1 hoplite"}},
		{"HTTP/2", 2, 0, "", nil, []string{"2 hoplite"}},
		{"HTTP/3", 3, 0, "", nil, []string{"3 hoplite"}},
		{"existing Via kept first", 1, 1, "", []string{"1.1 cdn, 1.0 fred"}, []string{"1.1 cdn, 1.0 fred", "1.1 hoplite"}},
		{"several existing fields", 2, 0, "", []string{"1.1 a", "1.1 b"}, []string{"1.1 a", "1.1 b", "2 hoplite"}},
		{"custom pseudonym", 1, 1, "edge-7", nil, []string{"1.1 edge-7"}},
		{"custom pseudonym HTTP/3", 3, 0, "edge-7", nil, []string{"3 edge-7"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := &fakeRT{}
			h, err := New(Config{
				Routes:   []Route{{Backend: "b"}},
				Backends: map[string]http.RoundTripper{"b": rt},
				Via:      tt.via,
				Logger:   discardLogger,
			})
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", "/", nil)
			r.ProtoMajor, r.ProtoMinor = tt.major, tt.minor
			if tt.existing != nil {
				r.Header["Via"] = append([]string(nil), tt.existing...)
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
			if got := rt.hdrs[0]["Via"]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("upstream Via = %q, want %q", got, tt.want)
			}
			if !reflect.DeepEqual(r.Header["Via"], tt.existing) {
				t.Errorf("downstream Via modified: %q", r.Header["Via"])
			}
		})
	}
}

func TestViaResponse(t *testing.T) {
	tests := []struct {
		name         string
		major, minor int
		via          string
		existing     []string
		want         []string
	}{
		{"HTTP/1.1 origin", 1, 1, "", nil, []string{"1.1 hoplite"}},
		{"HTTP/1.0 origin", 1, 0, "", nil, []string{"1.0 hoplite"}},
		{"origin Via kept first", 1, 1, "", []string{"1.1 varnish"}, []string{"1.1 varnish", "1.1 hoplite"}},
		{"custom pseudonym", 1, 0, "edge", nil, []string{"1.0 edge"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := &fakeRT{reply: func(req *http.Request) (*http.Response, error) {
				resp := newResp(req, http.StatusOK, nil, "")
				resp.ProtoMajor, resp.ProtoMinor = tt.major, tt.minor
				if tt.existing != nil {
					resp.Header["Via"] = tt.existing
				}
				return resp, nil
			}}
			h, err := New(Config{
				Routes:   []Route{{Backend: "b"}},
				Backends: map[string]http.RoundTripper{"b": rt},
				Via:      tt.via,
				Logger:   discardLogger,
			})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			r := httptest.NewRequest("GET", "/", nil)
			r.ProtoMajor, r.ProtoMinor = 2, 0 // the downstream protocol must not matter
			h.ServeHTTP(rec, r)
			if got := rec.Result().Header["Via"]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("downstream Via = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestXForwarded(t *testing.T) {
	tests := []struct {
		name               string
		remote, host       string
		tls                bool
		client             http.Header
		wantFor, wantProto string
		wantHost           string
	}{
		{
			name:   "IPv4 plain",
			remote: "192.0.2.10:5555", host: "example.com",
			wantFor: "192.0.2.10", wantProto: "http", wantHost: "example.com",
		},
		{
			name:   "IPv6 TLS with port in Host",
			remote: "[2001:db8::1]:443", host: "example.com:8443", tls: true,
			wantFor: "2001:db8::1", wantProto: "https", wantHost: "example.com:8443",
		},
		{
			name:   "client values replaced",
			remote: "198.51.100.7:1", host: "shop.example.com",
			client: http.Header{
				"X-Forwarded-For":   {"10.0.0.1, 10.0.0.2", "6.6.6.6"},
				"X-Forwarded-Proto": {"https"},
				"X-Forwarded-Host":  {"evil.test"},
			},
			wantFor: "198.51.100.7", wantProto: "http", wantHost: "shop.example.com",
		},
		{
			name:   "RemoteAddr without port",
			remote: "203.0.113.9", host: "a.test",
			wantFor: "203.0.113.9", wantProto: "http", wantHost: "a.test",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := &fakeRT{}
			h := newHandler(t, rt)
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			r.Host = tt.host
			r.TLS = nil
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			for k, vv := range tt.client {
				r.Header[k] = vv
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
			got := rt.hdrs[0]
			for k, want := range map[string]string{
				"X-Forwarded-For":   tt.wantFor,
				"X-Forwarded-Proto": tt.wantProto,
				"X-Forwarded-Host":  tt.wantHost,
			} {
				if !reflect.DeepEqual(got[k], []string{want}) {
					t.Errorf("%s = %q, want [%q]", k, got[k], want)
				}
			}
			for k, vv := range tt.client {
				if !reflect.DeepEqual(r.Header[k], vv) {
					t.Errorf("downstream %s modified: %q", k, r.Header[k])
				}
			}
		})
	}
}

// The protocol matrix: one request over each downstream protocol; the
// origin side sees the right Via and X-Forwarded-* and the client the
// right response Via.
func TestForwardingMatrix(t *testing.T) {
	runModes(t, allModes, func(t *testing.T, m mode) {
		rt := &fakeRT{}
		srv, c := startProxy(t, m, newHandler(t, rt))
		req, _ := http.NewRequest("GET", srv.URL+"/p", nil)
		req.Header.Set("X-Forwarded-For", "6.6.6.6")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()

		out := rt.only(t)
		wantVia := map[mode]string{modeH1: "1.1 hoplite", modeH1TLS: "1.1 hoplite", modeH2: "2 hoplite"}[m]
		if got := out.Header["Via"]; !reflect.DeepEqual(got, []string{wantVia}) {
			t.Errorf("upstream Via = %q, want %q", got, wantVia)
		}
		if got := out.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
			t.Errorf("X-Forwarded-For = %q, want 127.0.0.1", got)
		}
		wantProto := "https"
		if m == modeH1 {
			wantProto = "http"
		}
		if got := out.Header.Get("X-Forwarded-Proto"); got != wantProto {
			t.Errorf("X-Forwarded-Proto = %q, want %q", got, wantProto)
		}
		if got, want := out.Header.Get("X-Forwarded-Host"), strings.TrimPrefix(strings.TrimPrefix(srv.URL, "https://"), "http://"); got != want {
			t.Errorf("X-Forwarded-Host = %q, want %q", got, want)
		}
		if got := resp.Header["Via"]; !reflect.DeepEqual(got, []string{"1.1 hoplite"}) {
			t.Errorf("response Via = %q", got)
		}
		if resp.ProtoMajor != wantProtoMajor(m) {
			t.Errorf("client spoke HTTP/%d, want %d", resp.ProtoMajor, wantProtoMajor(m))
		}
	})
}

func TestForwardedField(t *testing.T) {
	tests := []struct {
		name, remote, host string
		tls                bool
		want               string
	}{
		{"IPv4, plain host", "192.0.2.1:5000", "example.com", false, "for=192.0.2.1;host=example.com;proto=http"},
		{"IPv6 bracketed and quoted", "[2001:db8::1]:5000", "example.com", true, `for="[2001:db8::1]";host=example.com;proto=https`},
		{"host with port quoted", "192.0.2.1:5000", "example.com:8443", true, `for=192.0.2.1;host="example.com:8443";proto=https`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr, r.Host = tt.remote, tt.host
			if !tt.tls {
				r.TLS = nil
			} else if r.TLS == nil {
				r.TLS = &tls.ConnectionState{}
			}
			h := http.Header{"Forwarded": {"for=spoofed"}}
			setForwarded(h, r)
			if got := h["Forwarded"]; len(got) != 1 || got[0] != tt.want {
				t.Fatalf("Forwarded = %q, want %q", got, tt.want)
			}
		})
	}
}
