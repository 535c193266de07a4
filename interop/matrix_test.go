package interop

// The protocol matrix: one set of requests sent through hoplite by Go's
// HTTP/1.1, HTTP/2 and HTTP/3 clients, to a raw-socket origin that records
// the exact bytes of every HTTP/1.1 request it receives.
//
// What must be identical across the three client protocols:
//   - the request head the origin received, byte for byte, after replacing
//     the received-protocol in Via ("1.1 hoplite", "2 hoplite", "3 hoplite"),
//     the one thing that legitimately differs (RFC 9110 §7.6.3);
//   - the request body framing (none, Content-Length or chunked: it is part
//     of the head), the payload, and the raw trailer section.
//
// Chunk boundaries are not compared. For a body whose length the client did
// not declare (HTTP/1.1 chunked, HTTP/2 and HTTP/3 DATA frames without
// content-length) the proxy must use the same framing towards the origin
// whatever the client spoke, and the head comparison checks that; but where
// the chunks split depends on how the client's writes were cut into frames
// and packets and on the proxy's reads, and RFC 9112 §7.1 gives chunk
// boundaries no meaning. So the recorder de-chunks and the comparison is of
// the payload and the trailer fields.
//
// What the clients received must be identical too: status, header fields
// (without Date, Alt-Svc and the hop-by-hop fields, which are checked
// separately), body and trailers.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordedRequest is one HTTP/1.1 request as the origin received it.
type recordedRequest struct {
	Method  string
	Head    []byte // request line and header section through the empty line, as received
	Framing string // "none", "content-length" or "chunked"
	Payload []byte // the body without chunked framing
	Trailer []byte // a chunked body's trailer section as received, without the final CRLF
	Err     error  // the request could not be read; the connection was closed
}

// fields parses the head into (name, value) pairs in order of arrival.
func (r recordedRequest) fields() [][2]string {
	var out [][2]string
	lines := strings.Split(string(r.Head), "\r\n")
	for _, l := range lines[1:] {
		if l == "" {
			break
		}
		name, value, _ := strings.Cut(l, ":")
		out = append(out, [2]string{name, strings.Trim(value, " \t")})
	}
	return out
}

func (r recordedRequest) requestLine() string {
	line, _, _ := strings.Cut(string(r.Head), "\r\n")
	return line
}

// values returns the values of every field line named name, in order.
func (r recordedRequest) values(name string) []string {
	var out []string
	for _, f := range r.fields() {
		if strings.EqualFold(f[0], name) {
			out = append(out, f[1])
		}
	}
	return out
}

// trailerValues parses the trailer section like the header section.
func (r recordedRequest) trailerValues(name string) []string {
	var out []string
	for _, l := range strings.Split(string(r.Trailer), "\r\n") {
		n, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(n, name) {
			out = append(out, strings.Trim(v, " \t"))
		}
	}
	return out
}

// recorder is the raw-socket origin. It reads each request's bytes exactly,
// records them, and answers every request with recorderResponse on a
// persistent connection.
type recorder struct {
	ln   net.Listener
	reqs chan recordedRequest
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool // guarded by mu
}

func startRecorder(t *testing.T) *recorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln, reqs: make(chan recordedRequest, 100), conns: map[net.Conn]bool{}}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(r.close)
	return r
}

func (r *recorder) addr() string { return r.ln.Addr().String() }

func (r *recorder) accept() {
	defer r.wg.Done()
	for range 10000 {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		r.conns[c] = true
		r.mu.Unlock()
		r.wg.Add(1)
		go r.serve(c)
	}
}

func (r *recorder) close() {
	r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *recorder) serve(c net.Conn) {
	defer r.wg.Done()
	defer func() {
		c.Close()
		r.mu.Lock()
		delete(r.conns, c)
		r.mu.Unlock()
	}()
	br := bufio.NewReader(c)
	for range 10000 {
		rec, err := readRecordedRequest(br)
		if errors.Is(err, io.EOF) && rec.Head == nil {
			return // the proxy closed an idle connection
		}
		if err != nil {
			rec.Err = err
		}
		select {
		case r.reqs <- rec:
		case <-time.After(10 * time.Second):
			return // nobody is reading records; the test has failed already
		}
		if err != nil {
			return
		}
		if _, err := c.Write(recorderResponse(rec.Method)); err != nil {
			return
		}
	}
}

