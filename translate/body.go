package translate

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyBody streams the response content to the client. Each read is
// written and flushed at once unless it was the last, so that streamed
// responses (server-sent events, long polls) reach the client as the
// origin produces them, while a response read in one go costs no extra
// flush.
func copyBody(w http.ResponseWriter, src io.Reader) error {
	flusher, _ := w.(http.Flusher)
	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	buf := *bufp
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if rerr == nil && flusher != nil {
				flusher.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// copyTrailers passes the origin's trailer fields on, after the content.
// http.TrailerPrefix declares them whether or not the origin announced
// them in a Trailer field; the frontend's engines and quic-go/http3 all
// honour it. Hop-by-hop fields are not trailers anyone may forward.
func copyTrailers(dst, trailer http.Header) {
	if len(trailer) == 0 {
		return
	}
	removeHopByHop(trailer)
	for k, vv := range trailer {
		if len(vv) > 0 {
			dst[http.TrailerPrefix+k] = vv
		}
	}
}

// probeWait bounds how long requestContent waits to learn whether a
// request of unknown length has any content.
const probeWait = 50 * time.Millisecond

// readDeadliner is implemented by quic-go http3's response writer (the
// frontend's HTTP/1.x and HTTP/2 engines tell an empty request body apart
// by themselves).
type readDeadliner interface{ SetReadDeadline(time.Time) error }

// requestContent returns the upstream request's content and length, as the
// backend's http.Request conventions want them: nil for no content.
//
// HTTP/3 does not tell a request without content from one whose length is
// unknown until the stream's end arrives, so quic-go gives -1 for both. For
// methods that rarely carry content, one short read settles it, and a GET
// does not reach the origin as an empty chunked message. quic-go checks a
// read deadline on each read, so one that expired leaves the stream
// intact.
func requestContent(w http.ResponseWriter, r *http.Request) (io.ReadCloser, int64) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, 0
	}
	if r.ContentLength > 0 || r.ProtoMajor != 3 || !usuallyBodiless(r.Method) {
		// HTTP/1.x and HTTP/2 give -1 only to content that is really there
		// (chunked, or a stream without END_STREAM). Probing them would
		// break the content: their read deadlines are not undone.
		return r.Body, r.ContentLength
	}
	var one [1]byte
	rd, canWait := w.(readDeadliner)
	if canWait {
		rd.SetReadDeadline(time.Now().Add(probeWait))
	}
	n, err := io.ReadFull(r.Body, one[:])
	if canWait {
		rd.SetReadDeadline(time.Time{})
	}
	switch {
	case err == io.EOF:
		return nil, 0
	case n == 1:
		return readCloser{io.MultiReader(bytes.NewReader(one[:]), r.Body), r.Body}, -1
	case isTimeout(err):
		return r.Body, -1
	}
	// The content failed; let the backend meet the same error.
	return readCloser{io.MultiReader(errReader{err}), r.Body}, -1
}

func usuallyBodiless(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodDelete, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

func isTimeout(err error) bool {
	var t timeoutError
	return errors.As(err, &t) && t.Timeout()
}

type readCloser struct {
	io.Reader
	io.Closer
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// trailerSync passes on the downstream request's trailer fields when its
// content ends, the moment servers fill them in. It reads them through the
// request, not a map kept from before: quic-go's HTTP/3 server stores them
// in a new map then, and so does the frontend's HTTP/2 engine when none was
// announced.
type trailerSync struct {
	io.ReadCloser
	src  *http.Request
	dst  http.Header
	done bool
}

func (b *trailerSync) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		for k, vv := range b.src.Trailer {
			b.dst[k] = vv
		}
		removeHopByHop(b.dst)
	}
	return n, err
}
