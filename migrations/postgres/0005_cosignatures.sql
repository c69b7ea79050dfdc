-- 0005_cosignatures: the cosignatures of the log's signed heads by
-- witnesses (c2sp.org/tlog-witness, c2sp.org/tlog-cosignature), verified by
-- the server before they are stored (package sumdb/witness), and shared by
-- every replica. A cosignature never changes: rows are only added.

-- cosignatures holds, for a tree size of heads, the signature line of one
-- witness as it is appended to the head's note: "— <name> <base64>\n",
-- where <name> is the witness key's name (witness).
CREATE TABLE cosignatures (
    size    bigint NOT NULL CHECK (size > 0),
    witness text   NOT NULL CHECK (octet_length(witness) BETWEEN 1 AND 200),
    line    bytea  NOT NULL CHECK (octet_length(line) BETWEEN 1 AND 1024),
    PRIMARY KEY (size, witness)
);

CREATE TRIGGER cosignatures_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON cosignatures
    FOR EACH STATEMENT EXECUTE FUNCTION sumdb_forbid_change();