// next returns the next recorded request, waiting at most d.
func (r *recorder) next(d time.Duration) (recordedRequest, bool) {
	select {
	case rec := <-r.reqs:
		return rec, true
	case <-time.After(d):
		return recordedRequest{}, false
	}
}

// drain returns whatever requests are already recorded.
func (r *recorder) drain() []recordedRequest {
	var out []recordedRequest
	for range cap(r.reqs) + 1 {
		select {
		case rec := <-r.reqs:
			out = append(out, rec)
		default:
			return out
		}
	}
	return out
}

// readRecordedRequest reads one request strictly: CRLF line endings, at
// most one Content-Length, never both Content-Length and
// Transfer-Encoding, chunked as the final coding.
func readRecordedRequest(br *bufio.Reader) (recordedRequest, error) {
	var rec recordedRequest
	var head bytes.Buffer
	contentLength := int64(-1)
	var transferEncoding []string
	readLine := func() (string, error) {
		line, err := br.ReadString('\n')
		if err != nil {
			return line, err
		}
		if !strings.HasSuffix(line, "\r\n") {
			return line, fmt.Errorf("line without CRLF: %q", line)
		}
		return strings.TrimSuffix(line, "\r\n"), nil
	}
	for i := 0; ; i++ {
		if i > 200 {
			return rec, errors.New("more than 200 header lines")
		}
		line, err := readLine()
		if err != nil {
			if i == 0 && line == "" && errors.Is(err, io.EOF) {
				return rec, io.EOF
			}
			rec.Head = head.Bytes()
			return rec, fmt.Errorf("reading the head: %w (after %q)", err, head.String())
		}
		head.WriteString(line + "\r\n")
		if i == 0 {
			rec.Method, _, _ = strings.Cut(line, " ")
			continue
		}
		if line == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return rec, fmt.Errorf("field line without colon: %q", line)
		}
		value = strings.Trim(value, " \t")
		switch strings.ToLower(name) {
		case "content-length":
			if contentLength >= 0 {
				return rec, errors.New("repeated Content-Length")
			}
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 {
				return rec, fmt.Errorf("bad Content-Length %q", value)
			}
			contentLength = n
		case "transfer-encoding":
			for _, coding := range strings.Split(value, ",") {
				transferEncoding = append(transferEncoding, strings.ToLower(strings.TrimSpace(coding)))
			}
		}
	}
	rec.Head = head.Bytes()
	switch {
	case len(transferEncoding) > 0 && contentLength >= 0:
		return rec, errors.New("both Content-Length and Transfer-Encoding (RFC 9112 §6.1)")
	case len(transferEncoding) > 0:
		if transferEncoding[len(transferEncoding)-1] != "chunked" {
			return rec, fmt.Errorf("Transfer-Encoding %q does not end in chunked", transferEncoding)
		}
		rec.Framing = "chunked"
		var payload, trailer bytes.Buffer
		for i := 0; ; i++ {
			if i > 1<<20 {
				return rec, errors.New("too many chunks")
			}
			line, err := readLine()
			if err != nil {
				return rec, fmt.Errorf("reading a chunk size: %w", err)
			}
			sizeStr, _, _ := strings.Cut(line, ";")
			size, err := strconv.ParseInt(strings.TrimSpace(sizeStr), 16, 64)
			if err != nil || size < 0 || size > 64<<20 {
				return rec, fmt.Errorf("bad chunk size line %q", line)
			}
			if size == 0 {
				for j := 0; ; j++ {
					if j > 100 {
						return rec, errors.New("more than 100 trailer lines")
					}
					tl, err := readLine()
					if err != nil {
						return rec, fmt.Errorf("reading the trailer section: %w", err)
					}
					if tl == "" {
						break
					}
					trailer.WriteString(tl + "\r\n")
				}
				break
			}
			if _, err := io.CopyN(&payload, br, size); err != nil {
				return rec, fmt.Errorf("reading %d chunk bytes: %w", size, err)
			}
			if crlf, err := readLine(); err != nil || crlf != "" {
				return rec, fmt.Errorf("chunk data not followed by CRLF: %q %v", crlf, err)
			}
		}
		rec.Payload, rec.Trailer = payload.Bytes(), trailer.Bytes()
	case contentLength >= 0:
		rec.Framing = "content-length"
		rec.Payload = make([]byte, contentLength)
		if _, err := io.ReadFull(br, rec.Payload); err != nil {
			return rec, fmt.Errorf("reading %d body bytes: %w", contentLength, err)
		}
	default:
		rec.Framing = "none"
	}
	return rec, nil
}

