package translate

import (
	"net/http"
	"net/textproto"
	"strings"
)

// hopByHop lists the fields that describe one connection, not the message,
// and so never cross a hop (RFC 9110 §7.6.1; RFC 9112 §6.1 for
// Transfer-Encoding, §9.6 and Appendix C.2.2 for Keep-Alive and
// Proxy-Connection; RFC 9110 §10.1.4 for TE, §7.8 for Upgrade). This is
// hoplite's only copy of the list; everything else calls removeHopByHop.
var hopByHop = [...]string{
	"Connection",
	"Keep-Alive",
	"Proxy-Connection",
	"Te",
	"Transfer-Encoding",
	"Upgrade",
}

// removeHopByHop deletes the hop-by-hop fields from h, and first every
// field the Connection field names: RFC 9110 §7.6.1 lets a sender mark any
// field as meant for the next hop only.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for opt := range strings.SplitSeq(v, ",") {
			// "close" and "keep-alive" are the usual options: neither
			// needs a lookup (Keep-Alive goes below with the list).
			if opt = strings.TrimSpace(opt); opt != "" && !strings.EqualFold(opt, "close") && !strings.EqualFold(opt, "keep-alive") {
				delete(h, textproto.CanonicalMIMEHeaderKey(opt))
			}
		}
	}
	for _, k := range hopByHop {
		delete(h, k)
	}
}

// ConnectionSpecific reports whether a request field makes an HTTP/2 or
// HTTP/3 request malformed: those protocols manage connections themselves,
// so a hop-by-hop field in them is an error, not something to remove
// (RFC 9113 §8.2.2, RFC 9114 §4.2). The one exception is "TE: trailers".
// It exists so that the frontend applies the same list.
func ConnectionSpecific(name, value string) bool {
	for _, k := range hopByHop {
		if strings.EqualFold(name, k) {
			return k != "Te" || !strings.EqualFold(strings.TrimSpace(value), "trailers")
		}
	}
	return false
}
