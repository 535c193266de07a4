package interop

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestNghttp fetches a page and the assets it links over HTTP/2 with
// nghttp (nghttp2's client, which checks framing strictly), from python3's
// http.server: an HTTP/1.0 origin that closes every connection, next to
// hoplite's echo origin on its own route.
func TestNghttp(t *testing.T) {
	nghttp := needTool(t, "nghttp")
	python := needTool(t, "python3")

	site := t.TempDir()
	files := map[string]string{
		"index.html": `<!doctype html><html><head><title>hoplite</title>` +
			`<link rel="stylesheet" href="/site/style.css"><script src="/site/app.js"></script></head>` +
			`<body><img src="/site/logo.svg" alt="logo"><p>through hoplite</p></body></html>`,
		"style.css": "body { font-family: sans-serif; }\n",
		"app.js":    "console.log('hoplite');\n",
		"logo.svg":  `<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>` + "\n",
	}
	if err := os.Mkdir(filepath.Join(site, "site"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(site, "site", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pyAddr := freeAddr(t)
	pyPort := pyAddr[strings.LastIndexByte(pyAddr, ':')+1:]
	py := startProc(t, "python-http.server", nil, python, "-m", "http.server", pyPort, "--bind", "127.0.0.1", "--directory", site)
	waitTCP(t, py, pyAddr)
	echo := startEchoOrigin(t)

	cfg := Config{
		HTTP3: true,
		Routes: []Route{
			{Path: "/site/", Backend: "static"},
			{Path: "/", Backend: "echo"},
		},
		Backends: map[string]Backend{
			"static": {Servers: []string{"http://" + pyAddr}},
			"echo":   {Servers: []string{"http://" + echo}},
		},
	}
	h := startHoplite(t, cfg, newPKI(t))

	t.Run("page-with-assets", func(t *testing.T) {
		// -a fetches the assets the HTML links, -n discards the bodies,
		// -s prints a table of every response.
		r := execTool(t, 60*time.Second, "", nghttp, "-ans", "--timeout=20", h.url("/site/index.html"))
		if r.code != 0 {
			t.Fatalf("nghttp -ans failed: %v", r)
		}
		// " id  responseEnd requestStart  process code size request path"
		row := regexp.MustCompile(`(?m)^\s*\d+\s+\+\S+\s+\+\S+\s+\S+\s+(\d{3})\s+(\S+)\s+(\S+)\s*$`)
		got := map[string]string{}
		for _, m := range row.FindAllStringSubmatch(string(r.stdout), -1) {
			got[m[3]] = m[1]
		}
		for name := range files {
			if code := got["/site/"+name]; code != "200" {
				t.Errorf("/site/%s: status %q, want 200", name, code)
			}
		}
		if t.Failed() {
			t.Logf("nghttp output:\n%s", r)
		}
	})

	t.Run("verbose-echo", func(t *testing.T) {
		r := execTool(t, 60*time.Second, "", nghttp, "-v", "--timeout=20", h.url("/nghttp/echo?x=1"))
		if r.code != 0 {
			t.Fatalf("nghttp -v failed: %v", r)
		}
		out := string(r.stdout)
		if !strings.Contains(out, "recv SETTINGS frame") {
			t.Errorf("no SETTINGS frame from hoplite")
		}
		if !regexp.MustCompile(`recv \(stream_id=\d+\) :status: 200`).MatchString(out) {
			t.Errorf("no :status: 200 response header")
		}
		// RFC 9113 §8.2.2: no connection-specific fields in HTTP/2.
		for _, f := range []string{"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"} {
			if regexp.MustCompile(`recv \(stream_id=\d+\) ` + f + `:`).MatchString(out) {
				t.Errorf("hoplite sent connection-specific field %s over HTTP/2", f)
			}
		}
		if want := `h3=":` + strconv.Itoa(h.port) + `"`; !strings.Contains(out, "alt-svc: "+want) {
			t.Errorf("no alt-svc advertising %s", want)
		}
		// The body follows the frames; the echo JSON shows the Via the
		// origin received.
		start, end := strings.Index(out, "{"), strings.LastIndex(out, "}")
		if start < 0 || end < start {
			t.Fatalf("no echo JSON in nghttp's output")
		}
		e, err := parseEcho([]byte(out[start : end+1]))
		if err != nil {
			t.Fatal(err)
		}
		if via := e.header("Via"); len(via) != 1 || via[0] != "2 hoplite" {
			t.Errorf("origin saw Via %q, want [2 hoplite]", via)
		}
		if e.URI != "/nghttp/echo?x=1" {
			t.Errorf("origin saw URI %q", e.URI)
		}
		if t.Failed() {
			t.Logf("nghttp output:\n%s", r)
		}
	})
}
