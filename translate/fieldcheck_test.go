package translate

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestFieldCheckMalformedField(t *testing.T) {
	tests := []struct {
		name, value string
		want        bool
	}{
		{"x-ok", "value", false},
		{"x-ok", "a b\tc", false}, // inner whitespace is fine
		{"x-ok", "", false},
		{"x-ok", "caf\xc3\xa9", false}, // obs-text
		{"te", "trailers", false},
		// RFC 9113 §8.2.1: CR, LF and NUL are never valid in a value.
		{"x-cr", "a\rb", true},
		{"x-lf", "a\nb", true},
		{"x-crlf-injection", "a\r\nTransfer-Encoding: chunked", true},
		{"x-nul", "a\x00b", true},
		{"x-ctl", "a\x01b", true},
		{"x-del", "a\x7fb", true},
		// RFC 9113 §8.2.1: no leading or trailing SP or HTAB.
		{"x-lead-sp", " a", true},
		{"x-lead-tab", "\ta", true},
		{"x-trail-sp", "a ", true},
		{"x-trail-tab", "a\t", true},
		{"x-only-sp", " ", true},
		// Names: lower-case tokens, not empty.
		{"", "a", true},
		{"X-Upper", "a", true},
		{"x(bad)", "a", true},
		{"x bad", "a", true},
		{"x:bad", "a", true},
		{"x\x00bad", "a", true},
		// Connection-specific fields (ConnectionSpecific).
		{"connection", "close", true},
		{"transfer-encoding", "chunked", true},
		{"te", "gzip", true},
		{"upgrade", "websocket", true},
	}
	for _, tt := range tests {
		if got := MalformedField(tt.name, tt.value); got != tt.want {
			t.Errorf("MalformedField(%q, %q) = %v, want %v", tt.name, tt.value, got, tt.want)
		}
	}
}

// TestFieldCheckHandler: an HTTP/2 or HTTP/3 request with a malformed field
// gets 400 from the handler and never reaches the backend; the same field
// values in HTTP/1.1 (where the frontend and net/http own the syntax) and
// clean HTTP/3 requests pass.
func TestFieldCheckHandler(t *testing.T) {
	tests := []struct {
		name   string
		major  int
		header http.Header
		want   int
	}{
		{"h3 leading space", 3, http.Header{"X-A": {" v"}}, http.StatusBadRequest},
		{"h3 trailing tab", 3, http.Header{"X-A": {"v\t"}}, http.StatusBadRequest},
		{"h3 CR", 3, http.Header{"X-A": {"a\rb"}}, http.StatusBadRequest},
		{"h3 LF", 3, http.Header{"X-A": {"a\nb"}}, http.StatusBadRequest},
		{"h3 NUL", 3, http.Header{"X-A": {"a\x00b"}}, http.StatusBadRequest},
		{"h3 empty name", 3, http.Header{"": {"v"}}, http.StatusBadRequest},
		{"h3 bad name", 3, http.Header{"X A": {"v"}}, http.StatusBadRequest},
		{"h3 pseudo-header surfaced by the server", 3, http.Header{":protocol": {"websocket"}}, http.StatusOK},
		{"h2 trailing space", 2, http.Header{"X-A": {"v "}}, http.StatusBadRequest},
		{"h3 clean", 3, http.Header{"X-A": {"v w"}, "Te": {"trailers"}}, http.StatusOK},
		{"h1 is not checked here", 1, http.Header{"X-A": {"v "}}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := &fakeRT{}
			h := newHandler(t, rt)
			r, _ := http.NewRequest("GET", "https://example.com/", nil)
			r.ProtoMajor, r.ProtoMinor = tt.major, 0
			r.Header = tt.header
			w := newRecWriter()
			h.ServeHTTP(w, r)
			if len(w.codes) == 0 || w.codes[0] != tt.want {
				t.Fatalf("status %v, want %d", w.codes, tt.want)
			}
			if tt.want != http.StatusOK && rt.count() != 0 {
				t.Fatalf("the malformed request reached the backend")
			}
		})
	}
}

func BenchmarkFieldCheckRequest(b *testing.B) {
	h := http.Header{
		"Accept":          {"*/*"},
		"Accept-Encoding": {"gzip, deflate, br"},
		"User-Agent":      {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"},
		"Cookie":          {"session=0123456789abcdef0123456789abcdef; theme=dark"},
		"Te":              {"trailers"},
	}
	b.ReportAllocs()
	for range b.N {
		if malformedHeader(h) {
			b.Fatal("malformed")
		}
	}
}

// TestFieldCheckClientError: an upstream failure caused by the client's
// content (the backend says so with ClientError) is 400, not 502.
func TestFieldCheckClientError(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want int
	}{
		{clientErr{}, http.StatusBadRequest},
		{fmt.Errorf("wrapped: %w", clientErr{}), http.StatusBadRequest},
		{errors.New("backend: dial: refused"), http.StatusBadGateway},
	} {
		if got := statusFor(tt.err); got != tt.want {
			t.Errorf("statusFor(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

type clientErr struct{}

func (clientErr) Error() string     { return "backend: write: malformed chunked encoding" }
func (clientErr) ClientError() bool { return true }
