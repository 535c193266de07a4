// Package translate is the proxy's core: an http.Handler that routes each
// downstream request to a backend, applies HTTP's hop-by-hop rules in both
// directions, adds forwarding fields, streams bodies and trailers, and maps
// upstream failures to a status. It reaches backends only through
// http.RoundTripper.
package translate

import (
	"errors"
	"net/http"
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
}

// Handler is the proxy http.Handler.
type Handler struct{}

var _ http.Handler = (*Handler)(nil)

// New validates cfg and returns a Handler.
func New(cfg Config) (*Handler, error) { return nil, errors.New("translate: TODO") }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "TODO", http.StatusNotImplemented)
}
