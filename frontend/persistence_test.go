package frontend

import (
	"bufio"
	"crypto/tls"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestHTTP1Persistence sends raw HTTP/1.x requests over one TLS connection
// and reads the connection-management fields and whether the server closes.
func TestHTTP1Persistence(t *testing.T) {
	type exchange struct {
		request               string
		keepAlive, connection string // expected fields other than "Connection: close"; "" = absent
		closed                bool   // the response says close, and the server closes
	}
	get := func(proto, conn string) string {
		r := "GET / " + proto + "\r\nHost: x\r\n"
		if conn != "" {
			r += "Connection: " + conn + "\r\n"
		}
		return r + "\r\n"
	}
	tests := []struct {
		name string
		cfg  Config
		seq  []exchange
	}{
		{"max requests counts down, last closes", Config{MaxRequestsPerConn: 3, IdleTimeout: 30 * time.Second}, []exchange{
			{request: get("HTTP/1.1", ""), keepAlive: "timeout=30, max=2"},
			{request: get("HTTP/1.1", ""), keepAlive: "timeout=30, max=1"},
			{request: get("HTTP/1.1", ""), closed: true},
		}},
		{"no limit advertises the timeout only", Config{IdleTimeout: 45 * time.Second}, []exchange{
			{request: get("HTTP/1.1", ""), keepAlive: "timeout=45"},
			{request: get("HTTP/1.1", ""), keepAlive: "timeout=45"},
		}},
		{"advertisement off", Config{NoKeepAliveHeader: true, MaxRequestsPerConn: 2}, []exchange{
			{request: get("HTTP/1.1", "")},
			{request: get("HTTP/1.1", ""), closed: true},
		}},
		{"client close", Config{}, []exchange{
			{request: get("HTTP/1.1", "close"), closed: true},
		}},
		{"HTTP/1.0 opts in", Config{IdleTimeout: 10 * time.Second}, []exchange{
			{request: get("HTTP/1.0", "keep-alive"), keepAlive: "timeout=10", connection: "keep-alive"},
			{request: get("HTTP/1.0", "keep-alive"), keepAlive: "timeout=10", connection: "keep-alive"},
			{request: get("HTTP/1.0", ""), closed: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "2")
				io.WriteString(w, "ok")
			})
			e := startServer(t, tt.cfg, h)
			conn, err := tls.Dial("tcp", e.srv.Addr().String(), e.tlsClientConfig("http/1.1"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(waitLimit))
			br := bufio.NewReader(conn)
			for i, ex := range tt.seq {
				io.WriteString(conn, ex.request)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("request %d: %v", i+1, err)
				}
				io.ReadAll(resp.Body)
				if got := resp.Header.Get("Keep-Alive"); got != ex.keepAlive {
					t.Errorf("request %d: Keep-Alive %q, want %q", i+1, got, ex.keepAlive)
				}
				// net/http's reader turns "Connection: close" into
				// resp.Close and drops the field; other values stay.
				if got := resp.Header.Get("Connection"); got != ex.connection {
					t.Errorf("request %d: Connection %q, want %q", i+1, got, ex.connection)
				}
				if resp.Close != ex.closed {
					t.Errorf("request %d: response says close %v, want %v", i+1, resp.Close, ex.closed)
				}
				if ex.closed {
					if _, err := br.ReadByte(); err != io.EOF {
						t.Errorf("request %d: connection not closed: %v", i+1, err)
					}
				}
			}
		})
	}
}
