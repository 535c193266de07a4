package translate

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

// trackingBody is a request body that records being closed.
type trackingBody struct {
	io.Reader
	mu     sync.Mutex
	closed bool
}

func (b *trackingBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

type contentWant struct {
	nilBody bool
	length  int64
	content string // read from the upstream body when not nil
	same    bool   // upstream body is the downstream one, untouched
}

type contentCase struct {
	name   string
	method string
	body   func() io.ReadCloser // downstream Body
	length int64                // downstream ContentLength
	want   contentWant
}

func TestRequestContent(t *testing.T) {
	tests := []contentCase{
		{"nil body", "POST", func() io.ReadCloser { return nil }, 0, contentWant{nilBody: true}},
		{"NoBody", "POST", func() io.ReadCloser { return http.NoBody }, 0, contentWant{nilBody: true}},
		{"NoBody with unknown length", "GET", func() io.ReadCloser { return http.NoBody }, -1, contentWant{nilBody: true}},
		{"length 0 with a body", "POST", func() io.ReadCloser { return io.NopCloser(strings.NewReader("")) }, 0, contentWant{nilBody: true}},
		{"known length", "POST", func() io.ReadCloser { return io.NopCloser(strings.NewReader("hello")) }, 5, contentWant{length: 5, content: "hello", same: true}},
		{"known length GET", "GET", func() io.ReadCloser { return io.NopCloser(strings.NewReader("hello")) }, 5, contentWant{length: 5, content: "hello", same: true}},
		{"unknown length POST", "POST", func() io.ReadCloser { return io.NopCloser(strings.NewReader("stream")) }, -1, contentWant{length: -1, content: "stream", same: true}},
		{"unknown length PUT, empty", "PUT", func() io.ReadCloser { return io.NopCloser(strings.NewReader("")) }, -1, contentWant{length: -1, content: "", same: true}},
	}
	for _, m := range []string{"GET", "HEAD", "DELETE", "OPTIONS", "TRACE"} {
		tests = append(tests,
			contentCase{"HTTP/1.1 " + m + " of unknown length is not probed", m, func() io.ReadCloser { return io.NopCloser(strings.NewReader("")) }, -1, contentWant{length: -1, content: ""}},
			contentCase{"probe " + m + " empty", m, func() io.ReadCloser { return io.NopCloser(strings.NewReader("")) }, -1, contentWant{nilBody: true}},
			contentCase{"probe " + m + " with data", m, func() io.ReadCloser { return io.NopCloser(strings.NewReader("hello world")) }, -1, contentWant{length: -1, content: "hello world"}},
			contentCase{"probe " + m + " one byte at a time", m, func() io.ReadCloser {
				return io.NopCloser(iotest.OneByteReader(strings.NewReader("xyz")))
			}, -1, contentWant{length: -1, content: "xyz"}},
			contentCase{"probe " + m + " single byte with EOF", m, func() io.ReadCloser {
				return io.NopCloser(iotest.DataErrReader(strings.NewReader("z")))
			}, -1, contentWant{length: -1, content: "z"}},
		)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var content string
			var readErr error
			rt := &fakeRT{reply: func(req *http.Request) (*http.Response, error) {
				if req.Body != nil {
					b, err := io.ReadAll(req.Body)
					content, readErr = string(b), err
				}
				return newResp(req, http.StatusOK, nil, ""), nil
			}}
			h := newHandler(t, rt)
			r := httptest.NewRequest(tt.method, "/", nil)
			if strings.HasPrefix(tt.name, "probe ") {
				r.ProtoMajor, r.ProtoMinor = 3, 0 // only HTTP/3 is probed
			}
			r.Body = tt.body()
			r.ContentLength = tt.length
			downstream := r.Body
			h.ServeHTTP(httptest.NewRecorder(), r)
			out := rt.only(t)
			if tt.want.nilBody {
				if out.Body != nil {
					t.Errorf("upstream Body = %T, want nil", out.Body)
				}
				if out.ContentLength != 0 {
					t.Errorf("upstream ContentLength = %d, want 0", out.ContentLength)
				}
				return
			}
			if out.Body == nil {
				t.Fatal("upstream Body = nil, want content")
			}
			if out.ContentLength != tt.want.length {
				t.Errorf("upstream ContentLength = %d, want %d", out.ContentLength, tt.want.length)
			}
			if readErr != nil || content != tt.want.content {
				t.Errorf("upstream content = %q, %v; want %q", content, readErr, tt.want.content)
			}
			if tt.want.same && out.Body != downstream {
				t.Errorf("upstream Body is a %T, want the downstream body itself", out.Body)
			}
		})
	}
}

