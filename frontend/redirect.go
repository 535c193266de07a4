package frontend

import (
	"net"
	"net/http"
	"strconv"
	"strings"
)

// redirectHandler answers every plain-HTTP request with 308 Permanent
// Redirect to the same host and request target over HTTPS on tlsPort
// (RFC 9110 §15.4.9: 308 keeps the method and body, unlike 301/302). The
// port is omitted when it is 443, the https default (RFC 9110 §4.2.2).
//
// The host comes from the request (r.Host: the Host header, or the
// authority of an absolute-form target, RFC 9112 §3.2.2) without its port. A
// missing or malformed host gets 400: the Location would otherwise be built
// from attacker-chosen bytes.
func redirectHandler(tlsPort int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, ok := redirectHost(r.Host)
		if !ok {
			http.Error(w, "400 Bad Request: invalid Host", http.StatusBadRequest)
			return
		}
		hostport := host
		if tlsPort != 443 {
			hostport = net.JoinHostPort(host, strconv.Itoa(tlsPort))
		} else if strings.Contains(host, ":") {
			hostport = "[" + host + "]" // IPv6 literal
		}
		http.Redirect(w, r, "https://"+hostport+redirectTarget(r), http.StatusPermanentRedirect)
	})
}

// redirectTarget is the origin-form target to keep: the request's own
// bytes when it was sent in origin-form, the path and query of an
// absolute-form target, and "/" for anything else (asterisk-form,
// authority-form).
func redirectTarget(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		return r.RequestURI
	}
	if u := r.URL.RequestURI(); strings.HasPrefix(u, "/") {
		return u
	}
	return "/"
}

// redirectHost returns the host of a Host field value without its port,
// and whether it is acceptable: an IPv4 literal, an IPv6 literal in brackets
// (no zone), or a DNS name of letters, digits, '-', '_' and '.' with
// non-empty labels of at most 63 bytes and 253 bytes in all (RFC 1035
// §2.3.4). A port, if present, must be decimal and at most 65535.
func redirectHost(hostport string) (string, bool) {
	// RFC 3986 §3.2.2: an IPv6 literal is always, and only, in brackets.
	bracketed := strings.HasPrefix(hostport, "[")
	host, port := hostport, ""
	if bracketed && strings.HasSuffix(hostport, "]") {
		host = hostport[1 : len(hostport)-1]
	} else if strings.Contains(hostport, ":") {
		var err error
		if host, port, err = net.SplitHostPort(hostport); err != nil {
			return "", false
		}
	}
	if port != "" {
		if len(port) > 5 || strings.Trim(port, "0123456789") != "" {
			return "", false
		}
		if n, err := strconv.Atoi(port); err != nil || n > 65535 {
			return "", false
		}
	}
	if host == "" {
		return "", false
	}
	if ip := net.ParseIP(host); ip != nil {
		if isV6 := strings.Contains(host, ":"); isV6 != bracketed {
			return "", false
		}
		return host, true
	}
	if bracketed || len(host) > 253 || strings.HasPrefix(host, ".") {
		return "", false
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(host, "."), ".") {
		if label == "" || len(label) > 63 {
			return "", false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return "", false
			}
		}
	}
	return host, true
}
