package main

// Reload: SIGHUP or POST /reload on the admin endpoint re-reads the config
// file hoplite was started with and applies it without closing a client
// connection.
//
// The life of a reload. What a reload may change lives in a generation:
// the proxy handler with its routes and backends, and the certificate
// source (static files are read again; the internal CA issues from its
// same root for the new tls.names). The frontend holds the app itself as
// its http.Handler and a tls.Config whose GetCertificate asks the app, so
// it never learns that anything changed: every request takes a reference
// on the generation current when it arrives and keeps it until its
// handler returns, and every handshake asks the current generation for a
// certificate. A reload parses and validates the file, refuses changes to
// what only a restart can apply (restartNeeded), builds a complete new
// generation (any error, a certificate that does not load included,
// leaves the old one serving), swaps it in and retires the old one: once
// the last request holding it has returned, its backends are closed (their
// idle upstream connections go; busy ones cannot exist by then). Requests
// in flight thus finish on the routes and backends they started with;
// requests that arrive after the swap use the new ones.
//
// Reloads are serialized with each other and with shutdown by app.rl.mu:
// SIGTERM waits for a reload in progress to finish, and a reload after
// SIGTERM is refused.

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"hoplite/backend"
	"hoplite/tlsconf"
	"hoplite/translate"
)

// errStopping refuses a reload once shutdown has begun.
var errStopping = errors.New("hoplite: reload refused: shutting down")

// generation is what a reload replaces: routes, backends and
// certificates, built from one plan.
type generation struct {
	id       uint64 // 1 for the configuration started with
	plan     plan
	handler  http.Handler
	backends []*backend.Backend // parallel to plan.Backends
	tls      *tlsconf.Source    // nil when validating with the internal CA; shared across generations with ACME
	ca       *tlsconf.CA        // the internal CA; nil with other sources
	getCert  func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// nextProtos is the source's own ALPN list (acme-tls/1 with ACME).
	nextProtos []string

	// refs counts requests being served by this generation, plus
	// retiredBias once it is retired: retired and idle is exactly
	// refs == -retiredBias.
	refs      atomic.Int64
	retiredAt time.Time // set before retire; read by close
	closeOnce sync.Once
	closed    chan struct{}
}

const retiredBias = 1 << 62

// buildGeneration builds the routes, backends and certificate source of p.
// prev, if not nil, is the running generation: with ACME its source (and
// its background work) is kept, since tls.acme cannot change on reload.
// check is build's: validate only, creating no internal CA.
func buildGeneration(p plan, logger *slog.Logger, check bool, prev *generation) (_ *generation, err error) {
	g := &generation{plan: p, closed: make(chan struct{})}
	defer func() {
		if err != nil {
			g.close()
			if g.tls != nil && (prev == nil || g.tls != prev.tls) {
				g.tls.Close()
			}
		}
	}()

	switch {
	case prev != nil && p.TLS.ACME != nil:
		g.tls, g.getCert, g.nextProtos = prev.tls, prev.getCert, prev.nextProtos
	case check && p.InternalCA:
		g.getCert = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return nil, errors.New("hoplite validate: no certificates")
		}
	default:
		if p.InternalCA && p.TLS.DataDir == "" {
			return nil, errors.New("hoplite: the internal CA needs a data directory: set --data, data_dir or $HOPLITE_DATA")
		}
		tc := p.TLS
		if tc.ACME != nil {
			if tc.ACME.Storage == "" && tc.DataDir == "" {
				return nil, errors.New("hoplite: ACME keeps certificates in the data directory: set tls.acme.storage, --data, data_dir or $HOPLITE_DATA")
			}
			acme := *tc.ACME
			acme.Logger = logger
			tc.ACME = &acme
		}
		if g.tls, err = tlsconf.NewSource(tc); err != nil {
			return nil, err
		}
		c := g.tls.TLSConfig()
		g.getCert, g.nextProtos = c.GetCertificate, c.NextProtos
		if p.InternalCA {
			if g.ca, err = tlsconf.LoadOrCreateCA(p.TLS.DataDir); err != nil {
				return nil, err
			}
		}
	}

	rts := make(map[string]http.RoundTripper, len(p.Backends))
	for _, bc := range p.Backends {
		b, err := backend.New(bc)
		if err != nil {
			return nil, err
		}
		g.backends = append(g.backends, b)
		rts[bc.Name] = b
	}
	tc := p.Translate
	tc.Backends = rts
	if g.handler, err = translate.New(tc); err != nil {
		return nil, err
	}
	return g, nil
}

// acquire takes a reference for one request; false if g is retired.
func (g *generation) acquire() bool {
	if g.refs.Add(1) < 0 {
		g.release()
		return false
	}
	return true
}

