package frontend

import (
	"context"
	"net"
	"net/http"
	"strconv"
)

// Client-side persistence for HTTP/1.x (RFC 9112 §9.3, §9.6).
//
// net/http already keeps HTTP/1.1 connections open by default, honours a
// client's "Connection: close", keeps an HTTP/1.0 connection open only
// when the client asked with "Connection: keep-alive" and the response is
// framed (answering "Connection: keep-alive"), and closes idle connections
// after IdleTimeout. What it lacks is a cap on requests per connection and
// the "Keep-Alive: timeout=N, max=M" advertisement (RFC 2068 §19.7.1.1),
// which tells a client when hoplite will close, so that it never sends a
// request into that close. persistence adds both.

// h1ConnKey carries a *h1Conn in the context of every request on an
// HTTP/1.x connection, through http.Server.ConnContext.
type h1ConnKey struct{}

// h1Conn counts the requests a client connection has sent. net/http serves
// the requests of one HTTP/1.x connection one at a time, so the count needs
// no lock.
type h1Conn struct{ served int }

func h1ConnContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, h1ConnKey{}, &h1Conn{})
}

// persistence sets the connection-management fields of HTTP/1.x responses
// before the wrapped handler runs. They are hop-by-hop; the handler must
// not overwrite them with an origin's own.
type persistence struct {
	next        http.Handler
	maxRequests int      // Config.MaxRequestsPerConn
	advertise   bool     // !Config.NoKeepAliveHeader
	timeout     string   // "timeout=N", from IdleTimeout
	unlimited   []string // the Keep-Alive value when maxRequests is 0
}

var connectionClose = []string{"close"}

func newPersistence(next http.Handler, cfg Config) persistence {
	timeout := "timeout=" + strconv.Itoa(int(cfg.IdleTimeout.Seconds()))
	return persistence{
		next:        next,
		maxRequests: cfg.MaxRequestsPerConn,
		advertise:   !cfg.NoKeepAliveHeader,
		timeout:     timeout,
		unlimited:   []string{timeout},
	}
}

func (p persistence) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c, ok := r.Context().Value(h1ConnKey{}).(*h1Conn); ok && r.ProtoMajor == 1 {
		c.served++
		h := w.Header()
		switch {
		case p.maxRequests > 0 && c.served >= p.maxRequests:
			// RFC 9112 §9.6: the last request the server will take on this
			// connection gets "Connection: close"; net/http then closes it.
			h["Connection"] = connectionClose
		case !p.advertise || r.Close:
			// The client closes after this response anyway (r.Close is
			// net/http's reading of HTTP/1.0 and "Connection: close").
		case p.maxRequests == 0:
			h["Keep-Alive"] = p.unlimited
		default:
			h["Keep-Alive"] = []string{p.timeout + ", max=" + strconv.Itoa(p.maxRequests-c.served)}
		}
	}
	p.next.ServeHTTP(w, r)
}
