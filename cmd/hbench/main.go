// Command hbench is the load generator of hoplite's benchmark suite
// (scripts/bench.sh, `make bench`). It covers what h2load cannot: HTTP/3
// load, an open-loop fixed request rate with latency percentiles over
// HTTP/1.1, HTTP/2 and HTTP/3, and holding many idle TLS connections.
//
// Usage:
//
//	hbench [flags] URL
//
// Modes (-mode):
//
//	load  closed loop: -c connections, -m concurrent requests on each
//	      (HTTP/1.1: always 1), until -n requests are done or -d has passed,
//	      whichever comes first.
//	rate  open loop: requests are started at -rate per second for -d,
//	      spread round-robin over -c connections, whether or not earlier
//	      ones have finished. Latency is measured from the time a request
//	      was due, so a stall is not hidden (no coordinated omission). At
//	      most -max-inflight requests are outstanding; a request due when
//	      that many are is counted as failed.
//	idle  opens -c connections (-p at a time); on each it makes one
//	      request (HTTP/1.1 keep-alive; HTTP/2: preface, SETTINGS and the
//	      request), then holds them all open until SIGTERM, SIGINT or -d.
//	      It prints "ready ..." once all are open, and "done ..." at the
//	      end with the number the server had closed meanwhile.
//
// Flags:
//
//	-mode load|rate|idle   (default load)
//	-proto h1|h2|h3        protocol: HTTP/1.1 or HTTP/2 over TLS, or HTTP/3
//	-c N                   connections (default 1)
//	-m N                   concurrent requests per connection, load mode (default 1)
//	-n N                   requests, load mode; 0: until -d (default 0)
//	-d DURATION            load: time limit; rate: run time; idle: longest hold (default 10s)
//	-rate R                requests per second, rate mode (default 1000)
//	-max-inflight N        outstanding requests at most, rate mode (default 10000)
//	-p N                   connections opened at a time, idle mode (default 100)
//	-sources N             spread h1/h2 connections over N loopback source addresses,
//	                       127.0.0.1, .2, ...: N clients for limits per client
//	                       address; the target must be on loopback (default 1)
//	-data FILE             POST the file's content instead of GET
//	-timeout DURATION      limit per request and per connection setup (default 10s)
//
// Output, on one line of space-separated key=value pairs (load and rate):
//
//	mode= proto= conns= streams= requests= ok= failed= secs= rps= bytes=
//	p50_ms= p90_ms= p99_ms= max_ms= reconnects=
//
// A request fails when it gets an error, a status other than 2xx, or its
// body cannot be read in full; the first error is printed on stderr. A
// connection that has failed is replaced before its next request
// (reconnects counts those).
//
// The target is the benchmark's own loopback proxy with a self-signed
// certificate, so certificates are not verified.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

type options struct {
	mode        string
	proto       string
	conns       int
	streams     int
	requests    int
	duration    time.Duration
	rate        float64
	maxInflight int
	parallel    int
	sources     int
	data        []byte
	timeout     time.Duration
	target      *url.URL
}

func main() {
	var o options
	var dataFile string
	flag.StringVar(&o.mode, "mode", "load", "load, rate or idle")
	flag.StringVar(&o.proto, "proto", "h2", "h1, h2 or h3")
	flag.IntVar(&o.conns, "c", 1, "connections")
	flag.IntVar(&o.streams, "m", 1, "concurrent requests per connection (load mode; h1: 1)")
	flag.IntVar(&o.requests, "n", 0, "requests (load mode); 0: until -d")
	flag.DurationVar(&o.duration, "d", 10*time.Second, "load: time limit; rate: run time; idle: longest hold")
	flag.Float64Var(&o.rate, "rate", 1000, "requests per second (rate mode)")
	flag.IntVar(&o.maxInflight, "max-inflight", 10000, "outstanding requests at most (rate mode)")
	flag.IntVar(&o.parallel, "p", 100, "connections opened at a time (idle mode)")
	flag.IntVar(&o.sources, "sources", 1, "loopback source addresses to spread h1/h2 connections over")
	flag.StringVar(&dataFile, "data", "", "POST this file's content")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Second, "limit per request and per connection setup")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: hbench [flags] URL   (see go doc hoplite/cmd/hbench)")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	u, err := url.Parse(flag.Arg(0))
	if err != nil || u.Scheme != "https" || u.Host == "" {
		fatalf("URL must be https://host:port/path, got %q", flag.Arg(0))
	}
	o.target = u
	if dataFile != "" {
		if o.data, err = os.ReadFile(dataFile); err != nil {
			fatalf("%v", err)
		}
	}
	if o.proto != "h1" && o.proto != "h2" && o.proto != "h3" {
		fatalf("-proto must be h1, h2 or h3")
	}
	if o.conns < 1 || o.streams < 1 || o.parallel < 1 || o.maxInflight < 1 || o.rate <= 0 {
		fatalf("-c, -m, -p, -max-inflight and -rate must be positive")
	}
	if o.sources < 1 || o.sources > 254 {
		fatalf("-sources must be 1 to 254")
	}
	if o.proto == "h1" {
		o.streams = 1
	}
	switch o.mode {
	case "load":
		err = runLoad(o)
	case "rate":
		err = runRate(o)
	case "idle":
		err = runIdle(o)
	default:
		fatalf("-mode must be load, rate or idle")
	}
	if err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "hbench: "+format+"\n", args...)
	os.Exit(1)
}

