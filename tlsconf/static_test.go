package tlsconf

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testPKI is a throwaway CA and a leaf it signed for static.example.test.
type testPKI struct {
	caCert   *x509.Certificate
	leafCert *x509.Certificate
	leafKey  *ecdsa.PrivateKey
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	caKey := mustECKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "static test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caCert := mustCert(t, caTmpl, caTmpl, caKey.Public(), caKey)
	leafKey := mustECKey(t)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"static.example.test"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	return &testPKI{
		caCert:   caCert,
		leafCert: mustCert(t, leafTmpl, caCert, leafKey.Public(), caKey),
		leafKey:  leafKey,
	}
}

func mustECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustCert(t *testing.T, tmpl, parent *x509.Certificate, pub crypto.PublicKey, priv crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func certPEM(certs ...*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}

func pkcs8PEM(t *testing.T, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStaticHandshake(t *testing.T) {
	pki := newTestPKI(t)
	sec1, err := x509.MarshalECPrivateKey(pki.leafKey)
	if err != nil {
		t.Fatal(err)
	}
	sec1PEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})

	tests := []struct {
		name     string
		certFile []byte
		keyFile  []byte // nil: the key is in certFile
	}{
		{"PKCS8 key", certPEM(pki.leafCert, pki.caCert), pkcs8PEM(t, pki.leafKey)},
		{"SEC1 key after EC PARAMETERS", certPEM(pki.leafCert, pki.caCert),
			append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}}), sec1PEM...)},
		{"combined cert and key file", append(certPEM(pki.leafCert, pki.caCert), pkcs8PEM(t, pki.leafKey)...), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cf := writeFile(t, dir, "cert.pem", tt.certFile)
			kf := cf
			if tt.keyFile != nil {
				kf = writeFile(t, dir, "key.pem", tt.keyFile)
			}
			cfg, err := New(Config{CertFile: cf, KeyFile: kf})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			roots := x509.NewCertPool()
			roots.AddCert(pki.caCert)
			srv := serveTLS(t, cfg)
			st, err := handshake(srv.addr, "static.example.test", roots, nil)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			// The whole chain from the file is served, leaf first.
			if got := len(st.PeerCertificates); got != 2 {
				t.Fatalf("peer sent %d certificates, want 2 (leaf + intermediate)", got)
			}
			if !st.PeerCertificates[0].Equal(pki.leafCert) {
				t.Error("first certificate is not the leaf")
			}
		})
	}
}

func TestStaticRSAKey(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(3),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"rsa.example.test"},
	}
	c := mustCert(t, tmpl, tmpl, rk.Public(), rk)
	dir := t.TempDir()
	cf := writeFile(t, dir, "cert.pem", certPEM(c))
	kf := writeFile(t, dir, "key.pem", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}))
	cfg, err := New(Config{CertFile: cf, KeyFile: kf})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(c)
	if _, err := handshake(serveTLS(t, cfg).addr, "rsa.example.test", roots, nil); err != nil {
		t.Fatalf("handshake: %v", err)
	}
}

func TestStaticErrors(t *testing.T) {
	pki := newTestPKI(t)
	dir := t.TempDir()
	good := writeFile(t, dir, "cert.pem", certPEM(pki.leafCert, pki.caCert))
	goodKey := writeFile(t, dir, "key.pem", pkcs8PEM(t, pki.leafKey))
	otherKey := writeFile(t, dir, "other-key.pem", pkcs8PEM(t, mustECKey(t)))
	wrongOrder := writeFile(t, dir, "wrong-order.pem", certPEM(pki.caCert, pki.leafCert))
	garbage := writeFile(t, dir, "garbage.pem", []byte("not PEM at all\n"))
	badDER := writeFile(t, dir, "bad-der.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}))
	encrypted := writeFile(t, dir, "enc.pem", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}}))
	legacyEnc := writeFile(t, dir, "legacy-enc.pem", pem.EncodeToMemory(&pem.Block{
		Type: "EC PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: []byte{1, 2, 3}}))
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name       string
		cfg        Config
		want       []string // substrings of the error
		wantNotExi bool     // errors.Is(err, fs.ErrNotExist)
	}{
		{"only cert file", Config{CertFile: good}, []string{"tlsconf: ", good, "without a key file"}, false},
		{"only key file", Config{KeyFile: goodKey}, []string{"tlsconf: ", goodKey, "without a certificate file"}, false},
		{"missing cert file", Config{CertFile: missing, KeyFile: goodKey}, []string{"tlsconf: load certificate " + missing + ": "}, true},
		{"missing key file", Config{CertFile: good, KeyFile: missing}, []string{"tlsconf: load key " + missing + ": "}, true},
		{"mismatched key", Config{CertFile: good, KeyFile: otherKey}, []string{"tlsconf: key " + otherKey, "does not match certificate " + good}, false},
		{"chain not leaf first", Config{CertFile: wrongOrder, KeyFile: goodKey}, []string{"does not match certificate " + wrongOrder}, false},
		{"cert file without PEM", Config{CertFile: garbage, KeyFile: goodKey}, []string{"tlsconf: load certificate " + garbage, "no CERTIFICATE block"}, false},
		{"cert file with bad DER", Config{CertFile: badDER, KeyFile: goodKey}, []string{"tlsconf: load certificate " + badDER, "certificate 1"}, false},
		{"key file without PEM", Config{CertFile: good, KeyFile: garbage}, []string{"tlsconf: load key " + garbage, "no PRIVATE KEY block"}, false},
		{"key file is a certificate", Config{CertFile: good, KeyFile: good}, []string{"tlsconf: load key " + good, "no PRIVATE KEY block"}, false},
		{"encrypted PKCS8 key", Config{CertFile: good, KeyFile: encrypted}, []string{"tlsconf: load key " + encrypted, "encrypted"}, false},
		{"legacy encrypted key", Config{CertFile: good, KeyFile: legacyEnc}, []string{"tlsconf: load key " + legacyEnc, "encrypted"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := New(tt.cfg)
			if err == nil {
				t.Fatalf("New succeeded (%v), want error", cfg)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if got := errors.Is(err, fs.ErrNotExist); got != tt.wantNotExi {
				t.Errorf("errors.Is(err, fs.ErrNotExist) = %v, want %v", got, tt.wantNotExi)
			}
			// The file name appears once, not twice via *fs.PathError.
			if tt.wantNotExi && strings.Count(err.Error(), missing) != 1 {
				t.Errorf("error %q names the file more than once", err)
			}
		})
	}
}