// The recorder's answer to every request: end-to-end fields, a repeated
// field, hop-by-hop fields (a field nominated by Connection, Keep-Alive)
// and a chunked body with a trailer field.
const (
	// originKeepAlive is distinctive so that it can be told apart from a
	// Keep-Alive the proxy sends HTTP/1.1 clients for its own hop.
	originKeepAlive = "timeout=7, max=997"
	recorderBody    = "hello from the recorder origin"
	recorderHeader  = "HTTP/1.1 200 OK\r\n" +
		"Cache-Control: no-store\r\n" +
		"Connection: X-Resp-Hop\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Keep-Alive: " + originKeepAlive + "\r\n" +
		"Trailer: X-Resp-Trailer\r\n" +
		"Transfer-Encoding: chunked\r\n" +
		"X-Multi: a\r\n" +
		"X-Multi: b\r\n" +
		"X-Origin: recorder\r\n" +
		"X-Resp-Hop: 1\r\n" +
		"\r\n"
)

func recorderResponse(method string) []byte {
	if method == http.MethodHead {
		return []byte(recorderHeader) // RFC 9110 §9.3.2: the same header, no content
	}
	var b strings.Builder
	b.WriteString(recorderHeader)
	for _, chunk := range []string{recorderBody[:10], recorderBody[10:]} {
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(chunk), chunk)
	}
	b.WriteString("0\r\nX-Resp-Trailer: done\r\n\r\n")
	return []byte(b.String())
}

// A matrix case builds one request; every mode sends the same request,
// with the fields its client allows.
type matrixCase struct {
	name   string
	method string
	target string // path and query
	header http.Header
	// h1Header is added only over HTTP/1.1: the connection-specific fields
	// Go's HTTP/2 and HTTP/3 clients refuse or silently drop (RFC 9113
	// §8.2.2, RFC 9114 §4.2).
	h1Header http.Header
	// body is sent with a declared Content-Length unless streamed.
	body     string
	streamed bool
	// trailer, if set, is sent as a request trailer field X-Req-Trailer.
	trailer string
	// wantFraming, if set, is the framing the origin must see.
	wantFraming string
}

const reqTrailerName = "X-Req-Trailer"

