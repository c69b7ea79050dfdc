package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sumdb/sumdb/migrations"
	"github.com/sumdb/sumdb/tlog"
)

// A Postgres is a tlog.Store in a PostgreSQL database. Several processes may
// share one database: every Append locks the head row, which serializes
// appends and makes a fork impossible.
type Postgres struct {
	pool *pgxpool.Pool
}

var _ tlog.Store = (*Postgres)(nil)

// OpenPostgres connects to the PostgreSQL database at databaseURL (a
// postgres:// URL or a keyword/value connection string), checks that it is
// reachable and brings its schema up to date.
func OpenPostgres(ctx context.Context, databaseURL string) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("open postgres: parse database URL: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres: connect to %s:%d database %q: %w (check the database URL and that the server is running)",
			cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	p := &Postgres{pool: pool}
	if err := p.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	return p, nil
}

// migrateLockKey identifies the advisory lock under which migrations run:
// the ASCII bytes of "sumdb".
const migrateLockKey int64 = 0x73756d6462

const (
	migrateLockQuery = `SELECT pg_advisory_xact_lock($1)`

	// schemaVersionExistsQuery lets a role without the CREATE privilege
	// open a database that is up to date: CREATE TABLE IF NOT EXISTS
	// checks the privilege even when the table exists.
	schemaVersionExistsQuery = `SELECT to_regclass('schema_version') IS NOT NULL`

	createSchemaVersionQuery = `CREATE TABLE IF NOT EXISTS schema_version (
		version    integer     PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`

	schemaVersionQuery = `SELECT coalesce(max(version), 0) FROM schema_version`

	insertSchemaVersionQuery = `INSERT INTO schema_version (version, name) VALUES ($1, $2)`
)

// migrate applies the migrations the database lacks, all in one transaction
// under an advisory lock, so that processes starting together apply each
// migration once.
func (p *Postgres) migrate(ctx context.Context) error {
	list, err := migrations.List(migrations.Postgres())
	if err != nil {
		return err
	}
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, migrateLockQuery, migrateLockKey); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	var exists bool
	if err := tx.QueryRow(ctx, schemaVersionExistsQuery).Scan(&exists); err != nil {
		return fmt.Errorf("migrate: find schema_version: %w", err)
	}
	if !exists {
		if _, err := tx.Exec(ctx, createSchemaVersionQuery); err != nil {
			return fmt.Errorf("migrate: create schema_version: %w", err)
		}
	}
	var current int
	if err := tx.QueryRow(ctx, schemaVersionQuery).Scan(&current); err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	// Without arguments, pgx uses the simple protocol, which runs a
	// migration file of several statements.
	err = applyPending(list, current, insertSchemaVersionQuery, func(query string, args ...any) error {
		_, err := tx.Exec(ctx, query, args...)
		return err
	})
	if err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// Close closes the connections to the database.
func (p *Postgres) Close() error {
	p.pool.Close()
	return nil
}

const readHeadQuery = `SELECT size, hash, note FROM head`

// ReadHead returns the current head, or a zero Head if none was stored.
func (p *Postgres) ReadHead(ctx context.Context) (_ tlog.Head, err error) {
	defer markUnavailable(&err, pgUnavailable)
	var size int64
	var hash, note []byte
	if err := p.pool.QueryRow(ctx, readHeadQuery).Scan(&size, &hash, &note); err != nil {
		return tlog.Head{}, fmt.Errorf("read head: %w", err)
	}
	return headFrom(size, hash, note)
}

// headFrom returns the head stored as (size, hash, note); hash and note are
// nil in a head row that was never written.
func headFrom(size int64, hash, note []byte) (tlog.Head, error) {
	if hash == nil {
		return tlog.Head{}, nil
	}
	h, err := hashFrom(hash)
	if err != nil {
		return tlog.Head{}, fmt.Errorf("read head of size %d: %w", size, err)
	}
	return tlog.Head{Size: size, Hash: h, Note: note}, nil
}

