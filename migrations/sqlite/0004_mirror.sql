-- 0004_mirror: the cache of a server that mirrors other checksum databases:
-- tiles that only grow and records that never change, each row naming its
-- database. The meaning is that of ../postgres/0004_mirror.sql.
CREATE TABLE mirror_tiles (
    db    TEXT    NOT NULL CHECK (length(CAST(db AS BLOB)) BETWEEN 1 AND 200),
    level INTEGER NOT NULL CHECK (level BETWEEN -1 AND 7),
    idx   INTEGER NOT NULL CHECK (idx >= 0),
    data  BLOB    NOT NULL CHECK (CASE WHEN level = -1
                                       THEN length(data) BETWEEN 1 AND 1048576
                                       ELSE length(data) BETWEEN 32 AND 8192 AND length(data) % 32 = 0
                                  END),
    PRIMARY KEY (db, level, idx)
) STRICT;

CREATE TABLE mirror_records (
    db   TEXT    NOT NULL CHECK (length(CAST(db AS BLOB)) BETWEEN 1 AND 200),
    key  BLOB    NOT NULL CHECK (length(key) = 16),
    id   INTEGER NOT NULL CHECK (id >= 0),
    text BLOB    NOT NULL CHECK (length(text) BETWEEN 1 AND 65536),
    PRIMARY KEY (db, key)
) STRICT;

CREATE TRIGGER mirror_tiles_grow_only BEFORE UPDATE ON mirror_tiles
WHEN NEW.db != OLD.db OR NEW.level != OLD.level OR NEW.idx != OLD.idx
  OR length(NEW.data) < length(OLD.data)
  OR substr(NEW.data, 1, length(OLD.data)) != OLD.data
BEGIN SELECT RAISE(ABORT, 'sumdb: UPDATE of a mirrored tile is forbidden unless it extends the tile: verified data never changes'); END;

CREATE TRIGGER mirror_tiles_no_delete BEFORE DELETE ON mirror_tiles
BEGIN SELECT RAISE(ABORT, 'sumdb: DELETE on table mirror_tiles is forbidden: verified data never changes'); END;

CREATE TRIGGER mirror_records_no_update BEFORE UPDATE ON mirror_records
BEGIN SELECT RAISE(ABORT, 'sumdb: UPDATE on table mirror_records is forbidden: verified data never changes'); END;

CREATE TRIGGER mirror_records_no_delete BEFORE DELETE ON mirror_records
BEGIN SELECT RAISE(ABORT, 'sumdb: DELETE on table mirror_records is forbidden: verified data never changes'); END;