var matrixCases = []matrixCase{
	{
		name:   "get-with-query",
		method: http.MethodGet,
		target: "/matrix/get?a=1&b=two%20words&c=%2Fslash",
		header: http.Header{
			"Accept":  {"*/*"},
			"X-Test":  {"one"},
			"X-Multi": {"a", "b"},
		},
		wantFraming: "none",
	},
	{
		name:        "head",
		method:      http.MethodHead,
		target:      "/matrix/head",
		header:      http.Header{"Accept": {"text/plain"}},
		wantFraming: "none",
	},
	{
		name:        "post-content-length",
		method:      http.MethodPost,
		target:      "/matrix/post",
		header:      http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
		body:        "field=value&other=%C3%A9&n=42",
		wantFraming: "content-length",
	},
	{
		name:     "post-streamed-unknown-length",
		method:   http.MethodPost,
		target:   "/matrix/stream",
		header:   http.Header{"Content-Type": {"application/octet-stream"}},
		body:     strings.Repeat("0123456789abcdef", 1024) + "tail-of-the-stream",
		streamed: true,
	},
	{
		name:   "hop-by-hop-request-fields",
		method: http.MethodGet,
		target: "/matrix/hop",
		// TE: trailers is the one connection-specific field every
		// protocol may carry (RFC 9113 §8.2.2, RFC 9114 §4.2).
		header: http.Header{"Te": {"trailers"}},
		h1Header: http.Header{
			"Connection":       {"X-Custom"},
			"X-Custom":         {"1"},
			"Keep-Alive":       {"timeout=5, max=100"},
			"Proxy-Connection": {"keep-alive"},
			"Upgrade":          {"example/1"},
		},
		wantFraming: "none",
	},
	{
		name:        "request-trailers",
		method:      http.MethodPost,
		target:      "/matrix/trailers",
		header:      http.Header{"Content-Type": {"text/plain"}},
		body:        "body before the trailer",
		streamed:    true,
		trailer:     "sent-after-body",
		wantFraming: "chunked", // HTTP/1.1 carries trailers only in chunked
	},
}

// hopByHopRequestNames are fields that must never reach the origin from
// the client (RFC 9110 §7.6.1). Connection, TE and Transfer-Encoding are
// checked separately: the proxy may send its own for its own hop.
var hopByHopRequestNames = []string{"X-Custom", "Keep-Alive", "Proxy-Connection", "Upgrade"}

// hopByHopResponseNames must never reach a client.
var hopByHopResponseNames = []string{"X-Resp-Hop", "Keep-Alive", "Proxy-Connection", "Upgrade", "Te", "Transfer-Encoding"}

// trailerBody is a body of unknown length that sets the request trailer
// when the transport reads its end, the way net/http documents.
type trailerBody struct {
	r       io.Reader
	req     *http.Request
	trailer string
}

func (b *trailerBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF && b.trailer != "" {
		b.req.Trailer.Set(reqTrailerName, b.trailer)
	}
	return n, err
}

