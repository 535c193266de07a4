package tlsconf

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newTestIssuer(t *testing.T, names ...string) *issuer {
	t.Helper()
	is, err := newIssuer(Config{DataDir: t.TempDir(), Names: names})
	if err != nil {
		t.Fatal(err)
	}
	return is
}

func ipStrings(ips []net.IP) []string {
	var s []string
	for _, ip := range ips {
		s = append(s, ip.String())
	}
	return s
}

// checkLeaf checks the properties every internal leaf must have.
func checkLeaf(t *testing.T, leaf *x509.Certificate, root *x509.Certificate, now time.Time) {
	t.Helper()
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("ExtKeyUsage = %v, want [ServerAuth]", leaf.ExtKeyUsage)
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("KeyUsage = %v, want DigitalSignature only", leaf.KeyUsage)
	}
	if leaf.IsCA || !leaf.BasicConstraintsValid {
		t.Errorf("leaf basic constraints: IsCA=%v valid=%v", leaf.IsCA, leaf.BasicConstraintsValid)
	}
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("leaf key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if b := leaf.SerialNumber.BitLen(); leaf.SerialNumber.Sign() <= 0 || b > 128 || b < 100 {
		t.Errorf("leaf serial %v (%d bits), want positive random 128-bit", leaf.SerialNumber, b)
	}
	if skew := now.Sub(leaf.NotBefore); skew < time.Minute || skew > 10*time.Minute {
		t.Errorf("NotBefore is %v before issuance, want a few minutes", skew)
	}
	if life := leaf.NotAfter.Sub(now); life < leafLifetime-time.Minute || life > leafLifetime+time.Minute {
		t.Errorf("leaf valid %v from issuance, want 7 days", life)
	}
	if err := leaf.CheckSignatureFrom(root); err != nil {
		t.Errorf("leaf not signed by root: %v", err)
	}
}