// release drops a reference; the last one out of a retired generation
// closes it, off the request's goroutine.
func (g *generation) release() {
	if g.refs.Add(-1) == -retiredBias {
		go g.close()
	}
}

// retire marks g replaced; it is closed as soon as no request holds it.
// It returns the requests still holding it.
func (g *generation) retire() int64 {
	g.retiredAt = time.Now()
	n := g.refs.Add(-retiredBias) + retiredBias
	if n == 0 {
		go g.close()
	}
	return n
}

// close closes g's backends, once. Backend.Close cuts no exchange: busy
// upstream connections close when released. It does not close the
// certificate source, which a later generation may share.
func (g *generation) close() {
	g.closeOnce.Do(func() {
		for _, b := range g.backends {
			b.Close()
		}
		close(g.closed)
	})
}

func (g *generation) isClosed() bool {
	select {
	case <-g.closed:
		return true
	default:
		return false
	}
}

// ServeHTTP serves r with the generation current when it arrives. A
// generation retired between the load and the acquire is skipped: the
// next load sees its successor.
func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := a.acquire()
	defer g.release() // also when the handler panics (http.ErrAbortHandler)
	g.handler.ServeHTTP(w, r)
}

// acquire returns the current generation with a reference taken.
func (a *app) acquire() *generation {
	for {
		if g := a.gen.Load(); g.acquire() {
			return g
		}
	}
}

// getCertificate is the frontend's tls.Config.GetCertificate: the current
// generation's certificate source decides.
func (a *app) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return a.gen.Load().getCert(hello)
}

// reloadState is what reloads need besides the generations; guarded by
// mu, which also serializes reloads with shutdown.
type reloadState struct {
	mu       sync.Mutex
	stopping bool
	// file is the config file to read again. When it is "", noFile says
	// why there is none.
	file, noFile string
	cfg          *Config // the configuration applied last
	dataDir      string  // its resolved data directory
	resolveDir   func(configDir string) (string, error)
	nextID       uint64
	retired      []*generation // retired, maybe not yet closed
}

// initReload records what serve started with, for later reloads.
func (a *app) initReload(cfg *Config, dataDir string, resolveDir func(string) (string, error)) {
	rl := &a.rl
	rl.mu.Lock()
	defer rl.mu.Unlock()
	rl.cfg, rl.dataDir, rl.resolveDir = cfg, dataDir, resolveDir
	switch {
	case cfg.src == nil:
		rl.noFile = "hoplite: reload refused: hoplite proxy takes its configuration from flags, there is no file to read again; restart it to change anything"
	case cfg.src.file == defaultConfigName:
		rl.noFile = "hoplite: reload refused: hoplite was started on the built-in configuration (no --config), which cannot change; start it with --config FILE to reload from a file"
	default:
		rl.file = cfg.src.file
	}
}

// reload re-reads the configuration file and applies it, or refuses it
// and keeps the running one. trigger says what asked ("SIGHUP", "admin").
func (a *app) reload(trigger string) error {
	a.rl.mu.Lock()
	defer a.rl.mu.Unlock()
	if a.rl.stopping {
		a.logger.Warn("reload refused: shutting down", "trigger", trigger)
		return errStopping
	}
	start := time.Now()
	old := a.gen.Load()
	g, inflight, err := a.reloadLocked(old)
	if err != nil {
		a.logger.Error("reload refused; the running configuration stays", "trigger", trigger, "err", err.Error())
		return err
	}
	a.logger.Info("configuration reloaded", "trigger", trigger, "file", a.rl.file,
		"generation", g.id, "routes", len(g.plan.Translate.Routes), "backends", len(g.backends),
		"previous_in_flight", inflight, "took", time.Since(start).Round(time.Microsecond))
	return nil
}

func (a *app) reloadLocked(old *generation) (*generation, int64, error) {
	rl := &a.rl
	if rl.file == "" {
		return nil, 0, errors.New(rl.noFile)
	}
	cfg, err := loadConfig(rl.file)
	if err != nil {
		return nil, 0, err
	}
	dir, dirErr := rl.resolveDir(cfg.DataDir)
	if err := restartNeeded(rl.cfg, rl.dataDir, cfg, dir); err != nil {
		return nil, 0, err
	}
	p := cfg.plan(dir)
	if dirErr != nil && p.InternalCA {
		return nil, 0, fmt.Errorf("hoplite: %w", dirErr)
	}
	g, err := buildGeneration(p, a.logger, false, old)
	if err != nil {
		return nil, 0, err
	}
	rl.nextID++
	g.id = rl.nextID
	a.gen.Store(g)
	if old.tls != nil && old.tls != g.tls {
		old.tls.Close() // static files and the internal CA: nothing runs
	}
	inflight := old.retire()
	// Forget generations already closed; shutdown closes the others.
	kept := rl.retired[:0]
	for _, r := range rl.retired {
		if !r.isClosed() {
			kept = append(kept, r)
		}
	}
	rl.retired = append(kept, old)
	go func() {
		<-old.closed
		a.logger.Info("previous configuration closed", "generation", old.id,
			"after", time.Since(old.retiredAt).Round(time.Millisecond))
	}()
	rl.cfg, rl.dataDir = cfg, dir
	return g, inflight, nil
}

