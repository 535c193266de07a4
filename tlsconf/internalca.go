package tlsconf

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// The internal CA's root lives in DataDir/ca:
//
//	ca/          0700
//	ca/root.key  0600  PKCS #8 ECDSA P-256 key
//	ca/root.crt  0644  self-signed root certificate (what clients trust)
//
// Creating it must survive two hoplite processes starting at the same
// moment (a restart overlapping a graceful drain, or two instances sharing a
// data directory), and a crash at any point. Both files are written to a
// temporary file, synced, and published with a hard link, which fails if the
// name already exists (unlike rename, which would replace it). The key is
// always published before a certificate is made from it:
//
//  1. Read root.key; if it is missing, generate one and publish it. If
//     another process published first, the link fails with "exists" and we
//     read theirs. Either way every process now holds the same key.
//  2. Read root.crt; if it is missing, self-sign one for that key and
//     publish it the same way, then read back whichever won.
//
// So the pair on disk always matches: a cert is only ever made from the
// published key, and a crash between the steps leaves a key without a
// certificate, which the next start completes. An existing valid root is
// never replaced.

const (
	caDirName    = "ca"
	rootCertName = "root.crt"
	rootKeyName  = "root.key"

	// rootLifetime is long because every client has to import the root by
	// hand; replacing it means doing that again.
	rootLifetime = 10 // years
)

// CA is the internal certificate authority's root, loaded from or created in
// a data directory.
type CA struct {
	certPath string
	certPEM  []byte
	cert     *x509.Certificate
	key      crypto.Signer
}

// LoadOrCreateCA loads the internal CA root from dataDir/ca, creating it on
// first use. It is safe to call from several processes at once: they all end
// up with the same root.
func LoadOrCreateCA(dataDir string) (*CA, error) {
	return loadOrCreateCA(dataDir, time.Now())
}

// RootPEM returns the root certificate in PEM form, for clients to trust.
func (ca *CA) RootPEM() []byte { return append([]byte(nil), ca.certPEM...) }

// RootPath returns the path of the root certificate file.
func (ca *CA) RootPath() string { return ca.certPath }

// RootPool returns a new pool holding only the root certificate, for
// clients (tests, health checks) that should trust this CA.
func (ca *CA) RootPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

func loadOrCreateCA(dataDir string, now time.Time) (*CA, error) {
	if dataDir == "" {
		return nil, errors.New("tlsconf: internal CA needs a data directory")
	}
	dir := filepath.Join(dataDir, caDirName)
	if err := ensurePrivateDir(dir); err != nil {
		return nil, fmt.Errorf("tlsconf: internal CA directory %s: %w", dir, unwrapPath(err))
	}
	keyPath := filepath.Join(dir, rootKeyName)
	certPath := filepath.Join(dir, rootCertName)

	// A certificate without its key is not something we made (we publish
	// the key first); do not invent a key that can never match it.
	if _, err := os.Stat(keyPath); errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(certPath); err == nil {
			return nil, fmt.Errorf("tlsconf: internal CA: %s exists but %s is missing; restore the key or remove both to create a new root", certPath, keyPath)
		}
	}

	key, err := loadOrCreateKey(keyPath)
	if err != nil {
		return nil, err
	}
	certPEM, cert, err := loadOrCreateRootCert(certPath, key, now)
	if err != nil {
		return nil, err
	}
	if !keyMatches(key, cert.PublicKey) {
		return nil, fmt.Errorf("tlsconf: internal CA: key %s does not match root %s", keyPath, certPath)
	}
	// RFC 5280 §4.2.1.9 and §4.2.1.3: only a CA certificate with
	// keyCertSign may sign certificates; verifiers reject leaves otherwise.
	if !cert.BasicConstraintsValid || !cert.IsCA || (cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0) {
		return nil, fmt.Errorf("tlsconf: internal CA: %s is not a CA certificate", certPath)
	}
	if !now.Before(cert.NotAfter) {
		// Replacing it silently would break every client that trusts it
		// without telling anyone; make it the operator's decision.
		return nil, fmt.Errorf("tlsconf: internal CA: root %s expired on %s; remove %s to create a new root, then have clients trust it", certPath, cert.NotAfter.UTC().Format(time.DateOnly), dir)
	}
	return &CA{certPath: certPath, certPEM: certPEM, cert: cert, key: key}, nil
}

