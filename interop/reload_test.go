package interop

// Restarts under load (issue 6): configuration reloads, by SIGHUP and by
// POST /reload on the admin endpoint, while HTTP/1.1, HTTP/2 and HTTP/3
// clients keep sending, then a SIGTERM drain.

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/http2"
)

// reloadOrigin is a Go HTTP/1.1 origin on loopback that names itself in
// every response, records every request ID it saw, and counts the
// connections hoplite holds open to it.
type reloadOrigin struct {
	name string
	addr string
	srv  *http.Server
	open atomic.Int64 // connections open now
	seen *sync.Map    // request ID → origin name, shared by the origins
}

func startReloadOrigin(t *testing.T, name string, seen *sync.Map) *reloadOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &reloadOrigin{name: name, addr: ln.Addr().String(), seen: seen}
	o.srv = &http.Server{
		Handler: http.HandlerFunc(o.serve),
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				o.open.Add(1)
			case http.StateClosed, http.StateHijacked:
				o.open.Add(-1)
			}
		},
		IdleTimeout: time.Minute,
	}
	go o.srv.Serve(ln)
	t.Cleanup(func() { o.srv.Close() })
	return o
}

// serve answers "origin=NAME id=ID method=M len=N sum=SHA256" after an
// optional delay (X-Delay-Ms), so that requests are in flight when a
// reload swaps the configuration.
func (o *reloadOrigin) serve(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-Req-Id")
	o.seen.Store(id, o.name)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if ms, _ := strconv.Atoi(r.Header.Get("X-Delay-Ms")); ms > 0 {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	w.Header().Set("X-Origin", o.name)
	io.WriteString(w, reloadReply(o.name, id, r.Method, body))
}

func reloadReply(origin, id, method string, body []byte) string {
	sum := sha256.Sum256(body)
	return fmt.Sprintf("origin=%s id=%s method=%s len=%d sum=%s\n", origin, id, method, len(body), hex.EncodeToString(sum[:8]))
}

// reloadResult is the outcome of one request of the load.
type reloadResult struct {
	id         string
	mode       mode
	start, end time.Time
	origin     string // from a correct response
	err        error  // transport error, or a wrong response
	transport  bool   // err is a transport error (no response at all)
}

// reloadLoad runs workers per protocol, each sending requests one after
// another (GET and POST with small bodies, a quarter of them held up at
// the origin for 50-200ms) until stopped or out of requests.
type reloadLoad struct {
	h          *instance
	clients    map[mode]*http.Client
	handshakes map[mode]*atomic.Int64
	stop       atomic.Bool
	wg         sync.WaitGroup
	mu         sync.Mutex
	results    []reloadResult
	okCount    atomic.Int64
}

func newReloadLoad(t *testing.T, h *instance, workers int) *reloadLoad {
	l := &reloadLoad{h: h, clients: map[mode]*http.Client{}, handshakes: map[mode]*atomic.Int64{}}
	for _, m := range allModes {
		n := new(atomic.Int64)
		l.handshakes[m] = n
		tc := &tls.Config{
			RootCAs: h.pki.Pool(),
			// Every full or resumed handshake is a new connection.
			VerifyConnection: func(tls.ConnectionState) error { n.Add(1); return nil },
		}
		var rt http.RoundTripper
		switch m {
		case modeH1:
			tc.NextProtos = []string{"http/1.1"}
			tr := &http.Transport{
				TLSClientConfig:    tc,
				DisableCompression: true,
				TLSNextProto:       map[string]func(string, *tls.Conn) http.RoundTripper{},
				// One keep-alive connection per worker, and never more: a
				// request waits for an idle one rather than dialing, so a
				// new handshake means that a connection was closed.
				MaxIdleConnsPerHost: workers,
				MaxConnsPerHost:     workers,
			}
			t.Cleanup(tr.CloseIdleConnections)
			rt = tr
		case modeH2:
			tr := &http2.Transport{TLSClientConfig: tc, DisableCompression: true}
			t.Cleanup(tr.CloseIdleConnections)
			rt = tr
		case modeH3:
			tr := &http3.Transport{TLSClientConfig: tc, DisableCompression: true,
				QUICConfig: &quic.Config{HandshakeIdleTimeout: 5 * time.Second}}
			t.Cleanup(func() { tr.Close() })
			rt = tr
		}
		l.clients[m] = &http.Client{Transport: rt, Timeout: 30 * time.Second}
	}
	return l
}

func (l *reloadLoad) start(workers, perWorker int, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for _, m := range allModes {
		for w := range workers {
			l.wg.Go(func() { l.worker(m, w, perWorker, deadline) })
		}
	}
}

func (l *reloadLoad) worker(m mode, w, n int, deadline time.Time) {
	rng := rand.New(rand.NewPCG(uint64(w), uint64(len(m))))
	for i := 0; i < n && !l.stop.Load() && time.Now().Before(deadline); i++ {
		r := l.one(m, fmt.Sprintf("%s-%d-%d", m, w, i), rng)
		l.mu.Lock()
		l.results = append(l.results, r)
		l.mu.Unlock()
		if r.err != nil {
			time.Sleep(20 * time.Millisecond) // refused after the drain: do not spin
		} else {
			l.okCount.Add(1)
		}
	}
}

func (l *reloadLoad) one(m mode, id string, rng *rand.Rand) reloadResult {
	method, body := http.MethodGet, []byte(nil)
	if rng.IntN(2) == 0 {
		method = http.MethodPost
		body = make([]byte, rng.IntN(2048))
		for i := range body {
			body[i] = byte('a' + rng.IntN(26))
		}
	}
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(string(body))
	}
	req, err := http.NewRequest(method, l.h.url("/reload/"+id), rd)
	if err != nil {
		panic(err)
	}
	req.Header.Set("X-Req-Id", id)
	if rng.IntN(4) == 0 {
		req.Header.Set("X-Delay-Ms", strconv.Itoa(50+rng.IntN(150)))
	}
	r := reloadResult{id: id, mode: m, start: time.Now()}
	resp, got, err := fetch(l.clients[m], req)
	r.end = time.Now()
	switch {
	case err != nil && resp == nil:
		r.err, r.transport = err, true
	case err != nil:
		r.err = err // a response header, then a broken body
	case resp.StatusCode != http.StatusOK:
		r.err = fmt.Errorf("status %d: %q", resp.StatusCode, tail(got, 200))
	case resp.Proto != m.proto():
		r.err = fmt.Errorf("protocol %s", resp.Proto)
	default:
		r.origin = resp.Header.Get("X-Origin")
		if want := reloadReply(r.origin, id, method, body); string(got) != want {
			r.err = fmt.Errorf("body %q; want %q", tail(got, 200), want)
		}
	}
	return r
}

