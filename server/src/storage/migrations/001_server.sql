-- 001: the sync server's schema.
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

CREATE TABLE providers (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,     -- SHA-256 of the dispatcher token
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE enrol_codes (
    code_hash   TEXT PRIMARY KEY,        -- SHA-256 of the one-time code
    provider    TEXT NOT NULL REFERENCES providers (id),
    engineer_id TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    device_id   TEXT
) WITHOUT ROWID;

CREATE TABLE devices (
    id           TEXT PRIMARY KEY,       -- the device's id (its Automerge actor)
    provider     TEXT NOT NULL REFERENCES providers (id),
    engineer_id  TEXT NOT NULL,
    public_key   BLOB NOT NULL,          -- SEC1 P-256
    enrolled_at  INTEGER NOT NULL,
    revoked_at   INTEGER,
    journal_seq  INTEGER NOT NULL DEFAULT 0,
    journal_head TEXT
) WITHOUT ROWID;

CREATE TABLE tokens (
    hash       TEXT PRIMARY KEY,         -- SHA-256 of the bearer token
    device_id  TEXT NOT NULL REFERENCES devices (id),
    issued_at  INTEGER NOT NULL,
    revoked_at INTEGER
) WITHOUT ROWID;

CREATE TABLE orders (
    provider      TEXT NOT NULL,
    id            TEXT NOT NULL,
    engineer_id   TEXT NOT NULL,
    status        TEXT NOT NULL,
    priority      TEXT NOT NULL,
    customer      TEXT NOT NULL,
    updated_seq   INTEGER NOT NULL,
    assigned_seq  INTEGER NOT NULL,      -- when the current engineer got it
    compacted_seq INTEGER NOT NULL,      -- the snapshot holds every change up to here
    PRIMARY KEY (provider, id)
) WITHOUT ROWID;
CREATE INDEX orders_by_engineer ON orders (provider, engineer_id);

CREATE TABLE docs (
    provider TEXT NOT NULL,
    order_id TEXT NOT NULL,
    snapshot BLOB NOT NULL,
    PRIMARY KEY (provider, order_id)
) WITHOUT ROWID;

-- Every change to every order, in one global sequence (the devices' cursor).
CREATE TABLE feed (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    provider    TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    kind        TEXT NOT NULL,           -- change | assign | unassign
    origin      TEXT NOT NULL,           -- device id, or 'server' for dispatcher edits
    engineer_id TEXT,                    -- assign / unassign: whose scope changed
    bytes       BLOB                     -- change: Automerge change chunks
);
CREATE INDEX feed_by_provider ON feed (provider, seq);
CREATE INDEX feed_by_order ON feed (provider, order_id, seq);

CREATE TABLE journal (
    device_id TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    order_id  TEXT,
    kind      TEXT NOT NULL,
    body      BLOB NOT NULL,
    hash      TEXT NOT NULL,
    signature BLOB NOT NULL,
    PRIMARY KEY (device_id, seq)
) WITHOUT ROWID;

-- The provider's append-only evidence log (RFC 9162 leaves: journal entry hashes).
CREATE TABLE log_leaves (
    provider  TEXT NOT NULL,
    idx       INTEGER NOT NULL,
    leaf      BLOB NOT NULL,
    device_id TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    PRIMARY KEY (provider, idx)
) WITHOUT ROWID;
CREATE TRIGGER log_leaves_immutable BEFORE UPDATE ON log_leaves BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
CREATE TRIGGER log_leaves_undeletable BEFORE DELETE ON log_leaves BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
CREATE TRIGGER journal_immutable BEFORE UPDATE ON journal BEGIN SELECT RAISE(ABORT, 'journal entries are immutable'); END;

CREATE TABLE receipts (
    provider    TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    canonical   BLOB NOT NULL,
    strokes     BLOB,
    message     BLOB NOT NULL,
    signature   BLOB NOT NULL,
    device_id   TEXT NOT NULL,
    journal_seq INTEGER NOT NULL,
    PRIMARY KEY (provider, order_id, revision)
) WITHOUT ROWID;

CREATE TABLE blobs (
    provider  TEXT NOT NULL,
    sha256    TEXT NOT NULL,
    size      INTEGER NOT NULL,
    stored_at INTEGER NOT NULL,
    PRIMARY KEY (provider, sha256)
) WITHOUT ROWID;