// Close unblocks the writer of a piped body when the transport gives up.
func (b *trailerBody) Close() error {
	if c, ok := b.r.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

func (tc matrixCase) request(t *testing.T, h *instance, m mode) *http.Request {
	t.Helper()
	req, err := http.NewRequest(tc.method, h.url(tc.target), nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vv := range tc.header {
		req.Header[k] = slices.Clone(vv)
	}
	if m == modeH1 {
		for k, vv := range tc.h1Header {
			req.Header[k] = slices.Clone(vv)
		}
	}
	req.Header.Set("User-Agent", "hoplite-interop/1")
	switch {
	case tc.body == "":
	case !tc.streamed:
		req.Body = io.NopCloser(strings.NewReader(tc.body))
		req.ContentLength = int64(len(tc.body))
	default:
		// Written in pieces through a pipe: the client cannot know the
		// length and sends it as it comes.
		pr, pw := io.Pipe()
		go func() {
			rest := tc.body
			for len(rest) > 0 {
				n := min(len(rest), 5000)
				if _, err := pw.Write([]byte(rest[:n])); err != nil {
					return
				}
				rest = rest[n:]
			}
			pw.Close()
		}()
		req.Body = &trailerBody{r: pr, req: req, trailer: tc.trailer}
		req.ContentLength = -1
		if tc.trailer != "" {
			req.Trailer = http.Header{reqTrailerName: nil}
		}
	}
	return req
}

// exchange is what one request produced at both ends.
type exchange struct {
	origin recordedRequest
	status int
	header http.Header
	body   []byte
	trail  http.Header
}

func TestProtocolMatrix(t *testing.T) {
	rec := startRecorder(t)
	h := startHoplite(t, Config{
		HTTP3:    true,
		Routes:   []Route{{Path: "/", Backend: "recorder"}},
		Backends: map[string]Backend{"recorder": {Servers: []string{"http://" + rec.addr()}}},
	}, newPKI(t))

	results := map[mode]map[string]exchange{}
	runModes(t, allModes, func(t *testing.T, m mode) {
		c := h.client(t, m, nil)
		results[m] = map[string]exchange{}
		for _, tc := range matrixCases {
			t.Run(tc.name, func(t *testing.T) {
				ex, ok := doMatrixCase(t, h, rec, c, m, tc)
				if ok {
					results[m][tc.name] = ex
				}
			})
		}
	})

	// Cross-protocol comparisons, against HTTP/1.1 as the reference.
	for _, tc := range matrixCases {
		t.Run("same-across-protocols/"+tc.name, func(t *testing.T) {
			ref, ok := results[modeH1][tc.name]
			if !ok {
				t.Fatalf("no HTTP/1.1 result to compare with (see the h1/%s failure)", tc.name)
			}
			for _, m := range allModes[1:] {
				got, ok := results[m][tc.name]
				if !ok {
					t.Errorf("%s: no result to compare (see the %s/%s failure)", m, m, tc.name)
					continue
				}
				compareOrigin(t, modeH1, ref.origin, m, got.origin)
				compareResponse(t, modeH1, ref, m, got)
			}
		})
	}
}

// doMatrixCase sends tc over m and checks everything that does not need
// another protocol's result.
func doMatrixCase(t *testing.T, h *instance, rec *recorder, c *http.Client, m mode, tc matrixCase) (exchange, bool) {
	if stale := rec.drain(); len(stale) > 0 {
		t.Errorf("origin received %d request(s) nobody sent in this case; first: %q", len(stale), stale[0].Head)
	}
	req := tc.request(t, h, m)
	resp, body, err := fetch(c, req)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", tc.method, tc.target, m, err)
	}
	ex := exchange{status: resp.StatusCode, header: resp.Header, body: body, trail: resp.Trailer}
	o, ok := rec.next(5 * time.Second)
	if !ok {
		t.Fatalf("the origin received no request (client got %d %q)", resp.StatusCode, body)
	}
	ex.origin = o
	if o.Err != nil {
		t.Fatalf("the origin could not read the request: %v\nhead:\n%s", o.Err, o.Head)
	}
	if more := rec.drain(); len(more) > 0 {
		t.Errorf("one client request reached the origin %d times", 1+len(more))
	}

	// The client side.
	if resp.Proto != m.proto() {
		t.Errorf("client used %s, want %s", resp.Proto, m.proto())
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d, want 200; body %q", resp.StatusCode, body)
	}
	wantBody := recorderBody
	if tc.method == http.MethodHead {
		wantBody = ""
	}
	if string(body) != wantBody {
		t.Errorf("response body %q, want %q", body, wantBody)
	}
	if tc.method == http.MethodHead {
		// RFC 9110 §8.6: Content-Length in a HEAD response must be the
		// length a GET would have; the origin sent none (chunked).
		if cl := resp.Header.Values("Content-Length"); cl != nil && !slices.Equal(cl, []string{strconv.Itoa(len(recorderBody))}) {
			t.Errorf("HEAD response has Content-Length %q, but a GET has %d bytes of content (RFC 9110 §8.6)", cl, len(recorderBody))
		}
	} else {
		if got := resp.Trailer.Values("X-Resp-Trailer"); !slices.Equal(got, []string{"done"}) {
			t.Errorf("response trailer X-Resp-Trailer = %q, want [done] (all trailers: %v)", got, resp.Trailer)
		}
	}
	if got := resp.Header.Values("X-Origin"); !slices.Equal(got, []string{"recorder"}) {
		t.Errorf("response X-Origin = %q, want [recorder]", got)
	}
	if got := strings.Join(resp.Header.Values("X-Multi"), ", "); got != "a, b" {
		t.Errorf("response X-Multi = %q, want the values a, b in order", got)
	}
	for _, name := range hopByHopResponseNames {
		v, ok := resp.Header[name]
		if !ok {
			continue
		}
		if m == modeH1 && name == "Keep-Alive" && !strings.Contains(strings.Join(v, ","), "max=997") {
			// The proxy's own hint for its HTTP/1.1 client hop (RFC 9112
			// §9.3, ARCHITECTURE.md hop rules), not the origin's.
			continue
		}
		t.Errorf("hop-by-hop response field reached the client: %s: %q", name, v)
	}
	for _, v := range resp.Header.Values("Connection") {
		if m != modeH1 {
			t.Errorf("Connection field in an %s response (RFC 9113 §8.2.2 / RFC 9114 §4.2): %q", m, v)
		} else if strings.Contains(strings.ToLower(v), "x-resp-hop") {
			t.Errorf("origin's Connection option reached the client: Connection: %q", v)
		}
	}
	if m != modeH3 {
		want := fmt.Sprintf(`h3=":%d"`, h.port)
		if got := resp.Header.Get("Alt-Svc"); !strings.Contains(got, want) {
			t.Errorf("Alt-Svc = %q, want it to advertise %s", got, want)
		}
	}

	// The origin side.
	if got, want := o.requestLine(), tc.method+" "+tc.target+" HTTP/1.1"; got != want {
		t.Errorf("origin request line %q, want %q", got, want)
	}
	wantOne := map[string]string{
		"Host":              h.authority,
		"Via":               m.via(),
		"X-Forwarded-For":   "127.0.0.1",
		"X-Forwarded-Proto": "https",
		"X-Forwarded-Host":  h.authority,
		"User-Agent":        "hoplite-interop/1",
	}
	for name, want := range wantOne {
		if got := o.values(name); !slices.Equal(got, []string{want}) {
			t.Errorf("origin got %s %q, want exactly [%q]", name, got, want)
		}
	}
	for name, vv := range tc.header {
		if strings.EqualFold(name, "Te") {
			continue
		}
		if got, want := strings.Join(o.values(name), ", "), strings.Join(vv, ", "); got != want {
			t.Errorf("origin got %s %q, want %q", name, got, want)
		}
	}
	for _, name := range hopByHopRequestNames {
		if v := o.values(name); v != nil {
			t.Errorf("hop-by-hop field reached the origin: %s: %q", name, v)
		}
	}
	for _, v := range o.values("Connection") {
		for _, opt := range strings.Split(v, ",") {
			opt = strings.ToLower(strings.TrimSpace(opt))
			if opt != "keep-alive" && opt != "te" {
				t.Errorf("origin got Connection option %q (only the proxy's own keep-alive or te may appear)", opt)
			}
		}
	}
	if te := o.values("Te"); te != nil && !slices.Equal(te, []string{"trailers"}) {
		t.Errorf("origin got TE %q; only trailers may be forwarded", te)
	}
	if te := o.values("Transfer-Encoding"); te != nil && (!slices.Equal(te, []string{"chunked"}) || o.Framing != "chunked") {
		t.Errorf("origin got Transfer-Encoding %q", te)
	}
	if tc.wantFraming != "" && o.Framing != tc.wantFraming {
		t.Errorf("origin body framing %s, want %s", o.Framing, tc.wantFraming)
	}
	if string(o.Payload) != tc.body {
		t.Errorf("origin payload (%d bytes) differs from what the client sent (%d bytes): %.80q...", len(o.Payload), len(tc.body), o.Payload)
	}
	if tc.trailer != "" {
		if got := o.trailerValues(reqTrailerName); !slices.Equal(got, []string{tc.trailer}) {
			t.Errorf("origin trailer %s = %q, want [%q] (trailer section %q)", reqTrailerName, got, tc.trailer, o.Trailer)
		}
	} else if len(o.Trailer) > 0 {
		t.Errorf("origin got a trailer section nobody sent: %q", o.Trailer)
	}
	if t.Failed() {
		t.Logf("origin received over %s:\n%s[%s body, %d payload bytes, trailer %q]", m, o.Head, o.Framing, len(o.Payload), o.Trailer)
	}
	return ex, true
}

// normalizedHead replaces the received-protocol in Via, the one part of
// the upstream request that legitimately depends on the client protocol.
func normalizedHead(m mode, r recordedRequest) string {
	lines := strings.Split(string(r.Head), "\r\n")
	for i, l := range lines {
		name, value, ok := strings.Cut(l, ":")
		if i > 0 && ok && strings.EqualFold(name, "via") {
			value = strings.Replace(value, m.via(), "<proto> hoplite", 1)
			lines[i] = name + ":" + value
		}
	}
	return strings.Join(lines, "\r\n")
}

func compareOrigin(t *testing.T, refMode mode, ref recordedRequest, m mode, got recordedRequest) {
	if a, b := normalizedHead(refMode, ref), normalizedHead(m, got); a != b {
		t.Errorf("the origin received different request heads (Via protocol normalised):\n--- %s:\n%s--- %s:\n%s", refMode, a, m, b)
	}
	if ref.Framing != got.Framing {
		t.Errorf("origin body framing: %s %s, %s %s", refMode, ref.Framing, m, got.Framing)
	}
	if !bytes.Equal(ref.Payload, got.Payload) {
		t.Errorf("origin payload differs: %s %d bytes, %s %d bytes", refMode, len(ref.Payload), m, len(got.Payload))
	}
	if !bytes.Equal(ref.Trailer, got.Trailer) {
		t.Errorf("origin trailer section: %s %q, %s %q", refMode, ref.Trailer, m, got.Trailer)
	}
}

// comparableHeader drops what legitimately differs between protocols (Date,
// Alt-Svc), the hop-by-hop fields, whose absence doMatrixCase checks, and
// Trailer, compared by declaredTrailers.
func comparableHeader(h http.Header) http.Header {
	c := h.Clone()
	for _, name := range append([]string{"Date", "Alt-Svc", "Connection", "Trailer"}, hopByHopResponseNames...) {
		c.Del(name)
	}
	return c
}

func compareResponse(t *testing.T, refMode mode, ref exchange, m mode, got exchange) {
	if ref.status != got.status {
		t.Errorf("status: %s %d, %s %d", refMode, ref.status, m, got.status)
	}
	if a, b := comparableHeader(ref.header), comparableHeader(got.header); !sameFields(a, b) {
		t.Errorf("response header fields differ (Date, Alt-Svc, hop-by-hop removed):\n%s: %v\n%s: %v", refMode, a, m, b)
	}
	if !bytes.Equal(ref.body, got.body) {
		t.Errorf("response body: %s %q, %s %q", refMode, ref.body, m, got.body)
	}
	if a, b := declaredTrailers(ref), declaredTrailers(got); !slices.Equal(a, b) {
		t.Errorf("declared response trailers: %s %q, %s %q", refMode, a, m, b)
	}
	if a, b := trailerValues(ref.trail), trailerValues(got.trail); !sameFields(a, b) {
		t.Errorf("response trailers: %s %v, %s %v", refMode, a, m, b)
	}
}

// declaredTrailers is the set of trailer names a response announced. The
// Go clients show the announcement differently: net/http keeps the
// Trailer field in the header of a response without content (HEAD), the
// HTTP/2 and HTTP/3 clients always move it into Response.Trailer keys. So
// both places count.
func declaredTrailers(ex exchange) []string {
	var names []string
	for _, v := range ex.header.Values("Trailer") {
		for _, name := range strings.Split(v, ",") {
			names = append(names, http.CanonicalHeaderKey(strings.TrimSpace(name)))
		}
	}
	for name := range ex.trail {
		names = append(names, name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// trailerValues drops announced trailer names that got no value.
func trailerValues(h http.Header) http.Header {
	out := http.Header{}
	for k, vv := range h {
		if len(vv) > 0 {
			out[k] = vv
		}
	}
	return out
}

// sameFields compares field maps, taking nil and empty as equal.
func sameFields(a, b http.Header) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}
