-- 0002_forward_only: the head row only moves forward, and a hash tile only
-- grows by appended hashes. The meaning is that of
-- ../postgres/0002_forward_only.sql.
--
-- SQLite fires no DELETE trigger for the rows that INSERT OR REPLACE
-- removes unless recursive_triggers is on: the store turns it on for its
-- connections.

CREATE TRIGGER head_forward BEFORE UPDATE ON head
WHEN NEW.size < OLD.size
  OR (OLD.hash IS NOT NULL AND NEW.hash IS NULL)
  OR (NEW.size = OLD.size AND OLD.hash IS NOT NULL AND NEW.hash IS NOT OLD.hash)
BEGIN SELECT RAISE(ABORT, 'sumdb: replacing the head by an older or different one is forbidden: the head only moves forward'); END;

CREATE TRIGGER tiles_grow_only BEFORE UPDATE ON tiles
WHEN NEW.level != OLD.level OR NEW.idx != OLD.idx
  OR length(NEW.hashes) < length(OLD.hashes)
  OR substr(NEW.hashes, 1, length(OLD.hashes)) != OLD.hashes
BEGIN SELECT RAISE(ABORT, 'sumdb: UPDATE of a tile is forbidden unless it appends hashes: published hashes never change'); END;

CREATE TRIGGER tiles_no_delete BEFORE DELETE ON tiles
BEGIN SELECT RAISE(ABORT, 'sumdb: DELETE on table tiles is forbidden: the log is append-only'); END;
