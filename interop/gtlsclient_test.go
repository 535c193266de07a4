package interop

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestGtlsclient fetches through hoplite over HTTP/3 with gtlsclient, the
// ngtcp2 example client (GnuTLS) from Debian's ngtcp2-client: a QUIC and
// HTTP/3 stack that shares no code with quic-go.
//
// gtlsclient does not verify the server certificate (it has no option to
// trust a CA), so the test-generated certificate is only for symmetry.
// Without --quiet it prints the response header as lines
// `http: stream 0x0 [:status: 200]`; --download saves the body in a file
// named after the last path segment. --no-quic-dump and --no-http-dump keep
// the log short; --exit-on-all-streams-close makes it exit after the
// response.
func TestGtlsclient(t *testing.T) {
	gtls := needTool(t, "gtlsclient")
	origin := startEchoOrigin(t)
	h := startHoplite(t, singleBackend(origin), newPKI(t))

	dl := t.TempDir()
	target := "/h3/gtlsclient.json?x=1"
	// HOST is the address (gtlsclient would try only the first address of
	// "localhost", possibly ::1); the URI carries the authority and --sni
	// the TLS name.
	r := execTool(t, 60*time.Second, "", gtls,
		"--no-quic-dump", "--no-http-dump", "--exit-on-all-streams-close",
		"--timeout=20s", "--sni=localhost", "--download="+dl,
		"127.0.0.1", strconv.Itoa(h.port), h.url(target))
	if r.code != 0 {
		t.Fatalf("gtlsclient failed: %v", r)
	}
	out := string(r.stdout) + string(r.stderr)
	status := regexp.MustCompile(`http: stream 0x[0-9a-f]+ \[:status: (\d+)\]`).FindStringSubmatch(out)
	if status == nil || status[1] != "200" {
		t.Errorf("response status %v, want 200", status)
	}
	if regexp.MustCompile(`\[(connection|keep-alive|transfer-encoding|upgrade|proxy-connection): `).MatchString(out) {
		t.Errorf("hoplite sent a connection-specific field over HTTP/3 (RFC 9114 §4.2)")
	}
	body, err := os.ReadFile(filepath.Join(dl, "gtlsclient.json?x=1"))
	if err != nil {
		t.Fatalf("gtlsclient saved no body: %v", err)
	}
	e, err := parseEcho(body)
	if err != nil {
		t.Fatal(err)
	}
	if e.URI != target || e.Method != "GET" {
		t.Errorf("origin saw %s %s, want GET %s", e.Method, e.URI, target)
	}
	if via := e.header("Via"); !slices.Equal(via, []string{"3 hoplite"}) {
		t.Errorf("origin saw Via %q, want [3 hoplite]", via)
	}
	if t.Failed() {
		t.Logf("gtlsclient output:\n%s", tail([]byte(out), 16<<10))
	}
}
