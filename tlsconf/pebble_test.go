package tlsconf

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// pebble is a running Pebble ACME test server (Debian package "pebble")
// with pebble-challtestsrv as its DNS server, answering 127.0.0.1 for
// every name, so that Pebble validates against listeners on this host.
type pebble struct {
	dirURL   string         // ACME directory
	rootFile string         // PEM file trusting Pebble's own HTTPS
	roots    *x509.CertPool // Pebble's issuing root, for verifying issued certificates
	chalMgmt string         // challtestsrv management address
	out      *syncBuffer    // Pebble's log
}

// startPebble runs Pebble validating HTTP-01 on httpPort and TLS-ALPN-01
// on tlsPort of 127.0.0.1. Both processes end with the test.
func startPebble(t *testing.T, httpPort, tlsPort int) *pebble {
	t.Helper()
	pebbleBin := lookTool(t, "pebble")
	chalBin := lookTool(t, "pebble-challtestsrv")
	dir := t.TempDir()

	// Pebble's own HTTPS certificate, for 127.0.0.1.
	key := mustECKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pebble test server"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	cert := mustCert(t, tmpl, tmpl, key.Public(), key)
	certFile := writeFile(t, dir, "pebble.crt", certPEM(cert))
	keyFile := writeFile(t, dir, "pebble.key", pkcs8PEM(t, key))

	dnsPort := freeUDPTCPPort(t)
	chalMgmt := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	mgmt := fmt.Sprintf("127.0.0.1:%d", freePort(t))

	conf, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress":                  listen,
		"managementListenAddress":        mgmt,
		"certificate":                    certFile,
		"privateKey":                     keyFile,
		"httpPort":                       httpPort,
		"tlsPort":                        tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
	}})
	confFile := writeFile(t, dir, "pebble.json", conf)

	chal := exec.Command(chalBin, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-http01", "", "-https01", "", "-tlsalpn01", "",
		"-dns01", fmt.Sprintf("127.0.0.1:%d", dnsPort), "-management", chalMgmt)
	chalOut := &syncBuffer{}
	chal.Stdout, chal.Stderr = chalOut, chalOut
	startProcess(t, chal, "pebble-challtestsrv", chalOut)
	waitTCP(t, chalMgmt, "pebble-challtestsrv", chalOut)

	pb := exec.Command(pebbleBin, "-config", confFile, "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort))
	// No artificial validation delay, no rejected nonces, no reused
	// authorizations: every order is validated, quickly and the same way.
	pb.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	out := &syncBuffer{}
	pb.Stdout, pb.Stderr = out, out
	startProcess(t, pb, "pebble", out)

	trust := x509.NewCertPool()
	trust.AddCert(cert)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: trust}}}
	p := &pebble{dirURL: "https://" + listen + "/dir", rootFile: certFile, chalMgmt: chalMgmt, out: out}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get(p.dirURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not answer %s: %v\n%s", p.dirURL, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := client.Get("https://" + mgmt + "/roots/0")
	if err != nil {
		t.Fatalf("pebble root: %v", err)
	}
	rootPEM, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	rootCerts, err := parseCertificates(rootPEM)
	if err != nil {
		t.Fatalf("pebble root: %v: %q", err, rootPEM)
	}
	p.roots = x509.NewCertPool()
	for _, c := range rootCerts {
		p.roots.AddCert(c)
	}
	return p
}

// orders counts the orders Pebble has created ("Added order" log lines).
func (p *pebble) orders() int { return strings.Count(p.out.String(), "Added order") }

// setA makes the fake DNS answer addr for host.
func (p *pebble) setA(t *testing.T, host, addr string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"host": host + ".", "addresses": []string{addr}})
	resp, err := http.Post("http://"+p.chalMgmt+"/add-a", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("challtestsrv add-a: %s", resp.Status)
	}
}

func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found in PATH (Debian package pebble): %v", name, err)
	}
	return p
}

// startProcess starts cmd and stops it when the test ends.
func startProcess(t *testing.T, cmd *exec.Cmd, name string, out *syncBuffer) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out)
		}
	})
}

func waitTCP(t *testing.T, addr, name string, out *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen on %s: %v\n%s", name, addr, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// freeUDPTCPPort returns a port free on 127.0.0.1 for both UDP and TCP
// (a DNS server binds both).
func freeUDPTCPPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		u.Close()
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no port free for both UDP and TCP")
	return 0
}

// syncBuffer is a bytes.Buffer safe for concurrent writers and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
