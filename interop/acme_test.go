package interop

// ACME end to end: hoplite obtains certificates from Pebble, Let's
// Encrypt's test CA, and serves them over HTTP/1.1, HTTP/2 and HTTP/3.
//
// Pebble validates challenges against hoplite's own ports (its httpPort and
// tlsPort are hoplite's plain and TLS ports, and pebble-challtestsrv
// answers every DNS name with 127.0.0.1), so a certificate that verifies
// against Pebble's root proves the challenge went through hoplite's real
// listeners. Every test runs its own Pebble, because those ports differ per
// test, and the tests run in parallel.
//
// What Pebble 2.4.0 (the Debian package) offers, read from the binary and
// its output:
//   - config keys (a struct without JSON tags, so matched by Go's
//     case-insensitive field names): listenAddress, managementListenAddress,
//     httpPort, tlsPort, certificate, privateKey, ocspResponderURL,
//     externalAccountBindingRequired, externalAccountMACKeys,
//     domainBlocklist and certificateValidityPeriod (seconds; it logs
//     "Using certificate validity period of N seconds"). The README does
//     not document the last one, but the binary has it, and the renewal
//     test relies on it.
//   - environment: PEBBLE_VA_NOSLEEP, PEBBLE_VA_SLEEPTIME,
//     PEBBLE_VA_ALWAYS_VALID, PEBBLE_WFE_NONCEREJECT, PEBBLE_AUTHZREUSE,
//     PEBBLE_ALTERNATE_ROOTS, PEBBLE_CHAIN_LENGTH,
//     PEBBLE_WFE_ORDERS_PER_PAGE. The tests set PEBBLE_AUTHZREUSE=0 so that
//     every order (a renewal too) is validated again through hoplite.
//   - log lines: `Added order "ID" to the db` once per new-order, and
//     `Issued certificate serial HEX for order ID` once per issuance; the
//     tests count the first and match served serials against the second.
//     The VA logs `Attempting to validate w/ HTTP: URL` for HTTP-01 (three
//     times: "Starting 3 validations") but names no method for
//     TLS-ALPN-01; every validation task is logged with its identifier
//     (`Pulled a task ... Value:"a.test"`), so a name absent from the log
//     was never validated.
//   - certificateValidityPeriod N gives NotAfter = NotBefore + N - 1s,
//     with NotBefore the issuance time (no backdating).
//   - no ACME Renewal Information (no renewalInfo in the directory), so a
//     client renews by the certificate's lifetime alone.
//   - pebble-challtestsrv 2.4.0 has no -doh flag (it has -defaultIPv4,
//     -defaultIPv6, -dns01, -http01, -https01, -management, -tlsalpn01).

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/http2"
)

// Bounds for the waits below. None of them is an assertion on speed: each
// is the point at which waiting longer would only hide a hang.
const (
	acmeIssueWait   = 60 * time.Second // a first certificate, on a race-enabled binary
	acmeStartWait   = 30 * time.Second // a process starts listening
	acmeStopWait    = 40 * time.Second // hoplite drains (its own grace is 30s)
	acmeOrderSettle = 2 * time.Second  // watching for an order that must not come
	// A handshake, an on-demand issuance included: three times hoplite's
	// default read_header_timeout (10s), past which a client is held
	// longer than hoplite's own timeouts would let it be.
	acmeHandshakeWait = 30 * time.Second
)

// pebbleServer is a running Pebble with its DNS (pebble-challtestsrv).
type pebbleServer struct {
	proc, dns *proc
	dirURL    string            // the ACME directory, https://127.0.0.1:P/dir
	httpsCA   string            // PEM file: the root of Pebble's own HTTPS certificate
	root      *x509.Certificate // Pebble's issuing root
	roots     *x509.CertPool    // just root
}

// pebbleOptions are the parts of Pebble's config a test chooses.
type pebbleOptions struct {
	httpPort, tlsPort int           // where the VA connects for HTTP-01 and TLS-ALPN-01
	validity          time.Duration // certificateValidityPeriod; 0: Pebble's default
}

