package main

import (
	"strings"
	"testing"

	"hoplite/backend"
)

func TestWriteMetrics(t *testing.T) {
	s := backend.ServerStats{Addr: "10.0.0.1:80", Opened: 3, Reused: 97, Retried: 1, Failed: 2, Idle: 2, Busy: 1, LearnedIdleTimeout: 4.75, Healthy: true, MarkedDown: 7}
	s.Retired.OriginHint = 5
	s.Retired.Learned = 6
	var b strings.Builder
	writeMetrics(&b, map[string][]backend.ServerStats{`we"ird`: {s}, "b": {{Addr: "10.0.0.2:80"}}})
	out := b.String()
	for _, want := range []string{
		`# TYPE hoplite_upstream_connections_opened_total counter`,
		`hoplite_upstream_connections_opened_total{backend="we\"ird",server="10.0.0.1:80"} 3`,
		`hoplite_upstream_requests_reused_total{backend="we\"ird",server="10.0.0.1:80"} 97`,
		`hoplite_upstream_requests_retried_total{backend="we\"ird",server="10.0.0.1:80"} 1`,
		`hoplite_upstream_requests_failed_total{backend="we\"ird",server="10.0.0.1:80"} 2`,
		`hoplite_upstream_connections_retired_total{backend="we\"ird",server="10.0.0.1:80",reason="origin_hint"} 5`,
		`hoplite_upstream_connections_retired_total{backend="we\"ird",server="10.0.0.1:80",reason="learned_timeout"} 6`,
		`hoplite_upstream_connections_retired_total{backend="we\"ird",server="10.0.0.1:80",reason="idle_timeout"} 0`,
		`hoplite_upstream_connections{backend="we\"ird",server="10.0.0.1:80",state="idle"} 2`,
		`hoplite_upstream_connections{backend="we\"ird",server="10.0.0.1:80",state="busy"} 1`,
		`hoplite_upstream_learned_idle_timeout_seconds{backend="we\"ird",server="10.0.0.1:80"} 4.75`,
		`# TYPE hoplite_upstream_marked_down_total counter`,
		`hoplite_upstream_marked_down_total{backend="we\"ird",server="10.0.0.1:80"} 7`,
		`# TYPE hoplite_upstream_healthy gauge`,
		`hoplite_upstream_healthy{backend="we\"ird",server="10.0.0.1:80"} 1`,
		`hoplite_upstream_healthy{backend="b",server="10.0.0.2:80"} 0`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %s\nin\n%s", want, out)
		}
	}
}
