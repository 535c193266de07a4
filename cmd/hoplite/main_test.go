package main

import (
	"bytes"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// runCLI runs hoplite with args and returns its exit status and output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &cli{
		stdout: &out, stderr: &errOut,
		getenv: func(string) string { return "" },
		home:   func() (string, error) { return t.TempDir(), nil },
	}
	code = c.main(args)
	return code, out.String(), errOut.String()
}

func TestCLIUsage(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		stderrHas  string
		stdoutHas  string
		stdoutNone bool
	}{
		{"no command", nil, 2, "Usage:", "", true},
		{"help", []string{"help"}, 2, "hoplite proxy", "", true},
		{"unknown command", []string{"serve"}, 2, `unknown command "serve"`, "", true},
		{"run -h", []string{"run", "-h"}, 0, "-config FILE", "", true},
		{"bad flag", []string{"run", "--nope"}, 2, "flag provided but not defined: -nope", "", true},
		{"stray argument", []string{"version", "extra"}, 2, `unexpected argument "extra"`, "", true},
		{"version", []string{"version"}, 0, "", "hoplite ", false},
		{"validate needs --config", []string{"validate"}, 2, "--config is required", "", true},
		{"proxy needs --from", []string{"proxy", "--to", "a:1"}, 2, "--from is required", "", true},
		{"proxy needs --to", []string{"proxy", "--from", "localhost:8443"}, 2, "--to is required", "", true},
		{"proxy https upstream", []string{"proxy", "--from", "localhost:8443", "--to", "https://a"}, 2, "upstream TLS is not supported yet", "", true},
		{"proxy bad --to", []string{"proxy", "--from", "localhost:8443", "--to", "a"}, 2, "want http://host:port or host:port", "", true},
		{"proxy cert without key", []string{"proxy", "--from", "localhost:8443", "--to", "a:1", "--cert", "c.pem"}, 2, "--cert and --key go together", "", true},
		{"proxy admin collides", []string{"proxy", "--from", "localhost:8443", "--to", "a:1", "--admin", "127.0.0.1:8443"}, 2, "--admin 127.0.0.1:8443 collides with --from localhost:8443", "", true},
		{"proxy bad --from", []string{"proxy", "--from", "localhost", "--to", "a:1"}, 2, `--from "localhost": want host:port`, "", true},
		{"proxy acme flags for a local name", []string{"proxy", "--from", "localhost:8443", "--to", "a:1", "--acme-ca", "https://ca.test/dir"}, 2, "--acme-ca, --acme-email and --acme-root apply only when --from names a public DNS name and --cert is not given", "", true},
		{"proxy acme flags with --cert", []string{"proxy", "--from", "example.com:443", "--to", "a:1", "--cert", "c.pem", "--key", "k.pem", "--acme-email", "a@example.com"}, 2, "apply only when --from names a public DNS name", "", true},
		{"proxy acme http CA", []string{"proxy", "--from", "example.com", "--to", "a:1", "--acme-ca", "http://ca.test/dir"}, 2, `--acme-ca "http://ca.test/dir": want an https:// ACME directory URL`, "", true},
		{"proxy admin on the acme HTTP port", []string{"proxy", "--from", "example.com", "--to", "a:1", "--admin", "127.0.0.1:80"}, 2, "--admin 127.0.0.1:80 collides with the HTTP listener :80", "", true},
		{"proxy admin on the acme TLS port", []string{"proxy", "--from", "example.com", "--to", "a:1", "--admin", "127.0.0.1:443"}, 2, "--admin 127.0.0.1:443 collides with --from :443", "", true},
		{"proxy empty --acme-root", []string{"proxy", "--from", "example.com", "--to", "a:1", "--acme-root", ""}, 2, "empty file name", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderrHas) || !strings.Contains(stdout, tt.stdoutHas) ||
				(tt.stdoutNone && stdout != "") {
				t.Errorf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
		})
	}
	if _, stdout, _ := runCLI(t, "version"); !strings.Contains(stdout, runtime.Version()) {
		t.Errorf("version does not name the Go version: %q", stdout)
	}
}

