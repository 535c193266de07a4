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
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// Config configures a Server. Zero values select the documented defaults.
type Config struct {
	// Addr is the "host:port" of the TLS listener (TCP, HTTP/1.1 and HTTP/2)
	// and of the HTTP/3 listener (UDP, same port). Port 0 picks a free port,
	// the same for both. Required.
	Addr string
	// TLSConfig supplies certificates. Its NextProtos are extended with h2
	// and http/1.1; protocols already present (such as acme-tls/1) are kept.
	// It is cloned, never modified; HTTP/3 uses a clone with ALPN "h3" only.
	TLSConfig *tls.Config
	// DisableHTTP3 turns off the QUIC listener and the Alt-Svc advertisement.
	DisableHTTP3 bool
	// PlainAddr, if set, is the "host:port" of a plain-HTTP listener.
	PlainAddr string
	// PlainHandler serves the plain-HTTP listener. Nil means redirect every
	// request to HTTPS on Addr's port (308).
	PlainHandler http.Handler
	// PlainMiddleware, if set, wraps the plain listener's handler
	// (PlainHandler or the default redirect) once, at Start. It is where
	// ACME's HTTP-01 responder goes (RFC 8555 §8.3): it answers
	// /.well-known/acme-challenge/ requests itself and passes the rest on.
	// It must not return nil.
	PlainMiddleware func(http.Handler) http.Handler
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
	// MaxReadFrameSize is the largest HTTP/2 frame accepted. Zero means 16 KiB.
	// Otherwise it must lie in [16384, 16777215] (RFC 9113 §6.5.2).
	MaxReadFrameSize uint32
	// MaxRequestsPerConn caps the requests on one HTTP/1.x client
	// connection; the last gets "Connection: close". Zero means no limit.
	MaxRequestsPerConn int
	// NoKeepAliveHeader stops HTTP/1.x responses from advertising
	// "Keep-Alive: timeout=N, max=M" (N from IdleTimeout, M the requests
	// left, omitted without a limit).
	NoKeepAliveHeader bool
	// Logger receives connection-level errors. Nil means slog.Default().
	Logger *slog.Logger
	// MalformedField reports whether a request field makes an HTTP/2 or
	// HTTP/3 request malformed (RFC 9113 §8.2.2, RFC 9114 §4.2); nil
	// disables the HTTP/2 engine's check. It gets the field name as sent
	// on the wire (lower case; pseudo-header fields are not passed) and the
	// value, for the fields of every HTTP/2 request and trailer block; it
	// must be safe for concurrent use. An HTTP/2 request with such a field
	// is answered RST_STREAM(PROTOCOL_ERROR) and never reaches the handler
	// (frontend/internal/h2, request.go); response fields it refuses are
	// not sent.
	MalformedField func(name, value string) bool

	// Limits against floods and slow clients (limits.go,
	// frontend/internal/h2/flood.go; the
	// full table with the tests that pin each one is docs/limits.md).

	// MaxConnsPerIP caps the open connections from one client address: an
	// IPv4 address, or an IPv6 /64 (one subscriber's usual allocation).
	// TCP connections of the TLS listener, TCP connections of the plain
	// listener and QUIC connections (handshakes included) are counted
	// apart, each against this cap. A TCP connection over it is closed at
	// once (RST), before TLS; a QUIC connection over it is refused
	// (CONNECTION_REFUSED), and past half of it QUIC asks for a Retry so
	// that spoofed source addresses cannot fill the count. Zero means
	// 1024; negative means no limit.
	MaxConnsPerIP int
	// WriteStallTimeout closes a TCP client connection (HTTP/1.1 and
	// HTTP/2) when one write to it (one engine write: a batch of HTTP/2
	// frames or a piece of an HTTP/1.x response, tens of KiB, in one
	// write(2): batch.go) makes no complete progress for this long: a client that stops reading (slow
	// read) is dropped, a slow but reading client and long healthy streams
	// are not, because each write gets a fresh deadline. Zero means 60s
	// (nginx's send_timeout); negative means none.
	WriteStallTimeout time.Duration
	// H2FloodWindow is the window over which the HTTP/2 flood limits
	// below count frames. Zero means 10s.
	H2FloodWindow time.Duration
	// H2MaxResets caps RST_STREAM frames from a client (HTTP/2 rapid
	// reset, CVE-2023-44487), together with the stream errors a client
	// causes, malformed requests among them (reset flood, CVE-2019-9514), per
	// H2FloodWindow. Over it the connection ends with
	// GOAWAY(ENHANCE_YOUR_CALM) (RFC 9113 §10.5). Zero means 1000;
	// negative means no limit.
	H2MaxResets int
	// H2MaxControlFrames caps PING, SETTINGS and PRIORITY frames from a
	// client per H2FloodWindow (CVE-2019-9512 ping flood, CVE-2019-9515
	// settings flood): each costs the server work, PING and SETTINGS an
	// answer, and carries no request. Zero means 1000; negative means no
	// limit.
	H2MaxControlFrames int
	// H2MaxEmptyFrames caps frames that carry nothing useful per
	// H2FloodWindow: DATA without data or END_STREAM (CVE-2019-9518),
	// empty HEADERS, CONTINUATION with an empty fragment and no
	// END_HEADERS (the CONTINUATION flood, CVE-2024-27316 family), and
	// frames of unknown type. Zero means 1000; negative
	// means no limit.
	H2MaxEmptyFrames int
}

