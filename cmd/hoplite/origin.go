package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"
)

// The built-in origin is a demo and test aid, not part of the proxy: a
// plain HTTP/1.1 server (net/http, keep-alive on) that numbers its TCP
// connections and the requests on each, so that a user watching its
// answers through the proxy sees connections being reused.
//
// Every answer carries X-Origin-Conn and X-Origin-Request. Query options:
//
//	status=NNN    answer with this status (200-599)
//	delay=250ms   wait this long before answering
//	size=N        answer N bytes of 'x' (with Content-Length) instead of JSON
//	echo=1        stream the request body back as the response body
//	trailer=1     send the trailer X-Origin-Trailer: done
//
// A bad option value gets 400. Other query parameters are ignored.

const (
	originMaxDelay = 10 * time.Minute
	originMaxSize  = 1 << 40
	originChunk    = 32 << 10
)

func (c *cli) originCmd(args []string) int {
	fs := c.flags("origin", "[--listen ADDR] [--idle-timeout D]")
	listen := fs.String("listen", "127.0.0.1:9080", "`ADDR` to listen on")
	idle := fs.Duration("idle-timeout", 0, "close keep-alive connections idle this `long`, without a Keep-Alive hint (0: never)")
	if code := c.parse(fs, args); code >= 0 {
		return code
	}
	logger := slog.New(slog.NewTextHandler(c.stderr, nil))
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(c.stderr, "hoplite origin:", err)
		return 1
	}
	o := &origin{logger: logger}
	srv := o.server()
	srv.IdleTimeout = *idle
	sigs, _, stop := c.signalChan(false)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	logger.Info("origin listening", "addr", ln.Addr().String(), "proto", "HTTP/1.1",
		"options", "status=NNN delay=250ms size=N echo=1 trailer=1")
	select {
	case err := <-done:
		fmt.Fprintln(c.stderr, "hoplite origin:", err)
		return 1
	case <-sigs:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	return 0
}

// origin is the echo origin's handler and connection counter.
type origin struct {
	conns  atomic.Int64
	logger *slog.Logger // nil: no request log
}

// originConn numbers one TCP connection and counts its requests.
type originConn struct {
	id       int64
	requests atomic.Int64
}

type originConnKey struct{}

// server returns an HTTP/1.1-only server for o; the caller sets Addr or
// calls Serve.
func (o *origin) server() *http.Server {
	var protos http.Protocols
	protos.SetHTTP1(true)
	return &http.Server{
		Handler:           o,
		Protocols:         &protos,
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, originConnKey{}, &originConn{id: o.conns.Add(1)})
		},
	}
}

// originReport is the JSON answer; field order is the documented one.
type originReport struct {
	Conn      int64               `json:"conn"`
	Request   int64               `json:"request"`
	Method    string              `json:"method"`
	URI       string              `json:"uri"`
	Proto     string              `json:"proto"`
	Host      string              `json:"host"`
	Headers   map[string][]string `json:"headers"`
	BodyBytes int64               `json:"body_bytes"`
}

type originOptions struct {
	status  int
	delay   time.Duration
	size    int64 // -1: answer JSON
	echo    bool
	trailer bool
}