const (
	insertRecordsQuery = `INSERT INTO records (id, key, text)
		SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[])`

	// upsertTilesQuery replaces a stored tile only by a longer one that
	// begins with it: tiles grow, and any other change would be a fork.
	// If fewer than $4 tiles were written, it fails (division by zero), so
	// that the COMMIT sent after it is skipped.
	upsertTilesQuery = `WITH up AS (
		INSERT INTO tiles AS t (level, idx, hashes)
		SELECT * FROM unnest($1::integer[], $2::bigint[], $3::bytea[])
		ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes
		WHERE substring(excluded.hashes FROM 1 FOR octet_length(t.hashes)) = t.hashes
		RETURNING 1)
		SELECT 1 / (count(*) = $4::bigint)::integer FROM up`

	beginQuery = `BEGIN ISOLATION LEVEL READ COMMITTED`

	updateHeadQuery = `UPDATE head SET size = $1, hash = $2, note = $3`

	insertHeadQuery = `INSERT INTO heads (size, hash, note) VALUES ($1, $2, $3)`

	insertHeadsQuery = `INSERT INTO heads (size, hash, note)
		SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[])`

	// insertResignedHeadQuery keeps the first note of a size in the history
	// when an empty batch signs the same tree again.
	insertResignedHeadQuery = insertHeadQuery + ` ON CONFLICT (size) DO NOTHING`
)

// Append commits b, as documented by tlog.Store, in two round trips for a
// batch of fewer than copyMinRecords records: BEGIN with the head lock,
// then the inserts, the head and COMMIT. The records go in with one
// statement (unnest of arrays), or with COPY (a round trip more) for a
// larger batch.
func (p *Postgres) Append(ctx context.Context, b *tlog.Batch) (err error) {
	defer markUnavailable(&err, pgUnavailable)
	if err := checkBatch(b); err != nil {
		return err
	}
	if len(b.Records) > 0 && len(b.Records) < copyMinRecords && len(b.History) < copyMinRecords {
		return p.appendOnce(ctx, b)
	}
	return p.append(ctx, func(tlog.Head) (*tlog.Batch, error) { return b, nil })
}

// AppendLocked commits the batch that prepare computes from the current
// head, as documented by tlog.Store.
func (p *Postgres) AppendLocked(ctx context.Context, prepare func(tlog.Head) (*tlog.Batch, error)) (err error) {
	defer markUnavailable(&err, pgUnavailable)
	return p.append(ctx, func(h tlog.Head) (*tlog.Batch, error) {
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

const lockHeadNoteQuery = `SELECT size, hash, note FROM head FOR UPDATE`

// copyMinRecords is the number of records (or history heads) from which
// append inserts them with COPY rather than one INSERT of arrays: COPY
// costs a round trip of its own, and wins for the large batches of an import.
const copyMinRecords = 256

// recordRows feeds the records of a batch to CopyFrom.
type recordRows struct {
	recs []tlog.Record
	i    int
}

func (r *recordRows) Next() bool { r.i++; return r.i <= len(r.recs) }
func (r *recordRows) Values() ([]any, error) {
	rec := r.recs[r.i-1]
	return []any{rec.ID, recordKey(rec.Path, rec.Version), rec.Text}, nil
}
func (r *recordRows) Err() error { return nil }

// headRows feeds the history heads of a batch to CopyFrom.
type headRows struct {
	heads []tlog.Head
	i     int
}

func (r *headRows) Next() bool { r.i++; return r.i <= len(r.heads) }
func (r *headRows) Values() ([]any, error) {
	h := r.heads[r.i-1]
	return []any{h.Size, h.Hash[:], h.Note}, nil
}
func (r *headRows) Err() error { return nil }

// isDuplicateKey reports whether err is the unique violation of a record
// key already stored.
func isDuplicateKey(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "records_key"
}

// acquire returns a connection for an append, which the caller releases,
// and a function that rolls back its transaction, even after ctx ended. A
// connection released inside a transaction (an error before its end, and
// a ROLLBACK that failed too) is closed by the pool, never reused.
func (p *Postgres) acquire(ctx context.Context) (*pgxpool.Conn, func(), error) {
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("append: %w", err)
	}
	rollback := func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitGrace)
		defer cancel()
		conn.Exec(rctx, "ROLLBACK")
	}
	return conn, rollback, nil
}

