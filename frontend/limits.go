package frontend

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// Per-client connection limits and the write-stall deadline.
//
// A client that opens connections without end, or holds many open and idle
// (slowloris), or stops reading what it asked for (slow read), costs the
// proxy memory and file descriptors while it costs the client almost
// nothing. Three defences live here, below TLS and below the protocol
// servers:
//
//   - limitListener counts the open TCP connections per client address
//     (ipLimiter) and closes a connection over Config.MaxConnsPerIP at once,
//     before TLS: no handshake, no goroutine, no buffers.
//   - quicLimiter does the same for QUIC connections through
//     quic.Transport's ConnContext hook (a refused Initial is answered
//     CONNECTION_REFUSED), and asks for a Retry (RFC 9000 §8.1.2) once an
//     address holds half its allowance: a connection counted after that
//     comes from an address that proved it receives our packets, so spoofed
//     Initials cannot lock a real client out.
//   - stallConn gives every write to a TCP connection a fresh deadline of
//     Config.WriteStallTimeout. net/http has no per-write timeout for
//     HTTP/1.1 (WriteTimeout covers a whole response, which would cut long
//     healthy downloads), so a client that stops reading would hold the
//     handler, its upstream connection and the buffers for ever. A write
//     to the raw connection is one TLS record (crypto/tls writes record by
//     record), at most 16 KiB, so the deadline asks for a record's worth of
//     progress per timeout, not for the whole response.
//
// Client addresses are keyed by IPv4 address, or by IPv6 /64: one IPv6
// subscriber usually holds a whole /64 and could otherwise spread its
// connections over 2^64 addresses.

// clientKey returns the counting key of a remote address; ok is false when
// addr carries no IP (a test's pipe), which is then not limited.
func clientKey(addr net.Addr) (netip.Addr, bool) {
	var ap netip.AddrPort
	switch a := addr.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		return netip.Addr{}, false
	}
	ip := ap.Addr().Unmap()
	if !ip.IsValid() {
		return netip.Addr{}, false
	}
	if ip.Is6() {
		p, err := ip.Prefix(64)
		if err != nil {
			return netip.Addr{}, false
		}
		ip = p.Addr()
	}
	return ip, true
}

// ipLimiter counts open connections per client key.
type ipLimiter struct {
	max     int // > 0
	refused atomic.Uint64

	mu sync.Mutex
	n  map[netip.Addr]int // guarded by mu; no zero entries
}

func newIPLimiter(n int) *ipLimiter {
	return &ipLimiter{max: n, n: make(map[netip.Addr]int)}
}

// acquire counts one more connection for k unless k already holds max.
func (l *ipLimiter) acquire(k netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[k] >= l.max {
		l.refused.Add(1)
		return false
	}
	l.n[k]++
	return true
}

func (l *ipLimiter) release(k netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.n[k]; c > 1 {
		l.n[k] = c - 1
	} else {
		delete(l.n, k)
	}
}

// count returns the connections k holds.
func (l *ipLimiter) count(k netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[k]
}

// limitListener wraps the TCP listeners: per-address connection limit
// (lim nil: none) and the write-stall deadline (stall <= 0: none).
type limitListener struct {
	net.Listener
	lim   *ipLimiter
	stall time.Duration
}

// Accept returns the next connection within the limit. Connections over it
// are closed here, with SO_LINGER 0 (RST, no TIME_WAIT left on our side),
// and Accept goes on: a refusal is no error of the listener.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		k, keyed := clientKey(c.RemoteAddr())
		if l.lim != nil && keyed && !l.lim.acquire(k) {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
			continue
		}
		if l.lim == nil || !keyed {
			if l.stall <= 0 {
				return c, nil
			}
			return &stallConn{Conn: c, stall: l.stall}, nil
		}
		return &stallConn{Conn: c, stall: l.stall, lim: l.lim, key: k}, nil
	}
}

// stallConn is an accepted TCP connection: it releases its place in the
// per-address count on Close, and with stall > 0 bounds every Write.
type stallConn struct {
	net.Conn
	stall time.Duration // <= 0: no write deadline of our own
	lim   *ipLimiter    // nil: not counted
	key   netip.Addr
	once  sync.Once

	mu       sync.Mutex
	userWDL  time.Time // guarded by mu: the write deadline the server set
	armedWDL time.Time // guarded by mu: the deadline on the socket now
}

// Write arms the write deadline: the server's own, or now+stall, whichever
// comes first. To keep the cost per write low, an unchanged server
// deadline and a stall deadline still at least 7/8 of stall away are left
// as they are (so a stalled write is cut after between 7/8 and all of
// stall).
func (c *stallConn) Write(p []byte) (int, error) {
	if c.stall <= 0 {
		return c.Conn.Write(p)
	}
	now := time.Now()
	d := now.Add(c.stall)
	c.mu.Lock()
	if !c.userWDL.IsZero() && c.userWDL.Before(d) {
		d = c.userWDL
	}
	rearm := !d.Equal(c.armedWDL) && (d.Before(c.armedWDL) || c.armedWDL.Sub(now) < c.stall-c.stall/8)
	if rearm {
		c.armedWDL = d
	}
	c.mu.Unlock()
	if rearm {
		if err := c.Conn.SetWriteDeadline(d); err != nil {
			return 0, err
		}
	}
	return c.Conn.Write(p)
}

func (c *stallConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.userWDL, c.armedWDL = t, t
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

func (c *stallConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.userWDL, c.armedWDL = t, t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *stallConn) Close() error {
	if c.lim != nil {
		c.once.Do(func() { c.lim.release(c.key) })
	}
	return c.Conn.Close()
}

// errTooManyQUICConns refuses a QUIC connection over Config.MaxConnsPerIP.
var errTooManyQUICConns = errors.New("frontend: too many QUIC connections from this address")

// quicLimiter applies Config.MaxConnsPerIP to QUIC connections. quic-go
// calls connContext for every new connection attempt (its Initial), and
// cancels the context it passed in once the connection is closed or its
// handshake fails, which releases the count.
type quicLimiter struct {
	lim     *ipLimiter
	retryAt int // ask for address validation from this many connections on
}

func newQUICLimiter(n int) *quicLimiter {
	return &quicLimiter{lim: newIPLimiter(n), retryAt: max(1, n/2)}
}

// verifySourceAddress is quic.Transport.VerifySourceAddress: a Retry for an
// address that already holds half its allowance.
func (q *quicLimiter) verifySourceAddress(addr net.Addr) bool {
	k, ok := clientKey(addr)
	return ok && q.lim.count(k) >= q.retryAt
}

// connContext is quic.Transport.ConnContext.
func (q *quicLimiter) connContext(ctx context.Context, info *quic.ClientInfo) (context.Context, error) {
	k, ok := clientKey(info.RemoteAddr)
	if !ok {
		return ctx, nil
	}
	if !info.AddrVerified && q.lim.count(k) >= q.retryAt {
		// A racing Initial that skipped the Retry check: not counted
		// unverified past retryAt.
		q.lim.refused.Add(1)
		return nil, errTooManyQUICConns
	}
	if !q.lim.acquire(k) {
		return nil, errTooManyQUICConns
	}
	context.AfterFunc(ctx, func() { q.lim.release(k) })
	return ctx, nil
}
