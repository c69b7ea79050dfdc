// Package store keeps sumdb's log in a database, behind the tlog.Store
// interface: PostgreSQL (Postgres), for production and for several serve
// processes sharing one log, or one embedded SQLite file (SQLite), for a
// single process. Both pass the conformance suite in store/storetest.
//
// Both backends share one schema (see package migrations): a records table
// keyed by position with a unique 16-byte lookup key, one row per hash tile,
// a single head row that every Append locks, and the history of signed heads.
package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"

	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumdb/sumdb/migrations"
	"github.com/sumdb/sumdb/tlog"
)

// keySize is the length of a record's lookup key. 16 bytes make an accidental
// collision among 10^12 records less likely than 10^-14; a collision crafted
// at a cost of about 2^64 hashes only makes one of the attacker's own two
// module versions unstorable (see errKeyCollision).
const keySize = 16

// recordKey returns the lookup key of path@version: the first keySize bytes of
// SHA-256("path@version"). The key is of the exact, unescaped path: paths
// that differ only in case have different keys.
func recordKey(path, version string) []byte {
	sum := sha256.Sum256([]byte(path + "@" + version))
	return sum[:keySize]
}

// parseText returns the module path and version of a record from its text,
// whose first line is "<path> <version> <hash>" (a go.sum line). Neither a
// module path nor a version can contain a space.
func parseText(text []byte) (path, version string, err error) {
	line, _, _ := bytes.Cut(text, []byte("\n"))
	p, rest, ok1 := bytes.Cut(line, []byte(" "))
	v, h, ok2 := bytes.Cut(rest, []byte(" "))
	if !ok1 || !ok2 || len(p) == 0 || len(v) == 0 || len(h) == 0 || bytes.IndexByte(h, ' ') >= 0 {
		return "", "", fmt.Errorf("parse record text: first line %q is not \"<path> <version> <hash>\"", line)
	}
	return string(p), string(v), nil
}

// errKeyCollision is returned when two different path@version have the same
// lookup key, which takes about 2^64 attempts to arrange on purpose.
var errKeyCollision = errors.New("record key collides with a stored record of another path@version (a SHA-256 prefix collision): this module version cannot be stored")

// checkBatch returns an error if b is not a well-formed batch: records with
// IDs OldSize, OldSize+1, ..., whose texts begin with their path and version,
// no path@version twice, tiles of whole hashes, and a signed head of size
// OldSize+len(Records), with history heads of sizes in between. These are
// bugs of the caller, not conflicts.
func checkBatch(b *tlog.Batch) error {
	if b == nil {
		return errors.New("check batch: nil batch")
	}
	if b.OldSize < 0 {
		return fmt.Errorf("check batch: old size %d is negative", b.OldSize)
	}
	if b.OldSize > 0 && b.OldHash == (xtlog.Hash{}) {
		return fmt.Errorf("check batch: old size %d without the old root hash", b.OldSize)
	}
	if want := b.OldSize + int64(len(b.Records)); b.Head.Size != want {
		return fmt.Errorf("check batch: head size %d, want old size %d + %d records = %d", b.Head.Size, b.OldSize, len(b.Records), want)
	}
	if len(b.Head.Note) == 0 {
		return fmt.Errorf("check batch: head of size %d has no signed note", b.Head.Size)
	}
	seen := make(map[string]bool, len(b.Records))
	for i, r := range b.Records {
		if want := b.OldSize + int64(i); r.ID != want {
			return fmt.Errorf("check batch: record %d (%s) has id %d, want %d", i, r.Key(), r.ID, want)
		}
		if r.Path == "" || r.Version == "" {
			return fmt.Errorf("check batch: record %d has an empty path or version", r.ID)
		}
		path, version, err := parseText(r.Text)
		if err != nil {
			return fmt.Errorf("check batch: record %d: %w", r.ID, err)
		}
		if path != r.Path || version != r.Version {
			return fmt.Errorf("check batch: record %d is %s but its text is of %s@%s", r.ID, r.Key(), path, version)
		}
		if seen[r.Key()] {
			return fmt.Errorf("check batch: %s appears twice", r.Key())
		}
		seen[r.Key()] = true
	}
	type tileID struct {
		level int
		index int64
	}
	tiles := make(map[tileID]bool, len(b.Tiles))
	for _, t := range b.Tiles {
		if t.Level < 0 || t.Index < 0 {
			return fmt.Errorf("check batch: tile %d/%d has a negative coordinate", t.Level, t.Index)
		}
		if n := len(t.Hashes); n == 0 || n%32 != 0 || n > tlog.TileWidth*32 {
			return fmt.Errorf("check batch: tile %d/%d has %d bytes, want 1 to %d hashes of 32 bytes", t.Level, t.Index, n, tlog.TileWidth)
		}
		id := tileID{t.Level, t.Index}
		if tiles[id] {
			return fmt.Errorf("check batch: tile %d/%d appears twice", t.Level, t.Index)
		}
		tiles[id] = true
	}
	last := b.OldSize
	for _, h := range b.History {
		if h.Size <= last || h.Size >= b.Head.Size {
			return fmt.Errorf("check batch: history head of size %d: want sizes increasing strictly between %d and %d", h.Size, b.OldSize, b.Head.Size)
		}
		if len(h.Note) == 0 {
			return fmt.Errorf("check batch: history head of size %d has no signed note", h.Size)
		}
		last = h.Size
	}
	return nil
}

