package frontend

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"

	"golang.org/x/net/http2"
)

// configureHTTP2 makes x/net/http2 serve the h2 connections of h1 and
// returns its explicit settings.
//
// Why x/net and not the HTTP/2 bundled in net/http: net/http configures its
// bundled copy (h2_bundle.go) lazily on first Serve, in
// Server.onceSetNextProtoDefaults, but only if TLSNextProto has no "h2"
// entry. http2.ConfigureServer installs x/net's handler under "h2", so the
// bundled server never starts. Two more switches could hand h2 back to
// net/http and are left unset on purpose:
//   - http.Server.HTTP2 (Go 1.24+): x/net merges it OVER the http2.Server
//     fields (configFromServer/fillNetHTTPConfig), so it must stay nil for
//     the settings below to be the ones sent;
//   - http.Server.Protocols: nil keeps the legacy rule "TLSNextProto decides".
//
// Caveat for the future: x/net v0.62.0 switches implementation by build tag.
// Built with Go 1.26 (this module) http2/server.go is x/net's own server; with
// Go 1.27+ and without -tags http2legacy, server_wrap.go makes
// ConfigureServer delegate to net/http's implementation instead (with the
// same settings). TestHTTP2IsXNet pins today's wiring and will flag the
// switch; the SETTINGS and GOAWAY tests pin the behaviour either way.
//
// Settings sent in the server preface (RFC 9113 §6.5.2):
//   - SETTINGS_MAX_CONCURRENT_STREAMS = cfg.MaxConcurrentStreams;
//   - SETTINGS_MAX_FRAME_SIZE = cfg.MaxReadFrameSize;
//   - SETTINGS_MAX_HEADER_LIST_SIZE is derived by x/net from
//     http.Server.MaxHeaderBytes, not from http2.Server: it sends
//     MaxHeaderBytes + 320 (adjustHTTP1MaxHeaderSize: room for ten fields of
//     the 32-byte per-field overhead that RFC 9113 §6.5.2 counts and
//     HTTP/1.1 does not). The same number caps the decoded header list it
//     accepts: a list over it gets 431 on that stream, but a single field
//     longer than the whole limit is an HPACK error that ends the connection
//     with GOAWAY(COMPRESSION_ERROR), and a header block fragment over twice
//     the remaining budget ends it with GOAWAY(PROTOCOL_ERROR) (x/net
//     frame.go readMetaFrame; pinned by TestHTTP2HeaderListTooLarge).
//
// The "h2" entry ConfigureServer registers is then replaced by serveH2,
// which runs the same x/net server over the read shim of h2shim.go (RFC 9113
// fixes: duplicate SETTINGS, connection-specific request fields).
//
// Flood limits (Config.H2Max*) are the shim's: x/net answers the read
// error it returns with GOAWAY(ENHANCE_YOUR_CALM) (h2shim.go).
//
// IdleTimeout closes an idle connection with GOAWAY. On http.Server.Shutdown
// x/net (registered through RegisterOnShutdown) sends GOAWAY(NO_ERROR),
// lets open streams finish, and closes the connection.
func configureHTTP2(h1 *http.Server, cfg Config) (*http2.Server, error) {
	h2 := &http2.Server{
		MaxConcurrentStreams: cfg.MaxConcurrentStreams,
		MaxReadFrameSize:     cfg.MaxReadFrameSize,
		IdleTimeout:          cfg.IdleTimeout,
		// A client that stops reading is dropped (limits.go stallConn
		// does the same below TLS, for HTTP/1.1 too).
		WriteByteTimeout: max(cfg.WriteStallTimeout, 0),
	}
	h1.HTTP2 = nil
	h1.Protocols = nil
	// ConfigureServer is marked deprecated in favour of http.Server.Protocols,
	// which is exactly the bundled server we do not want.
	if err := http2.ConfigureServer(h1, h2); err != nil {
		return nil, fmt.Errorf("frontend: configure HTTP/2: %w", err)
	}
	if h1.TLSNextProto[http2.NextProtoTLS] == nil {
		return nil, errors.New("frontend: configure HTTP/2: x/net/http2 did not register for h2")
	}
	h1.TLSNextProto[http2.NextProtoTLS] = serveH2(h2, shimConfig{
		maxFrameSize:      h2.MaxReadFrameSize,
		headerTableSize:   h2DecoderTableSize(h2),
		maxHeaderListSize: h2MaxHeaderListSize(h1),
		malformed:         cfg.MalformedField,
		floodWindow:       cfg.H2FloodWindow,
		maxResets:         cfg.H2MaxResets,
		maxControl:        cfg.H2MaxControlFrames,
		maxEmpty:          cfg.H2MaxEmptyFrames,
	})
	return h2, nil
}

// serveH2 returns the TLSNextProto["h2"] entry that replaces x/net's: it
// serves the connection with x/net's server exactly as x/net's own entry
// does (server.go, ConfigureServer's protoHandler), but through the read
// shim of h2shim.go. A TLSNextProto function receives a *tls.Conn and x/net
// hands that on to ServeConn, so wrapping the connection means calling
// ServeConn here.
//
// net/http passes its per-connection base context through an unexported
// method of h (initALPNRequest.BaseContext), which x/net's entry reads the
// same way.
func serveH2(h2 *http2.Server, sc shimConfig) func(*http.Server, *tls.Conn, http.Handler) {
	type baseContexter interface{ BaseContext() context.Context }
	return func(hs *http.Server, c *tls.Conn, h http.Handler) {
		var ctx context.Context
		if bc, ok := h.(baseContexter); ok {
			ctx = bc.BaseContext()
		}
		// ServeConn is deprecated along with ConfigureServer; see above.
		h2.ServeConn(newServedConn(c, sc, h2.WriteByteTimeout), &http2.ServeConnOpts{
			Context:    ctx,
			Handler:    h,
			BaseConfig: hs,
		})
	}
}

// h2DecoderTableSize is the dynamic table size of the HPACK decoder x/net
// builds for a connection: http2.Server.MaxDecoderHeaderTableSize, or the
// protocol's initial 4096 when zero (RFC 9113 §6.5.2; x/net config.go
// setConfigDefaults).
func h2DecoderTableSize(h2 *http2.Server) uint32 {
	if h2.MaxDecoderHeaderTableSize == 0 {
		return 4096
	}
	return h2.MaxDecoderHeaderTableSize
}

// h2MaxHeaderListSize is the SETTINGS_MAX_HEADER_LIST_SIZE x/net derives
// from http.Server.MaxHeaderBytes (server.go maxHeaderListSize,
// adjustHTTP1MaxHeaderSize): room for ten fields of 32 bytes overhead more.
// TestH2ShimLimitsMatchXNet compares it with the value on the wire.
func h2MaxHeaderListSize(h1 *http.Server) uint32 {
	n := h1.MaxHeaderBytes
	if n <= 0 {
		n = http.DefaultMaxHeaderBytes
	}
	return uint32(n + 10*32)
}