// Server serves HTTP/1.1, HTTP/2 and HTTP/3 clients.
//
// The life of a Server: New builds and configures the protocol servers and
// binds nothing. Start binds TCP (then UDP on the same port) and the plain
// listener, and runs one serve loop per listener. Shutdown drains: each
// protocol server stops accepting and tells its clients to go (HTTP/1.1
// "Connection: close" on the responses still to come, HTTP/2 and HTTP/3
// GOAWAY), in-flight requests finish, and the sockets close. If the caller's
// context ends first, everything is closed at once.
type Server struct {
	// Read-only after New.
	cfg        Config // normalized
	handler    http.Handler
	log        *slog.Logger
	eng        *engines      // hoplite's own HTTP/1.x and HTTP/2 engines (engines.go)
	h3         *http3.Server // nil when cfg.DisableHTTP3
	h3TLS      *tls.Config   // nil when cfg.DisableHTTP3
	h3Conns    quicConns     // connections served by h3
	onShutdown []func()      // RegisterOnShutdown's hooks; before Start only
	// Per-address connection counts (limits.go); nil without a limit.
	tcpLim   *ipLimiter
	plainLim *ipLimiter
	quicLim  *quicLimiter

	// forceCtx is the context the protocol servers drain under; forceClose
	// cancels it.
	forceCtx    context.Context
	forceCancel context.CancelFunc
	forceOnce   sync.Once

	// acceptStopped is closed once every serve loop has returned; during
	// Shutdown that means every protocol server has begun draining.
	acceptStopped chan struct{}
	// h3LoopDone is closed when the HTTP/3 serve loop returns.
	h3LoopDone chan struct{}

	mu        sync.Mutex
	state     serverState         // guarded by mu
	tcpLn     net.Listener        // guarded by mu; set by Start
	plainLn   net.Listener        // guarded by mu; set by Start
	udp       *net.UDPConn        // guarded by mu; set by Start
	qtr       *quic.Transport     // guarded by mu; set by Start
	qln       *quic.EarlyListener // guarded by mu; set by Start
	drainDone chan struct{}       // guarded by mu; closed when the drain ends
	drainErr  error               // written by drain before drainDone closes
}

type serverState int

const (
	stateNew      serverState = iota
	stateStarted              // listeners bound, serve loops running
	stateDraining             // Shutdown called after Start
	stateClosed               // Shutdown called before Start
)