// checkResign returns an error if an empty batch would store a head whose
// root hash differs from the stored one (storedHash, nil if none): a tree of
// one size has one root hash, and anything else is a fork.
func checkResign(b *tlog.Batch, storedHash []byte) error {
	if len(b.Records) > 0 || storedHash == nil || bytes.Equal(storedHash, b.Head.Hash[:]) {
		return nil
	}
	return fmt.Errorf("append empty batch at size %d: root hash %x differs from the stored %x: refusing to fork the log", b.OldSize, b.Head.Hash[:], storedHash)
}

// fenced returns the error of an append whose old tree is not the stored
// head's (size, and root hash storedHash, nil if none), or nil. The root
// is part of the fence: a batch computed against another tree of the same
// size would extend a tree that contradicts the heads its writer served.
func fenced(b *tlog.Batch, size int64, storedHash []byte) error {
	if size != b.OldSize {
		return fmt.Errorf("append at size %d: stored head has size %d: %w", b.OldSize, size, tlog.ErrConflict)
	}
	if size > 0 && !bytes.Equal(storedHash, b.OldHash[:]) {
		return fmt.Errorf("append at size %d: stored head has root %v, not %v, the root of the tree the batch extends: %w", b.OldSize, xtlog.Hash(storedHash), b.OldHash, tlog.ErrConflict)
	}
	return nil
}

// hashFrom converts a stored root hash to a tlog hash.
func hashFrom(b []byte) (h [32]byte, err error) {
	if len(b) != len(h) {
		return h, fmt.Errorf("stored hash has %d bytes, want %d", len(b), len(h))
	}
	copy(h[:], b)
	return h, nil
}

// applyPending applies, with exec, the migrations of list that a database
// at schema version current lacks, recording each in schema_version with
// insertVersion; it fails if current is newer than any this binary knows.
func applyPending(list []migrations.Migration, current int, insertVersion string, exec func(query string, args ...any) error) error {
	if current > len(list) {
		return fmt.Errorf("database schema version %d is newer than this sumdb (knows %d): upgrade sumdb", current, len(list))
	}
	if current < 0 {
		return fmt.Errorf("database schema version %d is invalid", current)
	}
	for _, m := range list[current:] {
		if err := exec(m.SQL); err != nil {
			return fmt.Errorf("migrate: apply %s: %w", m.Name, err)
		}
		if err := exec(insertVersion, m.Version, m.Name); err != nil {
			return fmt.Errorf("migrate: record %s: %w", m.Name, err)
		}
	}
	return nil
}

// duplicateTexts returns the *tlog.DuplicateError of the records whose
// texts are texts, some path@version of which appear more than once.
func duplicateTexts(texts [][]byte) error {
	seen := make(map[string]int)
	dup := new(tlog.DuplicateError)
	for _, text := range texts {
		path, version, err := parseText(text)
		if err != nil {
			return fmt.Errorf("find records stored twice: %w", err)
		}
		k := path + "@" + version
		if seen[k]++; seen[k] == 2 {
			dup.Keys = append(dup.Keys, k)
		}
	}
	if len(dup.Keys) == 0 {
		return errKeyCollision
	}
	return dup
}

