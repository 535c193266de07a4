// Package backend owns upstream (origin-side) HTTP/1.1 connections: one pool
// of persistent connections per origin server, request writing and response
// parsing on those connections, and the choice of server within a backend.
//
// It knows nothing about clients: it is reached only through
// http.RoundTripper.
package backend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
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
	// HintMargin is subtracted from an origin's idle timeout, announced
	// ("Keep-Alive: timeout=N") or learned (the shortest idle time after
	// which the origin was seen closing a connection): a connection idle
	// that long less this margin is not reused, so that a request never
	// meets the origin's own close. For a short timeout the margin is at
	// most a quarter of it, so that 3/4 of the timeout stays usable
	// (timeout=1 gives 750ms of reuse, not none). Zero means 1s.
	HintMargin time.Duration
	// MaxRequestsPerConn retires a connection after this many requests.
	// Zero means no limit.
	MaxRequestsPerConn int
	// MaxLifetime retires a connection this long after it was opened.
	// Zero means no limit.
	MaxLifetime time.Duration
	// BufferRequestBody, if positive, makes a request whose content length
	// is unknown (HTTP/2 and HTTP/3 clients may omit it) go to the origin
	// with a Content-Length instead of chunked, for origins that refuse
	// chunked requests: up to this many bytes are held in memory, and a
	// larger request fails with 413. Request trailers are then dropped.
	// Zero means such requests go chunked.
	BufferRequestBody int64
	// MaxIdlePerServer caps idle pooled connections per server. Zero means
	// 1024. A cap below the load's concurrency makes the pool close
	// connections that the next burst opens again (Caddy's and nginx's
	// upstream churn); idle connections cost little and the idle timeouts
	// retire them.
	MaxIdlePerServer int
	// MaxConnsPerServer caps open connections (idle and busy) per server.
	// Zero means no limit.
	MaxConnsPerServer int
	// MaxWaiters caps requests queued for a connection when
	// MaxConnsPerServer is reached; past it requests fail with ErrPoolFull.
	// Zero means 1024.
	MaxWaiters int
	// PassiveHealth marks a server down after consecutive failures of real
	// requests; see PassiveHealth. The zero value is on, with defaults.
	PassiveHealth PassiveHealth
	// HealthCheck, if not nil, checks every server actively; see
	// HealthCheck. Nil means no active checks.
	HealthCheck *HealthCheck
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.DialTimeout, 5*time.Second)
	def(&c.ResponseHeaderTimeout, 60*time.Second)
	def(&c.IdleTimeout, 60*time.Second)
	def(&c.HintMargin, time.Second)
	if c.MaxIdlePerServer == 0 {
		c.MaxIdlePerServer = 1024
	}
	if c.MaxWaiters == 0 {
		c.MaxWaiters = 1024
	}
	c.PassiveHealth.setDefaults()
	if c.HealthCheck != nil {
		hc := *c.HealthCheck // the caller's stays untouched
		hc.setDefaults()
		c.HealthCheck = &hc
	}
}

func (c *Config) validate() error {
	if len(c.Servers) == 0 {
		return errors.New("no servers")
	}
	for _, s := range c.Servers {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return fmt.Errorf("server %q: %v", s, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
			return fmt.Errorf("server %q: want host:port", s)
		}
	}
	for name, d := range map[string]time.Duration{
		"DialTimeout": c.DialTimeout, "ResponseHeaderTimeout": c.ResponseHeaderTimeout,
		"IdleTimeout": c.IdleTimeout, "HintMargin": c.HintMargin, "MaxLifetime": c.MaxLifetime,
	} {
		if d < 0 {
			return fmt.Errorf("%s is negative", name)
		}
	}
	if c.MaxIdlePerServer < 0 || c.MaxConnsPerServer < 0 || c.MaxWaiters < 0 || c.MaxRequestsPerConn < 0 || c.BufferRequestBody < 0 {
		return errors.New("negative connection limit")
	}
	if h := c.PassiveHealth; h.MaxFails < 0 || h.FailTimeout < 0 {
		return errors.New("passive health: negative max fails or fail timeout")
	}
	if c.HealthCheck != nil {
		return c.HealthCheck.validate()
	}
	return nil
}

// ServerStats is a snapshot of one origin server's pool counters.
type ServerStats struct {
	Addr    string `json:"addr"`
	Opened  uint64 `json:"opened"`  // connections dialed
	Reused  uint64 `json:"reused"`  // requests sent on a pooled connection
	Retried uint64 `json:"retried"` // requests retried on a fresh connection
	Failed  uint64 `json:"failed"`  // requests that got no response
	Idle    int    `json:"idle"`
	Busy    int    `json:"busy"`
	// Healthy is whether requests may go to the server now: neither
	// active checks nor passive failures have it marked down.
	Healthy bool `json:"healthy"`
	// MarkedDown counts the times the server was marked down, actively or
	// passively (a failed passive trial counts again).
	MarkedDown uint64 `json:"marked_down"`
	// LearnedIdleTimeout is the origin's idle timeout as learned from its
	// closes, in seconds; 0 when unknown.
	LearnedIdleTimeout float64 `json:"learned_idle_timeout"`
	// Retired counts connections closed, by reason.
	Retired struct {
		IdleTimeout uint64 `json:"idle_timeout"`
		OriginHint  uint64 `json:"origin_hint"`
		Learned     uint64 `json:"learned_timeout"`
		MaxRequests uint64 `json:"max_requests"`
		Lifetime    uint64 `json:"max_lifetime"`
		OriginClose uint64 `json:"origin_close"`
		Error       uint64 `json:"error"`
		Excess      uint64 `json:"excess_idle"`
		Shutdown    uint64 `json:"shutdown"`
	} `json:"retired"`
}

