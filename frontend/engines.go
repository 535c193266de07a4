package frontend

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"hoplite/frontend/internal/h1"
	"hoplite/frontend/internal/h2"
)

// The TCP listeners on hoplite's own engines.
//
// acceptLoop takes connections from a listener (already wrapped by
// limitListener: per-address cap and write-stall deadline) and serves each
// on a goroutine of its own: for the TLS listener, the handshake, bounded
// by ReadHeaderTimeout as net/http bounds it, then the engine ALPN chose
// (RFC 7301; RFC 9113 §3.2): "h2" for HTTP/2, "http/1.1" or none for
// HTTP/1.x. acme-tls/1 connections (RFC 8737) end with their handshake,
// which is where certmagic answers the challenge.

// engines holds what the engines need, built once by New.
type engines struct {
	h1TLS   h1.Config // TLS listener: advertises Keep-Alive unless told not to
	h1Plain h1.Config // plain listener: no advertisement
	h2      h2.Config
	set     *connSet
}

// newEngines takes the normalized Config (defaults applied).
func newEngines(cfg Config) *engines {
	h1c := h1.Config{
		ReadHeaderTimeout:  cfg.ReadHeaderTimeout,
		IdleTimeout:        cfg.IdleTimeout,
		MaxHeaderBytes:     cfg.MaxHeaderBytes,
		MaxRequestsPerConn: cfg.MaxRequestsPerConn,
		KeepAliveHeader:    !cfg.NoKeepAliveHeader,
		Logger:             cfg.Logger,
	}
	plain := h1c
	plain.KeepAliveHeader = false
	plain.MaxRequestsPerConn = 0
	return &engines{
		h1TLS:   h1c,
		h1Plain: plain,
		h2: h2.Config{
			MaxConcurrentStreams: cfg.MaxConcurrentStreams,
			MaxFrameSize:         cfg.MaxReadFrameSize,
			// Room for ten fields' 32-byte overhead, which RFC 9113
			// §6.5.2 counts and HTTP/1.1's limit does not.
			MaxHeaderListSize: uint32(cfg.MaxHeaderBytes + 10*32),
			IdleTimeout:       cfg.IdleTimeout,
			PrefaceTimeout:    cfg.ReadHeaderTimeout,
			MalformedField:    cfg.MalformedField,
			FloodWindow:       cfg.H2FloodWindow,
			MaxResets:         cfg.H2MaxResets,
			MaxControlFrames:  cfg.H2MaxControlFrames,
			MaxEmptyFrames:    cfg.H2MaxEmptyFrames,
			Logger:            cfg.Logger,
		},
		set: newConnSet(),
	}
}

// acceptLoop serves ln until it is closed. tlsConf nil means plain HTTP/1.x.
func (e *engines) acceptLoop(ln net.Listener, tlsConf *tls.Config, h http.Handler, s *Server) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Temporary errors (EMFILE and the like): back off and go
			// on, as net/http does, rather than stop serving.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("frontend: accept", "addr", ln.Addr().String(), "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		sc := &acceptedConn{raw: c}
		if !e.set.add(sc) {
			sc.drain()
		}
		go func() {
			defer e.set.remove(sc)
			if tlsConf == nil {
				sc.serve(h1.NewConn(c, h, &e.h1Plain))
				return
			}
			bc := &batchConn{Conn: c}
			e.serveTLS(sc, batchedTLS{tls.Server(bc, tlsConf), bc}, h, s)
		}()
	}
}

// serveTLS completes the handshake of tc and runs the engine its ALPN
// protocol names. tc batches the TLS records of each engine write into one
// write(2) (batch.go).
func (e *engines) serveTLS(sc *acceptedConn, tc batchedTLS, h http.Handler, s *Server) {
	timeout := s.cfg.ReadHeaderTimeout
	_ = tc.SetDeadline(time.Now().Add(timeout))
	if err := tc.Handshake(); err != nil {
		reason := err.Error()
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			// As net/http: a plain HTTP request on the TLS port gets a
			// plain answer rather than a TLS alert.
			_, _ = io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
			reason = "client sent an HTTP request to an HTTPS server"
		}
		s.log.Warn("frontend: TLS handshake failed", "remote", tc.RemoteAddr().String(), "err", reason)
		_ = tc.Close()
		return
	}
	_ = tc.SetDeadline(time.Time{})
	switch tc.ConnectionState().NegotiatedProtocol {
	case alpnHTTP2:
		sc.serve(h2.NewConn(tc, h, &e.h2))
	case "", alpnHTTP11:
		sc.serve(h1.NewConn(tc, h, &e.h1TLS))
	default:
		// acme-tls/1: the handshake was the whole exchange.
		_ = tc.Close()
	}
}

// looksLikeHTTP reports whether the first five bytes of a "TLS record"
// are the start of a plain HTTP/1.x request.
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}
