package interop

// Shared parts of the hop-rule tests (hops_*_test.go): the admin pool
// counters, a raw HTTP/1.x client over TLS, and a raw-socket origin whose
// connection management the test controls byte for byte. docs/hop-rules.md
// maps every hop rule to the test that proves it.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// needDaemon is needTool for programs Debian installs in sbin (nginx,
// apache2), which a non-root PATH lacks.
func needDaemon(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p
		}
	}
	return needTool(t, name) // fails, naming the program
}

// serverStats is one origin server's entry in the admin GET /stats: the
// backend package's ServerStats, as JSON. It is declared here rather than
// imported so that these tests pin the JSON names users' scripts rely on:
// renaming a field's tag in backend must fail them.
type serverStats struct {
	Addr               string  `json:"addr"`
	Opened             uint64  `json:"opened"`
	Reused             uint64  `json:"reused"`
	Retried            uint64  `json:"retried"`
	Failed             uint64  `json:"failed"`
	Idle               int     `json:"idle"`
	Busy               int     `json:"busy"`
	LearnedIdleTimeout float64 `json:"learned_idle_timeout"`
	Retired            struct {
		IdleTimeout    uint64 `json:"idle_timeout"`
		OriginHint     uint64 `json:"origin_hint"`
		LearnedTimeout uint64 `json:"learned_timeout"`
		MaxRequests    uint64 `json:"max_requests"`
		MaxLifetime    uint64 `json:"max_lifetime"`
		OriginClose    uint64 `json:"origin_close"`
		Error          uint64 `json:"error"`
		ExcessIdle     uint64 `json:"excess_idle"`
		Shutdown       uint64 `json:"shutdown"`
	} `json:"retired"`
}

func (s serverStats) String() string {
	r := s.Retired
	return fmt.Sprintf("opened=%d reused=%d retried=%d failed=%d idle=%d busy=%d learned_idle_timeout=%.3fs "+
		"retired{idle_timeout=%d origin_hint=%d learned_timeout=%d max_requests=%d max_lifetime=%d origin_close=%d error=%d excess_idle=%d shutdown=%d}",
		s.Opened, s.Reused, s.Retried, s.Failed, s.Idle, s.Busy, s.LearnedIdleTimeout,
		r.IdleTimeout, r.OriginHint, r.LearnedTimeout, r.MaxRequests, r.MaxLifetime, r.OriginClose, r.Error, r.ExcessIdle, r.Shutdown)
}