// ErrPoolFull is returned when a server's connection limit is reached and
// its wait queue is full.
var ErrPoolFull = errors.New("connection pool full")

// Backend is an http.RoundTripper that sends requests over pooled HTTP/1.1
// connections to its origin servers.
type Backend struct {
	name        string
	pools       []*pool
	next        atomic.Uint32 // round-robin cursor
	bufferLimit int64         // Config.BufferRequestBody

	stopChecks context.CancelFunc // ends the active health checks
	checkers   sync.WaitGroup     // the checks' goroutines, one per server
}

var _ http.RoundTripper = (*Backend)(nil)

// New validates cfg and returns a Backend. Requests dial on demand; with
// cfg.HealthCheck, one goroutine per server starts checking it after
// one interval, until Close.
func New(cfg Config) (*Backend, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("backend %s: %w", cfg.Name, err)
	}
	cfg.setDefaults()
	b := &Backend{name: cfg.Name, bufferLimit: cfg.BufferRequestBody, stopChecks: func() {}}
	for _, addr := range cfg.Servers {
		b.pools = append(b.pools, newPool(addr, &cfg))
	}
	if hc := cfg.HealthCheck; hc != nil {
		var ctx context.Context
		ctx, b.stopChecks = context.WithCancel(context.Background())
		for _, p := range b.pools {
			b.checkers.Go(func() { p.checkLoop(ctx, hc) })
		}
	}
	return b, nil
}

// RoundTrip implements http.RoundTripper. The request goes to the next
// server in turn that is not marked down; a server that cannot be dialed
// is passed over, since the request never left. With every server marked
// down it fails at once, Unavailable, without dialing. req.Body is closed,
// as the interface requires.
func (b *Backend) RoundTrip(req *http.Request) (*http.Response, error) {
	if b.bufferLimit > 0 && framingOf(req) == frameChunked {
		var err error
		if req, err = bufferContent(req, b.bufferLimit); err != nil {
			return nil, err
		}
	}
	start := b.pick()
	var err error
	for i := range b.pools {
		p := b.pools[(start+i)%len(b.pools)]
		if !p.usable() {
			continue
		}
		var resp *http.Response
		if resp, err = p.roundTrip(req); err == nil {
			return resp, nil
		}
		var e *Error
		if !errors.As(err, &e) || e.Op != "dial" || req.Context().Err() != nil {
			break
		}
	}
	if err == nil {
		// Every server is marked down: fail now rather than dial servers
		// known not to answer, or wait for one to come back. RFC 9110
		// §15.6.4: 503, the condition being temporary.
		err = &Error{Op: "pool", Err: ErrNoHealthyServer, unavailable: true}
	}
	if req.Body != nil {
		req.Body.Close()
	}
	return nil, err
}

// roundTrip sends req to this server. A request that failed on a reused
// connection before any byte of response is retried once, on a fresh
// connection, when that cannot make the origin act twice: if the request
// provably never reached the socket, or if the origin closed the
// connection without answering and the request is idempotent (RFC 9110
// §9.2.2). Either way its content must be replayable: none, or GetBody.
// Anything that may have reached the origin and is not idempotent is
// never sent twice.
func (p *pool) roundTrip(req *http.Request) (*http.Response, error) {
	resp, err := p.send(req)
	switch {
	case err == nil:
		p.passiveSuccess()
	case req.Context().Err() == nil && upstreamFault(err):
		p.passiveFailure()
	}
	return resp, err
}

// send is roundTrip before the health bookkeeping.
func (p *pool) send(req *http.Request) (*http.Response, error) {
	fresh := false
	for {
		c, reused, err := p.get(req.Context(), fresh)
		if err != nil {
			p.failed.Add(1)
			return nil, err
		}
		ex := &exchange{p: p, c: c, req: req}
		resp, f := ex.roundTrip()
		if f == nil {
			return resp, nil
		}
		replay := framingOf(req) == frameNone || req.GetBody != nil
		if reused && !fresh && replay && (f.unsent || f.silentClose && idempotent(req)) {
			if req, err = rewind(req); err == nil {
				p.retried.Add(1)
				fresh = true
				continue
			}
		}
		p.failed.Add(1)
		return nil, f.err
	}
}

// rewind returns req ready to be sent again: a shallow copy with fresh
// content from GetBody, leaving the caller's request untouched.
func rewind(req *http.Request) (*http.Request, error) {
	if req.GetBody == nil {
		return req, nil
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	r := *req
	r.Body = body
	return &r, nil
}

// idempotent reports whether sending req twice is harmless: an idempotent
// method (RFC 9110 §9.2.2), or an Idempotency-Key the client chose for
// that purpose, as net/http's Transport also honours.
func idempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	_, key := req.Header["Idempotency-Key"]
	return key
}

// Stats returns a snapshot of every server's pool.
func (b *Backend) Stats() []ServerStats {
	out := make([]ServerStats, len(b.pools))
	for i, p := range b.pools {
		out[i] = p.stats()
	}
	return out
}

// Close stops the health checks, waiting for them, closes idle
// connections and makes busy ones close when released.
func (b *Backend) Close() error {
	b.stopChecks()
	b.checkers.Wait()
	for _, p := range b.pools {
		p.close()
	}
	return nil
}
