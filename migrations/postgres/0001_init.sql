-- 0001_init: the log of go.sum records, its hash tiles, the current signed
-- head and the history of signed heads. The runner in package store applies
-- this file in one transaction and records it in schema_version.

-- records holds one row per log entry. id is the position in the log,
-- assigned by the sequencer (never a sequence: a rolled-back transaction
-- would leave a gap). key is the first 16 bytes of SHA-256("path@version"):
-- module paths may be long, and a fixed 16-byte key keeps the unique index
-- small; readers check the path and version of the row they find.
--
-- Path and version are not stored in their own columns: text begins with
-- "<path> <version> h1:", so they are parsed from it, which saves about 40
-- bytes per record (a tenth of the budget of 450 bytes per record, heap and
-- indexes included). Column order avoids alignment padding.
CREATE TABLE records (
    id   bigint PRIMARY KEY WITH (fillfactor = 100) CHECK (id >= 0),
    key  bytea  NOT NULL CHECK (octet_length(key) = 16),
    text bytea  NOT NULL
);

-- Ids only grow, so the primary key's pages can be packed full (above);
-- keys are random, so their index keeps the default fill factor.
CREATE UNIQUE INDEX records_key ON records (key);

-- tiles holds one row per hash tile of height 8, in the layout of
-- golang.org/x/mod/sumdb/tlog: hashes is the concatenation of the tile's
-- 32-byte hashes and grows, by replacement, until it holds 256 of them.
-- A partial tile of width W is a prefix of the row.
CREATE TABLE tiles (
    level  integer NOT NULL CHECK (level >= 0),
    idx    bigint  NOT NULL CHECK (idx >= 0),
    hashes bytea   NOT NULL CHECK (octet_length(hashes) BETWEEN 32 AND 8192
                                   AND octet_length(hashes) % 32 = 0),
    PRIMARY KEY (level, idx)
) WITH (fillfactor = 50); -- room for HOT updates of the growing right edge

-- Hashes do not compress: store long tiles out of line without trying.
ALTER TABLE tiles ALTER COLUMN hashes SET STORAGE EXTERNAL;

-- head is the single row with the current signed head. Append locks it
-- (SELECT ... FOR UPDATE) and checks its size: that lock is the fence that
-- lets several processes share the database without forking the log.
-- hash and note are NULL until the first head is stored.
CREATE TABLE head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    size      bigint  NOT NULL CHECK (size >= 0),
    hash      bytea   CHECK (octet_length(hash) = 32),
    note      bytea,
    CHECK ((hash IS NULL) = (note IS NULL))
) WITH (fillfactor = 50); -- room for HOT updates, one per append

INSERT INTO head (size) VALUES (0);

-- heads is the history of every signed head, one per tree size: the
-- primary key makes two different heads of one size impossible.
CREATE TABLE heads (
    size bigint PRIMARY KEY CHECK (size >= 0),
    hash bytea  NOT NULL CHECK (octet_length(hash) = 32),
    note bytea  NOT NULL
);

-- records and heads are append-only, and the head row is never removed.
CREATE FUNCTION sumdb_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'sumdb: % on table % is forbidden: the log is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;

CREATE TRIGGER records_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON records
    FOR EACH STATEMENT EXECUTE FUNCTION sumdb_forbid_change();

CREATE TRIGGER heads_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON heads
    FOR EACH STATEMENT EXECUTE FUNCTION sumdb_forbid_change();

CREATE TRIGGER head_kept
    BEFORE DELETE OR TRUNCATE ON head
    FOR EACH STATEMENT EXECUTE FUNCTION sumdb_forbid_change();
