package tlsconf

// ACME (RFC 8555) through github.com/caddyserver/certmagic.
//
// The life of an ACME certificate here. NewSource checks the configuration,
// reads the trusted roots and builds certmagic's pieces: one in-memory
// certificate cache (whose maintenance goroutine renews what it holds), one
// certmagic.Config for the managed Domains and, with OnDemand, a second one
// for names decided at handshake time; both share the cache and the
// storage. Nothing talks to the CA yet. The frontend binds its listeners
// and serves this source's *tls.Config (and HTTPChallenge on the plain
// listener); then Start tells certmagic where those listeners are and hands
// the Domains to ManageAsync: each name is loaded from storage or, if
// absent, obtained in the background, one job per name, retried with
// backoff for up to 30 days (RFC 8555 §7.4: a new order; §8: the CA
// validates control of the name by HTTP-01 on port 80, §8.3, or by
// TLS-ALPN-01 on port 443, RFC 8737 §3; §7.4.2: the certificate is
// downloaded once the order is valid). Certificates, keys and the ACME
// account (§7.3) land in storage, so a restart loads them and orders
// nothing. The cache's maintenance renews them in the background when a
// third of their lifetime is left (or when the CA's renewal information,
// RFC 9773, says so), and staples OCSP responses where the CA offers them.
//
// On demand: a handshake for a name that is neither managed nor in memory
// asks the decision policy (acme_ondemand.go) first. A refusal fails the
// handshake at once, before storage or CA are touched. An allowed name is
// loaded from storage or, failing that, ordered during the handshake, if
// the order rate limit has a token left. On-demand certificates are renewed
// during handshakes, as certmagic does for them, not by the maintenance
// loop.
//
// certmagic's challenge solvers would open their own listeners on ports 80
// and 443 when nothing listens there; Start points them at hoplite's own
// listeners, which they find in use, so they never do.

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"
)

// ACMEConfig configures certificates from an ACME CA. Zero values select
// the documented defaults.
type ACMEConfig struct {
	// Domains are obtained and renewed in the background from Start on.
	// Each is a DNS name; wildcards need the DNS-01 challenge, which is not
	// supported, and IP addresses are not supported. A handshake for a
	// domain whose certificate is not there yet fails (it never triggers an
	// on-demand order).
	Domains []string
	// CA is the ACME directory URL (RFC 8555 §7.1.1), https only. Empty or
	// "letsencrypt" means Let's Encrypt production; "letsencrypt-staging"
	// its staging environment (untrusted certificates, generous limits).
	CA string
	// Email is the account contact (RFC 8555 §7.3), for the CA's expiry and
	// incident mail. Optional.
	Email string
	// TrustedRoots are PEM files of root certificates trusted, in addition
	// to the system roots, for HTTPS to the CA and to OnDemand.Ask: for
	// private CAs and test CAs such as Pebble.
	TrustedRoots []string
	// EAB is External Account Binding (RFC 8555 §7.3.4), for CAs that
	// require it; nil means none.
	EAB *EAB
	// Storage is the directory for certificates, keys, the account and
	// locks (certmagic.FileStorage). Empty means DataDir/acme. Instances
	// sharing it share certificates and coordinate orders through its locks.
	Storage string
	// DisableHTTP01 turns off the HTTP-01 challenge (RFC 8555 §8.3). With
	// it on, Start needs a plain-HTTP listener serving HTTPChallenge; the
	// CA connects to port 80.
	DisableHTTP01 bool
	// DisableTLSALPN01 turns off the TLS-ALPN-01 challenge (RFC 8737); the
	// CA connects to port 443 of the TLS listener. At least one challenge
	// must stay on.
	DisableTLSALPN01 bool
	// OnDemand, if set, obtains certificates during handshakes for names
	// that are not in Domains, as far as its policy allows.
	OnDemand *OnDemandConfig
	// RenewCheckInterval is how often the background maintenance looks for
	// certificates due for renewal. Zero means certmagic's default (10m).
	RenewCheckInterval time.Duration
	// Logger receives certmagic's logs and hoplite's own ACME events
	// ("acme: ..."). Nil means slog.Default().
	Logger *slog.Logger
}

// EAB is an External Account Binding: a key identifier and a MAC key
// (base64url) from the CA (RFC 8555 §7.3.4).
type EAB struct {
	KeyID, MACKey string
}

