package interop

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// hangingOrigin accepts connections, reads whatever arrives and never
// answers. It returns its address.
func hangingOrigin(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 10000 {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(io.Discard, c) // until the proxy or the cleanup closes it
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// TestUpstreamFailures checks the statuses the real binary answers when
// the origin cannot be reached (502, as soon as the connection is refused,
// well within connect_timeout) and when it accepts but never answers (504
// once response_timeout has passed), over every client protocol.
func TestUpstreamFailures(t *testing.T) {
	// A port nobody listens on: take one and close it.
	dead := freeAddr(t)
	const (
		connectTimeout  = 2 * time.Second
		responseTimeout = 1 * time.Second
	)
	cfg := Config{
		HTTP3: true,
		Routes: []Route{
			{Path: "/unreachable/", Backend: "dead"},
			{Path: "/hang/", Backend: "hang"},
		},
		Backends: map[string]Backend{
			"dead": {Servers: []string{"http://" + dead}, ConnectTimeout: connectTimeout, ResponseTimeout: responseTimeout},
			"hang": {Servers: []string{"http://" + hangingOrigin(t)}, ConnectTimeout: connectTimeout, ResponseTimeout: responseTimeout},
		},
	}
	h := startHoplite(t, cfg, newPKI(t))

	runModes(t, allModes, func(t *testing.T, m mode) {
		c := h.client(t, m, nil)
		t.Run("unreachable-502", func(t *testing.T) {
			start := time.Now()
			resp, body := mustGet(t, c, h.url("/unreachable/x"))
			elapsed := time.Since(start)
			if resp.StatusCode != http.StatusBadGateway {
				t.Errorf("status %d, want 502; body %q", resp.StatusCode, body)
			}
			if elapsed >= connectTimeout {
				t.Errorf("502 took %v; a refused connection must fail at once, not after connect_timeout %v", elapsed, connectTimeout)
			}
		})
		t.Run("no-answer-504", func(t *testing.T) {
			start := time.Now()
			resp, body := mustGet(t, c, h.url("/hang/x"))
			elapsed := time.Since(start)
			if resp.StatusCode != http.StatusGatewayTimeout {
				t.Errorf("status %d, want 504; body %q", resp.StatusCode, body)
			}
			if elapsed < responseTimeout-50*time.Millisecond || elapsed > responseTimeout+3*time.Second {
				t.Errorf("504 after %v, want it after about response_timeout %v", elapsed, responseTimeout)
			}
		})
	})
}

// TestValidate runs `hoplite validate` on a good config and on broken
// ones: each broken one must exit non-zero with a message naming the file
// and the line of the mistake.
func TestValidate(t *testing.T) {
	bin := binary(t)
	for _, tc := range []struct {
		name   string
		config string
		line   int // 0: the config is valid
	}{
		{
			name: "valid",
			config: `listen: "127.0.0.1:8443"
routes:
  - path: "/"
    backend: app
backends:
  app:
    servers: ["http://127.0.0.1:9080"]
`,
		},
		{
			name: "yaml-syntax-tab-indent",
			config: `listen: "127.0.0.1:8443"
routes:
  - path: "/"
` + "\tbackend: app\n" + `backends:
  app:
    servers: ["http://127.0.0.1:9080"]
`,
			line: 4,
		},
		{
			name: "unknown-key",
			config: `listen: "127.0.0.1:8443"
routes:
  - path: "/"
    backend: app
backends:
  app:
    servers: ["http://127.0.0.1:9080"]
    conect_timeout: 5s
`,
			line: 8,
		},
		{
			name: "route-to-unknown-backend",
			config: `listen: "127.0.0.1:8443"
routes:
  - path: "/"
    backend: nosuch
backends:
  app:
    servers: ["http://127.0.0.1:9080"]
`,
			line: 4,
		},
		{
			name: "bad-duration",
			config: `listen: "127.0.0.1:8443"
routes:
  - path: "/"
    backend: app
backends:
  app:
    servers: ["http://127.0.0.1:9080"]
    response_timeout: soon
`,
			line: 8,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "hoplite-"+tc.name+".yaml")
			if err := os.WriteFile(path, []byte(tc.config), 0o644); err != nil {
				t.Fatal(err)
			}
			r := execTool(t, 30*time.Second, "", bin, "validate", "--config", path)
			msg := string(r.stdout) + string(r.stderr)
			if tc.line == 0 {
				if r.code != 0 {
					t.Fatalf("a valid config was rejected: %v", r)
				}
				return
			}
			if r.code <= 0 {
				t.Fatalf("validate accepted a config broken on line %d: %v", tc.line, r)
			}
			if !strings.Contains(msg, filepath.Base(path)) {
				t.Errorf("message does not name the file %s:\n%s", path, msg)
			}
			lineRE := regexp.MustCompile(fmt.Sprintf(`(?i)(%s:%d\b|\bline %d\b)`, regexp.QuoteMeta(filepath.Base(path)), tc.line, tc.line))
			if !lineRE.MatchString(msg) {
				t.Errorf("message does not name line %d (as FILE:%d or \"line %d\"):\n%s", tc.line, tc.line, tc.line, msg)
			}
		})
	}
}

