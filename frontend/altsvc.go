package frontend

import (
	"net/http"
	"strconv"
)

// altSvcMaxAge is the freshness lifetime of the advertisement, in seconds
// (RFC 7838 §3.1 "ma"; its default is 24 hours, written out for clarity).
const altSvcMaxAge = 86400

// altSvcValue is the Alt-Svc field value advertising HTTP/3 on port, same
// host (RFC 7838 §3, RFC 9114 §3.1.1): h3=":443"; ma=86400.
func altSvcValue(port int) string {
	return `h3=":` + strconv.Itoa(port) + `"; ma=` + strconv.Itoa(altSvcMaxAge)
}

// altSvcHandler adds Alt-Svc to HTTP/1.1 and HTTP/2 responses so that
// clients learn of HTTP/3 on the same port number over UDP. It is installed
// only when HTTP/3 is on, and only in front of the TCP listener. The field is
// set before the wrapped handler runs, so that handler may still replace or
// delete it.
type altSvcHandler struct {
	next  http.Handler
	value []string // shared by every response; nobody appends to it
}

func (h altSvcHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor < 3 {
		w.Header()["Alt-Svc"] = h.value
	}
	h.next.ServeHTTP(w, r)
}
