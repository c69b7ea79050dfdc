package store

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/sumdb/sumdb/tlog"
)

// Bounds of the index methods.
const (
	// MaxIndexBatch is the most records IndexRecords takes at once.
	MaxIndexBatch = 1000
	// MaxSearchResults caps the entries SearchRecords and RecentRecords
	// return at once; page with afterID and beforeID for more.
	MaxSearchResults = 1000
	// MaxPrefixMatches is the most records a prefix search (SearchRecords
	// and NewestRecords, not exact) reads: a prefix that matches more is
	// refused with an error wrapping tlog.ErrTooBroad, so that every
	// search reads at most about this many entries of the index on
	// (path, id), however many records the log holds.
	MaxPrefixMatches = 10000
	// maxSearchPrefix bounds the path or prefix of a search, far above
	// any module path.
	maxSearchPrefix = 4096
)

// The queries of the index methods (migration 0006_record_index.sql), the
// same text for both stores. A record's time is that of the first head
// that contains it, the smallest size above its id.
const (
	indexedUpToQuery    = `SELECT coalesce(max(id) + 1, 0) FROM record_index`
	readIndexRangeQuery = `SELECT id, path, version FROM record_index WHERE id >= $1 AND id <= $2 ORDER BY id`
	postgresIndexQuery  = `INSERT INTO record_index (id, path, version) SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]) ON CONFLICT (id) DO NOTHING`
	sqliteIndexOneQuery = `INSERT INTO record_index (id, path, version) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`
	insertHeadTimeQuery = `INSERT INTO head_times (size, committed_at) VALUES ($1, $2) ON CONFLICT (size) DO NOTHING`
	indexEntryColumns   = `SELECT r.id, r.path, r.version, (SELECT h.committed_at FROM head_times h WHERE h.size > r.id ORDER BY h.size LIMIT 1) FROM `
	searchExactQuery    = indexEntryColumns + `record_index r WHERE r.path = $1 AND r.id > $2 ORDER BY r.id LIMIT $3`
	newestExactQuery    = indexEntryColumns + `record_index r WHERE r.path = $1 ORDER BY r.id DESC LIMIT $2`
	recentRecordsQuery  = indexEntryColumns + `record_index r WHERE r.id < $1 ORDER BY r.id DESC LIMIT $2`
)

// The queries of a prefix search. A range on path ordered by id would read
// (or sort) every record under the prefix, or scan the ids up to the first
// match: instead, a prefix's records are read through the index on (path,
// id), at most MaxPrefixMatches of them, and only those are ordered by id.
// The count, run first, refuses a prefix with more. The prefix is $1 and
// the end of its range, if any, $2.
var (
	searchPrefixQuery    = prefixQuery(`path >= $1 AND path < $2`, `WHERE id > $3 ORDER BY id LIMIT $4`, `r.id`)
	searchUnboundedQuery = prefixQuery(`path >= $1`, `WHERE id > $2 ORDER BY id LIMIT $3`, `r.id`)
	newestPrefixQuery    = prefixQuery(`path >= $1 AND path < $2`, `ORDER BY id DESC LIMIT $3`, `r.id DESC`)
	newestUnboundedQuery = prefixQuery(`path >= $1`, `ORDER BY id DESC LIMIT $2`, `r.id DESC`)
	countPrefixQuery     = countQuery(`path >= $1 AND path < $2`)
	countUnboundedQuery  = countQuery(`path >= $1`)
)

// prefixMatches returns the query of the records whose path is in the
// range where, read through the index on (path, id), at most
// MaxPrefixMatches of them.
func prefixMatches(where string, limit int) string {
	return fmt.Sprintf(`SELECT id FROM record_index WHERE %s ORDER BY path, id LIMIT %d`, where, limit)
}

// prefixQuery returns an indexEntryColumns query of the matches of where
// (prefixMatches), selected and ordered by page, the page then ordered by
// order; the time of a record is read only for the page.
func prefixQuery(where, page, order string) string {
	return fmt.Sprintf(`%s(SELECT id FROM (%s) m %s) p JOIN record_index r ON r.id = p.id ORDER BY %s`, indexEntryColumns, prefixMatches(where, MaxPrefixMatches), page, order)
}

