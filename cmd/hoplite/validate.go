package main

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"hoplite/tlsconf"
)

// validate checks what decoding cannot: required fields, address and name
// syntax, and cross references. It reports every problem, ordered by line,
// each naming file, line and field.
func (c *Config) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, c.src.errorf(field, format, args...))
	}

	// Addresses. The TLS listen address is used for TCP and UDP; the
	// others are TCP only, so any two may collide.
	addrs := []struct{ field, addr string }{
		{"listen", c.Listen}, {"plain_listen", c.PlainListen}, {"admin", c.Admin},
	}
	if c.Listen == "" {
		bad("listen", "required (host:port for TLS and HTTP/3)")
	}
	for i, a := range addrs {
		if a.addr == "" {
			continue
		}
		if err := checkListenAddr(a.addr); err != nil {
			bad(a.field, "invalid address %q: %v", a.addr, err)
			continue
		}
		for _, b := range addrs[:i] {
			if b.addr != "" && checkListenAddr(b.addr) == nil && addrsCollide(a.addr, b.addr) {
				bad(a.field, "address %s collides with %s (%s)", a.addr, b.field, b.addr)
			}
		}
	}

	// TLS: static files (both or neither), ACME, or the internal CA;
	// names only mean something to the internal CA.
	switch {
	case c.TLS.ACME != nil && (c.TLS.Cert != "" || c.TLS.Key != ""):
		bad("tls.acme", "cannot be combined with tls.cert and tls.key; choose one certificate source")
	case c.TLS.Cert != "" && c.TLS.Key == "":
		bad("tls.key", "required when tls.cert is set")
	case c.TLS.Cert == "" && c.TLS.Key != "":
		bad("tls.cert", "required when tls.key is set")
	case c.TLS.Cert != "" && len(c.TLS.Names) > 0:
		bad("tls.names", "only used by the internal CA; remove it, or remove tls.cert and tls.key")
	case c.TLS.ACME != nil && len(c.TLS.Names) > 0:
		bad("tls.names", "only used by the internal CA; remove it, or remove tls.acme")
	}
	for i, name := range c.TLS.Names {
		if err := checkCertName(name); err != nil {
			bad(fmt.Sprintf("tls.names[%d]", i), "invalid name %q: %v", name, err)
		}
	}
	if a := c.TLS.ACME; a != nil {
		c.validateACME(a, bad)
	}

	// Downstream limits. RFC 9113 §6.5.2: SETTINGS_MAX_FRAME_SIZE lies in
	// [2^14, 2^24-1].
	if s := c.Downstream.MaxReadFrameSize; s != 0 && (s < 1<<14 || s > 1<<24-1) {
		bad("downstream.max_read_frame_size", "%d is outside the HTTP/2 range 16KiB to 16MiB-1 (RFC 9113 §6.5.2)", s)
	}
	if s := c.Downstream.MaxHeaderBytes; s > math.MaxInt32 {
		bad("downstream.max_header_bytes", "%d is too large", s)
	}

	// Backends, in file order.
	names := slices.SortedFunc(maps.Keys(c.Backends), func(a, b string) int {
		return cmp.Compare(c.src.line("backends."+a), c.src.line("backends."+b))
	})
	for _, name := range names {
		b := c.Backends[name]
		field := "backends." + name
		if len(b.Servers) == 0 {
			bad(field+".servers", "at least one server is required")
		}
		seen := map[string]int{}
		for i, s := range b.Servers {
			f := fmt.Sprintf("%s.servers[%d]", field, i)
			hp, err := parseServer(s)
			if err != nil {
				bad(f, "invalid server %q: %v", s, err)
				continue
			}
			if j, dup := seen[hp]; dup {
				bad(f, "duplicate server %s (also servers[%d])", hp, j)
			}
			seen[hp] = i
		}
		if ph := b.PassiveHealth; ph.Disabled && (ph.MaxFails != 0 || ph.FailTimeout != 0) {
			bad(field+".passive_health.disabled", "max_fails and fail_timeout mean nothing when disabled; remove them or the switch")
		}
		if hc := b.HealthCheck; hc != nil {
			// RFC 9112 §3.2.1: the check is sent in origin-form.
			if _, err := url.ParseRequestURI(hc.Path); err != nil || !strings.HasPrefix(hc.Path, "/") || strings.ContainsAny(hc.Path, " #") {
				bad(field+".health_check.path", "required: a path starting with /, such as /healthz, got %q", hc.Path)
			}
		}
	}

	// Routes.
	if len(c.Routes) == 0 {
		bad("routes", "at least one route is required")
	}
	type routeKey struct{ host, path string }
	routes := map[routeKey]int{}
	for i, r := range c.Routes {
		field := fmt.Sprintf("routes[%d]", i)
		if err := checkRouteHost(r.Host); err != nil {
			bad(field+".host", "invalid host %q: %v", r.Host, err)
		}
		if r.Path != "" && !strings.HasPrefix(r.Path, "/") {
			bad(field+".path", "invalid path %q: must start with /", r.Path)
		}
		switch _, ok := c.Backends[r.Backend]; {
		case r.Backend == "":
			bad(field+".backend", "required")
		case !ok:
			bad(field+".backend", "unknown backend %q (defined: %s)", r.Backend, strings.Join(names, ", "))
		}
		k := routeKey{strings.ToLower(r.Host), cmp.Or(r.Path, "/")}
		if j, dup := routes[k]; dup {
			bad(field, "same host and path as routes[%d]", j)
		}
		routes[k] = i
	}

	slices.SortStableFunc(errs, func(a, b error) int {
		var ea, eb *ConfigError
		errors.As(a, &ea)
		errors.As(b, &eb)
		return cmp.Compare(ea.Line, eb.Line)
	})
	return errors.Join(errs...)
}

