// Package export writes and reads export files: the whole log of a sumdb
// (its records in order and every signed head of its history) in one
// portable stream, to move a log from one store to another without
// changing anything a client can see: "sumdb export" and "sumdb import".
//
// # Format, version 1
//
// A header of text lines, so that head(1) shows what a file is, ended by
// an empty line:
//
//	sumdb export 1
//	key <verifier key of the log>
//	records <N>
//	(empty line)
//
// then frames, each one tag byte, the length of its payload as an unsigned
// varint (encoding/binary.AppendUvarint), and the payload:
//
//	'R'  a record: its text, the two go.sum lines. Records come in the
//	     order of their ids, from 0.
//	'H'  a signed head: the signed note, byte for byte as the log stores it.
//	     A head of size n comes right after the n-th record, so that a reader
//	     checks its root as soon as it has read it. Sizes increase.
//	'E'  the end: the number of records and the number of heads, as two
//	     unsigned varints. Nothing follows it.
//
// The records are N, and the last head has size N: the log's head when the
// export began. A file without its 'E' frame is truncated. Unknown header
// lines and tags are errors: a new version of the format gets a new number.
//
// Nothing is compressed (records are mostly base64 hashes, which compress
// poorly, and a compressor would cost more time than the import): a file is
// about 250 bytes per record plus about 200 per head. Pipe it through a
// compressor to store or send it.
//
// # Checks
//
// Write recomputes the tree from the records and checks the root of every
// head against it, so that it never writes a file that Import would refuse.
// Import checks the same, with every head's signature, before it commits
// the records a head covers: a file whose records do not give its heads,
// signed by another key, truncated or altered, is refused with the first
// record or head that is wrong, and nothing after that head is stored.
package export

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/tlog"
)

// Version is the version of the format that this package writes and reads.
const Version = 1

// magic begins the first line of every export file.
const magic = "sumdb export"

// Frame tags.
const (
	tagRecord = 'R'
	tagHead   = 'H'
	tagEnd    = 'E'
)

// Bounds on what a reader accepts, against damaged files.
const (
	maxHeader  = 4 << 10  // the whole header
	maxRecord  = 64 << 10 // a record: two go.sum lines of a module path of at most a few hundred bytes
	maxHeadLen = 64 << 10 // a signed note, with up to 100 signatures
)

// A Header is the header of an export file.
type Header struct {
	Key     string // verifier key of the log
	Records int64  // number of records, the size of the last head
}

// writeHeader writes h.
func writeHeader(w io.Writer, h Header) error {
	_, err := fmt.Fprintf(w, "%s %d\nkey %s\nrecords %d\n\n", magic, Version, h.Key, h.Records)
	return err
}

// readHeader reads the header of an export file.
func readHeader(r *bufio.Reader) (Header, error) {
	var h Header
	var lines []string
	total := 0
	for {
		// ReadSlice, not ReadString: a line is never longer than r's
		// buffer, so a file without a newline takes no memory to refuse.
		slice, err := r.ReadSlice('\n')
		total += len(slice)
		if total > maxHeader || errors.Is(err, bufio.ErrBufferFull) {
			return h, errors.New("read header: too long: not a sumdb export file")
		}
		line := string(slice)
		if err != nil {
			if errors.Is(err, io.EOF) {
				if total == 0 {
					return h, errors.New("read header: the file is empty")
				}
				return h, errors.New("read header: the file ends within its header: it is truncated, or not a sumdb export file")
			}
			return h, fmt.Errorf("read header: %w", err)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			break
		}
		lines = append(lines, line)
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], magic+" ") {
		return h, errors.New("read header: not a sumdb export file (it must begin with \"" + magic + " 1\")")
	}
	if v := strings.TrimPrefix(lines[0], magic+" "); v != strconv.Itoa(Version) {
		return h, fmt.Errorf("read header: export format version %q, this sumdb reads version %d: use the sumdb that wrote the file, or a newer one", v, Version)
	}
	seen := make(map[string]bool)
	for _, line := range lines[1:] {
		name, value, ok := strings.Cut(line, " ")
		if !ok || seen[name] {
			return h, fmt.Errorf("read header: malformed line %q", line)
		}
		seen[name] = true
		switch name {
		case "key":
			h.Key = value
		case "records":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n <= 0 {
				return h, fmt.Errorf("read header: malformed line %q", line)
			}
			h.Records = n
		default:
			return h, fmt.Errorf("read header: unknown line %q", line)
		}
	}
	if h.Key == "" || h.Records == 0 {
		return h, errors.New("read header: the key or records line is missing")
	}
	return h, nil
}

