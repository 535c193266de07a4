// Package target turns a request-target in origin form (RFC 9112 §3.2.1;
// an HTTP/2 or HTTP/3 :path, RFC 9113 §8.3.1) into a url.URL, as
// url.ParseRequestURI would, without its allocation for the common
// targets. Both engines use it.
package target

import (
	"net/url"
	"strings"
)

// Parse fills u from target. Targets that url.ParseRequestURI would leave
// as they are (no escapes, nothing that sets RawPath, one query at most)
// are split here; the rest go through url.ParseRequestURI, whose error is
// returned.
func Parse(target string, u *url.URL) error {
	if target != "" && target[0] == '/' {
		path, query, hasQuery := strings.Cut(target, "?")
		if plainPath(path) && (!hasQuery || query != "" || strings.Count(target, "?") > 1) && !hasCTL(query) {
			*u = url.URL{Path: path, RawQuery: query}
			return nil
		}
	}
	parsed, err := url.ParseRequestURI(target)
	if err != nil {
		return err
	}
	*u = *parsed
	return nil
}

// plainPath: a path url.ParseRequestURI leaves as it is (no escapes, and
// nothing that would make it set RawPath).
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-_.~$&+,/:;=@", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// hasCTL reports a control byte, which url.ParseRequestURI refuses.
func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}