// After the probe, closing the upstream body closes the downstream one.
func TestProbedBodyCloses(t *testing.T) {
	body := &trackingBody{Reader: strings.NewReader("data")}
	rt := &fakeRT{reply: func(req *http.Request) (*http.Response, error) {
		req.Body.Close()
		return newResp(req, http.StatusOK, nil, ""), nil
	}}
	h := newHandler(t, rt)
	r := httptest.NewRequest("GET", "/", nil)
	r.Body, r.ContentLength = body, -1
	h.ServeHTTP(httptest.NewRecorder(), r)
	body.mu.Lock()
	defer body.mu.Unlock()
	if !body.closed {
		t.Error("downstream body not closed through the upstream one")
	}
}

// The probe bounds its wait with the writer's read deadline, and clears it.
func TestProbeDeadline(t *testing.T) {
	tests := []struct {
		name        string
		body        io.Reader
		wantNil     bool
		wantContent string
		wantErr     error
	}{
		{"empty", strings.NewReader(""), true, "", nil},
		{"data", strings.NewReader("abc"), false, "abc", nil},
		{"timeout passes the body on", iotest.ErrReader(os.ErrDeadlineExceeded), false, "", os.ErrDeadlineExceeded},
		{"failure reaches the backend", iotest.ErrReader(errors.New("stream reset")), false, "", errors.New("stream reset")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var content string
			var readErr error
			rt := &fakeRT{reply: func(req *http.Request) (*http.Response, error) {
				if req.Body != nil {
					b, err := io.ReadAll(req.Body)
					content, readErr = string(b), err
				}
				return newResp(req, http.StatusOK, nil, ""), nil
			}}
			h := newHandler(t, rt)
			w := &deadlineWriter{ResponseRecorder: httptest.NewRecorder()}
			r := httptest.NewRequest("GET", "/", nil)
			r.ProtoMajor, r.ProtoMinor = 3, 0
			r.Body, r.ContentLength = io.NopCloser(tt.body), -1
			start := time.Now()
			h.ServeHTTP(w, r)
			out := rt.only(t)

			if len(w.deadlines) != 2 {
				t.Fatalf("SetReadDeadline calls = %v, want a deadline then zero", w.deadlines)
			}
			if d := w.deadlines[0]; d.Before(start) || d.After(start.Add(time.Second)) {
				t.Errorf("probe deadline %v not shortly after %v", d, start)
			}
			if !w.deadlines[1].IsZero() {
				t.Errorf("deadline not cleared: %v", w.deadlines[1])
			}
			if tt.wantNil != (out.Body == nil) {
				t.Fatalf("upstream Body nil = %v, want %v", out.Body == nil, tt.wantNil)
			}
			if tt.wantNil {
				return
			}
			if out.ContentLength != -1 {
				t.Errorf("ContentLength = %d, want -1", out.ContentLength)
			}
			if content != tt.wantContent {
				t.Errorf("content = %q, want %q", content, tt.wantContent)
			}
			if (readErr == nil) != (tt.wantErr == nil) || readErr != nil && readErr.Error() != tt.wantErr.Error() {
				t.Errorf("read error = %v, want %v", readErr, tt.wantErr)
			}
		})
	}
}

