package interop

// The key upstream test: zero failed client requests when clients come
// back at random intervals around the origin's idle timeout, for a full
// minute. Every request that lands just after the origin closed an idle
// connection is a request a naive pool loses: a GET it may retry, a POST
// it must not (RFC 9110 §9.2.2). hoplite avoids the race instead of
// retrying out of it: it stops reusing a connection before the origin's
// idle timeout, announced ("Keep-Alive: timeout=N") or learned from the
// closes it saw (backend/pool.go), less hint_margin.

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHopIdleTimeoutZeroFailures(t *testing.T) {
	const (
		idle     = 2 * time.Second // the origin's idle timeout, N
		duration = 60 * time.Second
		// Each client sleeps uniformly in [idle-1s, idle+1s] between
		// requests.
		minSleep = idle - time.Second
		maxSleep = idle + time.Second
	)
	// Four clients: every protocol, and HTTP/1.1 twice.
	clients := []mode{modeH1, modeH2, modeH3, modeH1}
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)

	for _, tc := range []struct {
		name   string
		script originScript
	}{
		// The origin announces its timeout: hoplite stops reusing at
		// N less min(hint_margin, N/4): 1.5s for timeout=2.
		{"keep-alive-hint", originScript{idleTimeout: idle, keepAlive: "timeout=2"}},
		// The origin says nothing: hoplite's default backend
		// configuration (no idle or margin settings) must learn N from the
		// closes it sees on idle connections.
		{"no-hint-default-config", originScript{idleTimeout: idle}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := startScriptedOrigin(t, tc.script)
			// One backend per client, all on the same origin: a pool
			// shared by four clients would hardly ever sit idle for a
			// client's whole sleep (another client's request comes first),
			// and the test would not straddle N at all. With its own pool,
			// each client's upstream connection idles exactly as long as
			// the client sleeps.
			cfg := Config{HTTP3: true, Admin: freeAddr(t), Backends: map[string]Backend{}}
			for i := range clients {
				name := fmt.Sprintf("c%d", i)
				cfg.Routes = append(cfg.Routes, Route{Path: "/" + name + "/", Backend: name})
				cfg.Backends[name] = Backend{Servers: []string{"http://" + o.addr()}}
			}
			h := startHoplite(t, cfg, newPKI(t))

			type result struct {
				ok, failed   int
				gets, posts  int
				firstFailure []string
			}
			results := make([]result, len(clients))
			deadline := time.Now().Add(duration)
			start := time.Now()
			var wg sync.WaitGroup
			for i, m := range clients {
				c := h.client(t, m, nil)
				rng := rand.New(rand.NewPCG(seed, uint64(i)+uint64(len(tc.name))<<8))
				r := &results[i]
				wg.Go(func() {
					for n := 0; n < 200 && time.Now().Before(deadline); n++ {
						method := []string{http.MethodGet, http.MethodPost}[(n+i)%2]
						target := fmt.Sprintf("/c%d/%s/%d", i, m, n)
						payload := ""
						var code int
						var body string
						var err error
						sent := time.Now()
						if method == http.MethodPost {
							r.posts++
							payload = fmt.Sprintf("client %d (%s) request %d: %016x", i, m, n, rng.Uint64())
							code, body, err = doPost(c, h.url(target), payload)
						} else {
							r.gets++
							code, body, err = doGet(c, h.url(target))
						}
						want := fmt.Sprintf(" %s %s payload=%q\n", method, target, payload)
						if err == nil && code == http.StatusOK && strings.HasPrefix(body, "conn=") && strings.HasSuffix(body, want) {
							r.ok++
						} else {
							r.failed++
							if len(r.firstFailure) < 10 {
								r.firstFailure = append(r.firstFailure, fmt.Sprintf("t=%v %s %s over %s: status %d, error %v, body %q",
									sent.Sub(start).Round(time.Millisecond), method, target, m, code, err, tail([]byte(body), 300)))
							}
						}
						sleep := minSleep + time.Duration(rng.Int64N(int64(maxSleep-minSleep)))
						if time.Now().Add(sleep).After(deadline) {
							return
						}
						time.Sleep(sleep)
					}
				})
			}
			wg.Wait()

			total, failed, gets, posts := 0, 0, 0, 0
			for i, r := range results {
				total += r.ok + r.failed
				failed += r.failed
				gets += r.gets
				posts += r.posts
				t.Logf("client %d (%s): %d ok, %d failed (%d GET, %d POST)", i, clients[i], r.ok, r.failed, r.gets, r.posts)
				for _, f := range r.firstFailure {
					t.Errorf("client %d: failed request: %s", i, f)
				}
			}
			var s serverStats // the sum over the clients' pools
			for i := range clients {
				p := h.serverStats(t, fmt.Sprintf("c%d", i))
				t.Logf("%s: client %d's pool: %v", tc.name, i, p)
				s.Opened += p.Opened
				s.Reused += p.Reused
				s.Retried += p.Retried
				s.Failed += p.Failed
				s.Retired.IdleTimeout += p.Retired.IdleTimeout
				s.Retired.OriginHint += p.Retired.OriginHint
				s.Retired.LearnedTimeout += p.Retired.LearnedTimeout
				s.Retired.MaxRequests += p.Retired.MaxRequests
				s.Retired.MaxLifetime += p.Retired.MaxLifetime
				s.Retired.OriginClose += p.Retired.OriginClose
				s.Retired.Error += p.Retired.Error
				s.Retired.ExcessIdle += p.Retired.ExcessIdle
				s.Retired.Shutdown += p.Retired.Shutdown
				if tc.name == "no-hint-default-config" && (p.LearnedIdleTimeout < 1.9 || p.LearnedIdleTimeout > 2.5) {
					t.Errorf("client %d's pool: learned_idle_timeout %.3fs, want 1.9s to 2.5s (N=2s, seen within the 250ms sweep)", i, p.LearnedIdleTimeout)
				}
				s.LearnedIdleTimeout = max(s.LearnedIdleTimeout, p.LearnedIdleTimeout)
			}
			t.Logf("%s: %d requests (%d GET, %d POST) over %v, %d failed", tc.name, total, gets, posts, time.Since(start).Round(time.Second), failed)
			t.Logf("%s: pools together: opened=%d reused=%d retried=%d failed=%d learned_idle_timeout=%.3fs (the largest)", tc.name, s.Opened, s.Reused, s.Retried, s.Failed, s.LearnedIdleTimeout)
			r := s.Retired
			t.Logf("%s: retired: idle_timeout=%d origin_hint=%d learned_timeout=%d max_requests=%d max_lifetime=%d origin_close=%d error=%d excess_idle=%d shutdown=%d",
				tc.name, r.IdleTimeout, r.OriginHint, r.LearnedTimeout, r.MaxRequests, r.MaxLifetime, r.OriginClose, r.Error, r.ExcessIdle, r.Shutdown)
			t.Logf("%s: origin: %d connections, %d requests answered, %d closed by its idle timeout (%d of them with a request arriving), %d closed by hoplite",
				tc.name, o.accepted.Load(), o.requests.Load(), o.idleCloses.Load(), o.partialAtClose.Load(), o.peerCloses.Load())

			if failed > 0 || s.Failed > 0 {
				t.Errorf("%d of %d client requests failed (pool failed=%d); want 0", failed, total, s.Failed)
			}
			// About 4 clients × 60s / 2s; far fewer means the clients
			// stalled and the test proved little.
			if total < 60 {
				t.Errorf("only %d requests in %v", total, duration)
			}
			if p := o.problems(); len(p) > 0 {
				t.Errorf("the origin saw malformed requests: %q", p)
			}
			switch tc.name {
			case "keep-alive-hint":
				// Every idle connection goes at 1.5s by the hint; the
				// origin never has to close one.
				if r.OriginHint == 0 {
					t.Errorf("no connection retired by the origin's Keep-Alive hint")
				}
			case "no-hint-default-config":
				if r.LearnedTimeout == 0 {
					t.Errorf("no connection retired by the learned idle timeout")
				}
			}
		})
	}
}
