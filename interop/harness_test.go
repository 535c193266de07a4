package interop

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"go/build"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/http2"
)

// The binary under test, built once by TestMain. A failed build does not
// stop the run: every test that needs the binary fails with the build
// output, so the report says what broke.
var (
	hopliteBin string
	buildErr   error
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "hoplite-interop-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	hopliteBin = filepath.Join(dir, "hoplite")
	buildErr = buildHoplite(hopliteBin)
	return m.Run()
}

// buildHoplite builds ./cmd/hoplite into out. Under `go test -race` the
// binary is race-enabled too, so the interop traffic also hunts for data
// races in the real program (reported in its log; see proc.check).
func buildHoplite(out string) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(build.Default.GOROOT, "bin", "go")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"build", "-o", out}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/hoplite")
	cmd := exec.CommandContext(ctx, goTool, args...)
	cmd.Dir = ".." // go test runs in the package directory, interop/
	output, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, output)
	}
	return nil
}

// binary returns the path of the hoplite binary under test.
func binary(t *testing.T) string {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("building hoplite failed: %v", buildErr)
	}
	return hopliteBin
}

// needTool returns the path of an external program, failing the test with
// the program's name when it is missing. h2spec is installed by `go
// install` into GOPATH/bin, which PATH may lack outside `make test`.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if gp := filepath.Join(build.Default.GOPATH, "bin", name); isExecutable(gp) {
		return gp
	}
	t.Fatalf("required tool %q is not installed (not in PATH, nor in GOPATH/bin); run scripts/install-deps.sh: %v", name, err)
	return ""
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// freePort is FreePort for a test.
func freePort(t *testing.T) int {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func freeAddr(t *testing.T) string {
	return "127.0.0.1:" + strconv.Itoa(freePort(t))
}

func newPKI(t *testing.T) *PKI {
	t.Helper()
	p, err := NewPKI(t.TempDir())
	if err != nil {
		t.Fatalf("making test certificates: %v", err)
	}
	return p
}

// proc is a child process started by a test. Its standard output and
// error go to a log file that is printed into the test log when the test
// fails. It runs in its own process group so a program that forks (a
// browser) can be stopped whole.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // Wait's result; read only after done is closed
}