// writeFrame writes one frame.
func writeFrame(w *bufio.Writer, tag byte, payload []byte) error {
	var buf [1 + binary.MaxVarintLen64]byte
	buf[0] = tag
	n := binary.PutUvarint(buf[1:], uint64(len(payload)))
	if _, err := w.Write(buf[:1+n]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// A frameReader reads frames.
type frameReader struct {
	r   *bufio.Reader
	buf []byte
}

// errTruncated is returned when the stream ends before its end frame.
var errTruncated = errors.New("the file ends before its end frame: it is truncated (was the export interrupted, or the copy cut short?)")

// next returns the next frame. Its payload is valid until the next call.
func (f *frameReader) next() (tag byte, payload []byte, err error) {
	tag, err = f.r.ReadByte()
	if errors.Is(err, io.EOF) {
		return 0, nil, errTruncated
	}
	if err != nil {
		return 0, nil, err
	}
	n, err := binary.ReadUvarint(f.r)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return 0, nil, errTruncated
	}
	if err != nil {
		return 0, nil, fmt.Errorf("frame length: %w", err)
	}
	var limit uint64
	switch tag {
	case tagRecord:
		limit = maxRecord
	case tagHead:
		limit = maxHeadLen
	case tagEnd:
		limit = 2 * binary.MaxVarintLen64
	default:
		return 0, nil, fmt.Errorf("unknown frame tag %q: the file is damaged", tag)
	}
	if n > limit {
		return 0, nil, fmt.Errorf("frame %q of %d bytes, at most %d allowed: the file is damaged", tag, n, limit)
	}
	if cap(f.buf) < int(n) {
		f.buf = make([]byte, n, max(n, 4096))
	}
	f.buf = f.buf[:n]
	if _, err := io.ReadFull(f.r, f.buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, errTruncated
		}
		return 0, nil, err
	}
	return tag, f.buf, nil
}

// parseHead returns the tree of a signed tree note, without checking its
// signatures.
func parseHead(msg []byte) (xtlog.Tree, error) {
	text, _, ok := bytes.Cut(msg, []byte("\n\n"))
	if !ok {
		return xtlog.Tree{}, errors.New("not a signed note")
	}
	return xtlog.ParseTree(append(bytes.Clone(text), '\n'))
}

// verifyHead checks msg's signature with v and returns its head.
func verifyHead(msg []byte, v note.Verifier) (tlog.Head, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return tlog.Head{}, err
	}
	tree, err := xtlog.ParseTree([]byte(n.Text))
	if err != nil {
		return tlog.Head{}, err
	}
	return tlog.Head{Size: tree.N, Hash: tree.Hash, Note: msg}, nil
}

// parseRecord returns the path and version of a record from its text:
// exactly two lines, "<path> <version> <hash>" and
// "<path> <version>/go.mod <hash>".
func parseRecord(text []byte) (path, version string, err error) {
	bad := func() (string, string, error) {
		return "", "", fmt.Errorf("%q is not the two go.sum lines of a module version", text)
	}
	first, rest, ok := bytes.Cut(text, []byte("\n"))
	second, tail, ok2 := bytes.Cut(rest, []byte("\n"))
	if !ok || !ok2 || len(tail) != 0 {
		return bad()
	}
	p, pv, ok := bytes.Cut(first, []byte(" "))
	v, h, ok2 := bytes.Cut(pv, []byte(" "))
	if !ok || !ok2 || len(p) == 0 || len(v) == 0 || len(h) == 0 || bytes.IndexByte(h, ' ') >= 0 {
		return bad()
	}
	// "<path> <version>/go.mod <hash>"
	n := len(p) + 1 + len(v) + len("/go.mod ")
	if len(second) <= n || !bytes.HasPrefix(second, p) || second[len(p)] != ' ' ||
		!bytes.HasPrefix(second[len(p)+1:], v) || string(second[len(p)+1+len(v):n]) != "/go.mod " ||
		bytes.IndexByte(second[n:], ' ') >= 0 {
		return bad()
	}
	return string(p), string(v), nil
}

// Progress reports the records done of total; it is called every few
// thousand records and at the end.
type Progress func(done, total int64)

// contextErr returns ctx's error wrapped with what was cut short.
func contextErr(ctx context.Context, what string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
