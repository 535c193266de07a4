package frontend

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The HTTP/2 read shim.
//
// x/net/http2's server (v0.62.0) departs from RFC 9113 in two places, and
// hoplite keeps x/net, so a shim corrects the bytes x/net reads. It sits
// between the *tls.Conn and x/net's server (serveH2 in h2.go installs it)
// and never touches what x/net writes.
//
//  1. SETTINGS with an identifier twice. RFC 9113 §6.5.3: the values are
//     processed in order, the last one wins. x/net answers any duplicate
//     with GOAWAY(PROTOCOL_ERROR) (server.go processSettings,
//     HasDuplicates). The shim rewrites such a frame to one entry per
//     identifier, in order of first appearance, with the value a receiver
//     processing in order ends up with; see dedupeSettings.
//
//  2. Connection-specific fields in a request (RFC 9113 §8.2.2:
//     Connection, Proxy-Connection, Keep-Alive, Transfer-Encoding, Upgrade,
//     TE other than "trailers") make it malformed, a stream error of type
//     PROTOCOL_ERROR (§8.1.1). x/net accepts the header block and answers
//     400 from checkValidHTTP2RequestHeaders instead. The shim decodes
//     every header block with a shadow HPACK decoder fed the very bytes
//     x/net's decoder gets, so the two dynamic tables stay equal. When a
//     block holds such a field (Config.MalformedField decides which), the
//     shim adds to the block one field that x/net itself refuses: a literal
//     without indexing (RFC 7541 §6.2.2) named "X-Malformed". Upper case is
//     invalid in HTTP/2 (§8.2.1), so x/net's frame reader returns
//     StreamError(PROTOCOL_ERROR) for the block (frame.go readMetaFrame,
//     validWireHeaderFieldName) and its server answers RST_STREAM; the
//     request never reaches the handler. A literal without indexing leaves
//     the dynamic table alone, so x/net's table still equals the shadow's.
//     This covers trailers too: they are a header block like any other.
//
//  3. Floods (RFC 9113 §10.5). x/net bounds the frames it must answer only
//     while the client does not read the answers (maxQueuedControlFrames)
//     and the handlers of reset streams only by running at most
//     SETTINGS_MAX_CONCURRENT_STREAMS of them at a time; a client that
//     reads can make it answer PINGs and SETTINGS, start handlers for
//     streams it resets at once (rapid reset, CVE-2023-44487), or read
//     empty DATA and CONTINUATION frames for ever. The shim counts, per
//     connection, three kinds of frames that carry no request: RST_STREAM
//     and requests it marks malformed (each costs x/net a RST_STREAM of
//     its own) (Config.H2MaxResets), PING, SETTINGS and PRIORITY
//     (H2MaxControlFrames), and frames with nothing in them: DATA without
//     data or END_STREAM, empty HEADERS, CONTINUATION with an empty
//     fragment and no END_HEADERS, frames of unknown type
//     (H2MaxEmptyFrames). When
//     one kind passes its limit within Config.H2FloodWindow, the shim
//     hands out, in place of that frame, the read error
//     http2.ConnectionError(ENHANCE_YOUR_CALM): x/net's server answers a
//     ConnectionError from its frame reader with GOAWAY of that code and
//     closes the connection (server.go processFrameFromReader), exactly
//     as for an error of its own. The count costs a switch and an
//     increment per frame; the clock is read twice per limit's worth of
//     counted frames (floodCount). A padded DATA frame of at most 256
//     bytes is read whole, to see whether anything is left after the
//     padding.
//
// The marker goes at the end of the block's last frame (before its
// padding), not into an extra CONTINUATION frame: x/net's readMetaFrame
// ends the connection on any CONTINUATION that follows an invalid field or
// a header list over SETTINGS_MAX_HEADER_LIST_SIZE, so an extra frame would
// turn "malformed and also invalid" (RST_STREAM) and "malformed and also too
// large" (431) into GOAWAY. Inside the last frame x/net's answer to those
// blocks stays the one it gives without the shim. Only when the last frame
// has no room for the 14 marker bytes under the frame size x/net advertised
// does the shim clear END_HEADERS and append a CONTINUATION frame.
//
// The life of the bytes: the 24-byte client preface passes through as it is
// checked. Then frames: the shim reads a 9-byte frame header. DATA and every
// other frame it has no business with go out unchanged, header first, and
// their payload is read from the TLS connection straight into x/net's
// buffer (no copy, no buffering). SETTINGS and HEADERS/CONTINUATION frames
// are read whole into one reused buffer, inspected, possibly rewritten,
// and handed out from there. A frame is at most the SETTINGS_MAX_FRAME_SIZE
// x/net advertised (larger ones are x/net's FRAME_SIZE_ERROR), so that bounds
// the buffer; SETTINGS frames are inspected only up to 100 entries.
//
// Whenever the shim meets something x/net will treat as a connection error
// (oversized frame, frames out of order inside a header block, an HPACK
// decoding error) it hands out what it holds unchanged and from then on
// changes nothing: x/net produces its own error, and the connection ends
// with it. It still follows the frames and counts them for the flood
// limits, because one giving-up is not a connection error (below) and must
// not switch the limits off. A bad preface or a read error in the middle
// of a frame ends all inspection: from then on every byte passes through.
// The giving-up that is not a connection error: x/net stops materialising
// strings after an invalid field or past the header list limit (readMetaFrame
// disables emitting), the shadow decoder does not, so only the shadow
// checks the Huffman coding of the block's remaining unindexed literals.
// If that finds an error, later requests on the connection get x/net's own
// answer to connection-specific fields again: 400 for a request header
// (checkValidHTTP2RequestHeaders), nothing for trailers, whose such fields
// translate's hop-by-hop rules drop.
//
// The shim runs on x/net's frame-reading goroutine only (the preface is
// read on another goroutine, strictly before), so it needs no lock.

