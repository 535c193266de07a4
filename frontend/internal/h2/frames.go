package h2

import (
	"errors"

	"golang.org/x/net/http2"
)

// processFrame handles one frame from the client, on Serve's goroutine. It
// returns a ConnectionError to end the connection, a StreamError to reset
// one stream, or nil.
func (c *Conn) processFrame(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.HeadersFrame:
		c.hb.begin(f)
		if err := c.hb.write(f.HeaderBlockFragment(), false); err != nil {
			return err
		}
		if !f.HeadersEnded() {
			return nil
		}
		return c.endHeaders()
	case *http2.ContinuationFrame:
		// The Framer refuses a CONTINUATION that does not follow its
		// HEADERS (§6.10); this is the second line.
		if !c.hb.active || f.StreamID != c.hb.list.id {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if err := c.hb.write(f.HeaderBlockFragment(), true); err != nil {
			return err
		}
		if !f.HeadersEnded() {
			return nil
		}
		return c.endHeaders()
	case *http2.DataFrame:
		return c.processData(f)
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		return c.processSettings(f)
	case *http2.PingFrame:
		return c.processPing(f)
	case *http2.WindowUpdateFrame:
		return c.processWindowUpdate(f)
	case *http2.RSTStreamFrame:
		return c.processReset(f)
	case *http2.PriorityFrame:
		// Priority signals are accepted and ignored (RFC 9113 §5.3.2), but
		// a stream cannot depend on itself (§5.3.1).
		if f.StreamDep == f.StreamID {
			return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
		}
		return nil
	case *http2.GoAwayFrame:
		c.mu.Lock()
		c.goAway = goAwayClient
		c.mu.Unlock()
		return nil
	case *http2.PushPromiseFrame:
		// A client cannot push (§8.4).
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	// Unknown frame types are ignored (§5.5); the flood counter bounds them.
	return nil
}

// processSettings applies the client's settings in order, so that with an
// identifier given twice the last value wins (§6.5.3), and acknowledges
// them.
func (c *Conn) processSettings(f *http2.SettingsFrame) error {
	c.mu.Lock()
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			// §6.9.2: the change applies to every open stream's send
			// window, which may go negative; one past 2^31-1 is a
			// FLOW_CONTROL_ERROR.
			delta := int64(s.Val) - c.peerInitial
			c.peerInitial = int64(s.Val)
			for _, st := range c.streams {
				st.sendWindow += delta
				if st.sendWindow > maxWindow {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
				st.cond.Broadcast()
			}
		case http2.SettingMaxFrameSize:
			c.peerMaxFrame = int(s.Val)
		case http2.SettingHeaderTableSize:
			// The encoder's table follows the client's limit; changing it
			// is the encoder's (under wmu), applied in the next block.
			c.wmu.Lock()
			c.enc.SetMaxDynamicTableSizeLimit(s.Val)
			c.wmu.Unlock()
		}
		return nil
	})
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.writeFrame(func(fr *http2.Framer) error { return fr.WriteSettingsAck() })
	return nil
}

func (c *Conn) processPing(f *http2.PingFrame) error {
	if f.StreamID != 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if f.IsAck() {
		if f.Data == drainPing {
			c.finalGoAway()
		}
		return nil
	}
	data := f.Data
	c.writeFrame(func(fr *http2.Framer) error { return fr.WritePing(true, data) })
	return nil
}

