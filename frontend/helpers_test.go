package frontend

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/http2"
)

// waitLimit bounds every wait in these tests. It is a failsafe against a
// hang, never a synchronisation point or a statement about speed.
const waitLimit = 30 * time.Second

// newTestCert returns a self-signed ECDSA P-256 certificate for 127.0.0.1
// and localhost, and a pool that trusts it.
func newTestCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "hoplite frontend test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// testEnv is a started Server and what a client needs to reach it.
type testEnv struct {
	srv  *Server
	pool *x509.CertPool
	port int
}

// testLogger writes to stderr (not t.Log: quic-go and net/http may log
// after the test has returned).
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testConfig fills in what every test server needs: loopback address, a
// fresh certificate, a logger.
func testConfig(t testing.TB, cfg Config) (Config, *x509.CertPool) {
	t.Helper()
	cert, pool := newTestCert(t)
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.TLSConfig == nil {
		cfg.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	return cfg, pool
}

// startServer starts a Server on 127.0.0.1 and shuts it down at cleanup.
func startServer(t *testing.T, cfg Config, h http.Handler) *testEnv {
	t.Helper()
	return startConfigured(t, cfg, h, nil)
}

// startConfigured is startServer with a hook that may adjust the Server
// between New and Start.
func startConfigured(t *testing.T, cfg Config, h http.Handler, adjust func(*Server)) *testEnv {
	t.Helper()
	cfg, pool := testConfig(t, cfg)
	srv, err := New(cfg, h)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if adjust != nil {
		adjust(srv)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown at cleanup: %v", err)
		}
	})
	return &testEnv{srv: srv, pool: pool, port: srv.Addr().(*net.TCPAddr).Port}
}

func (e *testEnv) url(path string) string {
	return "https://127.0.0.1:" + strconv.Itoa(e.port) + path
}

func (e *testEnv) tlsClientConfig(protos ...string) *tls.Config {
	return &tls.Config{RootCAs: e.pool, NextProtos: protos}
}

// Client modes of the protocol matrix.
const (
	modeH1    = "h1"     // net/http Transport, HTTP/1.1 only
	modeH2    = "h2"     // golang.org/x/net/http2.Transport
	modeH2Std = "h2-std" // net/http Transport with ForceAttemptHTTP2
	modeH3    = "h3"     // quic-go http3.Transport
)

var allModes = []string{modeH1, modeH2, modeH2Std, modeH3}

// wantProto is the request and response protocol each mode must produce.
var wantProto = map[string]string{
	modeH1:    "HTTP/1.1",
	modeH2:    "HTTP/2.0",
	modeH2Std: "HTTP/2.0",
	modeH3:    "HTTP/3.0",
}

// client returns an http.Client speaking mode to e; its connections are
// closed at cleanup (registered after the server, so it runs first).
func (e *testEnv) client(t *testing.T, mode string) *http.Client {
	t.Helper()
	var rt http.RoundTripper
	switch mode {
	case modeH1:
		tr := &http.Transport{TLSClientConfig: e.tlsClientConfig()}
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetHTTP1(true)
		t.Cleanup(tr.CloseIdleConnections)
		rt = tr
	case modeH2:
		tr := &http2.Transport{TLSClientConfig: e.tlsClientConfig()}
		t.Cleanup(tr.CloseIdleConnections)
		rt = tr
	case modeH2Std:
		tr := &http.Transport{TLSClientConfig: e.tlsClientConfig(), ForceAttemptHTTP2: true}
		t.Cleanup(tr.CloseIdleConnections)
		rt = tr
	case modeH3:
		tr := &http3.Transport{TLSClientConfig: e.tlsClientConfig()}
		t.Cleanup(func() { _ = tr.Close() })
		rt = tr
	default:
		t.Fatalf("unknown mode %q", mode)
	}
	return &http.Client{
		Transport:     rt,
		Timeout:       waitLimit,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// shortH3Client returns an HTTP/3 client that gives up on a handshake
// quickly, for probing a server that should no longer answer.
func (e *testEnv) shortH3Client(t *testing.T) *http.Client {
	tr := &http3.Transport{
		TLSClientConfig: e.tlsClientConfig(),
		QUICConfig:      &quic.Config{HandshakeIdleTimeout: 300 * time.Millisecond},
	}
	t.Cleanup(func() { _ = tr.Close() })
	return &http.Client{Transport: tr, Timeout: waitLimit}
}

type response struct {
	resp *http.Response
	body string
	err  error
}

// get performs a GET and reads the whole body.
func get(c *http.Client, url string) response {
	resp, err := c.Get(url)
	if err != nil {
		return response{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{resp: resp, body: string(b), err: err}
}

// recv waits for a value on ch, failing the test after waitLimit.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// recordHandler is a slog.Handler that forwards records to a channel
// (dropping them when it is full).
type recordHandler struct{ ch chan slog.Record }

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case h.ch <- r.Clone():
	default:
	}
	return nil
}
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordHandler) WithGroup(string) slog.Handler      { return h }

// tls13Cache returns a client session cache for resumption tests.
func tls13Cache() tls.ClientSessionCache { return tls.NewLRUClientSessionCache(8) }
