package translate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestStatusFor(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"no route", errNoRoute, http.StatusNotFound},
		{"unsupported", errUnsupported, http.StatusNotImplemented},
		{"wrapped no route", fmt.Errorf("x: %w", errNoRoute), http.StatusNotFound},
		{"Timeout()", timeoutErr{"backend: read 10.0.0.7:80: i/o timeout"}, http.StatusGatewayTimeout},
		{"wrapped Timeout()", fmt.Errorf("backend: round trip: %w", timeoutErr{"t"}), http.StatusGatewayTimeout},
		{"url.Error over Timeout()", &url.Error{Op: "Get", URL: "http://o", Err: timeoutErr{"t"}}, http.StatusGatewayTimeout},
		{"net.OpError deadline", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, http.StatusGatewayTimeout},
		{"context.DeadlineExceeded", context.DeadlineExceeded, http.StatusGatewayTimeout},
		{"wrapped DeadlineExceeded", fmt.Errorf("backend: %w", context.DeadlineExceeded), http.StatusGatewayTimeout},
		{"Unavailable()", unavailableErr{"backend: pool full"}, http.StatusServiceUnavailable},
		{"wrapped Unavailable()", fmt.Errorf("backend: %w", unavailableErr{"u"}), http.StatusServiceUnavailable},
		{"url.Error over Unavailable()", &url.Error{Op: "Get", URL: "http://o", Err: unavailableErr{"u"}}, http.StatusServiceUnavailable},
		{"both methods false", bothFalseErr{}, http.StatusBadGateway},
		{"plain error", errors.New("backend: bad response"), http.StatusBadGateway},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, http.StatusBadGateway},
		{"unexpected EOF", io.ErrUnexpectedEOF, http.StatusBadGateway},
		{"context.Canceled", context.Canceled, http.StatusBadGateway},
		{"TooLarge()", tooLargeErr{}, http.StatusRequestEntityTooLarge},
		{"wrapped TooLarge()", fmt.Errorf("backend: buffer: %w", tooLargeErr{}), http.StatusRequestEntityTooLarge},
		{"joined unavailable", errors.Join(errors.New("a"), unavailableErr{"u"}), http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := statusFor(tt.err); got != tt.want {
				t.Errorf("statusFor(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

// The error becomes a short plain-text answer naming the status only; the
// cause, which may name internal addresses, goes to the log only.
func TestUpstreamErrorResponse(t *testing.T) {
	const secret = "10.1.2.3:8080"
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"timeout", timeoutErr{"backend: read " + secret + ": i/o timeout"}, http.StatusGatewayTimeout},
		{"unavailable", unavailableErr{"backend: " + secret + ": no capacity"}, http.StatusServiceUnavailable},
		{"deadline", fmt.Errorf("backend: dial %s: %w", secret, context.DeadlineExceeded), http.StatusGatewayTimeout},
		{"other", fmt.Errorf("backend: dial tcp %s: connection refused", secret), http.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			rt := &fakeRT{reply: func(*http.Request) (*http.Response, error) { return nil, tt.err }}
			h, err := New(Config{
				Routes:   []Route{{Backend: "b"}},
				Backends: map[string]http.RoundTripper{"b": rt},
				Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			w := newRecWriter()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
			if len(w.codes) != 1 || w.codes[0] != tt.want {
				t.Fatalf("WriteHeader calls = %v, want [%d]", w.codes, tt.want)
			}
			if want := http.StatusText(tt.want) + "\n"; w.body.String() != want {
				t.Errorf("body = %q, want %q", w.body.String(), want)
			}
			if ct := w.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			if w.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", w.header.Get("X-Content-Type-Options"))
			}
			for k, vv := range w.header {
				if strings.Contains(k+strings.Join(vv, ","), secret) {
					t.Errorf("upstream detail leaked in %s: %q", k, vv)
				}
			}
			if strings.Contains(w.body.String(), secret) {
				t.Error("upstream detail leaked in the body")
			}
			if !strings.Contains(logs.String(), secret) {
				t.Errorf("cause not logged: %q", logs.String())
			}
		})
	}
}

// Real clients get the same statuses over every protocol.
func TestUpstreamErrorRealClients(t *testing.T) {
	runModes(t, allModes, func(t *testing.T, m mode) {
		rt := &fakeRT{reply: func(*http.Request) (*http.Response, error) {
			return nil, unavailableErr{"backend: 10.0.0.1:80 overloaded"}
		}}
		srv, c := startProxy(t, m, newHandler(t, rt))
		resp, err := c.Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusServiceUnavailable || string(b) != "Service Unavailable\n" {
			t.Errorf("got %d %q", resp.StatusCode, b)
		}
	})
}

// A client that left gets nothing written: no status, no header, no body,
// whatever the upstream error.
func TestClientGoneWritesNothing(t *testing.T) {
	for _, upstreamErr := range []error{context.Canceled, timeoutErr{"t"}, errors.New("x")} {
		t.Run(fmt.Sprint(upstreamErr), func(t *testing.T) {
			rt := &fakeRT{reply: func(*http.Request) (*http.Response, error) { return nil, upstreamErr }}
			h := newHandler(t, rt)
			r := httptest.NewRequest("GET", "/", nil).WithContext(ctxCancelled())
			w := newRecWriter()
			h.ServeHTTP(w, r)
			if len(w.codes) != 0 || w.body.Len() != 0 || len(w.header) != 0 {
				t.Errorf("wrote %v %v %q to a gone client", w.codes, w.header, w.body.String())
			}
		})
	}
	t.Run("no route", func(t *testing.T) {
		h, _ := routingHandler(t, []Route{{Host: "a.test", Backend: "b"}})
		r := httptest.NewRequest("GET", "/", nil).WithContext(ctxCancelled())
		w := newRecWriter()
		h.ServeHTTP(w, r)
		if len(w.codes) != 0 || w.body.Len() != 0 {
			t.Errorf("wrote %v %q", w.codes, w.body.String())
		}
	})
}

// The client leaving while the upstream works: the upstream sees the
// cancellation through its request's context.
func TestClientGoneCancelsUpstream(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	rt := &fakeRT{reply: func(req *http.Request) (*http.Response, error) {
		cancel()
		<-req.Context().Done()
		return nil, req.Context().Err()
	}}
	h := newHandler(t, rt)
	w := newRecWriter()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil).WithContext(ctx))
	if len(w.codes) != 0 {
		t.Errorf("wrote %v", w.codes)
	}
}
