package backend

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// retireReason says why a connection left the pool for good.
type retireReason int

const (
	keep              retireReason = iota // not retired: back to the pool
	retireIdle                            // idle past IdleTimeout
	retireHint                            // origin's Keep-Alive timeout or max reached
	retireOriginClose                     // Connection: close, HTTP/1.0, close-delimited body, or found closed
	retireError                           // I/O or framing error, or an unfinished exchange
	retireExcess                          // more idle connections than MaxIdlePerServer
	retireShutdown                        // the backend was closed
	numRetireReasons
)

// pool holds the connections to one origin server.
//
// The life of a connection: get either pops the most recently used idle
// connection (LIFO, so that the surplus ages out), checks it has not
// expired and is still silent, and hands it out with reused=true; or dials
// a new one if the server is below MaxConnsPerServer; or queues the caller
// in a bounded wait queue. The holder sends one request on it and, once the
// response was read to its end, calls put with keep; put hands the
// connection straight to the first waiter, or parks it idle with an expiry
// time. Any doubt about the connection's state retires it instead.
type pool struct {
	addr string
	cfg  *Config
	dial func(ctx context.Context) (net.Conn, error)

	mu      sync.Mutex
	idle    []*conn   // oldest first; guarded by mu
	open    int       // idle + busy + dialing; guarded by mu
	waiters []*waiter // FIFO; guarded by mu
	reaper  *time.Timer
	reapAt  time.Time // when reaper fires; zero if stopped; guarded by mu
	closed  bool      // guarded by mu

	opened, reused, retried, failed atomic.Uint64
	retired                         [numRetireReasons]atomic.Uint64
}

// A waiter receives either a connection (reused) or nil, which grants it
// the right to dial: the open count was already raised on its behalf.
type waiter struct{ ch chan *conn }

var errPoolClosed = errors.New("backend closed")

func newPool(addr string, cfg *Config) *pool {
	p := &pool{addr: addr, cfg: cfg}
	d := &net.Dialer{Timeout: cfg.DialTimeout}
	p.dial = func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	return p
}

// get returns a connection and whether it was used before. fresh forbids
// reuse: a retry must not meet another stale connection.
func (p *pool) get(ctx context.Context, fresh bool) (*conn, bool, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, false, &Error{Op: "pool", Addr: p.addr, Err: errPoolClosed, unavailable: true}
		}
		if n := len(p.idle); n > 0 && !fresh {
			c := p.idle[n-1]
			p.idle[n-1] = nil
			p.idle = p.idle[:n-1]
			p.mu.Unlock()
			if time.Now().After(c.expires) {
				p.retire(c, c.expiryReason)
				continue
			}
			if !c.alive() {
				p.retire(c, retireOriginClose)
				continue
			}
			p.reused.Add(1)
			return c, true, nil
		}
		if p.cfg.MaxConnsPerServer <= 0 || p.open < p.cfg.MaxConnsPerServer {
			p.open++
			p.mu.Unlock()
			return p.connect(ctx)
		}
		if len(p.waiters) >= p.cfg.MaxWaiters {
			p.mu.Unlock()
			return nil, false, &Error{Op: "pool", Addr: p.addr, Err: ErrPoolFull, unavailable: true}
		}
		w := &waiter{ch: make(chan *conn, 1)}
		p.waiters = append(p.waiters, w)
		p.mu.Unlock()

		select {
		case c := <-w.ch:
			return p.granted(ctx, c, fresh)
		case <-ctx.Done():
			p.mu.Lock()
			i := slices.Index(p.waiters, w)
			if i >= 0 {
				p.waiters = slices.Delete(p.waiters, i, i+1)
			}
			p.mu.Unlock()
			if i < 0 {
				// Granted while we gave up: pass the grant on.
				if c := <-w.ch; c != nil {
					p.put(c, keep)
				} else {
					p.releaseSlot()
				}
			}
			return nil, false, &Error{Op: "pool", Addr: p.addr, Err: ctx.Err()}
		}
	}
}

// granted takes what a waiter received: a connection just released by
// another request, or the right to dial.
func (p *pool) granted(ctx context.Context, c *conn, fresh bool) (*conn, bool, error) {
	if c == nil {
		return p.connect(ctx)
	}
	if fresh {
		// Keep the slot, drop the connection.
		c.nc.Close()
		p.retired[retireError].Add(1)
		return p.connect(ctx)
	}
	p.reused.Add(1)
	return c, true, nil
}

// connect dials within a slot already counted in p.open.
func (p *pool) connect(ctx context.Context) (*conn, bool, error) {
	nc, err := p.dial(ctx)
	if err != nil {
		p.releaseSlot()
		return nil, false, &Error{Op: "dial", Addr: p.addr, Err: err}
	}
	p.opened.Add(1)
	return newConn(nc), false, nil
}

