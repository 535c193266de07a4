package h2

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The life of a connection.
//
// Serve runs on the connection's goroutine and is its only reader: it
// checks the client preface (RFC 9113 §3.4), sends the server's SETTINGS,
// then reads frames with http2.Framer, which checks frame sizes and the
// order of CONTINUATION frames; header blocks are decoded as their frames
// arrive (headers.go). Each frame is handled on the spot, under c.mu: stream states (§5.1), SETTINGS
// (§6.5), flow control (§6.9), the flood limits (flood.go). A request
// whose fields pass (request.go) gets a stream and runs its handler on a
// pooled worker goroutine (worker.go); that is the one hand-off per
// request. The handler's response is encoded on the handler's goroutine
// and appended to the connection's write buffer, and whichever goroutine
// finds no write in progress writes the buffer out (write.go): frames
// ready together leave in one write(2), with no writer goroutine and no
// channel hop.
//
// The connection ends on a connection error (GOAWAY with its code, §5.4.1),
// on a read error, on Close, or after a drain (two-step GOAWAY, §6.8) or
// the idle timeout once no stream is open. Serve then cancels every open
// stream, waits for their handlers to return, and closes the socket.

// Conn is one downstream HTTP/2 connection.
type Conn struct {
	nc     net.Conn
	h      http.Handler
	cfg    Config
	fr     *http2.Framer // reads: Serve only; writes: under wmu
	tls    *tls.ConnectionState
	remote string
	ctx    context.Context // parent of every request's context
	cancel context.CancelFunc
	canon  canonCache   // request field names: Serve only
	hb     *headerBlock // header block decoding (headers.go): Serve only

	// The flood counters and the handlers in flight belong to Serve.
	flood    *frameCounter
	handlers sync.WaitGroup
	running  atomic.Int32 // handlers running now (write.go reads it)

	mu sync.Mutex
	// Guarded by mu:
	streams      map[uint32]*stream
	maxClientID  uint32 // highest stream id the client has used (§5.1.1)
	sendWindow   int64  // connection-level send window (§6.9.1)
	peerInitial  int64  // SETTINGS_INITIAL_WINDOW_SIZE the client sent
	peerMaxFrame int    // SETTINGS_MAX_FRAME_SIZE the client sent
	recvUnacked  int    // connection-level bytes consumed, not yet returned by WINDOW_UPDATE
	recvWindow   int64  // connection-level bytes the client may still send
	goAway       goAwayState
	closing      bool // Close was called, or the connection failed
	started      bool // the server preface is out: a drain may write GOAWAY
	drainAtStart bool // Drain came before the server preface
	idleTimer    *time.Timer
	drainTimer   *time.Timer

	wmu sync.Mutex
	// Guarded by wmu:
	wcond     sync.Cond // on wmu: the buffer drained, or writing failed
	wbuf      []byte    // frames waiting for write(2)
	spare     []byte    // the other buffer, written out last time
	flushing  bool      // a goroutine is in write(2) with the other buffer
	werr      error     // the first write error; every later write fails
	lastData  int       // offset in wbuf of its last frame when that is DATA, else -1
	enc       *hpack.Encoder
	encBuf    encodeBuffer // the encoder's output, one header block
	lowerResp lowerCache   // response field names, lower case
}

// goAwayState is the drain's progress (RFC 9113 §6.8).
type goAwayState uint8

const (
	goAwayNone   goAwayState = iota
	goAwayFirst              // GOAWAY(2^31-1) and a PING sent; new streams still accepted
	goAwayFinal              // GOAWAY(last stream id) sent; streams above it are ignored
	goAwayClient             // the client sent GOAWAY: no new streams will come
)

// drainPing is the opaque data of the PING that follows the first GOAWAY of
// a drain: its ACK tells that the client has seen the GOAWAY.
var drainPing = [8]byte{'h', 'o', 'p', 'l', 'i', 't', 'e', 'd'}