// countQuery returns the query of the number of records whose path is in
// the range where, up to MaxPrefixMatches+1.
func countQuery(where string) string {
	return fmt.Sprintf(`SELECT count(*) FROM (%s) m`, prefixMatches(where, MaxPrefixMatches+1))
}

var sqliteIndexManyQuery = multiInsert("INSERT INTO record_index (id, path, version) VALUES ", sqliteRowsPerInsert, 3, " ON CONFLICT (id) DO NOTHING")

// checkIndexBatch returns an error unless recs are at most MaxIndexBatch
// records with consecutive ids, each with a path and a version as a record
// text has them: non-empty UTF-8 without spaces or NUL.
func checkIndexBatch(recs []tlog.Record) error {
	if len(recs) > MaxIndexBatch {
		return fmt.Errorf("index records: %d records, want at most %d at once", len(recs), MaxIndexBatch)
	}
	for i, r := range recs {
		if r.ID < 0 || (i > 0 && r.ID != recs[0].ID+int64(i)) {
			return fmt.Errorf("index records: record %d has id %d, want consecutive ids from %d", i, r.ID, recs[0].ID)
		}
		for _, s := range []string{r.Path, r.Version} {
			if s == "" || !utf8.ValidString(s) || strings.ContainsAny(s, " \x00\n") {
				return fmt.Errorf("index records: record %d is %q@%q: want a path and a version of UTF-8 without spaces or NUL", r.ID, r.Path, r.Version)
			}
		}
	}
	return nil
}

// checkIndexed returns nil if all of recs were inserted, or else if the
// stored rows that read returns are those of recs; an error wrapping
// tlog.ErrConflict if they differ.
func checkIndexed(recs []tlog.Record, inserted int64, read func() ([]tlog.Record, error)) error {
	if inserted == int64(len(recs)) {
		return nil
	}
	stored, err := read()
	if err != nil {
		return fmt.Errorf("index records [%d, %d]: read the stored ones: %w", recs[0].ID, recs[len(recs)-1].ID, err)
	}
	byID := make(map[int64]tlog.Record, len(stored))
	for _, s := range stored {
		byID[s.ID] = s
	}
	for _, r := range recs {
		s, ok := byID[r.ID]
		if !ok {
			return fmt.Errorf("index records: record %d was neither inserted nor found", r.ID)
		}
		if s.Path != r.Path || s.Version != r.Version {
			return fmt.Errorf("index records: record %d is indexed as %s@%s, not %s: %w", r.ID, s.Path, s.Version, r.Key(), tlog.ErrConflict)
		}
	}
	return nil
}

// gapError returns an error if indexing records from first would leave a
// gap after the indexed records [0, upTo).
func gapError(first, upTo int64) error {
	if first > upTo {
		return fmt.Errorf("index records from %d: only records up to %d are indexed, and the index must not have a gap: %w", first, upTo, tlog.ErrConflict)
	}
	return nil
}

// scanIndexRange reads the rows of readIndexRangeQuery.
func scanIndexRange(rows rowScanner) ([]tlog.Record, error) {
	var list []tlog.Record
	for rows.Next() {
		var r tlog.Record
		if err := rows.Scan(&r.ID, &r.Path, &r.Version); err != nil {
			return nil, err
		}
		list = append(list, r)
	}
	return list, rows.Err()
}

// headTimeNanos returns t as stored in head_times: Unix nanoseconds, 0 for
// the zero Time (unknown).
func headTimeNanos(size int64, t time.Time) (int64, error) {
	if size <= 0 {
		return 0, fmt.Errorf("put head time: tree size %d, want at least 1", size)
	}
	if t.IsZero() {
		return 0, nil
	}
	if t.Year() < 1970 || t.Year() > 2261 || t.UnixNano() <= 0 {
		return 0, fmt.Errorf("put head time of tree size %d: time %v, want one between 1970 and 2261 (Unix nanoseconds) or the zero Time", size, t)
	}
	return t.UnixNano(), nil
}

// A search is the query and arguments of SearchRecords or NewestRecords,
// and for a prefix the query that counts its matches (count, with the
// first nargs arguments).
type search struct {
	query string
	args  []any
	count string
	nargs int // the arguments of count: args[:nargs]
}

