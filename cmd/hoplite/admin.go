package main

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"strings"

	"hoplite/backend"
)

// adminHandler serves the admin endpoint:
//
//	GET /healthz  "ok"
//	GET /stats    {"backends":{"NAME":[backend.ServerStats, ...]}}
//	GET /metrics  the same counters in the Prometheus text format
//	GET /debug/pprof/...  Go's runtime profiles (CPU, heap, goroutines),
//	              as Caddy's admin endpoint serves them
//
// Everything else is 404. It is plain HTTP and has no authentication, so
// it belongs on a loopback or otherwise private address.
func adminHandler(stats func() map[string][]backend.ServerStats) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/debug/pprof/") {
			servePprof(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.NotFound(w, r)
			return
		}
		switch r.URL.Path {
		case "/healthz":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.Write([]byte("ok\n"))
		case "/stats":
			m := stats()
			for name, s := range m {
				if s == nil {
					m[name] = []backend.ServerStats{} // [] rather than null
				}
			}
			body, err := json.MarshalIndent(struct {
				Backends map[string][]backend.ServerStats `json:"backends"`
			}{m}, "", "  ")
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			w.Write(append(body, '\n'))
		case "/metrics":
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			writeMetrics(w, stats())
		default:
			http.NotFound(w, r)
		}
	})
}

// servePprof routes /debug/pprof/ as net/http/pprof's own mux would,
// without registering on http.DefaultServeMux.
func servePprof(w http.ResponseWriter, r *http.Request) {
	switch strings.TrimPrefix(r.URL.Path, "/debug/pprof/") {
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		pprof.Index(w, r) // the index, and named profiles: heap, allocs, goroutine, ...
	}
}
