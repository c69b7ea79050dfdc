package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sumdb/sumdb/tlog"
)

// Bounds of the mirror tables (migration 0004_mirror.sql). A data tile holds
// at most tlog.TileWidth records, each a few hundred bytes in practice; the
// bound of 1 MiB leaves room for long module paths.
const (
	maxMirrorDB         = 200
	maxMirrorLevel      = 7
	maxMirrorDataTile   = 1 << 20
	maxMirrorRecordText = 64 << 10
	// maxMirrorDatabases bounds the names MirrorDatabases returns: a
	// server mirrors the few databases it is configured with.
	maxMirrorDatabases = 10000
)

// The queries of the mirror methods shared by both stores. The upserts,
// which differ in their byte functions, are beside the methods.
const (
	readMirrorTileQuery     = `SELECT data FROM mirror_tiles WHERE db = $1 AND level = $2 AND idx = $3`
	readMirrorRecordQuery   = `SELECT id, text FROM mirror_records WHERE db = $1 AND key = $2`
	scanMirrorTilesQuery    = `SELECT level, idx, data FROM mirror_tiles WHERE db = $1 ORDER BY level, idx`
	scanMirrorRecordsQuery  = `SELECT id, text FROM mirror_records WHERE db = $1 ORDER BY key`
	insertMirrorRecordQuery = `INSERT INTO mirror_records (db, key, id, text) VALUES ($1, $2, $3, $4)
		ON CONFLICT (db, key) DO NOTHING`

	// mirrorDatabasesQuery finds the distinct names of each table with one
	// index probe per name (a loose index scan) rather than a read of
	// every row: a cache may hold millions of records of a few databases.
	mirrorDatabasesQuery = `WITH RECURSIVE
		t(db) AS (SELECT min(db) FROM mirror_tiles
		          UNION ALL SELECT (SELECT min(db) FROM mirror_tiles WHERE db > t.db) FROM t WHERE t.db IS NOT NULL),
		r(db) AS (SELECT min(db) FROM mirror_records
		          UNION ALL SELECT (SELECT min(db) FROM mirror_records WHERE db > r.db) FROM r WHERE r.db IS NOT NULL)
		SELECT db FROM t WHERE db IS NOT NULL
		UNION SELECT db FROM r WHERE db IS NOT NULL
		LIMIT $1`
)

// checkMirrorDB returns an error unless db can be the name of a mirrored
// database: the name of a note key, 1 to 200 bytes of UTF-8 without spaces,
// control characters or '+'.
func checkMirrorDB(db string) error {
	if db == "" || len(db) > maxMirrorDB || !utf8.ValidString(db) ||
		strings.ContainsFunc(db, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '+' }) {
		return fmt.Errorf("mirrored database name %q: want 1 to %d bytes of UTF-8 without spaces or '+' (the name of its key)", db, maxMirrorDB)
	}
	return nil
}

// checkMirrorTile returns an error unless (db, level, index, data) can be a
// tile of the mirror tables; data is nil for a read.
func checkMirrorTile(db string, level int, index int64, data []byte) error {
	if err := checkMirrorDB(db); err != nil {
		return err
	}
	if level < -1 || level > maxMirrorLevel {
		return fmt.Errorf("mirrored tile %s %d/%d: level %d, want -1 (data) to %d", db, level, index, level, maxMirrorLevel)
	}
	if index < 0 {
		return fmt.Errorf("mirrored tile %s %d/%d: negative index", db, level, index)
	}
	if data == nil {
		return nil
	}
	n := len(data)
	if level >= 0 {
		if n == 0 || n%32 != 0 || n > tlog.TileWidth*32 {
			return fmt.Errorf("mirrored tile %s %d/%d: %d bytes, want 1 to %d hashes of 32 bytes", db, level, index, n, tlog.TileWidth)
		}
		return nil
	}
	// A data tile is records, each followed by a blank line; a record
	// text cannot hold a blank line, so each "\n\n" ends one record.
	if n == 0 || n > maxMirrorDataTile {
		return fmt.Errorf("mirrored data tile %s %d: %d bytes, want 1 to %d", db, index, n, maxMirrorDataTile)
	}
	if !bytes.HasSuffix(data, []byte("\n\n")) {
		return fmt.Errorf("mirrored data tile %s %d: it does not end with a blank line, as every record of a data tile does", db, index)
	}
	if c := bytes.Count(data, []byte("\n\n")); c > tlog.TileWidth {
		return fmt.Errorf("mirrored data tile %s %d: %d records, want at most %d", db, index, c, tlog.TileWidth)
	}
	return nil
}

