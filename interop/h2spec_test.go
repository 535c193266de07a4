package interop

import (
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// h2specCases is the number of test cases h2spec 2.2.1 runs with every
// group (generic, http2, hpack) selected. All must pass: a failure is a
// bug in the HTTP/2 frontend, never a case to skip.
const h2specCases = 145

// junitReport is h2spec's JUnit output (reporter/junit_report.go).
type junitReport struct {
	Suites []struct {
		Name  string `xml:"name,attr"`
		Cases []struct {
			Package   string    `xml:"package,attr"`
			ClassName string    `xml:"classname,attr"`
			Failure   *xmlInner `xml:"failure"`
			Skipped   *xmlInner `xml:"skipped"`
			Error     *xmlInner `xml:"error"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

type xmlInner struct {
	Content string `xml:",innerxml"`
}

// TestH2spec runs h2spec's conformance suite, every group, against
// hoplite's HTTP/2 frontend in front of the echo origin.
func TestH2spec(t *testing.T) {
	h2spec := needTool(t, "h2spec")
	origin := startEchoOrigin(t)
	cfg := singleBackend(origin)
	// hoplite's default configuration, as h2spec is run against HAProxy
	// and nginx. (h2spec's http2/4.2/3 sends a HEADERS frame of about
	// 20 KB and expects FRAME_SIZE_ERROR: it assumes the protocol's initial
	// SETTINGS_MAX_FRAME_SIZE, 16384, RFC 9113 §6.5.2, which is hoplite's
	// default.)
	h := startHoplite(t, cfg, newPKI(t))

	report := filepath.Join(t.TempDir(), "report.xml")
	r := execTool(t, 8*time.Minute, "", h2spec,
		"-h", "127.0.0.1", "-p", fmt.Sprint(h.port), "-t", "-k", "-o", "5", "-j", report)

	raw, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("h2spec wrote no JUnit report (%v): %v", err, r)
	}
	var rep junitReport
	if err := xml.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("parsing h2spec's report: %v\n%s", err, tail(raw, 4096))
	}
	var passed, total int
	var failed, skipped []string
	for _, s := range rep.Suites {
		for _, c := range s.Cases {
			total++
			name := fmt.Sprintf("%s %s", c.Package, c.ClassName)
			switch {
			case c.Failure != nil:
				failed = append(failed, name+"\n        "+oneLine(c.Failure.Content))
			case c.Error != nil:
				failed = append(failed, name+" (error)\n        "+oneLine(c.Error.Content))
			case c.Skipped != nil:
				skipped = append(skipped, name)
			default:
				passed++
			}
		}
	}
	t.Logf("h2spec: %d of %d cases passed (%d failed, %d skipped); h2spec exit %d", passed, total, len(failed), len(skipped), r.code)
	for _, f := range failed {
		t.Errorf("h2spec failed: %s", f)
	}
	for _, s := range skipped {
		t.Errorf("h2spec skipped: %s", s)
	}
	if total != h2specCases {
		t.Errorf("h2spec ran %d cases, want all %d", total, h2specCases)
	}
	if passed == h2specCases && r.code != 0 {
		t.Errorf("every case passed but h2spec exited %d: %v", r.code, r)
	}
	if t.Failed() {
		// h2spec's own account of each failure (expected and actual
		// frames) is clearer than the JUnit text.
		out := string(r.stdout)
		if i := strings.Index(out, "\nFailures:"); i >= 0 {
			out = out[i:]
		} else {
			out = tail(r.stdout, 32<<10)
		}
		t.Logf("h2spec output:\n%s", out)
	}
}

// oneLine squeezes a report message onto one line.
func oneLine(s string) string {
	s = strings.NewReplacer("&#xA;", " ", "&#x9;", " ", "\n", " ", "\t", " ").Replace(s)
	return strings.Join(strings.Fields(s), " ")
}