// startProc starts path with args and registers a cleanup that stops it
// (SIGTERM, then SIGKILL after 10s) and reports its log if the test
// failed.
func startProc(t *testing.T, name string, env []string, path string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	f.Close() // the child has its own descriptor
	if err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Logf("started %s (pid %d): %s %s", name, cmd.Process.Pid, path, strings.Join(args, " "))
	t.Cleanup(func() {
		p.stop(10 * time.Second)
		p.check(t)
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process itself (by PID).
func (p *proc) signal(sig syscall.Signal) error {
	if p.exited() {
		return nil
	}
	return syscall.Kill(p.cmd.Process.Pid, sig)
}

// wait waits up to d for the process to exit and returns its Wait error;
// ok is false if it is still running.
func (p *proc) wait(d time.Duration) (err error, ok bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.err, true
	case <-timer.C:
		return nil, false
	}
}

// stop sends SIGTERM to the process, then after grace SIGKILL to its
// whole process group (it leads its own group, so this reaches only
// processes it started).
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = p.signal(syscall.SIGTERM)
	if _, ok := p.wait(grace); ok {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	p.wait(5 * time.Second)
}

// log returns the last max bytes of the process's output.
func (p *proc) log(max int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", p.logPath, err)
	}
	if len(b) > max {
		b = append([]byte("...\n"), b[len(b)-max:]...)
	}
	return string(b)
}

// check fails the test if the race detector reported anything in the
// process, and prints the log when the test failed.
func (p *proc) check(t *testing.T) {
	t.Helper()
	out := p.log(256 << 10)
	if strings.Contains(out, "WARNING: DATA RACE") {
		t.Errorf("%s: the race detector reported a data race (log below)", p.name)
	}
	if t.Failed() {
		t.Logf("----- %s (pid %d) output, %s -----\n%s\n----- end of %s output -----",
			p.name, p.cmd.Process.Pid, p.logPath, out, p.name)
	}
}

// result is the outcome of a one-shot command.
type result struct {
	stdout, stderr []byte
	code           int // exit code; -1 if killed or not started
	err            error
	elapsed        time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("exit %d (%v) after %v\nstdout:\n%s\nstderr:\n%s",
		r.code, r.err, r.elapsed.Round(time.Millisecond), tail(r.stdout, 16<<10), tail(r.stderr, 16<<10))
}

func tail(b []byte, max int) string {
	if len(b) > max {
		return "...\n" + string(b[len(b)-max:])
	}
	return string(b)
}

// execTool runs a program to completion with a timeout; on timeout its
// whole process group is killed.
func execTool(t *testing.T, timeout time.Duration, dir string, path string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	// Whatever the program left behind in its group (a browser's helper
	// processes) goes too; ESRCH when nothing is left.
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	r := result{stdout: stdout.Bytes(), stderr: stderr.Bytes(), err: err, elapsed: time.Since(start), code: -1}
	if cmd.ProcessState != nil {
		r.code = cmd.ProcessState.ExitCode()
	}
	if ctx.Err() != nil {
		r.err = fmt.Errorf("killed after the %v timeout: %w", timeout, ctx.Err())
	}
	t.Logf("ran %s %s: exit %d in %v", filepath.Base(path), strings.Join(args, " "), r.code, r.elapsed.Round(time.Millisecond))
	return r
}

// waitTCP polls addr until it accepts a TCP connection, p exits, or 20s
// pass.
func waitTCP(t *testing.T, p *proc, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for i := 0; i < 400 && time.Now().Before(deadline); i++ {
		if p != nil && p.exited() {
			t.Fatalf("%s exited before listening on %s: %v", p.name, addr, p.err)
		}
		var c net.Conn
		c, err = net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listening on %s after 20s: %v", addr, err)
}

// instance is a running hoplite.
type instance struct {
	*proc
	cfg        Config
	configPath string
	port       int
	addr       string // 127.0.0.1:PORT, where it listens (TCP and UDP)
	authority  string // localhost:PORT, what clients put in the URL
	pki        *PKI   // nil when serving from the internal CA
}

// url returns the https URL of path on this instance.
func (h *instance) url(path string) string {
	return "https://" + h.authority + path
}

// startHoplite writes cfg (with a free listen port and a data directory
// filled in when empty, and pki's certificate when pki is not nil) and
// runs `hoplite run` on it until the TLS listener completes handshakes
// and, with HTTP/3 on, the QUIC listener does too.
func startHoplite(t *testing.T, cfg Config, pki *PKI) *instance {
	t.Helper()
	autoPort := cfg.Listen == ""
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if pki != nil {
		cfg.CertFile, cfg.KeyFile = pki.CertFile, pki.KeyFile
	}
	dir := t.TempDir()
	// Another process may take the free port between our check and
	// hoplite's bind; then pick another, a bounded number of times.
	for attempt := 1; ; attempt++ {
		if autoPort {
			cfg.Listen = freeAddr(t)
		}
		h := &instance{cfg: cfg, pki: pki, configPath: filepath.Join(dir, fmt.Sprintf("hoplite-%d.yaml", attempt))}
		if err := os.WriteFile(h.configPath, []byte(cfg.YAML()), 0o644); err != nil {
			t.Fatal(err)
		}
		_, portStr, _ := net.SplitHostPort(cfg.Listen)
		h.port, _ = strconv.Atoi(portStr)
		h.addr = cfg.Listen
		h.authority = "localhost:" + portStr
		h.proc = startProc(t, fmt.Sprintf("hoplite-%d", attempt), raceEnv(), binary(t),
			"run", "--config", h.configPath, "--data", cfg.DataDir)
		err := h.waitReady()
		if err == nil {
			return h
		}
		if autoPort && attempt < 3 && h.exited() && strings.Contains(h.log(64<<10), "address already in use") {
			t.Logf("port of %s was taken; retrying", cfg.Listen)
			continue
		}
		t.Fatalf("hoplite did not become ready: %v\nconfig %s:\n%s", err, h.configPath, cfg.YAML())
	}
}

// raceEnv makes a race-enabled child keep running after a report (so the
// test sees the whole log) and exit non-zero at the end.
func raceEnv() []string {
	return []string{"GORACE=halt_on_error=0 exitcode=66"}
}

func (h *instance) waitReady() error {
	deadline := time.Now().Add(30 * time.Second)
	ready := func(probe func() error) error {
		var err error
		for i := 0; i < 300 && time.Now().Before(deadline); i++ {
			if h.exited() {
				return fmt.Errorf("hoplite exited: %v", h.err)
			}
			if err = probe(); err == nil {
				return nil
			}
			time.Sleep(100 * time.Millisecond)
		}
		return err
	}
	// Readiness, not trust: the certificate is verified by the tests.
	tlsConf := &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}
	if err := ready(func() error {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: tlsConf}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", h.addr)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		return fmt.Errorf("TLS on tcp %s: %w", h.addr, err)
	}
	if h.cfg.HTTP3 {
		qConf := tlsConf.Clone()
		qConf.NextProtos = []string{http3.NextProtoH3}
		if err := ready(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			c, err := quic.DialAddr(ctx, h.addr, qConf, &quic.Config{HandshakeIdleTimeout: 2 * time.Second})
			if err == nil {
				c.CloseWithError(0, "")
			}
			return err
		}); err != nil {
			return fmt.Errorf("QUIC on udp %s: %w", h.addr, err)
		}
	}
	if h.cfg.Admin != "" {
		if err := ready(func() error {
			c, err := net.DialTimeout("tcp", h.cfg.Admin, time.Second)
			if err == nil {
				c.Close()
			}
			return err
		}); err != nil {
			return fmt.Errorf("admin on %s: %w", h.cfg.Admin, err)
		}
	}
	return nil
}