func TestCLIValidate(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(minimal+"downstream:\n  idle_timot: 2m\n"), 0o644)

	code, stdout, stderr := runCLI(t, "validate", "--config", bad)
	if want := "config: " + bad + ":8: downstream.idle_timot: unknown field\n"; code != 1 || stderr != want || stdout != "" {
		t.Errorf("bad config: exit %d, stdout %q, stderr %q; want 1, %q", code, stdout, stderr, want)
	}
	code, _, stderr = runCLI(t, "validate", "--config", filepath.Join(dir, "missing.yaml"))
	if code != 1 || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing file: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCLI(t, "run", "--config", bad)
	if code != 1 || !strings.Contains(stderr, "idle_timot: unknown field") {
		t.Errorf("run with bad config: exit %d, stderr %q", code, stderr)
	}

	// A good config builds every component (without binding) and
	// leaves the data directory alone.
	code, stdout, stderr = runCLI(t, "validate", "--config", "default.yaml")
	if code != 0 || stdout != "config OK\n" {
		t.Errorf("default.yaml: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	good := filepath.Join(dir, "good.yaml")
	data := filepath.Join(dir, "data")
	os.WriteFile(good, []byte(minimal+"data_dir: "+data+"\n"), 0o644)
	if code, _, stderr := runCLI(t, "validate", "--config", good); code != 0 {
		t.Errorf("good config: exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("validate touched the data directory: %v", err)
	}

	// Static certificate files are loaded and checked by validate.
	static := filepath.Join(dir, "static.yaml")
	os.WriteFile(static, []byte(minimal+"tls: {cert: "+filepath.Join(dir, "none.pem")+", key: "+filepath.Join(dir, "none.key")+"}\n"), 0o644)
	if code, _, stderr := runCLI(t, "validate", "--config", static); code != 1 || !strings.Contains(stderr, "none.pem") {
		t.Errorf("missing certificate: exit %d, stderr %q", code, stderr)
	}
}

func TestCLICA(t *testing.T) {
	dir := t.TempDir()
	code, stdout, stderr := runCLI(t, "ca", "--data", dir)
	if code != 0 || !strings.HasPrefix(stdout, "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	path := strings.TrimSpace(stderr)
	onDisk, err := os.ReadFile(path)
	if err != nil || string(onDisk) != stdout || !strings.HasPrefix(path, dir) {
		t.Errorf("path %q: %v; file matches stdout: %v", path, err, string(onDisk) == stdout)
	}
	// The same CA on a second call.
	if _, again, _ := runCLI(t, "ca", "--data", dir); again != stdout {
		t.Error("second call printed a different root")
	}
}

func TestProxyConfig(t *testing.T) {
	tests := []struct {
		name          string
		args          []string
		listen, plain string
		acme          *ACMEConfig // nil: no ACME
		internalCA    bool
	}{
		{"public name", []string{"--from", "example.com"}, ":443", ":80",
			&ACMEConfig{Domains: []string{"example.com"}}, false},
		{"public name with port and flags", []string{"--from", "App.Example.COM.:8443", "--acme-ca", "https://127.0.0.1:14000/dir",
			"--acme-email", "admin@example.com", "--acme-root", "r1.pem", "--acme-root", "r2.pem"}, ":8443", ":80",
			&ACMEConfig{Domains: []string{"app.example.com"}, CA: "https://127.0.0.1:14000/dir", Email: "admin@example.com", TrustedRoots: []string{"r1.pem", "r2.pem"}}, false},
		{"staging shortcut", []string{"--from", "example.com", "--acme-ca", "letsencrypt-staging"}, ":443", ":80",
			&ACMEConfig{Domains: []string{"example.com"}, CA: "letsencrypt-staging"}, false},
		{"public name with --cert", []string{"--from", "example.com:8443", "--cert", "c.pem", "--key", "k.pem"}, "example.com:8443", "", nil, false},
		{"localhost", []string{"--from", "localhost:8443"}, "localhost:8443", "", nil, true},
		{"dot localhost", []string{"--from", "app.localhost:8443"}, "app.localhost:8443", "", nil, true},
		{"dot local", []string{"--from", "printer.local:8443"}, "printer.local:8443", "", nil, true},
		{"dot internal", []string{"--from", "app.internal:8443"}, "app.internal:8443", "", nil, true},
		{"single label", []string{"--from", "myhost:8443"}, "myhost:8443", "", nil, true},
		{"IPv4", []string{"--from", "203.0.113.5:443"}, "203.0.113.5:443", "", nil, true},
		{"IPv6", []string{"--from", "[2001:db8::1]:443"}, "[2001:db8::1]:443", "", nil, true},
		{"all interfaces", []string{"--from", ":8443"}, ":8443", "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errOut bytes.Buffer
			c := &cli{stdout: io.Discard, stderr: &errOut, getenv: func(string) string { return "" }}
			cfg, _, code := c.proxyConfig(append(tt.args, "--to", "127.0.0.1:9080"))
			if cfg == nil {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			if cfg.Listen != tt.listen || cfg.PlainListen != tt.plain {
				t.Errorf("listen %q plain %q, want %q %q", cfg.Listen, cfg.PlainListen, tt.listen, tt.plain)
			}
			if !reflect.DeepEqual(cfg.TLS.ACME, tt.acme) {
				t.Errorf("acme %+v, want %+v", cfg.TLS.ACME, tt.acme)
			}
			if p := cfg.plan("/data"); p.InternalCA != tt.internalCA {
				t.Errorf("internal CA %v", p.InternalCA)
			}
		})
	}
}

// TestCLIValidateACME: validate builds the ACME source, checking its
// files, without contacting the CA or writing to storage.
func TestCLIValidateACME(t *testing.T) {
	var requests atomic.Int64
	ca := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
	}))
	defer ca.Close()
	dir := t.TempDir()
	root := filepath.Join(dir, "ca.pem")
	os.WriteFile(root, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Certificate().Raw}), 0o644)
	storage := filepath.Join(dir, "acme")
	acmeYAML := func(rootFile string) string {
		return minimal + "plain_listen: \":8080\"\ntls:\n  acme:\n    domains: [validate.example.com]\n    ca: " + ca.URL + "/dir\n" +
			"    trusted_roots: [" + rootFile + "]\n    storage: " + storage + "\n    on_demand: {allow: [\"*.example.com\"]}\n"
	}
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(acmeYAML(root)), 0o644)
	if code, stdout, stderr := runCLI(t, "validate", "--config", good); code != 0 || stdout != "config OK\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("validate contacted the CA %d times", n)
	}
	if _, err := os.Stat(storage); !os.IsNotExist(err) {
		t.Errorf("validate touched the storage: %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(acmeYAML(filepath.Join(dir, "none.pem"))), 0o644)
	if code, _, stderr := runCLI(t, "validate", "--config", bad); code != 1 || !strings.Contains(stderr, "tlsconf: ACME trusted root "+filepath.Join(dir, "none.pem")+": no such file or directory") {
		t.Errorf("missing trusted root: exit %d, stderr %q", code, stderr)
	}
}
