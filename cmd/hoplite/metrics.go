package main

import (
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"

	"hoplite/backend"
)

// writeMetrics writes the upstream pool counters in the Prometheus text
// exposition format (version 0.0.4). A dozen series do not need the
// client library and its dependencies.
func writeMetrics(w io.Writer, stats map[string][]backend.ServerStats) {
	names := slices.Sorted(maps.Keys(stats))
	family := func(name, help, kind string, sample func(labels string, s backend.ServerStats)) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
		for _, b := range names {
			for _, s := range stats[b] {
				sample("backend="+quote(b)+",server="+quote(s.Addr), s)
			}
		}
	}
	counter := func(name, help string, v func(backend.ServerStats) uint64) {
		family(name, help, "counter", func(l string, s backend.ServerStats) {
			fmt.Fprintf(w, "%s{%s} %d\n", name, l, v(s))
		})
	}
	counter("hoplite_upstream_connections_opened_total", "Upstream connections dialed.",
		func(s backend.ServerStats) uint64 { return s.Opened })
	counter("hoplite_upstream_requests_reused_total", "Requests sent on a pooled connection.",
		func(s backend.ServerStats) uint64 { return s.Reused })
	counter("hoplite_upstream_requests_retried_total", "Requests retried on a fresh connection.",
		func(s backend.ServerStats) uint64 { return s.Retried })
	counter("hoplite_upstream_requests_failed_total", "Requests that got no response.",
		func(s backend.ServerStats) uint64 { return s.Failed })
	// One series per retirement reason, named as in the JSON of /stats.
	family("hoplite_upstream_connections_retired_total", "Upstream connections closed, by reason.", "counter",
		func(l string, s backend.ServerStats) {
			v := reflect.ValueOf(s.Retired)
			for i := range v.NumField() {
				reason, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
				fmt.Fprintf(w, "hoplite_upstream_connections_retired_total{%s,reason=%s} %d\n", l, quote(reason), v.Field(i).Uint())
			}
		})
	family("hoplite_upstream_connections", "Open upstream connections by state.", "gauge",
		func(l string, s backend.ServerStats) {
			fmt.Fprintf(w, "hoplite_upstream_connections{%s,state=\"idle\"} %d\n", l, s.Idle)
			fmt.Fprintf(w, "hoplite_upstream_connections{%s,state=\"busy\"} %d\n", l, s.Busy)
		})
	counter("hoplite_upstream_marked_down_total", "Times the server was marked down by health checks or passive failures.",
		func(s backend.ServerStats) uint64 { return s.MarkedDown })
	family("hoplite_upstream_healthy", "1 if requests may go to the server, 0 if it is marked down.", "gauge",
		func(l string, s backend.ServerStats) {
			v := 0
			if s.Healthy {
				v = 1
			}
			fmt.Fprintf(w, "hoplite_upstream_healthy{%s} %d\n", l, v)
		})
	family("hoplite_upstream_learned_idle_timeout_seconds", "Origin idle timeout learned from its closes; 0 if unknown.", "gauge",
		func(l string, s backend.ServerStats) {
			fmt.Fprintf(w, "hoplite_upstream_learned_idle_timeout_seconds{%s} %g\n", l, s.LearnedIdleTimeout)
		})
}

// quote writes a label value: backslash, double quote and newline escaped.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}