// tlsConfig is for the benchmark's loopback proxies, which serve a
// self-signed certificate made by the script: nothing to verify against,
// hence InsecureSkipVerify. Never point hbench at a host you need to trust.
//
// Key exchange is X25519, as h2load (OpenSSL 3.0) offers it: Go would
// prefer the hybrid X25519MLKEM768, which only the Go proxies take, making
// their handshakes dearer than the others'.
func tlsConfig(host string, alpn string) *tls.Config {
	return &tls.Config{
		ServerName:         host,
		NextProtos:         []string{alpn},
		InsecureSkipVerify: true,
		CurvePreferences:   []tls.CurveID{tls.X25519, tls.CurveP256},
	}
}

// conn is one client connection of any protocol.
type conn interface {
	RoundTrip(*http.Request) (*http.Response, error)
	Err() error
	Close() error
}

// dialer opens connections of one protocol to the target.
type dialer struct {
	o     options
	h12   *http.Transport  // h1, h2
	h3    *http3.Transport // h3
	quicC *quic.Config
	tlsC  *tls.Config
}

func newDialer(o options, lingerZero bool) *dialer {
	d := &dialer{o: o}
	host := o.target.Hostname()
	switch o.proto {
	case "h1", "h2":
		var p http.Protocols
		p.SetHTTP1(o.proto == "h1")
		p.SetHTTP2(o.proto == "h2")
		alpn := map[string]string{"h1": "http/1.1", "h2": "h2"}[o.proto]
		dialers := make([]*net.Dialer, o.sources)
		for i := range dialers {
			dialers[i] = &net.Dialer{Timeout: o.timeout}
			if o.sources > 1 {
				dialers[i].LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))}
			}
		}
		var next atomic.Uint64
		d.h12 = &http.Transport{
			TLSClientConfig:     tlsConfig(host, alpn),
			Protocols:           &p,
			DisableCompression:  true,
			TLSHandshakeTimeout: o.timeout,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				nd := dialers[next.Add(1)%uint64(len(dialers))]
				c, err := nd.DialContext(ctx, network, addr)
				if err == nil && lingerZero {
					// Idle mode opens thousands of connections per run:
					// close them with RST, leaving no TIME_WAIT behind.
					c.(*net.TCPConn).SetLinger(0)
				}
				return c, err
			},
		}
	case "h3":
		d.tlsC = tlsConfig(host, http3.NextProtoH3)
		d.quicC = &quic.Config{HandshakeIdleTimeout: o.timeout, MaxIdleTimeout: 5 * time.Minute}
		d.h3 = &http3.Transport{DisableCompression: true}
	}
	return d
}

func (d *dialer) dial(ctx context.Context) (conn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.o.timeout)
	defer cancel()
	if d.h12 != nil {
		return d.h12.NewClientConn(ctx, "https", d.o.target.Host)
	}
	qc, err := quic.DialAddr(ctx, d.o.target.Host, d.tlsC, d.quicC)
	if err != nil {
		return nil, err
	}
	return h3conn{d.h3.NewClientConn(qc)}, nil
}

// h3conn gives http3.ClientConn the Err and Close of conn.
type h3conn struct{ *http3.ClientConn }

func (c h3conn) Err() error {
	return context.Cause(c.Context())
}

func (c h3conn) Close() error {
	return c.CloseWithError(0, "")
}

// slot holds one connection and replaces it once it has failed.
type slot struct {
	d          *dialer
	mu         sync.Mutex
	c          conn // guarded by mu
	reconnects *atomic.Int64
}

func (s *slot) get(ctx context.Context) (conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil && s.c.Err() == nil {
		return s.c, nil
	}
	if s.c != nil {
		s.c.Close()
		s.reconnects.Add(1)
	}
	c, err := s.d.dial(ctx)
	if err != nil {
		s.c = nil
		return nil, err
	}
	s.c = c
	return c, nil
}

// pool is the -c connections of a load or rate run.
type pool struct {
	slots      []*slot
	reconnects atomic.Int64
	firstErr   atomic.Pointer[error]
}

// openPool dials every connection before the measurement starts.
func openPool(o options) (*pool, error) {
	d := newDialer(o, false)
	p := &pool{slots: make([]*slot, o.conns)}
	var wg sync.WaitGroup
	errs := make([]error, o.conns)
	for i := range p.slots {
		p.slots[i] = &slot{d: d, reconnects: &p.reconnects}
		wg.Go(func() { _, errs[i] = p.slots[i].get(context.Background()) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		p.close()
		return nil, fmt.Errorf("opening connections: %w", err)
	}
	return p, nil
}

func (p *pool) close() {
	for _, s := range p.slots {
		s.mu.Lock()
		if s.c != nil {
			s.c.Close()
		}
		s.mu.Unlock()
	}
}

// do makes one request on slot i and reads the whole response.
func (p *pool) do(i int, o options) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	c, err := p.slots[i].get(ctx)
	if err != nil {
		return 0, err
	}
	method, body := http.MethodGet, io.Reader(nil)
	if o.data != nil {
		method, body = http.MethodPost, bytes.NewReader(o.data)
	}
	req, err := http.NewRequestWithContext(ctx, method, o.target.String(), body)
	if err != nil {
		return 0, err
	}
	resp, err := c.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return n, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return n, fmt.Errorf("status %s", resp.Status)
	}
	return n, nil
}