// validateACME checks tls.acme. What needs files (trusted roots) is
// checked by tlsconf when the source is built, which validate does too.
func (c *Config) validateACME(a *ACMEConfig, bad func(field, format string, args ...any)) {
	if len(a.Domains) == 0 && a.OnDemand == nil {
		bad("tls.acme", "needs domains, on_demand or both")
	}
	seen := map[string]int{}
	for i, d := range a.Domains {
		f := fmt.Sprintf("tls.acme.domains[%d]", i)
		if err := checkACMEDomain(d); err != nil {
			bad(f, "invalid domain %q: %v", d, err)
			continue
		}
		k := strings.ToLower(strings.TrimSuffix(d, "."))
		if j, dup := seen[k]; dup {
			bad(f, "duplicate domain %q (also domains[%d])", d, j)
		}
		seen[k] = i
	}
	if err := checkACMECA(a.CA); err != nil {
		bad("tls.acme.ca", "invalid CA %q: %v", a.CA, err)
	}
	if a.Email != "" {
		if m, err := mail.ParseAddress(a.Email); err != nil || m.Address != a.Email {
			bad("tls.acme.email", "invalid email %q: want a plain address such as admin@example.com", a.Email)
		}
	}
	for i, f := range a.TrustedRoots {
		if f == "" {
			bad(fmt.Sprintf("tls.acme.trusted_roots[%d]", i), "empty file name")
		}
	}
	switch {
	case a.EAB.KeyID != "" && a.EAB.MACKey == "":
		bad("tls.acme.eab.mac_key", "required when tls.acme.eab.key_id is set")
	case a.EAB.KeyID == "" && a.EAB.MACKey != "":
		bad("tls.acme.eab.key_id", "required when tls.acme.eab.mac_key is set")
	}
	switch ch := a.Challenges; {
	case !ch.http01() && !ch.tlsALPN01():
		bad("tls.acme.challenges", "at least one of http_01 and tls_alpn_01 must be enabled")
	case ch.http01() && c.PlainListen == "":
		// RFC 8555 §8.3: the CA fetches the HTTP-01 token over plain
		// HTTP on port 80.
		bad("tls.acme.challenges.http_01", "HTTP-01 needs a plain-HTTP listener on port 80: set plain_listen (such as \":80\"), or set http_01: false to use TLS-ALPN-01 only")
	}
	if od := a.OnDemand; od != nil {
		if len(od.Allow) == 0 && od.Ask == "" {
			bad("tls.acme.on_demand", "needs allow, ask or both: without a policy any client could make hoplite order certificates for names of its choosing")
		}
		for i, n := range od.Allow {
			if err := checkOnDemandName(n); err != nil {
				bad(fmt.Sprintf("tls.acme.on_demand.allow[%d]", i), "invalid name %q: %v", n, err)
			}
		}
		if od.Ask != "" {
			if u, err := url.Parse(od.Ask); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad("tls.acme.on_demand.ask", "invalid URL %q: want http:// or https://", od.Ask)
			}
		}
	}
}

