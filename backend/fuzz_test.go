package backend

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The round-trip fuzz targets: what the backend writes, net/http reads
// back as the same request with one framing; what the backend accepts from
// an origin, written again as decided, reads back identically.

// fuzzFields turns fuzzed "name: value" lines into a header the way the
// HTTP/1, HTTP/2 and HTTP/3 servers hand one over: canonical keys, values
// in arrival order. With raw, keys stay as written, as a caller that fills
// an http.Header map directly may leave them. Names and values are not
// validated here: rejecting them is the writer's job.
func fuzzFields(data string, raw bool) http.Header {
	h := http.Header{}
	for line := range strings.SplitSeq(data, "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if raw {
			h[name] = append(h[name], value)
		} else {
			h.Add(name, value)
		}
	}
	return h
}

// chunkyReader returns at most n bytes per Read, so that chunk boundaries
// and partial writes vary with the input.
type chunkyReader struct {
	r io.Reader
	n int
}

func (c *chunkyReader) Read(p []byte) (int, error) {
	if len(p) > c.n {
		p = p[:c.n]
	}
	return c.r.Read(p)
}

// fuzzURL builds the upstream URL as translate does: the path, its raw
// (escaped) form when it is one, and the query; "*" is the asterisk form.
func fuzzURL(target string) *url.URL {
	if target == "*" {
		return &url.URL{Path: "*"}
	}
	p, q, hasQuery := strings.Cut(target, "?")
	u := &url.URL{RawQuery: q, ForceQuery: hasQuery && q == ""}
	if unescaped, err := url.PathUnescape(p); err == nil {
		u.Path, u.RawPath = unescaped, p
	} else {
		u.Path = p
	}
	if u.Path == "" || u.Path[0] != '/' {
		// An origin-form target starts with "/" (RFC 9112 §3.2.1);
		// translate's requestPath guarantees it for every request.
		u.Path = "/" + u.Path
		if u.RawPath != "" {
			u.RawPath = "/" + u.RawPath
		}
	}
	return u
}

// Framing choices for FuzzWriteRequest.
const (
	fuzzKnownLength   = iota // Content-Length = len(body)
	fuzzUnknownLength        // ContentLength -1, with trailers
	fuzzNoBody               // Body nil
	fuzzShortBody            // Content-Length larger than the body
	fuzzFramings
)

