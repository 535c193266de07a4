package frontend

import (
	"context"
	"net/http"
	"testing"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

type quicConnKey struct{}

// TestHTTP3No0RTT: a resuming client that offers its request as 0-RTT
// (quic-go's GET_0RTT) does not get 0-RTT: the connection resumed, but
// quic.ConnectionState.Used0RTT is false, and the request was handled after
// the handshake completed. TestHTTP3No0RTTControl (h3_control_test.go)
// turns Allow0RTT on, to show the test would see 0-RTT if the server
// accepted it.
func TestHTTP3No0RTT(t *testing.T) {
	zeroRTT(t, false)
}

// zeroRTT resumes a session with a request sent as 0-RTT against a server
// with Allow0RTT set to allow, and checks whether 0-RTT was used.
func zeroRTT(t *testing.T, allow bool) {
	type seenConn struct {
		resumed, handshakeComplete, used0RTT bool
	}
	seen := make(chan seenConn, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seenConn{resumed: r.TLS.DidResume, handshakeComplete: r.TLS.HandshakeComplete}
		if c, ok := r.Context().Value(quicConnKey{}).(*quic.Conn); ok {
			select { // Used0RTT is final once the handshake is
			case <-c.HandshakeComplete():
				s.used0RTT = c.ConnectionState().Used0RTT
			case <-r.Context().Done():
			}
		}
		select {
		case seen <- s:
		default:
		}
	})
	env := startConfigured(t, Config{}, h, func(s *Server) {
		s.h3.QUICConfig.Allow0RTT = allow // the listener reads it at Start
		track := s.h3.ConnContext
		s.h3.ConnContext = func(ctx context.Context, c *quic.Conn) context.Context {
			return context.WithValue(track(ctx, c), quicConnKey{}, c)
		}
	})

	// First connection: full handshake, which leaves a session ticket in
	// the cache.
	tlsConf := env.tlsClientConfig()
	tlsConf.ClientSessionCache = tls13Cache()
	first := &http3.Transport{TLSClientConfig: tlsConf}
	if r := get(&http.Client{Transport: first, Timeout: waitLimit}, env.url("/")); r.err != nil {
		t.Fatal(r.err)
	}
	_ = first.Close()
	if s := recv(t, seen, "first request"); s.resumed || s.used0RTT {
		t.Fatalf("first connection: %+v", s)
	}

	// Second connection: resumes and sends the request in 0-RTT if the
	// ticket allows it.
	second := &http3.Transport{TLSClientConfig: tlsConf}
	t.Cleanup(func() { _ = second.Close() })
	req, err := http.NewRequest(http3.MethodGet0RTT, env.url("/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := second.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s := recv(t, seen, "second request")
	if !s.resumed {
		t.Fatalf("second connection did not resume; the test proves nothing")
	}
	if s.used0RTT != allow {
		t.Errorf("Used0RTT %v, want %v", s.used0RTT, allow)
	}
	if !allow && !s.handshakeComplete {
		t.Errorf("request handled before the handshake completed")
	}
}