// serverStats returns the pool counters of the one server of backend. The
// instance must have been started with an admin address.
func (h *instance) serverStats(t *testing.T, backend string) serverStats {
	t.Helper()
	s, err := h.fetchServerStats(backend)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (h *instance) fetchServerStats(backend string) (serverStats, error) {
	if h.cfg.Admin == "" {
		return serverStats{}, errors.New("serverStats: the instance has no admin endpoint")
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + h.cfg.Admin + "/stats")
	if err != nil {
		return serverStats{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return serverStats{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return serverStats{}, fmt.Errorf("admin /stats: status %d: %s", resp.StatusCode, body)
	}
	var all struct {
		Backends map[string][]serverStats `json:"backends"`
	}
	if err := json.Unmarshal(body, &all); err != nil {
		return serverStats{}, fmt.Errorf("admin /stats: %v: %s", err, body)
	}
	servers := all.Backends[backend]
	if len(servers) != 1 {
		return serverStats{}, fmt.Errorf("admin /stats: backend %q has %d servers, want 1: %s", backend, len(servers), body)
	}
	return servers[0], nil
}

// waitStats polls the pool counters until cond holds, for at most d (the
// counters of a connection retired at the end of a response may trail the
// response by a moment). It fails the test with the last counters if cond
// never holds, and returns them either way.
func (h *instance) waitStats(t *testing.T, backend string, d time.Duration, what string, cond func(serverStats) bool) serverStats {
	t.Helper()
	deadline := time.Now().Add(d)
	var s serverStats
	for i := 0; i < 1000; i++ {
		s = h.serverStats(t, backend)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("after %v: want %s; pool: %v", d, what, s)
	return s
}

// metric returns the value of the first sample of the admin GET /metrics
// whose series is name and whose labels include every one of labels
// (written as in the exposition: `reason="learned_timeout"`).
func (h *instance) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + h.cfg.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		series, value, ok := strings.Cut(line, "} ")
		if !ok || !strings.HasPrefix(series, name+"{") {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(series, l)
		}
		if !all {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(value, &v); err != nil {
			t.Fatalf("/metrics: %q: %v", line, err)
		}
		return v
	}
	t.Fatalf("/metrics has no sample %s with %q:\n%s", name, labels, body)
	return 0
}

// statsConfig is singleBackend with an admin endpoint, under backend name
// "app".
func statsConfig(t *testing.T, origin string) Config {
	cfg := singleBackend(origin)
	cfg.Admin = freeAddr(t)
	return cfg
}

// rawH1 is one HTTP/1.x client connection over TLS, written and read by
// hand, so that the test sees exactly the connection-management fields and
// exactly when the server closes.
type rawH1 struct {
	t    *testing.T
	conn *tls.Conn
	br   *bufio.Reader
}

func dialRawH1(t *testing.T, h *instance) *rawH1 {
	t.Helper()
	d := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: 5 * time.Second},
		Config:    &tls.Config{RootCAs: h.pki.Pool(), ServerName: "localhost", NextProtos: []string{"http/1.1"}},
	}
	nc, err := d.Dial("tcp", h.addr)
	if err != nil {
		t.Fatalf("TLS dial %s: %v", h.addr, err)
	}
	conn := nc.(*tls.Conn)
	t.Cleanup(func() { conn.Close() })
	if p := conn.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Fatalf("ALPN negotiated %q, want http/1.1", p)
	}
	return &rawH1{t: t, conn: conn, br: bufio.NewReader(conn)}
}

// rawResponse is a response read off a rawH1 connection. Header holds
// the fields exactly as received: http.ReadResponse deletes
// "Connection: close" from its Header (it becomes Response.Close).
type rawResponse struct {
	*http.Response
	Header http.Header
	head   string
	body   []byte
}

// do writes one request (the request line and header fields, without the
// final empty line, which do adds) and reads the response and its body.
func (c *rawH1) do(method, target, proto string, fields ...string) rawResponse {
	c.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s\r\nHost: localhost\r\nUser-Agent: hoplite-interop-raw/1\r\n", method, target, proto)
	for _, f := range fields {
		b.WriteString(f + "\r\n")
	}
	b.WriteString("\r\n")
	c.conn.SetDeadline(time.Now().Add(20 * time.Second))
	defer c.conn.SetDeadline(time.Time{})
	if _, err := io.WriteString(c.conn, b.String()); err != nil {
		c.t.Fatalf("writing %s %s: %v", method, target, err)
	}
	var head bytes.Buffer
	received := http.Header{}
	for i := 0; ; i++ {
		line, err := c.br.ReadString('\n')
		if err != nil || i > 200 {
			c.t.Fatalf("reading the response head to %s %s %s: %v (after %q)", method, target, proto, err, head.String())
		}
		head.WriteString(line)
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if name, value, ok := strings.Cut(line, ":"); ok && i > 0 {
			received.Add(name, strings.TrimSpace(value))
		}
	}
	// No bytes follow the response on the connection (one request at a
	// time), so a second bufio.Reader over the head and c.br reads the
	// body without taking anything that belongs to the next response.
	resp, err := http.ReadResponse(bufio.NewReader(io.MultiReader(bytes.NewReader(head.Bytes()), c.br)), &http.Request{Method: method})
	if err != nil {
		c.t.Fatalf("parsing the response to %s %s %s: %v\n%s", method, target, proto, err, head.String())
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		c.t.Fatalf("reading the response body of %s %s: %v", method, target, err)
	}
	return rawResponse{Response: resp, Header: received, head: head.String(), body: body}
}