// shimConn is the connection x/net's HTTP/2 server gets: the *tls.Conn with
// reads going through the shim. Everything else is the *tls.Conn's own,
// including ConnectionState, which x/net type-asserts (http2.go
// connectionStater) to check the TLS version and cipher suite and to fill
// Request.TLS.
type shimConn struct {
	*tls.Conn
	shim h2Shim
}

func newShimConn(c *tls.Conn, cfg shimConfig) *shimConn {
	sc := &shimConn{Conn: c}
	sc.shim.init(c, cfg)
	return sc
}

func (c *shimConn) Read(p []byte) (int, error) { return c.shim.Read(p) }

// shimConfig holds the limits x/net's server applies to one connection.
// The shim must apply the same ones to stay in step with it.
type shimConfig struct {
	// maxFrameSize is the SETTINGS_MAX_FRAME_SIZE x/net advertises and
	// enforces on every frame it reads (http2.Server.MaxReadFrameSize).
	maxFrameSize uint32
	// headerTableSize is the dynamic table size of x/net's HPACK decoder
	// (http2.Server.MaxDecoderHeaderTableSize, default 4096). The table
	// x/net decodes with is the one it advertises in its own
	// SETTINGS_HEADER_TABLE_SIZE; the client's setting governs x/net's
	// encoder, not its decoder (server.go processSetting).
	headerTableSize uint32
	// maxHeaderListSize is x/net's SETTINGS_MAX_HEADER_LIST_SIZE. x/net
	// also caps each HPACK string at it (frame.go maxHeaderStringLen).
	maxHeaderListSize uint32
	// malformed is Config.MalformedField; nil turns header inspection off.
	malformed func(name, value string) bool
	// The flood limits: frames of each kind per floodWindow; <= 0 is no
	// limit (Config.H2MaxResets, H2MaxControlFrames, H2MaxEmptyFrames).
	floodWindow time.Duration
	maxResets   int
	maxControl  int
	maxEmpty    int
}

type shimState uint8

const (
	shimPreface     shimState = iota // checking the client preface
	shimFrames                       // reading and inspecting frames
	shimPassthrough                  // gave up: every byte passes unchanged
)

const (
	frameHeaderLen = 9
	// maxShimSettings is the largest SETTINGS frame the shim rewrites, in
	// entries. x/net hangs up on larger ones (processSettings: more than
	// 100 entries); those pass unchanged for it to do so.
	maxShimSettings = 100
	// shimSlack is the room kept after a frame in the buffer: the marker,
	// plus a frame header should it need a CONTINUATION of its own.
	shimSlack = frameHeaderLen + len(malformedMarker)
	// shimMinBuf is the smallest inspection buffer: it fits the SETTINGS
	// and header blocks of ordinary clients.
	shimMinBuf = 2 << 10
	// shimKeepBuf: a buffer grown past this for one large header block is
	// dropped once that block has been handed out.
	shimKeepBuf = 32 << 10
	// shimPaddedCheck: a padded DATA frame up to this long is read whole
	// to see whether it holds any data (padding is at most 255 bytes plus
	// the length octet).
	shimPaddedCheck = 256
)