// New returns a Server that hands requests to h. It binds nothing.
func New(cfg Config, h http.Handler) (*Server, error) {
	if h == nil {
		return nil, errors.New("frontend: nil handler")
	}
	cfg, err := normalize(cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:           cfg,
		handler:       h,
		log:           cfg.Logger,
		eng:           newEngines(cfg),
		acceptStopped: make(chan struct{}),
		h3LoopDone:    make(chan struct{}),
	}
	s.forceCtx, s.forceCancel = context.WithCancel(context.Background())
	if cfg.MaxConnsPerIP > 0 {
		s.tcpLim = newIPLimiter(cfg.MaxConnsPerIP)
		s.plainLim = newIPLimiter(cfg.MaxConnsPerIP)
		if !cfg.DisableHTTP3 {
			s.quicLim = newQUICLimiter(cfg.MaxConnsPerIP)
		}
	}
	if !cfg.DisableHTTP3 {
		s.h3 = newHTTP3Server(cfg, h, &s.h3Conns)
		s.h3TLS = h3TLSConfig(cfg.TLSConfig)
	}
	return s, nil
}

// Start binds the listeners and serves in the background. Bind errors are
// returned as "frontend: listen tcp 127.0.0.1:8443: ..."; errors of the serve
// loops after Start go to Config.Logger.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stateNew:
	case stateClosed, stateDraining:
		return fmt.Errorf("frontend: start: %w", http.ErrServerClosed)
	default:
		return errors.New("frontend: start: already started")
	}

	if err := s.bind(); err != nil {
		return err
	}
	if s.cfg.PlainAddr != "" {
		ln, err := net.Listen("tcp", s.cfg.PlainAddr)
		if err != nil {
			s.closeSockets()
			return fmt.Errorf("frontend: %w", err)
		}
		s.plainLn = ln
	}

	tlsPort := s.tcpLn.Addr().(*net.TCPAddr).Port
	tcpHandler := s.handler
	if s.h3 != nil {
		// The UDP port equals the TCP port (bind), so Alt-Svc names it.
		tcpHandler = altSvcHandler{next: tcpHandler, value: []string{altSvcValue(tlsPort)}}
	}
	var plainHandler http.Handler // nil when cfg.PlainAddr == ""
	if s.cfg.PlainAddr != "" {
		h := s.cfg.PlainHandler
		if h == nil {
			h = redirectHandler(tlsPort)
		}
		if s.cfg.PlainMiddleware != nil {
			if h = s.cfg.PlainMiddleware(h); h == nil {
				s.closeSockets()
				return errors.New("frontend: Config.PlainMiddleware returned a nil handler")
			}
		}
		plainHandler = h
	}

	var loops sync.WaitGroup
	// Per-address limit and write-stall deadline below TLS (limits.go).
	limited := &limitListener{Listener: s.tcpLn, lim: s.tcpLim, stall: s.cfg.WriteStallTimeout}
	loops.Go(func() {
		s.logServeErr("https", s.tcpLn.Addr(), s.eng.acceptLoop(limited, s.cfg.TLSConfig, tcpHandler, s))
	})
	if s.h3 != nil {
		qln, addr := s.qln, s.udp.LocalAddr()
		loops.Go(func() {
			defer close(s.h3LoopDone)
			s.logServeErr("http3", addr, s.h3.ServeListener(qln))
		})
	} else {
		close(s.h3LoopDone)
	}
	if s.plainLn != nil {
		ln := &limitListener{Listener: s.plainLn, lim: s.plainLim, stall: s.cfg.WriteStallTimeout}
		loops.Go(func() { s.logServeErr("http", ln.Addr(), s.eng.acceptLoop(ln, nil, plainHandler, s)) })
	}
	go func() {
		loops.Wait()
		close(s.acceptStopped)
	}()
	s.state = stateStarted
	return nil
}

