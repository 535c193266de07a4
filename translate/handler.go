// Package translate is the proxy's core: an http.Handler that routes each
// downstream request to a backend, applies HTTP's hop-by-hop rules in both
// directions, adds forwarding fields, streams bodies and trailers, and maps
// upstream failures to a status. It reaches backends only through
// http.RoundTripper.
package translate

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
)

// Route sends requests whose host and path match to a named backend.
type Route struct {
	// Host matches the request's host, case-insensitively and without port.
	// "*.example.com" matches any single label in front of example.com.
	// Empty matches any host.
	Host string
	// PathPrefix matches the start of the request path. Empty means "/".
	PathPrefix string
	// Backend names an entry of Config.Backends.
	Backend string
}

// Config configures a Handler.
type Config struct {
	// Routes are matched most specific first: an exact host before a
	// wildcard host before any host, then the longest path prefix.
	Routes []Route
	// Backends maps backend names to their transports.
	Backends map[string]http.RoundTripper
	// Via is the pseudonym this proxy adds to Via fields. Empty means "hoplite".
	Via string
	// Logger receives upstream failures. Nil means slog.Default().
	Logger *slog.Logger
}

// Handler is the proxy http.Handler.
type Handler struct {
	routes []route
	via    viaValues
	log    *slog.Logger
}

var _ http.Handler = (*Handler)(nil)

// New validates cfg and returns a Handler.
func New(cfg Config) (*Handler, error) {
	routes, err := compileRoutes(cfg.Routes, cfg.Backends)
	if err != nil {
		return nil, err
	}
	pseudonym := cfg.Via
	if pseudonym == "" {
		pseudonym = "hoplite"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Handler{routes: routes, via: newVia(pseudonym), log: log}, nil
}

// ServeHTTP proxies one request.
//
// The request arrives over HTTP/1.x, HTTP/2 or HTTP/3; the frontend has
// already enforced that protocol's own rules. Here it becomes an HTTP/1.1
// request for the origin: same method, target, Host and end-to-end fields,
// without the hop-by-hop fields, with Via and X-Forwarded-* added, and with
// its content framed for the upstream hop by the backend. The response
// comes back the same way: hop-by-hop fields removed, Via added, the status
// and end-to-end fields passed on, the content streamed as it arrives and
// trailers passed on after it. A failure before the response header
// becomes 502, 503 or 504 (errors.go); a failure after it can only cut the
// response short, which the frontend signals to the client as an error
// (HTTP/1.1: the connection closes; HTTP/2 and HTTP/3: the stream resets).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if checkRequest(w, r) { // fieldcheck.go: RFC 9113 §8.2.1, RFC 9114 §4.1.2
		return
	}
	if r.Method == http.MethodConnect {
		h.fail(w, r, "", errUnsupported)
		return
	}
	rt := h.match(r)
	if rt == nil {
		h.fail(w, r, "", errNoRoute)
		return
	}
	out := h.outgoing(w, r)
	resp, err := rt.rt.RoundTrip(out)
	if err != nil {
		h.fail(w, r, rt.name, err)
		return
	}
	defer resp.Body.Close()

	removeHopByHop(resp.Header)
	addVia(resp.Header, h.via.forProto(resp.ProtoMajor, resp.ProtoMinor))
	dst := w.Header()
	for k, vv := range resp.Header {
		dst[k] = vv
	}
	w.WriteHeader(resp.StatusCode)
	if _, hasLength := dst["Content-Length"]; r.Method == http.MethodHead && !hasLength {
		// RFC 9110 §9.3.2: a HEAD response's Content-Length, if any, is the
		// GET's. Without one from the origin, send the header now, before
		// a server derives "Content-Length: 0" from the empty content
		// (quic-go's HTTP/3 server does).
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	if err := copyBody(w, resp.Body); err != nil {
		h.log.Debug("response cut short", "method", r.Method, "uri", r.RequestURI, "backend", rt.name, "err", err)
		// The standard way to tell the frontend's engines and quic-go/http3
		// that the response is incomplete: the server recovers it silently
		// and aborts the connection or stream.
		panic(http.ErrAbortHandler)
	}
	copyTrailers(dst, resp.Trailer)
}

// outgoing builds the upstream request. The downstream header is copied,
// not changed in place: net/http still reads it after the handler (for
// example HTTP/1.0 keep-alive).
func (h *Handler) outgoing(w http.ResponseWriter, r *http.Request) *http.Request {
	ctx := r.Context()
	if r.ProtoAtLeast(1, 1) {
		ctx = withInterimForwarding(ctx, w)
	}
	out := r.WithContext(ctx)
	out.URL = &url.URL{Path: requestPath(r), RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	out.RequestURI = ""
	// The downstream connection's fate is not the upstream's: a client's
	// "Connection: close" (or HTTP/1.0) must not close a pooled connection
	// (RFC 9112 §9.3), and the upstream framing is the backend's choice.
	out.Close = false
	out.TransferEncoding = nil
	out.Header = r.Header.Clone()
	if out.Header == nil {
		out.Header = make(http.Header)
	}
	removeHopByHop(out.Header)
	addVia(out.Header, h.via.forProto(r.ProtoMajor, r.ProtoMinor))
	setForwarded(out.Header, r)
	out.Body, out.ContentLength = requestContent(w, r)
	out.Trailer = nil
	if out.Body != nil && r.Trailer != nil {
		out.Trailer = make(http.Header, len(r.Trailer))
		for k := range r.Trailer {
			out.Trailer[k] = nil // announced now, filled at the end
		}
		removeHopByHop(out.Trailer)
		out.Body = &trailerSync{ReadCloser: out.Body, src: r, dst: out.Trailer}
	}
	return out
}

// withInterimForwarding passes the origin's 1xx responses (103 Early
// Hints and others; not 100, which each hop answers itself) to the client
// through net/http's interim response support. HTTP/1.0 clients get none
// (RFC 9110 §15.2).
func withInterimForwarding(ctx context.Context, w http.ResponseWriter) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		Got1xxResponse: func(code int, header textproto.MIMEHeader) error {
			if code == http.StatusContinue {
				return nil // each hop answers its own expectation (RFC 9110 §10.1.1)
			}
			h := w.Header()
			saved := h.Clone()
			hdr := http.Header(header)
			removeHopByHop(hdr)
			for k, vv := range hdr {
				h[k] = vv
			}
			w.WriteHeader(code)
			// The interim fields must not leak into the final response.
			clear(h)
			for k, vv := range saved {
				h[k] = vv
			}
			return nil
		},
	})
}
