package frontend

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"sync"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// QUIC transport limits, explicit rather than quic-go's defaults (see
// quicConfig and listenHTTP3; docs/limits.md).
const (
	quicConnIDLen = 8
	// quicMaxUniStreams: HTTP/3 needs three unidirectional streams from a
	// client (control, QPACK encoder and decoder; RFC 9114 §6.2, RFC 9204
	// §4.2) and clients add a grease stream or two (§6.2.3). quic-go's
	// default is 100, each of them a goroutine and buffers on our side.
	quicMaxUniStreams = 16
	// Flow control windows: per stream up to 1 MiB (quic-go grows it from
	// 512 KiB as the round trip demands); per connection quic-go's
	// auto-tuning may grow to 4 MiB (its own default is 15 MiB). They bound
	// what a client can make us buffer for a slow origin.
	quicInitialStreamWindow = 512 << 10
	quicMaxStreamWindow     = 1 << 20
	quicInitialConnWindow   = 768 << 10
	quicMaxConnWindow       = 4 << 20
)

// quicConfig returns the explicit QUIC transport settings for the HTTP/3
// listener.
//
//   - MaxIdleTimeout = IdleTimeout: the QUIC idle timeout (RFC 9000 §10.1),
//     the transport twin of the HTTP-level IdleTimeout.
//   - MaxIncomingStreams = MaxConcurrentStreams: the bidirectional stream
//     credit, i.e. concurrent requests per connection (RFC 9114 §6.1), as
//     SETTINGS_MAX_CONCURRENT_STREAMS is for HTTP/2. quic-go raises the
//     credit (MAX_STREAMS) only as streams end, so a client can never have
//     more open; one that opens a stream beyond it anyway commits
//     STREAM_LIMIT_ERROR (RFC 9000 §4.6) and loses the connection.
//   - MaxIncomingUniStreams = 16 (quicMaxUniStreams).
//   - HandshakeIdleTimeout = ReadHeaderTimeout: net/http bounds the TLS
//     handshake on TCP by ReadHeaderTimeout; do the same for QUIC (quic-go
//     gives the whole handshake twice this).
//   - Flow control windows: see quicMaxStreamWindow.
//   - Allow0RTT = false, stated explicitly because http3.Server's own
//     default QUIC config (used when QUICConfig is nil) sets it TRUE. 0-RTT
//     data can be replayed by an attacker (RFC 9001 §9.2); a server accepting
//     it must either admit only replay-safe requests or carry the risk to
//     every hop behind it (RFC 8470: Early-Data header, 425 Too Early). This
//     front proxy forwards to origins that know nothing of early data, so it
//     does not accept any; clients pay one round trip on resumption.
func quicConfig(cfg Config) *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout:           cfg.ReadHeaderTimeout,
		MaxIdleTimeout:                 cfg.IdleTimeout,
		MaxIncomingStreams:             int64(cfg.MaxConcurrentStreams),
		MaxIncomingUniStreams:          quicMaxUniStreams,
		InitialStreamReceiveWindow:     quicInitialStreamWindow,
		MaxStreamReceiveWindow:         quicMaxStreamWindow,
		InitialConnectionReceiveWindow: quicInitialConnWindow,
		MaxConnectionReceiveWindow:     quicMaxConnWindow,
		Allow0RTT:                      false,
	}
}

// newHTTP3Server returns the HTTP/3 server. Requests get the plain handler:
// an HTTP/3 response has no need to advertise HTTP/3.
//
// MaxHeaderBytes is sent as SETTINGS_MAX_FIELD_SECTION_SIZE (RFC 9114 §7.2.4.1)
// and quic-go v0.65.0 enforces it twice: on the length of the QPACK-encoded
// HEADERS frame and on the decoded field section; either excess gets 431.
// IdleTimeout closes connections with no open request stream (HTTP/3 layer;
// QUIC-level idleness is MaxIdleTimeout above).
func newHTTP3Server(cfg Config, h http.Handler, conns *quicConns) *http3.Server {
	return &http3.Server{
		Handler:        h,
		QUICConfig:     quicConfig(cfg),
		MaxHeaderBytes: cfg.MaxHeaderBytes,
		IdleTimeout:    cfg.IdleTimeout,
		Logger:         cfg.Logger,
		ConnContext:    conns.connContext,
	}
}

