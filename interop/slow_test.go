package interop

// Slow clients against the real binary with Debian's slowhttptest:
// slowloris (slow headers, -H) and slow read (-X), each bounded in
// connections and seconds. hoplite must stay up with bounded memory and
// open files, close the slow connections itself (read_header_timeout for
// slowloris, write_stall_timeout for slow read), and answer a well-behaved
// client 200 throughout.

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fdSample is hoplite's count of open files at a time into the attack.
type fdSample struct {
	at time.Duration
	n  int
}

// watchFDs samples hoplite's open files every 250ms until stop.
func watchFDs(t *testing.T, pid int, stop <-chan struct{}) []fdSample {
	start := time.Now()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var series []fdSample
	for {
		series = append(series, fdSample{time.Since(start), readProcStats(t, pid).fds})
		select {
		case <-stop:
			return series
		case <-tick.C:
		}
	}
}

// peakFDs is the largest count among the samples taken from from to to
// into the attack.
func peakFDs(series []fdSample, from, to time.Duration) int {
	peak := 0
	for _, s := range series {
		if s.at >= from && s.at <= to {
			peak = max(peak, s.n)
		}
	}
	return peak
}

// runSlowhttptest runs slowhttptest with args against hoplite while a
// well-behaved client keeps asking, and returns hoplite's open files,
// sampled through the run, and slowhttptest's output.
func runSlowhttptest(t *testing.T, h *instance, args ...string) (fds []fdSample, out string) {
	t.Helper()
	tool := needTool(t, "slowhttptest")
	pid := h.cmd.Process.Pid
	good := startGoodClient(t, h.client(t, modeH1, nil), h.url("/good"))
	stop := make(chan struct{})
	sampled := make(chan []fdSample, 1)
	go func() { sampled <- watchFDs(t, pid, stop) }()
	r := execTool(t, 90*time.Second, t.TempDir(), tool, args...)
	close(stop)
	fds = <-sampled
	out = string(r.stdout) + string(r.stderr)
	if r.code < 0 {
		t.Fatalf("slowhttptest did not finish: %v", r)
	}
	good.end(t)
	var ns []int
	for _, s := range fds {
		ns = append(ns, s.n)
	}
	t.Logf("hoplite's open files during the run (every 250ms): %v", ns)
	return fds, out
}

// ansiEscape matches the colour codes slowhttptest writes.
var ansiEscape = regexp.MustCompile("\x1b\\[[0-9;]*m")

// lastStatus returns the end of slowhttptest's output, without colours:
// its last status block (connections pending, connected, closed; whether
// its probe found the service available) and its exit reason.
func lastStatus(out string) string {
	s := ansiEscape.ReplaceAllString(out, "")
	if i := strings.LastIndex(s, "initializing:"); i > 200 {
		s = s[i-200:]
	}
	return tail([]byte(s), 2000)
}

// TestSlowloris: slowhttptest -H opens 500 connections (100 a second) that
// send a header line every 2 seconds and never finish it, for 15 seconds.
// net/http's ReadHeaderTimeout (downstream.read_header_timeout, 4s here)
// closes each one: hoplite's open files stay below the 500 the attack
// wants (each connection lives at most the timeout), and fall back once
// the attack ends; memory stays bounded; the well-behaved client is served
// throughout. 500 connections stay under the default max_conns_per_ip
// (1024), so the per-address limit plays no part here.
func TestSlowloris(t *testing.T) {
	cfg := singleBackend(startEchoOrigin(t))
	cfg.HTTP3 = false
	cfg.DownstreamExtra = []string{"read_header_timeout: 4s"}
	h := startHoplite(t, cfg, newPKI(t))
	before := readProcStats(t, h.cmd.Process.Pid)
	fds, out := runSlowhttptest(t, h, "-H", "-c", "500", "-r", "100", "-i", "2", "-l", "15", "-x", "24", "-p", "3",
		"-u", h.url("/slowloris"))
	t.Logf("slowhttptest:\n%s", lastStatus(out))
	after := checkBounded(t, h, before)
	peak := peakFDs(fds, 0, time.Hour)
	// 100 new connections a second, each closed after 4s: about 400 open
	// at once, never all 500.
	if peak-before.fds >= 500 {
		t.Errorf("hoplite held %d connections at once (%d open files, %d before): the slow headers were not cut off", peak-before.fds, peak, before.fds)
	}
	waitFDsBack(t, h, before.fds, after)
}

// TestSlowRead: slowhttptest -X opens 100 connections (50 a second) that
// each ask for a 4 MiB response (twice, pipelined) and then read 32 bytes
// every 2 seconds through a receive window of at most 16 bytes, for 30
// seconds. Once hoplite has filled a connection's send buffer its next
// write stalls; with downstream.write_stall_timeout 3s hoplite closes the
// connection 3 seconds later (how soon the buffer is full depends on the
// CPU: under -race on a busy machine it took up to 15 seconds), so that in
// the run's last seconds none of them is left open; memory stays bounded
// and the well-behaved client is served throughout. Without the
// write-stall deadline the connections stay open for the whole run (and
// beyond: net/http has no other write timeout).
func TestSlowRead(t *testing.T) {
	cfg := singleBackend(startEchoOrigin(t))
	cfg.HTTP3 = false
	cfg.DownstreamExtra = []string{"write_stall_timeout: 3s"}
	h := startHoplite(t, cfg, newPKI(t))
	before := readProcStats(t, h.cmd.Process.Pid)
	const conns = 100
	fds, out := runSlowhttptest(t, h, "-X", "-c", strconv.Itoa(conns), "-r", "50", "-l", "30", "-k", "2",
		"-w", "1", "-y", "16", "-n", "2", "-z", "32", "-p", "3",
		"-u", h.url("/slowread?size="+strconv.Itoa(4<<20)))
	t.Logf("slowhttptest:\n%s", lastStatus(out))
	checkBounded(t, h, before)
	peak := peakFDs(fds, 0, time.Hour)
	if peak-before.fds < conns/2 {
		t.Errorf("hoplite never held more than %d extra files: the attack did not take hold (see slowhttptest's output)", peak-before.fds)
	}
	// From the 24th to the 28th second, while slowhttptest still holds
	// its connections open: hoplite has closed the slow readers (all were
	// open by the 3rd second).
	late := peakFDs(fds, 24*time.Second, 28*time.Second)
	if late-before.fds > conns/4 {
		t.Errorf("in the run's last seconds hoplite still held %d extra files (peak %d): stalled readers were not closed", late-before.fds, peak-before.fds)
	}
	waitFDsBack(t, h, before.fds, readProcStats(t, h.cmd.Process.Pid))
}

// waitFDsBack waits up to 20s for hoplite's open files to fall back near
// base, and fails the test if they do not.
func waitFDsBack(t *testing.T, h *instance, base int, cur procStats) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for cur.fds > base+16 && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
		cur = readProcStats(t, h.cmd.Process.Pid)
	}
	if cur.fds > base+16 {
		t.Errorf("hoplite still holds %d open files after the attack, %d before", cur.fds, base)
	}
}