// append locks the head, gets the batch to commit from prepare, and commits
// it if its old size and root are the locked head's.
func (p *Postgres) append(ctx context.Context, prepare func(tlog.Head) (*tlog.Batch, error)) error {
	conn, rollback, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()

	// One round trip begins the transaction and locks the head. Under READ
	// COMMITTED, whatever the server's default, a SELECT ... FOR UPDATE
	// that waited for another append returns the head that append
	// committed, so the size check sees it (and reports ErrConflict).
	var size int64
	var hash, note []byte
	var begin pgx.Batch
	begin.Queue(beginQuery)
	begin.Queue(lockHeadNoteQuery).QueryRow(func(row pgx.Row) error { return row.Scan(&size, &hash, &note) })
	if err := conn.SendBatch(ctx, &begin).Close(); err != nil {
		rollback()
		return fmt.Errorf("append: begin and lock head: %w", err)
	}
	head, err := headFrom(size, hash, note)
	if err != nil {
		rollback()
		return fmt.Errorf("append: %w", err)
	}
	b, err := prepare(head)
	if err != nil {
		rollback()
		return err
	}
	lo, hi := b.OldSize, b.Head.Size
	if err := fenced(b, size, hash); err != nil {
		rollback()
		return err
	}
	if err := checkResign(b, hash); err != nil {
		rollback()
		return err
	}

	if len(b.Records) >= copyMinRecords {
		// COPY streams rows without building arrays, several times faster
		// than unnest for the batches of an import.
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"records"}, []string{"id", "key", "text"}, &recordRows{recs: b.Records}); err != nil {
			rollback()
			if isDuplicateKey(err) {
				return p.duplicates(ctx, b, err)
			}
			return fmt.Errorf("insert records [%d, %d): %w", lo, hi, err)
		}
	}
	if len(b.History) >= copyMinRecords {
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"heads"}, []string{"size", "hash", "note"}, &headRows{heads: b.History}); err != nil {
			rollback()
			return fmt.Errorf("append [%d, %d): insert %d heads into history: %w", lo, hi, len(b.History), err)
		}
	}

	// One more round trip sends the rest and the COMMIT.
	var q pgx.Batch
	steps := queueWrites(&q, nil, b)
	return p.run(ctx, conn, &q, steps, b, rollback)
}

// A step is a statement of a pipelined append, and how to read its error.
type step struct {
	what     string
	dup      bool // a unique violation of a record key is a duplicate
	fork     bool // a division by zero is a tile that does not extend the stored one
	conflict bool // a division by zero is a stored head of another size or root
}

