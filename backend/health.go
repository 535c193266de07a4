package backend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// PassiveHealth marks a server down after consecutive failures seen by
// real requests. The zero value is on with the defaults below.
type PassiveHealth struct {
	// Disabled turns passive health off: failures never mark a server down.
	Disabled bool
	// MaxFails is how many consecutive failures mark a server down. A
	// failure is a request that got no response for a reason on the
	// server's side: a dial error, a timeout, or the connection closed or
	// reset before any response byte. HTTP error statuses are responses
	// and count as successes. Zero means 3.
	MaxFails int
	// FailTimeout is how long a server stays down. After it one request
	// is let through as a trial: a response brings the server back, a
	// failure marks it down again at once. Zero means 10s.
	FailTimeout time.Duration
}

// HealthCheck configures active health checks: a GET sent to every server
// at a fixed interval on a connection of its own.
type HealthCheck struct {
	// Path is the request target of the check, starting with "/".
	// Required.
	Path string
	// Interval is the time between checks of one server. Zero means 5s.
	Interval time.Duration
	// Timeout bounds one check: dial, write and response header. Zero
	// means 2s.
	Timeout time.Duration
	// HealthyThreshold is how many consecutive passing checks bring a
	// server that checks marked down back. Zero means 2.
	HealthyThreshold int
	// UnhealthyThreshold is how many consecutive failing checks mark a
	// server down. Zero means 3.
	UnhealthyThreshold int
	// ExpectStatus is the status a passing check answers. The zero value
	// means 2xx.
	ExpectStatus StatusRange
}

// StatusRange is an inclusive range of status codes: one code, such as
// 200, or a class, such as 2xx (RFC 9110 §15). The zero value means 2xx.
type StatusRange struct{ Min, Max int }

// ParseStatusRange parses "200" or "2xx".
func ParseStatusRange(s string) (StatusRange, error) {
	bad := fmt.Errorf("invalid status %q: want a code such as 200 or a class such as 2xx", s)
	if len(s) != 3 || s[0] < '1' || s[0] > '5' {
		return StatusRange{}, bad
	}
	if strings.EqualFold(s[1:], "xx") {
		c := int(s[0]-'0') * 100
		return StatusRange{c, c + 99}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return StatusRange{}, bad
	}
	return StatusRange{n, n}, nil
}

func (r StatusRange) String() string {
	if r.Min == r.Max {
		return strconv.Itoa(r.Min)
	}
	return fmt.Sprintf("%dxx", r.Min/100)
}

func (r StatusRange) match(code int) bool {
	if r == (StatusRange{}) {
		r = StatusRange{200, 299}
	}
	return r.Min <= code && code <= r.Max
}

func (h *PassiveHealth) setDefaults() {
	if h.MaxFails == 0 {
		h.MaxFails = 3
	}
	if h.FailTimeout == 0 {
		h.FailTimeout = 10 * time.Second
	}
}

func (h *HealthCheck) setDefaults() {
	if h.Interval == 0 {
		h.Interval = 5 * time.Second
	}
	if h.Timeout == 0 {
		h.Timeout = 2 * time.Second
	}
	if h.HealthyThreshold == 0 {
		h.HealthyThreshold = 2
	}
	if h.UnhealthyThreshold == 0 {
		h.UnhealthyThreshold = 3
	}
}

func (h *HealthCheck) validate() error {
	if u, err := url.ParseRequestURI(h.Path); err != nil || !strings.HasPrefix(h.Path, "/") || !validTarget(u.RequestURI()) {
		return fmt.Errorf("health check path %q: want a path starting with /", h.Path)
	}
	if h.Interval < 0 || h.Timeout < 0 || h.HealthyThreshold < 0 || h.UnhealthyThreshold < 0 {
		return errors.New("health check: negative interval, timeout or threshold")
	}
	if r := h.ExpectStatus; r != (StatusRange{}) && (r.Min < 100 || r.Max > 599 || r.Min > r.Max) {
		return fmt.Errorf("health check: invalid expected status %d-%d", r.Min, r.Max)
	}
	return nil
}

// ErrNoHealthyServer is the cause of the Unavailable error RoundTrip
// returns at once when every server of the backend is marked down.
var ErrNoHealthyServer = errors.New("no healthy server")

// A server's health is one word, p.health, so that picking a server costs
// one atomic load while it is healthy (the word is 0):
//
//	bit 63        marked down by active checks
//	bit 62        passive: a trial request holds the server
//	bits 0-61     passive: until when (p.clock) the server is down, or the
//	              trial holds it; 0 means passively up
//
// Passive state moves up → down (MaxFails consecutive failures) → trial
// (the first pick after FailTimeout claims it by compare-and-swap; other
// picks pass the server over) → up (a response) or down (a failure). A
// trial whose request ends neither way (cancelled by its client, say)
// lapses after FailTimeout and the next pick claims a new one.
const (
	activeDownBit uint64 = 1 << 63
	trialBit      uint64 = 1 << 62
	timeMask      uint64 = 1<<62 - 1
)

