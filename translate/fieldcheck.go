package translate

import (
	"net/http"

	"golang.org/x/net/http/httpguts"
)

// Malformed HTTP/2 and HTTP/3 request fields.
//
// HTTP/2 and HTTP/3 carry field values as length-delimited strings, so
// bytes that HTTP/1.1 would read as framing (CR, LF) or that its parsers
// treat differently (NUL, surrounding whitespace) can arrive intact. A
// proxy that forwarded them to an HTTP/1.1 origin would let the client
// write the origin's framing, or make two parsers disagree about a value.
// RFC 9113 §8.2.1 and RFC 9114 §4.1.2 (which applies the same rules) make
// such a request malformed; RFC 9113 §8.1.1 and RFC 9114 §4.1.2 forbid an
// intermediary to forward it.
//
// What the protocol stacks already refuse: x/net/http2's Framer (which the
// frontend's HTTP/2 engine reads with) refuses names that are empty, upper
// case or not tokens, values with CR, LF, NUL or other CTLs, and bad
// pseudo-header fields; quic-go/http3 the same
// (validateHeaderFieldNameAndValue, parseHeaders). Neither refuses a value
// with leading or trailing SP or HTAB (RFC 9113 §8.2.1: "A field value
// MUST NOT start or end with an ASCII whitespace character"). MalformedField
// checks everything again, so that the answer does not depend on a library
// version.

// MalformedField reports whether a request field makes an HTTP/2 or HTTP/3
// request malformed: a connection-specific field (ConnectionSpecific,
// RFC 9113 §8.2.2, RFC 9114 §4.2), a name that is empty, not a token or
// not lower case (RFC 9113 §8.2.1, §8.2; RFC 9114 §4.2), or a value with
// CR, LF, NUL or another CTL but HTAB, or with leading or trailing SP or
// HTAB (RFC 9113 §8.2.1, RFC 9110 §5.5). name is as sent on the wire;
// pseudo-header fields are not passed. It is frontend.Config.MalformedField
// for the HTTP/2 engine, and safe for concurrent use.
func MalformedField(name, value string) bool {
	if !validWireName(name) || !validValue(value) {
		return true
	}
	return ConnectionSpecific(name, value)
}

// validWireName: a non-empty token in lower case.
func validWireName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !httpguts.IsTokenRune(rune(c)) || 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}

// validValue: no CTL but HTAB, no DEL, no SP or HTAB at either end.
func validValue(v string) bool {
	if n := len(v); n > 0 && (v[0] == ' ' || v[0] == '\t' || v[n-1] == ' ' || v[n-1] == '\t') {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// checkRequest runs before anything else in Handler.ServeHTTP. It answers
// an HTTP/2 or HTTP/3 request with a malformed field (the name and value
// rules of MalformedField) with 400 and reports that it did; the request then never reaches a backend.
// HTTP/2 requests meet the same check earlier, in the frontend's HTTP/2
// engine (a stream error); this is the check for HTTP/3, where quic-go
// passes surrounding whitespace through, and a second line for HTTP/2.
// Names here are canonicalised by the server (http.Header), so only their
// syntax, not their case, can be checked; the servers refuse upper case on
// the wire themselves. HTTP/1.x requests are checked by the frontend's
// HTTP/1.x engine, whose parser refuses what this would.
func checkRequest(w http.ResponseWriter, r *http.Request) bool {
	if r.ProtoMajor < 2 || !malformedHeader(r.Header) {
		return false
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusBadRequest)
	w.Write([]byte("Bad Request: malformed field\n"))
	return true
}

// malformedHeader checks what the HTTP/2 and HTTP/3 servers leave through
// (surrounding whitespace) and what they should not (CTLs, names that are
// not tokens). Connection-specific fields are the servers' to refuse; any
// that got this far are removed as hop-by-hop fields. Pseudo-header fields
// that a server surfaces in the header (":protocol" of an extended
// CONNECT) are not fields.
func malformedHeader(h http.Header) bool {
	for k, vv := range h {
		if k == "" {
			return true
		}
		if k[0] == ':' {
			continue
		}
		for i := 0; i < len(k); i++ {
			if !httpguts.IsTokenRune(rune(k[i])) {
				return true
			}
		}
		for _, v := range vv {
			if !validValue(v) {
				return true
			}
		}
	}
	return false
}
