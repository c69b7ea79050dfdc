-- 0003_state: small named values shared by every process serving the log,
-- each change a compare-and-swap of the whole value. The meaning is that of
-- ../postgres/0003_state.sql.
CREATE TABLE state (
    name  TEXT PRIMARY KEY CHECK (length(CAST(name AS BLOB)) BETWEEN 1 AND 200),
    value BLOB NOT NULL CHECK (length(value) BETWEEN 1 AND 1048576)
) STRICT;
