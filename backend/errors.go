package backend

import (
	"errors"
	"fmt"
)

// Error is every error RoundTrip returns for a failure on the upstream hop.
// It records the operation and server, and describes itself through
// behaviour methods (as net.Error does) so that the consumer can choose a
// status without importing this package: Timeout (504), Unavailable (503),
// TooLarge (413).
type Error struct {
	Op   string // "dial", "write", "read header", "read body", "pool"
	Addr string // origin server, empty when none was chosen
	Err  error

	timeout     bool // the origin did not answer in time
	unavailable bool // no connection could be had (pool full, no server)
	tooLarge    bool // the request content exceeds what may be buffered
}

func (e *Error) Error() string {
	if e.Addr == "" {
		return fmt.Sprintf("backend: %s: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("backend: %s %s: %v", e.Op, e.Addr, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Timeout reports whether the origin failed to answer in time.
func (e *Error) Timeout() bool { return e.timeout }

// TooLarge reports whether the request content was larger than the
// backend may buffer.
func (e *Error) TooLarge() bool { return e.tooLarge }

// ClientError reports whether the request's own content was at fault:
// reading it failed (the client's framing broke, or the client went away),
// or it ended before its Content-Length, or went on past it (RFC 9112
// §6.3, §7.1; RFC 9113 §8.1.1; RFC 9114 §4.1.2). Such a request is a 400.
func (e *Error) ClientError() bool {
	var ce *contentError
	return errors.As(e.Err, &ce) || errors.Is(e.Err, errBodyShort) || errors.Is(e.Err, errBodyLong)
}

// Unavailable reports whether the request was refused for lack of capacity
// and never reached an origin.
func (e *Error) Unavailable() bool { return e.unavailable }

// Framing errors: the upstream message cannot be delimited with certainty.
// RFC 9112 §6.3 and §11.2: such a connection is closed, never reused, and
// the message is not forwarded.
var (
	errMalformed        = errors.New("malformed response")
	errFraming          = errors.New("response framing in doubt")
	errHeaderTooLarge   = errors.New("response header too large")
	errBodyShort        = errors.New("request body shorter than its Content-Length")
	errBodyLong         = errors.New("request body longer than its Content-Length")
	errInvalidField     = errors.New("invalid header field in request")
	errUnsupportedProto = errors.New("switching protocols is not supported")
)
