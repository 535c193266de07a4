package frontend

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"sync/atomic"
	"testing"
)

// countingConn counts the writes that reach the socket.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestBatchedTLSOneWrite: one Write of 100 KB, seven TLS records, reaches
// the socket as one write; the client reads it whole.
func TestBatchedTLSOneWrite(t *testing.T) {
	cert, pool := newTestCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	payload := bytes.Repeat([]byte("0123456789"), 10000)
	got := make(chan []byte, 1)
	go func() {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost"})
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(io.LimitReader(c, int64(len(payload))))
		got <- b
	}()
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	cc := &countingConn{Conn: raw}
	bc := &batchConn{Conn: cc}
	tc := batchedTLS{tls.Server(bc, &tls.Config{Certificates: []tls.Certificate{cert}}), bc}
	defer tc.Close()
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	before := cc.writes.Load()
	if n, err := tc.Write(payload); err != nil || n != len(payload) {
		t.Fatalf("Write: %d, %v", n, err)
	}
	if w := cc.writes.Load() - before; w != 1 {
		t.Errorf("%d writes reached the socket for one Write of %d bytes, want 1", w, len(payload))
	}
	if b := <-got; !bytes.Equal(b, payload) {
		t.Errorf("client read %d bytes, want the %d written", len(b), len(payload))
	}
}