// checkSearch returns an error for an invalid prefix or limit of what.
func checkSearch(what, prefix string, limit int) error {
	if prefix == "" || len(prefix) > maxSearchPrefix || !utf8.ValidString(prefix) || strings.ContainsRune(prefix, 0) {
		return fmt.Errorf("%s: path %q: want 1 to %d bytes of UTF-8 without NUL", what, prefix, maxSearchPrefix)
	}
	if limit <= 0 {
		return fmt.Errorf("%s for %q: limit %d, want at least 1", what, prefix, limit)
	}
	return nil
}

// searchQuery returns the query of SearchRecords, or an error for invalid
// arguments.
func searchQuery(prefix string, exact bool, afterID int64, limit int) (search, error) {
	if err := checkSearch("search records", prefix, limit); err != nil {
		return search{}, err
	}
	limit = min(limit, MaxSearchResults)
	afterID = max(afterID, -1)
	if exact {
		return search{query: searchExactQuery, args: []any{prefix, afterID, limit}}, nil
	}
	if end, ok := prefixEnd(prefix); ok {
		return search{searchPrefixQuery, []any{prefix, end, afterID, limit}, countPrefixQuery, 2}, nil
	}
	return search{searchUnboundedQuery, []any{prefix, afterID, limit}, countUnboundedQuery, 1}, nil
}

// newestQuery returns the query of NewestRecords, or an error for invalid
// arguments.
func newestQuery(prefix string, exact bool, limit int) (search, error) {
	if err := checkSearch("newest records", prefix, limit); err != nil {
		return search{}, err
	}
	limit = min(limit, MaxSearchResults)
	if exact {
		return search{query: newestExactQuery, args: []any{prefix, limit}}, nil
	}
	if end, ok := prefixEnd(prefix); ok {
		return search{newestPrefixQuery, []any{prefix, end, limit}, countPrefixQuery, 2}, nil
	}
	return search{newestUnboundedQuery, []any{prefix, limit}, countUnboundedQuery, 1}, nil
}

// tooBroad returns an error wrapping tlog.ErrTooBroad if n, the count of
// a prefix's matches, is above MaxPrefixMatches.
func tooBroad(prefix string, n int64) error {
	if n > MaxPrefixMatches {
		return fmt.Errorf("search records for %q: more than %d records under this prefix, give a longer one: %w", prefix, MaxPrefixMatches, tlog.ErrTooBroad)
	}
	return nil
}

// prefixEnd returns the least string greater than every string that
// begins with prefix, in byte (UTF-8: code point) order, itself valid
// UTF-8: prefix with its last character incremented, dropping last
// characters that cannot be. It returns false if there is none (prefix is
// all utf8.MaxRune).
func prefixEnd(prefix string) (string, bool) {
	for prefix != "" {
		r, n := utf8.DecodeLastRuneInString(prefix)
		prefix = prefix[:len(prefix)-n]
		if r == utf8.MaxRune {
			continue
		}
		r++
		if r >= 0xD800 && r <= 0xDFFF { // surrogates are not characters
			r = 0xE000
		}
		return prefix + string(r), true
	}
	return "", false
}

// recentArgs returns the arguments of recentRecordsQuery, or an error.
func recentArgs(beforeID int64, limit int) ([]any, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("recent records: limit %d, want at least 1", limit)
	}
	if beforeID <= 0 {
		beforeID = math.MaxInt64
	}
	return []any{beforeID, min(limit, MaxSearchResults)}, nil
}

// indexEntries returns the entries of an indexEntryColumns query, whose
// rows query returns with the function that closes them; what names the
// query in errors.
func indexEntries(what string, query func() (rowScanner, func(), error)) ([]tlog.IndexEntry, error) {
	rows, closeRows, err := query()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer closeRows()
	list, err := scanIndexEntries(rows)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return list, nil
}

// scanIndexEntries reads the rows of an indexEntryColumns query.
func scanIndexEntries(rows rowScanner) ([]tlog.IndexEntry, error) {
	var list []tlog.IndexEntry
	for rows.Next() {
		var e tlog.IndexEntry
		var ns *int64
		if err := rows.Scan(&e.ID, &e.Path, &e.Version, &ns); err != nil {
			return nil, err
		}
		if ns != nil && *ns > 0 {
			e.Time = time.Unix(0, *ns).UTC()
		}
		list = append(list, e)
	}
	return list, rows.Err()
}