// checkMirrorRecord returns an error unless the record of path@version with
// id and text (nil for a read) can be stored in the mirror tables.
func checkMirrorRecord(db, path, version string, id int64, text []byte) error {
	if err := checkMirrorDB(db); err != nil {
		return err
	}
	if path == "" || version == "" {
		return fmt.Errorf("mirrored record %s %s@%s: empty path or version", db, path, version)
	}
	if text == nil {
		return nil
	}
	if id < 0 {
		return fmt.Errorf("mirrored record %s %s@%s: negative id %d", db, path, version, id)
	}
	if len(text) == 0 || len(text) > maxMirrorRecordText {
		return fmt.Errorf("mirrored record %s %s@%s: text of %d bytes, want 1 to %d", db, path, version, len(text), maxMirrorRecordText)
	}
	p, v, err := parseText(text)
	if err != nil {
		return fmt.Errorf("mirrored record %s %s@%s: %w", db, path, version, err)
	}
	if p != path || v != version {
		return fmt.Errorf("mirrored record %s %s@%s: its text is of %s@%s", db, path, version, p, v)
	}
	return nil
}

// mirrorTileRow returns the data of a mirrored tile from the row of
// readMirrorTileQuery that scan reads; noRows is the driver's error for no
// row.
func mirrorTileRow(db string, level int, index int64, scan func(dest ...any) error, noRows error) ([]byte, error) {
	var data []byte
	err := scan(&data)
	if errors.Is(err, noRows) {
		return nil, fmt.Errorf("read mirrored tile %s %d/%d: %w", db, level, index, tlog.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read mirrored tile %s %d/%d: %w", db, level, index, err)
	}
	return data, nil
}

// putMirrorTile stores data as tile (level, index) of db with upsert, which
// runs the dialect's upsert and returns the rows it changed, and read, which
// returns the stored data. A stored tile is replaced only by a longer one
// that begins with it; data that the stored tile begins with is a no-op;
// anything else is an error wrapping tlog.ErrConflict.
func putMirrorTile(db string, level int, index int64, data []byte, upsert func() (int64, error), read func() ([]byte, error)) error {
	if data == nil {
		data = []byte{}
	}
	if err := checkMirrorTile(db, level, index, data); err != nil {
		return fmt.Errorf("put %w", err)
	}
	n, err := upsert()
	if err != nil {
		return fmt.Errorf("put mirrored tile %s %d/%d: %w", db, level, index, err)
	}
	if n > 0 {
		return nil
	}
	// The stored tile is at least as long as data, and only grows: data
	// is either a prefix of it or a fork.
	stored, err := read()
	if err != nil {
		return fmt.Errorf("put mirrored tile %s %d/%d: %w", db, level, index, err)
	}
	if bytes.HasPrefix(stored, data) {
		return nil
	}
	return fmt.Errorf("put mirrored tile %s %d/%d: %d bytes that differ from the %d stored: the database served two different tiles: %w",
		db, level, index, len(data), len(stored), tlog.ErrConflict)
}

// mirrorRecordRow returns the record of path@version of db from the row of
// readMirrorRecordQuery that scan reads; noRows is the driver's error for
// no row.
func mirrorRecordRow(db, path, version string, scan func(dest ...any) error, noRows error) (int64, []byte, error) {
	var id int64
	var text []byte
	err := scan(&id, &text)
	if errors.Is(err, noRows) {
		return 0, nil, fmt.Errorf("read mirrored record %s %s@%s: %w", db, path, version, tlog.ErrNotFound)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("read mirrored record %s %s@%s: %w", db, path, version, err)
	}
	p, v, err := parseText(text)
	if err != nil {
		return 0, nil, fmt.Errorf("read mirrored record %s %s@%s: record %d: %w", db, path, version, id, err)
	}
	if p != path || v != version {
		// Another path@version with the same key.
		return 0, nil, fmt.Errorf("read mirrored record %s %s@%s: %w", db, path, version, tlog.ErrNotFound)
	}
	return id, text, nil
}

// putMirrorRecord stores the record of path@version of db with insert,
// which runs insertMirrorRecordQuery and returns the rows it inserted, and
// read, which returns the stored id and text by key. Storing the same record again is a
// no-op; another id or text is an error wrapping tlog.ErrConflict.
func putMirrorRecord(db, path, version string, id int64, text []byte, insert func() (int64, error), read func() (int64, []byte, error)) error {
	if text == nil {
		text = []byte{}
	}
	if err := checkMirrorRecord(db, path, version, id, text); err != nil {
		return fmt.Errorf("put %w", err)
	}
	n, err := insert()
	if err != nil {
		return fmt.Errorf("put mirrored record %s %s@%s: %w", db, path, version, err)
	}
	if n > 0 {
		return nil
	}
	sid, stext, err := read()
	if err != nil {
		return fmt.Errorf("put mirrored record %s %s@%s: read the stored record: %w", db, path, version, err)
	}
	if sid == id && bytes.Equal(stext, text) {
		return nil
	}
	if p, v, err := parseText(stext); err != nil || p != path || v != version {
		return fmt.Errorf("put mirrored record %s %s@%s: %w", db, path, version, errKeyCollision)
	}
	return fmt.Errorf("put mirrored record %s %s@%s: id %d and %d bytes of text differ from the stored id %d and %d bytes: the database served two different records: %w",
		db, path, version, id, len(text), sid, len(stext), tlog.ErrConflict)
}

// scanMirrorDatabases reads the rows of mirrorDatabasesQuery, sorted by
// byte order (a database's collation may order text otherwise).
func scanMirrorDatabases(rows rowScanner) ([]string, error) {
	var names []string
	for rows.Next() {
		var db string
		if err := rows.Scan(&db); err != nil {
			return nil, fmt.Errorf("list mirrored databases: %w", err)
		}
		names = append(names, db)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list mirrored databases: %w", err)
	}
	if len(names) > maxMirrorDatabases {
		return nil, fmt.Errorf("list mirrored databases: more than %d names", maxMirrorDatabases)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// scanMirrorTiles calls f with each row of scanMirrorTilesQuery.
func scanMirrorTiles(db string, rows rowScanner, f func(level int, index int64, data []byte) error) error {
	for rows.Next() {
		var level int
		var index int64
		var data []byte
		if err := rows.Scan(&level, &index, &data); err != nil {
			return fmt.Errorf("scan mirrored tiles of %s: %w", db, err)
		}
		if err := f(level, index, data); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("scan mirrored tiles of %s: %w", db, err)
	}
	return nil
}

// scanMirrorRecords calls f with each row of scanMirrorRecordsQuery.
func scanMirrorRecords(db string, rows rowScanner, f func(id int64, text []byte) error) error {
	for rows.Next() {
		var id int64
		var text []byte
		if err := rows.Scan(&id, &text); err != nil {
			return fmt.Errorf("scan mirrored records of %s: %w", db, err)
		}
		if err := f(id, text); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("scan mirrored records of %s: %w", db, err)
	}
	return nil
}