// queueWrites queues in q the statements that write b, from the records to
// the COMMIT, and returns steps with theirs appended. A statement that
// fails makes the server skip the rest, COMMIT included: every check that
// must stop the commit is an error of a statement. Records and history
// heads of COPY size are not queued: append copies them before.
func queueWrites(q *pgx.Batch, steps []step, b *tlog.Batch) []step {
	lo, hi := b.OldSize, b.Head.Size
	if len(b.Records) > 0 && len(b.Records) < copyMinRecords {
		ids := make([]int64, len(b.Records))
		keys := make([][]byte, len(b.Records))
		texts := make([][]byte, len(b.Records))
		for i, r := range b.Records {
			ids[i], keys[i], texts[i] = r.ID, recordKey(r.Path, r.Version), r.Text
		}
		q.Queue(insertRecordsQuery, ids, keys, texts)
		steps = append(steps, step{what: fmt.Sprintf("insert records [%d, %d)", lo, hi), dup: true})
	}
	if len(b.Tiles) > 0 {
		levels := make([]int32, len(b.Tiles))
		indexes := make([]int64, len(b.Tiles))
		hashes := make([][]byte, len(b.Tiles))
		for i, t := range b.Tiles {
			levels[i], indexes[i], hashes[i] = int32(t.Level), t.Index, t.Hashes
		}
		q.Queue(upsertTilesQuery, levels, indexes, hashes, len(b.Tiles))
		steps = append(steps, step{what: fmt.Sprintf("append [%d, %d): upsert tiles", lo, hi), fork: true})
	}
	q.Queue(updateHeadQuery, b.Head.Size, b.Head.Hash[:], b.Head.Note)
	steps = append(steps, step{what: fmt.Sprintf("append [%d, %d): update head", lo, hi)})
	if len(b.History) > 0 && len(b.History) < copyMinRecords {
		sizes := make([]int64, len(b.History))
		hashes := make([][]byte, len(b.History))
		notes := make([][]byte, len(b.History))
		for i, h := range b.History {
			sizes[i], hashes[i], notes[i] = h.Size, h.Hash[:], h.Note
		}
		q.Queue(insertHeadsQuery, sizes, hashes, notes)
		steps = append(steps, step{what: fmt.Sprintf("append [%d, %d): insert %d heads into history", lo, hi, len(b.History))})
	}
	if len(b.Records) > 0 {
		q.Queue(insertHeadQuery, b.Head.Size, b.Head.Hash[:], b.Head.Note)
	} else {
		q.Queue(insertResignedHeadQuery, b.Head.Size, b.Head.Hash[:], b.Head.Note)
	}
	steps = append(steps, step{what: fmt.Sprintf("append [%d, %d): insert head into history", lo, hi)})
	q.Queue("COMMIT")
	return append(steps, step{what: fmt.Sprintf("append [%d, %d): commit", lo, hi)})
}

// run sends q, the statements of steps, on conn in one round trip, and
// reads the error of the first that failed, rolling back.
func (p *Postgres) run(ctx context.Context, conn *pgxpool.Conn, q *pgx.Batch, steps []step, b *tlog.Batch, rollback func()) error {
	// Commit even if ctx ends now: a commit cut short by the context leaves
	// the caller unsure whether the batch is stored. But not for ever: a
	// server that stopped answering must not hold the caller.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitGrace)
	defer cancel()
	res := conn.SendBatch(cctx, q)
	for _, st := range steps {
		if _, err := res.Exec(); err != nil {
			res.Close()
			rollback()
			var pgErr *pgconn.PgError
			divByZero := errors.As(err, &pgErr) && pgErr.Code == "22012"
			switch {
			case st.dup && isDuplicateKey(err):
				// Nothing is written; find which records exist, now that
				// the transaction is over. Records are never deleted, so
				// what existed then exists now.
				return p.duplicates(ctx, b, err)
			case st.fork && divByZero:
				return fmt.Errorf("%s: some tiles do not extend the stored tile: refusing to fork the log", st.what)
			case st.conflict && divByZero:
				return fmt.Errorf("append at size %d: the stored head is not the tree of that size and root %v the batch extends: %w", b.OldSize, b.OldHash, tlog.ErrConflict)
			}
			return fmt.Errorf("%s: %w", st.what, err)
		}
	}
	if err := res.Close(); err != nil {
		return fmt.Errorf("append [%d, %d): %w", b.OldSize, b.Head.Size, err)
	}
	return nil
}

// fenceHeadQuery locks the head row, as lockHeadNoteQuery does, and fails
// with a division by zero unless the stored size is $1 and, for a tree
// that is not empty, the stored root hash is $2.
const fenceHeadQuery = `SELECT 1 / (size = $1 AND (size = 0 OR hash = $2))::int FROM head FOR UPDATE`

// appendOnce commits b, whose records are inserted without COPY, in one
// round trip: BEGIN, the head locked and its size and root checked (the
// fence), the writes and the COMMIT, pipelined. A stored head of another
// size or root makes the fence fail, and the append return ErrConflict,
// writing nothing.
func (p *Postgres) appendOnce(ctx context.Context, b *tlog.Batch) error {
	conn, rollback, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	var q pgx.Batch
	q.Queue(beginQuery)
	q.Queue(fenceHeadQuery, b.OldSize, b.OldHash[:])
	steps := []step{
		{what: "append: begin"},
		{what: fmt.Sprintf("append at size %d: lock head", b.OldSize), conflict: true},
	}
	steps = queueWrites(&q, steps, b)
	return p.run(ctx, conn, &q, steps, b, rollback)
}