// h3TLSConfig derives the QUIC TLS config from the TCP one: same
// certificates, ALPN exactly "h3" (http3.ConfigureTLSConfig replaces
// NextProtos, also in configs returned by GetConfigForClient). ACME
// validates TLS-ALPN-01 over TCP (RFC 8737 §3), so dropping acme-tls/1 here
// is right.
func h3TLSConfig(tcp *tls.Config) *tls.Config {
	// QUIC itself requires TLS 1.3 (RFC 9001 §4.2); quic-go enforces that.
	return http3.ConfigureTLSConfig(tcp)
}

// listenHTTP3 binds UDP at exactly the IP and port of the TCP listener and
// starts a QUIC listener on it. The caller owns and closes the returned
// transport and conn; the listener is closed by the caller at drain. lim
// (nil: none) applies Config.MaxConnsPerIP (limits.go).
//
// Transport settings, explicit:
//   - ConnectionIDLength 8 (quic-go's default is 4): our connection IDs
//     are random; 8 bytes make a collision between connections, or a
//     guessed ID of another client's connection, negligible. quic-go issues
//     at most a handful of IDs per connection and caps the IDs a peer may
//     hand us (active_connection_id_limit, RFC 9000 §5.1.1), neither of
//     which it lets us configure.
//   - ConnContext and VerifySourceAddress: the per-address limit, with a
//     Retry asked of busy addresses.
func listenHTTP3(tcpAddr *net.TCPAddr, tlsConf *tls.Config, qconf *quic.Config, lim *quicLimiter) (*net.UDPConn, *quic.Transport, *quic.EarlyListener, error) {
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: tcpAddr.IP, Port: tcpAddr.Port, Zone: tcpAddr.Zone})
	if err != nil {
		return nil, nil, nil, err
	}
	tr := &quic.Transport{Conn: udp, ConnectionIDLength: quicConnIDLen}
	if lim != nil {
		tr.ConnContext = lim.connContext
		tr.VerifySourceAddress = lim.verifySourceAddress
	}
	// An EarlyListener, as http3.Server uses itself: with 0-RTT off it only
	// lets the server send its SETTINGS in 0.5-RTT; requests still arrive
	// after the client's Finished.
	ln, err := tr.ListenEarly(tlsConf, qconf)
	if err != nil {
		_ = tr.Close()
		_ = udp.Close()
		return nil, nil, nil, fmt.Errorf("quic listen %s: %w", udp.LocalAddr(), err)
	}
	return udp, tr, ln, nil
}

// quicConns tracks the QUIC connections the HTTP/3 server is serving
// (registered through http3.Server.ConnContext) so that a forced close can
// send each one CONNECTION_CLOSE (RFC 9000 §10.2). Closing the
// quic.Transport alone would drop them silently and leave clients waiting
// for their idle timeout.
type quicConns struct {
	mu sync.Mutex
	m  map[*quic.Conn]struct{} // guarded by mu
}

// connContext is an http3.Server.ConnContext that registers c until it
// closes.
func (q *quicConns) connContext(ctx context.Context, c *quic.Conn) context.Context {
	q.mu.Lock()
	if q.m == nil {
		q.m = make(map[*quic.Conn]struct{})
	}
	q.m[c] = struct{}{}
	q.mu.Unlock()
	context.AfterFunc(c.Context(), func() {
		q.mu.Lock()
		delete(q.m, c)
		q.mu.Unlock()
	})
	return ctx
}

// closeAll closes every tracked connection with H3_NO_ERROR, as quic-go's
// own http3.Server.Close does, and returns when all are closed.
func (q *quicConns) closeAll() {
	q.mu.Lock()
	conns := make([]*quic.Conn, 0, len(q.m))
	for c := range q.m {
		conns = append(conns, c)
	}
	q.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			_ = c.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "server shutting down")
		})
	}
	wg.Wait()
}
