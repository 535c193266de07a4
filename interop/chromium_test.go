package interop

import (
	"fmt"
	"html"
	"regexp"
	"slices"
	"testing"
	"time"
)

// TestChromium loads a page through hoplite in headless Chromium over
// HTTP/2 and over HTTP/3, and proves which protocol carried it by the Via
// field the echo origin saw ("2 hoplite", "3 hoplite").
//
// Trust: --ignore-certificate-errors-spki-list names the test leaf's key,
// which Chromium honours for QUIC too (plain --ignore-certificate-errors
// does not apply to QUIC). Chromium renders the echo JSON as text in a
// <pre>, which --dump-dom prints.
func TestChromium(t *testing.T) {
	chromium := needTool(t, "chromium")
	origin := startEchoOrigin(t)
	pki := newPKI(t)
	h := startHoplite(t, singleBackend(origin), pki)

	for _, tc := range []struct {
		name  string
		flags []string
		via   string
	}{
		{
			name:  "h2",
			flags: []string{"--disable-quic"},
			via:   "2 hoplite",
		},
		{
			name: "h3",
			flags: []string{
				"--enable-quic",
				"--origin-to-force-quic-on=" + h.authority,
				// Forced QUIC tries only the first address "localhost"
				// resolves to, which may be ::1, where nothing listens
				// (TCP falls back; QUIC fails the handshake).
				"--host-resolver-rules=MAP localhost 127.0.0.1",
			},
			via: "3 hoplite",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := "/chromium/" + tc.name + "?x=1"
			args := []string{
				"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
				"--disable-background-networking", "--disable-component-update", "--disable-sync",
				"--user-data-dir=" + t.TempDir(),
				"--ignore-certificate-errors-spki-list=" + pki.LeafSPKI,
			}
			args = append(args, tc.flags...)
			args = append(args, "--dump-dom", h.url(target))
			r := execTool(t, 90*time.Second, "", chromium, args...)
			if r.code != 0 {
				t.Fatalf("chromium failed: %v", r)
			}
			e, err := echoFromDOM(r.stdout)
			if err != nil {
				t.Fatalf("%v\n%v", err, r)
			}
			if e.URI != target {
				t.Errorf("origin saw URI %q, want %q", e.URI, target)
			}
			if via := e.header("Via"); !slices.Equal(via, []string{tc.via}) {
				t.Errorf("origin saw Via %q, want [%q]: the page did not come over %s", via, tc.via, tc.name)
			}
		})
	}
}

// echoFromDOM extracts the echo origin's JSON from the <pre> Chromium
// wraps a non-HTML document in.
func echoFromDOM(dom []byte) (*echoReply, error) {
	m := regexp.MustCompile(`(?s)<pre[^>]*>(.*?)</pre>`).FindSubmatch(dom)
	if m == nil {
		return nil, fmt.Errorf("chromium's DOM has no <pre> with the echo JSON (page not loaded?):\n%s", tail(dom, 4096))
	}
	return parseEcho([]byte(html.UnescapeString(string(m[1]))))
}