// startPebble runs pebble-challtestsrv (every A query answered with
// 127.0.0.1, no AAAA, no challenge servers of its own) and Pebble with a
// freshly made HTTPS certificate, and fetches Pebble's issuing root.
func startPebble(t *testing.T, o pebbleOptions) *pebbleServer {
	t.Helper()
	pebbleBin := needTool(t, "pebble")
	challBin := needTool(t, "pebble-challtestsrv")
	dir := t.TempDir()
	https, err := NewPKI(dir) // a CA and a leaf for localhost, 127.0.0.1 and ::1
	if err != nil {
		t.Fatalf("making Pebble's HTTPS certificate: %v", err)
	}
	ps := &pebbleServer{httpsCA: https.CAFile}

	// Ports can be taken between FreePort and the bind; retry a few times.
	var dnsAddr string
	for attempt := 1; ; attempt++ {
		dnsAddr = freeAddr(t) // TCP and UDP
		mgmt := freeAddr(t)
		p := startProc(t, fmt.Sprintf("challtestsrv-%d", attempt), nil, challBin,
			"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
			"-http01", "", "-https01", "", "-tlsalpn01", "",
			"-management", mgmt, "-dns01", dnsAddr)
		err := waitListening(p, acmeStartWait, mgmt, dnsAddr)
		if err == nil {
			ps.dns = p
			break
		}
		if attempt < 3 && strings.Contains(p.log(16<<10), "address already in use") {
			p.stop(5 * time.Second)
			continue
		}
		t.Fatalf("pebble-challtestsrv: %v\n%s", err, p.log(16<<10))
	}

	for attempt := 1; ; attempt++ {
		listen, mgmt := freeAddr(t), freeAddr(t)
		cfg := map[string]any{
			"listenAddress":                  listen,
			"managementListenAddress":        mgmt,
			"certificate":                    https.CertFile,
			"privateKey":                     https.KeyFile,
			"httpPort":                       o.httpPort,
			"tlsPort":                        o.tlsPort,
			"ocspResponderURL":               "",
			"externalAccountBindingRequired": false,
		}
		if o.validity > 0 {
			cfg["certificateValidityPeriod"] = int64(o.validity / time.Second)
		}
		cfgPath := filepath.Join(dir, fmt.Sprintf("pebble-%d.json", attempt))
		data, err := json.MarshalIndent(map[string]any{"pebble": cfg}, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfgPath, data, 0o644); err != nil {
			t.Fatal(err)
		}
		p := startProc(t, fmt.Sprintf("pebble-%d", attempt),
			[]string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"},
			pebbleBin, "-config", cfgPath, "-dnsserver", dnsAddr)
		err = waitListening(p, acmeStartWait, listen, mgmt)
		if err != nil {
			if attempt < 3 && strings.Contains(p.log(16<<10), "address already in use") {
				p.stop(5 * time.Second)
				continue
			}
			t.Fatalf("pebble: %v\nconfig:\n%s", err, data)
		}
		ps.proc = p
		ps.dirURL = "https://" + listen + "/dir"
		if o.validity > 0 {
			want := fmt.Sprintf("Using certificate validity period of %d seconds", int64(o.validity/time.Second))
			if !strings.Contains(p.log(64<<10), want) {
				t.Fatalf("pebble did not log %q: certificateValidityPeriod was not taken\n%s", want, p.log(64<<10))
			}
		}
		ps.root = fetchPebbleRoot(t, mgmt, https.Pool())
		ps.roots = x509.NewCertPool()
		ps.roots.AddCert(ps.root)
		return ps
	}
}

// fetchPebbleRoot reads Pebble's issuing root from its management
// interface, trusting only Pebble's HTTPS certificate's CA.
func fetchPebbleRoot(t *testing.T, mgmt string, httpsRoots *x509.CertPool) *x509.Certificate {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: httpsRoots}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get("https://" + mgmt + "/roots/0")
	if err != nil {
		t.Fatalf("fetching Pebble's root: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("fetching Pebble's root: status %d, %v\n%s", resp.StatusCode, err, body)
	}
	block, _ := pem.Decode(body)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("Pebble's /roots/0 is not a PEM certificate:\n%s", body)
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parsing Pebble's root: %v", err)
	}
	return root
}

// orders is the number of new-order requests Pebble accepted so far.
func (ps *pebbleServer) orders() int {
	return strings.Count(ps.proc.log(64<<20), "Added order ")
}

var pebbleIssuedRE = regexp.MustCompile(`Issued certificate serial ([0-9a-fA-F]+) for order`)