// stopReloads waits for a reload in progress and refuses later ones.
func (a *app) stopReloads() {
	a.rl.mu.Lock()
	a.rl.stopping = true
	a.rl.mu.Unlock()
}

// retiredGenerations returns the retired generations not yet closed.
func (a *app) retiredGenerations() []*generation {
	a.rl.mu.Lock()
	defer a.rl.mu.Unlock()
	return append([]*generation(nil), a.rl.retired...)
}

// restartNeeded compares a new configuration with the running one and
// reports every change a reload cannot apply, at the new file's line:
// the listeners (listen, http3, plain_listen, admin), the data directory,
// the client-side limits (downstream), and ACME (tls.acme, whose account,
// storage and background work are bound at start). dir is a
// configuration's resolved data directory.
func restartNeeded(old *Config, oldDir string, cfg *Config, dir string) error {
	var errs []error
	changed := func(field, from, to string) {
		errs = append(errs, cfg.src.errorf(field, "changed from %s to %s: needs a restart (a reload cannot apply it)", from, to))
	}
	for _, f := range []struct{ field, from, to string }{
		{"listen", old.Listen, cfg.Listen},
		{"plain_listen", old.PlainListen, cfg.PlainListen},
		{"admin", old.Admin, cfg.Admin},
		{"data_dir", oldDir, dir},
	} {
		if f.from != f.to {
			changed(f.field, strconv.Quote(f.from), strconv.Quote(f.to))
		}
	}
	if h3 := func(c *Config) bool { return c.HTTP3 == nil || *c.HTTP3 }; h3(old) != h3(cfg) {
		changed("http3", strconv.FormatBool(h3(old)), strconv.FormatBool(h3(cfg)))
	}

	// Downstream limits shape the protocol servers built at start. A
	// field that changes its spelling but not its effect (keep_alive_header
	// left out or true) needs nothing.
	oldFront, front := old.plan(oldDir).Frontend, cfg.plan(dir).Frontend
	oldFront.Addr, oldFront.PlainAddr, oldFront.DisableHTTP3 = front.Addr, front.PlainAddr, front.DisableHTTP3
	if !reflect.DeepEqual(oldFront, front) {
		n := len(errs)
		for _, f := range changedFields("downstream", reflect.ValueOf(old.Downstream), reflect.ValueOf(cfg.Downstream)) {
			changed(f.field, f.from, f.to)
		}
		if len(errs) == n {
			errs = append(errs, cfg.src.errorf("downstream", "client-side settings changed: needs a restart (a reload cannot apply it)"))
		}
	}

	switch oa, na := old.TLS.ACME, cfg.TLS.ACME; {
	case oa == nil && na != nil:
		errs = append(errs, cfg.src.errorf("tls.acme", "added: switching to ACME needs a restart (a reload cannot apply it)"))
	case oa != nil && na == nil:
		errs = append(errs, cfg.src.errorf("tls", "tls.acme removed: switching away from ACME needs a restart (a reload cannot apply it)"))
	case oa != nil:
		for _, f := range changedFields("tls.acme", reflect.ValueOf(*oa), reflect.ValueOf(*na)) {
			changed(f.field, f.from, f.to)
		}
	}
	return errors.Join(errs...)
}

type fieldChange struct{ field, from, to string }

// changedFields lists the fields of two values of one config struct type
// that differ, by their dotted yaml path under prefix.
func changedFields(prefix string, a, b reflect.Value) []fieldChange {
	var out []fieldChange
	t := a.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("yaml")
		if tag == "" || tag == "-" || !sf.IsExported() {
			continue
		}
		x, y := a.Field(i), b.Field(i)
		if reflect.DeepEqual(x.Interface(), y.Interface()) {
			continue
		}
		out = append(out, fieldChange{prefix + "." + tag, showValue(x), showValue(y)})
	}
	return out
}

// showValue renders a config value for a "changed from X to Y" message.
func showValue(v reflect.Value) string {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "(default)"
		}
		v = v.Elem()
	}
	switch x := v.Interface().(type) {
	case Duration:
		return time.Duration(x).String()
	case string:
		return strconv.Quote(x)
	}
	switch v.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int64, reflect.Uint32, reflect.Uint64:
		return fmt.Sprint(v.Interface())
	}
	s := fmt.Sprintf("%v", v.Interface())
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// adminReload is POST /reload.
func (a *app) adminReload() error { return a.reload("admin") }
