-- 0004_mirror: the cache of a server that mirrors other checksum databases
-- (package sumdb/mirror). Every row is data verified against a signed head of
-- the mirrored database, and such data never changes: a tile only grows by
-- appended content, a record is never rewritten, and nothing is removed.
-- Each row names its database by the name of its key (db), such as
-- "sum.example.com". The newest verified head of each database is kept in
-- the state table (0003_state.sql), under "mirror/<db>/latest".

-- mirror_tiles holds the widest verified content of each tile of a mirrored
-- log, in the layout of golang.org/x/mod/sumdb/tlog: level 0 to 7 for a hash
-- tile of height 8 (its 32-byte hashes), -1 for a data tile (its records'
-- texts, each followed by a blank line). A partial tile is a prefix of the
-- wider one.
CREATE TABLE mirror_tiles (
    db    text    NOT NULL CHECK (octet_length(db) BETWEEN 1 AND 200),
    level integer NOT NULL CHECK (level BETWEEN -1 AND 7),
    idx   bigint  NOT NULL CHECK (idx >= 0),
    data  bytea   NOT NULL CHECK (CASE WHEN level = -1
                                       THEN octet_length(data) BETWEEN 1 AND 1048576
                                       ELSE octet_length(data) BETWEEN 32 AND 8192 AND octet_length(data) % 32 = 0
                                  END),
    PRIMARY KEY (db, level, idx)
);

-- mirror_records holds verified lookup records. key is the first 16 bytes
-- of SHA-256("path@version"), as in records; text begins with
-- "<path> <version> h1:", which readers check.
CREATE TABLE mirror_records (
    db   text   NOT NULL CHECK (octet_length(db) BETWEEN 1 AND 200),
    key  bytea  NOT NULL CHECK (octet_length(key) = 16),
    id   bigint NOT NULL CHECK (id >= 0),
    text bytea  NOT NULL CHECK (octet_length(text) BETWEEN 1 AND 65536),
    PRIMARY KEY (db, key)
);

CREATE FUNCTION sumdb_mirror_tile_grows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.db <> OLD.db OR NEW.level <> OLD.level OR NEW.idx <> OLD.idx
       OR octet_length(NEW.data) < octet_length(OLD.data)
       OR substring(NEW.data FROM 1 FOR octet_length(OLD.data)) <> OLD.data THEN
        RAISE EXCEPTION 'sumdb: UPDATE of mirrored tile %/%/% is forbidden unless it extends the tile: verified data never changes', OLD.db, OLD.level, OLD.idx
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION sumdb_mirror_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'sumdb: % on table % is forbidden: verified data never changes', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;

CREATE TRIGGER mirror_tiles_grow_only
    BEFORE UPDATE ON mirror_tiles
    FOR EACH ROW EXECUTE FUNCTION sumdb_mirror_tile_grows();

CREATE TRIGGER mirror_tiles_kept
    BEFORE DELETE OR TRUNCATE ON mirror_tiles
    FOR EACH STATEMENT EXECUTE FUNCTION sumdb_mirror_kept();

CREATE TRIGGER mirror_records_kept
    BEFORE UPDATE OR DELETE OR TRUNCATE ON mirror_records
    FOR EACH STATEMENT EXECUTE FUNCTION sumdb_mirror_kept();
