// Package tlsconf builds the *tls.Config the frontend serves with, from one
// of three certificate sources.
//
//   - Static files (Config.CertFile and Config.KeyFile): a PEM certificate
//     chain and its private key, loaded and checked once.
//   - ACME (Config.ACME, acme.go): public certificates obtained and renewed
//     automatically through github.com/caddyserver/certmagic (RFC 8555),
//     for configured names in the background and, with a decision policy,
//     for other names at handshake time ("on demand").
//   - Internal CA (neither): like Caddy's "tls internal". A root CA is
//     created once in DataDir/ca and reused on every later start; leaf
//     certificates are issued from it on demand during the handshake, for
//     local names only (see names.go), and kept in memory. Clients trust the
//     root by importing root.crt (the "hoplite ca" command prints it).
//
// NewSource returns a Source: the *tls.Config, an http.Handler wrapper that
// answers ACME HTTP-01 challenges on the plain-HTTP listener, Start (begin
// background work once the listeners are bound) and Close. New is the short
// form for the two sources without background work.
//
// The *tls.Config carries certificate selection, the protocol floor and,
// with ACME, NextProtos ["acme-tls/1"] for TLS-ALPN-01 (RFC 8737 §3). The
// frontend appends h2 and http/1.1 and keeps what is already there; HTTP/3
// uses a clone with ALPN "h3" only and the same GetCertificate.
package tlsconf

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
)

// Config selects the certificate source: static files (CertFile and
// KeyFile), ACME (ACME non-nil), or, when neither is set, the internal CA.
type Config struct {
	// CertFile and KeyFile are PEM files; both or neither. CertFile holds
	// the leaf certificate first, then any intermediates. KeyFile holds the
	// leaf's private key (PKCS #8, SEC 1 "EC PRIVATE KEY" or PKCS #1 "RSA
	// PRIVATE KEY"); it may be the same file as CertFile.
	CertFile, KeyFile string
	// ACME, if set, obtains certificates from an ACME CA (acme.go). It
	// excludes CertFile, KeyFile and Names.
	ACME *ACMEConfig
	// DataDir holds the internal CA ("ca/root.crt", "ca/root.key") and,
	// unless ACMEConfig.Storage says otherwise, ACME's storage ("acme/").
	// Required for the internal CA; unused with static files.
	DataDir string
	// Names are extra DNS names or IPs the internal CA may issue for,
	// beyond localhost and loopback and private addresses. An entry is an
	// exact name ("proxy.example.test"), an IP address, or a wildcard of
	// exactly one label ("*.example.test" allows "a.example.test", not
	// "example.test" or "a.b.example.test"). Internal CA only.
	Names []string
}

// Source is a certificate source ready to serve: its *tls.Config and the
// hooks the ACME source needs from whoever owns the listeners.
type Source struct {
	tlsConfig *tls.Config
	acme      *acmeSource // nil for static files and the internal CA
	closeOnce sync.Once
}

// NewSource builds the source cfg selects. It binds nothing, contacts no
// CA and starts no obtain or renewal: with ACME, call Start once the
// listeners that answer challenges are bound, and Close when done. Errors
// name the offending field.
func NewSource(cfg Config) (*Source, error) {
	if cfg.ACME != nil {
		switch {
		case cfg.CertFile != "" || cfg.KeyFile != "":
			return nil, errors.New("tlsconf: ACME and static certificate files exclude each other; choose one certificate source")
		case len(cfg.Names) > 0:
			return nil, errors.New("tlsconf: Names is only used by the internal CA, not with ACME")
		}
		a, err := newACMESource(*cfg.ACME, cfg.DataDir)
		if err != nil {
			return nil, err
		}
		return &Source{tlsConfig: a.tlsConfig(), acme: a}, nil
	}
	c, err := newStaticOrInternal(cfg)
	if err != nil {
		return nil, err
	}
	return &Source{tlsConfig: c}, nil
}

// TLSConfig returns the config to serve with. Callers may clone it; they
// must keep GetCertificate and the NextProtos already present (acme-tls/1).
func (s *Source) TLSConfig() *tls.Config { return s.tlsConfig }

// HTTPChallenge wraps next, the plain-HTTP listener's handler, so that ACME
// HTTP-01 validation requests (GET /.well-known/acme-challenge/TOKEN,
// RFC 8555 §8.3) for challenges this process or another sharing its storage
// started are answered with the key authorization; every other request goes
// to next. Without ACME, or with HTTP-01 disabled, it returns next.
func (s *Source) HTTPChallenge(next http.Handler) http.Handler {
	if s.acme == nil {
		return next
	}
	return s.acme.httpChallenge(next)
}

// Start begins the source's background work: with ACME, obtaining and then
// renewing the configured domains, and answering on-demand handshakes.
// tlsAddr is the bound TLS listener (TLS-ALPN-01, RFC 8737 §3), httpAddr
// the bound plain-HTTP listener (HTTP-01, RFC 8555 §8.3) or nil if there is
// none. Both must be serving this source before Start is called: certmagic
// finds them in use and so never opens listeners of its own, and the CA's
// validation requests reach them. Start returns at once; nothing waits for
// the CA. It is a no-op for the other sources, and for a second call.
func (s *Source) Start(tlsAddr, httpAddr net.Addr) error {
	if s.acme == nil {
		return nil
	}
	return s.acme.start(tlsAddr, httpAddr)
}

// Close stops the background work (certmagic's cache maintenance, pending
// obtains and their retries). Certificates already obtained stay in
// storage. Handshakes after Close still get certificates already in
// memory. Safe to call more than once.
func (s *Source) Close() {
	s.closeOnce.Do(func() {
		if s.acme != nil {
			s.acme.close()
		}
	})
}

// New returns a *tls.Config serving certificates from static files or the
// internal CA: NewSource without the rest, for the sources that have no
// background work to start or stop. ACME needs NewSource.
//
// The config has MinVersion TLS 1.2 and GetCertificate set. NextProtos is
// left nil for the frontend to fill. CipherSuites is left nil on purpose:
// Go's defaults prefer AEAD suites with forward secrecy, and TLS 1.3 suites
// are not configurable anyway (RFC 8446 §9.1 makes TLS_AES_128_GCM_SHA256
// mandatory).
func New(cfg Config) (*tls.Config, error) {
	if cfg.ACME != nil {
		return nil, errors.New("tlsconf: ACME runs in the background; use NewSource, then Start and Close")
	}
	return newStaticOrInternal(cfg)
}

func newStaticOrInternal(cfg Config) (*tls.Config, error) {
	switch {
	case cfg.CertFile != "" && cfg.KeyFile != "":
		cert, err := loadStatic(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, err
		}
		return baseConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return cert, nil
		}), nil
	case cfg.CertFile != "":
		return nil, fmt.Errorf("tlsconf: certificate file %s given without a key file", cfg.CertFile)
	case cfg.KeyFile != "":
		return nil, fmt.Errorf("tlsconf: key file %s given without a certificate file", cfg.KeyFile)
	}
	is, err := newIssuer(cfg)
	if err != nil {
		return nil, err
	}
	return is.tlsConfig(), nil
}

// baseConfig is the config every source shares.
func baseConfig(get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		// RFC 8996 deprecates TLS 1.0 and 1.1; RFC 9113 §9.2 requires
		// TLS 1.2 or later for HTTP/2, and QUIC requires TLS 1.3 (RFC 9001
		// §4.2), which quic-go enforces by itself.
		MinVersion:     tls.VersionTLS12,
		GetCertificate: get,
	}
}
