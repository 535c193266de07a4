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
	retireLearned                         // idle past the origin's learned idle timeout
	retireMaxRequests                     // MaxRequestsPerConn served
	retireLifetime                        // MaxLifetime reached
	retireOriginClose                     // Connection: close, HTTP/1.0, close-delimited body, or found closed
	retireError                           // I/O or framing error, or an unfinished exchange
	retireExcess                          // more idle connections than MaxIdlePerServer
	retireShutdown                        // the backend was closed
	numRetireReasons
)

const (
	// sweepInterval is how often idle connections are checked for an
	// origin's close while any are idle: often enough to date the close
	// within a fraction of HintMargin, rarely enough to cost nothing.
	sweepInterval = 250 * time.Millisecond
	// minLearnedIdle ignores closes of connections idle for less: those are
	// origin restarts or errors, not an idle timeout.
	minLearnedIdle = time.Second
	// relearnAfter forgets a learned idle timeout, so that an origin whose
	// timeout grows is used fully again.
	relearnAfter = 10 * time.Minute
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

	// learned is the shortest idle time after which this origin was seen
	// closing a connection it had announced nothing about: its idle timeout,
	// learned. Zero means unknown. Guarded by mu.
	learned   time.Duration
	learnedAt time.Time // guarded by mu

	opened, reused, retried, failed atomic.Uint64
	retired                         [numRetireReasons]atomic.Uint64

	// Health (health.go): the state word, the current run of passive
	// failures, and how often the server was marked down.
	passive    PassiveHealth
	born       time.Time // origin of p.clock
	health     atomic.Uint64
	fails      atomic.Int32
	markedDown atomic.Uint64
}

// A waiter receives either a connection (reused) or nil, which grants it
// the right to dial: the open count was already raised on its behalf.
type waiter struct{ ch chan *conn }

var errPoolClosed = errors.New("backend closed")

