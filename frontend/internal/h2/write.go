package h2

import (
	"errors"
	"runtime"

	"golang.org/x/net/http2"
)

// Writing frames.
//
// Every frame is appended to c.wbuf under c.wmu. The goroutine that finds
// no write(2) in progress becomes the flusher: it swaps the buffers and
// writes the full one outside the lock, then the frames appended meanwhile,
// until none are left. So frames that become ready together (a response's
// HEADERS and DATA, the answers of many streams finishing at once) leave in
// one write(2), and no goroutine waits for a writer goroutine or a channel.
// Before its first write(2) the flusher yields the processor once if
// other handlers of the connection are running, so that responses ready
// at nearly the same moment share it. A goroutine that appends while
// another flushes returns at once, unless
// the buffer already holds maxBuffered bytes: then it waits for the
// flusher (a client that does not read holds its senders, and the
// connection's write-stall deadline ends it).

// maxBuffered bounds c.wbuf while a write(2) is in progress.
const maxBuffered = 64 << 10

// connWriter is the Framer's io.Writer: it appends to c.wbuf (c.wmu held).
type connWriter struct{ c *Conn }

func (w connWriter) Write(p []byte) (int, error) {
	w.c.wbuf = append(w.c.wbuf, p...)
	w.c.lastData = -1
	return len(p), nil
}

// writeFrame appends the frames fn writes and sends them out.
func (c *Conn) writeFrame(fn func(*http2.Framer) error) {
	c.writeStreamFrame(nil, fn, false)
}

// writeStreamFrame appends the frames fn writes for st (nil: for the
// connection) and sends them out. ending marks the stream's last frame
// (END_STREAM or RST_STREAM): after it, nothing more is written for st. It
// returns an error when the stream has already ended or the connection
// cannot be written.
func (c *Conn) writeStreamFrame(st *stream, fn func(*http2.Framer) error, ending bool) error {
	c.wmu.Lock()
	if err := c.appendLocked(st, fn, ending); err != nil {
		c.wmu.Unlock()
		return err
	}
	c.flushLocked()
	return nil
}

// appendLocked appends fn's frames for st. Called with c.wmu held.
func (c *Conn) appendLocked(st *stream, fn func(*http2.Framer) error, ending bool) error {
	if c.werr != nil {
		return c.werr
	}
	if st != nil {
		if st.wclosed {
			return errStreamReset
		}
		if ending {
			st.wclosed = true
		}
	}
	for c.flushing && len(c.wbuf) >= maxBuffered && c.werr == nil {
		c.wcond.Wait()
	}
	if c.werr != nil {
		return c.werr
	}
	if err := fn(c.fr); err != nil {
		// The Framer refuses only frames we built wrong.
		c.cfg.Logger.Error("h2: cannot write frame", "err", err.Error())
		return err
	}
	return nil
}

// flushLocked writes c.wbuf out unless another goroutine is writing, in
// which case that one will. Called with c.wmu held; returns with it
// released.
func (c *Conn) flushLocked() {
	if c.flushing {
		c.wmu.Unlock()
		return
	}
	c.flushing = true
	if c.running.Load() > 1 {
		// Other streams' handlers are running: let those that are
		// runnable append their frames first, so that they leave in the
		// same TLS record and write(2). This costs one scheduling round,
		// never a timer.
		c.wmu.Unlock()
		runtime.Gosched()
		c.wmu.Lock()
	}
	for len(c.wbuf) > 0 && c.werr == nil {
		buf := c.wbuf
		c.wbuf, c.spare = c.spare[:0], nil
		c.lastData = -1
		c.wmu.Unlock()
		_, err := c.nc.Write(buf)
		c.wmu.Lock()
		c.spare = buf[:0]
		if err != nil && c.werr == nil {
			c.werr = errors.Join(errConnClosed, err)
		}
		c.wcond.Broadcast()
	}
	c.flushing = false
	if cap(c.spare) > 4*maxBuffered {
		// A burst grew the buffer: let it go rather than hold it idle.
		c.spare = nil
	}
	c.wcond.Broadcast()
	c.wmu.Unlock()
}

// flush sends what is buffered, or leaves it to the goroutine already
// writing: its loop goes on until the buffer is empty. A handler never
// waits for other streams' writes.
func (c *Conn) flush() {
	c.wmu.Lock()
	c.flushLocked()
}

// flushAndWait returns once every frame appended so far has been written
// (or writing has failed).
func (c *Conn) flushAndWait() {
	c.wmu.Lock()
	for c.flushing && c.werr == nil {
		c.wcond.Wait()
	}
	c.flushLocked()
}

// appendData appends one DATA frame, built here rather than by the Framer
// so that the payload is copied once. Called with c.wmu held.
func (c *Conn) appendData(id uint32, p []byte, end bool) {
	var flags byte
	if end {
		flags = byte(http2.FlagDataEndStream)
	}
	n := len(p)
	c.lastData = len(c.wbuf)
	c.wbuf = append(c.wbuf, byte(n>>16), byte(n>>8), byte(n), byte(http2.FrameData), flags,
		byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	c.wbuf = append(c.wbuf, p...)
}

// endOnLastData sets END_STREAM on the last frame in c.wbuf if it is a
// DATA frame of stream id, and reports whether it did: a response's end
// then costs no frame of its own. Called with c.wmu held.
func (c *Conn) endOnLastData(id uint32) bool {
	i := c.lastData
	if i < 0 || i+9 > len(c.wbuf) {
		return false
	}
	h := c.wbuf[i : i+9]
	if http2.FrameType(h[3]) != http2.FrameData || uint32(h[5]&0x7f)<<24|uint32(h[6])<<16|uint32(h[7])<<8|uint32(h[8]) != id {
		return false
	}
	h[4] |= byte(http2.FlagDataEndStream)
	return true
}

// encodeBuffer collects one header block from the hpack encoder.
type encodeBuffer struct{ b []byte }

func (e *encodeBuffer) Write(p []byte) (int, error) {
	e.b = append(e.b, p...)
	return len(p), nil
}

// appendHeaders writes the header block in c.encBuf as HEADERS and, past
// the client's frame size, CONTINUATION frames (§6.10). Called with c.wmu
// held; maxFrame is the client's SETTINGS_MAX_FRAME_SIZE.
func (c *Conn) appendHeaders(id uint32, end bool, maxFrame int) error {
	block := c.encBuf.b
	first := block[:min(len(block), maxFrame)]
	block = block[len(first):]
	err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: end, EndHeaders: len(block) == 0})
	for err == nil && len(block) > 0 {
		frag := block[:min(len(block), maxFrame)]
		block = block[len(frag):]
		err = c.fr.WriteContinuation(id, len(block) == 0, frag)
	}
	c.encBuf.b = c.encBuf.b[:0]
	return err
}
