package frontend

import (
	"log"
	"log/slog"
	"net/http"
)

// newHTTP1Server returns the net/http server for the TLS listener. It
// serves HTTP/1.1 itself and hands connections that negotiated h2 to
// x/net/http2 (see configureHTTP2). handler is set later, by Start, once the
// bound port for Alt-Svc is known.
//
// Limits:
//   - ReadHeaderTimeout bounds reading a request header, and (net/http's
//     tlsHandshakeTimeout takes the smallest of ReadHeaderTimeout,
//     ReadTimeout and WriteTimeout) the TLS handshake too. A client that
//     stalls mid-header is closed without a response.
//   - MaxHeaderBytes: net/http lets the request line and header grow to
//     MaxHeaderBytes + 4096 bytes ("bufio slop") before it answers 431
//     Request Header Fields Too Large and closes the connection.
//   - IdleTimeout closes keep-alive connections idle between requests.
//
// ReadTimeout and WriteTimeout stay zero: a proxy streams bodies of any
// length in both directions; per-request deadlines belong to the handler.
//
// During Shutdown net/http stops keep-alive (Server.doKeepAlives is false
// once inShutdown is set), so a response whose header is written after
// Shutdown began carries "Connection: close" and the connection closes
// after it (RFC 9112 §9.6).
func newHTTP1Server(cfg Config, errorLog *log.Logger) *http.Server {
	return &http.Server{
		TLSConfig:         cfg.TLSConfig,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          errorLog,
		ConnContext:       h1ConnContext,
	}
}

// newPlainServer returns the server for the plain-HTTP listener: HTTP/1.x
// only (no h2c), same header limits and timeouts as the TLS listener.
func newPlainServer(cfg Config, errorLog *log.Logger) *http.Server {
	var protos http.Protocols
	protos.SetHTTP1(true)
	return &http.Server{
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          errorLog,
		Protocols:         &protos,
	}
}

// serverErrorLog adapts Logger for http.Server.ErrorLog, which carries
// connection-level trouble (TLS handshake failures, handler panics, h2
// protocol errors). Warn, not Error: most of it is caused by clients.
func serverErrorLog(l *slog.Logger) *log.Logger {
	return slog.NewLogLogger(l.Handler(), slog.LevelWarn)
}