// clock is the time on the pool's monotonic clock, never 0.
func (p *pool) clock() uint64 { return uint64(time.Since(p.born)) + 1 }

// usable reports whether a request may go to this server now, claiming
// the trial if a passive down period has just ended.
func (p *pool) usable() bool {
	w := p.health.Load()
	if w == 0 {
		return true
	}
	if w&activeDownBit != 0 {
		return false
	}
	now := p.clock()
	if now < w&timeMask {
		return false // down, or another request holds the trial
	}
	return p.health.CompareAndSwap(w, trialBit|(now+uint64(p.passive.FailTimeout)))
}

// healthy reports whether usable would let a request through now.
func (p *pool) healthy() bool {
	w := p.health.Load()
	return w == 0 || w&activeDownBit == 0 && p.clock() >= w&timeMask
}

// passiveSuccess records a response: the failure run ends, and a trial
// (or any passive down period) with it.
func (p *pool) passiveSuccess() {
	if p.fails.Load() != 0 {
		p.fails.Store(0)
	}
	for {
		w := p.health.Load()
		if w&^activeDownBit == 0 || p.health.CompareAndSwap(w, w&activeDownBit) {
			return
		}
	}
}

// passiveFailure records a request that got no response for the server's
// fault, and marks the server down after MaxFails in a row, or at once
// after a failed trial.
func (p *pool) passiveFailure() {
	if p.passive.Disabled {
		return
	}
	trial := p.health.Load()&trialBit != 0
	if !trial && p.fails.Add(1) < int32(p.passive.MaxFails) {
		return
	}
	p.fails.Store(0)
	until := p.clock() + uint64(p.passive.FailTimeout)
	for {
		w := p.health.Load()
		if w&timeMask != 0 && w&trialBit == 0 {
			return // already down
		}
		if p.health.CompareAndSwap(w, w&activeDownBit|until) {
			p.markedDown.Add(1)
			return
		}
	}
}

// setActive records the verdict of the active checks.
func (p *pool) setActive(up bool) {
	for {
		w := p.health.Load()
		n := w | activeDownBit
		if up {
			n = w &^ activeDownBit
		}
		if n == w {
			return
		}
		if p.health.CompareAndSwap(w, n) {
			if !up {
				p.markedDown.Add(1)
			}
			return
		}
	}
}

// upstreamFault reports whether err, from a request whose client did not
// give up, shows a server that cannot serve: it could not be dialed, did
// not answer in time, or closed or reset the connection without a
// response. Errors of the request itself (invalid fields, a client body
// that ended early) and malformed responses do not count: the server
// answered.
func upstreamFault(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Op == "dial" || e.timeout || connGone(e.Err) || errors.Is(e.Err, os.ErrDeadlineExceeded)
}

// checkLoop runs the active checks of one server until ctx ends.
func (p *pool) checkLoop(ctx context.Context, hc *HealthCheck) {
	t := time.NewTicker(hc.Interval)
	defer t.Stop()
	passes, fails := 0, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if p.check(ctx, hc) {
			passes, fails = passes+1, 0
			if passes >= hc.HealthyThreshold {
				p.setActive(true)
			}
		} else {
			passes, fails = 0, fails+1
			if fails >= hc.UnhealthyThreshold {
				p.setActive(false)
			}
		}
	}
}

// check sends one health check on a connection of its own, with the same
// writer and parser as real requests, and closes it after the response
// header: the pool and its counters never see it. Host is the server's
// address, as for a request to it directly (RFC 9110 §7.2).
func (p *pool) check(ctx context.Context, hc *HealthCheck) bool {
	ctx, cancel := context.WithTimeout(ctx, hc.Timeout)
	defer cancel()
	nc, err := p.dial(ctx)
	if err != nil {
		return false
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(aLongTimeAgo) })
	defer stop()
	c := newConn(nc)
	u, _ := url.ParseRequestURI(hc.Path) // validated by New
	req := &http.Request{Method: http.MethodGet, URL: u, Host: p.addr, Header: http.Header{}}
	if err := writeRequestHead(c.bw, req, frameNone); err != nil {
		return false
	}
	if err := c.bw.Flush(); err != nil {
		return false
	}
	head, err := readResponseHead(c.br, http.MethodGet, maxResponseHeaderBytes, nil)
	return err == nil && hc.ExpectStatus.match(head.status)
}