// OnDemandConfig is the decision policy for certificates obtained during
// handshakes. At least one of Allow and Ask is required: without a policy
// any client could make hoplite order certificates for names of its
// choosing (and use up the CA's rate limits).
type OnDemandConfig struct {
	// Allow lists names that may be obtained: exact DNS names, or
	// "*.example.com" for exactly one label in front of example.com (not
	// example.com itself, not a.b.example.com).
	Allow []string
	// Ask is a URL asked about names Allow does not match, as Caddy does:
	// GET ASK?domain=NAME, and only 200 allows. Redirects are not followed;
	// no answer within 10s refuses.
	Ask string
	// MaxOrdersPerMinute caps on-demand orders (including renewals done
	// during handshakes) with a token bucket of that size, refilled
	// evenly over a minute. Zero means DefaultMaxOrdersPerMinute. An order
	// over the limit fails its handshake without contacting the CA.
	MaxOrdersPerMinute int
}

// CA shortcuts accepted in ACMEConfig.CA.
const (
	CALetsEncrypt        = "letsencrypt"
	CALetsEncryptStaging = "letsencrypt-staging"
)

// DefaultMaxOrdersPerMinute is OnDemandConfig.MaxOrdersPerMinute's default.
const DefaultMaxOrdersPerMinute = 10

// alpnACMETLS1 is the ALPN protocol of TLS-ALPN-01 validation (RFC 8737
// §6.2). The CA offers it alone, with the name being validated in SNI
// (RFC 8737 §3).
const alpnACMETLS1 = "acme-tls/1"

// Retry schedule when storage is not usable at Start. certmagic retries
// failed orders itself, but not a failed storage check, which comes first.
const (
	storageRetryFirst = time.Minute
	storageRetryMax   = time.Hour
)

// acmeSource is the ACME certificate source.
type acmeSource struct {
	log       *slog.Logger
	domains   []string        // normalized, managed in the background
	isManaged map[string]bool // the same names, for lookups
	ca        string
	storage   *certmagic.FileStorage
	httpOff   bool

	cache       *certmagic.Cache
	managed     *certmagic.Config
	managedIss  *certmagic.ACMEIssuer // nil when a test replaced the issuer
	onDemand    *certmagic.Config     // nil without OnDemand
	onDemandIss *certmagic.ACMEIssuer
	policy      *onDemandPolicy // nil without OnDemand
	orderLimit  *tokenBucket    // nil without OnDemand

	ctx       context.Context // canceled by close
	cancel    context.CancelFunc
	startOnce sync.Once
	started   atomic.Bool    // set once Start has configured the solvers
	closed    atomic.Bool    // set by close
	bg        sync.WaitGroup // the goroutine started by start

	storageRetry time.Duration // first storage retry; storageRetryFirst

	// Counters, for tests and for the admin endpoint later.
	orders        atomic.Int64 // orders let through (certmagic's cert_obtaining)
	ordersLimited atomic.Int64 // on-demand orders refused by the rate limit
	refused       atomic.Int64 // on-demand names refused by the policy
}

// acmeOptions are test hooks; the zero value is production.
type acmeOptions struct {
	// issuer replaces the ACME issuer of a certmagic config.
	issuer func(*certmagic.Config) certmagic.Issuer
	// storageRetry replaces storageRetryFirst.
	storageRetry time.Duration
}

func newACMESource(cfg ACMEConfig, dataDir string) (*acmeSource, error) {
	return buildACME(cfg, dataDir, acmeOptions{})
}

