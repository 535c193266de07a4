package tlsconf

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// acmeEnv is an ACME source under test and its listeners on 127.0.0.1:
// TLS (handshakes under test, TLS-ALPN-01) and plain HTTP (HTTP-01).
// The listeners are bound first, so a test CA can be told their ports.
type acmeEnv struct {
	tlsLn, plainLn net.Listener
	src            *Source
	a              *acmeSource
	srv            *testServer
	logs           *syncBuffer
	fallbackHits   atomic.Int64 // plain requests that were not challenges
}

func newACMEEnv(t *testing.T) *acmeEnv {
	t.Helper()
	e := &acmeEnv{}
	var err error
	if e.tlsLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if e.plainLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.tlsLn.Close(); e.plainLn.Close() })
	return e
}

func (e *acmeEnv) tlsPort() int   { return e.tlsLn.Addr().(*net.TCPAddr).Port }
func (e *acmeEnv) plainPort() int { return e.plainLn.Addr().(*net.TCPAddr).Port }
func (e *acmeEnv) tlsAddr() string {
	return e.tlsLn.Addr().String()
}

// start builds the source, serves it on the listeners (handshakes get
// handshakeTimeout) and calls Start, as the frontend and cmd do.
func (e *acmeEnv) start(t *testing.T, cfg ACMEConfig, opt acmeOptions, handshakeTimeout time.Duration) {
	t.Helper()
	logger, logs := testLogger()
	cfg.Logger = logger
	e.logs = logs
	a, err := buildACME(cfg, "", opt)
	if err != nil {
		t.Fatal(err)
	}
	e.a = a
	e.src = &Source{tlsConfig: a.tlsConfig(), acme: a}
	t.Cleanup(e.src.Close)
	e.srv = serveTLSListener(t, e.tlsLn, e.src.TLSConfig(), handshakeTimeout)
	plain := &http.Server{Handler: e.src.HTTPChallenge(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.fallbackHits.Add(1)
		http.Error(w, "fallback", http.StatusTeapot)
	}))}
	go plain.Serve(e.plainLn)
	t.Cleanup(func() { plain.Close() })
	var httpAddr net.Addr
	if !cfg.DisableHTTP01 {
		httpAddr = e.plainLn.Addr()
	}
	if err := e.src.Start(e.tlsLn.Addr(), httpAddr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("source log:\n%s", logs)
		}
	})
}

func testLogger() (*slog.Logger, *syncBuffer) {
	b := &syncBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// logLines returns the log lines containing every one of parts.
func logLines(logs *syncBuffer, parts ...string) []string {
	var out []string
	for line := range strings.SplitSeq(logs.String(), "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok && line != "" {
			out = append(out, line)
		}
	}
	return out
}

// countingCA is a stand-in ACME CA that answers 503 to everything and
// counts every request: a test that must not contact the CA checks that
// the count stays 0.
type countingCA struct {
	srv      *httptest.Server
	requests atomic.Int64
	rootFile string
}

func newCountingCA(t *testing.T) *countingCA {
	t.Helper()
	c := &countingCA{}
	c.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.requests.Add(1)
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
	}))
	t.Cleanup(c.srv.Close)
	c.rootFile = writeFile(t, t.TempDir(), "ca.pem", certPEM(c.srv.Certificate()))
	return c
}

func (c *countingCA) dirURL() string { return c.srv.URL + "/directory" }

// closedPortURL is an https URL on which nothing listens.
func closedPortURL(t *testing.T) string {
	return fmt.Sprintf("https://127.0.0.1:%d/dir", freePort(t))
}

func TestACMEConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := writeFile(t, dir, "not.pem", []byte("hello"))
	ok := func(mod func(*ACMEConfig)) *ACMEConfig {
		c := &ACMEConfig{Domains: []string{"example.com"}, Storage: dir}
		if mod != nil {
			mod(c)
		}
		return c
	}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"with static files", Config{CertFile: "c.pem", KeyFile: "k.pem", ACME: ok(nil)},
			"tlsconf: ACME and static certificate files exclude each other; choose one certificate source"},
		{"with names", Config{Names: []string{"a.test"}, ACME: ok(nil)},
			"tlsconf: Names is only used by the internal CA, not with ACME"},
		{"nothing to do", Config{ACME: &ACMEConfig{Storage: dir}},
			"tlsconf: ACME needs Domains, OnDemand or both"},
		{"wildcard domain", Config{ACME: ok(func(c *ACMEConfig) { c.Domains = []string{"a.test", "*.Example.com"} })},
			`tlsconf: ACME Domains[1] "*.Example.com": wildcard certificates need the DNS-01 challenge, which is not supported; list the names, or use OnDemand with Allow "*.example.com"`},
		{"IP domain", Config{ACME: ok(func(c *ACMEConfig) { c.Domains = []string{"192.0.2.1"} })},
			`tlsconf: ACME Domains[0] "192.0.2.1": IP addresses are not supported; use a DNS name`},
		{"bad domain", Config{ACME: ok(func(c *ACMEConfig) { c.Domains = []string{"a..b"} })},
			`tlsconf: ACME Domains[0] "a..b": not a DNS name`},
		{"no challenge", Config{ACME: ok(func(c *ACMEConfig) { c.DisableHTTP01, c.DisableTLSALPN01 = true, true })},
			"tlsconf: ACME needs at least one challenge; HTTP-01 and TLS-ALPN-01 are both disabled"},
		{"http CA", Config{ACME: ok(func(c *ACMEConfig) { c.CA = "http://ca.test/dir" })},
			`tlsconf: ACME CA "http://ca.test/dir": want an https:// directory URL, "letsencrypt" or "letsencrypt-staging"`},
		{"CA without scheme", Config{ACME: ok(func(c *ACMEConfig) { c.CA = "ca.test/dir" })},
			`tlsconf: ACME CA "ca.test/dir": want an https:// directory URL, "letsencrypt" or "letsencrypt-staging"`},
		{"negative renew interval", Config{ACME: ok(func(c *ACMEConfig) { c.RenewCheckInterval = -time.Second })},
			"tlsconf: ACME RenewCheckInterval -1s is negative"},
		{"bad email", Config{ACME: ok(func(c *ACMEConfig) { c.Email = "a b@c" })},
			`tlsconf: ACME Email "a b@c" is not an email address`},
		{"half EAB", Config{ACME: ok(func(c *ACMEConfig) { c.EAB = &EAB{KeyID: "kid"} })},
			"tlsconf: ACME EAB needs both KeyID and MACKey"},
		{"missing trusted root", Config{ACME: ok(func(c *ACMEConfig) { c.TrustedRoots = []string{filepath.Join(dir, "none.pem")} })},
			"tlsconf: ACME trusted root " + filepath.Join(dir, "none.pem") + ": no such file or directory"},
		{"trusted root not PEM", Config{ACME: ok(func(c *ACMEConfig) { c.TrustedRoots = []string{notPEM} })},
			"tlsconf: ACME trusted root " + notPEM + ": no CERTIFICATE block found"},
		{"no storage", Config{ACME: ok(func(c *ACMEConfig) { c.Storage = "" })},
			"tlsconf: ACME needs a storage directory: set Storage or DataDir"},
		{"on demand without policy", Config{ACME: ok(func(c *ACMEConfig) { c.OnDemand = &OnDemandConfig{MaxOrdersPerMinute: 5} })},
			"tlsconf: ACME OnDemand needs a decision policy (Allow, Ask or both): without one, any client could make hoplite order certificates for names of its choosing"},
		{"on demand bad wildcard", Config{ACME: ok(func(c *ACMEConfig) { c.OnDemand = &OnDemandConfig{Allow: []string{"a.test", "*.*.test"}} })},
			`tlsconf: ACME OnDemand.Allow[1] "*.*.test": a wildcard is "*." followed by a DNS name`},
		{"on demand IP", Config{ACME: ok(func(c *ACMEConfig) { c.OnDemand = &OnDemandConfig{Allow: []string{"10.0.0.1"}} })},
			`tlsconf: ACME OnDemand.Allow[0] "10.0.0.1": not a DNS name or *.wildcard`},
		{"on demand star", Config{ACME: ok(func(c *ACMEConfig) { c.OnDemand = &OnDemandConfig{Allow: []string{"*"}} })},
			`tlsconf: ACME OnDemand.Allow[0] "*": not a DNS name or *.wildcard`},
		{"ask not http", Config{ACME: ok(func(c *ACMEConfig) { c.OnDemand = &OnDemandConfig{Ask: "localhost:9000/ask"} })},
			`tlsconf: ACME OnDemand.Ask "localhost:9000/ask": want an http:// or https:// URL`},
		{"negative order limit", Config{ACME: ok(func(c *ACMEConfig) { c.OnDemand = &OnDemandConfig{Ask: "http://a/", MaxOrdersPerMinute: -1} })},
			"tlsconf: ACME OnDemand.MaxOrdersPerMinute -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := NewSource(tt.cfg)
			if err == nil {
				src.Close()
				t.Fatal("no error")
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got: %s\nwant: %s", err, tt.want)
			}
		})
	}
	if _, err := New(Config{ACME: ok(nil)}); err == nil || !strings.Contains(err.Error(), "use NewSource") {
		t.Errorf("New with ACME: %v", err)
	}
}