func newPool(addr string, cfg *Config) *pool {
	p := &pool{addr: addr, cfg: cfg, passive: cfg.PassiveHealth, born: time.Now()}
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
			now := time.Now()
			if !now.Before(c.expires) {
				p.retire(c, c.expiryReason)
				continue
			}
			if !c.alive() {
				p.mu.Lock()
				p.observeClose(now.Sub(c.idleSince), now)
				p.mu.Unlock()
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
	if reason := p.setExpiry(c, now); reason != keep {
		return reason
	}
	c.idleSince = now
	p.idle = append(p.idle, c)
	p.scheduleReap(now, nextCheck(c, now))
	return keep
}

// setExpiry decides until when c may wait idle for its next request, and
// why it will be retired then: IdleTimeout, cut short by the origin's
// Keep-Alive timeout or by its learned idle timeout, either less a margin
// (reuseWindow), so that hoplite stops using a connection before the
// origin may close it; and by MaxLifetime. It returns keep, or why c must
// not be reused at all. Guarded by p.mu.
func (p *pool) setExpiry(c *conn, now time.Time) retireReason {
	cfg := p.cfg
	switch {
	case c.hint.hasMax && c.hint.max <= 0:
		return retireHint // the origin will take no more requests on it
	case cfg.MaxRequestsPerConn > 0 && c.requests >= cfg.MaxRequestsPerConn:
		return retireMaxRequests
	}
	idle, reason := cfg.IdleTimeout, retireIdle
	if t := reuseWindow(c.hint.timeout, cfg.HintMargin); c.hint.timeout > 0 && t < idle {
		idle, reason = t, retireHint
	}
	if p.learned > 0 && now.Sub(p.learnedAt) > relearnAfter {
		p.learned = 0
	}
	if t := reuseWindow(p.learned, cfg.HintMargin); p.learned > 0 && t < idle {
		idle, reason = t, retireLearned
	}
	if cfg.MaxLifetime > 0 {
		if t := c.created.Add(cfg.MaxLifetime).Sub(now); t < idle {
			idle, reason = t, retireLifetime
		}
	}
	if idle <= 0 {
		return reason
	}
	c.expires = now.Add(idle)
	c.expiryReason = reason
	return keep
}

// reuseWindow is how long a connection may sit idle, and still be reused,
// at an origin whose idle timeout (announced in "Keep-Alive: timeout=N",
// RFC 2068 §19.7.1.1, or learned from its closes) is timeout. The margin
// kept short of the timeout covers the origin's timer granularity (N is in
// whole seconds, and a server may round or check it coarsely) and the
// one-way delay of the next request, which must reach the origin before
// its timer fires, or it meets the close (RFC 9112 §9.5). That margin is
// HintMargin, but at most a quarter of the timeout: a fixed margin would
// leave no window at all for short timeouts (timeout=1 less 1s is zero,
// and every connection would be used once), whereas a quarter still
// leaves 3/4 of the timeout usable, and for timeouts from 4*HintMargin up
// the margin is HintMargin unchanged.
func reuseWindow(timeout, margin time.Duration) time.Duration {
	return timeout - min(margin, timeout/4)
}

// observeClose records that the origin closed a connection idle for age,
// and learns its idle timeout from the shortest such age. Guarded by p.mu.
func (p *pool) observeClose(age time.Duration, now time.Time) {
	if age < minLearnedIdle {
		return
	}
	if p.learned == 0 || age < p.learned {
		p.learned, p.learnedAt = age, now
	}
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

// nextCheck is when the reaper must look at idle c again.
func nextCheck(c *conn, now time.Time) time.Time {
	if sweep := now.Add(sweepInterval); sweep.Before(c.expires) {
		return sweep
	}
	return c.expires
}

// scheduleReap makes the reaper run at when, unless it runs earlier.
// Guarded by p.mu.
func (p *pool) scheduleReap(now, when time.Time) {
	if !p.reapAt.IsZero() && !when.Before(p.reapAt) {
		return
	}
	p.reapAt = when
	if p.reaper == nil {
		p.reaper = time.AfterFunc(when.Sub(now), p.reap)
		return
	}
	p.reaper.Reset(when.Sub(now))
}

// reap closes idle connections that expired or that the origin closed,
// so an origin does not hold sockets nobody will use, and so that an
// origin's close is seen, and its idle timeout learned, within
// sweepInterval of happening.
func (p *pool) reap() {
	now := time.Now()
	type retirement struct {
		c      *conn
		reason retireReason
	}
	var out []retirement
	p.mu.Lock()
	p.reapAt = time.Time{}
	kept := p.idle[:0]
	for _, c := range p.idle {
		switch {
		case !now.Before(c.expires):
			out = append(out, retirement{c, c.expiryReason})
		case !c.alive():
			p.observeClose(now.Sub(c.idleSince), now)
			out = append(out, retirement{c, retireOriginClose})
		default:
			kept = append(kept, c)
			p.scheduleReap(now, nextCheck(c, now))
		}
	}
	clear(p.idle[len(kept):])
	p.idle = kept
	p.mu.Unlock()
	for _, r := range out {
		p.retire(r.c, r.reason)
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
	idle, open, learned := len(p.idle), p.open, p.learned
	p.mu.Unlock()
	s := ServerStats{
		Addr:       p.addr,
		Opened:     p.opened.Load(),
		Reused:     p.reused.Load(),
		Retried:    p.retried.Load(),
		Failed:     p.failed.Load(),
		Idle:       idle,
		Busy:       open - idle,
		Healthy:    p.healthy(),
		MarkedDown: p.markedDown.Load(),
	}
	s.LearnedIdleTimeout = learned.Seconds()
	s.Retired.IdleTimeout = p.retired[retireIdle].Load()
	s.Retired.OriginHint = p.retired[retireHint].Load()
	s.Retired.Learned = p.retired[retireLearned].Load()
	s.Retired.MaxRequests = p.retired[retireMaxRequests].Load()
	s.Retired.Lifetime = p.retired[retireLifetime].Load()
	s.Retired.OriginClose = p.retired[retireOriginClose].Load()
	s.Retired.Error = p.retired[retireError].Load()
	s.Retired.Excess = p.retired[retireExcess].Load()
	s.Retired.Shutdown = p.retired[retireShutdown].Load()
	return s
}