// FuzzWriteRequest: writeRequestHead and writeRequestBody either refuse
// the request (errInvalidField, errBodyShort) or write bytes that
// net/http's own parser reads back as the same request: method, target,
// Host, fields, content and trailers, with exactly one framing and nothing
// left over after the message.
func FuzzWriteRequest(f *testing.F) {
	type seed struct {
		method, target, host, fields string
		body                         []byte
		framing, chunk               uint8
		trailers                     string
	}
	for _, s := range []seed{
		{"GET", "/a%2Fb?q=1", "origin.test", "Accept: */*\nX-A: 1\nX-A: one", nil, fuzzNoBody, 7, ""},
		{"POST", "/upload", "origin.test:8080", "Content-Type: text/plain", []byte("hello"), fuzzKnownLength, 2, ""},
		{"PUT", "/", "origin.test", "X-B: 2", []byte("hello world"), fuzzUnknownLength, 3, "X-Sum: 9\nX-Sum: 10\nX-Other: a b"},
		{"POST", "/", "origin.test", "", nil, fuzzNoBody, 1, ""},
		{"PATCH", "/", "origin.test", "", nil, fuzzUnknownLength, 1, ""},
		{"POST", "/", "h", "", []byte("hi"), fuzzShortBody, 1, ""},
		{"OPTIONS", "*", "origin.test", "", nil, fuzzNoBody, 1, ""},
		{"GET", "//evil.test/x?", "[::1]:80", "Pragma: no-cache", nil, fuzzNoBody, 1, ""},
		// Framing and routing fields in the header are not the writer's to send.
		{"POST", "/", "origin.test", "Content-Length: 999\nTransfer-Encoding: chunked\nHost: evil\nTrailer: X\nConnection: close",
			[]byte("hi"), fuzzKnownLength, 1, ""},
		{"POST", "/", "origin.test", "Transfer-Encoding: chunked", []byte("0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"), fuzzKnownLength, 64, ""},
		// Injection attempts the writer must refuse.
		{"GET", "/", "origin.test", "X-A: a\r\nX-Evil: 1", nil, fuzzNoBody, 1, ""},
		{"GET", "/", "origin.test", "X A: 1", nil, fuzzNoBody, 1, ""},
		{"GET /x HTTP/1.1\r\n", "/", "origin.test", "", nil, fuzzNoBody, 1, ""},
		{"GET", "/?a b", "origin.test", "", nil, fuzzNoBody, 1, ""},
		{"GET", "/", "a\r\nX: y", "", nil, fuzzNoBody, 1, ""},
		{"PUT", "/", "origin.test", "", []byte("x"), fuzzUnknownLength, 1, "X-T: a\x00b"},
		{"POST", "/", "origin.test", "", nil, fuzzUnknownLength, 2, "X-Empty:"},
		{"GET", "/", "origin.test", "X-Ws:  \t padded \t", nil, fuzzNoBody, 1, ""},
		{"GET", "/\xff?\xfe", "origin.test", "X-Obs: caf\xe9", nil, fuzzNoBody, 1, ""},
	} {
		f.Add(s.method, s.target, s.host, s.fields, s.body, s.framing, s.chunk, s.trailers, false)
	}
	f.Add("GET", "/", "origin.test", "x-a: 1\nX-A: 2\nx-b: 3", []byte(nil), uint8(fuzzNoBody), uint8(1), "", true)
	// Found by the fuzzer: a raw path that encodes its first slash gave
	// the request line "GET %2F HTTP/1.1".
	f.Add("0", "%2F", "0", "", []byte(nil), uint8(fuzzNoBody), uint8(1), "", false)
	f.Fuzz(func(t *testing.T, method, target, host, fields string, body []byte, framingChoice, chunk uint8, trailers string, raw bool) {
		req := &http.Request{
			Method: method,
			URL:    fuzzURL(target),
			Host:   host,
			Header: fuzzFields(fields, raw),
		}
		choice := int(framingChoice) % fuzzFramings
		src := &chunkyReader{r: bytes.NewReader(body), n: int(chunk)%61 + 1}
		switch choice {
		case fuzzKnownLength:
			req.Body, req.ContentLength = io.NopCloser(src), int64(len(body))
		case fuzzUnknownLength:
			req.Body, req.ContentLength = io.NopCloser(src), -1
			// The trailer values are known once the content has been read,
			// as with translate's trailerSync; announced names come first.
			if tr := fuzzFields(trailers, raw); len(tr) > 0 {
				req.Trailer = tr
			}
		case fuzzShortBody:
			req.Body, req.ContentLength = io.NopCloser(src), int64(len(body))+1
		}
		framing := framingOf(req)

		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		err := writeRequestHead(w, req, framing)
		if err == nil && framing != frameNone {
			err = writeRequestBody(w, req, framing)
		}
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			if !errors.Is(err, errInvalidField) && !errors.Is(err, errBodyShort) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if choice == fuzzShortBody {
			t.Fatalf("a body shorter than its Content-Length was written:\n%q", buf.Bytes())
		}
		wire := buf.Bytes()

		// Exactly one framing, the one chosen, in the head as written.
		head, _, ok := bytes.Cut(wire, []byte("\r\n\r\n"))
		if !ok {
			t.Fatalf("no end of header section in %q", wire)
		}
		var nCL, nTE int
		for line := range strings.SplitSeq(string(head), "\r\n") {
			name, _, _ := strings.Cut(line, ":")
			switch {
			case strings.EqualFold(name, "Content-Length"):
				nCL++
			case strings.EqualFold(name, "Transfer-Encoding"):
				nTE++
			}
		}
		wantCL, wantTE := 0, 0
		switch framing {
		case frameLength:
			wantCL = 1
		case frameChunked:
			wantTE = 1
		case frameNone:
			if methodExpectsContent(req.Method) {
				wantCL = 1
			}
		}
		if nCL != wantCL || nTE != wantTE {
			t.Fatalf("framing %d: %d Content-Length and %d Transfer-Encoding fields in\n%q", framing, nCL, nTE, wire)
		}

		br := bufio.NewReader(bytes.NewReader(wire))
		got, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("net/http cannot read what was written: %v\n%q", err, wire)
		}
		content, err := io.ReadAll(got.Body)
		if err != nil {
			t.Fatalf("net/http cannot read the content: %v\n%q", err, wire)
		}
		if n := br.Buffered(); n > 0 {
			rest, _ := br.Peek(n)
			t.Fatalf("%d bytes after the message: %q\nin %q", n, rest, wire)
		}

		wantMethod := req.Method
		if wantMethod == "" {
			wantMethod = http.MethodGet
		}
		if got.Method != wantMethod {
			t.Errorf("method %q, want %q", got.Method, wantMethod)
		}
		if want := req.URL.RequestURI(); got.RequestURI != want {
			t.Errorf("request target %q, want %q", got.RequestURI, want)
		}
		if got.Host != host {
			t.Errorf("Host %q, want %q", got.Host, host)
		}
		wantContent := body
		if framing == frameNone {
			wantContent = nil
		}
		if !bytes.Equal(content, wantContent) {
			t.Errorf("content %q, want %q", content, wantContent)
		}

		// Fields: what the caller passed, less the ones the writer owns,
		// with each value as a recipient sees it (RFC 9110 §5.5: the
		// surrounding whitespace is not part of the value).
		want := http.Header{}
		for _, k := range sortedKeys(req.Header) {
			if skipOnRequest(k) {
				continue
			}
			ck := textproto.CanonicalMIMEHeaderKey(k)
			for _, v := range req.Header[k] {
				want[ck] = append(want[ck], strings.Trim(v, " \t"))
			}
		}
		gotFields := got.Header.Clone()
		for _, k := range []string{"Host", "Connection", "Content-Length", "Transfer-Encoding", "Trailer"} {
			delete(gotFields, k)
		}
		// net/http adds "Cache-Control: no-cache" for a lone "Pragma: no-cache".
		if p := want["Pragma"]; len(p) > 0 && p[0] == "no-cache" && want["Cache-Control"] == nil {
			delete(gotFields, "Cache-Control")
		}
		if !equalHeader(gotFields, want) {
			t.Errorf("fields\n%q\nwant\n%q\nwire %q", gotFields, want, wire)
		}

		// Trailers: the announced names, then the values after the content;
		// framing and routing fields are never sent as trailers
		// (RFC 9110 §6.5.1).
		wantTrailer := http.Header{}
		if framing == frameChunked {
			for k, vv := range req.Trailer {
				ck := textproto.CanonicalMIMEHeaderKey(k)
				switch ck {
				case "Host", "Connection", "Content-Length", "Transfer-Encoding", "Trailer":
					continue
				}
				for _, v := range vv {
					wantTrailer[ck] = append(wantTrailer[ck], strings.Trim(v, " \t"))
				}
			}
		}
		gotTrailer := http.Header{}
		for k, vv := range got.Trailer {
			if len(vv) > 0 {
				gotTrailer[k] = vv
			}
		}
		if !equalHeader(gotTrailer, wantTrailer) {
			t.Errorf("trailers %q, want %q\nwire %q", gotTrailer, wantTrailer, wire)
		}
	})
}

func equalHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		if !slices.Equal(va, b[k]) {
			return false
		}
	}
	return true
}

// parsedResponse is everything the backend takes from one response.
type parsedResponse struct {
	interim []interimHead
	head    *responseHead
	content []byte
	trailer http.Header
	// stray: bytes followed the message. They retire the connection
	// (readResponseHead), and no re-serialisation of the message carries
	// them.
	stray bool
}

type interimHead struct {
	status int
	header http.Header
}

// parseResponse reads a response as the backend does: the head with its
// 1xx responses, then the content with the reader its framing selects. It
// fails where the backend would refuse the response or cut it short.
func parseResponse(br *bufio.Reader, method string, limit int) (*parsedResponse, error) {
	p := &parsedResponse{}
	h, err := readResponseHead(br, method, limit, func(code int, h http.Header) error {
		p.interim = append(p.interim, interimHead{code, h})
		return nil
	})
	if err != nil {
		return nil, err
	}
	p.head = h
	var r io.Reader
	switch {
	case h.bodyLength >= 0:
		r = &lengthReader{br: br, remaining: h.bodyLength}
	case h.bodyLength == lengthChunked:
		p.trailer = http.Header{}
		r = &chunkedReader{br: br, trailer: p.trailer}
	case h.bodyLength == lengthUntilEOF:
		r = eofReader{br: br}
	default:
		return nil, fmt.Errorf("length %d", h.bodyLength)
	}
	if p.content, err = io.ReadAll(r); err != nil {
		return nil, err
	}
	_, err = br.Peek(1)
	p.stray = err == nil
	return p, nil
}

