package tlsconf

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests run the real Pebble ACME server (RFC 8555) against the
// source: orders, both challenges, storage across a restart, and on-demand
// issuance with its decision policy and rate limit. Pebble's log shows
// every order ("Added order") and account ("POST /sign-me-up"), so the
// tests count what the CA saw, not what hoplite says it did.

// TestACMEPebbleTLSALPN obtains a managed certificate over TLS-ALPN-01
// (RFC 8737) in the background, keeps serving while another managed
// domain's challenge is rejected, serves the certificate to HTTP/3-style
// configs too, and after a restart loads everything from storage without
// a new order or account.
func TestACMEPebbleTLSALPN(t *testing.T) {
	e := newACMEEnv(t)
	pb := startPebble(t, e.plainPort(), e.tlsPort())
	// bad.alpn resolves to 127.0.0.2, where nothing listens: its
	// validation fails.
	pb.setA(t, "bad.alpn.hoplite.test", "127.0.0.2")
	storage := t.TempDir()
	cfg := ACMEConfig{
		Domains:       []string{"alpn.hoplite.test", "bad.alpn.hoplite.test"},
		CA:            pb.dirURL,
		TrustedRoots:  []string{pb.rootFile},
		Storage:       storage,
		DisableHTTP01: true,
	}
	e.start(t, cfg, acmeOptions{}, 5*time.Second)

	waitFor(t, 30*time.Second, "the certificate", func() bool {
		_, err := handshake(e.tlsAddr(), "alpn.hoplite.test", pb.roots, nil)
		return err == nil
	})
	if len(logLines(e.logs, `msg="served key authentication certificate"`, "challenge=tls-alpn-01", "server_name=alpn.hoplite.test")) == 0 {
		t.Error("no TLS-ALPN-01 challenge served")
	}
	waitFor(t, 30*time.Second, "the rejected challenge to be logged", func() bool {
		return len(logLines(e.logs, `msg="acme: obtaining certificate failed"`, "domain=bad.alpn.hoplite.test")) > 0
	})
	if _, err := handshake(e.tlsAddr(), "bad.alpn.hoplite.test", pb.roots, nil); !isAlert(err) {
		t.Errorf("handshake for the failed domain: %v, want an alert", err)
	}
	if _, err := handshake(e.tlsAddr(), "alpn.hoplite.test", pb.roots, nil); err != nil {
		t.Errorf("the good domain after the failure: %v", err)
	}

	// HTTP/3 uses a clone with ALPN "h3" only (http3.ConfigureTLSConfig);
	// the same GetCertificate serves it.
	h3 := e.src.TLSConfig().Clone()
	h3.NextProtos = []string{"h3"}
	h3ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h3srv := serveTLSListener(t, h3ln, h3, 5*time.Second)
	c, err := tls.Dial("tcp", h3srv.addr, &tls.Config{RootCAs: pb.roots, ServerName: "alpn.hoplite.test", NextProtos: []string{"h3"}})
	if err != nil {
		t.Fatalf("h3 config: %v", err)
	}
	if p := c.ConnectionState().NegotiatedProtocol; p != "h3" {
		t.Errorf("h3 config negotiated %q", p)
	}
	c.Close()

	orders, accounts := pb.orders(), strings.Count(pb.out.String(), "POST /sign-me-up")
	if orders < 2 || accounts != 1 {
		t.Errorf("pebble saw %d orders and %d accounts; want 2 or more orders (one per domain, retries), 1 account", orders, accounts)
	}
	e.src.Close()

	// Restart on the same storage: the certificate and the account come
	// from storage; the CA sees nothing new for the good domain.
	r := newACMEEnv(t)
	r.start(t, ACMEConfig{
		Domains:       []string{"alpn.hoplite.test"},
		CA:            pb.dirURL,
		TrustedRoots:  []string{pb.rootFile},
		Storage:       storage,
		DisableHTTP01: true,
	}, acmeOptions{}, 5*time.Second)
	waitFor(t, 10*time.Second, "the stored certificate", func() bool {
		_, err := handshake(r.tlsAddr(), "alpn.hoplite.test", pb.roots, nil)
		return err == nil
	})
	time.Sleep(200 * time.Millisecond)
	if got := pb.orders(); got != orders {
		t.Errorf("restart made %d new orders", got-orders)
	}
	if got := strings.Count(pb.out.String(), "POST /sign-me-up"); got != accounts {
		t.Errorf("restart registered %d new accounts", got-accounts)
	}
	if r.a.orders.Load() != 0 || len(logLines(r.logs, "acme: obtaining certificate")) != 0 {
		t.Errorf("restart obtained certificates:\n%s", r.logs)
	}
}

