package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/sumdb/sumdb/migrations"
	"github.com/sumdb/sumdb/tlog"
)

// A SQLite is a tlog.Store in one SQLite database file, for a sumdb that runs
// as a single process. (Several processes may share the file: each Append is
// a BEGIN IMMEDIATE transaction, which holds the file's write lock from its
// start. But they must share one machine, and Postgres serves that better.)
type SQLite struct {
	db *sql.DB
	// writer holds a token while an Append runs, so that appends of one
	// process queue here, ending early with their context, rather than
	// polling SQLite's lock under busy_timeout.
	writer chan struct{}
	// The read statements of the request path, prepared once: SQLite's
	// parser would otherwise take a fifth of the time of a lookup.
	lookupStmt, readTileStmt *sql.Stmt
}

var _ tlog.Store = (*SQLite)(nil)

// sqliteOptions configure every connection: WAL, so that reads run during an
// append; synchronous=FULL, so that a committed append survives a power
// loss, not just a crash of the process; BEGIN IMMEDIATE for every
// transaction (_txlock), so that the write lock is taken before the head is
// read; and recursive_triggers, without which INSERT OR REPLACE would remove
// rows without firing the triggers that keep the log append-only; a page
// cache of 64 MiB per connection (cache_size, default 2 MiB), which keeps
// the pages of the random-key index that appends touch in memory well past
// a million records; and statement journals in memory (temp_store), which
// SQLite otherwise writes to a temporary file for each multi-row INSERT
// (a fifth of the time of an append, measured); and reads through a memory
// map of up to 8 GiB (mmap_size), without a read system call and a copy per
// page (lookups at 100,000 records: p99 from 1.8 to 0.2 ms). The lock wait
// (busy_timeout) is added by OpenSQLite.
const sqliteOptions = "_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=recursive_triggers(1)&_pragma=cache_size(-65536)&_pragma=temp_store(2)&_pragma=mmap_size(8589934592)&_txlock=immediate"

// sqliteBusyTimeout is how long a statement waits for another process's
// lock before it fails with SQLITE_BUSY (which the store reports as
// tlog.ErrUnavailable).
const sqliteBusyTimeout = 10 * time.Second

// OpenSQLite opens the SQLite database file at path, creating it if needed,
// and brings its schema up to date. The directory of path must exist.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	return openSQLiteBusy(ctx, path, sqliteBusyTimeout)
}

// openSQLiteBusy is OpenSQLite with a lock wait of busy instead of the default.
func openSQLiteBusy(ctx context.Context, path string, busy time.Duration) (*SQLite, error) {
	if path == "" || strings.Contains(path, "?") || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("open sqlite %q: want a file path without \"?\" and not starting with \"file:\"", path)
	}
	db, err := sql.Open("sqlite", fmt.Sprintf("%s?_pragma=busy_timeout(%d)&%s", path, busy.Milliseconds(), sqliteOptions))
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	// One writer at a time, and readers in parallel under WAL; a bound
	// keeps the page caches of idle connections from adding up.
	db.SetMaxOpenConns(max(4, runtime.NumCPU()))
	s := &SQLite{db: db, writer: make(chan struct{}, 1)}
	if err := s.checkBusy(ctx, busy); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return s, nil
}

// prepare prepares the read statements of the request path.
func (s *SQLite) prepare(ctx context.Context) error {
	var err error
	if s.lookupStmt, err = s.db.PrepareContext(ctx, lookupQuery); err != nil {
		return fmt.Errorf("prepare lookup: %w", err)
	}
	if s.readTileStmt, err = s.db.PrepareContext(ctx, readTileQuery); err != nil {
		return fmt.Errorf("prepare tile read: %w", err)
	}
	return nil
}

