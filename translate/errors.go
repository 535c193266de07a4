package translate

import (
	"context"
	"errors"
	"net/http"
)

// Errors of this package.
var (
	errNoRoute     = errors.New("translate: no route for request")
	errUnsupported = errors.New("translate: method not supported by this proxy")
)

// A RoundTripper's errors describe themselves with behaviour methods, as
// net.Error does, so that this package needs no backend import.
type (
	timeoutError     interface{ Timeout() bool }     // the origin did not answer in time
	unavailableError interface{ Unavailable() bool } // no capacity; nothing was sent
	tooLargeError    interface{ TooLarge() bool }    // the request content is over a limit
	clientError      interface{ ClientError() bool } // the request content failed on the client's side
)

// statusFor is the one place where an error becomes a response status.
func statusFor(err error) int {
	var t timeoutError
	var u unavailableError
	var l tooLargeError
	var c clientError
	switch {
	case errors.Is(err, errNoRoute):
		return http.StatusNotFound
	case errors.Is(err, errUnsupported):
		return http.StatusNotImplemented
	case errors.As(err, &c) && c.ClientError():
		return http.StatusBadRequest
	case errors.As(err, &t) && t.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.As(err, &u) && u.Unavailable():
		return http.StatusServiceUnavailable
	case errors.As(err, &l) && l.TooLarge():
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadGateway
}

// fail answers a request that got no upstream response: a short plain-text
// body naming the status only, since the cause may reveal internal
// addresses. The cause goes to the log.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, backend string, err error) {
	if r.Context().Err() != nil {
		// The client left: there is nobody to answer.
		h.log.Debug("client gone", "method", r.Method, "uri", r.RequestURI, "backend", backend, "err", err)
		return
	}
	status := statusFor(err)
	h.log.Warn("upstream failure", "status", status, "method", r.Method, "uri", r.RequestURI, "backend", backend, "err", err)
	hdr := w.Header()
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write([]byte(http.StatusText(status) + "\n"))
}
