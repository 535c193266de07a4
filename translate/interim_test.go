package translate

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"testing"
)

const earlyLink = "</style.css>; rel=preload; as=style"

// interimRT sends the given 1xx responses through the request's client
// trace, as net/http's Transport and hoplite's backend do, then answers 200.
func interimRT(interim ...int) *fakeRT {
	return &fakeRT{reply: func(req *http.Request) (*http.Response, error) {
		if trace := httptrace.ContextClientTrace(req.Context()); trace != nil && trace.Got1xxResponse != nil {
			for _, code := range interim {
				h := textproto.MIMEHeader{}
				h.Set("Link", earlyLink)
				h.Set("Connection", "X-Hop")
				h.Set("X-Hop", "internal")
				h.Set("Keep-Alive", "timeout=5")
				if err := trace.Got1xxResponse(code, h); err != nil {
					return nil, err
				}
			}
		}
		return newResp(req, http.StatusOK, http.Header{"Content-Type": {"text/html"}}, "final"), nil
	}}
}

type interimSeen struct {
	code   int
	header textproto.MIMEHeader
}

// withInterimTrace records the 1xx responses a real client receives.
func withInterimTrace(req *http.Request) (*http.Request, func() []interimSeen) {
	var mu sync.Mutex
	var seen []interimSeen
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, interimSeen{code, h})
		return nil
	}}
	return req.WithContext(httptrace.WithClientTrace(req.Context(), trace)), func() []interimSeen {
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}

func TestEarlyHintsRealClients(t *testing.T) {
	runModes(t, allModes, func(t *testing.T, m mode) {
		srv, c := startProxy(t, m, newHandler(t, interimRT(http.StatusEarlyHints)))
		req, _ := http.NewRequest("GET", srv.URL+"/page", nil)
		req, seen := withInterimTrace(req)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(b) != "final" {
			t.Fatalf("final response %d %q", resp.StatusCode, b)
		}
		got := seen()
		if len(got) != 1 || got[0].code != http.StatusEarlyHints {
			t.Fatalf("client saw interim responses %v, want one 103", got)
		}
		if l := got[0].header.Get("Link"); l != earlyLink {
			t.Errorf("103 Link = %q, want %q", l, earlyLink)
		}
		for _, k := range []string{"X-Hop", "Keep-Alive", "Connection"} {
			if v := got[0].header.Get(k); v != "" {
				t.Errorf("103 carries hop-by-hop %s: %q", k, v)
			}
		}
		if l := resp.Header.Get("Link"); l != "" {
			t.Errorf("final response carries the interim Link: %q", l)
		}
		if resp.Header.Get("Content-Type") != "text/html" {
			t.Errorf("final Content-Type = %q", resp.Header.Get("Content-Type"))
		}
	})
}

// Two 103s in a row both arrive, each with its own fields only.
func TestSeveralEarlyHints(t *testing.T) {
	srv, c := startProxy(t, modeH1, newHandler(t, interimRT(103, 103)))
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	req, seen := withInterimTrace(req)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	got := seen()
	if len(got) != 2 {
		t.Fatalf("interim responses = %v, want two", got)
	}
	for i, s := range got {
		if vv := s.header.Values("Link"); len(vv) != 1 {
			t.Errorf("103 #%d Link = %q, want one value", i, vv)
		}
	}
}

// RFC 9110 §15.2: a server must not send a 1xx response to an HTTP/1.0
// client. The status line the client reads first is the final one.
func TestNoInterimForHTTP10(t *testing.T) {
	rt := interimRT(http.StatusEarlyHints)
	srv, _ := startProxy(t, modeH1, newHandler(t, rt))
	c, br := rawConn(t, srv)
	fmt.Fprint(c, "GET /page HTTP/1.0\r\nHost: a.test\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(line, "HTTP/1.0 200") && !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Errorf("first status line %q, want the final 200", line)
	}
	rest, _ := io.ReadAll(br)
	if strings.Contains(string(rest), "103") || strings.Contains(string(rest), "Link:") {
		t.Errorf("HTTP/1.0 response contains interim parts:\n%s%s", line, rest)
	}
	if rt.count() != 1 {
		t.Errorf("upstream requests = %d", rt.count())
	}
}

// Unit level: the interim fields are written with the 1xx and removed
// before the final header; fields the handler had already set survive.
func TestInterimForwardingHeaderRestore(t *testing.T) {
	w := newRecWriter()
	w.header.Set("X-Already", "1")
	var during http.Header
	hw := &headerAtWrite{recWriter: w, at: &during}
	ctx := withInterimForwarding(httptest.NewRequest("GET", "/", nil).Context(), hw)
	trace := httptrace.ContextClientTrace(ctx)
	if err := trace.Got1xxResponse(103, textproto.MIMEHeader{"Link": {earlyLink}, "Connection": {"X-A"}, "X-A": {"1"}}); err != nil {
		t.Fatal(err)
	}
	if len(w.codes) != 1 || w.codes[0] != 103 {
		t.Errorf("WriteHeader calls = %v, want [103]", w.codes)
	}
	if during.Get("Link") != earlyLink || during.Get("X-A") != "" || during.Get("Connection") != "" {
		t.Errorf("header at WriteHeader(103) = %v", during)
	}
	if w.header.Get("Link") != "" || w.header.Get("X-Already") != "1" {
		t.Errorf("header after the 1xx = %v, want only X-Already", w.header)
	}
}

type headerAtWrite struct {
	*recWriter
	at *http.Header
}

func (w *headerAtWrite) WriteHeader(code int) {
	if code < 200 && *w.at == nil {
		*w.at = w.header.Clone()
	}
	w.recWriter.WriteHeader(code)
}

// The comment on withInterimForwarding says 100 Continue is not forwarded
// ("each hop answers itself"): the origin's 100 must not reach the client.
func TestContinueNotForwarded(t *testing.T) {
	srv, c := startProxy(t, modeH1, newHandler(t, interimRT(http.StatusContinue, http.StatusEarlyHints)))
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	req, seen := withInterimTrace(req)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	for _, s := range seen() {
		if s.code == http.StatusContinue {
			t.Errorf("client got the origin's 100 Continue")
		}
	}
}
