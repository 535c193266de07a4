package tlsconf

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
)

// parseCertificates returns every CERTIFICATE block in data, in order.
// Other blocks are skipped, so a combined cert+key file works, as with
// tls.X509KeyPair.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no CERTIFICATE block found")
	}
	return certs, nil
}

// parsePrivateKey returns the first private key block in data. Other blocks
// (certificates, "EC PARAMETERS" that openssl ecparam writes) are skipped.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PRIVATE KEY block found")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("encrypted private keys are not supported")
		default:
			continue
		}
		if _, ok := block.Headers["Proc-Type"]; ok {
			// RFC 1421 legacy encryption ("Proc-Type: 4,ENCRYPTED").
			return nil, errors.New("encrypted private keys are not supported")
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", block.Type, err)
		}
		switch k := key.(type) {
		case *ecdsa.PrivateKey:
			return k, nil
		case *rsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		default:
			return nil, fmt.Errorf("unsupported private key type %T", key)
		}
	}
}

// keyMatches reports whether priv is the private half of pub.
func keyMatches(priv crypto.Signer, pub crypto.PublicKey) bool {
	k, ok := priv.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(pub)
}

// unwrapPath drops the *fs.PathError wrapper so that an error message which
// already names the file does not name it twice. errors.Is(err,
// fs.ErrNotExist) still holds for the result.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
