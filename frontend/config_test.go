package frontend

import (
	"crypto/tls"
	"slices"
	"testing"
)

func TestTCPNextProtos(t *testing.T) {
	cases := []struct {
		name string
		in   []string
		want []string
	}{
		{"empty", nil, []string{"h2", "http/1.1"}},
		{"acme kept first", []string{"acme-tls/1"}, []string{"acme-tls/1", "h2", "http/1.1"}},
		{"http/1.1 only gets h2 ahead", []string{"http/1.1"}, []string{"h2", "http/1.1"}},
		{"wrong order fixed", []string{"http/1.1", "h2"}, []string{"h2", "http/1.1"}},
		{"already right", []string{"acme-tls/1", "h2", "http/1.1"}, []string{"acme-tls/1", "h2", "http/1.1"}},
		{"others kept in order", []string{"x-a", "h2", "x-b"}, []string{"x-a", "x-b", "h2", "http/1.1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := slices.Clone(c.in)
			if got := tcpNextProtos(in); !slices.Equal(got, c.want) {
				t.Errorf("tcpNextProtos(%q) = %q, want %q", c.in, got, c.want)
			}
			if !slices.Equal(in, c.in) {
				t.Errorf("input modified: %q", in)
			}
		})
	}
}

// TestALPN: real handshakes. acme-tls/1 survives for TLS-ALPN-01, h2 wins
// over http/1.1, the caller's tls.Config is left alone, and a config that
// only has GetConfigForClient still negotiates h2 (TCP) and h3 (QUIC).
func TestALPN(t *testing.T) {
	cert, _ := newTestCert(t)
	callerConf := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"acme-tls/1"}}
	env := startServer(t, Config{TLSConfig: callerConf}, protoHandler(nil))
	env.pool.AddCert(cert.Leaf)

	if !slices.Equal(callerConf.NextProtos, []string{"acme-tls/1"}) {
		t.Errorf("caller's NextProtos changed to %q", callerConf.NextProtos)
	}
	if got := env.srv.h3TLS.NextProtos; !slices.Equal(got, []string{"h3"}) {
		t.Errorf("QUIC NextProtos %q, want [h3]", got)
	}
	for _, c := range []struct {
		offer []string
		want  string
	}{
		{[]string{"acme-tls/1"}, "acme-tls/1"},
		{[]string{"http/1.1", "h2"}, "h2"},
		{[]string{"http/1.1"}, "http/1.1"},
	} {
		conn := env.dialTLS(t, c.offer...)
		if got := conn.ConnectionState().NegotiatedProtocol; got != c.want {
			t.Errorf("client offering %q negotiated %q, want %q", c.offer, got, c.want)
		}
		_ = conn.Close()
	}
}

func TestALPNGetConfigForClient(t *testing.T) {
	cert, _ := newTestCert(t)
	inner := &tls.Config{Certificates: []tls.Certificate{cert}} // no NextProtos at all
	conf := &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return inner, nil }}
	seen := make(chan string, 1)
	env := startServer(t, Config{TLSConfig: conf}, protoHandler(seen))
	env.pool.AddCert(cert.Leaf)
	for _, mode := range []string{modeH2, modeH3} {
		r := get(env.client(t, mode), env.url("/"))
		if r.err != nil {
			t.Fatalf("%s: %v", mode, r.err)
		}
		if got := recv(t, seen, "handler"); got != wantProto[mode] {
			t.Errorf("%s: handler saw %q", mode, got)
		}
	}
	if inner.NextProtos != nil {
		t.Errorf("GetConfigForClient's config modified: %q", inner.NextProtos)
	}
}