// TestACMENewSourceIsQuiet checks what "hoplite validate" relies on:
// building an ACME source contacts no CA and writes nothing, and Close
// releases it.
func TestACMENewSourceIsQuiet(t *testing.T) {
	ca := newCountingCA(t)
	data := t.TempDir()
	src, err := NewSource(Config{DataDir: data, ACME: &ACMEConfig{
		Domains:      []string{"quiet.hoplite.test"},
		CA:           ca.dirURL(),
		TrustedRoots: []string{ca.rootFile},
		OnDemand:     &OnDemandConfig{Allow: []string{"*.quiet.hoplite.test"}},
		Logger:       slog.New(slog.DiscardHandler),
	}})
	if err != nil {
		t.Fatal(err)
	}
	c := src.TLSConfig()
	if c.MinVersion != tls.VersionTLS12 || c.GetCertificate == nil || !slices.Equal(c.NextProtos, []string{"acme-tls/1"}) ||
		c.Certificates != nil || c.CipherSuites != nil {
		t.Errorf("config: MinVersion %#x, NextProtos %v, GetCertificate set %v", c.MinVersion, c.NextProtos, c.GetCertificate != nil)
	}
	time.Sleep(100 * time.Millisecond)
	src.Close()
	src.Close() // idempotent
	if n := ca.requests.Load(); n != 0 {
		t.Errorf("CA contacted %d times before Start", n)
	}
	if _, err := os.Stat(filepath.Join(data, "acme")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("storage touched before Start: %v", err)
	}
	if err := src.Start(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443}, &net.TCPAddr{Port: 80}); err == nil {
		t.Error("Start after Close succeeded")
	}
}

// handlerID is a comparable http.Handler, to check identity. It is not
// zero-size: pointers to distinct zero-size values may compare equal.
type handlerID struct{ _ byte }

func (*handlerID) ServeHTTP(http.ResponseWriter, *http.Request) {}