// checkBusy runs check, again for up to busy while it fails with
// SQLITE_BUSY. Connecting sets WAL mode, which takes the file's exclusive
// lock, and when several processes open a new database at once SQLite may
// report the lock at once rather than wait for it (it does not call its
// busy handler where waiting could deadlock).
func (s *SQLite) checkBusy(ctx context.Context, busy time.Duration) error {
	deadline := time.Now().Add(busy)
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		err := s.check(ctx)
		var coded interface{ Code() int }
		if err == nil || !errors.As(err, &coded) || coded.Code()&0xff != sqliteBusy || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
	}
}

// check connects, which creates the file, and verifies that the pragmas
// took effect: a database that cannot be in WAL mode (on some network file
// systems) would not give readers their snapshots.
func (s *SQLite) check(ctx context.Context) error {
	var mode string
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal mode: %w (check that the directory exists and is writable)", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %q, want wal: put the database on a local file system", mode)
	}
	var sync int
	if err := s.db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return fmt.Errorf("read synchronous mode: %w", err)
	}
	if sync != 2 { // FULL
		return fmt.Errorf("synchronous mode is %d, want 2 (FULL)", sync)
	}
	var recursive int
	if err := s.db.QueryRowContext(ctx, "PRAGMA recursive_triggers").Scan(&recursive); err != nil {
		return fmt.Errorf("read recursive_triggers: %w", err)
	}
	if recursive != 1 {
		return fmt.Errorf("recursive_triggers is %d, want 1", recursive)
	}
	return nil
}

const (
	createSQLiteSchemaVersionQuery = `CREATE TABLE IF NOT EXISTS schema_version (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
	) STRICT`

	sqliteSchemaVersionQuery = `SELECT coalesce(max(version), 0) FROM schema_version`

	insertSQLiteSchemaVersionQuery = `INSERT INTO schema_version (version, name) VALUES ($1, $2)`
)

// migrate applies the migrations the database lacks, in one BEGIN IMMEDIATE
// transaction, which excludes other writers from its start.
func (s *SQLite) migrate(ctx context.Context) error {
	list, err := migrations.List(migrations.SQLite())
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, createSQLiteSchemaVersionQuery); err != nil {
		return fmt.Errorf("migrate: create schema_version: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, sqliteSchemaVersionQuery).Scan(&current); err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	err = applyPending(list, current, insertSQLiteSchemaVersionQuery, func(query string, args ...any) error {
		_, err := tx.ExecContext(ctx, query, args...)
		return err
	})
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *SQLite) Close() error {
	for _, st := range []*sql.Stmt{s.lookupStmt, s.readTileStmt} {
		if st != nil {
			st.Close()
		}
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close sqlite: %w", err)
	}
	return nil
}

const sqliteReadHeadQuery = `SELECT size, hash, note FROM head`

// ReadHead returns the current head, or a zero Head if none was stored.
func (s *SQLite) ReadHead(ctx context.Context) (_ tlog.Head, err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	var size int64
	var hash, note []byte
	if err := s.db.QueryRowContext(ctx, sqliteReadHeadQuery).Scan(&size, &hash, &note); err != nil {
		return tlog.Head{}, fmt.Errorf("read head: %w", err)
	}
	return headFrom(size, hash, note)
}

const (
	sqliteHeadQuery = `SELECT size, hash, note FROM head`

	// ON CONFLICT (key) DO NOTHING lets the loop find every duplicate; a
	// duplicate id is still an error.
	sqliteInsertRecordQuery = `INSERT INTO records (id, key, text) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO NOTHING`

	// sqliteUpsertTileQuery replaces a stored tile only by a longer one
	// that begins with it: tiles grow, and any other change would be a fork.
	sqliteUpsertTileQuery = `INSERT INTO tiles (level, idx, hashes) VALUES ($1, $2, $3)
		ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes
		WHERE substr(excluded.hashes, 1, length(tiles.hashes)) = tiles.hashes`

	sqliteUpdateHeadQuery = `UPDATE head SET size = $1, hash = $2, note = $3`

	sqliteInsertHeadQuery = `INSERT INTO heads (size, hash, note) VALUES ($1, $2, $3)`

	// sqliteInsertResignedHeadQuery keeps the first note of a size in the
	// history when an empty batch signs the same tree again.
	sqliteInsertResignedHeadQuery = sqliteInsertHeadQuery + ` ON CONFLICT (size) DO NOTHING`
)

