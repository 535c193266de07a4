package main

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"

	"hoplite/backend"
	"hoplite/frontend"
	"hoplite/tlsconf"
	"hoplite/translate"
)

// Config is the config file. default.yaml documents every field; zero
// values mean "the component's default".
type Config struct {
	Listen      string                   `yaml:"listen"`
	HTTP3       *bool                    `yaml:"http3"` // nil means true
	PlainListen string                   `yaml:"plain_listen"`
	Admin       string                   `yaml:"admin"`
	DataDir     string                   `yaml:"data_dir"`
	TLS         TLSConfig                `yaml:"tls"`
	Downstream  DownstreamConfig         `yaml:"downstream"`
	Routes      []RouteConfig            `yaml:"routes"`
	Backends    map[string]BackendConfig `yaml:"backends"`

	src *source // where the config came from; set by parseConfig
}

// TLSConfig selects the certificate source: cert and key files, acme, or
// neither for the internal CA.
type TLSConfig struct {
	Cert  string      `yaml:"cert"`
	Key   string      `yaml:"key"`
	Names []string    `yaml:"names"`
	ACME  *ACMEConfig `yaml:"acme"` // nil: no ACME
}

// ACMEConfig is tls.acme: certificates from an ACME CA (tlsconf.ACMEConfig).
type ACMEConfig struct {
	Domains            []string         `yaml:"domains"`
	CA                 string           `yaml:"ca"`
	Email              string           `yaml:"email"`
	TrustedRoots       []string         `yaml:"trusted_roots"`
	EAB                EABConfig        `yaml:"eab"`
	Storage            string           `yaml:"storage"`
	Challenges         ChallengesConfig `yaml:"challenges"`
	OnDemand           *OnDemandConfig  `yaml:"on_demand"` // nil: off
	RenewCheckInterval Duration         `yaml:"renew_check_interval"`
}

// EABConfig is tls.acme.eab, External Account Binding; both empty means
// none.
type EABConfig struct {
	KeyID  string `yaml:"key_id"`
	MACKey string `yaml:"mac_key"`
}

// ChallengesConfig is tls.acme.challenges; nil means true.
type ChallengesConfig struct {
	HTTP01    *bool `yaml:"http_01"`
	TLSALPN01 *bool `yaml:"tls_alpn_01"`
}

func (c ChallengesConfig) http01() bool    { return c.HTTP01 == nil || *c.HTTP01 }
func (c ChallengesConfig) tlsALPN01() bool { return c.TLSALPN01 == nil || *c.TLSALPN01 }

// OnDemandConfig is tls.acme.on_demand.
type OnDemandConfig struct {
	Allow              []string `yaml:"allow"`
	Ask                string   `yaml:"ask"`
	MaxOrdersPerMinute int      `yaml:"max_orders_per_minute"`
}

// DownstreamConfig holds client-side limits; zero means frontend's default.
type DownstreamConfig struct {
	ReadHeaderTimeout    Duration `yaml:"read_header_timeout"`
	IdleTimeout          Duration `yaml:"idle_timeout"`
	MaxHeaderBytes       Size     `yaml:"max_header_bytes"`
	MaxConcurrentStreams uint32   `yaml:"max_concurrent_streams"`
	MaxReadFrameSize     Size     `yaml:"max_read_frame_size"`
	MaxRequestsPerConn   int      `yaml:"max_requests_per_conn"`
	KeepAliveHeader      *bool    `yaml:"keep_alive_header"` // nil means true

	// Flood and slow-client limits (frontend.Config, docs/limits.md).
	MaxConnsPerIP      Limit    `yaml:"max_conns_per_ip"`
	WriteStallTimeout  Duration `yaml:"write_stall_timeout"`
	H2FloodWindow      Duration `yaml:"h2_flood_window"`
	H2MaxResets        Limit    `yaml:"h2_max_resets"`
	H2MaxControlFrames Limit    `yaml:"h2_max_control_frames"`
	H2MaxEmptyFrames   Limit    `yaml:"h2_max_empty_frames"`
}

// RouteConfig sends matching requests to a backend.
type RouteConfig struct {
	Host    string `yaml:"host"`
	Path    string `yaml:"path"`
	Backend string `yaml:"backend"`
}

// BackendConfig is one backend; zero means backend's default.
type BackendConfig struct {
	Servers            []string `yaml:"servers"`
	ConnectTimeout     Duration `yaml:"connect_timeout"`
	ResponseTimeout    Duration `yaml:"response_timeout"`
	IdleTimeout        Duration `yaml:"idle_timeout"`
	MaxIdlePerServer   int      `yaml:"max_idle_per_server"`
	MaxConnsPerServer  int      `yaml:"max_conns_per_server"`
	MaxWaiters         int      `yaml:"max_waiters"`
	HintMargin         Duration `yaml:"hint_margin"`
	MaxRequestsPerConn int      `yaml:"max_requests_per_conn"`
	MaxLifetime        Duration `yaml:"max_lifetime"`
	BufferRequestBody  Size     `yaml:"buffer_request_body"`

	PassiveHealth PassiveHealthConfig `yaml:"passive_health"`
	HealthCheck   *HealthCheckConfig  `yaml:"health_check"` // nil: no active checks
}