// bind opens the TCP listener and, with HTTP/3 on, the UDP socket on the
// same IP and port. With port 0 the kernel picks the TCP port; should that
// port be taken on UDP, bind retries a few times with a new TCP port.
// Guarded by s.mu.
func (s *Server) bind() error {
	attempts := 1
	if _, port, err := net.SplitHostPort(s.cfg.Addr); err == nil && (port == "0" || port == "") && s.h3 != nil {
		attempts = 8
	}
	for i := 1; ; i++ {
		ln, err := net.Listen("tcp", s.cfg.Addr)
		if err != nil {
			return fmt.Errorf("frontend: %w", err)
		}
		if s.h3 == nil {
			s.tcpLn = ln
			return nil
		}
		udp, tr, qln, err := listenHTTP3(ln.Addr().(*net.TCPAddr), s.h3TLS, s.h3.QUICConfig, s.quicLim)
		if err == nil {
			s.tcpLn, s.udp, s.qtr, s.qln = ln, udp, tr, qln
			return nil
		}
		_ = ln.Close()
		if i >= attempts || !errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("frontend: %w", err)
		}
	}
}

// closeSockets closes whatever a failed Start bound and forgets it.
// Guarded by s.mu.
func (s *Server) closeSockets() {
	if s.tcpLn != nil {
		_ = s.tcpLn.Close()
	}
	if s.qln != nil {
		_ = s.qln.Close()
	}
	if s.qtr != nil {
		_ = s.qtr.Close()
	}
	if s.udp != nil {
		_ = s.udp.Close()
	}
	if s.plainLn != nil {
		_ = s.plainLn.Close()
	}
	s.tcpLn, s.qln, s.qtr, s.udp, s.plainLn = nil, nil, nil, nil, nil
}

// logServeErr reports why a serve loop ended, unless it ended because of
// Shutdown.
func (s *Server) logServeErr(name string, addr net.Addr, err error) {
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		return
	}
	s.mu.Lock()
	draining := s.state == stateDraining
	s.mu.Unlock()
	if draining && (errors.Is(err, net.ErrClosed) || errors.Is(err, quic.ErrServerClosed)) {
		return
	}
	s.log.Error("frontend: serve loop stopped", "listener", name, "addr", addr.String(), "err", err)
}

// Addr returns the bound TLS listener address; valid after Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tcpLn == nil {
		return nil
	}
	return s.tcpLn.Addr()
}

// HTTP3Addr returns the bound UDP address of the HTTP/3 listener (same IP
// and port as Addr); nil before Start or when HTTP/3 is disabled.
func (s *Server) HTTP3Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.udp == nil {
		return nil
	}
	return s.udp.LocalAddr()
}

// PlainAddr returns the bound plain-HTTP listener address; nil before Start
// or when Config.PlainAddr is empty.
func (s *Server) PlainAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.plainLn == nil {
		return nil
	}
	return s.plainLn.Addr()
}

// RegisterOnShutdown registers f to be called, in its own goroutine, when
// Shutdown begins draining. Long-lived exchanges (upgraded HTTP/1.1
// connections such as WebSockets, HTTP/2 and HTTP/3 extended CONNECT
// streams) do not end by themselves; whoever owns them uses f to close
// them. The hooks run once; a forced close does not run them. Call it
// before Start.
func (s *Server) RegisterOnShutdown(f func()) {
	s.onShutdown = append(s.onShutdown, f)
}

// Shutdown drains gracefully: it stops accepting, lets in-flight requests
// finish (Connection: close on HTTP/1.1, GOAWAY on HTTP/2 and HTTP/3) and
// returns when all connections are closed or ctx is done.
//
// When ctx ends first, Shutdown closes every listener and connection at once
// and returns an error wrapping ctx.Err(); it does not wait for handlers
// that ignore their request's context. Shutdown may be called more than
// once; calls after the first wait for the same drain (and return nil once
// a forced close has ended it). Shutdown before Start makes Start fail.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	switch s.state {
	case stateNew:
		s.state = stateClosed
	case stateStarted:
		s.state = stateDraining
		s.drainDone = make(chan struct{})
		go s.drain(s.forceCtx)
	}
	done := s.drainDone
	s.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return s.drainErr
	case <-ctx.Done():
	}
	select {
	case <-done: // finished at the same moment: report the drain, not ctx
		return s.drainErr
	default:
	}
	s.forceClose()
	return fmt.Errorf("frontend: shutdown: %w", ctx.Err())
}

