package translate

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// fuzzHeader builds a header from fuzzed "name: value" lines as a server
// hands one to the handler: token names in canonical form, values without
// surrounding whitespace, repeated fields in arrival order.
func fuzzHeader(data string) http.Header {
	h := http.Header{}
	for line := range strings.SplitSeq(data, "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || !validToken(name) {
			continue
		}
		h.Add(name, strings.Trim(value, " \t"))
	}
	return h
}

// connectionNamed returns the canonical names of the fields a header's
// Connection fields name (RFC 9110 §7.6.1), read as FuzzRemoveHopByHop
// reads them.
func connectionNamed(h http.Header) map[string]bool {
	named := map[string]bool{}
	for _, v := range h["Connection"] {
		for opt := range strings.SplitSeq(v, ",") {
			if opt = strings.TrimSpace(opt); validToken(opt) {
				named[http.CanonicalHeaderKey(opt)] = true
			}
		}
	}
	return named
}

func isHopField(k string) bool {
	for _, hop := range hopFields {
		if strings.EqualFold(k, hop) {
			return true
		}
	}
	return false
}

// checkHop checks one direction of the translation: got is what the
// handler passed on for in, and generated lists the fields the proxy itself
// sets on that hop (checked by the caller). No hop-by-hop field and no
// field in's Connection names crosses; every other field crosses with the
// same values in the same order.
func checkHop(t *testing.T, dir string, in, got http.Header, generated ...string) {
	t.Helper()
	named := connectionNamed(in)
	own := func(k string) bool {
		for _, g := range generated {
			if strings.EqualFold(k, g) {
				return true
			}
		}
		return false
	}
	for k := range got {
		if own(k) {
			continue
		}
		if isHopField(k) {
			t.Errorf("%s: hop-by-hop %s = %q crossed", dir, k, got[k])
		}
		if named[http.CanonicalHeaderKey(k)] {
			t.Errorf("%s: %s, named in Connection %q, crossed", dir, k, in["Connection"])
		}
	}
	for k, vv := range in {
		if own(k) || isHopField(k) || named[k] {
			continue
		}
		if !reflect.DeepEqual(got[k], vv) {
			t.Errorf("%s: end-to-end %s = %q arrived as %q", dir, k, vv, got[k])
		}
	}
}