// Bug regression: when the probe's read deadline expires on a real
// frontend connection, the request content that follows must still reach
// the origin. Over net/http's HTTP/1.1 server a read timeout is fatal to
// the connection (its connReader cancels the connection's context, and the
// chunked reader keeps the error); over x/net's HTTP/2 server the expired
// deadline closes the stream's body with the error for good.
func TestProbeTimeoutKeepsSlowContent(t *testing.T) {
	t.Run("h1-chunked-GET", func(t *testing.T) {
		called := make(chan struct{})
		type result struct {
			content string
			err     error
			ctxErr  error
		}
		results := make(chan result, 1)
		rt := &fakeRT{reply: func(req *http.Request) (*http.Response, error) {
			close(called)
			var res result
			if req.Body == nil {
				res.err = errors.New("upstream Body is nil")
			} else {
				b, err := io.ReadAll(req.Body)
				res.content, res.err = string(b), err
			}
			res.ctxErr = req.Context().Err()
			results <- res
			return newResp(req, http.StatusOK, nil, "done"), nil
		}}
		srv, _ := startProxy(t, modeH1, newHandler(t, rt))
		c, br := rawConn(t, srv)
		fmt.Fprint(c, "GET /slow HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n")
		// The content comes only after the probe gave up.
		recvOrFail(t, called, "upstream RoundTrip")
		fmt.Fprint(c, "5\r\nhello\r\n0\r\n\r\n")
		res := recvOrFail(t, results, "upstream read")
		if res.err != nil || res.content != "hello" {
			t.Errorf("upstream content = %q, %v; want %q", res.content, res.err, "hello")
		}
		if res.ctxErr != nil {
			t.Errorf("upstream context done after the probe: %v", res.ctxErr)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no response: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("status = %d", resp.StatusCode)
		}
	})
	t.Run("h2-GET", func(t *testing.T) {
		called := make(chan struct{})
		type result struct {
			content string
			err     error
		}
		results := make(chan result, 1)
		rt := &fakeRT{reply: func(req *http.Request) (*http.Response, error) {
			close(called)
			var res result
			if req.Body == nil {
				res.err = errors.New("upstream Body is nil")
			} else {
				b, err := io.ReadAll(req.Body)
				res.content, res.err = string(b), err
			}
			results <- res
			return newResp(req, http.StatusOK, nil, "done"), nil
		}}
		srv, c := startProxy(t, modeH2, newHandler(t, rt))
		pr, pw := io.Pipe()
		defer pw.Close()
		req, _ := http.NewRequest("GET", srv.URL+"/slow", pr)
		req.ContentLength = -1
		errc := make(chan error, 1)
		go func() {
			resp, err := c.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			errc <- err
		}()
		recvOrFail(t, called, "upstream RoundTrip")
		go func() {
			pw.Write([]byte("hello"))
			pw.Close()
		}()
		res := recvOrFail(t, results, "upstream read")
		if res.err != nil || res.content != "hello" {
			t.Errorf("upstream content = %q, %v; want %q", res.content, res.err, "hello")
		}
		pw.CloseWithError(errors.New("test over"))
		recvOrFail(t, errc, "client done")
	})
}

// pieceBody is an upstream response body that hands out one piece per
// Read, each only when the test releases it.
type pieceBody struct {
	pieces  chan string
	closed  chan struct{}
	once    sync.Once
	lastEOF bool // return io.EOF together with the last piece
	last    string
}

func (b *pieceBody) Read(p []byte) (int, error) {
	select {
	case s, ok := <-b.pieces:
		if !ok {
			return 0, io.EOF
		}
		n := copy(p, s)
		if b.lastEOF && s == b.last {
			return n, io.EOF
		}
		return n, nil
	case <-b.closed:
		return 0, errors.New("closed")
	}
}

func (b *pieceBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

// A response produced in pieces reaches a real client piece by piece,
// before the upstream body ends: the client reads the first piece while
// the upstream side is still blocked on the second.
func TestStreamingFlushesEachPiece(t *testing.T) {
	runModes(t, allModes, func(t *testing.T, m mode) {
		pr, pw := io.Pipe()
		rt := &fakeRT{reply: func(req *http.Request) (*http.Response, error) {
			resp := newResp(req, http.StatusOK, http.Header{"Content-Type": {"text/event-stream"}}, "")
			resp.Body = pr
			return resp, nil
		}}
		srv, c := startProxy(t, m, newHandler(t, rt))
		t.Cleanup(func() { pw.CloseWithError(errors.New("test over")) }) // runs before srv.Close
		// The response header itself goes out with the first flush, so
		// the first piece must be on its way before the client waits.
		wrote := make(chan error, 1)
		go func() {
			_, err := pw.Write([]byte("data: one\n\n"))
			wrote <- err
		}()
		resp, err := c.Get(srv.URL + "/events")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := recvOrFail(t, wrote, "first piece consumed"); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len("data: one\n\n"))
		got := make(chan string, 1)
		go func() {
			n, err := io.ReadFull(resp.Body, buf)
			if err != nil {
				got <- "error: " + err.Error()
				return
			}
			got <- string(buf[:n])
		}()
		// The upstream body has neither ended nor produced more: only a
		// flush can have brought the first piece.
		if s := recvOrFail(t, got, "client read of the first piece"); s != "data: one\n\n" {
			t.Fatalf("first piece = %q", s)
		}
		go func() {
			pw.Write([]byte("data: two\n\n"))
			pw.Close()
		}()
		rest, err := io.ReadAll(resp.Body)
		if err != nil || string(rest) != "data: two\n\n" {
			t.Errorf("rest = %q, %v", rest, err)
		}
	})
}

// copyBody with a writer that records each write and flush.
type flushRecorder struct {
	header http.Header
	events []string
}

func (w *flushRecorder) Header() http.Header { return w.header }
func (w *flushRecorder) WriteHeader(int)     {}
func (w *flushRecorder) Write(p []byte) (int, error) {
	w.events = append(w.events, "w:"+string(p))
	return len(p), nil
}
func (w *flushRecorder) Flush() { w.events = append(w.events, "flush") }