// NewConn returns the engine for nc, on which "h2" was negotiated (or
// which carries prior-knowledge HTTP/2). h serves the requests; it must
// not keep the request or the ResponseWriter after it returns.
func NewConn(nc net.Conn, h http.Handler, cfg *Config) *Conn {
	c := &Conn{
		nc:           nc,
		h:            h,
		cfg:          cfg.withDefaults(),
		streams:      make(map[uint32]*stream),
		sendWindow:   initialWindow,
		peerInitial:  initialWindow,
		peerMaxFrame: minMaxFrameSize,
		recvWindow:   connWindow,
		lastData:     -1,
	}
	if a := nc.RemoteAddr(); a != nil {
		c.remote = a.String()
	}
	if cs, ok := nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		st := cs.ConnectionState()
		c.tls = &st
	}
	c.wcond.L = &c.wmu
	c.ctx, c.cancel = context.WithCancel(context.WithValue(context.Background(), http.LocalAddrContextKey, nc.LocalAddr()))
	c.flood = &frameCounter{
		r:       nc,
		window:  c.cfg.FloodWindow,
		resets:  floodCount{max: c.cfg.MaxResets},
		control: floodCount{max: c.cfg.MaxControlFrames},
		empty:   floodCount{max: c.cfg.MaxEmptyFrames},
	}
	c.fr = http2.NewFramer(connWriter{c}, c.flood)
	c.fr.SetMaxReadFrameSize(c.cfg.MaxFrameSize)
	c.hb = newHeaderBlock(c.cfg.MaxHeaderListSize)
	c.fr.SetReuseFrames()
	c.enc = hpack.NewEncoder(&c.encBuf)
	return c
}

// idleBufferKeep is how much write buffer an idle connection keeps.
const idleBufferKeep = 8 << 10

// The protocol's fixed numbers (RFC 9113 §6.5.2, §6.9.2, §5.1.1).
const (
	initialWindow    = 65535
	initialTableSize = 4096
	minMaxFrameSize  = 16384
	maxWindow        = 1<<31 - 1
	maxStreamID      = 1<<31 - 1
)

// Serve serves the connection until it ends, then closes it. It returns
// once every handler it started has returned.
func (c *Conn) Serve() {
	err := c.serve()
	c.shutdown(err)
}

func (c *Conn) serve() error {
	_ = c.nc.SetReadDeadline(time.Now().Add(c.cfg.PrefaceTimeout))
	var preface [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(c.nc, preface[:]); err != nil {
		return errEnd
	}
	if string(preface[:]) != http2.ClientPreface {
		c.cfg.Logger.Debug("h2: bad client preface", "remote", c.remote)
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if c.tls != nil && !adequateTLS(c.tls) {
		c.cfg.Logger.Debug("h2: TLS below RFC 9113 §9.2", "remote", c.remote, "version", c.tls.Version, "cipher", tls.CipherSuiteName(c.tls.CipherSuite))
		return http2.ConnectionError(http2.ErrCodeInadequateSecurity)
	}
	c.writeServerPreface()
	c.mu.Lock()
	c.started = true
	drain := c.drainAtStart
	c.mu.Unlock()
	if drain {
		c.Drain()
	}
	// The client's preface goes on with a SETTINGS frame (§3.4).
	f, err := c.fr.ReadFrame()
	if err != nil {
		return c.readError(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if err := c.processSettings(sf); err != nil {
		return err
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	c.mu.Lock()
	c.armIdle()
	c.mu.Unlock()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				if err := c.streamReadError(se); err != nil {
					return err
				}
				continue
			}
			return c.readError(err)
		}
		if err := c.processFrame(f); err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				if c.clientStreamError(se) {
					return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
				}
				continue
			}
			return err
		}
		if c.ended() {
			return errEnd
		}
	}
}

// errEnd ends Serve without a GOAWAY: the connection is gone, closed, or
// drained.
var errEnd = errors.New("h2: connection ended")

// readError maps a read error to how the connection ends.
func (c *Conn) readError(err error) error {
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &ce):
		if d := c.fr.ErrorDetail(); d != nil {
			c.cfg.Logger.Debug("h2: client protocol error", "remote", c.remote, "code", http2.ErrCode(ce), "detail", d.Error())
		}
		return ce
	case errors.Is(err, http2.ErrFrameTooLarge):
		return http2.ConnectionError(http2.ErrCodeFrameSize)
	}
	return errEnd
}

