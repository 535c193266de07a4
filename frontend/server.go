// Package frontend owns listeners and downstream (client-side) connections:
// TLS with ALPN for HTTP/1.1 and HTTP/2 on TCP, HTTP/3 over QUIC on the same
// port number over UDP, an optional plain-HTTP listener, client limits and
// graceful drain. It hands every request to an http.Handler and knows
// nothing about backends.
package frontend

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Config configures a Server. Zero values select the documented defaults.
type Config struct {
	// Addr is the "host:port" of the TLS listener (TCP, HTTP/1.1 and HTTP/2)
	// and of the HTTP/3 listener (UDP, same port). Port 0 picks a free port,
	// the same for both.
	Addr string
	// TLSConfig supplies certificates. Its NextProtos are extended with h2
	// and http/1.1; protocols already present (such as acme-tls/1) are kept.
	TLSConfig *tls.Config
	// DisableHTTP3 turns off the QUIC listener and the Alt-Svc advertisement.
	DisableHTTP3 bool
	// PlainAddr, if set, is the "host:port" of a plain-HTTP listener.
	PlainAddr string
	// PlainHandler serves the plain-HTTP listener. Nil means redirect every
	// request to HTTPS on Addr's port (308).
	PlainHandler http.Handler
	// ReadHeaderTimeout bounds reading a request header. Zero means 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a client connection idle this long. Zero means 2m.
	IdleTimeout time.Duration
	// MaxHeaderBytes caps a request header (HTTP/1.1) or header list
	// (HTTP/2, HTTP/3). Zero means 64 KiB.
	MaxHeaderBytes int
	// MaxConcurrentStreams caps concurrent streams per HTTP/2 or HTTP/3
	// connection. Zero means 250.
	MaxConcurrentStreams uint32
	// MaxReadFrameSize is the largest HTTP/2 frame accepted. Zero means 1 MiB.
	MaxReadFrameSize uint32
	// Logger receives connection-level errors. Nil means slog.Default().
	Logger *slog.Logger
}

// Server serves HTTP/1.1, HTTP/2 and HTTP/3 clients.
type Server struct{}

// New returns a Server that hands requests to h. It binds nothing.
func New(cfg Config, h http.Handler) (*Server, error) { return nil, errors.New("frontend: TODO") }

// Start binds the listeners and serves in the background.
func (s *Server) Start() error { return errors.New("frontend: TODO") }

// Addr returns the bound TLS listener address; valid after Start.
func (s *Server) Addr() net.Addr { return nil }

// Shutdown drains gracefully: it stops accepting, lets in-flight requests
// finish (Connection: close on HTTP/1.1, GOAWAY on HTTP/2 and HTTP/3) and
// returns when all connections are closed or ctx is done.
func (s *Server) Shutdown(ctx context.Context) error { return nil }