// FuzzHeaderTranslation runs fuzzed request and response fields through
// Handler.ServeHTTP with a fake upstream and checks the hop rules in both
// directions (RFC 9110 §7.6.1), the forwarding fields (Via both ways,
// X-Forwarded-* and Forwarded replaced upstream), and that the downstream
// request's header is left as it came.
func FuzzHeaderTranslation(f *testing.F) {
	f.Add("Connection: x-a, X-B\nX-A: 1\nX-B: 2\nX-C: 3\nX-C: 4", "Connection: x-r\nX-R: 1\nX-S: 2", uint8(1), false, false, "a.test")
	f.Add("connection: keep-alive, ,\tx-ONE\nx-one: 1\nkeep-alive: timeout=5\nte: trailers\nAccept: */*", "Keep-Alive: timeout=5\nTransfer-Encoding: chunked\nContent-Type: text/plain", uint8(0), false, false, "legacy.test")
	f.Add("Connection: close\nConnection: upgrade, x-y\nUpgrade: websocket\nX-Y: 1\nProxy-Connection: keep-alive", "Upgrade: h2c\nConnection: upgrade\nVia: 1.1 origin-cache", uint8(1), true, true, "[2001:db8::1]:8443")
	f.Add("Via: 1.1 cdn, 1.0 fred\nVia: 2 edge\nX-Forwarded-For: 203.0.113.9\nX-Forwarded-Host: spoofed\nX-Forwarded-Proto: https\nForwarded: for=evil", "Set-Cookie: a=1\nSet-Cookie: b=2\nVia: 1.0 old", uint8(2), false, false, "b.test:80")
	f.Add("Connection: Via, X-Forwarded-For\nVia: 1.1 cdn\nX-Forwarded-For: 1.2.3.4", "Connection: Via, Set-Cookie\nVia: 1.1 o\nSet-Cookie: x", uint8(3), true, false, "c.test")
	f.Add("Connection: Cache-Control\nCache-Control: no-cache\nPragma: no-cache", "Connection: Content-Length\nContent-Length: 2\nCache-Control: max-age=1", uint8(1), false, false, "d.test")
	f.Add("Connection: \u00a0x-nbsp\nX-Nbsp: 1\nX-Obs: caf\xe9", "Connection:\nConnection: ,\nX: y", uint8(1), false, false, "e.test")
	f.Fuzz(func(t *testing.T, reqFields, respFields string, proto uint8, useTLS, ipv6 bool, host string) {
		if !httpguts.ValidHostHeader(host) {
			return // a server answers 400 itself
		}
		downstream := fuzzHeader(reqFields)
		origin := fuzzHeader(respFields)
		before := downstream.Clone()

		rt := &fakeRT{reply: func(req *http.Request) (*http.Response, error) {
			return newResp(req, http.StatusOK, origin.Clone(), "ok"), nil
		}}
		h := newHandler(t, rt)

		r := httptest.NewRequest("GET", "/p?q=1", nil)
		r.Host = host
		r.Header = downstream
		major, minor := []int{1, 1, 2, 3}[proto%4], []int{0, 1, 0, 0}[proto%4]
		r.Proto = "HTTP/" + strconv.Itoa(major) + "." + strconv.Itoa(minor)
		r.ProtoMajor, r.ProtoMinor = major, minor
		if useTLS {
			r.TLS = &tls.ConnectionState{}
		}
		ip := "192.0.2.10"
		if ipv6 {
			ip = "2001:db8::7"
		}
		r.RemoteAddr = net.JoinHostPort(ip, "40000")
		w := newRecWriter()
		h.ServeHTTP(w, r)

		if major >= 2 && malformedHeader(downstream) {
			// A field HTTP/2 and HTTP/3 forbid (fieldcheck.go): 400, and
			// nothing goes upstream.
			if rt.count() != 0 || len(w.codes) == 0 || w.codes[0] != http.StatusBadRequest {
				t.Fatalf("malformed HTTP/%d request: upstream got %d requests; responses %v", major, rt.count(), w.codes)
			}
			return
		}
		if rt.count() != 1 {
			t.Fatalf("upstream got %d requests; responses %v", rt.count(), w.codes)
		}
		if !reflect.DeepEqual(r.Header, before) {
			t.Errorf("downstream header changed:\n%q\nwas\n%q", r.Header, before)
		}

		// Upstream: the request's fields, and this proxy's own.
		up := rt.hdrs[0]
		checkHop(t, "upstream", before, up, "Via", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded")
		via := func(in http.Header, entry string) []string {
			var want []string
			if !connectionNamed(in)["Via"] {
				want = append(want, in["Via"]...)
			}
			return append(want, entry)
		}
		if want := via(before, []string{"1.0", "1.1", "2", "3"}[proto%4]+" hoplite"); !reflect.DeepEqual(up["Via"], want) {
			t.Errorf("upstream Via %q, want %q", up["Via"], want)
		}
		scheme := "http"
		if useTLS {
			scheme = "https"
		}
		forIP := ip
		if ipv6 {
			forIP = `"[` + ip + `]"`
		}
		hostValue := host
		if !validToken(host) {
			hostValue = `"` + host + `"` // ValidHostHeader admits no '"' or '\'
		}
		for k, want := range map[string]string{
			"X-Forwarded-For":   ip,
			"X-Forwarded-Proto": scheme,
			"X-Forwarded-Host":  host,
			"Forwarded":         "for=" + forIP + ";host=" + hostValue + ";proto=" + scheme,
		} {
			if got := up[k]; len(got) != 1 || got[0] != want {
				t.Errorf("upstream %s %q, want %q", k, got, want)
			}
		}

		// Downstream: the response's fields, and Via.
		if len(w.codes) != 1 || w.codes[0] != http.StatusOK {
			t.Fatalf("status %v, want 200", w.codes)
		}
		checkHop(t, "downstream", origin, w.header, "Via")
		if want := via(origin, "1.1 hoplite"); !reflect.DeepEqual(w.header["Via"], want) {
			t.Errorf("downstream Via %q, want %q", w.header["Via"], want)
		}
	})
}