// streamReadError handles a stream error from the Framer (a frame of a
// stream that is malformed by itself, such as a WINDOW_UPDATE of 0,
// §6.9): the stream is reset and the connection goes on. A new stream id
// still counts as used.
func (c *Conn) streamReadError(se http2.StreamError) error {
	c.useStreamID(se.StreamID)
	if c.clientStreamError(se) {
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	return nil
}

// ended reports whether Serve should stop: after Close, or when a drained
// connection has no stream left.
func (c *Conn) ended() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing || (c.goAway == goAwayFinal || c.goAway == goAwayClient) && len(c.streams) == 0
}

// shutdown ends the connection after Serve's loop: GOAWAY for a
// connection error, every stream cancelled, the handlers waited for, the
// socket closed.
func (c *Conn) shutdown(err error) {
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		c.mu.Lock()
		last := c.maxClientID
		c.mu.Unlock()
		c.writeFrame(func(fr *http2.Framer) error { return fr.WriteGoAway(last, http2.ErrCode(ce), nil) })
		c.lingerClose()
	}
	c.mu.Lock()
	// Ending by our own choice (drain, idle, a connection error): what is
	// queued still goes out. Ending because the client went away: it
	// would only wait for the write-stall deadline.
	graceful := c.closing || errors.As(err, &ce)
	c.closing = true
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	if c.drainTimer != nil {
		c.drainTimer.Stop()
	}
	for _, st := range c.streams {
		st.abort(errConnClosed)
	}
	c.mu.Unlock()
	c.cancel()
	// A handler blocked in write(2) is released by the close below, so
	// close first, then wait for the handlers.
	if graceful {
		c.flushAndWait()
	}
	c.closeSocket()
	c.wmu.Lock()
	if c.werr == nil {
		c.werr = errConnClosed
	}
	c.wcond.Broadcast()
	c.wmu.Unlock()
	c.handlers.Wait()
}

// lingerClose gives the client a moment to read a final GOAWAY before the
// socket closes: closing with unread bytes in the receive buffer makes the
// kernel send RST, which can discard the GOAWAY at the client before it
// reads it. Reads are drained for up to a second.
func (c *Conn) lingerClose() {
	_ = c.nc.SetReadDeadline(time.Now().Add(time.Second))
	var buf [1024]byte
	for {
		if _, err := c.nc.Read(buf[:]); err != nil {
			return
		}
	}
}

// errConnClosed fails a handler's reads and writes once the connection is
// gone. Retrying the request elsewhere is up to the client.
var errConnClosed = errors.New("h2: connection closed")

// Close ends the connection at once; Serve returns after its handlers do.
func (c *Conn) Close() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.closeSocket()
}

// closeSocket closes the connection below TLS, if any: tls.Conn.Close
// would first write close_notify, which a stalled client can hold for
// seconds. RFC 9113 §6.8's GOAWAY is the connection's goodbye.
func (c *Conn) closeSocket() {
	if tc, ok := c.nc.(interface{ NetConn() net.Conn }); ok {
		_ = tc.NetConn().Close()
		return
	}
	_ = c.nc.Close()
}

// Drain starts a graceful close (RFC 9113 §6.8): GOAWAY with the largest
// stream id and a PING, so that requests already on their way are still
// served; on the PING's ACK (or after a second), GOAWAY with the last
// stream id accepted. The connection closes once its open streams have
// ended. Drain may be called before Serve.
func (c *Conn) Drain() {
	c.mu.Lock()
	if c.goAway != goAwayNone || c.closing {
		c.mu.Unlock()
		return
	}
	if !c.started {
		c.drainAtStart = true
		c.mu.Unlock()
		return
	}
	c.goAway = goAwayFirst
	c.drainTimer = time.AfterFunc(time.Second, c.finalGoAway)
	c.mu.Unlock()
	// On a goroutine of its own: the caller drains every connection in
	// turn, and this one's socket may be stalled until the write deadline.
	go c.writeFrame(func(fr *http2.Framer) error {
		if err := fr.WriteGoAway(maxStreamID, http2.ErrCodeNo, nil); err != nil {
			return err
		}
		return fr.WritePing(false, drainPing)
	})
}

