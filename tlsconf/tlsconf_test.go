package tlsconf

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNewConfigShape checks what the frontend and ACME rely on: a TLS 1.2
// floor, certificates chosen by GetCertificate, and NextProtos and
// CipherSuites left for others / Go's defaults.
func TestNewConfigShape(t *testing.T) {
	pki := newTestPKI(t)
	dir := t.TempDir()
	cf := writeFile(t, dir, "cert.pem", certPEM(pki.leafCert))
	kf := writeFile(t, dir, "key.pem", pkcs8PEM(t, pki.leafKey))

	tests := []struct {
		name string
		cfg  Config
	}{
		{"static files", Config{CertFile: cf, KeyFile: kf}},
		{"internal CA", Config{DataDir: t.TempDir()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if c.MinVersion != tls.VersionTLS12 {
				t.Errorf("MinVersion = %#x, want TLS 1.2", c.MinVersion)
			}
			if c.GetCertificate == nil {
				t.Error("GetCertificate not set")
			}
			if c.NextProtos != nil {
				t.Errorf("NextProtos = %v, want nil (the frontend sets it)", c.NextProtos)
			}
			if c.CipherSuites != nil {
				t.Errorf("CipherSuites = %v, want Go's defaults", c.CipherSuites)
			}
			if c.Certificates != nil {
				t.Error("Certificates set; GetCertificate is the one source")
			}
		})
	}
}

func TestNewInternalErrors(t *testing.T) {
	t.Run("no data directory", func(t *testing.T) {
		_, err := New(Config{})
		if err == nil || err.Error() != "tlsconf: internal CA needs a data directory" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("bad names rejected before touching disk", func(t *testing.T) {
		data := t.TempDir()
		_, err := New(Config{DataDir: data, Names: []string{"ok.example.test", "bad name"}})
		if err == nil || !strings.Contains(err.Error(), `tls.names[1] "bad name"`) {
			t.Fatalf("err = %v", err)
		}
		if _, err := os.Stat(filepath.Join(data, "ca")); err == nil {
			t.Error("CA directory created despite invalid config")
		}
	})
}
