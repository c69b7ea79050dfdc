-- 0006_record_index: an index of the log's records by module path, and the
-- time each head was first seen. The meaning is that of
-- ../postgres/0006_record_index.sql. TEXT compares with the BINARY
-- collation, by bytes, so the index on (path, id) serves the same ranges.
CREATE TABLE record_index (
    id      INTEGER PRIMARY KEY CHECK (id >= 0),
    path    TEXT    NOT NULL CHECK (path <> ''),
    version TEXT    NOT NULL CHECK (version <> '')
) STRICT;

CREATE INDEX record_index_path ON record_index (path, id);

CREATE TABLE head_times (
    size         INTEGER PRIMARY KEY CHECK (size > 0),
    committed_at INTEGER NOT NULL CHECK (committed_at >= 0)
) STRICT;

CREATE TRIGGER record_index_no_update BEFORE UPDATE ON record_index
BEGIN SELECT RAISE(ABORT, 'sumdb: UPDATE on table record_index is forbidden: the log is append-only'); END;

CREATE TRIGGER record_index_no_delete BEFORE DELETE ON record_index
BEGIN SELECT RAISE(ABORT, 'sumdb: DELETE on table record_index is forbidden: the log is append-only'); END;

CREATE TRIGGER head_times_no_update BEFORE UPDATE ON head_times
BEGIN SELECT RAISE(ABORT, 'sumdb: UPDATE on table head_times is forbidden: the log is append-only'); END;

CREATE TRIGGER head_times_no_delete BEFORE DELETE ON head_times
BEGIN SELECT RAISE(ABORT, 'sumdb: DELETE on table head_times is forbidden: the log is append-only'); END;
