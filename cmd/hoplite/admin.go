package main

import (
	"encoding/json"
	"errors"
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
//	POST /reload  re-read the config file and apply it, as SIGHUP does
//	              (reload.go): 200 "reloaded", 400 with the reason the new
//	              configuration was refused, 503 while shutting down; any
//	              other method is 405. nil reload means no /reload.
//
// Everything else is 404. It is plain HTTP and has no authentication, so
// it belongs on a loopback or otherwise private address. /reload also
// refuses cross-origin browser requests (http.CrossOriginProtection), so
// that a web page cannot make a browser on the same host post to it.
func adminHandler(stats func() map[string][]backend.ServerStats, reload func() error) http.Handler {
	reloadH := http.CrossOriginProtection{}
	reloadHandler := reloadH.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "use POST to reload", http.StatusMethodNotAllowed)
			return
		}
		switch err := reload(); {
		case err == nil:
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte("reloaded\n"))
		case errors.Is(err, errStopping):
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		default:
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/debug/pprof/") {
			servePprof(w, r)
			return
		}
		if r.URL.Path == "/reload" && reload != nil {
			reloadHandler.ServeHTTP(w, r)
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
