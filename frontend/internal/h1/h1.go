// Package h1 is hoplite's own downstream HTTP/1.x server connection
// engine (RFC 9112).
//
// One Conn serves one client connection, on the connection's goroutine:
// wait for a request's first byte (IdleTimeout), read its head
// (ReadHeaderTimeout, MaxHeaderBytes), parse it strictly (parse.go: what
// would be ambiguous framing to any other HTTP/1.x implementation is
// refused, RFC 9112 §11.2), run the handler with a streamed body
// (body.go) and a buffered ResponseWriter (response.go), then either read
// the next request or close (RFC 9112 §9.3, §9.6). Requests are served
// one at a time, in order; pipelined bytes stay in the read buffer.
//
// There is no background read while the handler runs (net/http keeps one
// per request, and pays for it). The consequence: a request's context is
// cancelled only when the engine notices that the connection is gone, on
// a failed write, on Close, or when Serve returns; a client that goes
// away while the handler waits is noticed at the handler's next write.
//
// Steady-state requests allocate nothing in the engine: the
// http.Request, its URL, both header maps, the ResponseWriter and the
// buffers are reused per connection, strings are interned or cached per
// connection, and the read buffer comes from a pool and goes back while
// the connection is idle.
//
// Upgrades (101 Switching Protocols, Hijack) are not served yet: see
// response.go, WriteHeader, for where they plug in.
package h1

import (
	"log/slog"
	"time"
)

// Config configures a Conn. The zero value is usable.
type Config struct {
	// ReadHeaderTimeout bounds reading a request head, from its first
	// byte to its final empty line; a client that stalls is closed
	// without a response. 0 means 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds the wait for a request's first byte, before the
	// first request and between requests. 0 means 2m.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and header fields (and a
	// chunked body's trailer section); a head over it gets 431 and the
	// connection closes. 0 means 64 KiB.
	MaxHeaderBytes int
	// MaxRequestsPerConn: the last request a connection may carry is
	// answered with "Connection: close" (RFC 9112 §9.6). 0: no limit.
	MaxRequestsPerConn int
	// KeepAliveHeader advertises "Keep-Alive: timeout=N[, max=M]" on
	// persistent responses (N from IdleTimeout, M the requests left), so
	// that a client never sends a request into the server's close.
	KeepAliveHeader bool
	// Logger gets handler panics and connection trouble. nil:
	// slog.Default().
	Logger *slog.Logger
}

const (
	defaultReadHeaderTimeout = 10 * time.Second
	defaultIdleTimeout       = 2 * time.Minute
	defaultMaxHeaderBytes    = 64 << 10
)

// config is Config with its defaults applied.
type config struct {
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	maxHeaderBytes    int
	maxRequests       int
	keepAliveHeader   bool
	keepAliveTimeout  string // "timeout=N"
	log               *slog.Logger
}

func newConfig(c *Config) config {
	var cfg Config
	if c != nil {
		cfg = *c
	}
	out := config{
		readHeaderTimeout: cfg.ReadHeaderTimeout,
		idleTimeout:       cfg.IdleTimeout,
		maxHeaderBytes:    cfg.MaxHeaderBytes,
		maxRequests:       cfg.MaxRequestsPerConn,
		keepAliveHeader:   cfg.KeepAliveHeader,
		log:               cfg.Logger,
	}
	if out.readHeaderTimeout <= 0 {
		out.readHeaderTimeout = defaultReadHeaderTimeout
	}
	if out.idleTimeout <= 0 {
		out.idleTimeout = defaultIdleTimeout
	}
	if out.maxHeaderBytes <= 0 {
		out.maxHeaderBytes = defaultMaxHeaderBytes
	}
	if out.maxRequests < 0 {
		out.maxRequests = 0
	}
	if out.log == nil {
		out.log = slog.Default()
	}
	out.keepAliveTimeout = "timeout=" + itoa(int64(out.idleTimeout/time.Second))
	return out
}

func itoa(n int64) string {
	var b [20]byte
	return string(appendInt(b[:0], n))
}

func appendInt(b []byte, n int64) []byte {
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}
