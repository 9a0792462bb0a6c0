-- The log's complete subtrees (docs/adr/0020): node (level, idx) is the hash of the 2^level
-- leaves from idx * 2^level; level 0 stays in log_leaves. An append writes the nodes it
-- completes, so roots and proofs read O(log n) rows instead of every leaf.
CREATE TABLE log_nodes (
    provider TEXT NOT NULL,
    level    INTEGER NOT NULL,
    idx      BIGINT NOT NULL,
    hash     BYTEA NOT NULL,
    PRIMARY KEY (provider, level, idx)
);
CREATE TRIGGER log_nodes_append_only BEFORE UPDATE OR DELETE ON log_nodes FOR EACH ROW EXECUTE FUNCTION onsite_append_only();
