package h2

import (
	"io"
	"time"

	"golang.org/x/net/http2"
)

// floodCount counts frames of one kind. It trips when more than max
// arrive within window of the first counted one; otherwise, at the first
// frame over max, it starts again from that frame. A burst spread over the
// end of one count and the start of the next can pass up to 2*max frames in
// a window, never more; the clock is read twice per max frames only.
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

// frameCounter sits between the connection and the Framer and follows the
// frame boundaries of the bytes that pass (9-byte headers, then skipping
// payloads; nothing is copied or decoded). It counts the flood kinds it can
// tell from a frame header alone (RFC 9113 §10.5): RST_STREAM, control
// frames, and empty HEADERS, CONTINUATION and unknown frames. Below the
// Framer it sees every frame, whatever the Framer and the engine make of
// it.
// Empty DATA is counted by the reader after the frame is parsed, as only
// then is padding known. When a limit trips, the next Read returns
// ConnectionError(ENHANCE_YOUR_CALM); the Framer hands it out of ReadFrame.
//
// Used on the Serve goroutine only.
type frameCounter struct {
	r       io.Reader
	window  time.Duration
	resets  floodCount
	control floodCount
	empty   floodCount
	hdr     [9]byte
	hn      int // header bytes seen of the current frame
	remain  int // payload bytes still to pass
	tripped bool
}

func (fc *frameCounter) Read(p []byte) (int, error) {
	if fc.tripped {
		return 0, http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	n, err := fc.r.Read(p)
	for i := 0; i < n; {
		if fc.remain > 0 {
			k := min(fc.remain, n-i)
			fc.remain -= k
			i += k
			continue
		}
		fc.hdr[fc.hn] = p[i]
		fc.hn++
		i++
		if fc.hn == 9 {
			fc.hn = 0
			fc.remain = int(fc.hdr[0])<<16 | int(fc.hdr[1])<<8 | int(fc.hdr[2])
			if fc.count(http2.FrameType(fc.hdr[3]), http2.Flags(fc.hdr[4]), fc.remain) {
				fc.tripped = true
			}
		}
	}
	return n, err
}

func (fc *frameCounter) count(t http2.FrameType, fl http2.Flags, length int) bool {
	switch t {
	case http2.FrameRSTStream:
		return fc.resets.hit(fc.window)
	case http2.FramePing, http2.FrameSettings, http2.FramePriority:
		return fc.control.hit(fc.window)
	case http2.FrameHeaders:
		return length == 0 && fc.empty.hit(fc.window)
	case http2.FrameContinuation:
		return length == 0 && fl&http2.FlagContinuationEndHeaders == 0 && fc.empty.hit(fc.window)
	case http2.FrameData, http2.FrameGoAway, http2.FrameWindowUpdate, http2.FramePushPromise:
		return false
	}
	return fc.empty.hit(fc.window) // unknown type (RFC 9113 §5.5): carries nothing we use
}