// commitGrace bounds the commit of an append, which goes on after the
// caller's context ends.
const commitGrace = 10 * time.Second

const existingTextsQuery = `SELECT text FROM records WHERE key = ANY($1::bytea[])`

// duplicates returns the *tlog.DuplicateError for the records of b that are
// stored, after insertErr reported a duplicate key.
func (p *Postgres) duplicates(ctx context.Context, b *tlog.Batch, insertErr error) error {
	keys := make([][]byte, len(b.Records))
	for i, r := range b.Records {
		keys[i] = recordKey(r.Path, r.Version)
	}
	rows, err := p.pool.Query(ctx, existingTextsQuery, keys)
	if err != nil {
		return fmt.Errorf("append [%d, %d): find duplicate records: %w", b.OldSize, b.Head.Size, err)
	}
	defer rows.Close()
	stored := make(map[string]string) // key bytes -> stored path@version
	for rows.Next() {
		var text []byte
		if err := rows.Scan(&text); err != nil {
			return fmt.Errorf("append [%d, %d): find duplicate records: %w", b.OldSize, b.Head.Size, err)
		}
		path, version, err := parseText(text)
		if err != nil {
			return fmt.Errorf("append [%d, %d): find duplicate records: %w", b.OldSize, b.Head.Size, err)
		}
		stored[string(recordKey(path, version))] = path + "@" + version
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("append [%d, %d): find duplicate records: %w", b.OldSize, b.Head.Size, err)
	}
	return duplicateError(b, stored, insertErr)
}

// duplicateError returns the error for the records of b whose key is in
// stored (key bytes -> stored path@version).
func duplicateError(b *tlog.Batch, stored map[string]string, insertErr error) error {
	dup := new(tlog.DuplicateError)
	for i, r := range b.Records {
		s, ok := stored[string(recordKey(r.Path, r.Version))]
		if !ok {
			continue
		}
		if s != r.Key() {
			return fmt.Errorf("append record %d (%s): %w", b.OldSize+int64(i), r.Key(), errKeyCollision)
		}
		dup.Keys = append(dup.Keys, r.Key())
	}
	if len(dup.Keys) == 0 {
		return fmt.Errorf("append [%d, %d): %w", b.OldSize, b.Head.Size, insertErr)
	}
	return dup
}

// Lookup returns the record of path@version, or an error wrapping
// tlog.ErrNotFound.
func (p *Postgres) Lookup(ctx context.Context, path, version string) (_ tlog.Record, err error) {
	defer markUnavailable(&err, pgUnavailable)
	return lookupRow(path, version, p.pool.QueryRow(ctx, lookupQuery, recordKey(path, version)).Scan, pgx.ErrNoRows)
}

// ReadRecords returns the records with IDs [start, start+n), fewer if the log
// ends before.
func (p *Postgres) ReadRecords(ctx context.Context, start int64, n int) (_ []tlog.Record, err error) {
	defer markUnavailable(&err, pgUnavailable)
	end, err := recordRange(start, n)
	if err != nil || end == start {
		return nil, err
	}
	rows, err := p.pool.Query(ctx, readRecordsQuery, start, end)
	if err != nil {
		return nil, fmt.Errorf("read records [%d, %d): %w", start, end, err)
	}
	defer rows.Close()
	return scanRecords(rows, start, end)
}

// ReadTile returns the stored content of hash tile (level, index), or an error
// wrapping tlog.ErrNotFound.
func (p *Postgres) ReadTile(ctx context.Context, level int, index int64) (_ []byte, err error) {
	defer markUnavailable(&err, pgUnavailable)
	return tileRow(level, index, p.pool.QueryRow(ctx, readTileQuery, level, index).Scan, pgx.ErrNoRows)
}