// startEchoOrigin runs `hoplite origin` on a free port and returns its
// address.
func startEchoOrigin(t *testing.T) string {
	t.Helper()
	addr := freeAddr(t)
	p := startProc(t, "echo-origin", raceEnv(), binary(t), "origin", "--listen", addr)
	waitTCP(t, p, addr)
	return addr
}

// singleBackend routes every request to one origin.
func singleBackend(origin string) Config {
	return Config{
		HTTP3:    true,
		Routes:   []Route{{Path: "/", Backend: "app"}},
		Backends: map[string]Backend{"app": {Servers: []string{"http://" + origin}}},
	}
}

// mode is a client protocol. Tests that hold for every protocol run once
// per mode as subtests, like net/http's clientserver_test.go.
type mode string

const (
	modeH1 mode = "h1"
	modeH2 mode = "h2"
	modeH3 mode = "h3"
)

var allModes = []mode{modeH1, modeH2, modeH3}

// proto is the http.Response.Proto the Go client reports for the mode.
func (m mode) proto() string {
	return map[mode]string{modeH1: "HTTP/1.1", modeH2: "HTTP/2.0", modeH3: "HTTP/3.0"}[m]
}

// viaVersion is the received-protocol the proxy must put in Via for a
// request that arrived over the mode (RFC 9110 §7.6.3: the version alone
// for HTTP).
func (m mode) viaVersion() string {
	return map[mode]string{modeH1: "1.1", modeH2: "2", modeH3: "3"}[m]
}

func (m mode) via() string { return m.viaVersion() + " hoplite" }

func runModes(t *testing.T, modes []mode, f func(t *testing.T, m mode)) {
	t.Helper()
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) { f(t, m) })
	}
}

// client returns an http.Client speaking only the mode's protocol to h,
// trusting roots (h's test CA when nil).
func (h *instance) client(t *testing.T, m mode, roots *x509.CertPool) *http.Client {
	t.Helper()
	if roots == nil {
		if h.pki == nil {
			t.Fatal("client: no roots given for an internal-CA instance")
		}
		roots = h.pki.Pool()
	}
	var rt http.RoundTripper
	switch m {
	case modeH1:
		tr := &http.Transport{
			TLSClientConfig:    &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}},
			DisableCompression: true,
			// A non-nil empty map turns HTTP/2 off.
			TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
		}
		t.Cleanup(tr.CloseIdleConnections)
		rt = tr
	case modeH2:
		tr := &http2.Transport{
			TLSClientConfig:    &tls.Config{RootCAs: roots},
			DisableCompression: true,
		}
		t.Cleanup(tr.CloseIdleConnections)
		rt = tr
	case modeH3:
		tr := &http3.Transport{
			TLSClientConfig:    &tls.Config{RootCAs: roots},
			DisableCompression: true,
			QUICConfig:         &quic.Config{HandshakeIdleTimeout: 5 * time.Second},
		}
		t.Cleanup(func() { tr.Close() })
		rt = tr
	default:
		t.Fatalf("unknown mode %q", m)
	}
	return &http.Client{Transport: rt, Timeout: 30 * time.Second}
}

// echoReply is the JSON the `hoplite origin` echo server answers with.
type echoReply struct {
	Conn      int                        `json:"conn"`
	Request   int                        `json:"request"`
	Method    string                     `json:"method"`
	URI       string                     `json:"uri"`
	Proto     string                     `json:"proto"`
	Host      string                     `json:"host"`
	Headers   map[string]json.RawMessage `json:"headers"`
	BodyBytes int64                      `json:"body_bytes"`
}

func parseEcho(b []byte) (*echoReply, error) {
	var e echoReply
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("echo origin reply is not the expected JSON: %v\n%s", err, tail(b, 4096))
	}
	return &e, nil
}

// header returns the values the origin received for name, matched
// case-insensitively; the JSON may hold a string or a list of strings.
func (e *echoReply) header(name string) []string {
	var out []string
	for k, raw := range e.Headers {
		if !strings.EqualFold(k, name) {
			continue
		}
		var one string
		var many []string
		if json.Unmarshal(raw, &one) == nil {
			out = append(out, one)
		} else if json.Unmarshal(raw, &many) == nil {
			out = append(out, many...)
		} else {
			out = append(out, string(raw))
		}
	}
	return out
}

// fetch does req with c and reads the whole body (and so the trailers).
func fetch(c *http.Client, req *http.Request) (*http.Response, []byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp, body, fmt.Errorf("reading the response body: %w", err)
	}
	return resp, body, nil
}

func mustGet(t *testing.T, c *http.Client, url string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, body, err := fetch(c, req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp, body
}
