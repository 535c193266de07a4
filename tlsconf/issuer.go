package tlsconf

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The life of a leaf: a ClientHello arrives; GetCertificate picks a name
// (the SNI, or with no SNI the local IP the client dialed, or "localhost");
// the name policy says yes or no; a cached leaf younger than 2/3 of its life
// is returned at once. Otherwise exactly one handshake issues a new leaf for
// that name while the others either keep using the old leaf (still valid) or
// wait for the new one (there was none). The new leaf replaces the old in
// the cache. Issuance for different names runs in parallel.

const (
	// leafLifetime is short: the root's key never leaves the data
	// directory, leaves are free to re-issue, and a short life bounds how
	// long a copied leaf key is useful. 7 days matches Caddy's internal CA.
	leafLifetime = 7 * 24 * time.Hour

	// clockSkew backdates NotBefore (RFC 5280 §4.1.2.5) so that a client
	// whose clock runs a little behind does not see a not-yet-valid
	// certificate.
	clockSkew = 5 * time.Minute

	// maxCachedLeaves bounds the cache: any client can ask for
	// "<random>.localhost", and each distinct name would otherwise stay in
	// memory for good.
	maxCachedLeaves = 1024
)

// issuer issues leaf certificates from the internal CA during handshakes.
type issuer struct {
	ca        *CA
	policy    *namePolicy
	now       func() time.Time // time.Now; tests move the clock
	maxCached int

	mu       sync.Mutex
	leaves   map[string]*cachedLeaf // by normalized name; guarded by mu
	inflight map[string]*issueCall  // by normalized name; guarded by mu

	issued      atomic.Int64 // leaves issued, for tests
	beforeIssue func()       // test hook, nil in production: runs before each issuance
}

type cachedLeaf struct {
	cert     *tls.Certificate
	renewAt  time.Time // 2/3 of the way from NotBefore to NotAfter
	notAfter time.Time
}

// issueCall is one issuance in progress; waiters block on done.
type issueCall struct {
	done chan struct{}
	cert *tls.Certificate // set before done is closed
	err  error            // set before done is closed
}

func newIssuer(cfg Config) (*issuer, error) {
	policy, err := newNamePolicy(cfg.Names)
	if err != nil {
		return nil, err
	}
	ca, err := LoadOrCreateCA(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	return &issuer{
		ca:        ca,
		policy:    policy,
		now:       time.Now,
		maxCached: maxCachedLeaves,
		leaves:    make(map[string]*cachedLeaf),
		inflight:  make(map[string]*issueCall),
	}, nil
}

func (is *issuer) tlsConfig() *tls.Config { return baseConfig(is.getCertificate) }

// getCertificate is the tls.Config.GetCertificate hook. An error fails the
// handshake (the client sees an internal_error alert; the server's
// handshake error log carries the message).
func (is *issuer) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := hello.ServerName
	if name == "" {
		// RFC 6066 §3 forbids IP literals in SNI, so a client that dialed
		// an IP address sends no name at all. The address it dialed is our
		// local address on this connection.
		name = is.localName(hello.Conn)
	}
	ctx := hello.Context()
	if ctx == nil { // a ClientHelloInfo built by hand rather than by crypto/tls
		ctx = context.Background()
	}
	return is.leafFor(ctx, name)
}

// localName returns the local IP of conn if the policy allows a leaf for it,
// else "localhost". conn may be nil, and its LocalAddr may be any net.Addr
// (quic-go passes its own connection type).
func (is *issuer) localName(conn net.Conn) string {
	if conn == nil {
		return "localhost"
	}
	var ip net.IP
	switch a := conn.LocalAddr().(type) {
	case *net.TCPAddr:
		if a != nil {
			ip = a.IP
		}
	case *net.UDPAddr:
		if a != nil {
			ip = a.IP
		}
	case nil:
	default:
		if host, _, err := net.SplitHostPort(a.String()); err == nil {
			host, _, _ = strings.Cut(host, "%") // IPv6 zone
			ip = net.ParseIP(host)
		}
	}
	if ip == nil || ip.IsUnspecified() {
		return "localhost"
	}
	name, nip := normalizeName(ip.String())
	if ok, _ := is.policy.allowed(name, nip); !ok {
		// A public address not listed in tls.names: serve the localhost
		// leaf rather than fail, so "curl -k https://<ip>" still works;
		// verifying clients fail as they should.
		return "localhost"
	}
	return name
}