// IndexedUpTo returns 1 + the highest record id in the index of records
// by path, 0 if it is empty. The index has no gap: every record below is
// indexed.
func (p *Postgres) IndexedUpTo(ctx context.Context) (_ int64, err error) {
	defer markUnavailable(&err, pgUnavailable)
	var n int64
	if err := p.pool.QueryRow(ctx, indexedUpToQuery).Scan(&n); err != nil {
		return 0, fmt.Errorf("read indexed records: %w", err)
	}
	return n, nil
}

// IndexRecords adds the paths and versions of recs, at most MaxIndexBatch
// records of consecutive ids, to the index of records by path, all or
// none. Records already indexed with the same path and version are left
// as they are; another path or version, or a first id above IndexedUpTo
// (a gap), is an error wrapping tlog.ErrConflict.
func (p *Postgres) IndexRecords(ctx context.Context, recs []tlog.Record) (err error) {
	defer markUnavailable(&err, pgUnavailable)
	if err := checkIndexBatch(recs); err != nil || len(recs) == 0 {
		return err
	}
	ids, paths, versions := make([]int64, len(recs)), make([]string, len(recs)), make([]string, len(recs))
	for i, r := range recs {
		ids[i], paths[i], versions[i] = r.ID, r.Path, r.Version
	}
	first, last := recs[0].ID, recs[len(recs)-1].ID
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var upTo int64
		if err := tx.QueryRow(ctx, indexedUpToQuery).Scan(&upTo); err != nil {
			return fmt.Errorf("index records [%d, %d]: %w", first, last, err)
		}
		if err := gapError(first, upTo); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, postgresIndexQuery, ids, paths, versions)
		if err != nil {
			return fmt.Errorf("index records [%d, %d]: %w", first, last, err)
		}
		return checkIndexed(recs, tag.RowsAffected(), func() ([]tlog.Record, error) {
			rows, err := tx.Query(ctx, readIndexRangeQuery, first, last)
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			return scanIndexRange(rows)
		})
	})
}

// PutHeadTime records t as the time the head of tree size was first seen,
// unless a time is recorded already: the first wins, so that replicas
// sharing the store may each record the heads they see. The zero Time
// records that the time is unknown.
func (p *Postgres) PutHeadTime(ctx context.Context, size int64, t time.Time) (err error) {
	defer markUnavailable(&err, pgUnavailable)
	ns, err := headTimeNanos(size, t)
	if err != nil {
		return err
	}
	if _, err := p.pool.Exec(ctx, insertHeadTimeQuery, size, ns); err != nil {
		return fmt.Errorf("put head time of tree size %d: %w", size, err)
	}
	return nil
}

// SearchRecords returns the indexed records whose module path is prefix
// (exact) or begins with it, with ids above afterID, in increasing id, at
// most limit of them (capped at MaxSearchResults). A prefix that matches
// more than MaxPrefixMatches records is an error wrapping tlog.ErrTooBroad.
func (p *Postgres) SearchRecords(ctx context.Context, prefix string, exact bool, afterID int64, limit int) (_ []tlog.IndexEntry, err error) {
	defer markUnavailable(&err, pgUnavailable)
	q, err := searchQuery(prefix, exact, afterID, limit)
	if err != nil {
		return nil, err
	}
	return p.search(ctx, fmt.Sprintf("search records for %q", prefix), prefix, q)
}

// NewestRecords returns the newest indexed records whose module path is
// prefix (exact) or begins with it, in decreasing id, at most limit of them
// (capped at MaxSearchResults). A prefix that matches more than
// MaxPrefixMatches records is an error wrapping tlog.ErrTooBroad.
func (p *Postgres) NewestRecords(ctx context.Context, prefix string, exact bool, limit int) (_ []tlog.IndexEntry, err error) {
	defer markUnavailable(&err, pgUnavailable)
	q, err := newestQuery(prefix, exact, limit)
	if err != nil {
		return nil, err
	}
	return p.search(ctx, fmt.Sprintf("newest records for %q", prefix), prefix, q)
}