func TestCopyBody(t *testing.T) {
	tests := []struct {
		name string
		src  func() io.Reader
		want []string
	}{
		{"one read then EOF", func() io.Reader { return strings.NewReader("all") }, []string{"w:all", "flush"}},
		{"data with EOF: no extra flush", func() io.Reader { return iotest.DataErrReader(strings.NewReader("all")) }, []string{"w:all"}},
		{"pieces, last with EOF", func() io.Reader {
			return iotest.DataErrReader(iotest.OneByteReader(strings.NewReader("abc")))
		}, []string{"w:a", "flush", "w:b", "flush", "w:c"}},
		{"empty", func() io.Reader { return strings.NewReader("") }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &flushRecorder{header: http.Header{}}
			if err := copyBody(w, tt.src()); err != nil {
				t.Fatal(err)
			}
			if strings.Join(w.events, "|") != strings.Join(tt.want, "|") {
				t.Errorf("events = %q, want %q", w.events, tt.want)
			}
		})
	}
}

// A body whose Read returns (n, io.EOF) on its last piece: all of it reaches
// real clients, and the response ends cleanly.
func TestBodyLastPieceWithEOF(t *testing.T) {
	runModes(t, allModes, func(t *testing.T, m mode) {
		rt := &fakeRT{reply: func(req *http.Request) (*http.Response, error) {
			pieces := make(chan string, 3)
			pieces <- "first,"
			pieces <- "second,"
			pieces <- "last"
			close(pieces)
			resp := newResp(req, http.StatusOK, nil, "")
			resp.Body = &pieceBody{pieces: pieces, closed: make(chan struct{}), lastEOF: true, last: "last"}
			return resp, nil
		}}
		srv, c := startProxy(t, m, newHandler(t, rt))
		resp, err := c.Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || string(b) != "first,second,last" {
			t.Errorf("body = %q, %v", b, err)
		}
	})
}

type failingBody struct {
	data []string
	err  error
}

func (b *failingBody) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		return 0, b.err
	}
	n := copy(p, b.data[0])
	b.data = b.data[1:]
	return n, nil
}
func (b *failingBody) Close() error { return nil }

// An upstream failure after the response header can only cut the response
// short: the handler aborts with http.ErrAbortHandler.
func TestUpstreamBodyErrorAborts(t *testing.T) {
	rt := &fakeRT{reply: func(req *http.Request) (*http.Response, error) {
		resp := newResp(req, http.StatusOK, nil, "")
		resp.Body = &failingBody{data: []string{"partial"}, err: errors.New("backend: read 10.0.0.7:80: connection reset")}
		return resp, nil
	}}
	h := newHandler(t, rt)
	rec := httptest.NewRecorder()
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler", v)
		}
		if rec.Body.String() != "partial" {
			t.Errorf("written = %q", rec.Body.String())
		}
	}()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	t.Error("ServeHTTP returned normally")
}

// Real clients see the cut: an error, never a clean end of a short body.
func TestUpstreamBodyErrorRealClients(t *testing.T) {
	for _, withLength := range []bool{false, true} {
		name := "unknown length"
		if withLength {
			name = "declared length"
		}
		t.Run(name, func(t *testing.T) {
			runModes(t, allModes, func(t *testing.T, m mode) {
				rt := &fakeRT{reply: func(req *http.Request) (*http.Response, error) {
					h := http.Header{}
					if withLength {
						h.Set("Content-Length", "100")
					}
					resp := newResp(req, http.StatusOK, h, "")
					resp.Body = &failingBody{data: []string{"first piece"}, err: errors.New("backend: connection reset")}
					return resp, nil
				}}
				srv, c := startProxy(t, m, newHandler(t, rt))
				resp, err := c.Get(srv.URL + "/")
				if err != nil {
					return // cut before the header: an error, as required
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err == nil {
					t.Fatalf("client read %q and a clean EOF; want an error", b)
				}
				if string(b) != "first piece" {
					t.Errorf("client got %q before the error %v", b, err)
				}
			})
		})
	}
}

// Over HTTP/1.1 the cut closes the connection; a client on the same
// connection must not be left waiting for more.
func TestUpstreamBodyErrorClosesH1Connection(t *testing.T) {
	rt := &fakeRT{reply: func(req *http.Request) (*http.Response, error) {
		resp := newResp(req, http.StatusOK, nil, "")
		resp.Body = &failingBody{data: []string{"abc"}, err: errors.New("reset")}
		return resp, nil
	}}
	srv, _ := startProxy(t, modeH1, newHandler(t, rt))
	c, br := rawConn(t, srv)
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Errorf("read %q with a clean end", b)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Error("connection still open after the cut")
	}
}