// errH2Flood is what the shim's Read returns in place of a frame that
// passes a flood limit. x/net's server answers it with
// GOAWAY(ENHANCE_YOUR_CALM) and closes the connection.
var errH2Flood error = http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)

// floodCount counts frames of one kind. It trips when more than max
// arrive within window of the first counted one; otherwise, at the first
// frame over max, it starts again from that frame. A burst spread over
// the end of one count and the start of the next can pass up to 2*max
// frames in a window, never more: enough for a flood limit, and the clock
// is read twice per max frames only.
type floodCount struct {
	max   int // <= 0: no limit
	n     int
	start time.Time
}

// hit counts one frame and reports whether the limit is passed.
func (c *floodCount) hit(window time.Duration) bool {
	if c.max <= 0 {
		return false
	}
	c.n++
	switch {
	case c.n == 1:
		c.start = time.Now()
		return false
	case c.n <= c.max:
		return false
	}
	now := time.Now()
	if now.Sub(c.start) < window {
		return true
	}
	c.n, c.start = 1, now
	return false
}

// malformedMarker is one HPACK field representation: literal header field
// without indexing, new name (RFC 7541 §6.2.2: first octet 0x00), name and
// value as plain strings (H bit clear), name "X-Malformed", empty value.
var malformedMarker = [...]byte{0x00, 11, 'X', '-', 'M', 'a', 'l', 'f', 'o', 'r', 'm', 'e', 'd', 0x00}

// h2Shim transforms the HTTP/2 byte stream a client sends before x/net's
// server reads it; see the comment at the top of this file.
type h2Shim struct {
	src       io.Reader
	maxFrame  int
	malformed func(name, value string) bool
	dec       *hpack.Decoder // shadow of x/net's decoder; nil without malformed

	state   shimState
	preface int // client preface bytes seen

	hdr  [frameHeaderLen]byte // frame header being read
	hdrN int                  // bytes of hdr read

	buf  []byte // a frame read whole for inspection; len(buf) == cap(buf)
	bufN int    // bytes of buf read
	need int    // length of the frame in buf, header included; 0 between frames

	out  []byte // bytes to hand out before anything else; aliases hdr or buf
	pass int    // payload bytes to hand out straight from src

	// The header block being decoded.
	inBlock     bool
	blockStream uint32
	blockBad    bool // a field made the request malformed

	// inspectOff: gave up on a connection error of x/net's (or one that
	// is not); frames are followed and counted, never changed.
	inspectOff bool
	// Flood limits (see the top of the file).
	floodWindow            time.Duration
	resets, control, empty floodCount
	err                    error // errH2Flood once a limit is passed; sticky
}

func (s *h2Shim) init(src io.Reader, cfg shimConfig) {
	s.src = src
	s.maxFrame = int(cfg.maxFrameSize)
	s.malformed = cfg.malformed
	s.floodWindow = cfg.floodWindow
	s.resets.max, s.control.max, s.empty.max = cfg.maxResets, cfg.maxControl, cfg.maxEmpty
	if s.malformed != nil {
		s.dec = hpack.NewDecoder(cfg.headerTableSize, s.onField)
		// x/net sets the same limit before every block; it never changes.
		s.dec.SetMaxStringLength(int(cfg.maxHeaderListSize))
	}
}

// Read hands out the client's byte stream as x/net must see it. It returns
// bytes of one frame at a time at most, and DATA payload straight from the
// connection into p.
func (s *h2Shim) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if len(s.out) > 0 {
			n := copy(p, s.out)
			s.out = s.out[n:]
			return n, nil
		}
		if s.pass > 0 {
			if len(p) > s.pass {
				p = p[:s.pass]
			}
			n, err := s.src.Read(p)
			s.pass -= n
			return n, err
		}
		if s.err != nil {
			return 0, s.err
		}
		switch s.state {
		case shimPassthrough:
			return s.src.Read(p)
		case shimPreface:
			return s.readPreface(p)
		}
		if err := s.next(); err != nil {
			return s.abandon(p, err)
		}
	}
}

