package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
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