// drain runs the graceful shutdown of every protocol server in parallel
// under ctx (s.forceCtx). Fields set by Start are read without s.mu: Start
// wrote them before it released s.mu, and Shutdown took s.mu before starting
// drain.
func (s *Server) drain(ctx context.Context) {
	defer close(s.drainDone)
	var wg sync.WaitGroup
	var errTCP, errH3 error
	wg.Go(func() { errTCP = s.drainEngines(ctx) })
	if s.h3 != nil {
		wg.Go(func() { errH3 = s.drainHTTP3(ctx) })
	}
	wg.Wait()
	select {
	case <-s.acceptStopped:
	case <-ctx.Done():
	}
	if s.forceCtx.Err() != nil {
		// Forced: the caller whose ctx ended got that error. What is
		// left, the protocol servers' "context canceled", says nothing
		// more; later Shutdown calls find everything closed and get nil.
		return
	}
	var errs []error
	if errTCP != nil {
		errs = append(errs, fmt.Errorf("frontend: shutdown tcp: %w", errTCP))
	}
	if errH3 != nil {
		errs = append(errs, fmt.Errorf("frontend: shutdown http3: %w", errH3))
	}
	s.drainErr = errors.Join(errs...)
}

// drainEngines drains the TCP listeners served by hoplite's own engines:
// it asks every connection to finish (connSet.drainAll), closes the
// listeners, runs the RegisterOnShutdown hooks and waits until all have ended or
// ctx is done.
func (s *Server) drainEngines(ctx context.Context) error {
	// Connections are told first, then the listeners close: once the
	// serve loops have stopped, every response still to come already
	// knows it is the last (HTTP/1.x "Connection: close").
	s.eng.set.drainAll()
	_ = s.tcpLn.Close()
	if s.plainLn != nil {
		_ = s.plainLn.Close()
	}
	for _, f := range s.onShutdown {
		go f()
	}
	done := make(chan struct{})
	go func() {
		s.eng.set.wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		// forceClose, called by Shutdown, closes what is left; wait
		// goes on until it is gone.
		return ctx.Err()
	}
}

// drainHTTP3 shuts the HTTP/3 server down gracefully, then releases the
// UDP socket.
//
// http3.Server.Shutdown cancels quic-go's grace context: every connection
// sends GOAWAY on its control stream (RFC 9114 §5.2) and resets streams that
// arrive after it; running requests finish; Shutdown waits until the
// clients close their connections (quic-go's client closes as soon as its
// last stream is done). quic-go only closes listeners it created itself, so
// ours is closed here, after the serve loop has seen the grace context
// cancelled: handshakes still in flight are refused (CONNECTION_REFUSED).
func (s *Server) drainHTTP3(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.h3.Shutdown(ctx) }()
	select {
	case <-s.h3LoopDone:
	case <-ctx.Done():
	}
	_ = s.qln.Close()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		// quic-go's Shutdown falls back to Close, which waits for the
		// handlers to return; do not wait for that here.
		err = ctx.Err()
	}
	// Closes any connection left (none after a clean drain), then the
	// socket, which the transport does not own.
	_ = s.qtr.Close()
	_ = s.udp.Close()
	return err
}

// forceClose closes every listener and connection now. Safe to call more
// than once and concurrently with drain.
func (s *Server) forceClose() {
	s.forceOnce.Do(func() {
		if s.h3 != nil {
			// CONNECTION_CLOSE to every HTTP/3 client first: once forceCtx
			// is cancelled, drainHTTP3 closes the transport, which would
			// drop the connections silently.
			_ = s.qln.Close()
			s.h3Conns.closeAll()
		}
		_ = s.tcpLn.Close()
		if s.plainLn != nil {
			_ = s.plainLn.Close()
		}
		s.eng.set.closeAll()
		// Wakes drain; http3.Server.Shutdown falls back to its Close.
		s.forceCancel()
		if s.h3 != nil {
			_ = s.qtr.Close()
			_ = s.udp.Close()
		}
	})
}