// PassiveHealthConfig is backends.NAME.passive_health
// (backend.PassiveHealth); zero means backend's default, which is on.
type PassiveHealthConfig struct {
	MaxFails    int      `yaml:"max_fails"`
	FailTimeout Duration `yaml:"fail_timeout"`
	Disabled    bool     `yaml:"disabled"`
}

// HealthCheckConfig is backends.NAME.health_check (backend.HealthCheck).
type HealthCheckConfig struct {
	Path               string      `yaml:"path"`
	Interval           Duration    `yaml:"interval"`
	Timeout            Duration    `yaml:"timeout"`
	HealthyThreshold   int         `yaml:"healthy_threshold"`
	UnhealthyThreshold int         `yaml:"unhealthy_threshold"`
	ExpectStatus       StatusMatch `yaml:"expect_status"`
}

// StatusMatch is a status code (200) or class (2xx); zero means 2xx.
type StatusMatch backend.StatusRange

// UnmarshalYAML implements yaml.Unmarshaler for a scalar.
func (m *StatusMatch) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!str") {
		return fmt.Errorf("expected a status such as 200 or 2xx, got %s", describe(n))
	}
	r, err := backend.ParseStatusRange(n.Value)
	if err != nil {
		return err
	}
	*m = StatusMatch(r)
	return nil
}

// plan is everything a Config decides, in the shape of the components'
// own Config types. build (run.go) adds what only exists at run time: the
// *tls.Config, the logger and the backends' transports.
type plan struct {
	TLS        tlsconf.Config
	InternalCA bool
	Frontend   frontend.Config  // TLSConfig and Logger unset
	Translate  translate.Config // Backends unset
	Backends   []backend.Config // sorted by name
	Admin      string
}

// plan maps a validated Config onto the components' configs. It is the
// only place that knows both shapes. dataDir is the resolved data
// directory (see resolveDataDir).
func (c *Config) plan(dataDir string) plan {
	p := plan{
		TLS: tlsconf.Config{
			CertFile: c.TLS.Cert,
			KeyFile:  c.TLS.Key,
			DataDir:  dataDir,
			Names:    slices.Clone(c.TLS.Names),
		},
		InternalCA: c.TLS.Cert == "" && c.TLS.ACME == nil,
		Frontend: frontend.Config{
			Addr:                 c.Listen,
			DisableHTTP3:         c.HTTP3 != nil && !*c.HTTP3,
			PlainAddr:            c.PlainListen,
			ReadHeaderTimeout:    time.Duration(c.Downstream.ReadHeaderTimeout),
			IdleTimeout:          time.Duration(c.Downstream.IdleTimeout),
			MaxHeaderBytes:       int(c.Downstream.MaxHeaderBytes),
			MaxConcurrentStreams: c.Downstream.MaxConcurrentStreams,
			MaxReadFrameSize:     uint32(c.Downstream.MaxReadFrameSize),
			MaxRequestsPerConn:   c.Downstream.MaxRequestsPerConn,
			NoKeepAliveHeader:    c.Downstream.KeepAliveHeader != nil && !*c.Downstream.KeepAliveHeader,
			MaxConnsPerIP:        int(c.Downstream.MaxConnsPerIP),
			WriteStallTimeout:    time.Duration(c.Downstream.WriteStallTimeout),
			H2FloodWindow:        time.Duration(c.Downstream.H2FloodWindow),
			H2MaxResets:          int(c.Downstream.H2MaxResets),
			H2MaxControlFrames:   int(c.Downstream.H2MaxControlFrames),
			H2MaxEmptyFrames:     int(c.Downstream.H2MaxEmptyFrames),
		},
		Admin: c.Admin,
	}
	if a := c.TLS.ACME; a != nil {
		p.TLS.ACME = a.tlsconf()
	}
	for _, r := range c.Routes {
		p.Translate.Routes = append(p.Translate.Routes, translate.Route{
			Host:       r.Host,
			PathPrefix: r.Path,
			Backend:    r.Backend,
		})
	}
	for _, name := range slices.Sorted(maps.Keys(c.Backends)) {
		b := c.Backends[name]
		servers := make([]string, len(b.Servers))
		for i, s := range b.Servers {
			servers[i], _ = parseServer(s) // validated already
		}
		p.Backends = append(p.Backends, backend.Config{
			Name:                  name,
			Servers:               servers,
			DialTimeout:           time.Duration(b.ConnectTimeout),
			ResponseHeaderTimeout: time.Duration(b.ResponseTimeout),
			IdleTimeout:           time.Duration(b.IdleTimeout),
			MaxIdlePerServer:      b.MaxIdlePerServer,
			MaxConnsPerServer:     b.MaxConnsPerServer,
			MaxWaiters:            b.MaxWaiters,
			HintMargin:            time.Duration(b.HintMargin),
			MaxRequestsPerConn:    b.MaxRequestsPerConn,
			MaxLifetime:           time.Duration(b.MaxLifetime),
			BufferRequestBody:     int64(b.BufferRequestBody),
			PassiveHealth: backend.PassiveHealth{
				Disabled:    b.PassiveHealth.Disabled,
				MaxFails:    b.PassiveHealth.MaxFails,
				FailTimeout: time.Duration(b.PassiveHealth.FailTimeout),
			},
			HealthCheck: b.HealthCheck.backend(),
		})
	}
	return p
}

