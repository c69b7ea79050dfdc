package store

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sumdb/sumdb/tlog"
)

// Bounds of the cosignatures table (migration 0005_cosignatures.sql). A
// cosignature line is under 200 bytes for an Ed25519 key (its name, a key
// hash, a timestamp and a signature); ML-DSA signatures need a few KiB, but
// c2sp.org/tlog-cosignature's ML-DSA form is for subtrees, not checkpoints.
const (
	maxCosignatureLine = 1024
	// maxCosignatures bounds the lines ReadCosignatures returns: a note
	// holds at most 100 signatures (golang.org/x/mod/sumdb/note).
	maxCosignatures = 1000
)

// The queries of the cosignature methods, the same text for both stores.
const (
	insertCosignatureQuery = `INSERT INTO cosignatures (size, witness, line) VALUES ($1, $2, $3)
		ON CONFLICT (size, witness) DO NOTHING`
	readCosignatureQuery  = `SELECT line FROM cosignatures WHERE size = $1 AND witness = $2`
	readCosignaturesQuery = `SELECT witness, line FROM cosignatures WHERE size = $1 ORDER BY witness LIMIT $2`
)

// checkCosignature returns an error unless line can be the cosignature of
// the head of size by the witness key named witness: a note signature line
// "— <witness> <base64>\n" (c2sp.org/signed-note) whose signature holds at
// least the 4-byte key hash. line is nil for a read.
func checkCosignature(size int64, witness string, line []byte) error {
	if size <= 0 {
		return fmt.Errorf("cosignature of tree size %d: want a size of at least 1", size)
	}
	if witness == "" || len(witness) > maxMirrorDB || !utf8.ValidString(witness) ||
		strings.ContainsFunc(witness, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '+' }) {
		return fmt.Errorf("cosignature of tree size %d: witness name %q: want 1 to %d bytes of UTF-8 without spaces or '+' (the name of its key)", size, witness, maxMirrorDB)
	}
	if line == nil {
		return nil
	}
	if len(line) == 0 || len(line) > maxCosignatureLine {
		return fmt.Errorf("cosignature of tree size %d by %s: line of %d bytes, want 1 to %d", size, witness, len(line), maxCosignatureLine)
	}
	prefix := "— " + witness + " "
	sig, ok := bytes.CutPrefix(line, []byte(prefix))
	if ok {
		sig, ok = bytes.CutSuffix(sig, []byte("\n"))
	}
	if !ok {
		return fmt.Errorf("cosignature of tree size %d by %s: line %q, want %q followed by a base64 signature and a newline", size, witness, line, prefix)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(string(sig))
	// The decoder skips newlines and carriage returns, which would break
	// the note.
	if err != nil || len(b) <= 4 || strings.ContainsAny(string(sig), "\r\n") {
		return fmt.Errorf("cosignature of tree size %d by %s: the signature is not the base64 of a key hash and a signature", size, witness)
	}
	return nil
}

// putCosignature stores line with insert, which runs
// insertCosignatureQuery and returns the rows it inserted, and read, which
// returns the stored line. Storing the same line again is a no-op; another
// line is an error wrapping tlog.ErrConflict.
func putCosignature(size int64, witness string, line []byte, insert func() (int64, error), read func() ([]byte, error)) error {
	if line == nil {
		line = []byte{}
	}
	if err := checkCosignature(size, witness, line); err != nil {
		return fmt.Errorf("put %w", err)
	}
	n, err := insert()
	if err != nil {
		return fmt.Errorf("put cosignature of tree size %d by %s: %w", size, witness, err)
	}
	if n > 0 {
		return nil
	}
	stored, err := read()
	if err != nil {
		return fmt.Errorf("put cosignature of tree size %d by %s: read the stored one: %w", size, witness, err)
	}
	if bytes.Equal(stored, line) {
		return nil
	}
	// A witness signs with a timestamp, so two valid cosignatures of one
	// head differ; the first stored is kept, as replicas share it.
	return fmt.Errorf("put cosignature of tree size %d by %s: another cosignature is stored: %w", size, witness, tlog.ErrConflict)
}

// scanCosignatures reads the rows of readCosignaturesQuery.
func scanCosignatures(size int64, rows rowScanner) (map[string][]byte, error) {
	lines := make(map[string][]byte)
	for rows.Next() {
		var witness string
		var line []byte
		if err := rows.Scan(&witness, &line); err != nil {
			return nil, fmt.Errorf("read cosignatures of tree size %d: %w", size, err)
		}
		if err := checkCosignature(size, witness, line); err != nil {
			return nil, fmt.Errorf("read %w", err)
		}
		lines[witness] = line
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read cosignatures of tree size %d: %w", size, err)
	}
	if len(lines) > maxCosignatures {
		return nil, fmt.Errorf("read cosignatures of tree size %d: more than %d", size, maxCosignatures)
	}
	return lines, nil
}
