package backend

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
)

// bufferContent reads a request's content of unknown length into memory,
// up to limit bytes, so that it can go to the origin with a Content-Length
// (for origins that refuse chunked requests, RFC 9112 §6.1 allows them to
// answer 411) and be replayed on a retry. The caller's request is not
// changed.
func bufferContent(req *http.Request, limit int64) (*http.Request, error) {
	defer req.Body.Close()
	data, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		return nil, &Error{Op: "read request body", Err: clientContentError(err)}
	}
	if int64(len(data)) > limit {
		return nil, &Error{Op: "read request body", Err: fmt.Errorf("request body larger than %d bytes", limit), tooLarge: true}
	}
	r := *req
	r.ContentLength = int64(len(data))
	r.Body = http.NoBody
	r.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
	if len(data) > 0 {
		r.Body = io.NopCloser(bytes.NewReader(data))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	}
	// Content-Length framing has no trailer section (RFC 9112 §6.1).
	r.Trailer = nil
	return &r, nil
}