// ensurePrivateDir creates dir with mode 0700, or tightens an existing one:
// it holds the root key, which can sign certificates for any name.
func ensurePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return errors.New("not a directory")
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return os.Chmod(dir, 0o700)
	}
	return nil
}

func loadOrCreateKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, gerr := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if gerr != nil {
			return nil, fmt.Errorf("tlsconf: internal CA: generate root key: %w", gerr)
		}
		der, merr := x509.MarshalPKCS8PrivateKey(k)
		if merr != nil {
			return nil, fmt.Errorf("tlsconf: internal CA: encode root key: %w", merr)
		}
		if perr := publishExclusive(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); perr != nil {
			return nil, fmt.Errorf("tlsconf: internal CA: write %s: %w", path, unwrapPath(perr))
		}
		// Read back: another process may have won the race.
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("tlsconf: internal CA: read %s: %w", path, unwrapPath(err))
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, fmt.Errorf("tlsconf: internal CA: %s is readable by others and chmod failed: %w", path, unwrapPath(err))
		}
	}
	key, err := parsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: internal CA: read %s: %w", path, err)
	}
	return key, nil
}

func loadOrCreateRootCert(path string, key crypto.Signer, now time.Time) ([]byte, *x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		der, cerr := createRootCert(key, now)
		if cerr != nil {
			return nil, nil, fmt.Errorf("tlsconf: internal CA: create root certificate: %w", cerr)
		}
		if perr := publishExclusive(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); perr != nil {
			return nil, nil, fmt.Errorf("tlsconf: internal CA: write %s: %w", path, unwrapPath(perr))
		}
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconf: internal CA: read %s: %w", path, unwrapPath(err))
	}
	certs, err := parseCertificates(data)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconf: internal CA: read %s: %w", path, err)
	}
	return data, certs[0], nil
}

// createRootCert self-signs a root for key.
func createRootCert(key crypto.Signer, now time.Time) ([]byte, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	notBefore := now.Add(-clockSkew).UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization: []string{"hoplite Local Authority"},
			CommonName:   fmt.Sprintf("hoplite Local Authority - %d ECC Root", now.Year()),
		},
		NotBefore: notBefore,
		NotAfter:  notBefore.AddDate(rootLifetime, 0, 0),
		// RFC 5280 §4.2.1.9: a CA; path length 0 means it signs leaves
		// only, never an intermediate CA, which limits what a stolen leaf
		// key could ever do.
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		// RFC 5280 §4.2.1.3: keyCertSign to sign certificates; cRLSign as
		// CAs conventionally carry (we publish no CRLs: leaves live 7 days).
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		// SubjectKeyId is filled in by x509 for CA templates (RFC 5280
		// §4.2.1.2), and copied into leaves' AuthorityKeyId.
	}
	return x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
}

// publishExclusive makes data appear at path completely or not at all, and
// never replaces an existing file: it returns nil if path already exists
// (another process won; the caller reads theirs).
func publishExclusive(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // after a link, this only drops the extra name
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if err == nil {
		// Sync before publishing, so a power loss cannot leave a linked but
		// empty file behind.
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	err = os.Link(tmpName, path)
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrExist):
		return nil
	default:
		// File systems without hard links (some FUSE and network mounts):
		// fall back to rename, which is atomic but would replace a file
		// published in the window between this check and the rename.
		if _, serr := os.Lstat(path); serr == nil {
			return nil
		}
		if err := os.Rename(tmpName, path); err != nil {
			return err
		}
	}
	syncDir(dir)
	return nil
}

// syncDir makes a new directory entry durable. Best effort: not every
// platform can sync a directory.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// randomSerial returns a positive random 128-bit serial number. RFC 5280
// §4.1.2.2 allows up to 20 octets and requires it positive; CA/Browser Forum
// practice is at least 64 bits of randomness, so serials are unpredictable.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}