// Append commits b, as documented by tlog.Store, in one BEGIN IMMEDIATE
// transaction with a prepared statement per table.
func (s *SQLite) Append(ctx context.Context, b *tlog.Batch) (err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	if err := checkBatch(b); err != nil {
		return err
	}
	return s.append(ctx, func(tlog.Head) (*tlog.Batch, error) { return b, nil })
}

// AppendLocked commits the batch that prepare computes from the current
// head, as documented by tlog.Store.
func (s *SQLite) AppendLocked(ctx context.Context, prepare func(tlog.Head) (*tlog.Batch, error)) (err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	return s.append(ctx, func(h tlog.Head) (*tlog.Batch, error) {
		b, err := prepare(h)
		if err != nil {
			return nil, err
		}
		if err := checkBatch(b); err != nil {
			return nil, err
		}
		return b, nil
	})
}

// append takes the write lock, gets the batch to commit from prepare, and
// commits it if its old size and root are the stored head's.
func (s *SQLite) append(ctx context.Context, prepare func(tlog.Head) (*tlog.Batch, error)) error {
	select {
	case s.writer <- struct{}{}:
		defer func() { <-s.writer }()
	case <-ctx.Done():
		return fmt.Errorf("append: wait for the writer: %w", ctx.Err())
	}

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append: begin: %w", err)
	}
	defer tx.Rollback()

	var size int64
	var hash, note []byte
	if err := tx.QueryRowContext(ctx, sqliteHeadQuery).Scan(&size, &hash, &note); err != nil {
		return fmt.Errorf("append: read head: %w", err)
	}
	head, err := headFrom(size, hash, note)
	if err != nil {
		return fmt.Errorf("append: %w", err)
	}
	b, err := prepare(head)
	if err != nil {
		return err
	}
	lo, hi := b.OldSize, b.Head.Size
	if err := fenced(b, size, hash); err != nil {
		return err
	}
	if err := checkResign(b, hash); err != nil {
		return err
	}

	if len(b.Records) > 0 {
		if err := s.insertRecords(ctx, tx, b); err != nil {
			return err
		}
	}
	if len(b.Tiles) > 0 {
		stmt, err := tx.PrepareContext(ctx, sqliteUpsertTileQuery)
		if err != nil {
			return fmt.Errorf("append [%d, %d): upsert tiles: %w", lo, hi, err)
		}
		defer stmt.Close()
		for _, t := range b.Tiles {
			res, err := stmt.ExecContext(ctx, t.Level, t.Index, t.Hashes)
			if err != nil {
				return fmt.Errorf("append [%d, %d): upsert tile %d/%d: %w", lo, hi, t.Level, t.Index, err)
			}
			if n, err := res.RowsAffected(); err != nil || n != 1 {
				return fmt.Errorf("append [%d, %d): upsert tile %d/%d: new content does not extend the stored tile: refusing to fork the log", lo, hi, t.Level, t.Index)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, sqliteUpdateHeadQuery, b.Head.Size, b.Head.Hash[:], b.Head.Note); err != nil {
		return fmt.Errorf("append [%d, %d): update head: %w", lo, hi, err)
	}
	if err := s.insertHistory(ctx, tx, b); err != nil {
		return err
	}
	insertHead := sqliteInsertHeadQuery
	if len(b.Records) == 0 {
		insertHead = sqliteInsertResignedHeadQuery
	}
	if _, err := tx.ExecContext(ctx, insertHead, b.Head.Size, b.Head.Hash[:], b.Head.Note); err != nil {
		return fmt.Errorf("append [%d, %d): insert head into history: %w", lo, hi, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append [%d, %d): commit: %w", lo, hi, err)
	}
	return nil
}

// sqliteRowsPerInsert is the number of rows of one multi-row INSERT: each
// statement costs a call into SQLite and back, which a bulk import would
// otherwise pay for every record.
const sqliteRowsPerInsert = 128

// multiInsert returns "head (?, ?, ?), (?, ?, ?), ... tail" with n rows of
// cols placeholders.
func multiInsert(head string, n, cols int, tail string) string {
	var b strings.Builder
	b.WriteString(head)
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	b.WriteString(tail)
	return b.String()
}

var (
	sqliteInsertRecordsQuery = multiInsert("INSERT INTO records (id, key, text) VALUES ", sqliteRowsPerInsert, 3, " ON CONFLICT (key) DO NOTHING")
	// In bulk-load mode there is no unique index for ON CONFLICT to name.
	sqliteBulkInsertRecordQuery  = `INSERT INTO records (id, key, text) VALUES ($1, $2, $3)`
	sqliteBulkInsertRecordsQuery = multiInsert("INSERT INTO records (id, key, text) VALUES ", sqliteRowsPerInsert, 3, "")
	sqliteInsertHeadsQuery       = multiInsert("INSERT INTO heads (size, hash, note) VALUES ", sqliteRowsPerInsert, 3, "")
)

// insertRecords inserts the records of b in tx, or returns a
// *tlog.DuplicateError naming all of them that are already stored.
func (s *SQLite) insertRecords(ctx context.Context, tx *sql.Tx, b *tlog.Batch) error {
	lo, hi := b.OldSize, b.Head.Size
	loading, err := sqliteBulkLoading(ctx, tx)
	if err != nil {
		return fmt.Errorf("insert records [%d, %d): %w", lo, hi, err)
	}
	one, multi := sqliteInsertRecordQuery, sqliteInsertRecordsQuery
	if loading {
		one, multi = sqliteBulkInsertRecordQuery, sqliteBulkInsertRecordsQuery
	}
	dup := false // some record was not inserted
	err = execRows(ctx, tx, one, multi, len(b.Records), func(i int, args []any) []any {
		r := b.Records[i]
		return append(args, r.ID, recordKey(r.Path, r.Version), r.Text)
	}, func(want, got int64) { dup = dup || got < want })
	if err != nil {
		return fmt.Errorf("insert records [%d, %d): %w", lo, hi, err)
	}
	if !dup {
		return nil
	}
	// checkBatch rejected duplicates within b, so the records whose key
	// is stored under another id were stored before; the caller rolls
	// back the records inserted above.
	stored := make(map[string]string)
	for _, r := range b.Records {
		key := recordKey(r.Path, r.Version)
		var id int64
		var text []byte
		if err := tx.QueryRowContext(ctx, lookupQuery, key).Scan(&id, &text); err != nil {
			return fmt.Errorf("insert records [%d, %d): find duplicate records: %w", lo, hi, err)
		}
		if id == r.ID && bytes.Equal(text, r.Text) {
			continue // inserted above
		}
		path, version, err := parseText(text)
		if err != nil {
			return fmt.Errorf("insert records [%d, %d): find duplicate records: %w", lo, hi, err)
		}
		stored[string(key)] = path + "@" + version
	}
	return duplicateError(b, stored, errors.New("duplicate record key"))
}

// insertHistory inserts the history heads of b in tx.
func (s *SQLite) insertHistory(ctx context.Context, tx *sql.Tx, b *tlog.Batch) error {
	err := execRows(ctx, tx, sqliteInsertHeadQuery, sqliteInsertHeadsQuery, len(b.History), func(i int, args []any) []any {
		h := b.History[i]
		return append(args, h.Size, h.Hash[:], h.Note)
	}, func(int64, int64) {})
	if err != nil {
		return fmt.Errorf("append [%d, %d): insert %d heads into history: %w", b.OldSize, b.Head.Size, len(b.History), err)
	}
	return nil
}

// execRows inserts n rows in tx: as many as it can with the multi-row
// statement of sqliteRowsPerInsert rows, the rest with the one-row
// statement. row appends the arguments of row i to args; inserted is told
// the rows each statement was given and the rows it inserted.
func execRows(ctx context.Context, tx *sql.Tx, one, multi string, n int, row func(i int, args []any) []any, inserted func(want, got int64)) error {
	var stmts [2]*sql.Stmt
	defer func() {
		for _, st := range stmts {
			if st != nil {
				st.Close()
			}
		}
	}()
	args := make([]any, 0, 3*sqliteRowsPerInsert)
	for i := 0; i < n; {
		k, q, which := 1, one, 0
		if n-i >= sqliteRowsPerInsert {
			k, q, which = sqliteRowsPerInsert, multi, 1
		}
		if stmts[which] == nil {
			st, err := tx.PrepareContext(ctx, q)
			if err != nil {
				return err
			}
			stmts[which] = st
		}
		args = args[:0]
		for j := i; j < i+k; j++ {
			args = row(j, args)
		}
		res, err := stmts[which].ExecContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("rows [%d, %d): %w", i, i+k, err)
		}
		got, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("rows [%d, %d): %w", i, i+k, err)
		}
		inserted(int64(k), got)
		i += k
	}
	return nil
}

