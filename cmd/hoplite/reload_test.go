package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hoplite/backend"
)

const reloadBase = `listen: "127.0.0.1:8443"
plain_listen: "127.0.0.1:8080"
admin: "127.0.0.1:2019"
data_dir: "/srv/hoplite"
downstream:
  idle_timeout: 2m
routes:
  - path: /
    backend: a
backends:
  a:
    servers: ["127.0.0.1:9001"]
`

// TestReloadRestartNeeded pins what a reload refuses, and the error text:
// file, line of the new file, field, and "needs a restart".
func TestReloadRestartNeeded(t *testing.T) {
	old, err := parseConfig("hoplite.yaml", []byte(reloadBase))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(string) string
		want []string // lines of the error, in order; none: reloadable
	}{
		{"same", func(s string) string { return s }, nil},
		{"routes and backends", func(s string) string {
			return strings.Replace(s, "routes:\n  - path: /\n    backend: a\n", "routes:\n  - path: /\n    backend: b\n  - path: /api/\n    backend: a\n", 1) +
				"  b:\n    servers: [\"127.0.0.1:9002\", \"127.0.0.1:9003\"]\n    max_idle_per_server: 8\n"
		}, nil},
		{"certificate files", func(s string) string {
			return strings.Replace(s, "downstream:", "tls:\n  cert: /etc/cert.pem\n  key: /etc/key.pem\ndownstream:", 1)
		}, nil},
		{"internal CA names", func(s string) string {
			return strings.Replace(s, "downstream:", "tls:\n  names: [proxy.example.test]\ndownstream:", 1)
		}, nil},
		{"default spelled out", func(s string) string {
			return strings.Replace(s, "  idle_timeout: 2m\n", "  idle_timeout: 2m\n  keep_alive_header: true\n", 1) + "http3: true\n"
		}, nil},
		{"listen", func(s string) string { return strings.Replace(s, ":8443", ":9443", 1) }, []string{
			`config: hoplite.yaml:1: listen: changed from "127.0.0.1:8443" to "127.0.0.1:9443": needs a restart (a reload cannot apply it)`,
		}},
		{"admin and plain_listen", func(s string) string {
			s = strings.Replace(s, "plain_listen: \"127.0.0.1:8080\"\n", "", 1)
			return strings.Replace(s, ":2019", ":2020", 1)
		}, []string{
			`config: hoplite.yaml:1: plain_listen: changed from "127.0.0.1:8080" to "": needs a restart (a reload cannot apply it)`,
			`config: hoplite.yaml:2: admin: changed from "127.0.0.1:2019" to "127.0.0.1:2020": needs a restart (a reload cannot apply it)`,
		}},
		{"http3", func(s string) string { return s + "http3: false\n" }, []string{
			`config: hoplite.yaml:13: http3: changed from true to false: needs a restart (a reload cannot apply it)`,
		}},
		{"data_dir", func(s string) string { return strings.Replace(s, "/srv/hoplite", "/srv/other", 1) }, []string{
			`config: hoplite.yaml:4: data_dir: changed from "/srv/hoplite" to "/srv/other": needs a restart (a reload cannot apply it)`,
		}},
		{"downstream", func(s string) string {
			return strings.Replace(s, "  idle_timeout: 2m\n", "  idle_timeout: 30s\n  keep_alive_header: false\n", 1)
		}, []string{
			`config: hoplite.yaml:6: downstream.idle_timeout: changed from 2m0s to 30s: needs a restart (a reload cannot apply it)`,
			`config: hoplite.yaml:7: downstream.keep_alive_header: changed from (default) to false: needs a restart (a reload cannot apply it)`,
		}},
		{"acme added", func(s string) string {
			return strings.Replace(s, "downstream:", "tls:\n  acme:\n    domains: [example.com]\ndownstream:", 1)
		}, []string{
			`config: hoplite.yaml:6: tls.acme: added: switching to ACME needs a restart (a reload cannot apply it)`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseConfig("hoplite.yaml", []byte(tc.edit(reloadBase)))
			if err != nil {
				t.Fatal(err)
			}
			err = restartNeeded(old, old.DataDir, cfg, cfg.DataDir)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused a reloadable change: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want\n%s", strings.Join(tc.want, "\n"))
			}
			if got := err.Error(); got != strings.Join(tc.want, "\n") {
				t.Errorf("error:\n%s\nwant:\n%s", got, strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestReloadRestartNeededACME: with ACME, any change to tls.acme needs a
// restart; the rest still reloads.
func TestReloadRestartNeededACME(t *testing.T) {
	acme := strings.Replace(reloadBase, "downstream:", "tls:\n  acme:\n    domains: [example.com]\n    email: a@example.com\ndownstream:", 1)
	old, err := parseConfig("hoplite.yaml", []byte(acme))
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := parseConfig("hoplite.yaml", []byte(strings.Replace(acme, "a@example.com", "b@example.com", 1)))
	want := `config: hoplite.yaml:8: tls.acme.email: changed from "a@example.com" to "b@example.com": needs a restart (a reload cannot apply it)`
	if err := restartNeeded(old, "", cfg, ""); err == nil || err.Error() != want {
		t.Errorf("email changed: %v; want %s", err, want)
	}
	cfg, _ = parseConfig("hoplite.yaml", []byte(reloadBase))
	want = `config: hoplite.yaml:1: tls: tls.acme removed: switching away from ACME needs a restart (a reload cannot apply it)`
	if err := restartNeeded(old, "", cfg, ""); err == nil || err.Error() != want {
		t.Errorf("acme removed: %v; want %s", err, want)
	}
	cfg, _ = parseConfig("hoplite.yaml", []byte(strings.Replace(acme, "9001", "9002", 1)))
	if err := restartNeeded(old, "", cfg, ""); err != nil {
		t.Errorf("backend change with ACME refused: %v", err)
	}
}

// writeCert writes a self-signed certificate for localhost with the given
// serial number and its key.
func writeCert(t *testing.T, certFile, keyFile string, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReloadApp drives an app (built, not bound) through reloads: a
// request in flight finishes on the old backend, which is closed only
// after it; new requests use the new one; refused configurations leave
// the running one serving; static certificate files are read again.
func TestReloadApp(t *testing.T) {
	gate := make(chan struct{})
	openGate := sync.OnceFunc(func() { close(gate) })
	defer openGate() // a failed test must not leave the origin's handler waiting
	arrived := make(chan struct{}, 1)
	origin := func(name string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				arrived <- struct{}{}
				<-gate
			}
			io.WriteString(w, name)
		}))
		t.Cleanup(s.Close)
		return s
	}
	originA, originB := origin("A"), origin("B")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCert(t, certFile, keyFile, 1)
	file := filepath.Join(dir, "hoplite.yaml")
	conf := func(origin string) string {
		return fmt.Sprintf("listen: 127.0.0.1:0\nhttp3: false\ntls: {cert: %q, key: %q}\nroutes: [{backend: app}]\nbackends:\n  app:\n    servers: [%q]\n",
			certFile, keyFile, origin)
	}
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(conf(originA.Listener.Addr().String()))
	cfg, err := loadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	var logBuf syncBuffer
	a, err := build(cfg.plan(dir), slog.New(slog.NewTextHandler(&logBuf, nil)), false)
	if err != nil {
		t.Fatal(err)
	}
	defer a.release()
	a.initReload(cfg, dir, func(d string) (string, error) { return dir, nil })
	defer func() {
		if t.Failed() {
			t.Logf("log:\n%s", &logBuf)
		}
	}()

	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://localhost"+path, nil))
		return rec.Code, rec.Body.String()
	}
	serial := func() int64 {
		c, err := a.getCertificate(&tls.ClientHelloInfo{ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.SerialNumber.Int64()
	}
	if code, body := get("/"); code != 200 || body != "A" {
		t.Fatalf("before reload: %d %q", code, body)
	}

	// A request in flight on A across the reload.
	slow := make(chan string, 1)
	go func() {
		code, body := get("/slow")
		slow <- fmt.Sprint(code, " ", body)
	}()
	<-arrived
	old := a.gen.Load()
	write(conf(originB.Listener.Addr().String()))
	if err := a.reload("test"); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if code, body := get("/"); code != 200 || body != "B" {
		t.Errorf("after reload: %d %q; want B", code, body)
	}
	if st := a.stats()["app"]; len(st) != 1 || st[0].Addr != originB.Listener.Addr().String() {
		t.Errorf("stats after reload: %+v", st)
	}
	if old.isClosed() {
		t.Error("old generation closed with a request in flight")
	}
	openGate()
	if got := <-slow; got != "200 A" {
		t.Errorf("in-flight request: %s; want 200 A", got)
	}
	select {
	case <-old.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("old generation not closed after its last request")
	}
	if st := old.backends[0].Stats()[0]; st.Idle != 0 || st.Busy != 0 {
		t.Errorf("old backend still holds connections: %+v", st)
	}

	// Refused: syntax, validation, a certificate that does not load, a
	// change that needs a restart. B keeps serving throughout.
	for _, tc := range []struct {
		name, conf, want string
	}{
		{"syntax", conf(originA.Listener.Addr().String()) + "routes: [\n", file + ":9: YAML syntax error"},
		{"validation", strings.Replace(conf(originA.Listener.Addr().String()), "backend: app", "backend: nope", 1), file + ":4: routes[0].backend: "},
		{"certificate", strings.Replace(conf(originA.Listener.Addr().String()), keyFile, keyFile+".missing", 1), "tlsconf: load key " + keyFile + ".missing"},
		{"restart", strings.Replace(conf(originA.Listener.Addr().String()), "http3: false", "http3: true", 1), file + ":2: http3: changed from false to true: needs a restart"},
	} {
		write(tc.conf)
		err := a.reload("test")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: reload error %v; want it to contain %q", tc.name, err, tc.want)
		}
		if !strings.Contains(logBuf.String(), "level=ERROR msg=\"reload refused; the running configuration stays\"") {
			t.Errorf("%s: refusal not logged at error level", tc.name)
		}
		if code, body := get("/"); code != 200 || body != "B" {
			t.Errorf("%s: after refused reload: %d %q; want B", tc.name, code, body)
		}
	}

	// Static files are read again: a new certificate at the same path.
	if s := serial(); s != 1 {
		t.Fatalf("serial %d before rotation", s)
	}
	writeCert(t, certFile, keyFile, 2)
	write(conf(originB.Listener.Addr().String()))
	if err := a.reload("test"); err != nil {
		t.Fatalf("reload after certificate rotation: %v", err)
	}
	if s := serial(); s != 2 {
		t.Errorf("serial %d after rotation; want 2", s)
	}

	a.stopReloads()
	if err := a.reload("test"); !errors.Is(err, errStopping) {
		t.Errorf("reload after shutdown began: %v", err)
	}
}

// TestReloadSerializedWithShutdown: shutdown waits for a reload in
// progress (here one blocked reading its file, a FIFO), which completes;
// a reload after that is refused.
func TestReloadSerializedWithShutdown(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCert(t, certFile, keyFile, 1)
	conf := fmt.Sprintf("listen: 127.0.0.1:0\nhttp3: false\ntls: {cert: %q, key: %q}\nroutes: [{backend: app}]\nbackends:\n  app:\n    servers: [127.0.0.1:9]\n",
		certFile, keyFile)
	file := filepath.Join(dir, "hoplite.yaml")
	if err := syscall.Mkfifo(file, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig(file, []byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	a, err := build(cfg.plan(dir), slog.New(slog.NewTextHandler(io.Discard, nil)), false)
	if err != nil {
		t.Fatal(err)
	}
	defer a.release()
	a.initReload(cfg, dir, func(string) (string, error) { return dir, nil })

	reloaded := make(chan error, 1)
	go func() { reloaded <- a.reload("test") }()
	for a.rl.mu.TryLock() { // until the reload holds the lock, blocked in the read
		a.rl.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	stopped := make(chan struct{})
	go func() { a.stopReloads(); close(stopped) }()
	select {
	case <-stopped:
		t.Error("shutdown did not wait for the reload in progress")
	case <-time.After(100 * time.Millisecond):
	}
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil { // unblocks the reader
		t.Fatal(err)
	}
	if err := <-reloaded; err != nil && !t.Failed() {
		t.Errorf("reload in progress: %v", err)
	}
	<-stopped
	if err := a.reload("test"); !errors.Is(err, errStopping) {
		t.Errorf("reload after shutdown began: %v; want %v", err, errStopping)
	}
}

// TestReloadNoFile: without a file there is nothing to read again, and
// the refusal says why.
func TestReloadNoFile(t *testing.T) {
	def, err := parseConfig(defaultConfigName, defaultConfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  *Config
		want string
	}{
		{"built-in", def, "started on the built-in configuration (no --config)"},
		{"proxy", &Config{}, "hoplite proxy takes its configuration from flags"},
	} {
		a := &app{logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		a.initReload(tc.cfg, "", nil)
		if err := a.reload("test"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want %q", tc.name, err, tc.want)
		}
	}
}

// TestReloadAdminEndpoint: POST /reload reloads and reports; GET does
// not; a cross-origin browser request is refused.
func TestReloadAdminEndpoint(t *testing.T) {
	var calls int
	var result error
	srv := httptest.NewServer(adminHandler(func() map[string][]backend.ServerStats { return nil }, func() error {
		calls++
		return result
	}))
	defer srv.Close()
	do := func(method string, header ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+"/reload", nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, m := range []string{"GET", "HEAD", "PUT"} {
		if code, _ := do(m); code != http.StatusMethodNotAllowed {
			t.Errorf("%s /reload: %d; want 405", m, code)
		}
	}
	if calls != 0 {
		t.Fatalf("%d reloads without a POST", calls)
	}
	if code, body := do("POST"); code != 200 || body != "reloaded\n" || calls != 1 {
		t.Errorf("POST: %d %q after %d calls", code, body, calls)
	}
	result = errors.New("config: x.yaml:3: routes[0].backend: unknown backend")
	if code, body := do("POST"); code != 400 || body != result.Error()+"\n" {
		t.Errorf("refused POST: %d %q", code, body)
	}
	result = errStopping
	if code, _ := do("POST"); code != http.StatusServiceUnavailable {
		t.Errorf("POST while stopping: %d; want 503", code)
	}
	n := calls
	if code, _ := do("POST", "Sec-Fetch-Site", "cross-site"); code != http.StatusForbidden || calls != n {
		t.Errorf("cross-site POST: %d, reload called: %v", code, calls != n)
	}
}

// TestReloadSignals runs "hoplite run" and sends it SIGHUP: a good file
// is applied, a bad one refused, and SIGTERM still drains and exits 0.
func TestReloadSignals(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer origin.Close()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCert(t, certFile, keyFile, 1)
	file := filepath.Join(dir, "hoplite.yaml")
	conf := fmt.Sprintf("listen: 127.0.0.1:0\nhttp3: false\ntls: {cert: %q, key: %q}\nroutes: [{backend: app}]\nbackends:\n  app:\n    servers: [%q]\n",
		certFile, keyFile, origin.Listener.Addr().String())
	os.WriteFile(file, []byte(conf), 0o644)

	sigs, hups := make(chan os.Signal, 2), make(chan os.Signal, 1)
	var stderr syncBuffer
	c := &cli{stdout: io.Discard, stderr: &stderr, getenv: func(string) string { return "" },
		home: func() (string, error) { return dir, nil }, signals: sigs, hups: hups}
	done := make(chan int, 1)
	go func() { done <- c.main([]string{"run", "--config", file}) }()
	defer func() {
		if t.Failed() {
			t.Logf("hoplite log:\n%s", &stderr)
		}
	}()
	waitLog := func(s string, n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(stderr.String(), s) < n {
			if time.Now().After(deadline) {
				t.Fatalf("log lacks %q (%d times)", s, n)
			}
			select {
			case code := <-done:
				t.Fatalf("hoplite exited with %d", code)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	waitLog("hoplite serving", 1)
	os.WriteFile(file, []byte(conf+"    max_idle_per_server: 4\n"), 0o644)
	hups <- syscall.SIGHUP
	waitLog(`msg="configuration reloaded" trigger=SIGHUP`, 1)
	os.WriteFile(file, []byte(conf+"  nope: {}\n"), 0o644)
	hups <- syscall.SIGHUP
	waitLog(`level=ERROR msg="reload refused; the running configuration stays" trigger=SIGHUP err="config: `+file+`:8: backends.nope.servers: at least one server is required"`, 1)
	sigs <- syscall.SIGTERM
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
}
