package frontend

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Defaults applied to zero Config fields. They are the values documented on
// Config; tests pin them.
const (
	DefaultReadHeaderTimeout    = 10 * time.Second
	DefaultIdleTimeout          = 2 * time.Minute
	DefaultMaxHeaderBytes       = 64 << 10 // 64 KiB
	DefaultMaxConcurrentStreams = 250
	// RFC 9113 §6.5.2's initial value. A larger limit buys nothing for a
	// proxy whose upstream writes are at most 16 KiB a read, and peers that
	// assume the initial value without reading SETTINGS (h2spec's
	// http2/4.2/3 among them) expect a larger frame to be refused.
	DefaultMaxReadFrameSize = 1 << 14 // 16 KiB

	// Client limits against floods and slow clients (docs/limits.md).
	DefaultMaxConnsPerIP     = 1024
	DefaultWriteStallTimeout = 60 * time.Second
	DefaultH2FloodWindow     = 10 * time.Second
	DefaultH2MaxResets       = 1000
	DefaultH2MaxControl      = 1000
	DefaultH2MaxEmptyFrames  = 1000
)

// RFC 9113 §6.5.2: SETTINGS_MAX_FRAME_SIZE must lie between 2^14 and
// 2^24-1 inclusive; a value outside that range is a connection error.
const (
	minFrameSize = 1 << 14
	maxFrameSize = 1<<24 - 1
)

// ALPN protocol IDs (RFC 7301; RFC 9113 §3.2; RFC 9114 §3.1).
const (
	alpnHTTP2  = "h2"
	alpnHTTP11 = "http/1.1"
)

// normalize validates cfg and fills in the documented defaults. Errors name
// the offending field. cfg is a copy; the caller's Config is not touched.
func normalize(cfg Config) (Config, error) {
	if cfg.Addr == "" {
		return cfg, errors.New("frontend: Config.Addr is empty")
	}
	if cfg.TLSConfig == nil {
		return cfg, errors.New("frontend: Config.TLSConfig is nil")
	}
	if len(cfg.TLSConfig.Certificates) == 0 && cfg.TLSConfig.GetCertificate == nil &&
		cfg.TLSConfig.GetConfigForClient == nil {
		return cfg, errors.New("frontend: Config.TLSConfig has no Certificates, GetCertificate or GetConfigForClient")
	}
	if cfg.ReadHeaderTimeout < 0 {
		return cfg, fmt.Errorf("frontend: Config.ReadHeaderTimeout %v is negative", cfg.ReadHeaderTimeout)
	}
	if cfg.IdleTimeout < 0 {
		return cfg, fmt.Errorf("frontend: Config.IdleTimeout %v is negative", cfg.IdleTimeout)
	}
	if cfg.MaxRequestsPerConn < 0 {
		return cfg, fmt.Errorf("frontend: Config.MaxRequestsPerConn %d is negative", cfg.MaxRequestsPerConn)
	}
	if cfg.MaxHeaderBytes < 0 {
		return cfg, fmt.Errorf("frontend: Config.MaxHeaderBytes %d is negative", cfg.MaxHeaderBytes)
	}
	if cfg.H2FloodWindow < 0 {
		return cfg, fmt.Errorf("frontend: Config.H2FloodWindow %v is negative", cfg.H2FloodWindow)
	}
	// An out-of-range frame size is refused rather than clamped, so that
	// the setting on the wire is the one configured.
	if f := cfg.MaxReadFrameSize; f != 0 && (f < minFrameSize || f > maxFrameSize) {
		return cfg, fmt.Errorf("frontend: Config.MaxReadFrameSize %d is outside [%d, %d] (RFC 9113 §6.5.2)",
			f, minFrameSize, maxFrameSize)
	}

	if err := checkHTTP2Ciphers(cfg.TLSConfig); err != nil {
		return cfg, err
	}
	if cfg.ReadHeaderTimeout == 0 {
		cfg.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if cfg.MaxConcurrentStreams == 0 {
		cfg.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if cfg.MaxReadFrameSize == 0 {
		cfg.MaxReadFrameSize = DefaultMaxReadFrameSize
	}
	// Negative means off for these; zero the default.
	cfg.MaxConnsPerIP = orDefault(cfg.MaxConnsPerIP, DefaultMaxConnsPerIP)
	cfg.H2MaxResets = orDefault(cfg.H2MaxResets, DefaultH2MaxResets)
	cfg.H2MaxControlFrames = orDefault(cfg.H2MaxControlFrames, DefaultH2MaxControl)
	cfg.H2MaxEmptyFrames = orDefault(cfg.H2MaxEmptyFrames, DefaultH2MaxEmptyFrames)
	if cfg.WriteStallTimeout == 0 {
		cfg.WriteStallTimeout = DefaultWriteStallTimeout
	}
	if cfg.H2FloodWindow == 0 {
		cfg.H2FloodWindow = DefaultH2FloodWindow
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.TLSConfig = tcpTLSConfig(cfg.TLSConfig)
	return cfg, nil
}

// orDefault returns def for zero and v otherwise (negative values mean
// "off" to the fields that use it).
func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// tcpTLSConfig clones c for the TCP listener and sets its ALPN list with
// tcpNextProtos. A GetConfigForClient callback is wrapped so that the
// configs it returns negotiate h2 and http/1.1 too.
func tcpTLSConfig(c *tls.Config) *tls.Config {
	c = c.Clone()
	c.NextProtos = tcpNextProtos(c.NextProtos)
	if gfc := c.GetConfigForClient; gfc != nil {
		c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			conf, err := gfc(hello)
			if conf == nil || err != nil {
				return conf, err
			}
			if np := tcpNextProtos(conf.NextProtos); !slices.Equal(np, conf.NextProtos) {
				// Clone only when needed: the callback's config may be
				// shared, and cloning per handshake costs.
				conf = conf.Clone()
				conf.NextProtos = np
			}
			return conf, nil
		}
	}
	return c
}

// tcpNextProtos returns the ALPN list for TCP: the protocols already there
// (acme-tls/1 for TLS-ALPN-01, RFC 8737) in their order, then h2, then
// http/1.1. crypto/tls picks the first server protocol the client also
// offers, so h2 must precede http/1.1 for HTTP/2 clients to get HTTP/2.
// The input slice is never modified.
func tcpNextProtos(in []string) []string {
	out := make([]string, 0, len(in)+2)
	for _, p := range in {
		if p != alpnHTTP2 && p != alpnHTTP11 {
			out = append(out, p)
		}
	}
	return append(out, alpnHTTP2, alpnHTTP11)
}

// checkHTTP2Ciphers refuses a TLS 1.2 cipher suite list without
// TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 or its ECDSA twin: every HTTP/2
// client may insist on it (RFC 9113 §9.2.2), and without it such clients
// get INADEQUATE_SECURITY. TLS 1.3 suites are not configurable in Go.
func checkHTTP2Ciphers(c *tls.Config) error {
	if c == nil || c.CipherSuites == nil || c.MinVersion >= tls.VersionTLS13 {
		return nil
	}
	if slices.Contains(c.CipherSuites, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256) ||
		slices.Contains(c.CipherSuites, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256) {
		return nil
	}
	return errors.New("frontend: configure HTTP/2: Config.TLSConfig.CipherSuites lacks TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 and TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, one of which RFC 9113 §9.2.2 requires")
}