// finalGoAway is the drain's second step.
func (c *Conn) finalGoAway() {
	c.mu.Lock()
	if c.goAway != goAwayFirst || c.closing {
		c.mu.Unlock()
		return
	}
	c.goAway = goAwayFinal
	last := c.maxClientID
	empty := len(c.streams) == 0
	c.mu.Unlock()
	c.writeFrame(func(fr *http2.Framer) error { return fr.WriteGoAway(last, http2.ErrCodeNo, nil) })
	if empty {
		c.endIdle()
	}
}

// endIdle closes a connection with no stream open, when the reader may be
// blocked in a read that no frame will end. The read fails, and Serve
// returns through ended.
func (c *Conn) endIdle() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	// Writes already queued go out first: the GOAWAY must reach the client.
	c.flushAndWait()
	_ = c.nc.SetReadDeadline(time.Now())
}

// armIdle (re)starts the idle timer when no stream is open. Called with
// c.mu held.
func (c *Conn) armIdle() {
	if len(c.streams) != 0 || c.closing {
		return
	}
	// An idle connection gives back write buffers a burst grew (lock
	// order: mu, then wmu).
	c.wmu.Lock()
	if !c.flushing && len(c.wbuf) == 0 && cap(c.wbuf)+cap(c.spare) > idleBufferKeep {
		c.wbuf, c.spare = nil, nil
	}
	c.wmu.Unlock()
	if c.idleTimer == nil {
		c.idleTimer = time.AfterFunc(c.cfg.IdleTimeout, c.onIdle)
		return
	}
	c.idleTimer.Reset(c.cfg.IdleTimeout)
}

// onIdle: IdleTimeout passed with no stream open. The connection sends
// GOAWAY(NO_ERROR) with the last stream id and closes (§6.8).
func (c *Conn) onIdle() {
	c.mu.Lock()
	if len(c.streams) != 0 || c.closing {
		c.mu.Unlock()
		return
	}
	c.goAway = goAwayFinal
	last := c.maxClientID
	c.mu.Unlock()
	c.writeFrame(func(fr *http2.Framer) error { return fr.WriteGoAway(last, http2.ErrCodeNo, nil) })
	c.endIdle()
}

// writeServerPreface sends the server's SETTINGS (§3.4) and opens the
// connection window beyond the protocol's 65,535 bytes.
func (c *Conn) writeServerPreface() {
	settings := []http2.Setting{
		{ID: http2.SettingMaxConcurrentStreams, Val: c.cfg.MaxConcurrentStreams},
		{ID: http2.SettingMaxFrameSize, Val: c.cfg.MaxFrameSize},
		{ID: http2.SettingMaxHeaderListSize, Val: c.cfg.MaxHeaderListSize},
		{ID: http2.SettingInitialWindowSize, Val: streamWindow},
	}
	if c.cfg.EnableConnectProtocol {
		settings = append(settings, http2.Setting{ID: http2.SettingEnableConnectProtocol, Val: 1})
	}
	c.writeFrame(func(fr *http2.Framer) error {
		if err := fr.WriteSettings(settings...); err != nil {
			return err
		}
		return fr.WriteWindowUpdate(0, connWindow-initialWindow)
	})
}

// adequateTLS: HTTP/2 needs TLS 1.2 or later (RFC 9113 §9.2.1) and, on
// TLS 1.2, an ephemeral key exchange and an AEAD cipher (§9.2.2: Appendix A
// prohibits the rest). TLS 1.3 suites all qualify.
func adequateTLS(cs *tls.ConnectionState) bool {
	switch {
	case cs.Version >= tls.VersionTLS13:
		return true
	case cs.Version < tls.VersionTLS12:
		return false
	}
	switch cs.CipherSuite {
	case tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256:
		return true
	}
	return false
}
