package tlsconf

import (
	"crypto/tls"
	"fmt"
	"os"
)

// loadStatic reads a PEM certificate chain and its private key and checks
// that they belong together, so that a wrong pair fails at startup with the
// file names rather than in every client's handshake.
//
// The chain is served as it appears in certFile: leaf first, then
// intermediates (RFC 8446 §4.4.2: "The sender's certificate MUST come in the
// first CertificateEntry"). The chain itself is not verified here: the
// issuer may be a private root only clients know.
func loadStatic(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: load certificate %s: %w", certFile, unwrapPath(err))
	}
	chain, err := parseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: load certificate %s: %w", certFile, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: load key %s: %w", keyFile, unwrapPath(err))
	}
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: load key %s: %w", keyFile, err)
	}
	if !keyMatches(key, chain[0].PublicKey) {
		return nil, fmt.Errorf("tlsconf: key %s does not match certificate %s (the first certificate in the file must be the leaf)", keyFile, certFile)
	}
	cert := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return cert, nil
}
