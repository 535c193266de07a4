// Package h2 is hoplite's downstream HTTP/2 server connection engine
// (RFC 9113). It uses golang.org/x/net/http2 only as a codec: http2.Framer
// reads and writes frames, hpack encodes and decodes fields; the engine
// owns header blocks (headers.go), stream states, flow control, flood
// limits and the writing of frames.
package h2

import (
	"log/slog"
	"time"
)

// Config holds the settings of one connection. Every zero value means the
// default named on the field.
type Config struct {
	// MaxConcurrentStreams is SETTINGS_MAX_CONCURRENT_STREAMS; a HEADERS
	// over it is refused with RST_STREAM(REFUSED_STREAM). 0 means 250.
	MaxConcurrentStreams uint32
	// MaxFrameSize is the SETTINGS_MAX_FRAME_SIZE advertised and enforced on
	// reads (FRAME_SIZE_ERROR over it). 0 means 16384, the protocol's
	// default (RFC 9113 §6.5.2).
	MaxFrameSize uint32
	// MaxHeaderListSize is SETTINGS_MAX_HEADER_LIST_SIZE, counted per
	// RFC 9113 §6.5.2 (name + value + 32 per field). A request over it gets
	// 431; a CONTINUATION fragment after the list went over it, or over
	// twice the budget left, ends the connection (headers.go). 0 means
	// 64 KiB + 320.
	MaxHeaderListSize uint32
	// IdleTimeout: with no open stream for this long the connection sends
	// GOAWAY(NO_ERROR) and closes. 0 means 2m.
	IdleTimeout time.Duration
	// PrefaceTimeout bounds the arrival of the client preface and its first
	// SETTINGS frame. 0 means 10s.
	PrefaceTimeout time.Duration
	// MalformedField reports request fields that make a request malformed:
	// the connection-specific fields of RFC 9113 §8.2.2 and TE other than
	// "trailers" (hoplite passes translate.MalformedField, which holds the
	// project's one list of them). It gets the name as on the wire (lower
	// case; pseudo-header fields are not passed) and the value; true
	// answers RST_STREAM(PROTOCOL_ERROR) and the request never reaches the
	// handler. The same check keeps such fields out of responses, which
	// must not carry them either (§8.2.2). It must be safe for concurrent
	// use. nil: no check.
	MalformedField func(name, value string) bool
	// EnableConnectProtocol advertises SETTINGS_ENABLE_CONNECT_PROTOCOL
	// (RFC 8441) and accepts extended CONNECT requests; their :protocol
	// reaches the handler as the request field ":protocol". false: a
	// request with :protocol is malformed.
	EnableConnectProtocol bool
	// FloodWindow is the window over which the flood limits count. 0 means
	// 10s.
	FloodWindow time.Duration
	// MaxResets caps RST_STREAM frames from the client (rapid reset,
	// CVE-2023-44487) together with requests refused as malformed (reset
	// flood, CVE-2019-9514) per FloodWindow. MaxControlFrames caps PING,
	// SETTINGS and PRIORITY frames (CVE-2019-9512, CVE-2019-9515).
	// MaxEmptyFrames caps frames that carry nothing: DATA without data or
	// END_STREAM (CVE-2019-9518), empty HEADERS, CONTINUATION with an empty
	// fragment and no END_HEADERS (CVE-2024-27316 family), frames of unknown
	// type. Over a limit the connection ends with GOAWAY(ENHANCE_YOUR_CALM)
	// (RFC 9113 §10.5). 0 means 1000; negative means no limit.
	MaxResets, MaxControlFrames, MaxEmptyFrames int
	// Logger receives client protocol errors (Debug) and handler panics
	// (Error). nil means slog.Default().
	Logger *slog.Logger
}

// Inbound flow control windows (RFC 9113 §6.9.2). 256 KiB per stream lets
// one upload run at ~20 MB/s over a 10 ms RTT while bounding the memory a
// client can pin per stream (the window is the most a body buffer holds);
// the connection window of 1 MiB lets four such uploads run at once.
const (
	streamWindow = 256 << 10
	connWindow   = 1 << 20
)

func (cfg *Config) withDefaults() Config {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = 250
	}
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = 16384
	}
	c.MaxFrameSize = min(max(c.MaxFrameSize, 16384), 1<<24-1)
	if c.MaxHeaderListSize == 0 {
		c.MaxHeaderListSize = 64<<10 + 320
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 2 * time.Minute
	}
	if c.PrefaceTimeout == 0 {
		c.PrefaceTimeout = 10 * time.Second
	}
	if c.FloodWindow == 0 {
		c.FloodWindow = 10 * time.Second
	}
	for _, p := range []*int{&c.MaxResets, &c.MaxControlFrames, &c.MaxEmptyFrames} {
		if *p == 0 {
			*p = 1000
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