// Lookup returns the record of path@version, or an error wrapping
// tlog.ErrNotFound.
func (s *SQLite) Lookup(ctx context.Context, path, version string) (_ tlog.Record, err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	return lookupRow(path, version, s.lookupStmt.QueryRowContext(ctx, recordKey(path, version)).Scan, sql.ErrNoRows)
}

// ReadRecords returns the records with IDs [start, start+n), fewer if the log
// ends before.
func (s *SQLite) ReadRecords(ctx context.Context, start int64, n int) (_ []tlog.Record, err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	end, err := recordRange(start, n)
	if err != nil || end == start {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, readRecordsQuery, start, end)
	if err != nil {
		return nil, fmt.Errorf("read records [%d, %d): %w", start, end, err)
	}
	defer rows.Close()
	return scanRecords(rows, start, end)
}

// ReadTile returns the stored content of hash tile (level, index), or an error
// wrapping tlog.ErrNotFound.
func (s *SQLite) ReadTile(ctx context.Context, level int, index int64) (_ []byte, err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	return tileRow(level, index, s.readTileStmt.QueryRowContext(ctx, level, index).Scan, sql.ErrNoRows)
}

// ReadHeads returns the signed heads of sizes in [lo, hi], in increasing size.
func (s *SQLite) ReadHeads(ctx context.Context, lo, hi int64) (_ []tlog.Head, err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	if lo > hi {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, readHeadsQuery, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("read heads [%d, %d]: %w", lo, hi, err)
	}
	defer rows.Close()
	return scanHeads(rows, lo, hi)
}

