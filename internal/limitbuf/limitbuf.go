// Package limitbuf is a buffer that keeps only the first bytes written to
// it: for the output of a subprocess, which must neither block the process
// nor grow memory without bound, however much it prints.
package limitbuf

import "bytes"

// A Buffer keeps the first Limit bytes written to it and drops the rest,
// noting that it did. Write never fails, so that a process writing to it
// is never blocked or killed by a broken pipe.
//
// It has no ReadFrom method, as a bytes.Buffer has: io.Copy would call it
// and read through the limit.
type Buffer struct {
	buf       bytes.Buffer
	limit     int
	truncated bool
}

// New returns a Buffer that keeps at most limit bytes.
func New(limit int) *Buffer { return &Buffer{limit: limit} }

// Write keeps what of p fits under the limit and reports all of p written.
func (b *Buffer) Write(p []byte) (int, error) {
	if room := b.limit - b.buf.Len(); len(p) > room {
		b.truncated = true
		b.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.buf.Write(p)
}

// Bytes returns the bytes kept.
func (b *Buffer) Bytes() []byte { return b.buf.Bytes() }

// String returns the bytes kept as a string.
func (b *Buffer) String() string { return b.buf.String() }

// Truncated reports whether bytes were dropped.
func (b *Buffer) Truncated() bool { return b.truncated }