// backend maps health_check onto backend's config; nil stays nil.
func (h *HealthCheckConfig) backend() *backend.HealthCheck {
	if h == nil {
		return nil
	}
	return &backend.HealthCheck{
		Path:               h.Path,
		Interval:           time.Duration(h.Interval),
		Timeout:            time.Duration(h.Timeout),
		HealthyThreshold:   h.HealthyThreshold,
		UnhealthyThreshold: h.UnhealthyThreshold,
		ExpectStatus:       backend.StatusRange(h.ExpectStatus),
	}
}

// tlsconf maps tls.acme onto tlsconf's config; the logger is set by build.
func (a *ACMEConfig) tlsconf() *tlsconf.ACMEConfig {
	t := &tlsconf.ACMEConfig{
		Domains:            slices.Clone(a.Domains),
		CA:                 a.CA,
		Email:              a.Email,
		TrustedRoots:       slices.Clone(a.TrustedRoots),
		Storage:            a.Storage,
		DisableHTTP01:      !a.Challenges.http01(),
		DisableTLSALPN01:   !a.Challenges.tlsALPN01(),
		RenewCheckInterval: time.Duration(a.RenewCheckInterval),
	}
	if a.EAB != (EABConfig{}) {
		t.EAB = &tlsconf.EAB{KeyID: a.EAB.KeyID, MACKey: a.EAB.MACKey}
	}
	if od := a.OnDemand; od != nil {
		t.OnDemand = &tlsconf.OnDemandConfig{
			Allow:              slices.Clone(od.Allow),
			Ask:                od.Ask,
			MaxOrdersPerMinute: od.MaxOrdersPerMinute,
		}
	}
	return t
}

// Duration is a time.Duration written as "10s", "2m", "500ms"; a plain 0
// also means zero. Negative durations are rejected.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler for a scalar.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a duration such as 10s, got %s", describe(n))
	}
	if n.ShortTag() == "!!int" && n.Value == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if n.ShortTag() != "!!str" || err != nil {
		return fmt.Errorf("invalid duration %q: want a number with a unit: 500ms, 10s, 2m, 1h", n.Value)
	}
	if v < 0 {
		return fmt.Errorf("duration %s must not be negative", n.Value)
	}
	*d = Duration(v)
	return nil
}

// Limit is a count limit: a non-negative integer (0 selects the
// component's default) or "off" for no limit, which maps to -1, the "no
// limit" of frontend.Config's limits.
type Limit int

// UnmarshalYAML implements yaml.Unmarshaler for a scalar.
func (l *Limit) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && n.Value == "off" {
		*l = -1
		return nil
	}
	var v int64
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		return fmt.Errorf("expected a count or off, got %s", describe(n))
	}
	if v < 0 || v > math.MaxInt32 {
		return fmt.Errorf("%s is out of range: want 0 to %d, or off", n.Value, math.MaxInt32)
	}
	*l = Limit(v)
	return nil
}

// String writes a Limit as the config file does: "off" or the count.
func (l Limit) String() string {
	if l < 0 {
		return "off"
	}
	return strconv.Itoa(int(l))
}

// Size is a byte count written as a plain integer or with a B, KiB, MiB or
// GiB suffix ("64KiB", "1 MiB").
type Size int64

var sizeSyntax = regexp.MustCompile(`^(\d+)\s*(B|KiB|MiB|GiB)?$`)

var sizeUnits = map[string]int64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}

// UnmarshalYAML implements yaml.Unmarshaler for a scalar.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!str") {
		return fmt.Errorf("expected a size such as 65536 or 64KiB, got %s", describe(n))
	}
	if n.ShortTag() == "!!int" {
		var v int64
		if err := n.Decode(&v); err != nil {
			return fmt.Errorf("invalid size %s", n.Value)
		}
		if v < 0 {
			return fmt.Errorf("size %d must not be negative", v)
		}
		*s = Size(v)
		return nil
	}
	m := sizeSyntax.FindStringSubmatch(n.Value)
	if m == nil {
		return fmt.Errorf("invalid size %q: want bytes, or a whole number with B, KiB, MiB or GiB", n.Value)
	}
	v, err := strconv.ParseInt(m[1], 10, 64)
	unit := sizeUnits[m[2]]
	if err != nil || v > math.MaxInt64/unit {
		return fmt.Errorf("size %q is too large", n.Value)
	}
	*s = Size(v * unit)
	return nil
}

// errUpstreamTLS is kept distinct so the proxy command can recognise it.
var errUpstreamTLS = errors.New("upstream TLS is not supported yet")