// issued returns the serials (lower-case hex) of every certificate Pebble
// issued so far, in order.
func (ps *pebbleServer) issued() []string {
	var out []string
	for _, m := range pebbleIssuedRE.FindAllStringSubmatch(ps.proc.log(64<<20), -1) {
		out = append(out, strings.ToLower(strings.TrimLeft(m[1], "0")))
	}
	return out
}

// checkIssued fails the test unless Pebble's log shows it issued leaf.
func (ps *pebbleServer) checkIssued(t *testing.T, leaf *x509.Certificate) {
	t.Helper()
	want := serialHex(leaf.SerialNumber)
	got := ps.issued()
	for _, s := range got {
		if s == want {
			return
		}
	}
	t.Errorf("Pebble's log has no issuance of serial %s (issued: %q)", want, got)
}

func serialHex(n *big.Int) string { return n.Text(16) }

// waitListening waits until every addr accepts a TCP connection, p exits,
// or d passes.
func waitListening(p *proc, d time.Duration, addrs ...string) error {
	deadline := time.Now().Add(d)
	for _, addr := range addrs {
		for {
			if p.exited() {
				return fmt.Errorf("%s exited before listening on %s: %v", p.name, addr, p.err)
			}
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: nothing listening on %s after %v: %v", p.name, addr, d, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// acmeConfig is a hoplite config with tls.acme, in the schema of
// cmd/hoplite's ACMEConfig; storage is left to its default (DATA/acme), and
// on_demand and renew_check_interval are written only when set.
type acmeConfig struct {
	Listen, PlainListen string
	DataDir             string
	Domains             []string
	CA                  string
	TrustedRoots        []string
	HTTP01, TLSALPN01   bool
	OnDemandAllow       []string // nil: no on_demand section
	RenewCheckInterval  time.Duration
	Origin              string // host:port of the echo origin
}

func (c acmeConfig) YAML() string {
	var b strings.Builder
	q := strconv.Quote
	list := func(xs []string) string {
		qs := make([]string, len(xs))
		for i, x := range xs {
			qs[i] = q(x)
		}
		return "[" + strings.Join(qs, ", ") + "]"
	}
	fmt.Fprintf(&b, "listen: %s\n", q(c.Listen))
	b.WriteString("http3: true\n")
	if c.PlainListen != "" {
		fmt.Fprintf(&b, "plain_listen: %s\n", q(c.PlainListen))
	}
	fmt.Fprintf(&b, "data_dir: %s\n", q(c.DataDir))
	b.WriteString("tls:\n  acme:\n")
	fmt.Fprintf(&b, "    domains: %s\n", list(c.Domains))
	fmt.Fprintf(&b, "    ca: %s\n", q(c.CA))
	fmt.Fprintf(&b, "    email: %s\n", q("t@a.test"))
	fmt.Fprintf(&b, "    trusted_roots: %s\n", list(c.TrustedRoots))
	fmt.Fprintf(&b, "    challenges: {http_01: %t, tls_alpn_01: %t}\n", c.HTTP01, c.TLSALPN01)
	if c.OnDemandAllow != nil {
		fmt.Fprintf(&b, "    on_demand: {allow: %s, ask: \"\", max_orders_per_minute: 10}\n", list(c.OnDemandAllow))
	}
	if c.RenewCheckInterval > 0 {
		fmt.Fprintf(&b, "    renew_check_interval: %s\n", c.RenewCheckInterval)
	}
	b.WriteString("routes: [{path: /, backend: app}]\n")
	fmt.Fprintf(&b, "backends: {app: {servers: [%s]}}\n", q("http://"+c.Origin))
	return b.String()
}

// acmeEnv is hoplite with ACME, its origin and (unless the CA is meant to
// be unreachable) its Pebble.
type acmeEnv struct {
	cfg        acmeConfig
	configPath string
	port       int           // hoplite's TLS/QUIC port
	addr       string        // 127.0.0.1:port
	pebble     *pebbleServer // nil with an unreachable CA
	hop        *proc         // the running hoplite
	starts     int
}

type acmeOptions struct {
	domains     []string
	http01      bool
	tlsALPN01   bool
	plain       bool // a plain_listen; Pebble's httpPort points to a closed port without it
	onDemand    []string
	validity    time.Duration // Pebble's certificateValidityPeriod
	renewCheck  time.Duration
	unreachable bool // ca is a closed port; no Pebble
}

// newACMEEnv picks hoplite's ports, starts Pebble pointed at them, writes
// the config, has `hoplite validate` accept it and starts hoplite.
func newACMEEnv(t *testing.T, o acmeOptions) *acmeEnv {
	t.Helper()
	bin := binary(t)
	origin := startEchoOrigin(t)
	dataDir := t.TempDir()
	cfgDir := t.TempDir()
	for attempt := 1; ; attempt++ {
		e := &acmeEnv{configPath: filepath.Join(cfgDir, fmt.Sprintf("hoplite-%d.yaml", attempt))}
		e.port = freePort(t)
		e.addr = "127.0.0.1:" + strconv.Itoa(e.port)
		plainPort := freePort(t) // without a plain listener: a port nobody serves
		cfg := acmeConfig{
			Listen:             e.addr,
			DataDir:            dataDir,
			Domains:            o.domains,
			HTTP01:             o.http01,
			TLSALPN01:          o.tlsALPN01,
			OnDemandAllow:      o.onDemand,
			RenewCheckInterval: o.renewCheck,
			Origin:             origin,
		}
		if o.plain {
			cfg.PlainListen = "127.0.0.1:" + strconv.Itoa(plainPort)
		}
		if o.unreachable {
			cfg.CA = "https://" + freeAddr(t) + "/dir"
			pki, err := NewPKI(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			cfg.TrustedRoots = []string{pki.CAFile}
		} else {
			e.pebble = startPebble(t, pebbleOptions{httpPort: plainPort, tlsPort: e.port, validity: o.validity})
			cfg.CA = e.pebble.dirURL
			cfg.TrustedRoots = []string{e.pebble.httpsCA}
		}
		e.cfg = cfg
		if err := os.WriteFile(e.configPath, []byte(cfg.YAML()), 0o644); err != nil {
			t.Fatal(err)
		}
		if r := execTool(t, 30*time.Second, "", bin, "validate", "--config", e.configPath); r.code != 0 {
			t.Fatalf("hoplite validate rejected the ACME config (is tls.acme implemented?): %v\nconfig %s:\n%s", r, e.configPath, cfg.YAML())
		}
		err := e.start(t)
		if err == nil {
			return e
		}
		if attempt < 3 && e.hop.exited() && strings.Contains(e.hop.log(64<<10), "address already in use") {
			t.Logf("a port of hoplite was taken; retrying with new ports")
			e.hop.stop(5 * time.Second)
			if e.pebble != nil {
				e.pebble.proc.stop(5 * time.Second)
				e.pebble.dns.stop(5 * time.Second)
			}
			continue
		}
		t.Fatalf("hoplite did not start: %v\nconfig %s:\n%s", err, e.configPath, cfg.YAML())
	}
}

// start runs hoplite on the config and waits for its TCP listeners. It
// does not wait for a certificate: that is what the tests are about.
func (e *acmeEnv) start(t *testing.T) error {
	t.Helper()
	e.starts++
	e.hop = startProc(t, fmt.Sprintf("hoplite-acme-%d", e.starts), raceEnv(), binary(t),
		"run", "--config", e.configPath)
	addrs := []string{e.addr}
	if e.cfg.PlainListen != "" {
		addrs = append(addrs, e.cfg.PlainListen)
	}
	return waitListening(e.hop, acmeStartWait, addrs...)
}

// stop sends SIGTERM and waits for a clean exit.
func (e *acmeEnv) stop(t *testing.T) {
	t.Helper()
	if err := e.hop.signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to hoplite: %v", err)
	}
	err, ok := e.hop.wait(acmeStopWait)
	if !ok {
		t.Fatalf("hoplite did not exit within %v of SIGTERM", acmeStopWait)
	}
	if err != nil {
		t.Errorf("hoplite exited with %v after SIGTERM, want status 0", err)
	}
}

// handshake does a TLS handshake with hoplite for serverName, verifying
// against roots, and returns the leaf it served.
func (e *acmeEnv) handshake(serverName string, roots *x509.CertPool) (*x509.Certificate, error) {
	raw, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	// The bound covers an on-demand issuance inside the handshake.
	ctx, cancel := context.WithTimeout(context.Background(), acmeHandshakeWait)
	defer cancel()
	c := tls.Client(raw, &tls.Config{RootCAs: roots, ServerName: serverName})
	if err := c.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	return c.ConnectionState().PeerCertificates[0], nil
}

// waitCert polls handshakes for name until one verifies against Pebble's
// root (and accept, if not nil, takes the leaf), within d.
func (e *acmeEnv) waitCert(t *testing.T, name string, d time.Duration, accept func(*x509.Certificate) bool) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(d)
	var last error
	for {
		if e.hop.exited() {
			t.Fatalf("hoplite exited while waiting for a certificate for %s: %v", name, e.hop.err)
		}
		leaf, err := e.handshake(name, e.pebble.roots)
		switch {
		case err != nil:
			last = err
		case accept == nil || accept(leaf):
			return leaf
		default:
			last = fmt.Errorf("served serial %s, not yet the one awaited", serialHex(leaf.SerialNumber))
		}
		if time.Now().After(deadline) {
			t.Fatalf("no acceptable certificate for %s verified against Pebble's root within %v; last: %v", name, d, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// acmeClient is an http.Client speaking only m's protocol, dialing hoplite
// at 127.0.0.1 whatever the URL's host, trusting roots for serverName.
func (e *acmeEnv) client(t *testing.T, m mode, serverName string, roots *x509.CertPool) *http.Client {
	t.Helper()
	tlsConf := &tls.Config{RootCAs: roots, ServerName: serverName}
	var rt http.RoundTripper
	switch m {
	case modeH1:
		conf := tlsConf.Clone()
		conf.NextProtos = []string{"http/1.1"}
		dialer := &net.Dialer{Timeout: 5 * time.Second}
		tr := &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, e.addr)
			},
			TLSClientConfig:    conf,
			DisableCompression: true,
			TLSNextProto:       map[string]func(string, *tls.Conn) http.RoundTripper{},
		}
		t.Cleanup(tr.CloseIdleConnections)
		rt = tr
	case modeH2:
		tr := &http2.Transport{
			TLSClientConfig: tlsConf,
			DialTLSContext: func(ctx context.Context, network, _ string, cfg *tls.Config) (net.Conn, error) {
				d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
				return d.DialContext(ctx, network, e.addr)
			},
			DisableCompression: true,
		}
		t.Cleanup(tr.CloseIdleConnections)
		rt = tr
	case modeH3:
		tr := &http3.Transport{
			TLSClientConfig: tlsConf,
			Dial: func(ctx context.Context, _ string, tlsCfg *tls.Config, cfg *quic.Config) (*quic.Conn, error) {
				return quic.DialAddr(ctx, e.addr, tlsCfg, cfg)
			},
			DisableCompression: true,
			QUICConfig:         &quic.Config{HandshakeIdleTimeout: 5 * time.Second},
		}
		t.Cleanup(func() { tr.Close() })
		rt = tr
	}
	return &http.Client{Transport: rt, Timeout: 20 * time.Second}
}

// checkServes GETs a path through hoplite for serverName over h1, h2 and
// h3, verifying against Pebble's root, and checks the request reached the
// origin and the leaf has the serial wantSerial (if not nil) and not the
// serial old (if not nil: after a renewal, another may land in between
// with short-lived certificates). HTTP/3 is
// retried a bounded number of times: the QUIC listener may come up just
// after the TCP one.
func (e *acmeEnv) checkServes(t *testing.T, serverName string, wantSerial, old *big.Int) {
	t.Helper()
	runModes(t, allModes, func(t *testing.T, m mode) {
		c := e.client(t, m, serverName, e.pebble.roots)
		path := "/acme/" + string(m) + "?name=" + serverName
		url := "https://" + serverName + ":" + strconv.Itoa(e.port) + path
		var resp *http.Response
		var body []byte
		var err error
		for try := 0; try < 20; try++ {
			req, rerr := http.NewRequest(http.MethodGet, url, nil)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if resp, body, err = fetch(c, req); err == nil || m != modeH3 {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("GET %s over %s: %v", url, m, err)
		}
		if resp.StatusCode != http.StatusOK || resp.Proto != m.proto() {
			t.Fatalf("GET %s over %s: %s %d, want %s 200\n%s", url, m, resp.Proto, resp.StatusCode, m.proto(), tail(body, 2048))
		}
		if resp.TLS == nil || len(resp.TLS.VerifiedChains) == 0 {
			t.Fatalf("GET %s over %s: no verified chain (TLS state %v)", url, m, resp.TLS)
		}
		leaf := resp.TLS.PeerCertificates[0]
		if !slices.Contains(leaf.DNSNames, serverName) {
			t.Errorf("over %s: certificate names %q, want %s among them", m, leaf.DNSNames, serverName)
		}
		if chainRoot := resp.TLS.VerifiedChains[0]; !chainRoot[len(chainRoot)-1].Equal(e.pebble.root) {
			t.Errorf("over %s: chain does not end at Pebble's root", m)
		}
		if wantSerial != nil && leaf.SerialNumber.Cmp(wantSerial) != 0 {
			t.Errorf("over %s: served serial %s, want %s", m, serialHex(leaf.SerialNumber), serialHex(wantSerial))
		}
		if old != nil && leaf.SerialNumber.Cmp(old) == 0 {
			t.Errorf("over %s: still the old serial %s", m, serialHex(old))
		}
		echo, err := parseEcho(body)
		if err != nil {
			t.Fatal(err)
		}
		if echo.URI != path {
			t.Errorf("over %s: origin saw target %q, want %q", m, echo.URI, path)
		}
		if via := echo.header("Via"); len(via) != 1 || via[0] != m.via() {
			t.Errorf("over %s: origin saw Via %q, want [%q]", m, via, m.via())
		}
	})
}

// TestACMEHTTP01: a.test through HTTP-01 only, validated by Pebble against
// hoplite's plain listener, then served over h1, h2 and h3.
func TestACMEHTTP01(t *testing.T) {
	t.Parallel()
	e := newACMEEnv(t, acmeOptions{domains: []string{"a.test"}, http01: true, plain: true})
	leaf := e.waitCert(t, "a.test", acmeIssueWait, nil)
	e.pebble.checkIssued(t, leaf)
	// HTTP-01 it was: Pebble's VA fetched the token from hoplite's plain
	// listener (its TLS-ALPN-01 path logs no such line).
	_, plainPort, _ := net.SplitHostPort(e.cfg.PlainListen)
	wantVA := "Attempting to validate w/ HTTP: http://a.test:" + plainPort + "/.well-known/acme-challenge/"
	if log := e.pebble.proc.log(64 << 20); !strings.Contains(log, wantVA) {
		t.Errorf("Pebble's log lacks %q: the certificate was not validated through HTTP-01 on hoplite's plain port", wantVA)
	}
	if n := e.pebble.orders(); n != 1 {
		t.Errorf("Pebble saw %d orders, want 1", n)
	}
	e.checkServes(t, "a.test", leaf.SerialNumber, nil)
}

// TestACMETLSALPN01: b.test through TLS-ALPN-01 only, with no plain
// listener at all (Pebble's HTTP-01 port is a closed one), so Pebble can
// only have validated over hoplite's TLS port with acme-tls/1.
func TestACMETLSALPN01(t *testing.T) {
	t.Parallel()
	e := newACMEEnv(t, acmeOptions{domains: []string{"b.test"}, tlsALPN01: true})
	leaf := e.waitCert(t, "b.test", acmeIssueWait, nil)
	e.pebble.checkIssued(t, leaf)
	if log := e.pebble.proc.log(64 << 20); strings.Contains(log, "Attempting to validate w/ HTTP") {
		t.Errorf("Pebble attempted HTTP-01 though hoplite has it off")
	}
	if n := e.pebble.orders(); n != 1 {
		t.Errorf("Pebble saw %d orders, want 1", n)
	}
	e.checkServes(t, "b.test", leaf.SerialNumber, nil)
}

// TestACMERestart: after SIGTERM and a restart on the same data directory,
// hoplite serves the stored certificate and orders nothing.
func TestACMERestart(t *testing.T) {
	t.Parallel()
	e := newACMEEnv(t, acmeOptions{domains: []string{"a.test"}, http01: true, plain: true})
	first := e.waitCert(t, "a.test", acmeIssueWait, nil)
	e.pebble.checkIssued(t, first)
	orders, issued := e.pebble.orders(), len(e.pebble.issued())
	if orders != 1 || issued != 1 {
		t.Errorf("before the restart Pebble saw %d orders and %d issuances, want 1 and 1", orders, issued)
	}

	e.stop(t)
	if err := e.start(t); err != nil {
		t.Fatalf("hoplite did not start again: %v", err)
	}
	again := e.waitCert(t, "a.test", acmeIssueWait, nil)
	if again.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Errorf("after the restart hoplite serves serial %s, want the stored %s", serialHex(again.SerialNumber), serialHex(first.SerialNumber))
	}
	e.checkServes(t, "a.test", first.SerialNumber, nil)
	if o, i := e.pebble.orders(), len(e.pebble.issued()); o != orders || i != issued {
		t.Errorf("after the restart Pebble saw %d orders and %d issuances, want still %d and %d", o, i, orders, issued)
	}
}

// TestACMEOnDemand: a handshake for an allowed name issues a certificate
// during the handshake; one for a name outside the allow list fails and
// orders nothing.
func TestACMEOnDemand(t *testing.T) {
	t.Parallel()
	e := newACMEEnv(t, acmeOptions{
		domains: []string{"a.test"}, http01: true, plain: true,
		onDemand: []string{"*.ondemand.test"},
	})
	e.waitCert(t, "a.test", acmeIssueWait, nil)
	base := e.pebble.orders()

	leaf, err := e.handshake("x.ondemand.test", e.pebble.roots)
	if err != nil {
		t.Fatalf("on-demand handshake for x.ondemand.test: %v", err)
	}
	if !slices.Contains(leaf.DNSNames, "x.ondemand.test") {
		t.Errorf("on-demand certificate names %q, want x.ondemand.test", leaf.DNSNames)
	}
	e.pebble.checkIssued(t, leaf)
	if n := e.pebble.orders(); n != base+1 {
		t.Errorf("after the on-demand handshake Pebble saw %d orders, want %d", n, base+1)
	}
	e.checkServes(t, "x.ondemand.test", leaf.SerialNumber, nil)

	base = e.pebble.orders()
	if c, err := e.handshake("evil.test", e.pebble.roots); err == nil {
		t.Errorf("handshake for evil.test (not allowed) succeeded with a certificate for %q", c.DNSNames)
	} else {
		t.Logf("handshake for evil.test failed as it should: %v", err)
	}
	// The refusal must be a decision, not a failed order: watch for an
	// order that must not come for a bounded while.
	deadline := time.Now().Add(acmeOrderSettle)
	for time.Now().Before(deadline) {
		if n := e.pebble.orders(); n != base {
			t.Fatalf("Pebble saw %d orders after the evil.test handshake, want still %d", n, base)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if log := e.pebble.proc.log(64 << 20); strings.Contains(log, "evil.test") {
		t.Errorf("Pebble's log mentions evil.test: it was asked about a name outside the allow list")
	}
	if e.hop.exited() {
		t.Fatalf("hoplite exited: %v", e.hop.err)
	}
	if _, err := e.handshake("a.test", e.pebble.roots); err != nil {
		t.Errorf("after the refused evil.test handshake, a.test fails: %v", err)
	}
}

// TestACMERenewal: with 30-second certificates and a 1-second renewal
// check, hoplite renews before expiry, without a restart.
func TestACMERenewal(t *testing.T) {
	t.Parallel()
	const validity = 30 * time.Second
	e := newACMEEnv(t, acmeOptions{
		domains: []string{"a.test"}, http01: true, plain: true,
		validity: validity, renewCheck: time.Second,
	})
	first := e.waitCert(t, "a.test", acmeIssueWait, nil)
	e.pebble.checkIssued(t, first)
	if life := first.NotAfter.Sub(first.NotBefore); life > validity+time.Second {
		t.Fatalf("Pebble issued a certificate valid for %v, want about %v", life, validity)
	}
	pid := e.hop.cmd.Process.Pid

	// Poll until a handshake verifies with another serial. The bound is
	// past the first certificate's expiry, so a late renewal shows as
	// such below rather than as a timeout.
	wait := time.Until(first.NotAfter) + 15*time.Second
	renewed := e.waitCert(t, "a.test", wait, func(c *x509.Certificate) bool {
		return c.SerialNumber.Cmp(first.SerialNumber) != 0
	})
	seen := time.Now()
	if !seen.Before(first.NotAfter) {
		t.Errorf("the renewed certificate was first served at %v, after the old one expired at %v", seen.Format(time.RFC3339), first.NotAfter.Format(time.RFC3339))
	}
	if !renewed.NotAfter.After(first.NotAfter) {
		t.Errorf("renewed certificate expires %v, not after the old %v", renewed.NotAfter, first.NotAfter)
	}
	e.pebble.checkIssued(t, renewed)
	if e.hop.exited() || e.hop.cmd.Process.Pid != pid {
		t.Fatalf("hoplite restarted or exited during renewal: %v", e.hop.err)
	}
	if e.starts != 1 {
		t.Errorf("hoplite was started %d times, want 1", e.starts)
	}
	e.checkServes(t, "a.test", nil, first.SerialNumber)
}

// TestACMECAUnreachable: with the CA's port closed, hoplite starts, keeps
// serving the plain listener's redirect, refuses names outside the
// on-demand allow list, logs the failure naming the domain, and stays up.
func TestACMECAUnreachable(t *testing.T) {
	t.Parallel()
	e := newACMEEnv(t, acmeOptions{
		domains: []string{"a.test"}, http01: true, plain: true,
		onDemand: []string{"*.ondemand.test"}, unreachable: true,
	})

	// The failure is logged, naming the domain.
	deadline := time.Now().Add(acmeIssueWait)
	// One line naming the domain (as a value: not the account's t@a.test)
	// and a failure as a word (not inside this test's name in a path).
	const domain = `(?:^|[^@\w.-])a\.test(?:[^\w.-]|$)`
	const failure = `\b(?:error|errors|fail|failed|failure|refused|unreachable)\b`
	failRE := regexp.MustCompile(`(?im)^.*(?:` + domain + `.*` + failure + `|` + failure + `.*` + domain + `).*$`)
	for {
		if e.hop.exited() {
			t.Fatalf("hoplite exited with the CA unreachable: %v", e.hop.err)
		}
		if line := failRE.FindString(e.hop.log(4 << 20)); line != "" {
			t.Logf("hoplite logged: %s", line)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hoplite did not log a failure naming a.test within %v", acmeIssueWait)
		}
		time.Sleep(200 * time.Millisecond)
	}

	plainClient := &http.Client{
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, e.cfg.PlainListen)
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
	t.Cleanup(plainClient.CloseIdleConnections)
	_, plainPort, _ := net.SplitHostPort(e.cfg.PlainListen)
	wantLoc := "https://a.test:" + strconv.Itoa(e.port) + "/some/path?q=1"

	// Observe for a bounded while: the process stays up, the redirect
	// works, a name outside the allow list is refused promptly each time.
	observe := time.Now().Add(5 * time.Second)
	for round := 0; ; round++ {
		if e.hop.exited() {
			t.Fatalf("hoplite exited with the CA unreachable: %v", e.hop.err)
		}
		resp, err := plainClient.Get("http://a.test:" + plainPort + "/some/path?q=1")
		if err != nil {
			t.Fatalf("round %d: plain GET: %v", round, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != wantLoc {
			t.Fatalf("round %d: plain GET: %d Location %q, want 308 %q", round, resp.StatusCode, resp.Header.Get("Location"), wantLoc)
		}
		start := time.Now()
		if c, err := e.handshake("evil.test", nil); err == nil {
			t.Fatalf("round %d: handshake for evil.test succeeded with %q", round, c.DNSNames)
		} else if !isTLSRefusal(err) {
			t.Errorf("round %d: handshake for evil.test failed with %v after %v, want a TLS alert", round, err, time.Since(start))
		}
		if time.Now().After(observe) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	// An allowed on-demand name cannot be obtained either: the handshake
	// must end in an alert once the order fails, not hold the client
	// (e.handshake gives up after acmeHandshakeWait).
	t.Run("allowed on-demand name fails promptly", func(t *testing.T) {
		start := time.Now()
		c, err := e.handshake("x.ondemand.test", nil)
		switch {
		case err == nil:
			t.Errorf("handshake for x.ondemand.test succeeded with %q though the CA is unreachable", c.DNSNames)
		case !isTLSRefusal(err):
			t.Errorf("handshake for x.ondemand.test with the CA unreachable: %v after %v, want a TLS alert within %v", err, time.Since(start).Round(time.Millisecond), acmeHandshakeWait)
		}
	})
	if e.hop.exited() {
		t.Fatalf("hoplite exited with the CA unreachable: %v", e.hop.err)
	}
	// With obtaining still failing in the background, SIGTERM ends it
	// cleanly.
	e.stop(t)
}

// isTLSRefusal reports whether err is the server ending the handshake
// with an alert, as opposed to a timeout or a dead listener.
func isTLSRefusal(err error) bool {
	var alert tls.AlertError
	if errors.As(err, &alert) {
		return true
	}
	var rec *tls.RecordHeaderError
	if errors.As(err, &rec) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return strings.Contains(err.Error(), "remote error")
}
