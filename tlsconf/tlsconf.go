// Package tlsconf builds the *tls.Config the frontend serves with: from
// static certificate files, or from an internal CA kept in hoplite's data
// directory for localhost and private addresses.
package tlsconf

import (
	"crypto/tls"
	"errors"
)

// Config selects the certificate source. The zero value of CertFile and
// KeyFile selects the internal CA.
type Config struct {
	// CertFile and KeyFile are PEM files; both or neither.
	CertFile, KeyFile string
	// DataDir holds the internal CA ("ca/root.crt", "ca/root.key").
	DataDir string
	// Names are extra DNS names or IPs the internal CA may issue for,
	// beyond localhost and loopback and private addresses.
	Names []string
}

// New returns a *tls.Config serving certificates from cfg's source.
// NextProtos is left for the frontend to fill.
func New(cfg Config) (*tls.Config, error) { return nil, errors.New("tlsconf: TODO") }
