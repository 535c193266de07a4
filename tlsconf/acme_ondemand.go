package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// On-demand issuance orders a certificate for whatever name a client puts
// in SNI, so it is only as safe as its decision policy: the CA's rate
// limits (Let's Encrypt: 300 new orders per 3 hours per account) are easily
// exhausted by a scanner sending random names, and every order is public in
// Certificate Transparency logs. The policy therefore refuses by default.
// A name is allowed when it matches the allow-list or, failing that, when
// the operator's ask endpoint answers 200 for it. A refusal fails the
// handshake before storage or CA are touched; an allowed name may still be
// refused by the order rate limit (tokenBucket, checked in onEvent).

// askTimeout bounds a request to the ask endpoint; the client's handshake
// waits for it.
const askTimeout = 10 * time.Second

// onDemandPolicy decides which names may get a certificate on demand.
type onDemandPolicy struct {
	managed   map[string]bool // ACMEConfig.Domains: managed, never on demand
	exact     map[string]bool // normalized names from Allow
	wildcards []string        // ".example.com" for "*.example.com"
	ask       *url.URL        // nil without Ask
	client    *http.Client    // for ask
}

func newOnDemandPolicy(cfg OnDemandConfig, managed map[string]bool, roots *x509.CertPool) (*onDemandPolicy, error) {
	if len(cfg.Allow) == 0 && cfg.Ask == "" {
		return nil, errors.New("tlsconf: ACME OnDemand needs a decision policy (Allow, Ask or both): without one, any client could make hoplite order certificates for names of its choosing")
	}
	if cfg.MaxOrdersPerMinute < 0 {
		return nil, fmt.Errorf("tlsconf: ACME OnDemand.MaxOrdersPerMinute %d is negative", cfg.MaxOrdersPerMinute)
	}
	p := &onDemandPolicy{managed: managed, exact: map[string]bool{}}
	for i, raw := range cfg.Allow {
		n, ip := normalizeName(strings.TrimSpace(raw))
		if rest, ok := strings.CutPrefix(n, "*."); ok {
			// RFC 6125 §6.4.3: one label, so the rest is a plain name.
			if !validDNSName(rest) {
				return nil, fmt.Errorf("tlsconf: ACME OnDemand.Allow[%d] %q: a wildcard is \"*.\" followed by a DNS name", i, raw)
			}
			p.wildcards = append(p.wildcards, "."+rest)
			continue
		}
		if ip != nil || !validDNSName(n) {
			return nil, fmt.Errorf("tlsconf: ACME OnDemand.Allow[%d] %q: not a DNS name or *.wildcard", i, raw)
		}
		p.exact[n] = true
	}
	if cfg.Ask != "" {
		u, err := url.Parse(cfg.Ask)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("tlsconf: ACME OnDemand.Ask %q: want an http:// or https:// URL", cfg.Ask)
		}
		p.ask = u
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if roots != nil {
			tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		}
		p.client = &http.Client{
			Transport: tr,
			Timeout:   askTimeout,
			// A redirect could take the question somewhere the operator
			// did not configure; Caddy refuses them too.
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return errors.New("the ask endpoint must answer itself; redirects are not followed")
			},
		}
	}
	return p, nil
}

// decide returns nil if name may get a certificate on demand, else the
// reason for the refusal. It is certmagic's DecisionFunc: name comes from
// the ClientHello (punycode for IDNs).
func (p *onDemandPolicy) decide(ctx context.Context, raw string) error {
	name, ip := normalizeName(raw)
	switch {
	case p.managed[name]:
		// Obtained in the background; a handshake must not race that.
		return fmt.Errorf("%q is a managed domain, not obtained on demand", name)
	case ip != nil:
		return fmt.Errorf("%q is an IP address; only DNS names are obtained on demand", name)
	case !validDNSName(name):
		return fmt.Errorf("%q is not a valid host name", raw)
	case p.allowed(name):
		return nil
	case p.ask != nil:
		return p.askAllows(ctx, name)
	}
	return fmt.Errorf("%q is not in the on-demand allow list", name)
}

// allowed reports whether the allow-list matches name (normalized).
func (p *onDemandPolicy) allowed(name string) bool {
	if p.exact[name] {
		return true
	}
	for _, s := range p.wildcards {
		if label, ok := strings.CutSuffix(name, s); ok && label != "" && !strings.Contains(label, ".") {
			return true
		}
	}
	return false
}

// askAllows asks the ask endpoint about name: GET ASK?domain=NAME (other
// query parameters of the URL are kept); 200 allows.
func (p *onDemandPolicy) askAllows(ctx context.Context, name string) error {
	u := *p.ask
	q := u.Query()
	q.Set("domain", name)
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, askTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("ask %s: %w", p.ask.Redacted(), err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("ask endpoint: %w", unwrapURL(err))
	}
	// Drain a little so the connection can be reused; the body means
	// nothing.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ask endpoint answered %q for %q", resp.Status, name)
	}
	return nil
}

// unwrapURL drops the *url.Error wrapper, whose message repeats the URL.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// tokenBucket limits on-demand orders: up to burst at once, refilled at
// burst per minute. take is safe for concurrent use.
type tokenBucket struct {
	burst int
	now   func() time.Time

	mu     sync.Mutex
	tokens float64   // guarded by mu
	last   time.Time // guarded by mu; when tokens was last brought up to date
}

func newTokenBucket(perMinute int, now func() time.Time) *tokenBucket {
	return &tokenBucket{burst: perMinute, now: now, tokens: float64(perMinute), last: now()}
}

// take removes a token and reports whether there was one.
func (b *tokenBucket) take() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(float64(b.burst), b.tokens+d.Minutes()*float64(b.burst))
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