func TestHTTPChallengeIdentity(t *testing.T) {
	next := &handlerID{}
	pki := newTestPKI(t)
	dir := t.TempDir()
	static, err := NewSource(Config{
		CertFile: writeFile(t, dir, "c.pem", certPEM(pki.leafCert)),
		KeyFile:  writeFile(t, dir, "k.pem", pkcs8PEM(t, pki.leafKey)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer static.Close()
	internal, err := NewSource(Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer internal.Close()
	noHTTP, err := NewSource(Config{ACME: &ACMEConfig{Domains: []string{"a.test"}, Storage: dir, DisableHTTP01: true, Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	defer noHTTP.Close()
	for name, s := range map[string]*Source{"static": static, "internal": internal, "acme without http-01": noHTTP} {
		if h := s.HTTPChallenge(next); h != http.Handler(next) {
			t.Errorf("%s: HTTPChallenge wrapped the handler", name)
		}
		if name != "acme without http-01" {
			if err := s.Start(nil, nil); err != nil {
				t.Errorf("%s: Start: %v", name, err)
			}
			if s.TLSConfig().NextProtos != nil {
				t.Errorf("%s: NextProtos %v", name, s.TLSConfig().NextProtos)
			}
		}
	}
	// ACME's Start needs the listeners it relies on.
	if err := noHTTP.Start(nil, nil); err == nil || !strings.Contains(err.Error(), "TLS listener") {
		t.Errorf("Start without TLS address: %v", err)
	}
	withHTTP, err := NewSource(Config{ACME: &ACMEConfig{Domains: []string{"a.test"}, Storage: dir, Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	defer withHTTP.Close()
	err = withHTTP.Start(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8443}, nil)
	if err == nil || err.Error() != "tlsconf: acme: HTTP-01 is enabled but there is no plain-HTTP listener; serve HTTPChallenge on one (port 80) or disable HTTP-01" {
		t.Errorf("Start without plain listener: %v", err)
	}
}

func TestACMECA(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", certmagic.LetsEncryptProductionCA},
		{"letsencrypt", certmagic.LetsEncryptProductionCA},
		{"LetsEncrypt-Staging", certmagic.LetsEncryptStagingCA},
		{"https://127.0.0.1:14000/dir", "https://127.0.0.1:14000/dir"},
	}
	for _, tt := range tests {
		if got, err := acmeCA(tt.in); got != tt.want || err != nil {
			t.Errorf("acmeCA(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	got, err := acmeDomains([]string{"Example.COM.", "www.example.com", "example.com"})
	if err != nil || !slices.Equal(got, []string{"example.com", "www.example.com"}) {
		t.Errorf("acmeDomains = %v, %v", got, err)
	}
}

// TestACMERefusedNamesNeverContactCA is the on-demand guarantee: names the
// policy refuses, and orders over the rate limit, fail their handshake
// without a single request to the CA. One allowed name shows that the
// count does see the CA when an order is let through.
func TestACMERefusedNamesNeverContactCA(t *testing.T) {
	ca := newCountingCA(t)
	var asked atomic.Int64
	ask := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer ask.Close()

	e := newACMEEnv(t)
	e.start(t, ACMEConfig{
		CA:            ca.dirURL(),
		TrustedRoots:  []string{ca.rootFile},
		Storage:       t.TempDir(),
		DisableHTTP01: true,
		OnDemand: &OnDemandConfig{
			Allow:              []string{"*.allowed.hoplite.test"},
			Ask:                ask.URL,
			MaxOrdersPerMinute: 1,
		},
	}, acmeOptions{}, 3*time.Second)

	refused := []string{
		"evil.hoplite.test",
		"allowed.hoplite.test",     // the wildcard's parent
		"a.b.allowed.hoplite.test", // two labels
		"localhost",
	}
	for range 20 {
		b := make([]byte, 8)
		rand.Read(b)
		refused = append(refused, fmt.Sprintf("%x.random.test", b))
	}
	for _, name := range refused {
		start := time.Now()
		if _, err := handshake(e.tlsAddr(), name, nil, nil); !isAlert(err) {
			t.Errorf("%s: handshake error %v, want an alert", name, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: refusal took %v", name, d)
		}
	}
	// No SNI: the managed config answers, and never orders.
	if _, err := handshake(e.tlsAddr(), "", nil, nil); !isAlert(err) {
		t.Errorf("no SNI: handshake error %v, want an alert", err)
	}
	if n := ca.requests.Load(); n != 0 {
		t.Fatalf("CA contacted %d times for refused names", n)
	}
	if got, want := e.a.refused.Load(), int64(len(refused)); got != want {
		t.Errorf("refused %d names, want %d", got, want)
	}
	// Every refused name is a valid DNS name off the allow list, so each
	// was put to the ask endpoint (once).
	if got, want := asked.Load(), int64(len(refused)); got != want {
		t.Errorf("ask endpoint asked %d times, want %d", got, want)
	}

	// An allowed name is ordered: the CA is contacted (and fails here).
	if _, err := handshake(e.tlsAddr(), "one.allowed.hoplite.test", nil, nil); err == nil {
		t.Fatal("handshake succeeded against a failing CA")
	}
	waitFor(t, 5*time.Second, "the CA to be contacted", func() bool { return ca.requests.Load() > 0 })
	if got := e.a.orders.Load(); got != 1 {
		t.Errorf("orders let through: %d, want 1", got)
	}
	// The bucket held one token: the next allowed name is refused before
	// the CA hears of it.
	before := ca.requests.Load()
	start := time.Now()
	if _, err := handshake(e.tlsAddr(), "two.allowed.hoplite.test", nil, nil); !isAlert(err) {
		t.Errorf("rate-limited handshake: %v, want an alert", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("rate-limited refusal took %v", d)
	}
	if got := ca.requests.Load(); got != before {
		t.Errorf("CA contacted %d more times for a rate-limited order", got-before)
	}
	if got := e.a.ordersLimited.Load(); got != 1 {
		t.Errorf("rate-limited orders: %d, want 1", got)
	}
	if len(logLines(e.logs, `msg="acme: on-demand order refused: rate limit"`, "domain=two.allowed.hoplite.test")) == 0 {
		t.Error("rate limit not logged")
	}
}

// TestACMEUnreachableCA: managed domains are obtained in the background,
// so an unreachable CA neither blocks Start nor stalls handshakes; the
// failure is logged with the domain and certmagic retries it.
func TestACMEUnreachableCA(t *testing.T) {
	e := newACMEEnv(t)
	start := time.Now()
	e.start(t, ACMEConfig{
		Domains:       []string{"down.hoplite.test"},
		CA:            closedPortURL(t),
		Storage:       t.TempDir(),
		DisableHTTP01: true,
	}, acmeOptions{}, 3*time.Second)
	if d := time.Since(start); d > time.Second {
		t.Errorf("NewSource and Start took %v", d)
	}
	waitFor(t, 10*time.Second, "the failure to be logged", func() bool {
		return len(logLines(e.logs, `msg="acme: obtaining certificate failed"`, "domain=down.hoplite.test", "connection refused")) > 0
	})
	waitFor(t, 5*time.Second, "certmagic's retry", func() bool {
		return len(logLines(e.logs, `msg="will retry"`, "down.hoplite.test")) > 0
	})
	hs := time.Now()
	if _, err := handshake(e.tlsAddr(), "down.hoplite.test", nil, nil); !isAlert(err) {
		t.Errorf("handshake without a certificate: %v, want an alert", err)
	}
	if d := time.Since(hs); d > time.Second {
		t.Errorf("handshake took %v", d)
	}
	closed := time.Now()
	e.src.Close()
	if d := time.Since(closed); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
}

// TestACMEStorageRetry: storage that cannot be written is logged with the
// domains and retried with backoff; once it works, management begins.
func TestACMEStorageRetry(t *testing.T) {
	dir := t.TempDir()
	blocker := writeFile(t, dir, "blocker", nil) // a file where a directory should be
	e := newACMEEnv(t)
	e.start(t, ACMEConfig{
		Domains:       []string{"storage.hoplite.test"},
		CA:            closedPortURL(t),
		Storage:       filepath.Join(blocker, "acme"),
		DisableHTTP01: true,
	}, acmeOptions{storageRetry: 20 * time.Millisecond}, 3*time.Second)
	waitFor(t, 5*time.Second, "three failed storage checks", func() bool {
		return len(logLines(e.logs, `msg="acme: storage is not usable; will retry"`, "domains=[storage.hoplite.test]")) >= 3
	})
	lines := logLines(e.logs, `msg="acme: storage is not usable; will retry"`)
	if !strings.Contains(lines[0], "retry_in=20ms") || !strings.Contains(lines[1], "retry_in=40ms") {
		t.Errorf("no backoff:\n%s", strings.Join(lines, "\n"))
	}
	if len(logLines(e.logs, "acme: managing certificates")) != 0 {
		t.Fatal("managed with unusable storage")
	}
	// The listener keeps working meanwhile.
	if _, err := handshake(e.tlsAddr(), "storage.hoplite.test", nil, nil); !isAlert(err) {
		t.Errorf("handshake: %v, want an alert", err)
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "management to begin", func() bool {
		return len(logLines(e.logs, `msg="acme: managing certificates"`, "domains=[storage.hoplite.test]")) > 0
	})
	waitFor(t, 10*time.Second, "the obtain attempt", func() bool {
		return len(logLines(e.logs, `msg="acme: obtaining certificate failed"`, "domain=storage.hoplite.test")) > 0
	})
}

// fakeIssuer signs CSRs with a throwaway CA, for lifetime: a stand-in for
// the ACME issuer where the test needs certificates that expire quickly.
type fakeIssuer struct {
	ca       *x509.Certificate
	caKey    any
	lifetime time.Duration
	issued   atomic.Int64
}

func (f *fakeIssuer) IssuerKey() string { return "fake" }

func (f *fakeIssuer) Issue(_ context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		NotBefore:    now.Add(-time.Second),
		NotAfter:     now.Add(f.lifetime),
		DNSNames:     csr.DNSNames,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.ca, csr.PublicKey, f.caKey)
	if err != nil {
		return nil, err
	}
	f.issued.Add(1)
	return &certmagic.IssuedCertificate{Certificate: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// TestACMERenewalInBackground: the cache's maintenance renews a managed
// certificate when its renewal window opens, at RenewCheckInterval, and
// handshakes get the new certificate.
func TestACMERenewalInBackground(t *testing.T) {
	caKey := mustECKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "renewal test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	ca := mustCert(t, caTmpl, caTmpl, caKey.Public(), caKey)
	iss := &fakeIssuer{ca: ca, caKey: caKey, lifetime: 5 * time.Second}
	roots := x509.NewCertPool()
	roots.AddCert(ca)

	e := newACMEEnv(t)
	e.start(t, ACMEConfig{
		Domains:            []string{"renew.hoplite.test"},
		Storage:            t.TempDir(),
		DisableHTTP01:      true,
		RenewCheckInterval: 100 * time.Millisecond,
	}, acmeOptions{issuer: func(*certmagic.Config) certmagic.Issuer { return iss }}, 3*time.Second)

	var first *big.Int
	waitFor(t, 10*time.Second, "the first certificate", func() bool {
		st, err := handshake(e.tlsAddr(), "renew.hoplite.test", roots, nil)
		if err == nil {
			first = st.PeerCertificates[0].SerialNumber
		}
		return err == nil
	})
	// A 6s lifetime renews with a third left, about 4s in.
	waitFor(t, 20*time.Second, "a renewed certificate", func() bool {
		st, err := handshake(e.tlsAddr(), "renew.hoplite.test", roots, nil)
		return err == nil && st.PeerCertificates[0].SerialNumber.Cmp(first) != 0
	})
	if len(logLines(e.logs, `msg="acme: obtaining certificate"`, "domain=renew.hoplite.test", "renewal=true")) == 0 {
		t.Error("renewal not logged")
	}
	if iss.issued.Load() < 2 {
		t.Errorf("issued %d certificates", iss.issued.Load())
	}
}