// readPreface passes the client preface (RFC 9113 §3.4) through, checking
// it on the way. Anything else means no HTTP/2 to inspect.
func (s *h2Shim) readPreface(p []byte) (int, error) {
	want := http2.ClientPreface[s.preface:]
	if len(p) > len(want) {
		p = p[:len(want)]
	}
	n, err := s.src.Read(p)
	if string(p[:n]) != want[:n] {
		s.state = shimPassthrough
		return n, err
	}
	s.preface += n
	if s.preface == len(http2.ClientPreface) {
		s.state = shimFrames
	}
	return n, err
}

// next reads on from src until it has something to hand out: a frame
// header to pass with its payload, or a whole inspected frame.
func (s *h2Shim) next() error {
	if s.need == 0 {
		if len(s.buf) > shimKeepBuf && s.hdrN == 0 {
			s.buf = nil // the large block it held is out
		}
		for s.hdrN < frameHeaderLen {
			n, err := s.src.Read(s.hdr[s.hdrN:])
			s.hdrN += n
			if err != nil {
				return err
			}
		}
		s.hdrN = 0
		s.onFrameHeader()
		return nil
	}
	for s.bufN < s.need {
		n, err := s.src.Read(s.buf[s.bufN:s.need])
		s.bufN += n
		if err != nil {
			return err
		}
	}
	s.inspect(s.buf[:s.need])
	s.need, s.bufN = 0, 0
	return nil
}

// abandon hands out the part of a frame read before err, unchanged, and
// stops transforming.
func (s *h2Shim) abandon(p []byte, err error) (int, error) {
	if s.need > 0 {
		s.out = s.buf[:s.bufN]
	} else {
		s.out = s.hdr[:s.hdrN]
	}
	s.need, s.bufN, s.hdrN = 0, 0, 0
	s.giveUp()
	s.state = shimPassthrough
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, err
}

// giveUp stops inspecting and rewriting; framing and flood counts go on.
func (s *h2Shim) giveUp() {
	s.inspectOff = true
	s.inBlock = false
}

// onFrameHeader decides what to do with the frame whose header is in hdr.
func (s *h2Shim) onFrameHeader() {
	h := s.hdr[:]
	length := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
	typ := http2.FrameType(h[3])
	flags := http2.Flags(h[4])
	stream := binary.BigEndian.Uint32(h[5:]) & (1<<31 - 1)
	if s.flood(typ, flags, length) {
		s.out = nil
		s.err = errH2Flood
		return
	}
	s.out = h
	s.pass = length
	if !s.inspectOff {
		if length > s.maxFrame {
			s.giveUp() // x/net: FRAME_SIZE_ERROR (frame.go ReadFrameHeader)
			return
		}
		if s.inBlock {
			if typ != http2.FrameContinuation || stream != s.blockStream {
				s.giveUp() // x/net: PROTOCOL_ERROR (frame.go checkFrameOrder)
				return
			}
			s.readWhole(length)
			return
		}
		switch typ {
		case http2.FrameSettings:
			if !flags.Has(http2.FlagSettingsAck) && stream == 0 && length%6 == 0 &&
				length >= 2*6 && length <= maxShimSettings*6 {
				s.readWhole(length)
				return
			}
		case http2.FrameHeaders:
			if s.dec != nil && stream != 0 {
				s.readWhole(length)
				return
			}
		case http2.FrameContinuation:
			if s.dec != nil {
				s.giveUp() // x/net: PROTOCOL_ERROR, no header block is open
				return
			}
		}
	}
	if typ == http2.FrameData && flags.Has(http2.FlagDataPadded) && !flags.Has(http2.FlagDataEndStream) &&
		length > 0 && length <= shimPaddedCheck && length <= s.maxFrame && s.empty.max > 0 {
		s.readWhole(length) // inspect: is there data after the padding?
	}
}

