// Package backend owns upstream (origin-side) HTTP/1.1 connections: one pool
// of persistent connections per origin server, request writing and response
// parsing on those connections, and the choice of server within a backend.
//
// It knows nothing about clients: it is reached only through
// http.RoundTripper.
package backend

import (
	"errors"
	"net/http"
	"time"
)

// Config describes one backend: a named group of origin servers that all
// serve the same content. The zero value of every field except Servers
// selects the documented default.
type Config struct {
	// Name identifies the backend in errors, logs and statistics.
	Name string
	// Servers are the origin servers as "host:port". Requests are spread
	// over them round-robin. At least one is required.
	Servers []string
	// DialTimeout bounds connecting to an origin server. Zero means 5s.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait, after the request was written,
	// for the response header. Zero means 60s.
	ResponseHeaderTimeout time.Duration
	// IdleTimeout is how long an idle pooled connection may wait for reuse.
	// Zero means 60s.
	IdleTimeout time.Duration
	// MaxIdlePerServer caps idle pooled connections per server. Zero means 64.
	MaxIdlePerServer int
	// MaxConnsPerServer caps open connections (idle and busy) per server.
	// Zero means no limit.
	MaxConnsPerServer int
	// MaxWaiters caps requests queued for a connection when
	// MaxConnsPerServer is reached; past it requests fail with ErrPoolFull.
	// Zero means 1024.
	MaxWaiters int
}

// ServerStats is a snapshot of one origin server's pool counters.
type ServerStats struct {
	Addr    string `json:"addr"`
	Opened  uint64 `json:"opened"`
	Reused  uint64 `json:"reused"`
	Closed  uint64 `json:"closed"`
	Retried uint64 `json:"retried"`
	Failed  uint64 `json:"failed"`
	Idle    int    `json:"idle"`
	Busy    int    `json:"busy"`
}

// ErrPoolFull is returned when a server's connection limit is reached and
// its wait queue is full.
var ErrPoolFull = errors.New("backend: connection pool full")

// Backend is an http.RoundTripper that sends requests over pooled HTTP/1.1
// connections to its origin servers.
type Backend struct{}

var _ http.RoundTripper = (*Backend)(nil)

// New validates cfg and returns a Backend. It dials nothing.
func New(cfg Config) (*Backend, error) { return nil, errors.New("backend: TODO") }

// RoundTrip implements http.RoundTripper.
func (b *Backend) RoundTrip(req *http.Request) (*http.Response, error) {
	return nil, errors.New("backend: TODO")
}

// Stats returns a snapshot of every server's pool.
func (b *Backend) Stats() []ServerStats { return nil }

// Close closes idle connections and makes busy ones close when released.
func (b *Backend) Close() error { return nil }