func buildACME(cfg ACMEConfig, dataDir string, opt acmeOptions) (*acmeSource, error) {
	domains, err := acmeDomains(cfg.Domains)
	if err != nil {
		return nil, err
	}
	ca, err := acmeCA(cfg.CA)
	if err != nil {
		return nil, err
	}
	switch {
	case len(domains) == 0 && cfg.OnDemand == nil:
		return nil, errors.New("tlsconf: ACME needs Domains, OnDemand or both")
	case cfg.DisableHTTP01 && cfg.DisableTLSALPN01:
		return nil, errors.New("tlsconf: ACME needs at least one challenge; HTTP-01 and TLS-ALPN-01 are both disabled")
	case cfg.RenewCheckInterval < 0:
		return nil, fmt.Errorf("tlsconf: ACME RenewCheckInterval %v is negative", cfg.RenewCheckInterval)
	case strings.ContainsAny(cfg.Email, " \t\r\n"):
		return nil, fmt.Errorf("tlsconf: ACME Email %q is not an email address", cfg.Email)
	}
	var eab *acme.EAB
	if cfg.EAB != nil && (cfg.EAB.KeyID != "" || cfg.EAB.MACKey != "") {
		if cfg.EAB.KeyID == "" || cfg.EAB.MACKey == "" {
			return nil, errors.New("tlsconf: ACME EAB needs both KeyID and MACKey")
		}
		eab = &acme.EAB{KeyID: cfg.EAB.KeyID, MACKey: cfg.EAB.MACKey}
	}
	roots, err := loadTrustedRoots(cfg.TrustedRoots)
	if err != nil {
		return nil, err
	}
	storage := cfg.Storage
	if storage == "" {
		if dataDir == "" {
			return nil, errors.New("tlsconf: ACME needs a storage directory: set Storage or DataDir")
		}
		storage = filepath.Join(dataDir, "acme")
	}
	isManaged := make(map[string]bool, len(domains))
	for _, d := range domains {
		isManaged[d] = true
	}
	var policy *onDemandPolicy
	if cfg.OnDemand != nil {
		if policy, err = newOnDemandPolicy(*cfg.OnDemand, isManaged, roots); err != nil {
			return nil, err
		}
	}

	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	a := &acmeSource{
		log:          logger,
		domains:      domains,
		isManaged:    isManaged,
		ca:           ca,
		storage:      &certmagic.FileStorage{Path: storage},
		httpOff:      cfg.DisableHTTP01,
		policy:       policy,
		storageRetry: storageRetryFirst,
	}
	if opt.storageRetry > 0 {
		a.storageRetry = opt.storageRetry
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	zl := zap.New(newSlogCore(logger.Handler())).Named("certmagic")

	// RFC 8555 §7.3: the account is created on first use (the CA's terms
	// of service are agreed to by configuring the CA) and stored, so later
	// orders and restarts reuse it.
	template := certmagic.ACMEIssuer{
		CA:                      ca,
		Email:                   cfg.Email,
		Agreed:                  true,
		ExternalAccount:         eab,
		DisableHTTPChallenge:    cfg.DisableHTTP01,
		DisableTLSALPNChallenge: cfg.DisableTLSALPN01,
		TrustedRoots:            roots,
		Logger:                  zl,
	}
	newConfig := func(od *certmagic.OnDemandConfig) (*certmagic.Config, *certmagic.ACMEIssuer) {
		c := certmagic.New(a.cache, certmagic.Config{
			OnDemand:       od,
			OnEvent:        a.onEvent(od != nil),
			ShouldEmitFunc: shouldEmit,
			Storage:        a.storage,
			Logger:         zl,
		})
		if opt.issuer != nil {
			c.Issuers = []certmagic.Issuer{opt.issuer(c)}
			return c, nil
		}
		iss := certmagic.NewACMEIssuer(c, template)
		c.Issuers = []certmagic.Issuer{iss}
		return c, iss
	}
	a.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   a.configForCert,
		RenewCheckInterval: cfg.RenewCheckInterval,
		Logger:             zl,
	})
	a.managed, a.managedIss = newConfig(nil)
	if cfg.OnDemand != nil {
		a.orderLimit = newTokenBucket(cmp.Or(cfg.OnDemand.MaxOrdersPerMinute, DefaultMaxOrdersPerMinute), time.Now)
		a.onDemand, a.onDemandIss = newConfig(&certmagic.OnDemandConfig{DecisionFunc: a.decide})
	}
	return a, nil
}

// acmeDomains normalizes and checks ACMEConfig.Domains.
func acmeDomains(in []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for i, raw := range in {
		n, ip := normalizeName(strings.TrimSpace(raw))
		switch {
		case strings.HasPrefix(n, "*."):
			// RFC 8555 §7.1.3: a wildcard identifier is only validated by
			// DNS-01 (Let's Encrypt allows nothing else), which needs a DNS
			// provider's API.
			return nil, fmt.Errorf("tlsconf: ACME Domains[%d] %q: wildcard certificates need the DNS-01 challenge, which is not supported; list the names, or use OnDemand with Allow %q", i, raw, n)
		case ip != nil:
			return nil, fmt.Errorf("tlsconf: ACME Domains[%d] %q: IP addresses are not supported; use a DNS name", i, raw)
		case !validDNSName(n):
			return nil, fmt.Errorf("tlsconf: ACME Domains[%d] %q: not a DNS name", i, raw)
		case seen[n]:
			continue
		}
		seen[n] = true
		out = append(out, n)
	}
	return out, nil
}

// acmeCA resolves ACMEConfig.CA to a directory URL.
func acmeCA(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", CALetsEncrypt:
		return certmagic.LetsEncryptProductionCA, nil
	case CALetsEncryptStaging:
		return certmagic.LetsEncryptStagingCA, nil
	}
	// RFC 8555 §6.1: ACME runs over HTTPS only.
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("tlsconf: ACME CA %q: want an https:// directory URL, %q or %q", s, CALetsEncrypt, CALetsEncryptStaging)
	}
	return s, nil
}