// writeResponse serialises p again: each 1xx head, the status line, the
// parsed fields in sorted order, and the content in the framing the backend
// decided, with the parsed trailers.
func writeResponse(p *parsedResponse, method string) []byte {
	var b bytes.Buffer
	writeFieldLines := func(h http.Header, skip ...string) {
		for _, k := range sortedKeys(h) {
			if slices.Contains(skip, k) {
				continue
			}
			for _, v := range h[k] {
				fmt.Fprintf(&b, "%s: %s\r\n", k, v)
			}
		}
	}
	h := p.head
	for _, i := range p.interim {
		fmt.Fprintf(&b, "HTTP/1.%d %03d \r\n", h.protoMinor, i.status)
		writeFieldLines(i.header)
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "HTTP/1.%d %03d %s\r\n", h.protoMinor, h.status, h.reason)
	noContent := method == http.MethodHead || h.status == http.StatusNoContent || h.status == http.StatusNotModified
	switch {
	case noContent:
		// The fields as they are: their Content-Length (and anything else)
		// describes the representation, not this message.
		writeFieldLines(h.header)
		b.WriteString("\r\n")
	case h.bodyLength >= 0:
		writeFieldLines(h.header, "Content-Length", "Transfer-Encoding")
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(p.content))
		b.Write(p.content)
	case h.bodyLength == lengthChunked:
		// The one Transfer-Encoding field decideFraming accepted: chunked.
		writeFieldLines(h.header)
		b.WriteString("\r\n")
		if len(p.content) > 0 {
			fmt.Fprintf(&b, "%x\r\n", len(p.content))
			b.Write(p.content)
			b.WriteString("\r\n")
		}
		b.WriteString("0\r\n")
		writeFieldLines(p.trailer)
		b.WriteString("\r\n")
	default:
		writeFieldLines(h.header)
		b.WriteString("\r\n")
		b.Write(p.content)
	}
	return b.Bytes()
}

// FuzzResponseRoundTrip: whatever response the backend accepts, written
// again with its parsed fields and decided framing, is read back as the
// same response: interim responses, status, fields, content, trailers,
// framing and persistence. A difference means the proxy would forward
// something other than what it understood.
func FuzzResponseRoundTrip(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\n\r\n2\r\nok\r\n0\r\nX: y\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding:  Chunked \r\n\r\n3;ext=\"a b\"\r\nabc\r\n2 ; x\r\nde\r\n0;last\r\nX-Sum: 1\r\nX-Sum: 2\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nrest of the connection",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5, max=7\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\nLink: </b>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\tc\r\nContent-Length: 1, 1\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 200 OK\nX-A:\tv\t\nContent-Length: 3\n\nabc",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\nETag: \"x\"\r\n\r\n",
		"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
		"HTTP/1.1 200\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 \r\nX-Obs: caf\xe9\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add(s, false)
	}
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", true)
	// Found by the fuzzer: a stray byte after an answer to HEAD retires
	// the connection, which the re-serialised message cannot show.
	f.Add("HTTP/1.1 200 \n\n0", true)
	f.Add("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true)
	f.Fuzz(func(t *testing.T, in string, head bool) {
		if len(in) > 8<<10 {
			// Re-serialising may grow a field section (bare LF to CRLF,
			// "a:b" to "a: b"); keep well inside the trailer budget.
			return
		}
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		p1, err := parseResponse(bufio.NewReaderSize(strings.NewReader(in), 64), method, 2048)
		if err != nil {
			return
		}
		h1 := p1.head
		_, te := h1.header["Transfer-Encoding"]
		_, cl := h1.header["Content-Length"]
		if h1.bodyLength != 0 && te && cl {
			t.Fatalf("content framed with both Transfer-Encoding and Content-Length: %q", in)
		}

		out := writeResponse(p1, method)
		p2, err := parseResponse(bufio.NewReader(bytes.NewReader(out)), method, 1<<20)
		if err != nil {
			t.Fatalf("rewritten response refused: %v\nin  %q\nout %q", err, in, out)
		}
		h2 := p2.head
		switch {
		case h1.status != h2.status || h1.reason != h2.reason || h1.protoMinor != h2.protoMinor:
			t.Errorf("status line %d %q 1.%d, then %d %q 1.%d", h1.status, h1.reason, h1.protoMinor, h2.status, h2.reason, h2.protoMinor)
		case h1.bodyLength != h2.bodyLength:
			t.Errorf("framing %d, then %d", h1.bodyLength, h2.bodyLength)
		case h1.close != h2.close && !p1.stray || h1.hint != h2.hint:
			t.Errorf("persistence %v %+v, then %v %+v", h1.close, h1.hint, h2.close, h2.hint)
		case !reflect.DeepEqual(p1.interim, p2.interim):
			t.Errorf("interim responses %v, then %v", p1.interim, p2.interim)
		case !reflect.DeepEqual(h1.header, h2.header):
			t.Errorf("fields %q, then %q", h1.header, h2.header)
		case !bytes.Equal(p1.content, p2.content):
			t.Errorf("content %q, then %q", p1.content, p2.content)
		case !reflect.DeepEqual(p1.trailer, p2.trailer):
			t.Errorf("trailers %q, then %q", p1.trailer, p2.trailer)
		}
		if t.Failed() {
			t.Logf("in  %q\nout %q", in, out)
		}
	})
}