var _ tlog.BulkStore = (*SQLite)(nil)

const (
	sqliteBulkLoadingQuery    = `SELECT count(*) = 0 FROM sqlite_master WHERE type = 'index' AND name = 'records_key'`
	sqliteAnyRecordQuery      = `SELECT EXISTS (SELECT 1 FROM records)`
	sqliteDropKeyIndexQuery   = `DROP INDEX records_key`
	sqliteCreateKeyIndexQuery = `CREATE UNIQUE INDEX records_key ON records (key)` // as in 0001_init.sql
	sqliteDuplicateKeysQuery  = `SELECT id, text FROM records WHERE key IN
		(SELECT key FROM records GROUP BY key HAVING count(*) > 1 LIMIT $1) ORDER BY key, id`
)

// A querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// sqliteBulkLoading reports whether the database is in bulk-load mode: its
// index of record keys is missing.
func sqliteBulkLoading(ctx context.Context, q querier) (bool, error) {
	var loading bool
	if err := q.QueryRowContext(ctx, sqliteBulkLoadingQuery).Scan(&loading); err != nil {
		return false, fmt.Errorf("check for an unfinished import: %w", err)
	}
	return loading, nil
}

// BulkLoading reports whether the database is in bulk-load mode, as
// documented by tlog.BulkStore.
func (s *SQLite) BulkLoading(ctx context.Context) (_ bool, err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	return sqliteBulkLoading(ctx, s.db)
}

