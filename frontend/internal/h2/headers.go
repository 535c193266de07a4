package h2

import (
	"errors"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Header blocks (RFC 9113 §4.3): a HEADERS frame and the CONTINUATION
// frames that follow it, decoded with the connection's hpack.Decoder as
// the fragments arrive. This is the part of x/net's ReadMetaHeaders the
// engine does itself, with the same rules, so that a block costs no frame
// and no field slice of its own: the fields go into one slice per
// connection, valid until the next block.
//
// The rules, as x/net's Framer applies them: field names are tokens in
// lower case, values have no CR, LF or NUL (RFC 9113 §8.2.1);
// pseudo-header fields come first, known ones only, each once, and a
// block is a request's or a response's, not both (§8.3); such a block is
// a stream error PROTOCOL_ERROR once decoded (the HPACK state stays
// right). The decoded list is bounded by SETTINGS_MAX_HEADER_LIST_SIZE
// (§6.5.2, name + value + 32 per field): past it, fields are no longer
// kept and the request gets 431; a single string longer than the whole
// limit is a COMPRESSION_ERROR. CONTINUATION frames after the block went
// over the limit or met an invalid field end the connection with
// PROTOCOL_ERROR, so that a client cannot make the engine decode without
// bound (the CONTINUATION flood, CVE-2024-27316).

// headerList is one decoded header block.
type headerList struct {
	id          uint32
	end         bool // END_STREAM on the HEADERS frame
	hasPriority bool
	dep         uint32 // the stream dependency, with hasPriority
	truncated   bool   // over SETTINGS_MAX_HEADER_LIST_SIZE: fields dropped
	fields      []hpack.HeaderField
	npseudo     int
}

func (l *headerList) StreamEnded() bool                  { return l.end }
func (l *headerList) PseudoFields() []hpack.HeaderField  { return l.fields[:l.npseudo] }
func (l *headerList) RegularFields() []hpack.HeaderField { return l.fields[l.npseudo:] }

// headerBlock decodes the blocks of one connection. Serve's goroutine
// only.
type headerBlock struct {
	dec     *hpack.Decoder
	maxList uint32
	list    headerList
	active  bool // a block is open: CONTINUATION frames follow
	remain  uint32
	regular bool // a regular field was seen (pseudo-header fields must precede)
	invalid error
}

var (
	errPseudoAfterRegular = errors.New("h2: pseudo-header field after a regular one")
	errFieldName          = errors.New("h2: invalid field name")
	errFieldValue         = errors.New("h2: invalid field value")
	errPseudo             = errors.New("h2: unknown, repeated or mixed pseudo-header fields")
)

func newHeaderBlock(maxList uint32) *headerBlock {
	b := &headerBlock{maxList: maxList}
	b.dec = hpack.NewDecoder(initialTableSize, b.emit)
	b.dec.SetMaxStringLength(int(maxList))
	return b
}

// begin opens the block of a HEADERS frame.
func (b *headerBlock) begin(f *http2.HeadersFrame) {
	b.list = headerList{id: f.StreamID, end: f.StreamEnded(), fields: b.list.fields[:0]}
	if f.HasPriority() {
		b.list.hasPriority, b.list.dep = true, f.Priority.StreamDep
	}
	b.active, b.remain, b.regular, b.invalid = true, b.maxList, false, nil
	b.dec.SetEmitEnabled(true)
}

// write decodes one fragment. It returns a ConnectionError for what ends
// the connection; the block's own faults are reported by end.
func (b *headerBlock) write(frag []byte, continuation bool) error {
	if continuation && len(frag) > 0 && (b.invalid != nil || b.list.truncated || uint64(len(frag)) > 2*uint64(b.remain)) {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if _, err := b.dec.Write(frag); err != nil {
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	return nil
}

// end closes the block after its END_HEADERS. It returns the list, or a
// StreamError for a malformed block, or a ConnectionError.
func (b *headerBlock) end() (*headerList, error) {
	b.active = false
	if err := b.dec.Close(); err != nil {
		return nil, http2.ConnectionError(http2.ErrCodeCompression)
	}
	if b.invalid == nil {
		b.invalid = b.checkPseudo()
	}
	if b.invalid != nil {
		return nil, http2.StreamError{StreamID: b.list.id, Code: http2.ErrCodeProtocol, Cause: b.invalid}
	}
	return &b.list, nil
}

// emit takes one decoded field.
func (b *headerBlock) emit(hf hpack.HeaderField) {
	if !httpguts.ValidHeaderFieldValue(hf.Value) {
		b.invalid = errFieldValue
	}
	if strings.HasPrefix(hf.Name, ":") {
		if b.regular {
			b.invalid = errPseudoAfterRegular
		}
	} else {
		b.regular = true
		if !validWireName(hf.Name) {
			b.invalid = errFieldName
		}
	}
	if b.invalid != nil {
		b.dec.SetEmitEnabled(false)
		return
	}
	size := hf.Size()
	if size > b.remain {
		b.dec.SetEmitEnabled(false)
		b.list.truncated, b.remain = true, 0
		return
	}
	b.remain -= size
	if !b.regular {
		b.list.npseudo++
	}
	b.list.fields = append(b.list.fields, hf)
}

// checkPseudo: known pseudo-header fields only, each once, not request
// and response ones together (§8.3).
func (b *headerBlock) checkPseudo() error {
	pf := b.list.PseudoFields()
	var request, response bool
	for i, f := range pf {
		switch f.Name {
		case ":method", ":path", ":scheme", ":authority", ":protocol":
			request = true
		case ":status":
			response = true
		default:
			return errPseudo
		}
		for _, g := range pf[:i] {
			if g.Name == f.Name {
				return errPseudo
			}
		}
	}
	if request && response {
		return errPseudo
	}
	return nil
}

// validWireName: a non-empty token without upper case (RFC 9113 §8.2.1).
func validWireName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !httpguts.IsTokenRune(rune(c)) || 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}