func parseOriginOptions(q url.Values) (originOptions, error) {
	o := originOptions{status: http.StatusOK, size: -1}
	var err error
	if v := q.Get("status"); v != "" {
		if o.status, err = strconv.Atoi(v); err != nil || o.status < 200 || o.status > 599 {
			return o, fmt.Errorf("status=%q: want 200 to 599", v)
		}
	}
	if v := q.Get("delay"); v != "" {
		if o.delay, err = time.ParseDuration(v); err != nil || o.delay < 0 || o.delay > originMaxDelay {
			return o, fmt.Errorf("delay=%q: want a duration such as 250ms, at most %v", v, originMaxDelay)
		}
	}
	if v := q.Get("size"); v != "" {
		if o.size, err = strconv.ParseInt(v, 10, 64); err != nil || o.size < 0 || o.size > originMaxSize {
			return o, fmt.Errorf("size=%q: want a byte count from 0 to %d", v, int64(originMaxSize))
		}
	}
	flag := func(name string) (bool, error) {
		if !q.Has(name) {
			return false, nil
		}
		v := q.Get(name)
		if v == "" {
			return true, nil // "?echo" alone
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("%s=%q: want 1 or 0", name, v)
		}
		return b, nil
	}
	if o.echo, err = flag("echo"); err != nil {
		return o, err
	}
	if o.trailer, err = flag("trailer"); err != nil {
		return o, err
	}
	if o.echo && o.size >= 0 {
		return o, errors.New("echo and size exclude each other")
	}
	return o, nil
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	oc, _ := r.Context().Value(originConnKey{}).(*originConn)
	if oc == nil {
		oc = &originConn{} // served without o.server(); numbers stay 0
	}
	n := oc.requests.Add(1)
	if o.logger != nil {
		o.logger.Info("origin request", "conn", oc.id, "request", n, "method", r.Method, "uri", r.RequestURI)
	}
	h := w.Header()
	h.Set("X-Origin-Conn", strconv.FormatInt(oc.id, 10))
	h.Set("X-Origin-Request", strconv.FormatInt(n, 10))

	opts, err := parseOriginOptions(r.URL.Query())
	if err != nil {
		io.Copy(io.Discard, r.Body) // keep the connection reusable
		http.Error(w, "origin: bad option "+err.Error(), http.StatusBadRequest)
		return
	}
	if opts.trailer {
		h.Set("Trailer", "X-Origin-Trailer") // declared trailers force chunked framing
	}
	if opts.echo {
		o.echo(w, r, opts)
	} else {
		body, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, "origin: reading request body: "+err.Error(), http.StatusBadRequest)
			return
		}
		if !sleep(r.Context(), opts.delay) {
			return
		}
		if opts.size >= 0 {
			o.fill(w, opts)
		} else {
			rep, _ := json.Marshal(originReport{
				Conn: oc.id, Request: n, Method: r.Method, URI: r.RequestURI, Proto: r.Proto,
				Host: r.Host, Headers: r.Header, BodyBytes: body,
			})
			h.Set("Content-Type", "application/json")
			w.WriteHeader(opts.status)
			w.Write(append(rep, '\n'))
		}
	}
	if opts.trailer {
		h.Set("X-Origin-Trailer", "done")
	}
}

// fill answers opts.size bytes of 'x'.
func (o *origin) fill(w http.ResponseWriter, opts originOptions) {
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	noBody := opts.status == http.StatusNoContent || opts.status == http.StatusNotModified
	if !opts.trailer && !noBody {
		h.Set("Content-Length", strconv.FormatInt(opts.size, 10))
	}
	w.WriteHeader(opts.status)
	if noBody {
		return
	}
	chunk := make([]byte, min(opts.size, originChunk))
	for i := range chunk {
		chunk[i] = 'x'
	}
	for left := opts.size; left > 0; {
		k := min(left, int64(len(chunk)))
		if _, err := w.Write(chunk[:k]); err != nil {
			return
		}
		left -= k
	}
}

// echo streams the request body back as it arrives. The response header
// goes out with the first piece of the body (or its end), so a client that
// sent "Expect: 100-continue" gets its 100 before the final status.
func (o *origin) echo(w http.ResponseWriter, r *http.Request, opts originOptions) {
	rc := http.NewResponseController(w)
	// HTTP/1.1 in net/http stops reading the request once the response has
	// begun unless full duplex is on.
	rc.EnableFullDuplex()
	if !sleep(r.Context(), opts.delay) {
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	buf := make([]byte, originChunk)
	started := false
	for {
		k, err := r.Body.Read(buf)
		if !started {
			w.WriteHeader(opts.status)
			started = true
		}
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return
			}
			rc.Flush()
		}
		if err != nil {
			return
		}
	}
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
