package backend

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
)

// The three ways an HTTP/1.1 response's content is delimited
// (RFC 9112 §6.3). Each reader returns io.EOF together with the last bytes
// when it can, so that the consumer knows the content is complete without
// another call (and, for example, need not flush a partial write).

// lengthReader reads exactly remaining bytes.
type lengthReader struct {
	br        *bufio.Reader
	remaining int64
}

func (r *lengthReader) Read(p []byte) (int, error) {
	if r.remaining <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	n, err := r.br.Read(p)
	r.remaining -= int64(n)
	if r.remaining == 0 {
		return n, io.EOF
	}
	if err == io.EOF {
		// The origin closed before sending all it announced.
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// eofReader reads until the origin closes the connection.
type eofReader struct{ br *bufio.Reader }

func (r eofReader) Read(p []byte) (int, error) { return r.br.Read(p) }

// chunkedReader decodes the chunked transfer coding (RFC 9112 §7.1) and
// stores the trailer section's fields in trailer.
type chunkedReader struct {
	br        *bufio.Reader
	trailer   http.Header // filled when the last chunk is read
	remaining int64       // data bytes left in the current chunk
	dataEnd   bool        // a chunk's data ended; its CRLF is still unread
	err       error       // sticky: io.EOF after the trailer section
}

func (r *chunkedReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.remaining == 0 {
		if r.err = r.nextChunk(); r.err != nil {
			return 0, r.err
		}
	}
	if int64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	n, err := r.br.Read(p)
	r.remaining -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		r.err = err
		return n, err
	}
	if r.remaining == 0 {
		r.dataEnd = true
		// Most chunked responses end right here with an empty trailer
		// section already in the buffer: finish now so that the caller
		// sees io.EOF with the last data.
		if tail, _ := r.br.Peek(min(r.br.Buffered(), 7)); bytes.Equal(tail, []byte("\r\n0\r\n\r\n")) {
			r.br.Discard(7)
			r.err = io.EOF
			return n, io.EOF
		}
	}
	return n, nil
}

// nextChunk reads the CRLF ending the previous chunk's data, then the next
// chunk-size line; for the last chunk it reads the trailer section.
func (r *chunkedReader) nextChunk() error {
	if r.dataEnd {
		var crlf [2]byte
		if _, err := io.ReadFull(r.br, crlf[:]); err != nil {
			return unexpected(err)
		}
		if crlf != [2]byte{'\r', '\n'} {
			return fmt.Errorf("%w: chunk data not followed by CRLF", errFraming)
		}
		r.dataEnd = false
	}
	line, err := r.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(line) > maxChunkLineLen {
		return fmt.Errorf("%w: chunk line too long", errFraming)
	}
	if err != nil {
		return unexpected(err)
	}
	n, err := parseChunkLine(line)
	if err != nil {
		return err
	}
	if n > 0 {
		r.remaining = n
		return nil
	}
	budget := maxChunkLineLen * 4
	fields, err := readFields(r.br, &budget)
	if err != nil {
		return unexpected(err)
	}
	for k, vv := range fields {
		r.trailer[k] = vv
	}
	return io.EOF
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseChunkLine parses one chunk-size line, its line end included:
// chunk-size [ chunk-ext ] CRLF (RFC 9112 §7.1). A bare LF is not accepted
// here, where the difference has been used to smuggle (§11.2), nor are
// control characters in an extension.
func parseChunkLine(line []byte) (int64, error) {
	if len(line) < 2 || line[len(line)-2] != '\r' || line[len(line)-1] != '\n' ||
		bytes.IndexByte(line[:len(line)-2], '\r') >= 0 {
		return 0, fmt.Errorf("%w: chunk line not ended by CRLF", errFraming)
	}
	line = line[:len(line)-2]
	size, ext, _ := bytes.Cut(line, []byte(";"))
	size = bytes.TrimRight(size, " \t") // BWS before an extension
	if len(size) == 0 || len(size) > 15 {
		return 0, fmt.Errorf("%w: chunk size %q", errFraming, truncate(line))
	}
	var n int64
	for _, c := range size {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, fmt.Errorf("%w: chunk size %q", errFraming, truncate(line))
		}
		n = n<<4 | int64(d)
	}
	for _, c := range ext {
		if c < ' ' && c != '\t' || c == 0x7f {
			return 0, fmt.Errorf("%w: control character in chunk extension", errFraming)
		}
	}
	return n, nil
}