// ReadHeads returns the signed heads of sizes in [lo, hi], in increasing size.
func (p *Postgres) ReadHeads(ctx context.Context, lo, hi int64) (_ []tlog.Head, err error) {
	defer markUnavailable(&err, pgUnavailable)
	if lo > hi {
		return nil, nil
	}
	rows, err := p.pool.Query(ctx, readHeadsQuery, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("read heads [%d, %d]: %w", lo, hi, err)
	}
	defer rows.Close()
	return scanHeads(rows, lo, hi)
}

var _ tlog.BulkStore = (*Postgres)(nil)

const (
	bulkLoadingQuery = `SELECT to_regclass('records_key') IS NULL`

	anyRecordQuery = `SELECT EXISTS (SELECT 1 FROM records)`

	dropKeyIndexQuery = `DROP INDEX records_key`

	// createKeyIndexQuery is the index of 0001_init.sql.
	createKeyIndexQuery = `CREATE UNIQUE INDEX records_key ON records (key)`

	// bulkIndexMemory lets the index build sort 10^7 keys in memory
	// rather than in temporary files; it applies to this transaction only.
	bulkIndexMemoryQuery = `SET LOCAL maintenance_work_mem = '512MB'`

	duplicateKeysQuery = `SELECT text FROM records WHERE key IN
		(SELECT key FROM records GROUP BY key HAVING count(*) > 1 LIMIT 100) ORDER BY id`
)

// BulkLoading reports whether the database is in bulk-load mode, as
// documented by tlog.BulkStore: its index of record keys is missing.
func (p *Postgres) BulkLoading(ctx context.Context) (_ bool, err error) {
	defer markUnavailable(&err, pgUnavailable)
	var loading bool
	if err := p.pool.QueryRow(ctx, bulkLoadingQuery).Scan(&loading); err != nil {
		return false, fmt.Errorf("check for an unfinished import: %w", err)
	}
	return loading, nil
}

// BeginBulk drops the index of record keys of an empty database, as
// documented by tlog.BulkStore.
func (p *Postgres) BeginBulk(ctx context.Context) (err error) {
	defer markUnavailable(&err, pgUnavailable)
	tx, err := p.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("begin bulk load: %w", err)
	}
	defer tx.Rollback(ctx)
	var size int64
	var hash, note []byte
	if err := tx.QueryRow(ctx, lockHeadNoteQuery).Scan(&size, &hash, &note); err != nil {
		return fmt.Errorf("begin bulk load: lock head: %w", err)
	}
	var loading, any bool
	if err := tx.QueryRow(ctx, bulkLoadingQuery).Scan(&loading); err != nil {
		return fmt.Errorf("begin bulk load: %w", err)
	}
	if loading {
		return nil
	}
	if err := tx.QueryRow(ctx, anyRecordQuery).Scan(&any); err != nil {
		return fmt.Errorf("begin bulk load: %w", err)
	}
	if size != 0 || any {
		return fmt.Errorf("begin bulk load: the database holds a log of %d records: a bulk load needs an empty one", size)
	}
	if _, err := tx.Exec(ctx, dropKeyIndexQuery); err != nil {
		return fmt.Errorf("begin bulk load: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("begin bulk load: commit: %w", err)
	}
	return nil
}

// EndBulk builds the index of record keys again, as documented by
// tlog.BulkStore.
func (p *Postgres) EndBulk(ctx context.Context) (err error) {
	defer markUnavailable(&err, pgUnavailable)
	loading, err := p.BulkLoading(ctx)
	if err != nil || !loading {
		return err
	}
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("end bulk load: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, bulkIndexMemoryQuery); err != nil {
		return fmt.Errorf("end bulk load: %w", err)
	}
	if _, err := tx.Exec(ctx, createKeyIndexQuery); err != nil {
		if isUniqueViolation(err) {
			tx.Rollback(ctx)
			return p.duplicateKeys(ctx)
		}
		return fmt.Errorf("end bulk load: build the index of record keys: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("end bulk load: commit: %w", err)
	}
	// Fresh statistics for the lookups of the server that comes next.
	if _, err := p.pool.Exec(ctx, `ANALYZE records`); err != nil {
		return fmt.Errorf("end bulk load: analyze records: %w", err)
	}
	return nil
}

// isUniqueViolation reports whether err is a unique violation.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// duplicateKeys returns the *tlog.DuplicateError of the records stored twice.
func (p *Postgres) duplicateKeys(ctx context.Context) error {
	rows, err := p.pool.Query(ctx, duplicateKeysQuery)
	if err != nil {
		return fmt.Errorf("end bulk load: find records stored twice: %w", err)
	}
	texts, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return fmt.Errorf("end bulk load: find records stored twice: %w", err)
	}
	return duplicateTexts(texts)
}