// flood counts the frame whose header is in hdr against the flood limits
// and reports whether it passes one.
func (s *h2Shim) flood(typ http2.FrameType, flags http2.Flags, length int) bool {
	switch typ {
	case http2.FrameData:
		return length == 0 && !flags.Has(http2.FlagDataEndStream) && s.empty.hit(s.floodWindow)
	case http2.FrameHeaders:
		// An empty block is no request (it lacks the pseudo-header
		// fields); x/net answers each one with RST_STREAM.
		return length == 0 && s.empty.hit(s.floodWindow)
	case http2.FrameContinuation:
		return length == 0 && !flags.Has(http2.FlagContinuationEndHeaders) && s.empty.hit(s.floodWindow)
	case http2.FrameRSTStream:
		return s.resets.hit(s.floodWindow)
	case http2.FramePing, http2.FrameSettings, http2.FramePriority, http2.FramePriorityUpdate:
		return s.control.hit(s.floodWindow)
	case http2.FrameWindowUpdate, http2.FrameGoAway, http2.FramePushPromise:
		// WINDOW_UPDATE is how a reading client asks for more: a fast
		// download sends thousands a second. GOAWAY ends the connection;
		// PUSH_PROMISE from a client is x/net's PROTOCOL_ERROR.
		return false
	}
	// Unknown types: x/net reads and ignores them (RFC 9113 §5.5).
	return s.empty.hit(s.floodWindow)
}

// readWhole arranges for the frame whose header is in hdr to be read into
// buf and inspected before any of it is handed out.
func (s *h2Shim) readWhole(length int) {
	s.out = nil
	s.pass = 0
	s.need = frameHeaderLen + length
	if len(s.buf) < s.need+shimSlack {
		// Doubling, so a client's growing header blocks cost few
		// allocations; never past the largest frame plus the slack.
		s.buf = make([]byte, max(s.need+shimSlack, min(2*len(s.buf), s.maxFrame+frameHeaderLen+shimSlack), shimMinBuf))
	}
	copy(s.buf, s.hdr[:])
	s.bufN = frameHeaderLen
}

// inspect takes a frame read whole and sets out to what x/net must read
// in its place.
func (s *h2Shim) inspect(f []byte) {
	s.out = f
	switch http2.FrameType(f[3]) {
	case http2.FrameData:
		// Padded, without END_STREAM (onFrameHeader); RFC 9113 §6.1: the
		// pad length octet, the data, then that much padding.
		if len(f)-frameHeaderLen-1-int(f[frameHeaderLen]) <= 0 && s.empty.hit(s.floodWindow) {
			s.out = nil
			s.err = errH2Flood
		}
		return
	}
	if s.inspectOff {
		return
	}
	switch http2.FrameType(f[3]) {
	case http2.FrameSettings:
		s.dedupeSettings(f)
	case http2.FrameHeaders:
		s.onHeaders(f)
	case http2.FrameContinuation:
		s.decode(f, f[frameHeaderLen:], len(f))
	}
}

// dedupeSettings rewrites a SETTINGS frame that names an identifier more
// than once (RFC 9113 §6.5.3: values are processed in the order they
// appear) to one entry per identifier, in order of first appearance,
// holding the value an in-order receiver ends up with: the last one, up to
// the first invalid value (RFC 9113 §6.5.2). A receiver stops at that one
// with a connection error, so the rewrite keeps it and drops what follows,
// and x/net raises that same error.
func (s *h2Shim) dedupeSettings(f []byte) {
	p := f[frameHeaderLen:]
	n := 0 // entries kept, in p[:6*n]
	changed := false
	for i := 0; i < len(p); i += 6 {
		id := binary.BigEndian.Uint16(p[i:])
		k := 0
		for k < n && binary.BigEndian.Uint16(p[6*k:]) != id {
			k++
		}
		if k < n {
			changed = true // a duplicate: overwrite the earlier value
		} else {
			n++
		}
		copy(p[6*k:6*k+6], p[i:i+6]) // 6*k <= i: never ahead of the scan
		if settingInvalid(http2.SettingID(id), binary.BigEndian.Uint32(p[i+2:])) {
			changed = changed || i+6 < len(p)
			break
		}
	}
	if !changed {
		return
	}
	putFrameLength(f, 6*n)
	s.out = f[:frameHeaderLen+6*n]
}

// settingInvalid reports the values x/net answers with a connection error:
// those of RFC 9113 §6.5.2 and RFC 8441 §3 (http2.Setting.Valid), and
// SETTINGS_NO_RFC7540_PRIORITIES other than 0 or 1 (RFC 9218 §2.1, checked
// in x/net's processSetting).
func settingInvalid(id http2.SettingID, v uint32) bool {
	return http2.Setting{ID: id, Val: v}.Valid() != nil ||
		id == http2.SettingNoRFC7540Priorities && v > 1
}

