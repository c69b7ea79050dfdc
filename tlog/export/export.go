// Package export writes and reads export files: the whole log of a sumdb
// (its records in order and every signed head of its history) in one
// portable stream, to move a log from one store to another without
// changing anything a client can see: "sumdb export" and "sumdb import".
//
// # Format, version 2
//
// A header of text lines, so that head(1) shows what a file is, ended by
// an empty line:
//
//	sumdb export 2
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
//
// then the optional mirror sections, the cache of the checksum databases
// that the server mirrors (package sumdb/mirror), one section for each
// database with a verified head; a section's frames begin with the
// database's name (the name of its key) as a string, an unsigned varint
// length and the bytes:
//
//	'M'  the section's head: the name, then the newest verified head of
//	     the database, its signed note, byte for byte.
//	'T'  a tile: the name, its level as a signed varint (0 to 7 for a hash
//	     tile of height 8, -1 for a data tile), its index as an unsigned
//	     varint, then its content (the tile's hashes, or its records' texts
//	     each followed by a blank line), at most as wide as the head's tree.
//	'C'  a record: the name, its id as an unsigned varint, its path and
//	     version as strings, then its text.
//
// and the end:
//
//	'E'  the number of records and the number of heads of the log, then of
//	     mirror heads, tiles and records, as five unsigned varints.
//	     Nothing follows it.
//
// The records are N, and the last head has size N: the log's head when the
// export began. N is 0 for a server whose log is empty (one that only
// mirrors), whose file has no 'R' or 'H' frames and may have no key line.
// A file without its 'E' frame is truncated. Unknown header lines and tags
// are errors: a new version of the format gets a new number.
//
// Version 1, which Import still reads, is version 2 without mirror sections,
// with N at least 1, and with an 'E' frame of two varints.
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
//
// A mirror section is verified before any of it is stored: its head's
// signature with the key given for its database (ImportConfig.MirrorKeys),
// every hash tile against that head (golang.org/x/mod/sumdb/tlog's
// TileHashReader, over the file's tiles and those the store holds), every
// record of a data tile and every lookup record against the proved leaf
// hashes. A tile or record that the file cannot prove (a tile narrower than
// the head's tree needs) is left out; anything contradicted refuses the
// import. A head the store holds already for the database must be the same
// log as the file's, and only a newer one replaces it.
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

// Version is the version of the format that this package writes; it reads
// it and version 1.
const Version = 2

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
	Version int    // of the format
	Key     string // verifier key of the log; may be empty in version 2 if Records is 0
	Records int64  // number of records, the size of the last head
}

// writeHeader writes h, of version Version if h.Version is 0.
func writeHeader(w io.Writer, h Header) error {
	if h.Version == 0 {
		h.Version = Version
	}
	key := ""
	if h.Key != "" {
		key = "key " + h.Key + "\n"
	}
	_, err := fmt.Fprintf(w, "%s %d\n%srecords %d\n\n", magic, h.Version, key, h.Records)
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
	switch v := strings.TrimPrefix(lines[0], magic+" "); v {
	case "1", "2":
		h.Version = int(v[0] - '0')
	default:
		return h, fmt.Errorf("read header: export format version %q, this sumdb reads versions 1 to %d: use the sumdb that wrote the file, or a newer one", v, Version)
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
			if err != nil || n < 0 || (n == 0 && h.Version == 1) || (n == 0 && value != "0") {
				return h, fmt.Errorf("read header: malformed line %q", line)
			}
			h.Records = n
		default:
			return h, fmt.Errorf("read header: unknown line %q", line)
		}
	}
	if !seen["records"] || (h.Key == "" && h.Records > 0) {
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
	r       *bufio.Reader
	buf     []byte
	version int // of the file's format
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
	switch {
	case tag == tagRecord:
		limit = maxRecord
	case tag == tagHead:
		limit = maxHeadLen
	case tag == tagEnd:
		limit = 5 * binary.MaxVarintLen64
	case tag == tagMirrorHead && f.version >= 2:
		limit = maxMirrorTag + maxHeadLen
	case tag == tagMirrorTile && f.version >= 2:
		limit = maxMirrorTag + 2*binary.MaxVarintLen64 + maxMirrorData
	case tag == tagMirrorRecord && f.version >= 2:
		limit = maxMirrorTag + 3*binary.MaxVarintLen64 + 3*maxRecord
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
