package h1

import "net/http"

// Strings for the http.Request without allocating: common methods,
// field names and values are interned; the rest is cached per connection,
// since a client sends the same values again and again (Host,
// User-Agent, Accept, cookies).

const (
	maxCachedValue = 1 << 10 // longer strings are not cached
	maxCacheBytes  = 32 << 10
	maxCacheItems  = 256
)

// strCache holds the strings of this connection's earlier requests.
type strCache struct {
	m     map[string]string
	bytes int
}

func (s *strCache) beginRequest() {
	if len(s.m) > maxCacheItems || s.bytes > maxCacheBytes {
		clear(s.m)
		s.bytes = 0
	}
}

func (s *strCache) get(b []byte) string {
	if v, ok := common[string(b)]; ok {
		return v
	}
	if v, ok := s.m[string(b)]; ok {
		return v
	}
	v := string(b)
	if len(b) <= maxCachedValue {
		if s.m == nil {
			s.m = make(map[string]string)
		}
		s.m[v] = v
		s.bytes += len(v)
	}
	return v
}

// str returns b as a string, interned or cached.
func (c *Conn) str(b []byte) string { return c.strs.get(b) }

func (c *Conn) method(b []byte) string {
	switch string(b) {
	case "GET":
		return http.MethodGet
	case "HEAD":
		return http.MethodHead
	case "POST":
		return http.MethodPost
	case "PUT":
		return http.MethodPut
	case "DELETE":
		return http.MethodDelete
	case "OPTIONS":
		return http.MethodOptions
	case "PATCH":
		return http.MethodPatch
	case "CONNECT":
		return http.MethodConnect
	case "TRACE":
		return http.MethodTrace
	}
	return c.str(b)
}

// canonicalKey returns the canonical form of a field name (as
// textproto.CanonicalMIMEHeaderKey: the name is a valid token here).
func (c *Conn) canonicalKey(name []byte) string {
	s := append(c.scratch[:0], name...)
	upper := true
	for i, ch := range s {
		switch {
		case upper && 'a' <= ch && ch <= 'z':
			s[i] = ch - ('a' - 'A')
		case !upper && 'A' <= ch && ch <= 'Z':
			s[i] = ch + ('a' - 'A')
		}
		upper = ch == '-'
	}
	c.scratch = s
	return c.str(s)
}

// common holds the interned strings: field names in canonical form and
// frequent values.
var common = func() map[string]string {
	m := make(map[string]string)
	for _, s := range []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Authorization",
		"Cache-Control", "Connection", "Content-Encoding", "Content-Language", "Content-Length",
		"Content-Type", "Cookie", "Date", "Dnt", "Expect", "Forwarded", "From", "Host",
		"If-Match", "If-Modified-Since", "If-None-Match", "If-Range", "If-Unmodified-Since",
		"Keep-Alive", "Max-Forwards", "Origin", "Pragma", "Priority", "Proxy-Authorization",
		"Proxy-Connection", "Range", "Referer", "Sec-Ch-Ua", "Sec-Ch-Ua-Mobile",
		"Sec-Ch-Ua-Platform", "Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site",
		"Sec-Fetch-User", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"Upgrade-Insecure-Requests", "User-Agent", "Via", "X-Forwarded-For",
		"X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Requested-With",
		"*/*", "gzip", "gzip, deflate", "gzip, deflate, br", "gzip, deflate, br, zstd",
		"close", "keep-alive", "no-cache", "max-age=0", "chunked", "trailers", "identity",
		"100-continue", "localhost", "1", "0", "/", "?1", "?0", "u=0, i", "u=1",
		"same-origin", "cors", "navigate", "document", "empty", "none", "same-site",
	} {
		m[s] = s
	}
	return m
}()
