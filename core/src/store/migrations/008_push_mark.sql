-- 008: how far the server has each order's stored chunks, so a push reads the chunks it
-- lacks instead of loading the document to compute them (ADR 0016, seventh part).
-- `pushed_seq`: the server has the snapshot and every chunk with `seq <= pushed_seq`
-- (NULL: not known; the next push computes its changes from the document).
-- `epoch`: bumped whenever the snapshot is rewritten or the mark forgotten, so a push
-- read before a compaction cannot set a mark on the chunks numbered after it.
ALTER TABLE sync_docs ADD COLUMN pushed_seq INTEGER;
ALTER TABLE sync_docs ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