// ReadState returns the value of state name, or nil and no error if it is
// unset.
func (p *Postgres) ReadState(ctx context.Context, name string) (_ []byte, err error) {
	defer markUnavailable(&err, pgUnavailable)
	if err := checkStateArgs(name); err != nil {
		return nil, fmt.Errorf("read %w", err)
	}
	return stateRow(name, p.pool.QueryRow(ctx, readStateQuery, name).Scan, pgx.ErrNoRows)
}

// SwapState sets state name to new if it holds old, atomically; nil old
// means unset, and nil new unsets it. If name does not hold old, it returns
// an error wrapping tlog.ErrConflict. A value is 1 byte to 1 MiB.
func (p *Postgres) SwapState(ctx context.Context, name string, old, new []byte) (err error) {
	defer markUnavailable(&err, pgUnavailable)
	return swapState(name, old, new, func(query string, args ...any) (int64, error) {
		tag, err := p.pool.Exec(ctx, query, args...)
		return tag.RowsAffected(), err
	}, func() ([]byte, error) { return p.ReadState(ctx, name) })
}

// pgUpsertMirrorTileQuery stores a mirrored tile, or replaces the stored one
// by a longer one that begins with it; it changes no row otherwise.
const pgUpsertMirrorTileQuery = `INSERT INTO mirror_tiles AS t (db, level, idx, data) VALUES ($1, $2, $3, $4)
	ON CONFLICT (db, level, idx) DO UPDATE SET data = excluded.data
	WHERE octet_length(excluded.data) > octet_length(t.data)
	  AND substring(excluded.data FROM 1 FOR octet_length(t.data)) = t.data`

// ReadMirrorTile returns the stored content of tile (level, index) of the
// mirrored database db (level -1 for a data tile), or an error wrapping
// tlog.ErrNotFound.
func (p *Postgres) ReadMirrorTile(ctx context.Context, db string, level int, index int64) (_ []byte, err error) {
	defer markUnavailable(&err, pgUnavailable)
	if err := checkMirrorTile(db, level, index, nil); err != nil {
		return nil, fmt.Errorf("read %w", err)
	}
	return mirrorTileRow(db, level, index, p.pool.QueryRow(ctx, readMirrorTileQuery, db, level, index).Scan, pgx.ErrNoRows)
}

// PutMirrorTile stores data as tile (level, index) of the mirrored database
// db if it is longer than the stored content and begins with it; data that
// the stored content begins with is a no-op, and any other data an error
// wrapping tlog.ErrConflict. The caller verified data.
func (p *Postgres) PutMirrorTile(ctx context.Context, db string, level int, index int64, data []byte) (err error) {
	defer markUnavailable(&err, pgUnavailable)
	return putMirrorTile(db, level, index, data, func() (int64, error) {
		tag, err := p.pool.Exec(ctx, pgUpsertMirrorTileQuery, db, level, index, data)
		return tag.RowsAffected(), err
	}, func() ([]byte, error) { return p.ReadMirrorTile(ctx, db, level, index) })
}

// ReadMirrorRecord returns the id and text of the record of path@version of
// the mirrored database db, or an error wrapping tlog.ErrNotFound.
func (p *Postgres) ReadMirrorRecord(ctx context.Context, db, path, version string) (_ int64, _ []byte, err error) {
	defer markUnavailable(&err, pgUnavailable)
	if err := checkMirrorRecord(db, path, version, 0, nil); err != nil {
		return 0, nil, fmt.Errorf("read %w", err)
	}
	return mirrorRecordRow(db, path, version, p.pool.QueryRow(ctx, readMirrorRecordQuery, db, recordKey(path, version)).Scan, pgx.ErrNoRows)
}