func TestInternalHandshake(t *testing.T) {
	is := newTestIssuer(t, "proxy.example.test", "*.apps.example.test")
	srv := serveTLS(t, is.tlsConfig())
	roots := is.ca.RootPool()

	tests := []struct {
		name       string
		serverName string // "" sends no SNI and verifies 127.0.0.1
		wantDNS    []string
		wantIPs    []string
		wantErr    string // server-side error; "" means success
	}{
		{name: "localhost", serverName: "localhost", wantDNS: []string{"localhost"}, wantIPs: []string{"127.0.0.1", "::1"}},
		{name: "subdomain of localhost", serverName: "app.localhost", wantDNS: []string{"app.localhost"}},
		{name: "internal", serverName: "db.internal", wantDNS: []string{"db.internal"}},
		{name: "home.arpa", serverName: "nas.home.arpa", wantDNS: []string{"nas.home.arpa"}},
		{name: "no SNI uses the local IP", serverName: "", wantIPs: []string{"127.0.0.1"}},
		{name: "configured name", serverName: "proxy.example.test", wantDNS: []string{"proxy.example.test"}},
		{name: "configured wildcard", serverName: "a.apps.example.test", wantDNS: []string{"a.apps.example.test"}},
		{name: "public name refused", serverName: "example.com",
			wantErr: `tlsconf: internal CA will not issue for "example.com" (not a local name; add it to tls.names)`},
		{name: "wildcard covers one label only", serverName: "b.a.apps.example.test",
			wantErr: `tlsconf: internal CA will not issue for "b.a.apps.example.test" (not a local name; add it to tls.names)`},
		{name: "lookalike of localhost refused", serverName: "localhost.example.com",
			wantErr: `tlsconf: internal CA will not issue for "localhost.example.com" (not a local name; add it to tls.names)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now()
			st, err := handshake(srv.addr, tt.serverName, roots, nil)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("handshake succeeded with %v, want refusal", st.PeerCertificates[0].DNSNames)
				}
				// An alert means the server refused; a client-side x509
				// error would mean it issued something.
				if !isAlert(err) {
					t.Fatalf("client error %v is not a server alert", err)
				}
				if got := srv.serverErr(t); got.Error() != tt.wantErr {
					t.Errorf("server error:\n got %q\nwant %q", got, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if len(st.PeerCertificates) != 1 {
				t.Errorf("server sent %d certificates, want the leaf only", len(st.PeerCertificates))
			}
			leaf := st.PeerCertificates[0]
			if !slices.Equal(leaf.DNSNames, tt.wantDNS) {
				t.Errorf("DNS SANs = %v, want %v", leaf.DNSNames, tt.wantDNS)
			}
			if got := ipStrings(leaf.IPAddresses); !slices.Equal(got, tt.wantIPs) {
				t.Errorf("IP SANs = %v, want %v", got, tt.wantIPs)
			}
			checkLeaf(t, leaf, is.ca.cert, before)
		})
	}
}

// TestInternalNoSNILocalAddr proves the no-SNI leaf follows the address the
// client dialed, not a fixed fallback, over real sockets.
func TestInternalNoSNILocalAddr(t *testing.T) {
	tests := []struct {
		name  string
		laddr string
		want  string
	}{
		{"IPv6 loopback", "[::1]:0", "::1"},
		{"other IPv4 loopback", "127.0.0.2:0", "127.0.0.2"}, // Linux routes all of 127/8
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ln, err := net.Listen("tcp", tt.laddr); err != nil {
				t.Skipf("cannot listen on %s here: %v", tt.laddr, err)
			} else {
				ln.Close()
			}
			is := newTestIssuer(t)
			srv := serveTLSOn(t, tt.laddr, is.tlsConfig())
			st, err := handshake(srv.addr, "", is.ca.RootPool(), nil)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			leaf := st.PeerCertificates[0]
			if got := ipStrings(leaf.IPAddresses); !slices.Equal(got, []string{tt.want}) || len(leaf.DNSNames) != 0 {
				t.Errorf("leaf SANs DNS=%v IP=%v, want IP %s only", leaf.DNSNames, got, tt.want)
			}
		})
	}
}

// addrConn is a net.Conn reporting an arbitrary local address, as QUIC
// stacks hand crypto/tls their own connection types.
type addrConn struct {
	net.Conn
	local net.Addr
}

func (c addrConn) LocalAddr() net.Addr { return c.local }

type strAddr string

func (a strAddr) Network() string { return "quic" }
func (a strAddr) String() string  { return string(a) }

func TestGetCertificateNameSelection(t *testing.T) {
	is := newTestIssuer(t, "198.51.100.7")

	udpLn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer udpLn.Close()
	udp, err := net.DialUDP("udp", nil, udpLn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	pipe, pipe2 := net.Pipe()
	defer pipe.Close()
	defer pipe2.Close()

	localhostIPs := []string{"127.0.0.1", "::1"}
	tests := []struct {
		name    string
		hello   *tls.ClientHelloInfo
		wantDNS []string
		wantIPs []string
	}{
		{"nil conn", &tls.ClientHelloInfo{}, []string{"localhost"}, localhostIPs},
		{"pipe conn (address is not an IP)", &tls.ClientHelloInfo{Conn: pipe}, []string{"localhost"}, localhostIPs},
		{"nil local address", &tls.ClientHelloInfo{Conn: addrConn{pipe, nil}}, []string{"localhost"}, localhostIPs},
		{"typed nil TCPAddr", &tls.ClientHelloInfo{Conn: addrConn{pipe, (*net.TCPAddr)(nil)}}, []string{"localhost"}, localhostIPs},
		{"real UDP conn", &tls.ClientHelloInfo{Conn: udp}, nil, []string{"127.0.0.1"}},
		{"QUIC-style address", &tls.ClientHelloInfo{Conn: addrConn{pipe, strAddr("10.1.2.3:443")}}, nil, []string{"10.1.2.3"}},
		{"address with IPv6 zone", &tls.ClientHelloInfo{Conn: addrConn{pipe, strAddr("[fe80::1%eth0]:443")}}, nil, []string{"fe80::1"}},
		{"IPv4-mapped IPv6", &tls.ClientHelloInfo{Conn: addrConn{pipe, &net.TCPAddr{IP: net.ParseIP("::ffff:192.168.1.5"), Port: 443}}}, nil, []string{"192.168.1.5"}},
		{"public address falls back to localhost", &tls.ClientHelloInfo{Conn: addrConn{pipe, &net.TCPAddr{IP: net.ParseIP("203.0.113.5"), Port: 443}}}, []string{"localhost"}, localhostIPs},
		{"public address listed in names", &tls.ClientHelloInfo{Conn: addrConn{pipe, &net.UDPAddr{IP: net.ParseIP("198.51.100.7"), Port: 443}}}, nil, []string{"198.51.100.7"}},
		{"IP literal in SNI", &tls.ClientHelloInfo{ServerName: "10.0.0.5"}, nil, []string{"10.0.0.5"}},
		{"SNI wins over local address", &tls.ClientHelloInfo{ServerName: "x.localhost", Conn: udp}, []string{"x.localhost"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, err := is.getCertificate(tt.hello)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cert.Leaf.DNSNames, tt.wantDNS) {
				t.Errorf("DNS SANs = %v, want %v", cert.Leaf.DNSNames, tt.wantDNS)
			}
			if got := ipStrings(cert.Leaf.IPAddresses); !slices.Equal(got, tt.wantIPs) {
				t.Errorf("IP SANs = %v, want %v", got, tt.wantIPs)
			}
		})
	}
}

func TestConcurrentHandshakesIssueOnce(t *testing.T) {
	const n = 50
	is := newTestIssuer(t)
	// Hold the first issuance until all n handshakes are inside
	// GetCertificate, so they all really overlap it.
	var arrived atomic.Int32
	all := make(chan struct{})
	cfg := is.tlsConfig()
	get := cfg.GetCertificate
	cfg.GetCertificate = func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if arrived.Add(1) == n {
			close(all)
		}
		return get(h)
	}
	is.beforeIssue = func() {
		select {
		case <-all:
		case <-time.After(10 * time.Second):
			t.Error("handshakes did not all reach GetCertificate")
		}
	}
	srv := serveTLS(t, cfg)
	roots := is.ca.RootPool()

	errs := make(chan error, n)
	serials := make(chan string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			st, err := handshake(srv.addr, "burst.localhost", roots, nil)
			if err != nil {
				errs <- err
				return
			}
			serials <- st.PeerCertificates[0].SerialNumber.String()
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	close(serials)
	for err := range errs {
		t.Errorf("handshake: %v", err)
	}
	seen := map[string]bool{}
	for s := range serials {
		seen[s] = true
	}
	if got := is.issued.Load(); got != 1 {
		t.Errorf("issued %d leaves for one name, want 1", got)
	}
	if len(seen) != 1 {
		t.Errorf("clients saw %d different leaves, want 1", len(seen))
	}
}

func TestLeafRenewal(t *testing.T) {
	is := newTestIssuer(t)
	t0 := time.Now()
	clock := &fakeClock{t: t0}
	is.now = clock.Now
	srv := serveTLS(t, is.tlsConfig())
	roots := is.ca.RootPool()

	serial := func() string {
		t.Helper()
		// The client verifies at the same fake time, so every leaf must
		// be valid then.
		st, err := handshake(srv.addr, "renew.localhost", roots, clock.Now)
		if err != nil {
			t.Fatalf("handshake at %v: %v", clock.Now().Sub(t0), err)
		}
		return st.PeerCertificates[0].SerialNumber.String()
	}

	steps := []struct {
		name       string
		at         time.Duration // since t0
		wantIssued int64
		wantNew    bool
	}{
		{"first handshake issues", 0, 1, true},
		{"fresh leaf is reused", time.Hour, 1, false},
		{"just before 2/3 of life", 4*24*time.Hour + 15*time.Hour, 1, false}, // 2/3 of 7d5m is about 4d16h
		{"past 2/3 of life re-issues", 4*24*time.Hour + 17*time.Hour, 2, true},
		{"renewed leaf is reused", 5 * 24 * time.Hour, 2, false},
		{"long after expiry re-issues", 30 * 24 * time.Hour, 3, true},
	}
	var last string
	for _, s := range steps {
		clock.Set(t0.Add(s.at))
		got := serial()
		if n := is.issued.Load(); n != s.wantIssued {
			t.Errorf("%s: issued = %d, want %d", s.name, n, s.wantIssued)
		}
		if isNew := got != last; isNew != s.wantNew {
			t.Errorf("%s: new leaf = %v, want %v", s.name, isNew, s.wantNew)
		}
		last = got
	}
}

// While one handshake renews a leaf, others keep the old (still valid) one
// instead of waiting; with no old leaf they wait, bounded by the handshake's
// context.
func TestInflightIssuance(t *testing.T) {
	is := newTestIssuer(t)
	t0 := time.Now()
	clock := &fakeClock{t: t0}
	is.now = clock.Now
	old, err := is.leafFor(context.Background(), "slow.localhost")
	if err != nil {
		t.Fatal(err)
	}
	block := &issueCall{done: make(chan struct{})}
	is.mu.Lock()
	is.inflight["slow.localhost"] = block
	is.inflight["new.localhost"] = block
	is.mu.Unlock()

	clock.Set(t0.Add(5 * 24 * time.Hour)) // due for renewal, still valid
	got, err := is.leafFor(context.Background(), "slow.localhost")
	if err != nil || got != old {
		t.Errorf("during renewal got a different leaf (err %v), want the old one", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := is.leafFor(ctx, "new.localhost"); err == nil {
		t.Error("waiter with an expired context got a certificate")
	}
	if n := is.issued.Load(); n != 1 {
		t.Errorf("issued = %d, want 1", n)
	}
}

func TestLeafBoundedByRoot(t *testing.T) {
	is := newTestIssuer(t)
	rootEnd := is.ca.cert.NotAfter

	is.now = func() time.Time { return rootEnd.Add(-24 * time.Hour) }
	cert, err := is.leafFor(context.Background(), "late.localhost")
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Leaf.NotAfter.Equal(rootEnd) {
		t.Errorf("leaf NotAfter %v, want capped at root's %v", cert.Leaf.NotAfter, rootEnd)
	}

	is.now = func() time.Time { return rootEnd.Add(time.Hour) }
	if _, err := is.leafFor(context.Background(), "later.localhost"); err == nil {
		t.Error("issued a leaf from an expired root")
	}
}

func TestLeafCacheBounded(t *testing.T) {
	is := newTestIssuer(t)
	is.maxCached = 4
	for i := range 20 {
		if _, err := is.leafFor(context.Background(), fmt.Sprintf("n%d.localhost", i)); err != nil {
			t.Fatal(err)
		}
	}
	is.mu.Lock()
	n := len(is.leaves)
	is.mu.Unlock()
	if n > 4 {
		t.Errorf("cache holds %d leaves, cap is 4", n)
	}
	// The most recent one is cached.
	before := is.issued.Load()
	if _, err := is.leafFor(context.Background(), "n19.localhost"); err != nil {
		t.Fatal(err)
	}
	if is.issued.Load() != before {
		t.Error("most recently issued leaf was evicted")
	}
}