// reloadStatsBackends returns the backend names and server addresses
// /stats reports.
func reloadStatsBackends(admin string) (map[string][]string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + admin + "/stats")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var s struct {
		Backends map[string][]struct {
			Addr string `json:"addr"`
		} `json:"backends"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for name, servers := range s.Backends {
		for _, sv := range servers {
			out[name] = append(out[name], sv.Addr)
		}
	}
	return out, nil
}

// adminPost sends POST /reload and returns the status and body.
func adminPost(admin, path string) (int, string, error) {
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Post("http://"+admin+path, "text/plain", nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// writeConfigFile replaces path's content atomically, so that a reload
// never reads half a file.
func writeConfigFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".next.yaml")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestReloadUnderLoad: 10 reloads (SIGHUP and POST /reload in turn), each
// moving the only route between backends "a" (origin A) and "b" (origin
// B), one refused bad configuration and one refused restart-only change,
// under continuous h1, h2 and h3 load; then SIGTERM. Every request gets a
// full, correct response, except requests that could not reach hoplite
// once the drain had begun; no client connection is closed by a reload
// (the TLS handshake count stays put); a request that starts after a
// reload took effect reaches the new origin; the old backend's origin
// connections are closed once its requests are done; /stats shows the
// new backend.
func TestReloadUnderLoad(t *testing.T) {
	const (
		workers   = 3 // per protocol
		perWorker = 5000
		reloads   = 10
	)
	seen := new(sync.Map)
	origins := map[string]*reloadOrigin{
		"A": startReloadOrigin(t, "A", seen),
		"B": startReloadOrigin(t, "B", seen),
	}
	confFor := func(origin string) Config {
		name := strings.ToLower(origin)
		return Config{
			HTTP3:    true,
			Routes:   []Route{{Path: "/", Backend: name}},
			Backends: map[string]Backend{name: {Servers: []string{"http://" + origins[origin].addr}}},
		}
	}
	cfg := confFor("A")
	cfg.Admin = freeAddr(t)
	h := startHoplite(t, cfg, newPKI(t))
	// The file as the harness wrote it, with another route and backend.
	render := func(origin string) string {
		c := h.cfg
		n := confFor(origin)
		c.Routes, c.Backends = n.Routes, n.Backends
		return c.YAML()
	}

	load := newReloadLoad(t, h, workers)
	load.start(workers, perWorker, 3*time.Minute)
	stopLoad := sync.OnceFunc(func() { load.stop.Store(true); load.wg.Wait() })
	defer stopLoad()
	waitFor := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %v waiting for %s", d, what)
			}
			if h.exited() {
				t.Fatalf("hoplite exited while waiting for %s: %v", what, h.err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Warm up: every worker has its connection.
	waitFor("the load to start", 30*time.Second, func() bool {
		return load.okCount.Load() >= 3*workers*5 && load.handshakes[modeH1].Load() == workers &&
			load.handshakes[modeH2].Load() == 1 && load.handshakes[modeH3].Load() == 1
	})
	handshakesBefore := map[mode]int64{}
	for _, m := range allModes {
		handshakesBefore[m] = load.handshakes[m].Load()
	}

	// effective[k] is when reload k was seen in effect; target[k] the
	// origin it routes to; begun[k] when its file was written. Index 0 is
	// the start.
	target := []string{"A"}
	effective := []time.Time{time.Now()}
	begun := []time.Time{{}}
	var closeWaits []time.Duration
	for i := range reloads {
		to := map[bool]string{true: "B", false: "A"}[i%2 == 0]
		from := target[len(target)-1]
		begun = append(begun, time.Now())
		writeConfigFile(t, h.configPath, render(to))
		how := "SIGHUP"
		if i%2 == 0 {
			if err := h.signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		} else {
			how = "POST /reload"
			code, body, err := adminPost(h.cfg.Admin, "/reload")
			if err != nil || code != http.StatusOK || body != "reloaded\n" {
				t.Fatalf("reload %d: POST /reload: %d %q %v", i+1, code, body, err)
			}
		}
		name := strings.ToLower(to)
		waitFor(fmt.Sprintf("reload %d (%s) to show in /stats", i+1, how), 10*time.Second, func() bool {
			b, err := reloadStatsBackends(h.cfg.Admin)
			return err == nil && len(b) == 1 && slices.Equal(b[name], []string{origins[to].addr})
		})
		target = append(target, to)
		effective = append(effective, time.Now())
		// The retired backend closes its origin connections once its
		// requests are done.
		t0 := time.Now()
		waitFor(fmt.Sprintf("origin %s's connections to close after reload %d", from, i+1), 10*time.Second,
			func() bool { return origins[from].open.Load() == 0 })
		closeWaits = append(closeWaits, time.Since(t0).Round(time.Millisecond))
		time.Sleep(150 * time.Millisecond) // load on the new configuration
	}
	last := target[len(target)-1]

	// A bad configuration (unknown backend) over the admin endpoint: 400
	// with the file:line: field error; then a change only a restart can
	// apply, by SIGHUP: refused in the log. Both leave `last` serving.
	bad := strings.Replace(render(last), "backend: \""+strings.ToLower(last)+"\"", "backend: \"nope\"", 1)
	writeConfigFile(t, h.configPath, bad)
	code, body, err := adminPost(h.cfg.Admin, "/reload")
	wantErr := h.configPath + ":"
	if err != nil || code != http.StatusBadRequest || !strings.Contains(body, wantErr) || !strings.Contains(body, `routes[0].backend: unknown backend "nope"`) {
		t.Errorf("bad config: POST /reload: %d %q %v; want 400 naming %s and routes[0].backend", code, body, err, wantErr)
	}
	if code, _, _ := func() (int, string, error) {
		resp, err := http.Get("http://" + h.cfg.Admin + "/reload")
		if err != nil {
			return 0, "", err
		}
		resp.Body.Close()
		return resp.StatusCode, "", nil
	}(); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /reload: %d; want 405", code)
	}
	other := h.cfg
	other.Listen = freeAddr(t)
	n := confFor(last)
	other.Routes, other.Backends = n.Routes, n.Backends
	writeConfigFile(t, h.configPath, other.YAML())
	if err := h.signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("the refused restart-only change in the log", 10*time.Second, func() bool {
		return strings.Contains(h.log(1<<20), "listen: changed from")
	})
	if lg := h.log(1 << 20); !strings.Contains(lg, `level=ERROR msg="reload refused; the running configuration stays" trigger=SIGHUP err="config: `+h.configPath+`:1: listen: changed from \"`+h.addr+`\" to \"`+other.Listen+`\": needs a restart`) {
		t.Errorf("restart-only change: log lacks the refusal naming listen:\n%s", tail([]byte(lg), 4096))
	}
	writeConfigFile(t, h.configPath, render(last))
	time.Sleep(300 * time.Millisecond) // still serving after the refusals
	if b, err := reloadStatsBackends(h.cfg.Admin); err != nil || !slices.Equal(b[strings.ToLower(last)], []string{origins[last].addr}) {
		t.Errorf("/stats after refused reloads: %v %v", b, err)
	}

	handshakesAfter := map[mode]int64{}
	for _, m := range allModes {
		handshakesAfter[m] = load.handshakes[m].Load()
	}

	// A renewed certificate: new files at the same paths, by a CA only a
	// fresh client trusts. After a reload, new handshakes (h1 and h3) get
	// it; the load's connections, established before, go on undisturbed.
	pki2 := newPKI(t)
	for _, f := range [][2]string{{pki2.CertFile, h.cfg.CertFile}, {pki2.KeyFile, h.cfg.KeyFile}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		writeConfigFile(t, f[1], string(b))
	}
	if code, body, err := adminPost(h.cfg.Admin, "/reload"); err != nil || code != http.StatusOK {
		t.Fatalf("reload after certificate renewal: %d %q %v", code, body, err)
	}
	fresh := *h
	fresh.pki = pki2
	for _, m := range []mode{modeH1, modeH3} {
		if code, body, err := doGet(fresh.client(t, m, nil), h.url("/renewed")); err != nil || code != http.StatusOK {
			t.Errorf("%s: new handshake after the certificate renewal: %d %q %v", m, code, body, err)
		}
	}

	// Drain.
	sigterm := time.Now()
	if err := h.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exitErr, exited := h.wait(40 * time.Second)
	drained := time.Since(sigterm)
	time.Sleep(200 * time.Millisecond) // requests after the exit: refused
	stopLoad()
	if !exited {
		t.Fatalf("hoplite did not exit within 40s of SIGTERM")
	}
	if exitErr != nil {
		t.Errorf("hoplite exited with %v after SIGTERM; want 0", exitErr)
	}

	// The verdict, request by request.
	type tally struct {
		ok, refused   int
		perOrigin     map[string]int
		refusedErrors map[string]int
	}
	tallies := map[mode]*tally{}
	for _, m := range allModes {
		tallies[m] = &tally{perOrigin: map[string]int{}, refusedErrors: map[string]int{}}
	}
	var lost, wrong, misrouted, spanning, drainedOK int
	report := func(format string, args ...any) {
		if lost+wrong+misrouted < 20 {
			t.Errorf(format, args...)
		}
	}
	for _, r := range load.results {
		tl := tallies[r.mode]
		if r.err != nil {
			_, reached := seen.Load(r.id)
			switch {
			case !r.transport:
				wrong++
				report("%s: wrong response: %v", r.id, r.err)
			case reached:
				lost++
				report("%s: the origin got it, the client got no response (started %v after start, failed %v after SIGTERM): %v",
					r.id, r.start.Sub(effective[0]).Round(time.Millisecond), r.end.Sub(sigterm).Round(time.Millisecond), r.err)
			case r.end.Before(sigterm):
				lost++
				report("%s: failed before SIGTERM: %v", r.id, r.err)
			default:
				tl.refused++
				tl.refusedErrors[errorKind(r.err)]++
			}
			continue
		}
		tl.ok++
		tl.perOrigin[r.origin]++
		if r.start.Before(sigterm) && r.end.After(sigterm) {
			drainedOK++
		}
		// A request that started after reload k took effect and ended
		// before reload k+1 began must have gone to k's origin.
		for k := range effective {
			next := time.Time{}
			if k+1 < len(begun) {
				next = begun[k+1]
			} else {
				next = sigterm
			}
			if r.start.After(effective[k]) && r.end.Before(next) && r.origin != target[k] {
				misrouted++
				report("%s: started %v after reload %d took effect (to %s), answered by %s",
					r.id, r.start.Sub(effective[k]).Round(time.Millisecond), k, target[k], r.origin)
			}
			if k > 0 && r.start.Before(begun[k]) && r.end.After(effective[k]) {
				spanning++
			}
		}
	}
	total := 0
	for _, m := range allModes {
		tl := tallies[m]
		total += tl.ok + tl.refused
		t.Logf("%s: %d requests: %d correct (origin A %d, B %d), %d refused after SIGTERM %v; TLS handshakes: %d before the reloads, %d after",
			m, tl.ok+tl.refused, tl.ok, tl.perOrigin["A"], tl.perOrigin["B"], tl.refused, tl.refusedErrors,
			handshakesBefore[m], handshakesAfter[m])
		if handshakesAfter[m] != handshakesBefore[m] {
			t.Errorf("%s: %d TLS handshakes during the reloads: client connections were closed", m, handshakesAfter[m]-handshakesBefore[m])
		}
		if tl.perOrigin["A"] == 0 || tl.perOrigin["B"] == 0 {
			t.Errorf("%s: the load did not reach both origins: %v", m, tl.perOrigin)
		}
	}
	t.Logf("%d requests; %d lost, %d wrong, %d misrouted; %d spanned a reload (in flight while it took effect); old origin connections closed %v after each reload; drain took %v, %d requests in flight at SIGTERM completed",
		total, lost, wrong, misrouted, spanning, closeWaits, drained.Round(time.Millisecond), drainedOK)
	if spanning == 0 {
		t.Error("no request was in flight across a reload: the test did not exercise that")
	}
	if drainedOK == 0 {
		t.Error("no request was in flight at SIGTERM: the test did not exercise the drain")
	}
	lg := h.log(1 << 20)
	if n := strings.Count(lg, `msg="configuration reloaded"`); n != reloads+1 {
		t.Errorf("log reports %d reloads; want %d", n, reloads+1)
	}
	if n := strings.Count(lg, `msg="previous configuration closed"`); n != reloads+1 {
		t.Errorf("log reports %d retired configurations closed; want %d", n, reloads+1)
	}
}

// errorKind shortens a transport error for the tally of refusals.
func errorKind(err error) string {
	var qerr *quic.TransportError
	var aerr *quic.ApplicationError
	var herr *http3.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &herr):
		return "h3 " + herr.ErrorCode.String()
	case errors.As(err, &aerr):
		return fmt.Sprintf("quic application error %#x", uint64(aerr.ErrorCode))
	case errors.As(err, &qerr):
		return "quic " + qerr.ErrorCode.String()
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}
