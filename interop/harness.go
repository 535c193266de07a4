// Package interop holds hoplite's end-to-end tests: the real binary, built
// once per test run, driven by real clients (Go's HTTP/1.1, HTTP/2 and
// HTTP/3 transports, curl, nghttp, h2spec, gtlsclient, headless Chromium)
// in front of real origins (hoplite's own echo origin, python3's
// http.server, raw sockets written in the tests).
//
// The tests need external programs; scripts/install-deps.sh installs them
// and `make test` runs it first. A missing program fails the test that
// needs it, naming the program: a skipped interop test would hide exactly
// the kind of breakage these tests exist to catch.
//
// This file holds the parts of the harness that do not need a
// *testing.T: ports, configuration files and certificates. Process
// management lives in harness_test.go.
package interop

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// FreePort returns a port number that is free on 127.0.0.1 for both TCP
// and UDP at the time of the call: hoplite serves HTTP/1.1 and HTTP/2 on
// TCP and HTTP/3 on UDP with the same number. Another process can still
// take it before hoplite binds it; startHoplite retries on that.
func FreePort() (int, error) {
	for range 20 {
		tl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := tl.Addr().(*net.TCPAddr).Port
		ul, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		tl.Close()
		if err != nil {
			continue // UDP side taken; try another number
		}
		ul.Close()
		return port, nil
	}
	return 0, errors.New("interop: no port free on both TCP and UDP after 20 tries")
}

// Config is the part of hoplite's YAML configuration the tests use. Its
// zero values leave the field out, so hoplite's defaults apply.
type Config struct {
	Listen      string // "127.0.0.1:PORT"
	HTTP3       bool
	PlainListen string
	Admin       string
	DataDir     string
	CertFile    string // empty with KeyFile: the internal CA
	KeyFile     string
	Routes      []Route
	Backends    map[string]Backend
	// MaxReadFrameSize is downstream.max_read_frame_size ("16KiB").
	MaxReadFrameSize string
	// DownstreamIdleTimeout is downstream.idle_timeout.
	DownstreamIdleTimeout time.Duration
	// MaxRequestsPerConn is downstream.max_requests_per_conn.
	MaxRequestsPerConn int
	// NoKeepAliveHeader writes downstream.keep_alive_header: false.
	NoKeepAliveHeader bool
	// DownstreamExtra holds more lines of the downstream section, as
	// written ("max_conns_per_ip: 16").
	DownstreamExtra []string
}

// Route is one entry of Config.Routes.
type Route struct {
	Host, Path, Backend string
}

// Backend is one entry of Config.Backends.
type Backend struct {
	Servers         []string // "http://127.0.0.1:PORT"
	ConnectTimeout  time.Duration
	ResponseTimeout time.Duration
	// Pool limits: max_idle_per_server, max_conns_per_server and
	// max_waiters.
	MaxIdlePerServer  int
	MaxConnsPerServer int
	MaxWaiters        int
}

// YAML renders c as a hoplite config file.
func (c Config) YAML() string {
	var b strings.Builder
	q := strconv.Quote // a Go-quoted ASCII string is a valid YAML double-quoted scalar
	fmt.Fprintf(&b, "listen: %s\n", q(c.Listen))
	fmt.Fprintf(&b, "http3: %t\n", c.HTTP3)
	if c.PlainListen != "" {
		fmt.Fprintf(&b, "plain_listen: %s\n", q(c.PlainListen))
	}
	if c.Admin != "" {
		fmt.Fprintf(&b, "admin: %s\n", q(c.Admin))
	}
	if c.DataDir != "" {
		fmt.Fprintf(&b, "data_dir: %s\n", q(c.DataDir))
	}
	if c.CertFile != "" || c.KeyFile != "" {
		fmt.Fprintf(&b, "tls:\n  cert: %s\n  key: %s\n", q(c.CertFile), q(c.KeyFile))
	}
	var down []string
	if c.MaxReadFrameSize != "" {
		down = append(down, "max_read_frame_size: "+q(c.MaxReadFrameSize))
	}
	if c.DownstreamIdleTimeout > 0 {
		down = append(down, "idle_timeout: "+c.DownstreamIdleTimeout.String())
	}
	if c.MaxRequestsPerConn > 0 {
		down = append(down, "max_requests_per_conn: "+strconv.Itoa(c.MaxRequestsPerConn))
	}
	if c.NoKeepAliveHeader {
		down = append(down, "keep_alive_header: false")
	}
	down = append(down, c.DownstreamExtra...)
	if len(down) > 0 {
		b.WriteString("downstream:\n")
		for _, l := range down {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	b.WriteString("routes:\n")
	for _, r := range c.Routes {
		fmt.Fprintf(&b, "  - host: %s\n    path: %s\n    backend: %s\n", q(r.Host), q(r.Path), q(r.Backend))
	}
	b.WriteString("backends:\n")
	names := make([]string, 0, len(c.Backends))
	for name := range c.Backends {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		be := c.Backends[name]
		fmt.Fprintf(&b, "  %s:\n    servers:\n", q(name))
		for _, s := range be.Servers {
			fmt.Fprintf(&b, "      - %s\n", q(s))
		}
		if be.ConnectTimeout > 0 {
			fmt.Fprintf(&b, "    connect_timeout: %s\n", be.ConnectTimeout)
		}
		if be.ResponseTimeout > 0 {
			fmt.Fprintf(&b, "    response_timeout: %s\n", be.ResponseTimeout)
		}
		for _, n := range []struct {
			key string
			v   int
		}{{"max_idle_per_server", be.MaxIdlePerServer}, {"max_conns_per_server", be.MaxConnsPerServer}, {"max_waiters", be.MaxWaiters}} {
			if n.v > 0 {
				fmt.Fprintf(&b, "    %s: %d\n", n.key, n.v)
			}
		}
	}
	return b.String()
}

// PKI is a certificate authority and one leaf certificate made for a test:
// the leaf names localhost, 127.0.0.1 and ::1. With a known CA the Go
// clients verify for real, and with a known leaf key Chromium can be told
// to trust exactly this leaf (LeafSPKI).
type PKI struct {
	CAFile   string // PEM, the CA certificate
	CertFile string // PEM, leaf then CA
	KeyFile  string // PEM, the leaf's PKCS #8 key
	CA       *x509.Certificate
	// LeafSPKI is the base64 SHA-256 of the leaf's SubjectPublicKeyInfo,
	// the form Chromium's --ignore-certificate-errors-spki-list takes.
	LeafSPKI string
}

// NewPKI writes a fresh CA and leaf into dir.
func NewPKI(dir string) (*PKI, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "hoplite interop test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(leafDER)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		return nil, err
	}
	p := &PKI{
		CAFile:   filepath.Join(dir, "ca.crt"),
		CertFile: filepath.Join(dir, "leaf.crt"),
		KeyFile:  filepath.Join(dir, "leaf.key"),
		CA:       ca,
	}
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	p.LeafSPKI = base64.StdEncoding.EncodeToString(sum[:])
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	leafPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	for _, f := range []struct {
		name string
		data []byte
	}{
		{p.CAFile, caPEM},
		{p.CertFile, append(leafPEM, caPEM...)},
		{p.KeyFile, keyPEM},
	} {
		if err := os.WriteFile(f.name, f.data, 0o600); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Pool returns a pool holding only the test CA.
func (p *PKI) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.CA)
	return pool
}