// loadTrustedRoots returns the system roots plus the certificates in files,
// or nil when files is empty (certmagic then uses the system roots).
func loadTrustedRoots(files []string) (*x509.CertPool, error) {
	if len(files) == 0 {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: ACME trusted root %s: %w", f, unwrapPath(err))
		}
		certs, err := parseCertificates(data)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: ACME trusted root %s: %w", f, err)
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
	}
	return pool, nil
}

// configForCert tells the cache's maintenance which config manages a
// cached certificate: the managed one for Domains, else the on-demand one.
func (a *acmeSource) configForCert(c certmagic.Certificate) (*certmagic.Config, error) {
	for _, n := range c.Names {
		if a.isManaged[n] {
			return a.managed, nil
		}
	}
	if a.onDemand != nil {
		return a.onDemand, nil
	}
	return a.managed, nil
}

func (a *acmeSource) tlsConfig() *tls.Config {
	c := baseConfig(a.getCertificate)
	// RFC 8737 §3: the TLS listener must be able to negotiate acme-tls/1.
	// A normal client never offers it, so it never displaces h2 or
	// http/1.1, which the frontend appends.
	c.NextProtos = []string{alpnACMETLS1}
	return c
}

// getCertificate routes a ClientHello to the certmagic config for its name.
// The managed config never orders during a handshake; only names that are
// not managed reach the on-demand config, whose policy decides.
func (a *acmeSource) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name, _ := normalizeName(hello.ServerName)
	cfg := a.managed
	// A TLS-ALPN-01 validation (RFC 8737 §3: only acme-tls/1 offered)
	// is answered from the challenges in flight, by either config alike.
	ctx := hello.Context()
	if a.onDemand != nil && name != "" && !a.isManaged[name] && !isACMETLSHello(hello) {
		if !a.started.Load() {
			return nil, fmt.Errorf("tlsconf: acme: no certificate for %q: not started yet", name)
		}
		cfg = a.onDemand
		// certmagic retries a failed order for minutes; a client must not
		// be held that long (nor hold a connection that long). The order
		// goes on in the background, for the next handshake.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, onDemandWait)
		defer cancel()
	}
	cert, err := cfg.GetCertificateWithContext(ctx, hello)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: acme: %w", err)
	}
	return cert, nil
}

// onDemandWait bounds how long a handshake waits for an on-demand
// certificate. Let's Encrypt usually issues within seconds; a CA that is
// down would otherwise hold the handshake for certmagic's whole retry
// window (3 minutes). It stays under the frontend's default handshake
// deadline (10s, its ReadHeaderTimeout), so that the client gets a TLS
// alert rather than a dropped connection.
const onDemandWait = 8 * time.Second

func isACMETLSHello(hello *tls.ClientHelloInfo) bool {
	return len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == alpnACMETLS1
}

// httpChallenge answers HTTP-01 validations (RFC 8555 §8.3) in front of
// next. certmagic keeps challenges in flight in process memory and, for
// instances sharing storage, in storage; either issuer finds both.
func (a *acmeSource) httpChallenge(next http.Handler) http.Handler {
	if a.httpOff || a.managedIss == nil {
		return next
	}
	return a.managedIss.HTTPChallengeHandler(next)
}

// start points certmagic's solvers at hoplite's listeners, opens on-demand
// issuance, and begins managing Domains in the background.
func (a *acmeSource) start(tlsAddr, httpAddr net.Addr) error {
	if tlsAddr == nil {
		return errors.New("tlsconf: acme: Start needs the TLS listener's address (TLS-ALPN-01)")
	}
	if !a.httpOff && httpAddr == nil {
		return errors.New("tlsconf: acme: HTTP-01 is enabled but there is no plain-HTTP listener; serve HTTPChallenge on one (port 80) or disable HTTP-01")
	}
	if a.closed.Load() {
		return errors.New("tlsconf: acme: Start after Close")
	}
	host, tlsPort, err := splitAddr(tlsAddr)
	if err != nil {
		return fmt.Errorf("tlsconf: acme: TLS listener address %s: %w", tlsAddr, err)
	}
	httpPort := 0
	if httpAddr != nil {
		if _, httpPort, err = splitAddr(httpAddr); err != nil {
			return fmt.Errorf("tlsconf: acme: plain listener address %s: %w", httpAddr, err)
		}
	}
	a.startOnce.Do(func() {
		// Before any obtain can run: only start (and the handshakes
		// that wait for a.started) ever lead to certmagic reading these.
		for _, iss := range []*certmagic.ACMEIssuer{a.managedIss, a.onDemandIss} {
			if iss == nil {
				continue
			}
			// certmagic dials HOST:PORT, finds hoplite listening, and
			// leaves the challenge to it (solvers.go robustTryListen).
			iss.ListenHost = host
			iss.AltTLSALPNPort = tlsPort
			if httpPort != 0 {
				iss.AltHTTPPort = httpPort
			}
		}
		a.started.Store(true)
		if len(a.domains) > 0 {
			a.bg.Go(a.manage)
		}
	})
	return nil
}

