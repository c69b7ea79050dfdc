-- 0006_record_index: an index of the log's records by module path, for the
-- explorer's search, and the time each head was first seen, for when a
-- record was logged. Both are derived from the log by an indexer (package
-- sumdb/explorer/index) outside the append path, and only grow: rows are
-- only added.

-- record_index holds the path and version of record id, as parsed from its
-- text. The "C" collation orders paths by their bytes (UTF-8: by code
-- point), so that the btree on (path, id) serves both an exact path and a
-- prefix, queried as the range path >= prefix AND path < (prefix with its
-- last character incremented), whatever the database's collation.
CREATE TABLE record_index (
    id      bigint PRIMARY KEY CHECK (id >= 0),
    path    text COLLATE "C" NOT NULL CHECK (path <> ''),
    version text NOT NULL CHECK (version <> '')
);

CREATE INDEX record_index_path ON record_index (path, id);

-- head_times holds, for a tree size, when a head of that size was first
-- seen by an indexer, in Unix nanoseconds; 0 means unknown (the head an
-- indexer finds when it starts may have been committed long before). The
-- records with ids below size and at least the next smaller size in the
-- table were logged then.
CREATE TABLE head_times (
    size         bigint PRIMARY KEY CHECK (size > 0),
    committed_at bigint NOT NULL CHECK (committed_at >= 0)
);

CREATE TRIGGER record_index_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON record_index
    FOR EACH STATEMENT EXECUTE FUNCTION sumdb_forbid_change();

CREATE TRIGGER head_times_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON head_times
    FOR EACH STATEMENT EXECUTE FUNCTION sumdb_forbid_change();
