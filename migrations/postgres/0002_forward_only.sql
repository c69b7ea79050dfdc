-- 0002_forward_only: what 0001 left changeable changes only forward. The
-- head row moves to larger trees (or re-signs the same one), and a hash
-- tile only grows by appended hashes: a published hash never changes, and
-- no tile is removed. Together with 0001's triggers on records and heads,
-- the database itself refuses any rewrite of what clients may have seen.

CREATE FUNCTION sumdb_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.size < OLD.size
       OR (OLD.hash IS NOT NULL AND NEW.hash IS NULL)
       OR (NEW.size = OLD.size AND NEW.hash IS DISTINCT FROM OLD.hash AND OLD.hash IS NOT NULL) THEN
        RAISE EXCEPTION 'sumdb: replacing the head of size % by one of size % is forbidden: the head only moves forward', OLD.size, NEW.size
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER head_forward
    BEFORE UPDATE ON head
    FOR EACH ROW EXECUTE FUNCTION sumdb_head_forward();

CREATE FUNCTION sumdb_tile_grows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.level <> OLD.level OR NEW.idx <> OLD.idx
       OR octet_length(NEW.hashes) < octet_length(OLD.hashes)
       OR substring(NEW.hashes FROM 1 FOR octet_length(OLD.hashes)) <> OLD.hashes THEN
        RAISE EXCEPTION 'sumdb: UPDATE of tile %/% is forbidden unless it appends hashes: published hashes never change', OLD.level, OLD.idx
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER tiles_grow_only
    BEFORE UPDATE ON tiles
    FOR EACH ROW EXECUTE FUNCTION sumdb_tile_grows();

CREATE TRIGGER tiles_kept
    BEFORE DELETE OR TRUNCATE ON tiles
    FOR EACH STATEMENT EXECUTE FUNCTION sumdb_forbid_change();