func (p *pool) noteErr(err error) {
	p.firstErr.CompareAndSwap(nil, &err)
}

// result is what a load or rate run prints.
type result struct {
	ok, failed, bytes int64
	elapsed           time.Duration
	lat               []time.Duration
}

func (p *pool) print(o options, r result) {
	s := summarize(r.lat)
	fmt.Printf("mode=%s proto=%s conns=%d streams=%d requests=%d ok=%d failed=%d secs=%.3f rps=%.1f bytes=%d p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f reconnects=%d\n",
		o.mode, o.proto, o.conns, o.streams, r.ok+r.failed, r.ok, r.failed,
		r.elapsed.Seconds(), float64(r.ok)/r.elapsed.Seconds(), r.bytes,
		ms(s.P50), ms(s.P90), ms(s.P99), ms(s.Max), p.reconnects.Load())
	if e := p.firstErr.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "hbench: first error: %v\n", *e)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func runLoad(o options) error {
	p, err := openPool(o)
	if err != nil {
		return err
	}
	defer p.close()
	var issued atomic.Int64
	var mu sync.Mutex
	var r result
	start := time.Now()
	deadline := start.Add(o.duration)
	var wg sync.WaitGroup
	for w := 0; w < o.conns*o.streams; w++ {
		wg.Go(func() {
			var ok, failed, bytes int64
			lat := make([]time.Duration, 0, 1024)
			for time.Now().Before(deadline) {
				if o.requests > 0 && issued.Add(1) > int64(o.requests) {
					break
				}
				t0 := time.Now()
				n, err := p.do(w%o.conns, o)
				bytes += n
				if err != nil {
					failed++
					p.noteErr(err)
					continue
				}
				ok++
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			r.ok, r.failed, r.bytes = r.ok+ok, r.failed+failed, r.bytes+bytes
			r.lat = append(r.lat, lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	p.print(o, r)
	return nil
}

func runRate(o options) error {
	p, err := openPool(o)
	if err != nil {
		return err
	}
	defer p.close()
	var mu sync.Mutex
	var r result
	var inflight atomic.Int64
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / o.rate)
	total := int(o.duration.Seconds() * o.rate)
	start := time.Now()
	// Wake every millisecond (timers are not finer than that in
	// practice) and start every request whose time has come.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for i := 0; i < total; {
		<-tick.C
		now := time.Now()
		for ; i < total && !start.Add(time.Duration(i)*interval).After(now); i++ {
			idx, due := i, start.Add(time.Duration(i)*interval)
			if inflight.Load() >= int64(o.maxInflight) {
				mu.Lock()
				r.failed++
				mu.Unlock()
				p.noteErr(errors.New("too many requests in flight"))
				continue
			}
			inflight.Add(1)
			wg.Go(func() {
				defer inflight.Add(-1)
				n, err := p.do(idx%o.conns, o)
				lat := time.Since(due)
				mu.Lock()
				defer mu.Unlock()
				r.bytes += n
				if err != nil {
					r.failed++
					p.noteErr(err)
					return
				}
				r.ok++
				r.lat = append(r.lat, lat)
			})
		}
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	p.print(o, r)
	return nil
}

func runIdle(o options) error {
	d := newDialer(o, true)
	conns := make([]conn, o.conns)
	var failed atomic.Int64
	var firstErr atomic.Pointer[error]
	sem := make(chan struct{}, o.parallel)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range conns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := idleOne(d, o)
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, &err)
				return
			}
			conns[i] = c
		})
	}
	wg.Wait()
	open := int64(o.conns) - failed.Load()
	fmt.Printf("ready open=%d failed=%d secs=%.3f\n", open, failed.Load(), time.Since(start).Seconds())
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "hbench: first error: %v\n", *e)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	held := time.Now()
	select {
	case <-sig:
	case <-time.After(o.duration):
	}
	closed := 0
	for _, c := range conns {
		if c != nil && c.Err() != nil {
			closed++
		}
	}
	fmt.Printf("done open=%d closed_by_server=%d held_secs=%.3f\n", open, closed, time.Since(held).Seconds())
	// Exit without closing: the kernel closes every socket at once (with
	// RST, see newDialer).
	return nil
}

// idleOne opens a connection and makes one request on it.
func idleOne(d *dialer, o options) (conn, error) {
	c, err := d.dial(context.Background())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.target.String(), nil)
	if err == nil {
		var resp *http.Response
		if resp, err = c.RoundTrip(req); err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
