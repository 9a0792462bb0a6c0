-- 005: sync state and the outbox. Orders, journal and receipts already hold what is sent;
-- these tables record what the server has acknowledged.

-- Per order: the heads the server is known to have, and whether local edits are unsent.
CREATE TABLE sync_docs (
    order_id     TEXT PRIMARY KEY,
    synced_heads BLOB NOT NULL DEFAULT x'',   -- concatenated 32-byte Automerge change hashes
    dirty        INTEGER NOT NULL DEFAULT 1,
    gen          INTEGER NOT NULL DEFAULT 0,  -- bumped by each local edit (compare-and-clear)
    state        TEXT NOT NULL DEFAULT 'active', -- active | removed | local_only
    reason       TEXT
) WITHOUT ROWID;
INSERT INTO sync_docs (order_id) SELECT id FROM orders;

-- Photos to upload, resumable (the server's offset is asked before each resume).
CREATE TABLE outbox_blobs (
    sha256          TEXT PRIMARY KEY,
    size            INTEGER NOT NULL,
    enqueued_at     INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    wedged          INTEGER NOT NULL DEFAULT 0,
    done_at         INTEGER
) WITHOUT ROWID;
INSERT OR IGNORE INTO outbox_blobs (sha256, size, enqueued_at) SELECT sha256, size, ingested_at FROM photos;
CREATE INDEX outbox_blobs_pending ON outbox_blobs (done_at, wedged, next_attempt_at);

-- Inclusion proofs of this device's journal entries in the server's evidence log.
CREATE TABLE log_proofs (
    seq   INTEGER PRIMARY KEY,
    proof TEXT NOT NULL                       -- JSON InclusionProof
);
