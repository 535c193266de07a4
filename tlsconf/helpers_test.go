package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// testServer is a real TLS listener on 127.0.0.1 that completes handshakes
// and records the server-side handshake errors.
type testServer struct {
	addr string
	errs chan error
}

func serveTLS(t *testing.T, cfg *tls.Config) *testServer {
	t.Helper()
	return serveTLSOn(t, "127.0.0.1:0", cfg)
}

func serveTLSOn(t *testing.T, laddr string, cfg *tls.Config) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", laddr)
	if err != nil {
		t.Fatalf("listen %s: %v", laddr, err)
	}
	return serveTLSListener(t, ln, cfg, 10*time.Second)
}

// serveTLSListener completes TLS handshakes on ln, each within timeout:
// the handshake context ends then, which also ends a GetCertificate that
// honours it (certmagic's on-demand obtain does).
func serveTLSListener(t *testing.T, ln net.Listener, cfg *tls.Config, timeout time.Duration) *testServer {
	t.Helper()
	s := &testServer{addr: ln.Addr().String(), errs: make(chan error, 128)}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(timeout))
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				if err := tls.Server(c, cfg).HandshakeContext(ctx); err != nil {
					select {
					case s.errs <- err:
					default:
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return s
}

// serverErr returns the next server-side handshake error.
func (s *testServer) serverErr(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.errs:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("no server-side handshake error recorded")
		return nil
	}
}

// handshake dials addr and completes a TLS handshake as a verifying client
// trusting only roots. serverName "" sends no SNI when addr is an IP, and
// verifies the certificate against that IP, as browsers and curl do.
// now, if set, is the client's verification clock.
func handshake(addr, serverName string, roots *x509.CertPool, now func() time.Time) (tls.ConnectionState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := &tls.Dialer{Config: &tls.Config{RootCAs: roots, ServerName: serverName, Time: now}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState(), nil
}

// fakeClock is a settable clock safe for use from handshake goroutines.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// isAlert reports whether err is a TLS alert from the peer, i.e. the server
// refused the handshake (as opposed to a dial or timeout failure).
func isAlert(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error"
}