// BeginBulk drops the index of record keys of an empty database, as
// documented by tlog.BulkStore.
func (s *SQLite) BeginBulk(ctx context.Context) (err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	return s.exclusive(ctx, "begin bulk load", func(tx *sql.Tx) error {
		loading, err := sqliteBulkLoading(ctx, tx)
		if err != nil || loading {
			return err
		}
		var size int64
		var any bool
		if err := tx.QueryRowContext(ctx, `SELECT size FROM head`).Scan(&size); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, sqliteAnyRecordQuery).Scan(&any); err != nil {
			return err
		}
		if size != 0 || any {
			return fmt.Errorf("the database holds a log of %d records: a bulk load needs an empty one", size)
		}
		_, err = tx.ExecContext(ctx, sqliteDropKeyIndexQuery)
		return err
	})
}

// EndBulk builds the index of record keys again, as documented by
// tlog.BulkStore.
func (s *SQLite) EndBulk(ctx context.Context) (err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	var dup bool
	err = s.exclusive(ctx, "end bulk load", func(tx *sql.Tx) error {
		loading, err := sqliteBulkLoading(ctx, tx)
		if err != nil || !loading {
			return err
		}
		if _, err := tx.ExecContext(ctx, sqliteCreateKeyIndexQuery); err != nil {
			var coded interface{ Code() int }
			if errors.As(err, &coded) && coded.Code()&0xff == sqliteConstraint {
				dup = true
			}
			return fmt.Errorf("build the index of record keys: %w", err)
		}
		return nil
	})
	if !dup {
		return err
	}
	groups, err := s.DuplicateRecords(ctx, 100)
	if err != nil {
		return fmt.Errorf("end bulk load: %w", err)
	}
	var texts [][]byte
	for _, g := range groups {
		for _, r := range g {
			texts = append(texts, r.Text)
		}
	}
	return duplicateTexts(texts)
}