// closedWithin reports whether the server closes the connection within d
// (a read returns EOF or a reset), and what it read instead if not.
func (c *rawH1) closedWithin(d time.Duration) (bool, string) {
	c.conn.SetReadDeadline(time.Now().Add(d))
	defer c.conn.SetReadDeadline(time.Time{})
	var buf [512]byte
	n, err := c.br.Read(buf[:])
	switch {
	case n > 0:
		return false, fmt.Sprintf("read %q instead of the end of the connection", buf[:n])
	case errors.Is(err, os.ErrDeadlineExceeded):
		return false, fmt.Sprintf("still open after %v", d)
	case err != nil:
		return true, "" // EOF, or a reset after close_notify
	}
	return false, "read nothing and no error"
}

// scriptedOrigin is a raw-socket HTTP/1.1 origin: it reads each request
// strictly (readRecordedRequest), answers with a Content-Length body that
// names the connection and request number and echoes the request's
// payload, and manages its connections exactly as its script says.
type scriptedOrigin struct {
	t      *testing.T
	ln     net.Listener
	script originScript
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool // guarded by mu
	errs  []string          // unexpected events; guarded by mu

	accepted   atomic.Int64 // connections
	requests   atomic.Int64 // requests answered
	idleCloses atomic.Int64 // connections the origin closed after idleTimeout
	peerCloses atomic.Int64 // connections the proxy closed between requests
	// partialAtClose counts idle closes that cut a request short: bytes
	// of a request had arrived when the idle timeout struck. Each is a
	// request the proxy sent into the origin's close.
	partialAtClose atomic.Int64
}

// originScript is how a scriptedOrigin manages its connections. The zero
// value is a well-behaved persistent HTTP/1.1 origin that never closes.
type originScript struct {
	// idleTimeout closes a connection that has waited this long for its
	// next request, exactly: a read deadline, no Keep-Alive hint unless
	// keepAlive says so. Zero: never.
	idleTimeout time.Duration
	// keepAlive, if set, is sent as "Keep-Alive: <keepAlive>" on every
	// response.
	keepAlive string
	// maxRequests closes a connection after that many responses. Zero:
	// never.
	maxRequests int
	// announceClose sends "Connection: close" on the maxRequests-th
	// response; without it the origin closes silently after it.
	announceClose bool
	// announceMax sends "Keep-Alive: timeout=60, max=M" with M the
	// requests the connection still takes: maxRequests-1 down to 0.
	announceMax bool
	// http10 answers every request with an HTTP/1.0 response whose body is
	// delimited by closing the connection (RFC 9112 §6.3 rule 8).
	http10 bool
	// badFramingPath: a request for this path gets a response with both
	// Content-Length and Transfer-Encoding (RFC 9112 §6.1, §6.3 rule 3).
	badFramingPath string
}

func startScriptedOrigin(t *testing.T, script originScript) *scriptedOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &scriptedOrigin{t: t, ln: ln, script: script, conns: map[net.Conn]bool{}}
	o.wg.Add(1)
	go o.accept()
	t.Cleanup(o.close)
	return o
}

func (o *scriptedOrigin) addr() string { return o.ln.Addr().String() }

func (o *scriptedOrigin) accept() {
	defer o.wg.Done()
	for range 100000 {
		c, err := o.ln.Accept()
		if err != nil {
			return
		}
		n := o.accepted.Add(1)
		o.mu.Lock()
		o.conns[c] = true
		o.mu.Unlock()
		o.wg.Add(1)
		go o.serve(c, n)
	}
}

func (o *scriptedOrigin) close() {
	o.ln.Close()
	o.mu.Lock()
	for c := range o.conns {
		c.Close()
	}
	o.mu.Unlock()
	o.wg.Wait()
}