// search runs q, refusing a prefix with too many matches first.
func (p *Postgres) search(ctx context.Context, what, prefix string, q search) ([]tlog.IndexEntry, error) {
	if q.count == "" {
		return p.indexEntries(ctx, what, q.query, q.args)
	}
	// The count and the read see one snapshot: a record indexed between
	// them would otherwise take one of the MaxPrefixMatches places the
	// count allowed, and push another match out without an error.
	tx, err := p.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer tx.Rollback(ctx)
	var n int64
	if err := tx.QueryRow(ctx, q.count, q.args[:q.nargs]...).Scan(&n); err != nil {
		return nil, fmt.Errorf("%s: count: %w", what, err)
	}
	if err := tooBroad(prefix, n); err != nil {
		return nil, err
	}
	entries, err := indexEntries(what, func() (rowScanner, func(), error) {
		rows, err := tx.Query(ctx, q.query, q.args...)
		if err != nil {
			return nil, nil, err
		}
		return rows, rows.Close, nil
	})
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return entries, nil
}

// RecentRecords returns the indexed records with ids below beforeID (all
// if beforeID <= 0), newest first, at most limit of them (capped at
// MaxSearchResults).
func (p *Postgres) RecentRecords(ctx context.Context, beforeID int64, limit int) (_ []tlog.IndexEntry, err error) {
	defer markUnavailable(&err, pgUnavailable)
	args, err := recentArgs(beforeID, limit)
	if err != nil {
		return nil, err
	}
	return p.indexEntries(ctx, "recent records", recentRecordsQuery, args)
}

// indexEntries runs query, an indexEntryColumns query, with args.
func (p *Postgres) indexEntries(ctx context.Context, what, query string, args []any) ([]tlog.IndexEntry, error) {
	return indexEntries(what, func() (rowScanner, func(), error) {
		rows, err := p.pool.Query(ctx, query, args...)
		if err != nil {
			return nil, nil, err
		}
		return rows, rows.Close, nil
	})
}

// IndexedUpTo returns 1 + the highest record id in the index of records
// by path, 0 if it is empty. The index has no gap: every record below is
// indexed.
func (s *SQLite) IndexedUpTo(ctx context.Context) (_ int64, err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	var n int64
	if err := s.db.QueryRowContext(ctx, indexedUpToQuery).Scan(&n); err != nil {
		return 0, fmt.Errorf("read indexed records: %w", err)
	}
	return n, nil
}

// IndexRecords adds the paths and versions of recs, at most MaxIndexBatch
// records of consecutive ids, to the index of records by path, all or
// none. Records already indexed with the same path and version are left
// as they are; another path or version, or a first id above IndexedUpTo
// (a gap), is an error wrapping tlog.ErrConflict. It queues with the
// appends of the process for the database's write lock.
func (s *SQLite) IndexRecords(ctx context.Context, recs []tlog.Record) (err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	if err := checkIndexBatch(recs); err != nil || len(recs) == 0 {
		return err
	}
	first, last := recs[0].ID, recs[len(recs)-1].ID
	select {
	case s.writer <- struct{}{}:
		defer func() { <-s.writer }()
	case <-ctx.Done():
		return fmt.Errorf("index records [%d, %d]: wait for the writer: %w", first, last, ctx.Err())
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("index records [%d, %d]: begin: %w", first, last, err)
	}
	defer tx.Rollback()
	var upTo int64
	if err := tx.QueryRowContext(ctx, indexedUpToQuery).Scan(&upTo); err != nil {
		return fmt.Errorf("index records [%d, %d]: %w", first, last, err)
	}
	if err := gapError(first, upTo); err != nil {
		return err
	}
	var inserted int64
	err = execRows(ctx, tx, sqliteIndexOneQuery, sqliteIndexManyQuery, len(recs), func(i int, args []any) []any {
		return append(args, recs[i].ID, recs[i].Path, recs[i].Version)
	}, func(_, got int64) { inserted += got })
	if err != nil {
		return fmt.Errorf("index records [%d, %d]: %w", first, last, err)
	}
	err = checkIndexed(recs, inserted, func() ([]tlog.Record, error) {
		rows, err := tx.QueryContext(ctx, readIndexRangeQuery, first, last)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		return scanIndexRange(rows)
	})
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("index records [%d, %d]: commit: %w", first, last, err)
	}
	return nil
}

