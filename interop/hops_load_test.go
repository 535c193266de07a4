package interop

// Origin connections under load: a persistent origin needs exactly one
// connection for sequential requests, and no more than the peak
// concurrency under multiplexed HTTP/2 load. The anchors this guards
// against: Caddy's default upstream pool opens ~24,000 origin connections
// and nginx ~23,000 for 50,000 requests in this setup (ARCHITECTURE.md).

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestHopOriginConnsSequential: 1,000 sequential requests from one client
// to a keep-alive origin (nginx, no request limit, 75s idle timeout) use
// exactly one origin connection.
func TestHopOriginConnsSequential(t *testing.T) {
	origin := startNginx(t, "75s", 1000000, false)
	h := startHoplite(t, statsConfig(t, origin), newPKI(t))
	c := h.client(t, modeH2, nil)
	for i := range 1000 {
		code, body, err := doGet(c, h.url(fmt.Sprintf("/seq/%d", i)))
		if err != nil || code != 200 || body != nginxBody {
			t.Fatalf("request %d: status %d, body %q, error %v", i+1, code, body, err)
		}
	}
	s := h.serverStats(t, "app")
	t.Logf("1000 sequential requests: %v", s)
	if s.Opened != 1 || s.Reused != 999 {
		t.Errorf("opened=%d reused=%d, want 1 and 999", s.Opened, s.Reused)
	}
}

// TestHopOriginConnsH2Load: h2load with 32 clients × 10 concurrent streams
// (320 requests in flight at most). hoplite may need up to 320 origin
// connections at the peak, and must never need more: a connection is
// reused as soon as a response ends, not closed and replaced.
//
// Two runs: hoplite's default backend configuration, and the same with
// max_idle_per_server raised to the peak concurrency, which tells a churn
// caused by the idle cap (retired.excess_idle) from any other.
//
// The binary is the one under test, race-enabled under -race. Measured on
// 2 cores under the race detector at 3,000 to 4,000 requests/s, 20,000
// requests take 5 to 7s: less than a second, non-race build of
// cmd/hoplite would cost (about 40s with a cold build cache), and this
// heaviest concurrency of the suite is where the race detector earns its
// keep.
func TestHopOriginConnsH2Load(t *testing.T) {
	h2load := needTool(t, "h2load")
	const (
		clients = 32
		streams = 10
		total   = 20000
		peak    = clients * streams
	)
	for _, tc := range []struct {
		name    string
		maxIdle int // backends.NAME.max_idle_per_server; 0: the default
	}{
		{"default-config", 0},
		{"max-idle-per-server-320", peak},
	} {
		t.Run(tc.name, func(t *testing.T) {
			origin := startNginx(t, "75s", 1000000, false)
			cfg := statsConfig(t, origin)
			be := cfg.Backends["app"]
			be.MaxIdlePerServer = tc.maxIdle
			cfg.Backends["app"] = be
			h := startHoplite(t, cfg, newPKI(t))
			r := execTool(t, 3*time.Minute, "", h2load, "-c", strconv.Itoa(clients), "-m", strconv.Itoa(streams),
				"-n", strconv.Itoa(total), h.url("/load"))
			out := string(r.stdout)
			if r.code != 0 {
				t.Fatalf("h2load failed: %v", r)
			}
			reqs := regexp.MustCompile(`requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`).FindStringSubmatch(out)
			codes := regexp.MustCompile(`status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`).FindStringSubmatch(out)
			finished := regexp.MustCompile(`finished in ([^,]+), ([\d.]+) req/s`).FindStringSubmatch(out)
			if reqs == nil || codes == nil {
				t.Fatalf("cannot read h2load's summary:\n%s", r)
			}
			want := strconv.Itoa(total)
			if reqs[4] != want || reqs[5] != "0" || reqs[6] != "0" || reqs[7] != "0" || codes[1] != want {
				t.Errorf("h2load: %s; %s; want %d succeeded, 0 failed/errored/timeout, all 2xx", reqs[0], codes[0], total)
			}
			s := h.serverStats(t, "app")
			if finished != nil {
				t.Logf("h2load -c %d -m %d -n %d: %s; %s; finished in %s, %s req/s", clients, streams, total, reqs[0], codes[0], finished[1], finished[2])
			}
			t.Logf("origin pool after h2load (%s): %v", tc.name, s)
			if s.Opened > peak {
				t.Errorf("hoplite opened %d origin connections for %d requests with at most %d in flight; want at most %d (retired as excess_idle: %d)",
					s.Opened, total, peak, peak, s.Retired.ExcessIdle)
			}
			if s.Failed != 0 {
				t.Errorf("pool failed=%d, want 0", s.Failed)
			}
			if t.Failed() {
				t.Logf("h2load output:\n%s", out)
			}
		})
	}
}