// leafFor returns a leaf for name, from the cache or freshly issued.
func (is *issuer) leafFor(ctx context.Context, raw string) (*tls.Certificate, error) {
	name, ip := normalizeName(raw)
	if ok, reason := is.policy.allowed(name, ip); !ok {
		return nil, fmt.Errorf("tlsconf: internal CA will not issue for %q (%s)", raw, reason)
	}
	now := is.now()

	is.mu.Lock()
	old := is.leaves[name]
	if old != nil && now.Before(old.renewAt) {
		is.mu.Unlock()
		return old.cert, nil
	}
	oldValid := old != nil && now.Before(old.notAfter)
	if c := is.inflight[name]; c != nil {
		is.mu.Unlock()
		if oldValid {
			return old.cert, nil // someone is renewing; the old leaf still works
		}
		select {
		case <-c.done:
			return c.cert, c.err
		case <-ctx.Done():
			return nil, fmt.Errorf("tlsconf: waiting for certificate for %q: %w", raw, ctx.Err())
		}
	}
	c := &issueCall{done: make(chan struct{})}
	is.inflight[name] = c
	is.mu.Unlock()

	if is.beforeIssue != nil {
		is.beforeIssue()
	}
	c.cert, c.err = is.issue(name, ip, now)

	is.mu.Lock()
	delete(is.inflight, name)
	if c.err == nil {
		is.storeLocked(name, c.cert, now)
	}
	is.mu.Unlock()
	close(c.done)

	if c.err != nil && oldValid {
		return old.cert, nil // renewal failed; keep serving until it expires
	}
	return c.cert, c.err
}

// storeLocked caches cert under name, evicting to stay within maxCached:
// first leaves due for renewal, then arbitrary ones (map order is random,
// and an evicted leaf is simply issued again when asked for).
// is.mu must be held.
func (is *issuer) storeLocked(name string, cert *tls.Certificate, now time.Time) {
	if _, ok := is.leaves[name]; !ok && len(is.leaves) >= is.maxCached {
		for k, l := range is.leaves {
			if !now.Before(l.renewAt) {
				delete(is.leaves, k)
			}
		}
		for k := range is.leaves {
			if len(is.leaves) < is.maxCached {
				break
			}
			delete(is.leaves, k)
		}
	}
	nb, na := cert.Leaf.NotBefore, cert.Leaf.NotAfter
	is.leaves[name] = &cachedLeaf{
		cert:     cert,
		renewAt:  nb.Add(na.Sub(nb) * 2 / 3),
		notAfter: na,
	}
}

// issue creates a leaf for name (normalized; ip set if it is an address).
func (is *issuer) issue(name string, ip net.IP, now time.Time) (*tls.Certificate, error) {
	root := is.ca.cert
	if !now.Before(root.NotAfter) {
		return nil, fmt.Errorf("tlsconf: internal CA root %s expired on %s; remove its directory and restart to create a new root", is.ca.certPath, root.NotAfter.UTC().Format(time.DateOnly))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: internal CA: generate key for %q: %w", name, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("tlsconf: internal CA: %w", err)
	}
	notAfter := now.Add(leafLifetime)
	if notAfter.After(root.NotAfter) {
		// A leaf cannot outlive its issuer usefully (RFC 5280 §6.1.3: every
		// certificate on the path must be valid at verification time).
		notAfter = root.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// Subject left empty: identity is in the subjectAltName (RFC 5280
		// §4.2.1.6; RFC 6125 §6.4.4 deprecates the CN). x509 then marks the
		// SAN extension critical, as §4.2.1.6 requires for an empty subject.
		NotBefore: now.Add(-clockSkew),
		NotAfter:  notAfter,
		// RFC 5280 §4.2.1.3: an ECDSA key only signs (the TLS handshake
		// signature, RFC 8446 §4.4.3); it never encrypts a key.
		KeyUsage: x509.KeyUsageDigitalSignature,
		// RFC 5280 §4.2.1.12: a TLS server certificate, nothing else.
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, // explicitly not a CA (§4.2.1.9)
	}
	switch {
	case name == "localhost":
		// The no-SNI fallback, and what "localhost" resolves to on most
		// systems (RFC 6761 §6.3 pins it to loopback).
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	case ip != nil:
		// An address goes in an iPAddress SAN; clients never match an IP
		// against a dNSName (RFC 6125 §3.1.3.2).
		tmpl.IPAddresses = []net.IP{ip}
	default:
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, key.Public(), is.ca.key)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: internal CA: issue for %q: %w", name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: internal CA: parse leaf for %q: %w", name, err)
	}
	is.issued.Add(1)
	// The chain is the leaf alone: the root is what the client already
	// trusts, and RFC 8446 §4.4.2 lets it be omitted.
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
