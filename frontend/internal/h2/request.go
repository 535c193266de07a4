package h2

import (
	"context"
	"net/http"
	"net/textproto"
	"strings"

	"golang.org/x/net/http2"

	"hoplite/frontend/internal/target"
)

// malformed reports whether a request field makes the request malformed
// (RFC 9113 §8.2.2), as Config.MalformedField decides.
func (c *Conn) malformed(name, value string) bool {
	return c.cfg.MalformedField != nil && c.cfg.MalformedField(name, value)
}

// buildRequest checks a request's header section (RFC 9113 §8.3.1) and
// fills st.req. The Framer has already refused invalid field names and
// values, pseudo-header fields after regular ones, unknown, duplicate and
// response pseudo-header fields. A malformed request is a stream error of
// type PROTOCOL_ERROR (§8.1.1); it never reaches the handler.
func (st *stream) buildRequest(f *headerList) error {
	c := st.c
	bad := http2.StreamError{StreamID: st.id, Code: http2.ErrCodeProtocol}
	var method, scheme, authority, path, protocol string
	var havePath bool
	for _, hf := range f.PseudoFields() {
		switch hf.Name {
		case ":method":
			method = hf.Value
		case ":scheme":
			scheme = hf.Value
		case ":authority":
			authority = hf.Value
		case ":path":
			path, havePath = hf.Value, true
		case ":protocol":
			protocol = hf.Value
		}
	}
	switch {
	case method == "":
		return bad
	case method == http.MethodConnect && protocol == "":
		// CONNECT (§8.5): :authority only.
		if authority == "" || scheme != "" || havePath {
			return bad
		}
	case protocol != "" && (!c.cfg.EnableConnectProtocol || method != http.MethodConnect):
		// :protocol only in an extended CONNECT the server offered
		// (RFC 8441 §4).
		return bad
	default:
		if scheme == "" || path == "" {
			return bad
		}
		if path[0] != '/' && !(method == http.MethodOptions && path == "*") {
			return bad
		}
	}

	regular := f.RegularFields()
	reqHeader := make(http.Header, len(regular))
	// One backing array for the values: a field's slice is a
	// capacity-limited window of it, so a repeated name appends elsewhere.
	vals := make([]string, 0, len(regular))
	var cookies []string
	for _, hf := range regular {
		if c.malformed(hf.Name, hf.Value) {
			return bad
		}
		switch hf.Name {
		case "cookie":
			// §8.2.3: cookie fields may come split; they are one field
			// for HTTP/1.1.
			cookies = append(cookies, hf.Value)
			continue
		case "host":
			// §8.3.1: a Host that names another entity than :authority
			// makes the request malformed.
			if authority != "" && !strings.EqualFold(hf.Value, authority) {
				return bad
			}
		case "content-length":
			// 1*DIGIT (RFC 9110 §8.6): no sign, no list.
			n, ok := parseLength(hf.Value)
			if !ok || st.declaredLen >= 0 && n != st.declaredLen {
				return bad
			}
			st.declaredLen = n
		case "expect":
			if strings.EqualFold(hf.Value, "100-continue") && !f.StreamEnded() {
				st.wantContinue = true
			}
		}
		k := c.canon.get(hf.Name)
		if prev, ok := reqHeader[k]; ok {
			reqHeader[k] = append(prev, hf.Value)
			continue
		}
		vals = append(vals, hf.Value)
		reqHeader[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	if len(cookies) > 0 {
		reqHeader["Cookie"] = []string{strings.Join(cookies, "; ")}
	}
	if f.StreamEnded() && st.declaredLen > 0 {
		return bad
	}
	if authority == "" {
		authority = reqHeader.Get("Host")
	}

	r := &st.req
	u := &st.reqURL // zero: streams are new
	if method == http.MethodConnect && protocol == "" {
		u.Host = authority
		path = authority
	} else if target.Parse(path, u) != nil {
		return bad
	}
	ctx, cancel := context.WithCancel(c.ctx)
	*r = http.Request{
		Method:     method,
		URL:        u,
		Proto:      "HTTP/2.0",
		ProtoMajor: 2,
		Header:     reqHeader,
		Host:       authority,
		RemoteAddr: c.remote,
		RequestURI: path,
		TLS:        c.tls,
	}
	if protocol != "" {
		r.Header[":protocol"] = []string{protocol}
	}
	for _, v := range reqHeader["Trailer"] {
		for k := range strings.SplitSeq(v, ",") {
			if k = textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(k)); k != "" {
				if r.Trailer == nil {
					r.Trailer = make(http.Header)
				}
				r.Trailer[k] = nil
			}
		}
	}
	st.cancel = cancel
	*r = *r.WithContext(ctx)
	st.rbody.st = st
	switch {
	case f.StreamEnded():
		st.remoteClosed = true
		r.Body = http.NoBody
		r.ContentLength = 0
	default:
		r.Body = &st.rbody
		r.ContentLength = st.declaredLen
	}
	st.rw.reset(st, method == http.MethodHead)
	return nil
}

// parseLength parses a Content-Length value: digits only, at most 18 of
// them (no overflow).
func parseLength(v string) (int64, bool) {
	if v == "" || len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// canonCache maps lower-case field names to their canonical HTTP/1.1
// form without allocating for names seen before on the connection.
type canonCache struct{ m map[string]string }

// maxCacheEntries bounds each per-connection name cache: a client sending
// ever new names costs an allocation per name, not unbounded memory.
const maxCacheEntries = 200

func (cc *canonCache) get(lower string) string {
	if s, ok := cc.m[lower]; ok {
		return s
	}
	s := textproto.CanonicalMIMEHeaderKey(lower)
	if cc.m == nil {
		cc.m = make(map[string]string)
	}
	if len(cc.m) < maxCacheEntries {
		cc.m[lower] = s
	}
	return s
}

// lowerCache maps canonical names to lower case, for response fields.
type lowerCache struct{ m map[string]string }

func (lc *lowerCache) get(name string) string {
	if s, ok := lc.m[name]; ok {
		return s
	}
	s := strings.ToLower(name)
	if lc.m == nil {
		lc.m = make(map[string]string)
	}
	if len(lc.m) < maxCacheEntries {
		lc.m[name] = s
	}
	return s
}
