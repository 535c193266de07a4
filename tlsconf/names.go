package tlsconf

import (
	"fmt"
	"net"
	"strings"
)

// The internal CA's root is trusted by whoever imported it, for every name,
// so the issuer decides per name whether a certificate is harmless. Names
// that cannot be publicly delegated are: nobody can buy them, so a leaf for
// them cannot be used to impersonate a public site.
//
//	localhost, *.localhost   RFC 6761 §6.3 (always the loopback host)
//	*.local                  RFC 6762 §3 (multicast DNS, link-local)
//	*.internal               ICANN reserved for private use (2024)
//	*.home.arpa              RFC 8375 §3 (residential networks)
//	loopback, private, link-local addresses (RFC 1918, RFC 4193, RFC 3927,
//	RFC 4291 §2.5.6)
//
// Anything else must be listed by the operator in Config.Names.
var localSuffixes = []string{".localhost", ".local", ".internal", ".home.arpa"}

// namePolicy decides which names the internal CA issues for.
type namePolicy struct {
	exact     map[string]bool // normalized DNS names and IP strings from Config.Names
	wildcards []string        // ".example.test" for "*.example.test"
}

// newNamePolicy validates Config.Names. Errors name the offending entry.
func newNamePolicy(names []string) (*namePolicy, error) {
	p := &namePolicy{exact: make(map[string]bool)}
	for i, raw := range names {
		n := strings.ToLower(strings.TrimSpace(raw))
		if ip := net.ParseIP(n); ip != nil {
			p.exact[ip.String()] = true
			continue
		}
		n = strings.TrimSuffix(n, ".")
		if rest, ok := strings.CutPrefix(n, "*."); ok {
			// RFC 6125 §6.4.3: a wildcard stands for exactly one label, so
			// the rest must be a plain name.
			if !validDNSName(rest) {
				return nil, fmt.Errorf("tlsconf: tls.names[%d] %q: wildcard must be \"*.\" followed by a DNS name", i, raw)
			}
			p.wildcards = append(p.wildcards, "."+rest)
			continue
		}
		if !validDNSName(n) {
			return nil, fmt.Errorf("tlsconf: tls.names[%d] %q: not a DNS name, IP address or *.wildcard", i, raw)
		}
		p.exact[n] = true
	}
	return p, nil
}

// normalizeName lowercases a server name and turns IP literals into their
// canonical form (IPv4-mapped IPv6 becomes dotted IPv4), so that each
// distinct name has one cache entry. It returns the IP if name is one.
func normalizeName(name string) (string, net.IP) {
	if ip := net.ParseIP(name); ip != nil {
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		return ip.String(), ip
	}
	// DNS names are case-insensitive (RFC 4343); SNI carries no trailing dot
	// (RFC 6066 §3) but be lenient for direct callers.
	return strings.TrimSuffix(strings.ToLower(name), "."), nil
}

// allowed reports whether the internal CA may issue for name, which must be
// normalized. It returns a reason for the refusal.
func (p *namePolicy) allowed(name string, ip net.IP) (ok bool, reason string) {
	if ip != nil {
		if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || p.exact[name] {
			return true, ""
		}
		return false, "not a local name; add it to tls.names"
	}
	if !validDNSName(name) {
		return false, "not a valid host name"
	}
	if name == "localhost" || p.exact[name] {
		return true, ""
	}
	for _, s := range localSuffixes {
		if strings.HasSuffix(name, s) {
			return true, ""
		}
	}
	for _, s := range p.wildcards {
		if label, ok := strings.CutSuffix(name, s); ok && label != "" && !strings.Contains(label, ".") {
			return true, ""
		}
	}
	return false, "not a local name; add it to tls.names"
}

// validDNSName reports whether s is a host name fit for a dNSName SAN
// (RFC 5280 §4.2.1.6 "preferred name syntax", RFC 1034 §3.5): at most 253
// octets, dot-separated labels of 1 to 63 letters, digits and hyphens, not
// starting or ending with a hyphen. Underscore is accepted as Go's verifier
// does (common in internal names). Wildcards are not names.
func validDNSName(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
