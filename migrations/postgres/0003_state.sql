-- 0003_state: small named values that every process serving the log shares,
-- such as the newest tree head of the public checksum database that public
-- modules are cross-checked with, and the evidence of its fork (package
-- sumdb/public). Unlike the log's tables, a value changes: every change is
-- a compare-and-swap of the whole value (store.Postgres.SwapState), so that
-- processes sharing the database never lose each other's updates.
--
-- An unset name has no row; a value is never empty, so that "unset" and
-- "empty" cannot be confused. The bounds are those of package store.
CREATE TABLE state (
    name  text  PRIMARY KEY CHECK (octet_length(name) BETWEEN 1 AND 200),
    value bytea NOT NULL CHECK (octet_length(value) BETWEEN 1 AND 1048576)
);
