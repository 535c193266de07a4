package translate

import (
	"cmp"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
)

// route is a compiled Route.
type route struct {
	host   string // lower case; "" any host; "*.x" one label before x
	prefix string
	rt     http.RoundTripper
	name   string
}

func (r *route) specificity() int {
	switch {
	case r.host == "":
		return 2
	case strings.HasPrefix(r.host, "*."):
		return 1
	}
	return 0
}

// compileRoutes checks the routes and orders them most specific first.
func compileRoutes(routes []Route, backends map[string]http.RoundTripper) ([]route, error) {
	if len(routes) == 0 {
		return nil, fmt.Errorf("translate: no routes")
	}
	out := make([]route, 0, len(routes))
	for i, r := range routes {
		rt, ok := backends[r.Backend]
		if !ok || rt == nil {
			return nil, fmt.Errorf("translate: route %d: unknown backend %q", i, r.Backend)
		}
		host := strings.TrimSuffix(strings.ToLower(r.Host), ".")
		if strings.Contains(strings.TrimPrefix(host, "*."), "*") || strings.ContainsAny(host, ":/ ") {
			return nil, fmt.Errorf("translate: route %d: invalid host %q", i, r.Host)
		}
		prefix := r.PathPrefix
		if prefix == "" {
			prefix = "/"
		}
		if prefix[0] != '/' {
			return nil, fmt.Errorf("translate: route %d: path %q must start with /", i, r.PathPrefix)
		}
		out = append(out, route{host: host, prefix: prefix, rt: rt, name: r.Backend})
	}
	slices.SortStableFunc(out, func(a, b route) int {
		if c := cmp.Compare(a.specificity(), b.specificity()); c != 0 {
			return c
		}
		return cmp.Compare(len(b.prefix), len(a.prefix))
	})
	return out, nil
}

// match returns the first route for the request's host and path.
func (h *Handler) match(r *http.Request) *route {
	host := requestHost(r.Host)
	for i := range h.routes {
		rt := &h.routes[i]
		if hostMatches(rt.host, host) && strings.HasPrefix(requestPath(r), rt.prefix) {
			return rt
		}
	}
	return nil
}

// requestPath is the path the request is routed by and sent upstream
// with: an absolute-form target without a path means "/" (RFC 9112
// §3.2.2), and "OPTIONS *" (§3.2.4) is routed as "/" while keeping its
// asterisk-form.
func requestPath(r *http.Request) string {
	if p := r.URL.Path; p != "" {
		return p
	}
	return "/"
}

func hostMatches(pattern, host string) bool {
	switch {
	case pattern == "":
		return true
	case strings.HasPrefix(pattern, "*."):
		label, rest, ok := strings.Cut(host, ".")
		return ok && label != "" && rest == pattern[2:]
	}
	return pattern == host
}

// requestHost returns the host without port or trailing dot, in lower case.
func requestHost(hostport string) string {
	host := hostport
	// Only a host with a port is split: SplitHostPort's error for one
	// without costs an allocation per request.
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && !strings.HasSuffix(hostport, "]") {
		if h, _, err := net.SplitHostPort(hostport); err == nil {
			host = h
		}
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}