// checkACMEDomain checks a name to obtain a certificate for in the
// background.
func checkACMEDomain(d string) error {
	switch {
	case strings.HasPrefix(d, "*."):
		// RFC 8555 §7.1.3, §8.4: wildcard identifiers are validated by
		// DNS-01 only, which needs a DNS provider's API.
		return fmt.Errorf("wildcard certificates need the DNS-01 challenge, which hoplite does not support; list the names, or put %q in on_demand.allow", d)
	case net.ParseIP(d) != nil:
		return errors.New("IP addresses are not supported; use a DNS name")
	}
	return checkDNSName(d)
}

// checkOnDemandName checks an on_demand.allow entry: a DNS name or
// "*.name".
func checkOnDemandName(n string) error {
	if net.ParseIP(n) != nil {
		return errors.New("IP addresses are not obtained on demand; use a DNS name or *.name")
	}
	if n == "*" {
		return errors.New(`"*" would allow any name; use *.example.com for one label in front of example.com`)
	}
	return checkDNSName(strings.TrimPrefix(n, "*."))
}

// checkACMECA checks tls.acme.ca: empty, a shortcut, or an https URL.
func checkACMECA(ca string) error {
	switch ca {
	case "", tlsconf.CALetsEncrypt, tlsconf.CALetsEncryptStaging:
		return nil
	}
	// RFC 8555 §6.1: ACME is HTTPS only.
	if u, err := url.Parse(ca); err == nil && u.Scheme == "https" && u.Host != "" && u.User == nil {
		return nil
	}
	return fmt.Errorf("want an https:// ACME directory URL, %q or %q", tlsconf.CALetsEncrypt, tlsconf.CALetsEncryptStaging)
}

// parseServer turns a configured upstream server, "http://host[:port]" or
// "host:port", into the "host:port" the backend dials.
func parseServer(s string) (string, error) {
	host, port := "", ""
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", errors.New("not a URL")
		}
		switch strings.ToLower(u.Scheme) {
		case "http":
		case "https":
			return "", errUpstreamTLS
		default:
			return "", errors.New("scheme must be http")
		}
		if u.User != nil {
			return "", errors.New("user info is not allowed")
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return "", errors.New("a server has no path or query; routes choose paths")
		}
		host, port = u.Hostname(), cmp.Or(u.Port(), "80")
	} else {
		var err error
		host, port, err = net.SplitHostPort(s)
		if err != nil {
			return "", errors.New("want http://host:port or host:port")
		}
	}
	if host == "" {
		return "", errors.New("missing host")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("invalid port %q", port)
	}
	return net.JoinHostPort(host, port), nil
}

// checkListenAddr checks a "host:port" to bind; an empty host means all
// interfaces and port 0 a free port.
func checkListenAddr(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("want host:port")
	}
	if strings.ContainsAny(host, "/ ") {
		return errors.New("invalid host")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("invalid port %q", port)
	}
	return nil
}

// addrsCollide reports whether two valid listen addresses would bind the
// same TCP port: same port, and the same host, a wildcard host on either
// side, or localhost against a loopback address.
func addrsCollide(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	if pa != pb || pa == "0" {
		return false
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	local := func(h string) bool { return h == "localhost" || h == "127.0.0.1" || h == "::1" }
	return strings.EqualFold(ha, hb) || wild(ha) || wild(hb) ||
		(local(ha) && local(hb) && (ha == "localhost" || hb == "localhost"))
}

// checkRouteHost checks a route's host: empty, a name, an IP, or
// "*.name" for any single label in front of name.
func checkRouteHost(h string) error {
	if h == "" {
		return nil
	}
	if h == "*" {
		return errors.New(`leave host empty to match any host`)
	}
	if strings.Contains(h, "://") || strings.Contains(h, "/") {
		return errors.New("a host only, without scheme or path")
	}
	if net.ParseIP(h) != nil {
		return nil
	}
	if strings.Contains(h, ":") {
		return errors.New("a host without port")
	}
	return checkDNSName(strings.TrimPrefix(h, "*."))
}

// checkCertName checks a name the internal CA may issue for.
func checkCertName(n string) error {
	if net.ParseIP(n) != nil {
		return nil
	}
	return checkDNSName(strings.TrimPrefix(n, "*."))
}

func checkDNSName(n string) error {
	if n == "" || len(n) > 253 {
		return errors.New("not a DNS name")
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(n, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("not a DNS name")
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				if r == '*' {
					return errors.New(`"*" is only allowed as the whole first label, as in *.example.com`)
				}
				return errors.New("not a DNS name")
			}
		}
	}
	return nil
}
