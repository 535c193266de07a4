package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// TestRunACMEPebble runs "hoplite run" with tls.acme against the real
// Pebble ACME server (Debian package pebble), once per challenge: the
// certificate is obtained in the background through the frontend's own
// listeners (HTTP-01 through PlainMiddleware on plain_listen, TLS-ALPN-01
// through acme-tls/1 on listen), then served to HTTP/2 and HTTP/3 clients
// proxying to an origin; SIGTERM stops the source with the rest.
func TestRunACMEPebble(t *testing.T) {
	for _, tt := range []struct {
		name, challenges, logWant string
	}{
		{"http-01", "{http_01: true, tls_alpn_01: false}", "challenge=http-01"},
		{"tls-alpn-01", "{http_01: false, tls_alpn_01: true}", "challenge=tls-alpn-01"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "origin saw "+r.Host)
			}))
			defer origin.Close()

			tlsPort, plainPort := freeTCPUDPPort(t), freeTCPUDPPort(t)
			pb := startPebble(t, plainPort, tlsPort)
			dir := t.TempDir()
			const name = "run.hoplite.test"
			conf := fmt.Sprintf(`listen: "127.0.0.1:%d"
plain_listen: "127.0.0.1:%d"
tls:
  acme:
    domains: [%s]
    ca: %s
    trusted_roots: [%s]
    storage: %s
    challenges: %s
routes: [{backend: o}]
backends: {o: {servers: [%q]}}
`, tlsPort, plainPort, name, pb.dirURL, pb.rootFile, filepath.Join(dir, "acme"), tt.challenges, origin.Listener.Addr().String())
			file := filepath.Join(dir, "hoplite.yaml")
			os.WriteFile(file, []byte(conf), 0o644)

			sigs := make(chan os.Signal, 2)
			var stderr syncBuffer
			c := &cli{stdout: io.Discard, stderr: &stderr, getenv: func(string) string { return "" },
				home: func() (string, error) { return dir, nil }, signals: sigs}
			done := make(chan int, 1)
			start := time.Now()
			go func() { done <- c.main([]string{"run", "--config", file}) }()
			defer func() {
				if t.Failed() || os.Getenv("SHOWLOG") != "" {
					t.Logf("hoplite log:\n%s", &stderr)
				}
			}()

			// Clients dial 127.0.0.1 and ask for the name, as if DNS
			// pointed it here.
			tlsConf := &tls.Config{RootCAs: pb.roots, ServerName: name}
			url := fmt.Sprintf("https://127.0.0.1:%d/", tlsPort)
			get := func(rt http.RoundTripper) (*http.Response, error) {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Host = name
				return (&http.Client{Timeout: 5 * time.Second, Transport: rt}).Do(req)
			}
			h2 := &http.Transport{TLSClientConfig: tlsConf, ForceAttemptHTTP2: true}
			defer h2.CloseIdleConnections()
			var resp *http.Response
			deadline := time.Now().Add(30 * time.Second)
			for {
				var err error
				if resp, err = get(h2); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no certificate after 30s: %v", err)
				}
				select {
				case code := <-done:
					t.Fatalf("hoplite exited with %d", code)
				case <-time.After(100 * time.Millisecond):
				}
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.Proto != "HTTP/2.0" || string(body) != "origin saw "+name {
				t.Errorf("h2: %s %q", resp.Proto, body)
			}
			if !strings.Contains(stderr.String(), "hoplite serving") || time.Since(start) > 30*time.Second {
				t.Error("hoplite did not report serving")
			}
			if !strings.Contains(stderr.String(), tt.logWant) || !strings.Contains(stderr.String(), `msg="acme: certificate obtained" domain=`+name) {
				t.Errorf("log lacks %q or the obtained certificate", tt.logWant)
			}

			h3 := &http3.Transport{TLSClientConfig: tlsConf}
			defer h3.Close()
			resp, err := get(h3)
			if err != nil {
				t.Fatalf("h3: %v", err)
			}
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.Proto != "HTTP/3.0" || string(body) != "origin saw "+name {
				t.Errorf("h3: %s %q", resp.Proto, body)
			}

			// The plain listener still redirects everything else.
			noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err = noFollow.Get(fmt.Sprintf("http://127.0.0.1:%d/x", plainPort))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusPermanentRedirect {
				t.Errorf("plain listener: %s", resp.Status)
			}

			sigs <- syscall.SIGTERM
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("exit %d", code)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no exit after SIGTERM")
			}
			if n := strings.Count(pb.out.String(), "Added order"); n != 1 {
				t.Errorf("pebble saw %d orders, want 1", n)
			}
		})
	}
}

// pebble is a running Pebble ACME test server with pebble-challtestsrv as
// its DNS, answering 127.0.0.1 for every name (see tlsconf's tests for the
// fuller helper).
type pebble struct {
	dirURL   string
	rootFile string         // trusts Pebble's own HTTPS
	roots    *x509.CertPool // Pebble's issuing root
	out      *syncBuffer
}

func startPebble(t *testing.T, httpPort, tlsPort int) *pebble {
	t.Helper()
	var bins [2]string
	for i, name := range []string{"pebble", "pebble-challtestsrv"} {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Fatalf("%s not found in PATH (Debian package pebble): %v", name, err)
		}
		bins[i] = p
	}
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pebble"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, BasicConstraintsValid: true, IsCA: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "pebble.crt"), filepath.Join(dir, "pebble.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)

	dns := freeTCPUDPPort(t)
	listen := fmt.Sprintf("127.0.0.1:%d", freeTCPUDPPort(t))
	mgmt := fmt.Sprintf("127.0.0.1:%d", freeTCPUDPPort(t))
	conf, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress": listen, "managementListenAddress": mgmt,
		"certificate": certFile, "privateKey": keyFile,
		"httpPort": httpPort, "tlsPort": tlsPort,
		"ocspResponderURL": "", "externalAccountBindingRequired": false,
	}})
	confFile := filepath.Join(dir, "pebble.json")
	os.WriteFile(confFile, conf, 0o644)

	run := func(out *syncBuffer, env []string, name string, args ...string) {
		cmd := exec.Command(name, args...)
		cmd.Stdout, cmd.Stderr, cmd.Env = out, out, append(os.Environ(), env...)
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		waited := make(chan struct{})
		go func() { cmd.Wait(); close(waited) }()
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-waited
			if t.Failed() {
				t.Logf("%s output:\n%s", name, out)
			}
		})
	}
	run(&syncBuffer{}, nil, bins[1], "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-http01", "", "-https01", "", "-tlsalpn01", "",
		"-dns01", fmt.Sprintf("127.0.0.1:%d", dns), "-management", fmt.Sprintf("127.0.0.1:%d", freeTCPUDPPort(t)))
	p := &pebble{dirURL: "https://" + listen + "/dir", rootFile: certFile, out: &syncBuffer{}}
	run(p.out, []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"},
		bins[0], "-config", confFile, "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dns))

	trust := x509.NewCertPool()
	c, _ := x509.ParseCertificate(der)
	trust.AddCert(c)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: trust}}}
	var rootPEM []byte
	for deadline := time.Now().Add(15 * time.Second); ; {
		resp, err := client.Get("https://" + mgmt + "/roots/0")
		if err == nil {
			rootPEM, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble not ready: %v\n%s", err, p.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.roots = x509.NewCertPool()
	if !p.roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("pebble root: %q", rootPEM)
	}
	return p
}

// freeTCPUDPPort returns a port on 127.0.0.1 free for TCP and UDP a moment
// ago (hoplite binds both on listen; the DNS server too).
func freeTCPUDPPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		ln.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
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