// onHeaders starts a header block with a HEADERS frame: its fragment lies
// after the pad length (PADDED) and the priority fields (PRIORITY) and
// before the padding (RFC 9113 §6.2).
func (s *h2Shim) onHeaders(f []byte) {
	flags := http2.Flags(f[4])
	frag := f[frameHeaderLen:]
	pad := 0
	if flags.Has(http2.FlagHeadersPadded) {
		if len(frag) < 1 {
			s.giveUp() // x/net: read error, connection closed
			return
		}
		pad = int(frag[0])
		frag = frag[1:]
	}
	if flags.Has(http2.FlagHeadersPriority) {
		if len(frag) < 5 {
			s.giveUp() // x/net: read error, connection closed
			return
		}
		frag = frag[5:]
	}
	if len(frag) < pad {
		// x/net resets the stream without decoding the block
		// (parseHeadersFrame); a CONTINUATION would then be a
		// connection error.
		if !flags.Has(http2.FlagHeadersEndHeaders) {
			s.giveUp()
		}
		return
	}
	s.inBlock = true
	s.blockStream = binary.BigEndian.Uint32(f[5:]) & (1<<31 - 1)
	s.blockBad = false
	s.dec.SetEmitEnabled(true)
	s.decode(f, frag[:len(frag)-pad], len(f)-pad)
}

// decode feeds the fragment of frame f (HEADERS or CONTINUATION) to the
// shadow decoder; fragEnd is the fragment's end offset in f. At the end of
// the block it marks a malformed request.
func (s *h2Shim) decode(f, frag []byte, fragEnd int) {
	if _, err := s.dec.Write(frag); err != nil {
		s.giveUp() // x/net: COMPRESSION_ERROR
		return
	}
	if !http2.Flags(f[4]).Has(http2.FlagHeadersEndHeaders) {
		return
	}
	s.inBlock = false
	if err := s.dec.Close(); err != nil {
		s.giveUp() // x/net: COMPRESSION_ERROR
		return
	}
	if s.blockBad {
		// A malformed request costs x/net a RST_STREAM, as a client's
		// reset costs it a handler: it counts as a reset (the reset flood
		// of CVE-2019-9514).
		if s.resets.hit(s.floodWindow) {
			s.out = nil
			s.err = errH2Flood
			return
		}
		s.mark(f, fragEnd)
	}
}

// mark adds malformedMarker to the end of the header block whose last frame
// f is at the start of buf; fragEnd is where its fragment ends.
func (s *h2Shim) mark(f []byte, fragEnd int) {
	m := len(malformedMarker)
	n := len(f)
	if length := n - frameHeaderLen; length+m <= s.maxFrame {
		// Into the frame, before its padding.
		copy(s.buf[fragEnd+m:n+m], s.buf[fragEnd:n])
		copy(s.buf[fragEnd:], malformedMarker[:])
		putFrameLength(s.buf, length+m)
		s.out = s.buf[:n+m]
		return
	}
	// No room: END_HEADERS moves to a CONTINUATION holding the marker.
	s.buf[4] &^= byte(http2.FlagHeadersEndHeaders)
	c := s.buf[n : n+frameHeaderLen+m]
	putFrameLength(c, m)
	c[3] = byte(http2.FrameContinuation)
	c[4] = byte(http2.FlagContinuationEndHeaders)
	binary.BigEndian.PutUint32(c[5:], s.blockStream)
	copy(c[frameHeaderLen:], malformedMarker[:])
	s.out = s.buf[:n+frameHeaderLen+m]
}

// onField is the shadow decoder's emit function.
func (s *h2Shim) onField(f hpack.HeaderField) {
	if len(f.Name) > 0 && f.Name[0] == ':' {
		return // pseudo-header fields are x/net's to check
	}
	if s.malformed(f.Name, f.Value) {
		s.blockBad = true
		// The rest of the block need not be materialised; the dynamic
		// table is still kept (hpack: emit off still indexes).
		s.dec.SetEmitEnabled(false)
	}
}

func putFrameLength(h []byte, n int) {
	h[0], h[1], h[2] = byte(n>>16), byte(n>>8), byte(n)
}
