package audit

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"

	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/internal/modver"
)

// SplitDataTile splits the body of a data tile into the texts of its w
// records. A data tile is each record's text followed by a blank line (the
// record as tlog.FormatRecord formats it, without its id line), and a record
// text cannot hold a blank line, so the split is unique. The texts share
// data's memory and keep their final newline.
func SplitDataTile(data []byte, w int) ([][]byte, error) {
	texts := make([][]byte, 0, w)
	rest := data
	for len(rest) > 0 {
		i := bytes.Index(rest, []byte("\n\n"))
		if i < 0 {
			return nil, fmt.Errorf("record %d of the tile does not end with a blank line", len(texts))
		}
		if len(texts) == w {
			return nil, fmt.Errorf("more than %d records", w)
		}
		texts = append(texts, rest[:i+1:i+1])
		rest = rest[i+2:]
	}
	if len(texts) != w {
		return nil, fmt.Errorf("%d records, want %d", len(texts), w)
	}
	return texts, nil
}

// A record is one record of a data tile, parsed and checked.
type record struct {
	text          []byte
	leaf          xtlog.Hash // xtlog.RecordHash(text)
	path, version string     // from the first line, if it has the form "<path> <version> <hash>"
	zipHash       string     // "h1:..." of the first line, for messages
	modHash       string     // "h1:..." of the second line
	bad           error      // why the record is not well formed, or nil
}

// key returns "path@version".
func (r *record) key() string { return r.path + "@" + r.version }

// parseRecord hashes text and checks that it is a well-formed checksum
// database record:
//
//	<path> <version> h1:<base64 of 32 bytes>
//	<path> <version>/go.mod h1:<base64 of 32 bytes>
//
// with a valid module path and canonical version (modver.Check).
func parseRecord(text []byte) record {
	r := record{text: text, leaf: xtlog.RecordHash(text)}
	r.bad = r.check()
	return r
}

func (r *record) check() error {
	if len(r.text) == 0 || r.text[len(r.text)-1] != '\n' {
		return errors.New("does not end with a newline")
	}
	for _, c := range r.text {
		if c < 0x20 && c != '\n' || c >= 0x7f {
			return fmt.Errorf("holds the byte %#02x (want printable ASCII lines)", c)
		}
	}
	line1, rest, _ := bytes.Cut(r.text, []byte("\n"))
	path, version, hash, err := splitLine(line1)
	if err != nil {
		return fmt.Errorf("line 1: %w", err)
	}
	r.path, r.version, r.zipHash = path, version, hash
	if len(rest) == 0 {
		return errors.New("has one line, want two (the zip hash and the go.mod hash)")
	}
	line2, rest, _ := bytes.Cut(rest, []byte("\n"))
	if len(rest) > 0 {
		return fmt.Errorf("has %d lines, want two (the zip hash and the go.mod hash)", 2+bytes.Count(rest, []byte("\n")))
	}
	path2, version2, hash2, err := splitLine(line2)
	if err != nil {
		return fmt.Errorf("line 2: %w", err)
	}
	r.modHash = hash2
	if path2 != path || version2 != version+"/go.mod" {
		return fmt.Errorf("line 2 is of %s %s, want %s %s/go.mod", path2, version2, path, version)
	}
	if err := checkHash(hash); err != nil {
		return fmt.Errorf("line 1: %w", err)
	}
	if err := checkHash(hash2); err != nil {
		return fmt.Errorf("line 2: %w", err)
	}
	if err := modver.Check(path, version); err != nil {
		return err
	}
	return nil
}

// A Record is a well-formed record of a checksum database: the two go.sum
// lines of one module version.
type Record struct {
	Path, Version string
	ZipHash       string // "h1:..." of the module zip
	ModHash       string // "h1:..." of the go.mod file
}

// ParseRecord checks that text is a well-formed record, as the audit checks
// every record of the log (two go.sum lines of one valid module version
// with h1 hashes), and returns it; the error says why it is not.
func ParseRecord(text []byte) (Record, error) {
	r := parseRecord(text)
	if r.bad != nil {
		return Record{}, r.bad
	}
	return Record{Path: r.path, Version: r.version, ZipHash: r.zipHash, ModHash: r.modHash}, nil
}

// splitLine splits a go.sum line into its three space-separated fields.
func splitLine(line []byte) (path, version, hash string, err error) {
	p, rest, ok1 := bytes.Cut(line, []byte(" "))
	v, h, ok2 := bytes.Cut(rest, []byte(" "))
	if !ok1 || !ok2 || len(p) == 0 || len(v) == 0 || len(h) == 0 || bytes.IndexByte(h, ' ') >= 0 {
		return "", "", "", fmt.Errorf("%q is not \"<path> <version> h1:<hash>\"", clip(line))
	}
	return string(p), string(v), string(h), nil
}

// checkHash checks an "h1:" hash: the base64 encoding of 32 bytes.
func checkHash(h string) error {
	b64, ok := cutPrefix(h, "h1:")
	if !ok {
		return fmt.Errorf("hash %q does not start with h1:", clip([]byte(h)))
	}
	var buf [33]byte
	if base64.StdEncoding.EncodedLen(32) != len(b64) {
		return fmt.Errorf("hash %q is not the base64 encoding of 32 bytes", clip([]byte(h)))
	}
	n, err := base64.StdEncoding.Strict().Decode(buf[:], []byte(b64))
	if err != nil || n != 32 {
		return fmt.Errorf("hash %q is not the base64 encoding of 32 bytes", clip([]byte(h)))
	}
	return nil
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || s[:len(prefix)] != prefix {
		return s, false
	}
	return s[len(prefix):], true
}

// clip shortens b for a message.
func clip(b []byte) string {
	const n = 120
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// firstHash returns the "h1:" hash of the first line of a record text, or
// the whole first line if it has no such form: what a message shows of it.
func firstHash(text []byte) string {
	line, _, _ := bytes.Cut(text, []byte("\n"))
	if _, _, h, err := splitLine(line); err == nil {
		return h
	}
	return fmt.Sprintf("%q", clip(line))
}
