package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"hoplite/backend"
)

func TestAdmin(t *testing.T) {
	stats := map[string][]backend.ServerStats{
		"demo": {{Addr: "127.0.0.1:9080", Opened: 3, Reused: 40, Idle: 2}},
		"idle": nil,
	}
	srv := httptest.NewServer(adminHandler(func() map[string][]backend.ServerStats {
		return map[string][]backend.ServerStats{"demo": stats["demo"], "idle": nil}
	}, nil))
	defer srv.Close()

	get := func(method, path string) (int, string, string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}

	if code, _, body := get("GET", "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}

	code, ctype, body := get("GET", "/stats")
	if code != 200 || ctype != "application/json" {
		t.Fatalf("/stats: %d %s", code, ctype)
	}
	var got struct {
		Backends map[string][]backend.ServerStats `json:"backends"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string][]backend.ServerStats{"demo": stats["demo"], "idle": {}}
	if !reflect.DeepEqual(got.Backends, want) {
		t.Errorf("/stats = %+v; want %+v", got.Backends, want)
	}
	if !strings.Contains(body, `"idle": []`) || !strings.Contains(body, `"reused": 40`) {
		t.Errorf("/stats body:\n%s", body)
	}

	code, ctype, body = get("GET", "/metrics")
	if code != 200 || !strings.HasPrefix(ctype, "text/plain; version=0.0.4") ||
		!strings.Contains(body, `hoplite_upstream_requests_reused_total{backend="demo",`) {
		t.Errorf("/metrics: %d %s\n%s", code, ctype, body)
	}

	for _, c := range []struct{ method, path string }{
		{"GET", "/"}, {"GET", "/healthz/x"}, {"GET", "/metrics/x"}, {"POST", "/healthz"}, {"DELETE", "/stats"},
	} {
		if code, _, _ := get(c.method, c.path); code != 404 {
			t.Errorf("%s %s: %d; want 404", c.method, c.path, code)
		}
	}
}