// adminStats is the admin endpoint's GET /stats.
type adminStats struct {
	Backends map[string][]struct {
		Addr   string `json:"addr"`
		Opened uint64 `json:"opened"`
		Reused uint64 `json:"reused"`
		Busy   int    `json:"busy"`
	} `json:"backends"`
}

func (h *instance) stats() (*adminStats, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + h.cfg.Admin + "/stats")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("admin /stats: status %d: %s", resp.StatusCode, body)
	}
	var s adminStats
	if err := json.Unmarshal(body, &s); err != nil {
		return nil, fmt.Errorf("admin /stats: %v: %s", err, body)
	}
	return &s, nil
}

// TestSIGTERMDrain sends SIGTERM while one slow request per client
// protocol is in flight: every one must complete normally, and hoplite
// must then exit with status 0.
func TestSIGTERMDrain(t *testing.T) {
	origin := startEchoOrigin(t)
	cfg := singleBackend(origin)
	cfg.Admin = freeAddr(t)
	h := startHoplite(t, cfg, newPKI(t))

	// Long enough for three connections (one a QUIC handshake) to reach
	// the origin on a loaded machine under the race detector.
	const delay = 4 * time.Second
	type outcome struct {
		resp *http.Response
		body []byte
		err  error
	}
	outcomes := map[mode]*outcome{}
	var wg sync.WaitGroup
	for _, m := range allModes {
		c := h.client(t, m, nil)
		o := &outcome{}
		outcomes[m] = o
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequest(http.MethodGet, h.url(fmt.Sprintf("/drain/%s?delay=%s", m, delay)), nil)
			if err != nil {
				o.err = err
				return
			}
			o.resp, o.body, o.err = fetch(c, req)
		}()
	}

	// Wait until all three requests are at the origin (the pool shows
	// them busy), so SIGTERM surely lands while they are in flight.
	inFlight := func() (int, error) {
		s, err := h.stats()
		if err != nil {
			return 0, err
		}
		n := 0
		for _, srv := range s.Backends["app"] {
			n += srv.Busy
		}
		return n, nil
	}
	deadline := time.Now().Add(delay * 3 / 4)
	busy, err := 0, error(nil)
	for i := 0; i < 300 && time.Now().Before(deadline); i++ {
		if busy, err = inFlight(); err == nil && busy >= len(allModes) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if busy < len(allModes) {
		wg.Wait()
		t.Fatalf("the admin endpoint never showed %d requests in flight (last: %d busy, err %v)", len(allModes), busy, err)
	}

	sent := time.Now()
	if err := h.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for _, m := range allModes {
		o := outcomes[m]
		if o.err != nil {
			t.Errorf("%s: the in-flight request failed after SIGTERM: %v", m, o.err)
			continue
		}
		if o.resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d after SIGTERM, want 200; body %q", m, o.resp.StatusCode, o.body)
			continue
		}
		e, err := parseEcho(o.body)
		if err != nil {
			t.Errorf("%s: %v", m, err)
			continue
		}
		if want := fmt.Sprintf("/drain/%s?delay=%s", m, delay); e.URI != want {
			t.Errorf("%s: origin answered %q, want %q", m, e.URI, want)
		}
		// Drain tells HTTP/1.1 clients the connection ends (RFC 9112 §9.6).
		if m == modeH1 && !o.resp.Close {
			t.Errorf("h1: the response completed during drain lacks Connection: close")
		}
	}
	err, exited := h.wait(20 * time.Second)
	if !exited {
		t.Fatalf("hoplite still running 20s after SIGTERM (sent %v ago)", time.Since(sent).Round(time.Millisecond))
	}
	if err != nil {
		t.Errorf("hoplite exited with %v after SIGTERM, want status 0", err)
	}
}
