package frontend

import (
	"net"
	"sync"
)

// How the connection engines and the Server meet.
//
// hoplite runs its own downstream connection engines: frontend/internal/h1
// for HTTP/1.x and frontend/internal/h2 for HTTP/2. The Server accepts TCP
// connections, completes TLS handshakes, picks the engine by ALPN and runs
// its Serve on the connection's goroutine; Serve returns once the
// connection has ended and is closed.
//
// For drain and forced close every accepted connection is a acceptedConn in
// the Server's connSet, from accept to the end of Serve:
//   - add returns false once the set is draining; the connection is then
//     served as if drain had been called (an HTTP/1.x engine closes before
//     its first request, HTTP/2 sends GOAWAY at once);
//   - drain asks the engine to finish gracefully: HTTP/1.x closes an idle
//     connection at once and answers the request in progress with
//     "Connection: close" (RFC 9112 §9.6); HTTP/2 sends GOAWAY (RFC 9113
//     §6.8), lets open streams finish and closes;
//   - closeNow ends the connection at once, handshake included.
//
// Shutdown calls drainAll, which marks the set draining and drains every
// member, then wait until every member has left; on its deadline, closeAll
// closes whoever is left.

// engineConn is a member of a connSet.
type engineConn interface {
	drain()
	closeNow()
}

// engine is what frontend/internal/h1 and frontend/internal/h2 return for a
// connection (h1.Conn, h2.Conn).
type engine interface {
	Serve()
	Drain()
	Close()
}

// acceptedConn is one accepted TCP connection, from the TLS handshake to its
// end: a connSet member before any engine runs, so that a forced close
// reaches connections still in their handshake too.
type acceptedConn struct {
	raw net.Conn // the accepted connection (under TLS, if any)

	mu       sync.Mutex
	eng      engine // guarded by mu; nil until the engine is chosen
	draining bool   // guarded by mu
	closed   bool   // guarded by mu
}

func (c *acceptedConn) drain() {
	c.mu.Lock()
	c.draining = true
	e := c.eng
	c.mu.Unlock()
	if e != nil {
		e.Drain()
	}
}

func (c *acceptedConn) closeNow() {
	c.mu.Lock()
	c.closed = true
	e := c.eng
	c.mu.Unlock()
	_ = c.raw.Close()
	if e != nil {
		e.Close()
	}
}

// serve runs e on the connection until it ends, passing on a drain or close
// that came before it.
func (c *acceptedConn) serve(e engine) {
	c.mu.Lock()
	c.eng = e
	draining, closed := c.draining, c.closed
	c.mu.Unlock()
	if closed {
		e.Close()
	} else if draining {
		e.Drain()
	}
	e.Serve()
}

// connSet tracks live engine connections.
type connSet struct {
	mu       sync.Mutex
	conns    map[engineConn]struct{} // guarded by mu
	draining bool                    // guarded by mu
	empty    *sync.Cond              // signalled (under mu) when conns becomes empty
}

func newConnSet() *connSet {
	s := &connSet{conns: make(map[engineConn]struct{})}
	s.empty = sync.NewCond(&s.mu)
	return s
}

// add registers c. It returns false when the set is draining; c is
// registered all the same, and must still call remove.
func (s *connSet) add(c engineConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns[c] = struct{}{}
	return !s.draining
}

// remove forgets c.
func (s *connSet) remove(c engineConn) {
	s.mu.Lock()
	delete(s.conns, c)
	if len(s.conns) == 0 {
		s.empty.Broadcast()
	}
	s.mu.Unlock()
}

// drainAll marks the set draining and asks every member to drain.
func (s *connSet) drainAll() {
	s.mu.Lock()
	s.draining = true
	members := make([]engineConn, 0, len(s.conns))
	for c := range s.conns {
		members = append(members, c)
	}
	s.mu.Unlock()
	for _, c := range members {
		c.drain()
	}
}

// closeAll closes every member now.
func (s *connSet) closeAll() {
	s.mu.Lock()
	members := make([]engineConn, 0, len(s.conns))
	for c := range s.conns {
		members = append(members, c)
	}
	s.mu.Unlock()
	for _, c := range members {
		c.closeNow()
	}
}

// wait blocks until the set is empty.
func (s *connSet) wait() {
	s.mu.Lock()
	for len(s.conns) > 0 {
		s.empty.Wait()
	}
	s.mu.Unlock()
}
