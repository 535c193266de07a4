package translate

import (
	"net"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// viaValues are the Via entries for each received protocol version
// (RFC 9110 §7.6.3: received-protocol, the protocol name omitted for HTTP).
// Each is a one-element slice shared by every message that has no Via of
// its own: its capacity is its length, so an append copies it, and no one
// writes field values in place.
type viaValues struct{ h10, h11, h2, h3 []string }

func newVia(pseudonym string) viaValues {
	one := func(s string) []string { return []string{s}[:1:1] }
	return viaValues{one("1.0 " + pseudonym), one("1.1 " + pseudonym), one("2 " + pseudonym), one("3 " + pseudonym)}
}

func (v *viaValues) forProto(major, minor int) []string {
	switch {
	case major == 3:
		return v.h3
	case major == 2:
		return v.h2
	case minor == 0:
		return v.h10
	}
	return v.h11
}

// addVia appends this hop to the Via field: RFC 9110 §7.6.3 requires a
// proxy to do so in both directions.
func addVia(h http.Header, entry []string) {
	if prev := h["Via"]; len(prev) > 0 {
		h["Via"] = append(prev, entry[0])
	} else {
		h["Via"] = entry
	}
}

// setForwarded records the client for the origin. hoplite is the edge:
// what the client says about earlier hops cannot be checked, so its
// Forwarded and X-Forwarded-* fields are replaced, not extended.
func setForwarded(h http.Header, r *http.Request) {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	// RFC 7239 §4: the same facts in the standard field. An IPv6 address
	// is bracketed, and any value that is not a token is quoted.
	forIP := ip
	if strings.Contains(ip, ":") {
		forIP = "[" + ip + "]"
	}
	v := make([]string, 4) // one allocation for the four fields' values
	v[0], v[1], v[2] = ip, proto, r.Host
	v[3] = "for=" + forwardedValue(forIP) + ";host=" + forwardedValue(r.Host) + ";proto=" + proto
	h["X-Forwarded-For"] = v[0:1:1]
	h["X-Forwarded-Proto"] = v[1:2:2]
	h["X-Forwarded-Host"] = v[2:3:3]
	h["Forwarded"] = v[3:4:4]
}

// forwardedValue writes v as a token, or as a quoted-string when it is not
// one (RFC 7239 §4, RFC 9110 §5.6.4).
func forwardedValue(v string) string {
	if v == "" {
		return `""` // an empty token does not exist (HTTP/1.0 may omit Host)
	}
	for i := 0; i < len(v); i++ {
		if !httpguts.IsTokenRune(rune(v[i])) {
			return strconv.Quote(v)
		}
	}
	return v
}