// put returns a connection after use. With keep it goes to a waiter or the
// idle list; otherwise it is closed and counted under reason.
func (p *pool) put(c *conn, reason retireReason) {
	if reason == keep {
		reason = p.park(c)
		if reason == keep {
			return
		}
	}
	p.retire(c, reason)
}

// park hands c to a waiter or idles it, and returns keep; or returns why it
// cannot.
func (p *pool) park(c *conn) retireReason {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return retireShutdown
	case len(p.waiters) > 0:
		w := p.waiters[0]
		p.waiters = slices.Delete(p.waiters, 0, 1)
		w.ch <- c
		return keep
	case len(p.idle) >= p.cfg.MaxIdlePerServer:
		return retireExcess
	}
	now := time.Now()
	if !now.Before(c.expires) {
		return c.expiryReason
	}
	p.idle = append(p.idle, c)
	if p.reapAt.IsZero() || c.expires.Before(p.reapAt) {
		p.scheduleReap(c.expires.Sub(now))
		p.reapAt = c.expires
	}
	return keep
}

// setExpiry decides how long c may wait idle for its next request:
// IdleTimeout, cut short by the origin's Keep-Alive timeout less
// HintMargin, so that hoplite stops using a connection before the origin
// may close it. It returns keep, or why c must not be reused at all.
func (p *pool) setExpiry(c *conn, hint keepAliveHint) retireReason {
	if hint.hasMax && hint.max <= 0 {
		return retireHint // the origin will take no more requests on it
	}
	idle, reason := p.cfg.IdleTimeout, retireIdle
	if hint.timeout > 0 {
		if t := hint.timeout - p.cfg.HintMargin; t < idle {
			idle, reason = t, retireHint
		}
	}
	if idle <= 0 {
		return reason
	}
	c.expires = time.Now().Add(idle)
	c.expiryReason = reason
	return keep
}

// retire closes c and frees its slot for a waiter.
func (p *pool) retire(c *conn, reason retireReason) {
	c.nc.Close()
	p.retired[reason].Add(1)
	p.releaseSlot()
}

// releaseSlot gives a connection slot back, to the first waiter if any.
func (p *pool) releaseSlot() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters = slices.Delete(p.waiters, 0, 1)
		w.ch <- nil // the slot stays counted in p.open, now for w
		return
	}
	p.open--
}

// scheduleReap arms the timer that closes expired idle connections, so an
// origin does not hold sockets for connections nobody will use. Guarded by
// p.mu.
func (p *pool) scheduleReap(d time.Duration) {
	if p.reaper == nil {
		p.reaper = time.AfterFunc(d, p.reap)
		return
	}
	p.reaper.Reset(d)
}

func (p *pool) reap() {
	now := time.Now()
	var expired []*conn
	p.mu.Lock()
	p.reapAt = time.Time{}
	kept := p.idle[:0]
	for _, c := range p.idle {
		if now.Before(c.expires) {
			kept = append(kept, c)
			if p.reapAt.IsZero() || c.expires.Before(p.reapAt) {
				p.reapAt = c.expires
			}
		} else {
			expired = append(expired, c)
		}
	}
	clear(p.idle[len(kept):])
	p.idle = kept
	if !p.reapAt.IsZero() {
		p.scheduleReap(p.reapAt.Sub(now))
	}
	p.mu.Unlock()
	for _, c := range expired {
		p.retire(c, c.expiryReason)
	}
}

// close retires the idle connections; busy ones are retired when put.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	if p.reaper != nil {
		p.reaper.Stop()
	}
	p.mu.Unlock()
	for _, c := range idle {
		p.retire(c, retireShutdown)
	}
}

func (p *pool) stats() ServerStats {
	p.mu.Lock()
	idle, open := len(p.idle), p.open
	p.mu.Unlock()
	s := ServerStats{
		Addr:    p.addr,
		Opened:  p.opened.Load(),
		Reused:  p.reused.Load(),
		Retried: p.retried.Load(),
		Failed:  p.failed.Load(),
		Idle:    idle,
		Busy:    open - idle,
	}
	s.Retired.IdleTimeout = p.retired[retireIdle].Load()
	s.Retired.OriginHint = p.retired[retireHint].Load()
	s.Retired.OriginClose = p.retired[retireOriginClose].Load()
	s.Retired.Error = p.retired[retireError].Load()
	s.Retired.Excess = p.retired[retireExcess].Load()
	s.Retired.Shutdown = p.retired[retireShutdown].Load()
	return s
}