func (c *Conn) processWindowUpdate(f *http2.WindowUpdateFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.StreamID == 0 {
		c.sendWindow += int64(f.Increment)
		if c.sendWindow > maxWindow {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		for _, st := range c.streams {
			st.cond.Broadcast()
		}
		return nil
	}
	st := c.streams[f.StreamID]
	if st == nil {
		if c.idle(f.StreamID) {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		return nil // closed: a WINDOW_UPDATE may cross our END_STREAM (§5.1)
	}
	st.sendWindow += int64(f.Increment)
	if st.sendWindow > maxWindow {
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
	}
	st.cond.Broadcast()
	return nil
}

func (c *Conn) processReset(f *http2.RSTStreamFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.streams[f.StreamID]
	if st == nil {
		if c.idle(f.StreamID) {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		return nil
	}
	st.abort(errStreamReset)
	c.closeUnlessRunning(st)
	// Nothing more goes out on the stream but, should the client send on
	// it again, one RST_STREAM(STREAM_CLOSED) (§5.1: closed). Lock order:
	// mu, then wmu.
	c.wmu.Lock()
	st.wclosed = true
	c.wmu.Unlock()
	return nil
}

// closeUnlessRunning closes a reset stream, unless its handler is still
// running: until it returns, the stream counts against
// SETTINGS_MAX_CONCURRENT_STREAMS, so that resetting streams cannot run
// more handlers at once than the limit (rapid reset, CVE-2023-44487); its
// finish closes it. Called with c.mu held.
func (c *Conn) closeUnlessRunning(st *stream) {
	if !st.running {
		c.closeStream(st)
	}
}

// useStreamID records that the client has used stream id, even for a
// request refused or malformed: a stream id is never idle again once used
// (§5.1.1), and later ones must be larger.
func (c *Conn) useStreamID(id uint32) {
	c.mu.Lock()
	if id%2 == 1 && id > c.maxClientID {
		c.maxClientID = id
	}
	c.mu.Unlock()
}

// idle reports whether id names a stream the client has not opened yet
// (§5.1: the "idle" state). Even ids are the server's, which never opens
// one. Called with c.mu held.
func (c *Conn) idle(id uint32) bool {
	return id%2 == 0 || id > c.maxClientID
}

// processData takes a DATA frame's payload into its stream's body buffer,
// under both flow-control windows (§6.9).
func (c *Conn) processData(f *http2.DataFrame) error {
	// Whatever happens to the frame, the connection-level window it used
	// comes back in due course: data for closed or failed streams too,
	// else such frames would close the connection's window on the others.
	defer c.flushWindowUpdates()
	id := f.StreamID
	data := f.Data()
	// The whole frame counts against the windows, padding included
	// (§6.9.1); padding is given back at once.
	length := int(f.Length)
	if len(data) == 0 && !f.StreamEnded() && c.flood.empty.hit(c.cfg.FloodWindow) {
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	c.mu.Lock()
	if int64(length) > c.recvWindow {
		c.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	c.recvWindow -= int64(length)
	st := c.streams[id]
	if st != nil && st.err != nil {
		// Reset, its handler still running: the data is discarded.
		// After our RST_STREAM, frames in flight are ignored (§5.1).
		c.returnConn(length)
		c.wmu.Lock() // lock order: mu, then wmu
		sent := st.rstSent
		c.wmu.Unlock()
		c.mu.Unlock()
		if sent {
			return nil
		}
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	}
	if st == nil || st.remoteClosed {
		idle := st == nil && c.idle(id)
		// Closed streams still count against the connection's window,
		// which is returned at once (the stream's data is discarded).
		c.returnConn(length)
		c.mu.Unlock()
		if idle {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	}
	if int64(length) > st.recvWindow {
		c.returnConn(length)
		c.mu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeFlowControl}
	}
	st.recvWindow -= int64(length)
	if pad := length - len(data); pad > 0 {
		c.returnConn(pad)
		st.returnStream(pad)
	}
	if err := st.receive(data, f.StreamEnded()); err != nil {
		c.returnConn(len(data))
		c.mu.Unlock()
		return err
	}
	c.mu.Unlock()
	return nil
}

// endHeaders hands a complete header block on. A malformed block still
// uses its stream id (§5.1.1).
func (c *Conn) endHeaders() error {
	l, err := c.hb.end()
	if err != nil {
		var se http2.StreamError
		if errors.As(err, &se) {
			c.useStreamID(se.StreamID)
		}
		return err
	}
	return c.processHeaders(l)
}

// processHeaders opens a stream for a request, or takes a request's
// trailers (§8.1).
func (c *Conn) processHeaders(f *headerList) error {
	id := f.id
	if id%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if f.hasPriority && f.dep == id {
		// A stream cannot depend on itself (§5.3.1); a new one is used
		// up all the same (§5.1.1).
		c.useStreamID(id)
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	c.mu.Lock()
	if st := c.streams[id]; st != nil {
		defer c.mu.Unlock()
		if st.err != nil {
			c.wmu.Lock() // lock order: mu, then wmu
			ours := st.rstSent
			c.wmu.Unlock()
			if ours {
				// Frames in flight after our RST_STREAM are ignored
				// (§5.1); the block was decoded, so the HPACK state
				// is intact.
				return nil
			}
			// After the client's own RST_STREAM (§5.1: closed).
			return http2.ConnectionError(http2.ErrCodeStreamClosed)
		}
		if st.remoteClosed {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
		}
		return st.receiveTrailers(f)
	}
	if id <= c.maxClientID {
		// A stream id must grow (§5.1.1); an old one is closed.
		c.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	c.maxClientID = id
	if c.goAway == goAwayFinal || c.closing {
		// Above the last stream id of our GOAWAY: ignored (§6.8).
		c.mu.Unlock()
		return nil
	}
	if uint32(len(c.streams)) >= c.cfg.MaxConcurrentStreams {
		c.mu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeRefusedStream}
	}
	c.mu.Unlock()

	if f.truncated {
		// The decoded list passed SETTINGS_MAX_HEADER_LIST_SIZE (§6.5.2):
		// answered here, the fields were never kept.
		c.writeTooLarge(id, f.StreamEnded())
		return nil
	}
	st := c.newStream(id)
	if err := st.buildRequest(f); err != nil {
		return err
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	c.streams[id] = st
	st.running = true
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	c.mu.Unlock()
	c.handlers.Add(1)
	c.running.Add(1)
	goWork(st.serve)
	return nil
}

// resetStream sends RST_STREAM and closes the stream here (or, while its
// handler runs, once it returns).
func (c *Conn) resetStream(id uint32, code http2.ErrCode) {
	c.mu.Lock()
	st := c.streams[id]
	if st != nil {
		st.abort(errStreamReset)
		c.closeUnlessRunning(st)
	}
	c.mu.Unlock()
	c.wmu.Lock()
	if st != nil {
		// RST_STREAM may follow our END_STREAM (the client sent on a
		// stream we had closed), but goes once.
		if st.rstSent {
			c.wmu.Unlock()
			return
		}
		st.rstSent, st.wclosed = true, true
	}
	if c.appendLocked(nil, func(fr *http2.Framer) error { return fr.WriteRSTStream(id, code) }, false) != nil {
		c.wmu.Unlock()
	} else {
		c.flushLocked()
	}
}

// clientStreamError answers a stream error the client caused with
// RST_STREAM, and reports whether the client has now caused more of them
// than the flood limit allows: each costs a frame and, often, a decoded
// header block (reset flood, CVE-2019-9514). REFUSED_STREAM is not counted:
// a client may meet the stream limit in good faith.
func (c *Conn) clientStreamError(se http2.StreamError) bool {
	c.resetStream(se.StreamID, se.Code)
	return se.Code != http2.ErrCodeRefusedStream && c.flood.resets.hit(c.cfg.FloodWindow)
}
