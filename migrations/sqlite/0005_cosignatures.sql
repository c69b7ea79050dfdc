-- 0005_cosignatures: the verified cosignatures of the log's signed heads by
-- witnesses, one signature line per tree size and witness key name, never
-- changed. The meaning is that of ../postgres/0005_cosignatures.sql.
CREATE TABLE cosignatures (
    size    INTEGER NOT NULL CHECK (size > 0),
    witness TEXT    NOT NULL CHECK (length(CAST(witness AS BLOB)) BETWEEN 1 AND 200),
    line    BLOB    NOT NULL CHECK (length(line) BETWEEN 1 AND 1024),
    PRIMARY KEY (size, witness)
) STRICT;

CREATE TRIGGER cosignatures_no_update BEFORE UPDATE ON cosignatures
BEGIN SELECT RAISE(ABORT, 'sumdb: UPDATE on table cosignatures is forbidden: the log is append-only'); END;

CREATE TRIGGER cosignatures_no_delete BEFORE DELETE ON cosignatures
BEGIN SELECT RAISE(ABORT, 'sumdb: DELETE on table cosignatures is forbidden: the log is append-only'); END;