// PutMirrorRecord stores the record of path@version of the mirrored
// database db, with its id in that database's log and its text. Storing
// the same record again is a no-op; another id or text is an error
// wrapping tlog.ErrConflict. The caller verified the record.
func (p *Postgres) PutMirrorRecord(ctx context.Context, db, path, version string, id int64, text []byte) (err error) {
	defer markUnavailable(&err, pgUnavailable)
	key := recordKey(path, version)
	return putMirrorRecord(db, path, version, id, text, func() (int64, error) {
		tag, err := p.pool.Exec(ctx, insertMirrorRecordQuery, db, key, id, text)
		return tag.RowsAffected(), err
	}, func() (id int64, text []byte, err error) {
		err = p.pool.QueryRow(ctx, readMirrorRecordQuery, db, key).Scan(&id, &text)
		return id, text, err
	})
}

// MirrorDatabases returns the names of the mirrored databases of which the
// store holds tiles or records, sorted.
func (p *Postgres) MirrorDatabases(ctx context.Context) (_ []string, err error) {
	defer markUnavailable(&err, pgUnavailable)
	rows, err := p.pool.Query(ctx, mirrorDatabasesQuery, maxMirrorDatabases+1)
	if err != nil {
		return nil, fmt.Errorf("list mirrored databases: %w", err)
	}
	defer rows.Close()
	return scanMirrorDatabases(rows)
}

// ScanMirrorTiles calls f with each stored tile of the mirrored database db,
// in the order of level and index, until f returns an error, which it
// returns. data is f's to keep.
func (p *Postgres) ScanMirrorTiles(ctx context.Context, db string, f func(level int, index int64, data []byte) error) (err error) {
	defer markUnavailable(&err, pgUnavailable)
	if err := checkMirrorDB(db); err != nil {
		return fmt.Errorf("scan mirrored tiles: %w", err)
	}
	rows, err := p.pool.Query(ctx, scanMirrorTilesQuery, db)
	if err != nil {
		return fmt.Errorf("scan mirrored tiles of %s: %w", db, err)
	}
	defer rows.Close()
	return scanMirrorTiles(db, rows, f)
}

// ScanMirrorRecords calls f with the id and text of each stored record of
// the mirrored database db, in no particular order, until f returns an
// error, which it returns. text is f's to keep.
func (p *Postgres) ScanMirrorRecords(ctx context.Context, db string, f func(id int64, text []byte) error) (err error) {
	defer markUnavailable(&err, pgUnavailable)
	if err := checkMirrorDB(db); err != nil {
		return fmt.Errorf("scan mirrored records: %w", err)
	}
	rows, err := p.pool.Query(ctx, scanMirrorRecordsQuery, db)
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
func (p *Postgres) PutCosignature(ctx context.Context, size int64, witness string, line []byte) (err error) {
	defer markUnavailable(&err, pgUnavailable)
	return putCosignature(size, witness, line, func() (int64, error) {
		tag, err := p.pool.Exec(ctx, insertCosignatureQuery, size, witness, line)
		return tag.RowsAffected(), err
	}, func() (stored []byte, err error) {
		err = p.pool.QueryRow(ctx, readCosignatureQuery, size, witness).Scan(&stored)
		return stored, err
	})
}

// ReadCosignatures returns the stored cosignature lines of the head of
// size, by witness key name; an empty map if there are none.
func (p *Postgres) ReadCosignatures(ctx context.Context, size int64) (_ map[string][]byte, err error) {
	defer markUnavailable(&err, pgUnavailable)
	if err := checkCosignature(size, "-", nil); err != nil {
		return nil, fmt.Errorf("read %w", err)
	}
	rows, err := p.pool.Query(ctx, readCosignaturesQuery, size, maxCosignatures+1)
	if err != nil {
		return nil, fmt.Errorf("read cosignatures of tree size %d: %w", size, err)
	}
	defer rows.Close()
	return scanCosignatures(size, rows)
}
