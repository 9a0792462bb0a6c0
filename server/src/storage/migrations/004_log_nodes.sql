-- The log's complete subtrees (docs/adr/0020): node (level, idx) is the hash of the 2^level
-- leaves from idx * 2^level; level 0 stays in log_leaves. An append writes the nodes it
-- completes, so roots and proofs read O(log n) rows instead of every leaf.
CREATE TABLE log_nodes (
    provider TEXT NOT NULL,
    level    INTEGER NOT NULL,
    idx      INTEGER NOT NULL,
    hash     BLOB NOT NULL,
    PRIMARY KEY (provider, level, idx)
) WITHOUT ROWID;
CREATE TRIGGER log_nodes_immutable BEFORE UPDATE ON log_nodes BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
CREATE TRIGGER log_nodes_undeletable BEFORE DELETE ON log_nodes BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