// TestACMEPebbleHTTP01 obtains a certificate over HTTP-01 (RFC 8555 §8.3)
// through HTTPChallenge on the plain listener; other plain requests pass
// through to the wrapped handler.
func TestACMEPebbleHTTP01(t *testing.T) {
	e := newACMEEnv(t)
	pb := startPebble(t, e.plainPort(), e.tlsPort())
	e.start(t, ACMEConfig{
		Domains:          []string{"http.hoplite.test"},
		CA:               pb.dirURL,
		TrustedRoots:     []string{pb.rootFile},
		Storage:          t.TempDir(),
		DisableTLSALPN01: true,
	}, acmeOptions{}, 5*time.Second)
	waitFor(t, 30*time.Second, "the certificate", func() bool {
		_, err := handshake(e.tlsAddr(), "http.hoplite.test", pb.roots, nil)
		return err == nil
	})
	if len(logLines(e.logs, `msg="served key authentication"`, "challenge=http-01", "identifier=http.hoplite.test")) == 0 {
		t.Error("no HTTP-01 challenge served")
	}
	if n := e.fallbackHits.Load(); n != 0 {
		t.Errorf("%d challenge requests reached the wrapped handler", n)
	}
	if pb.orders() != 1 {
		t.Errorf("pebble saw %d orders, want 1", pb.orders())
	}
	resp, err := http.Get("http://" + e.plainLn.Addr().String() + "/somewhere")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot || e.fallbackHits.Load() != 1 {
		t.Errorf("other request: %s %q", resp.Status, body)
	}
}

// TestACMEPebbleOnDemand: a managed domain in the background next to
// on-demand issuance, where the allow-list or the ask endpoint decides,
// refusals never reach the CA, and the order rate limit holds.
func TestACMEPebbleOnDemand(t *testing.T) {
	var (
		mu    sync.Mutex
		asked []string
	)
	ask := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := r.URL.Query().Get("domain")
		mu.Lock()
		asked = append(asked, d)
		mu.Unlock()
		if d == "yes.ask.hoplite.test" {
			return // 200
		}
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer ask.Close()

	e := newACMEEnv(t)
	pb := startPebble(t, e.plainPort(), e.tlsPort())
	e.start(t, ACMEConfig{
		Domains:       []string{"managed.od.hoplite.test"},
		CA:            pb.dirURL,
		TrustedRoots:  []string{pb.rootFile},
		Storage:       t.TempDir(),
		DisableHTTP01: true,
		OnDemand: &OnDemandConfig{
			Allow:              []string{"*.od.hoplite.test"},
			Ask:                ask.URL + "/check?token=s3cret",
			MaxOrdersPerMinute: 2,
		},
	}, acmeOptions{}, 20*time.Second)

	waitFor(t, 30*time.Second, "the managed certificate", func() bool {
		_, err := handshake(e.tlsAddr(), "managed.od.hoplite.test", pb.roots, nil)
		return err == nil
	})
	if pb.orders() != 1 {
		t.Fatalf("pebble saw %d orders for the managed domain, want 1", pb.orders())
	}

	mustServe := func(name string) {
		t.Helper()
		st, err := handshake(e.tlsAddr(), name, pb.roots, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Equal(st.PeerCertificates[0].DNSNames, []string{name}) {
			t.Errorf("%s: certificate for %v", name, st.PeerCertificates[0].DNSNames)
		}
	}
	mustRefuse := func(name string) {
		t.Helper()
		before := pb.orders()
		if _, err := handshake(e.tlsAddr(), name, pb.roots, nil); !isAlert(err) {
			t.Errorf("%s: %v, want an alert", name, err)
		}
		time.Sleep(100 * time.Millisecond)
		if got := pb.orders(); got != before {
			t.Errorf("%s: refused, yet pebble saw %d new orders", name, got-before)
		}
	}

	mustServe("a.od.hoplite.test") // allow-list: ordered during the handshake
	if pb.orders() != 2 {
		t.Errorf("pebble saw %d orders, want 2", pb.orders())
	}
	mustServe("a.od.hoplite.test") // from memory: no order
	mustRefuse("x.y.od.hoplite.test")
	mustRefuse("other.hoplite.test")
	mustServe("yes.ask.hoplite.test") // the ask endpoint said 200
	if pb.orders() != 3 {
		t.Errorf("pebble saw %d orders, want 3", pb.orders())
	}
	mustRefuse("c.od.hoplite.test") // allowed, but the two tokens are spent
	if len(logLines(e.logs, `msg="acme: on-demand order refused: rate limit"`, "domain=c.od.hoplite.test")) != 1 {
		t.Error("rate limit not logged")
	}

	mu.Lock()
	defer mu.Unlock()
	// Allow-list matches never reach the ask endpoint; the others do.
	if want := []string{"x.y.od.hoplite.test", "other.hoplite.test", "yes.ask.hoplite.test"}; !slices.Equal(asked, want) {
		t.Errorf("asked about %q, want %q", asked, want)
	}
}
