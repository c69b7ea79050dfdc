-- 0001_init: the log of go.sum records, its hash tiles, the current signed
-- head and the history of signed heads. The runner in package store applies
-- this file in one transaction and records it in schema_version. The meaning
-- of every table and column is that of ../postgres/0001_init.sql.

-- records: id is the rowid (no second index); key is the first 16 bytes of
-- SHA-256("path@version"); path and version are parsed from text, which
-- begins with "<path> <version> h1:".
CREATE TABLE records (
    id   INTEGER PRIMARY KEY CHECK (id >= 0),
    key  BLOB    NOT NULL CHECK (length(key) = 16),
    text BLOB    NOT NULL
) STRICT;

CREATE UNIQUE INDEX records_key ON records (key);

-- tiles: one row per hash tile, growing by replacement until it holds 256
-- hashes of 32 bytes.
CREATE TABLE tiles (
    level  INTEGER NOT NULL CHECK (level >= 0),
    idx    INTEGER NOT NULL CHECK (idx >= 0),
    hashes BLOB    NOT NULL CHECK (length(hashes) BETWEEN 32 AND 8192
                                   AND length(hashes) % 32 = 0),
    PRIMARY KEY (level, idx)
) STRICT;

-- head: the single row with the current signed head; hash and note are
-- NULL until the first head is stored. Append runs in a BEGIN IMMEDIATE
-- transaction, which holds the database's write lock from its start.
CREATE TABLE head (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    size      INTEGER NOT NULL CHECK (size >= 0),
    hash      BLOB    CHECK (length(hash) = 32),
    note      BLOB,
    CHECK ((hash IS NULL) = (note IS NULL))
) STRICT;

INSERT INTO head (singleton, size) VALUES (1, 0);

-- heads: the history of every signed head, one per tree size.
CREATE TABLE heads (
    size INTEGER PRIMARY KEY CHECK (size >= 0),
    hash BLOB    NOT NULL CHECK (length(hash) = 32),
    note BLOB    NOT NULL
) STRICT;

-- records and heads are append-only, and the head row is never removed.
CREATE TRIGGER records_no_update BEFORE UPDATE ON records
BEGIN SELECT RAISE(ABORT, 'sumdb: UPDATE on table records is forbidden: the log is append-only'); END;

CREATE TRIGGER records_no_delete BEFORE DELETE ON records
BEGIN SELECT RAISE(ABORT, 'sumdb: DELETE on table records is forbidden: the log is append-only'); END;

CREATE TRIGGER heads_no_update BEFORE UPDATE ON heads
BEGIN SELECT RAISE(ABORT, 'sumdb: UPDATE on table heads is forbidden: the log is append-only'); END;

CREATE TRIGGER heads_no_delete BEFORE DELETE ON heads
BEGIN SELECT RAISE(ABORT, 'sumdb: DELETE on table heads is forbidden: the log is append-only'); END;

CREATE TRIGGER head_no_delete BEFORE DELETE ON head
BEGIN SELECT RAISE(ABORT, 'sumdb: DELETE on table head is forbidden: the log is append-only'); END;
