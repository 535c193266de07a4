package main

import (
	"context"
	"crypto/tls"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"hoplite/backend"
	"hoplite/frontend"
	"hoplite/tlsconf"
	"hoplite/translate"
)

// defaultConfig is the config "hoplite run" uses without --config. It is
// also the annotated reference for every field.
//
//go:embed default.yaml
var defaultConfig []byte

const defaultConfigName = "<built-in default.yaml>"

// shutdownGrace bounds the graceful drain after SIGINT or SIGTERM.
const shutdownGrace = 30 * time.Second

// forceExit ends the process when a second signal arrives and the drain
// does not stop by itself soon after.
var forceExit = os.Exit

// loadConfig reads and validates a config file; "" means the built-in one.
func loadConfig(file string) (*Config, error) {
	if file == "" {
		return parseConfig(defaultConfigName, defaultConfig)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parseConfig(file, data)
}

func (c *cli) runCmd(args []string) int {
	fs := c.flags("run", "[--config FILE] [--data DIR]")
	file := fs.String("config", "", "config `FILE` (default: the built-in config, see default.yaml)")
	data := fs.String("data", "", "data `DIR` for the internal CA (overrides data_dir)")
	if code := c.parse(fs, args); code >= 0 {
		return code
	}
	cfg, err := loadConfig(*file)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return 1
	}
	return c.serve(cfg, *data)
}

func (c *cli) validateCmd(args []string) int {
	fs := c.flags("validate", "--config FILE")
	file := fs.String("config", "", "config `FILE` to check (required)")
	if code := c.parse(fs, args); code >= 0 {
		return code
	}
	if *file == "" {
		fmt.Fprintln(c.stderr, "hoplite validate: --config is required")
		fs.Usage()
		return 2
	}
	cfg, err := loadConfig(*file)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return 1
	}
	dir, _ := c.dataDir("", cfg.DataDir) // build(check) creates no CA and contacts none
	a, err := build(cfg.plan(dir), slog.New(slog.NewTextHandler(io.Discard, nil)), true)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return 1
	}
	a.release()
	fmt.Fprintln(c.stdout, "config OK")
	return 0
}

// app is a built proxy: every component constructed, nothing bound.
type app struct {
	// plan is the plan started with. Of it, a reload changes only what a
	// generation holds (routes, backends, certificates; reload.go), so its
	// listeners, downstream limits and admin address stay true.
	plan     plan
	gen      atomic.Pointer[generation] // the routes, backends and certificates serving now
	rl       reloadState                // reload.go
	frontend *frontend.Server
	admin    *http.Server // nil without an admin address
	logger   *slog.Logger
}

// build constructs tlsconf → backends → translate → frontend from p,
// binding nothing and contacting nothing (a backend with health_check
// starts its checkers, whose first check comes one interval later; release
// stops them). With check set (validate), the
// internal CA is neither loaded nor created, so validating never writes to
// the data directory; static certificate files and ACME's trusted roots
// are loaded and checked either way. An ACME source does no work until
// start.
//
// The frontend gets the app itself as its handler and a tls.Config whose
// GetCertificate asks the app, so that a reload can swap the generation
// under it (reload.go).
func build(p plan, logger *slog.Logger, check bool) (_ *app, err error) {
	a := &app{plan: p, logger: logger}
	g, err := buildGeneration(p, logger, check, nil)
	if err != nil {
		return nil, err
	}
	g.id = 1
	a.rl.nextID = 1
	a.gen.Store(g)
	defer func() {
		if err != nil {
			a.release()
		}
	}()

	tlsCfg := &tls.Config{
		// As every tlsconf source has it (tlsconf.baseConfig).
		MinVersion:     tls.VersionTLS12,
		GetCertificate: a.getCertificate,
		NextProtos:     g.nextProtos,
	}
	if g.tls != nil {
		tlsCfg = g.tls.TLSConfig().Clone()
		tlsCfg.GetCertificate = a.getCertificate
	}
	fc := p.Frontend
	fc.TLSConfig = tlsCfg
	fc.Logger = logger
	// One list of hop-by-hop fields, translate's, also decides which
	// fields make an HTTP/2 request malformed.
	fc.MalformedField = translate.MalformedField
	if p.TLS.ACME != nil {
		// RFC 8555 §8.3: HTTP-01 validation arrives on the plain listener,
		// in front of its redirect.
		fc.PlainMiddleware = g.tls.HTTPChallenge
	}
	if a.frontend, err = frontend.New(fc, a); err != nil {
		return nil, err
	}
	if p.Admin != "" {
		a.admin = &http.Server{
			Addr:              p.Admin,
			Handler:           adminHandler(a.stats, a.adminReload),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		}
	}
	return a, nil
}

// stats snapshots the pool counters of the current generation's backends
// for the admin endpoint. After a reload the counters start again from
// zero, and those of the backends it retired are no longer reported.
func (a *app) stats() map[string][]backend.ServerStats {
	g := a.gen.Load()
	m := make(map[string][]backend.ServerStats, len(g.backends))
	for i, b := range g.backends {
		m[g.plan.Backends[i].Name] = b.Stats()
	}
	return m
}

