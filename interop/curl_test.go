package interop

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCurl fetches through hoplite with curl over HTTP/1.1 and HTTP/2,
// trusting the internal CA's root as `hoplite ca` prints it: this also
// covers the internal CA issuing for localhost.
func TestCurl(t *testing.T) {
	curl := needTool(t, "curl")
	origin := startEchoOrigin(t)
	h := startHoplite(t, singleBackend(origin), nil)

	ca := execTool(t, 30*time.Second, "", binary(t), "ca", "--data", h.cfg.DataDir)
	if ca.code != 0 || !bytes.Contains(ca.stdout, []byte("-----BEGIN CERTIFICATE-----")) {
		t.Fatalf("hoplite ca did not print a PEM certificate: %v", ca)
	}
	root := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(root, ca.stdout, 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		flag        string
		httpVersion string // curl's %{http_version}
		via         string
	}{
		{"--http1.1", "1.1", "1.1 hoplite"},
		{"--http2", "2", "2 hoplite"},
	} {
		t.Run(strings.TrimPrefix(tc.flag, "--"), func(t *testing.T) {
			for _, method := range []string{"GET", "POST"} {
				dir := t.TempDir()
				bodyFile, headerFile := filepath.Join(dir, "body"), filepath.Join(dir, "headers")
				target := "/curl/" + strings.ToLower(method) + "?q=1"
				args := []string{tc.flag, "--cacert", root, "--silent", "--show-error",
					"--max-time", "20", "--output", bodyFile, "--dump-header", headerFile,
					"--write-out", "%{http_version} %{http_code}"}
				if method == "POST" {
					args = append(args, "--data-binary", "twelve bytes")
				}
				r := execTool(t, 30*time.Second, "", curl, append(args, h.url(target))...)
				if r.code != 0 {
					t.Fatalf("curl %s %s failed: %v", tc.flag, method, r)
				}
				if got, want := string(r.stdout), tc.httpVersion+" 200"; got != want {
					t.Errorf("%s: curl -w '%%{http_version} %%{http_code}' = %q, want %q", method, got, want)
				}
				body, err := os.ReadFile(bodyFile)
				if err != nil {
					t.Fatal(err)
				}
				e, err := parseEcho(body)
				if err != nil {
					t.Fatalf("%s: %v", method, err)
				}
				if e.Method != method || e.URI != target {
					t.Errorf("origin saw %s %s, want %s %s", e.Method, e.URI, method, target)
				}
				if got := e.header("Via"); !slices.Equal(got, []string{tc.via}) {
					t.Errorf("%s: origin saw Via %q, want [%q]", method, got, tc.via)
				}
				if method == "POST" && e.BodyBytes != int64(len("twelve bytes")) {
					t.Errorf("origin saw %d body bytes, want 12", e.BodyBytes)
				}
				headers, err := os.ReadFile(headerFile)
				if err != nil {
					t.Fatal(err)
				}
				altSvc := headerValues(headers, "alt-svc")
				if want := `h3=":` + strconv.Itoa(h.port) + `"`; len(altSvc) != 1 || !strings.Contains(altSvc[0], want) {
					t.Errorf("%s: Alt-Svc %q, want one advertising %s", method, altSvc, want)
				}
			}
		})
	}
}

// headerValues returns the values of name in a header block as curl
// --dump-header writes it.
func headerValues(block []byte, name string) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(block))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimRight(sc.Text(), "\r"), ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}