// PutHeadTime records t as the time the head of tree size was first seen,
// unless a time is recorded already: the first wins, so that replicas
// sharing the store may each record the heads they see. The zero Time
// records that the time is unknown. It queues with the appends of the
// process for the database's write lock.
func (s *SQLite) PutHeadTime(ctx context.Context, size int64, t time.Time) (err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	ns, err := headTimeNanos(size, t)
	if err != nil {
		return err
	}
	select {
	case s.writer <- struct{}{}:
		defer func() { <-s.writer }()
	case <-ctx.Done():
		return fmt.Errorf("put head time of tree size %d: wait for the writer: %w", size, ctx.Err())
	}
	if _, err := s.db.ExecContext(ctx, insertHeadTimeQuery, size, ns); err != nil {
		return fmt.Errorf("put head time of tree size %d: %w", size, err)
	}
	return nil
}

// SearchRecords returns the indexed records whose module path is prefix
// (exact) or begins with it, with ids above afterID, in increasing id, at
// most limit of them (capped at MaxSearchResults). A prefix that matches
// more than MaxPrefixMatches records is an error wrapping tlog.ErrTooBroad.
func (s *SQLite) SearchRecords(ctx context.Context, prefix string, exact bool, afterID int64, limit int) (_ []tlog.IndexEntry, err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	q, err := searchQuery(prefix, exact, afterID, limit)
	if err != nil {
		return nil, err
	}
	return s.search(ctx, fmt.Sprintf("search records for %q", prefix), prefix, q)
}

// NewestRecords returns the newest indexed records whose module path is
// prefix (exact) or begins with it, in decreasing id, at most limit of them
// (capped at MaxSearchResults). A prefix that matches more than
// MaxPrefixMatches records is an error wrapping tlog.ErrTooBroad.
func (s *SQLite) NewestRecords(ctx context.Context, prefix string, exact bool, limit int) (_ []tlog.IndexEntry, err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	q, err := newestQuery(prefix, exact, limit)
	if err != nil {
		return nil, err
	}
	return s.search(ctx, fmt.Sprintf("newest records for %q", prefix), prefix, q)
}

// search runs q, refusing a prefix with too many matches first.
func (s *SQLite) search(ctx context.Context, what, prefix string, q search) ([]tlog.IndexEntry, error) {
	if q.count == "" {
		return s.indexEntries(ctx, what, q.query, q.args)
	}
	// The count and the read see one snapshot (a deferred transaction of
	// reads only: WAL readers see the database as of their first read), as
	// for PostgreSQL.
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer tx.Rollback()
	var n int64
	if err := tx.QueryRowContext(ctx, q.count, q.args[:q.nargs]...).Scan(&n); err != nil {
		return nil, fmt.Errorf("%s: count: %w", what, err)
	}
	if err := tooBroad(prefix, n); err != nil {
		return nil, err
	}
	entries, err := indexEntries(what, func() (rowScanner, func(), error) {
		rows, err := tx.QueryContext(ctx, q.query, q.args...)
		if err != nil {
			return nil, nil, err
		}
		return rows, func() { rows.Close() }, nil
	})
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return entries, nil
}

// RecentRecords returns the indexed records with ids below beforeID (all
// if beforeID <= 0), newest first, at most limit of them (capped at
// MaxSearchResults).
func (s *SQLite) RecentRecords(ctx context.Context, beforeID int64, limit int) (_ []tlog.IndexEntry, err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	args, err := recentArgs(beforeID, limit)
	if err != nil {
		return nil, err
	}
	return s.indexEntries(ctx, "recent records", recentRecordsQuery, args)
}

// indexEntries runs query, an indexEntryColumns query, with args.
func (s *SQLite) indexEntries(ctx context.Context, what, query string, args []any) ([]tlog.IndexEntry, error) {
	return indexEntries(what, func() (rowScanner, func(), error) {
		rows, err := s.db.QueryContext(ctx, query, args...)
		if err != nil {
			return nil, nil, err
		}
		return rows, func() { rows.Close() }, nil
	})
}
