package backend

import "net/textproto"

// commonNames maps the field names origins send most, as they appear on
// the wire (canonical or lower case), to their canonical form. A lookup
// with a []byte key converted in the index expression does not allocate,
// so a response made of common fields costs no string per name.
var commonNames = func() map[string]string {
	m := make(map[string]string)
	for _, name := range []string{
		"Accept-Ranges", "Age", "Allow", "Alt-Svc", "Cache-Control", "Connection",
		"Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
		"Content-Location", "Content-Range", "Content-Security-Policy", "Content-Type",
		"Date", "Etag", "Expires", "Keep-Alive", "Last-Modified", "Link", "Location",
		"Pragma", "Referrer-Policy", "Retry-After", "Server", "Set-Cookie",
		"Strict-Transport-Security", "Trailer", "Transfer-Encoding", "Vary", "Via",
		"Www-Authenticate", "X-Content-Type-Options", "X-Frame-Options", "X-Powered-By",
		"X-Request-Id", "X-Xss-Protection",
	} {
		m[name] = name
		m[lower(name)] = name
	}
	// Spellings of the canonical names that servers commonly use.
	m["ETag"] = "Etag"
	m["WWW-Authenticate"] = "Www-Authenticate"
	m["X-XSS-Protection"] = "X-Xss-Protection"
	m["X-Request-ID"] = "X-Request-Id"
	return m
}()

// canonicalName returns the canonical form of a field name that is already
// known to be a token (RFC 9110 §5.1).
func canonicalName(name []byte) string {
	if c, ok := commonNames[string(name)]; ok {
		return c
	}
	return textproto.CanonicalMIMEHeaderKey(string(name))
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