func (o *scriptedOrigin) fail(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.errs) < 50 {
		o.errs = append(o.errs, fmt.Sprintf(format, args...))
	}
}

// problems returns what the origin found wrong with the requests it got.
func (o *scriptedOrigin) problems() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.errs...)
}

// originBody is the body a scriptedOrigin answers request req (1-based)
// on connection conn with.
func originBody(conn int64, req int, method, target string, payload []byte) string {
	return fmt.Sprintf("conn=%d req=%d %s %s payload=%q\n", conn, req, method, target, payload)
}

func (o *scriptedOrigin) serve(c net.Conn, connNo int64) {
	defer o.wg.Done()
	defer func() {
		c.Close()
		o.mu.Lock()
		delete(o.conns, c)
		o.mu.Unlock()
	}()
	br := bufio.NewReader(c)
	s := o.script
	for reqNo := 1; reqNo <= 100000; reqNo++ {
		if s.idleTimeout > 0 {
			c.SetReadDeadline(time.Now().Add(s.idleTimeout))
		}
		rec, err := readRecordedRequest(br)
		if err != nil {
			switch {
			case errors.Is(err, io.EOF) && rec.Head == nil:
				o.peerCloses.Add(1)
			case errors.Is(err, os.ErrDeadlineExceeded) && len(rec.Head) == 0 && br.Buffered() == 0:
				o.idleCloses.Add(1)
			case errors.Is(err, os.ErrDeadlineExceeded):
				o.idleCloses.Add(1)
				o.partialAtClose.Add(1)
			case errors.Is(err, net.ErrClosed):
				// the test's cleanup
			default:
				o.fail("conn %d request %d: %v (head %q)", connNo, reqNo, err, rec.Head)
			}
			return
		}
		c.SetReadDeadline(time.Time{})
		_, target, _ := strings.Cut(rec.requestLine(), " ")
		target, _, _ = strings.Cut(target, " ")
		last := s.maxRequests > 0 && reqNo >= s.maxRequests
		var resp bytes.Buffer
		body := originBody(connNo, reqNo, rec.Method, target, rec.Payload)
		switch {
		case s.badFramingPath != "" && target == s.badFramingPath:
			// Both framings, each describing the same bytes: a smuggling
			// attempt as far as any recipient can tell.
			fmt.Fprintf(&resp, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n",
				len(body), len(body), body)
		case s.http10:
			fmt.Fprintf(&resp, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n%s", body)
			last = true
		default:
			resp.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n")
			if s.keepAlive != "" {
				fmt.Fprintf(&resp, "Keep-Alive: %s\r\n", s.keepAlive)
			}
			if s.announceMax {
				fmt.Fprintf(&resp, "Keep-Alive: timeout=60, max=%d\r\n", s.maxRequests-reqNo)
			}
			if last && s.announceClose {
				resp.WriteString("Connection: close\r\n")
			}
			fmt.Fprintf(&resp, "Content-Length: %d\r\n\r\n", len(body))
			if rec.Method != http.MethodHead {
				resp.WriteString(body)
			}
		}
		if _, err := c.Write(resp.Bytes()); err != nil {
			o.fail("conn %d request %d: writing the response: %v", connNo, reqNo, err)
			return
		}
		o.requests.Add(1)
		if last {
			return
		}
	}
}

// doGet sends a GET with c and returns the status and body.
func doGet(c *http.Client, url string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, body, err := fetch(c, req)
	if err != nil {
		return 0, "", err
	}
	return resp.StatusCode, string(body), nil
}

// doPost sends a POST of payload (with Content-Length) with c and returns
// the status and body.
func doPost(c *http.Client, url, payload string) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(payload))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "text/plain")
	resp, body, err := fetch(c, req)
	if err != nil {
		return 0, "", err
	}
	return resp.StatusCode, string(body), nil
}