// The queries of the read methods, the same text for both stores (both
// drivers take $1-style parameters).
const (
	lookupQuery      = `SELECT id, text FROM records WHERE key = $1`
	readRecordsQuery = `SELECT id, text FROM records WHERE id >= $1 AND id < $2 ORDER BY id`
	readTileQuery    = `SELECT hashes FROM tiles WHERE level = $1 AND idx = $2`
	readHeadsQuery   = `SELECT size, hash, note FROM heads WHERE size >= $1 AND size <= $2 ORDER BY size`
)

// A rowScanner is a result set being read: pgx.Rows and *sql.Rows both are.
type rowScanner interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// lookupRow returns the record of path@version from the row of lookupQuery
// that scan reads; noRows is the driver's error for no row.
func lookupRow(path, version string, scan func(dest ...any) error, noRows error) (tlog.Record, error) {
	var id int64
	var text []byte
	err := scan(&id, &text)
	if errors.Is(err, noRows) {
		return tlog.Record{}, fmt.Errorf("lookup %s@%s: %w", path, version, tlog.ErrNotFound)
	}
	if err != nil {
		return tlog.Record{}, fmt.Errorf("lookup %s@%s: %w", path, version, err)
	}
	return lookupResult(path, version, id, text)
}

// lookupResult returns the record of path@version found by key as (id, text),
// checking that it is the record of exactly path@version.
func lookupResult(path, version string, id int64, text []byte) (tlog.Record, error) {
	p, v, err := parseText(text)
	if err != nil {
		return tlog.Record{}, fmt.Errorf("lookup %s@%s: record %d: %w", path, version, id, err)
	}
	if p != path || v != version {
		// Another path@version with the same key: not the one asked for.
		return tlog.Record{}, fmt.Errorf("lookup %s@%s: %w", path, version, tlog.ErrNotFound)
	}
	return tlog.Record{ID: id, Path: p, Version: v, Text: text}, nil
}

// recordRange returns the end of the ID range [start, start+n), or an error.
func recordRange(start int64, n int) (end int64, err error) {
	if start < 0 || n < 0 || int64(n) > (1<<63-1)-start {
		return 0, fmt.Errorf("read records: invalid range of %d from %d", n, start)
	}
	return start + int64(n), nil
}

// scanRecords reads the rows of readRecordsQuery for [start, end).
func scanRecords(rows rowScanner, start, end int64) ([]tlog.Record, error) {
	var list []tlog.Record
	for rows.Next() {
		var id int64
		var text []byte
		if err := rows.Scan(&id, &text); err != nil {
			return nil, fmt.Errorf("read records [%d, %d): %w", start, end, err)
		}
		var err error
		if list, err = appendRecord(list, start, id, text); err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read records [%d, %d): %w", start, end, err)
	}
	return list, nil
}

// appendRecord appends the record read as (id, text) to list, the records
// read so far from start, checking that it is the next one.
func appendRecord(list []tlog.Record, start, id int64, text []byte) ([]tlog.Record, error) {
	if want := start + int64(len(list)); id != want {
		return nil, fmt.Errorf("read records from %d: got record %d, want %d: the stored log has a gap", start, id, want)
	}
	path, version, err := parseText(text)
	if err != nil {
		return nil, fmt.Errorf("read record %d: %w", id, err)
	}
	return append(list, tlog.Record{ID: id, Path: path, Version: version, Text: text}), nil
}

// tileRow returns the content of hash tile (level, index) from the row of
// readTileQuery that scan reads; noRows is the driver's error for no row.
func tileRow(level int, index int64, scan func(dest ...any) error, noRows error) ([]byte, error) {
	var hashes []byte
	err := scan(&hashes)
	if errors.Is(err, noRows) {
		return nil, fmt.Errorf("read tile %d/%d: %w", level, index, tlog.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read tile %d/%d: %w", level, index, err)
	}
	return hashes, nil
}

// scanHeads reads the rows of readHeadsQuery for [lo, hi].
func scanHeads(rows rowScanner, lo, hi int64) ([]tlog.Head, error) {
	var list []tlog.Head
	for rows.Next() {
		var size int64
		var hash, note []byte
		if err := rows.Scan(&size, &hash, &note); err != nil {
			return nil, fmt.Errorf("read heads [%d, %d]: %w", lo, hi, err)
		}
		h, err := hashFrom(hash)
		if err != nil {
			return nil, fmt.Errorf("read head of size %d: %w", size, err)
		}
		list = append(list, tlog.Head{Size: size, Hash: h, Note: note})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read heads [%d, %d]: %w", lo, hi, err)
	}
	return list, nil
}
