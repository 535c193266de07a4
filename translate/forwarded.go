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
type viaValues struct{ h10, h11, h2, h3 string }

func newVia(pseudonym string) viaValues {
	return viaValues{"1.0 " + pseudonym, "1.1 " + pseudonym, "2 " + pseudonym, "3 " + pseudonym}
}

func (v *viaValues) forProto(major, minor int) string {
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
func addVia(h http.Header, entry string) {
	h["Via"] = append(h["Via"], entry)
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
	h["X-Forwarded-For"] = []string{ip}
	h["X-Forwarded-Proto"] = []string{proto}
	h["X-Forwarded-Host"] = []string{r.Host}
	// RFC 7239 §4: the same facts in the standard field. An IPv6 address
	// is bracketed, and any value that is not a token is quoted.
	if strings.Contains(ip, ":") {
		ip = "[" + ip + "]"
	}
	h["Forwarded"] = []string{"for=" + forwardedValue(ip) + ";host=" + forwardedValue(r.Host) + ";proto=" + proto}
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