// splitAddr returns the host certmagic should dial for a bound listener
// ("" for a wildcard address: certmagic then dials the local host) and the
// port.
func splitAddr(addr net.Addr) (string, int, error) {
	host, p, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 {
		return "", 0, fmt.Errorf("invalid port %q", p)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = ""
	}
	return host, port, nil
}

// manage waits for usable storage, then hands the Domains to certmagic.
func (a *acmeSource) manage() {
	wait := a.storageRetry
	for {
		err := a.checkStorage(a.ctx)
		if err == nil {
			break
		}
		if a.ctx.Err() != nil {
			return
		}
		a.log.Error("acme: storage is not usable; will retry", "domains", a.domains,
			"storage", a.storage.Path, "err", err, "retry_in", wait)
		select {
		case <-a.ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, storageRetryMax)
	}
	a.log.Info("acme: managing certificates", "domains", a.domains, "ca", a.ca, "storage", a.storage.Path)
	// Returns at once; certmagic logs and retries failures per name.
	if err := a.managed.ManageAsync(a.ctx, a.domains); err != nil {
		a.log.Error("acme: managing certificates", "domains", a.domains, "err", err)
	}
}

// checkStorage writes, reads back and deletes a probe, as certmagic does
// before an order, so that an unusable storage is reported (and retried)
// before certmagic would give up on it for good.
func (a *acmeSource) checkStorage(ctx context.Context) error {
	var b [8]byte
	_, _ = rand.Read(b[:])
	key := "hoplite_storage_check_" + hex.EncodeToString(b[:])
	if err := a.storage.Store(ctx, key, b[:]); err != nil {
		return err
	}
	defer func() { _ = a.storage.Delete(context.WithoutCancel(ctx), key) }()
	got, err := a.storage.Load(ctx, key)
	if err != nil {
		return err
	}
	if string(got) != string(b[:]) {
		return errors.New("read back different bytes than written")
	}
	return nil
}

func (a *acmeSource) close() {
	a.closed.Store(true)
	a.cancel()
	a.bg.Wait()
	a.cache.Stop()
}

// shouldEmit limits certmagic's events to the ones onEvent uses, so it
// does not build event data on every handshake.
func shouldEmit(event string) bool {
	switch event {
	case "cert_obtaining", "cert_obtained", "cert_failed":
		return true
	}
	return false
}

var errOrderRateLimited = errors.New("on-demand order rate limit reached")

// onEvent logs certmagic's order events and enforces the on-demand order
// rate limit at the one point every order passes: "cert_obtaining" fires
// after storage was found without a usable certificate and before the
// issuer contacts the CA. Returning ErrNoRetry stops certmagic from
// retrying the refused order.
func (a *acmeSource) onEvent(onDemand bool) func(context.Context, string, map[string]any) error {
	return func(_ context.Context, event string, data map[string]any) error {
		name, _ := data["identifier"].(string)
		renewal, _ := data["renewal"].(bool)
		switch event {
		case "cert_obtaining":
			if onDemand && !a.orderLimit.take() {
				a.ordersLimited.Add(1)
				a.log.Warn("acme: on-demand order refused: rate limit", "domain", name,
					"renewal", renewal, "max_orders_per_minute", a.orderLimit.burst)
				return certmagic.ErrNoRetry{Err: errOrderRateLimited}
			}
			a.orders.Add(1)
			a.log.Info("acme: obtaining certificate", "domain", name, "renewal", renewal, "on_demand", onDemand)
		case "cert_obtained":
			a.log.Info("acme: certificate obtained", "domain", name, "renewal", renewal, "on_demand", onDemand)
		case "cert_failed":
			a.log.Error("acme: obtaining certificate failed", "domain", name, "renewal", renewal,
				"on_demand", onDemand, "err", data["error"])
		}
		return nil
	}
}

// decide is certmagic's on-demand DecisionFunc: nil allows name.
func (a *acmeSource) decide(ctx context.Context, name string) error {
	err := a.policy.decide(ctx, name)
	if err != nil {
		a.refused.Add(1)
		// Debug: random SNI from scanners would flood the log otherwise.
		a.log.Debug("acme: on-demand certificate refused", "domain", name, "reason", err)
	}
	return err
}
