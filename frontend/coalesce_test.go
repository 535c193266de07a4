package frontend

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCoalesceKeepsOrder writes from many goroutines, each in sequence, and
// checks the reader gets every byte, each writer's in its order, and in
// fewer writes than were made.
func TestCoalesceKeepsOrder(t *testing.T) {
	client, server := net.Pipe()
	counted := &countingConn{Conn: server}
	c := newCoalesceConn(counted, 0)
	const writers, each = 8, 500
	var got bytes.Buffer
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(&got, client)
		done <- err
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				rec := fmt.Sprintf("<%d:%d>", w, i)
				if i%50 == 0 { // now and then one large enough to skip the batch
					rec = fmt.Sprintf("<%d:%d:%s>", w, i, strings.Repeat("x", directWrite))
				}
				if _, err := io.WriteString(c, rec); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	next := make([]int, writers)
	s := got.String()
	for s != "" {
		end := strings.IndexByte(s, '>')
		var w, i int
		if end < 0 || !strings.HasPrefix(s, "<") {
			t.Fatalf("garbled stream at %.20q", s)
		}
		fields := strings.Split(s[1:end], ":")
		w, _ = strconv.Atoi(fields[0])
		i, _ = strconv.Atoi(fields[1])
		if i != next[w] {
			t.Fatalf("writer %d: got %d, want %d", w, i, next[w])
		}
		next[w]++
		s = s[end+1:]
	}
	for w, n := range next {
		if n != each {
			t.Errorf("writer %d: %d writes arrived, want %d", w, n, each)
		}
	}
	if n := counted.writes(); n >= writers*each {
		t.Errorf("%d writes reached the connection for %d made: nothing coalesced", n, writers*each)
	}
	t.Logf("%d writes became %d", writers*each, counted.writes())
}

// TestCoalesceBackpressure: with a peer that does not read, writes stop
// being accepted after maxPending bytes rather than buffering without
// bound, and the stall timeout then fails them.
func TestCoalesceBackpressure(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	c := newCoalesceConn(server, 200*time.Millisecond)
	chunk := make([]byte, 1<<10) // small enough to be batched
	accepted := 0
	var err error
	for range 10 * maxPending / len(chunk) {
		if _, err = c.Write(chunk); err != nil {
			break
		}
		accepted += len(chunk)
	}
	if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("writes to a peer that never reads: err %v, want a deadline error", err)
	}
	if accepted > maxPending+len(chunk) {
		t.Errorf("accepted %d bytes for a peer that never reads, want at most %d", accepted, maxPending+len(chunk))
	}
	if _, err := c.Write(chunk); err == nil {
		t.Error("a write after the failure succeeded")
	}
	c.Close()
}

// TestCoalesceCloseFlushes: what was accepted before Close reaches the
// peer, as x/net's GOAWAY right before it closes must.
func TestCoalesceCloseFlushes(t *testing.T) {
	client, server := net.Pipe()
	c := newCoalesceConn(server, time.Second)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(client)
		got <- b
	}()
	want := bytes.Repeat([]byte("goaway"), 1000)
	if _, err := c.Write(want); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("peer got %d bytes, want %d", len(b), len(want))
	}
	if _, err := c.Write(want); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after Close: %v, want net.ErrClosed", err)
	}
}

// TestCoalesceCloseBounded: Close does not wait forever for a peer that
// does not read.
func TestCoalesceCloseBounded(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	c := newCoalesceConn(server, 100*time.Millisecond)
	if _, err := c.Write([]byte("never read")); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close is still waiting for a peer that never reads")
	}
}

type countingConn struct {
	net.Conn
	mu sync.Mutex
	n  int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *countingConn) writes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
