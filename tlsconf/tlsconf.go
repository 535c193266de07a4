// Package tlsconf builds the *tls.Config the frontend serves with: from
// static certificate files, or from an internal CA kept in hoplite's data
// directory for localhost and private addresses.
//
// The two sources:
//
//   - Static files (Config.CertFile and Config.KeyFile): a PEM certificate
//     chain and its private key, loaded and checked once by New.
//   - Internal CA (both empty): like Caddy's "tls internal". A root CA is
//     created once in DataDir/ca and reused on every later start; leaf
//     certificates are issued from it on demand during the handshake, for
//     local names only (see names.go), and kept in memory. Clients trust the
//     root by importing root.crt (the "hoplite ca" command prints it).
//
// The returned *tls.Config only carries certificate selection and the
// protocol floor. The frontend owns NextProtos (h2, http/1.1). ACME
// (certmagic, planned) will add "acme-tls/1" for TLS-ALPN-01 (RFC 8737 §3):
// it will wrap GetCertificate so that a ClientHello offering acme-tls/1 gets
// the challenge certificate, and append the protocol to NextProtos. Nothing
// here assumes NextProtos is empty or that GetCertificate is the last word.
package tlsconf

import (
	"crypto/tls"
	"fmt"
)

// Config selects the certificate source. The zero value of CertFile and
// KeyFile selects the internal CA.
type Config struct {
	// CertFile and KeyFile are PEM files; both or neither. CertFile holds
	// the leaf certificate first, then any intermediates. KeyFile holds the
	// leaf's private key (PKCS #8, SEC 1 "EC PRIVATE KEY" or PKCS #1 "RSA
	// PRIVATE KEY"); it may be the same file as CertFile.
	CertFile, KeyFile string
	// DataDir holds the internal CA ("ca/root.crt", "ca/root.key").
	// Required for the internal CA; unused with static files.
	DataDir string
	// Names are extra DNS names or IPs the internal CA may issue for,
	// beyond localhost and loopback and private addresses. An entry is an
	// exact name ("proxy.example.test"), an IP address, or a wildcard of
	// exactly one label ("*.example.test" allows "a.example.test", not
	// "example.test" or "a.b.example.test"). Unused with static files.
	Names []string
}

// New returns a *tls.Config serving certificates from cfg's source.
//
// The config has MinVersion TLS 1.2 and GetCertificate set. NextProtos is
// left nil for the frontend to fill (and for ACME's acme-tls/1 later).
// CipherSuites is left nil on purpose: Go's defaults prefer AEAD suites with
// forward secrecy, and TLS 1.3 suites are not configurable anyway
// (RFC 8446 §9.1 makes TLS_AES_128_GCM_SHA256 mandatory).
func New(cfg Config) (*tls.Config, error) {
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

// baseConfig is the config both sources share.
func baseConfig(get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		// RFC 8996 deprecates TLS 1.0 and 1.1; RFC 9113 §9.2 requires
		// TLS 1.2 or later for HTTP/2, and QUIC requires TLS 1.3 (RFC 9001
		// §4.2), which quic-go enforces by itself.
		MinVersion:     tls.VersionTLS12,
		GetCertificate: get,
	}
}