// DuplicateRecords returns up to max groups of stored records that share a
// key, each group in the order of the log. Only a database in bulk-load
// mode can hold such records; the query reads the whole table.
func (s *SQLite) DuplicateRecords(ctx context.Context, max int) (_ [][]tlog.Record, err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	rows, err := s.db.QueryContext(ctx, sqliteDuplicateKeysQuery, max)
	if err != nil {
		return nil, fmt.Errorf("find records stored twice: %w", err)
	}
	defer rows.Close()
	var groups [][]tlog.Record
	var last []byte
	for rows.Next() {
		var r tlog.Record
		if err := rows.Scan(&r.ID, &r.Text); err != nil {
			return nil, fmt.Errorf("find records stored twice: %w", err)
		}
		if r.Path, r.Version, err = parseText(r.Text); err != nil {
			return nil, fmt.Errorf("find records stored twice: record %d: %w", r.ID, err)
		}
		key := recordKey(r.Path, r.Version)
		if !bytes.Equal(key, last) {
			groups = append(groups, nil)
			last = key
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find records stored twice: %w", err)
	}
	return groups, nil
}

// sqliteConstraint is SQLite's primary result code of a constraint violation.
const sqliteConstraint = 19

// exclusive runs f in a write transaction, holding the writer token as
// Append does, and commits if f returns nil.
func (s *SQLite) exclusive(ctx context.Context, what string, f func(tx *sql.Tx) error) error {
	select {
	case s.writer <- struct{}{}:
		defer func() { <-s.writer }()
	case <-ctx.Done():
		return fmt.Errorf("%s: wait for the writer: %w", what, ctx.Err())
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer conn.Close()
	// An index build sorts all the keys: in temporary files, not in
	// memory as the statement journals of appends (sqliteOptions).
	if _, err := conn.ExecContext(ctx, "PRAGMA temp_store = FILE"); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA temp_store = MEMORY")
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", what, err)
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", what, err)
	}
	return nil
}

// ReadState returns the value of state name, or nil and no error if it is
// unset.
func (s *SQLite) ReadState(ctx context.Context, name string) (_ []byte, err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	if err := checkStateArgs(name); err != nil {
		return nil, fmt.Errorf("read %w", err)
	}
	return stateRow(name, s.db.QueryRowContext(ctx, readStateQuery, name).Scan, sql.ErrNoRows)
}

// SwapState sets state name to new if it holds old, atomically; nil old
// means unset, and nil new unsets it. If name does not hold old, it returns
// an error wrapping tlog.ErrConflict. A value is 1 byte to 1 MiB.
func (s *SQLite) SwapState(ctx context.Context, name string, old, new []byte) (err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	return swapState(name, old, new, func(query string, args ...any) (int64, error) {
		res, err := s.db.ExecContext(ctx, query, args...)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}, func() ([]byte, error) { return s.ReadState(ctx, name) })
}

// sqliteUpsertMirrorTileQuery stores a mirrored tile, or replaces the stored
// one by a longer one that begins with it; it changes no row otherwise.
const sqliteUpsertMirrorTileQuery = `INSERT INTO mirror_tiles (db, level, idx, data) VALUES ($1, $2, $3, $4)
	ON CONFLICT (db, level, idx) DO UPDATE SET data = excluded.data
	WHERE length(excluded.data) > length(mirror_tiles.data)
	  AND substr(excluded.data, 1, length(mirror_tiles.data)) = mirror_tiles.data`

// ReadMirrorTile returns the stored content of tile (level, index) of the
// mirrored database db (level -1 for a data tile), or an error wrapping
// tlog.ErrNotFound.
func (s *SQLite) ReadMirrorTile(ctx context.Context, db string, level int, index int64) (_ []byte, err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	if err := checkMirrorTile(db, level, index, nil); err != nil {
		return nil, fmt.Errorf("read %w", err)
	}
	return mirrorTileRow(db, level, index, s.db.QueryRowContext(ctx, readMirrorTileQuery, db, level, index).Scan, sql.ErrNoRows)
}

// PutMirrorTile stores data as tile (level, index) of the mirrored database
// db if it is longer than the stored content and begins with it; data that
// the stored content begins with is a no-op, and any other data an error
// wrapping tlog.ErrConflict. The caller verified data.
func (s *SQLite) PutMirrorTile(ctx context.Context, db string, level int, index int64, data []byte) (err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	return putMirrorTile(db, level, index, data, func() (int64, error) {
		res, err := s.db.ExecContext(ctx, sqliteUpsertMirrorTileQuery, db, level, index, data)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}, func() ([]byte, error) { return s.ReadMirrorTile(ctx, db, level, index) })
}

// ReadMirrorRecord returns the id and text of the record of path@version of
// the mirrored database db, or an error wrapping tlog.ErrNotFound.
func (s *SQLite) ReadMirrorRecord(ctx context.Context, db, path, version string) (_ int64, _ []byte, err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	if err := checkMirrorRecord(db, path, version, 0, nil); err != nil {
		return 0, nil, fmt.Errorf("read %w", err)
	}
	return mirrorRecordRow(db, path, version, s.db.QueryRowContext(ctx, readMirrorRecordQuery, db, recordKey(path, version)).Scan, sql.ErrNoRows)
}

// PutMirrorRecord stores the record of path@version of the mirrored
// database db, with its id in that database's log and its text. Storing
// the same record again is a no-op; another id or text is an error
// wrapping tlog.ErrConflict. The caller verified the record.
func (s *SQLite) PutMirrorRecord(ctx context.Context, db, path, version string, id int64, text []byte) (err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	key := recordKey(path, version)
	return putMirrorRecord(db, path, version, id, text, func() (int64, error) {
		res, err := s.db.ExecContext(ctx, insertMirrorRecordQuery, db, key, id, text)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}, func() (id int64, text []byte, err error) {
		err = s.db.QueryRowContext(ctx, readMirrorRecordQuery, db, key).Scan(&id, &text)
		return id, text, err
	})
}

// MirrorDatabases returns the names of the mirrored databases of which the
// store holds tiles or records, sorted.
func (s *SQLite) MirrorDatabases(ctx context.Context) (_ []string, err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	rows, err := s.db.QueryContext(ctx, mirrorDatabasesQuery, maxMirrorDatabases+1)
	if err != nil {
		return nil, fmt.Errorf("list mirrored databases: %w", err)
	}
	defer rows.Close()
	return scanMirrorDatabases(rows)
}

// ScanMirrorTiles calls f with each stored tile of the mirrored database db,
// in the order of level and index, until f returns an error, which it
// returns. data is f's to keep.
func (s *SQLite) ScanMirrorTiles(ctx context.Context, db string, f func(level int, index int64, data []byte) error) (err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	if err := checkMirrorDB(db); err != nil {
		return fmt.Errorf("scan mirrored tiles: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, scanMirrorTilesQuery, db)
	if err != nil {
		return fmt.Errorf("scan mirrored tiles of %s: %w", db, err)
	}
	defer rows.Close()
	return scanMirrorTiles(db, rows, f)
}

// ScanMirrorRecords calls f with the id and text of each stored record of
// the mirrored database db, in no particular order, until f returns an
// error, which it returns. text is f's to keep.
func (s *SQLite) ScanMirrorRecords(ctx context.Context, db string, f func(id int64, text []byte) error) (err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	if err := checkMirrorDB(db); err != nil {
		return fmt.Errorf("scan mirrored records: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, scanMirrorRecordsQuery, db)
	if err != nil {
		return fmt.Errorf("scan mirrored records of %s: %w", db, err)
	}
	defer rows.Close()
	return scanMirrorRecords(db, rows, f)
}

// PutCosignature stores line, the verified cosignature of the head of size
// by the witness key named witness, a note signature line
// "— <witness> <base64>\n". Storing the same line again is a no-op; another
// line for the same size and witness is an error wrapping
// tlog.ErrConflict, and the first stays.
func (s *SQLite) PutCosignature(ctx context.Context, size int64, witness string, line []byte) (err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	return putCosignature(size, witness, line, func() (int64, error) {
		res, err := s.db.ExecContext(ctx, insertCosignatureQuery, size, witness, line)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}, func() (stored []byte, err error) {
		err = s.db.QueryRowContext(ctx, readCosignatureQuery, size, witness).Scan(&stored)
		return stored, err
	})
}

// ReadCosignatures returns the stored cosignature lines of the head of
// size, by witness key name; an empty map if there are none.
func (s *SQLite) ReadCosignatures(ctx context.Context, size int64) (_ map[string][]byte, err error) {
	defer markUnavailable(&err, sqliteUnavailable)
	if err := checkCosignature(size, "-", nil); err != nil {
		return nil, fmt.Errorf("read %w", err)
	}
	rows, err := s.db.QueryContext(ctx, readCosignaturesQuery, size, maxCosignatures+1)
	if err != nil {
		return nil, fmt.Errorf("read cosignatures of tree size %d: %w", size, err)
	}
	defer rows.Close()
	return scanCosignatures(size, rows)
}