// start binds the admin listener, then the frontend's, then starts the
// certificate source's background work (ACME), which needs the frontend's
// listeners bound to answer challenges. Binding admin first means a busy
// admin port fails before clients can connect.
func (a *app) start() error {
	var adminLn net.Listener
	if a.admin != nil {
		var err error
		if adminLn, err = net.Listen("tcp", a.admin.Addr); err != nil {
			return fmt.Errorf("admin: %w", err)
		}
	}
	if err := a.frontend.Start(); err != nil {
		if adminLn != nil {
			adminLn.Close()
		}
		return err
	}
	if err := a.startTLS(); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = a.frontend.Shutdown(ctx)
		if adminLn != nil {
			adminLn.Close()
		}
		return err
	}
	if adminLn != nil {
		go func() {
			if err := a.admin.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
				a.logger.Error("admin endpoint stopped", "err", err)
			}
		}()
	}
	return nil
}

// startTLS starts the certificate source on the bound listeners.
func (a *app) startTLS() error {
	g := a.gen.Load()
	if g.tls == nil {
		return nil
	}
	return g.tls.Start(a.frontend.Addr(), a.frontend.PlainAddr())
}

// shutdown drains the frontend and the admin endpoint within grace, then
// closes the backends. A signal on sigs during the drain cuts it short; it
// returns true if that happened.
func (a *app) shutdown(sigs <-chan os.Signal, grace time.Duration) (forced bool) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var hurried atomic.Bool
	go func() {
		select {
		case s := <-sigs:
			a.logger.Warn("second signal: forcing exit", "signal", s.String())
			hurried.Store(true)
			cancel()
			// Shutdown honours ctx; should anything still hang, end anyway.
			time.AfterFunc(5*time.Second, func() { forceExit(1) })
		case <-ctx.Done():
		}
	}()

	var wg sync.WaitGroup
	if a.admin != nil {
		wg.Go(func() {
			if a.admin.Shutdown(ctx) != nil {
				a.admin.Close()
			}
		})
	}
	err := a.frontend.Shutdown(ctx)
	wg.Wait()
	if err != nil && !hurried.Load() {
		a.logger.Warn("grace period over; closing remaining connections", "grace", grace, "err", err)
	}
	a.release()
	return hurried.Load()
}

// release closes the backends, those of retired generations still
// draining included, and stops the certificate source's background work.
func (a *app) release() {
	g := a.gen.Load()
	for _, r := range a.retiredGenerations() {
		r.close()
	}
	g.close()
	if g.tls != nil {
		g.tls.Close()
	}
}

// serve builds and starts cfg and runs until SIGINT or SIGTERM. dataFlag is
// the --data flag.
func (c *cli) serve(cfg *Config, dataFlag string) int {
	logger := slog.New(slog.NewTextHandler(c.stderr, nil))
	dir, dirErr := c.dataDir(dataFlag, cfg.DataDir)
	p := cfg.plan(dir)
	if dirErr != nil && (p.InternalCA || p.TLS.ACME != nil && p.TLS.ACME.Storage == "") {
		fmt.Fprintln(c.stderr, "hoplite:", dirErr)
		return 1
	}
	// Subscribe first: SIGHUP's default action would end the process.
	sigs, hups, stop := c.signalChan(true)
	defer stop()
	a, err := build(p, logger, false)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return 1
	}
	a.initReload(cfg, dir, func(configDir string) (string, error) { return c.dataDir(dataFlag, configDir) })
	if err := a.start(); err != nil {
		a.release()
		fmt.Fprintln(c.stderr, err)
		return 1
	}
	logger.Info("hoplite serving", c.startAttrs(a)...)

	var s os.Signal
	for s == nil {
		select {
		case <-hups:
			a.reload("SIGHUP")
		case s = <-sigs:
		}
	}
	logger.Info("shutting down", "signal", s.String(), "grace", shutdownGrace)
	// A reload in progress (from the admin endpoint) finishes first; any
	// later one is refused.
	a.stopReloads()
	if a.shutdown(sigs, shutdownGrace) {
		return 1
	}
	logger.Info("stopped")
	return 0
}

// startAttrs describes a started app in one log line.
func (c *cli) startAttrs(a *app) []any {
	protos := "h1,h2,h3"
	if a.plan.Frontend.DisableHTTP3 {
		protos = "h1,h2"
	}
	attrs := []any{"addr", a.frontend.Addr().String(), "protocols", protos}
	if a.plan.Frontend.PlainAddr != "" {
		attrs = append(attrs, "plain", a.plan.Frontend.PlainAddr)
	}
	if a.plan.Admin != "" {
		attrs = append(attrs, "admin", a.plan.Admin)
	}
	if acme := a.plan.TLS.ACME; acme != nil {
		ca := acme.CA
		if ca == "" {
			ca = tlsconf.CALetsEncrypt
		}
		attrs = append(attrs, "acme_ca", ca)
		if len(acme.Domains) > 0 {
			attrs = append(attrs, "acme_domains", strings.Join(acme.Domains, ","))
		}
		if acme.OnDemand != nil {
			attrs = append(attrs, "acme_on_demand", true)
		}
	}
	if ca := a.gen.Load().ca; ca != nil {
		cmd := "hoplite ca"
		if def, _ := c.dataDir("", ""); a.plan.TLS.DataDir != def {
			cmd += " --data " + shellQuote(a.plan.TLS.DataDir)
		}
		attrs = append(attrs, "ca_root", ca.RootPath(), "hint", "trust it with: "+cmd+" > root.pem")
	}
	return attrs
}

// shellQuote quotes s for a POSIX shell if it needs it.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`!*?[]{}()<>|&;#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
