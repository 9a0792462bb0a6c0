-- 001: the sync server's schema on PostgreSQL (the same tables as SQLite's 001 + 002).
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE providers (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE enrol_codes (
    code_hash   TEXT PRIMARY KEY,
    provider    TEXT NOT NULL REFERENCES providers (id),
    engineer_id TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    device_id   TEXT
);

CREATE TABLE devices (
    id           TEXT PRIMARY KEY,
    provider     TEXT NOT NULL REFERENCES providers (id),
    engineer_id  TEXT NOT NULL,
    public_key   BYTEA NOT NULL,
    enrolled_at  BIGINT NOT NULL,
    revoked_at   BIGINT,
    journal_seq  BIGINT NOT NULL DEFAULT 0,
    journal_head TEXT
);

CREATE TABLE tokens (
    hash       TEXT PRIMARY KEY,
    device_id  TEXT NOT NULL REFERENCES devices (id),
    issued_at  BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE orders (
    provider      TEXT NOT NULL,
    id            TEXT NOT NULL,
    engineer_id   TEXT NOT NULL,
    status        TEXT NOT NULL,
    priority      TEXT NOT NULL,
    customer      TEXT NOT NULL,
    updated_seq   BIGINT NOT NULL,
    assigned_seq  BIGINT NOT NULL,
    compacted_seq BIGINT NOT NULL,
    PRIMARY KEY (provider, id)
);
CREATE INDEX orders_by_engineer ON orders (provider, engineer_id);

CREATE TABLE docs (
    provider TEXT NOT NULL,
    order_id TEXT NOT NULL,
    snapshot BYTEA NOT NULL,
    PRIMARY KEY (provider, order_id)
);

-- Every change to every order, in one global sequence (the devices' cursor). Positions are
-- taken and committed in one serialized step (see `postgres.rs`), and `feed_head` holds the
-- highest committed position: a reader never sees a position above one still in flight.
CREATE SEQUENCE feed_seq;
CREATE TABLE feed (
    seq         BIGINT PRIMARY KEY,
    provider    TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    origin      TEXT NOT NULL,
    engineer_id TEXT,
    bytes       BYTEA
);
CREATE INDEX feed_by_provider ON feed (provider, seq);
CREATE INDEX feed_by_order ON feed (provider, order_id, seq);
CREATE TABLE feed_head (one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), seq BIGINT NOT NULL);
INSERT INTO feed_head (seq) VALUES (0);

CREATE TABLE journal (
    device_id TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    order_id  TEXT,
    kind      TEXT NOT NULL,
    body      BYTEA NOT NULL,
    hash      TEXT NOT NULL,
    signature BYTEA NOT NULL,
    PRIMARY KEY (device_id, seq)
);

CREATE TABLE log_leaves (
    provider  TEXT NOT NULL,
    idx       BIGINT NOT NULL,
    leaf      BYTEA NOT NULL,
    device_id TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    PRIMARY KEY (provider, idx)
);

CREATE FUNCTION onsite_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$;
CREATE TRIGGER log_leaves_append_only BEFORE UPDATE OR DELETE ON log_leaves FOR EACH ROW EXECUTE FUNCTION onsite_append_only();
CREATE TRIGGER journal_immutable BEFORE UPDATE ON journal FOR EACH ROW EXECUTE FUNCTION onsite_append_only();

CREATE TABLE receipts (
    provider    TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    revision    BIGINT NOT NULL,
    sha256      TEXT NOT NULL,
    canonical   BYTEA NOT NULL,
    strokes     BYTEA,
    message     BYTEA NOT NULL,
    signature   BYTEA NOT NULL,
    device_id   TEXT NOT NULL,
    journal_seq BIGINT NOT NULL,
    PRIMARY KEY (provider, order_id, revision)
);

CREATE TABLE blobs (
    provider  TEXT NOT NULL,
    sha256    TEXT NOT NULL,
    size      BIGINT NOT NULL,
    stored_at BIGINT NOT NULL,
    PRIMARY KEY (provider, sha256)
);

CREATE TABLE part_movements (
    seq      BIGSERIAL PRIMARY KEY,
    id       TEXT NOT NULL UNIQUE,
    provider TEXT NOT NULL REFERENCES providers (id),
    engineer TEXT NOT NULL,
    order_id TEXT,
    author   TEXT NOT NULL,
    body     TEXT NOT NULL
);
CREATE INDEX part_movements_engineer ON part_movements (provider, engineer, seq);
CREATE TRIGGER part_movements_append_only BEFORE UPDATE OR DELETE ON part_movements FOR EACH ROW EXECUTE FUNCTION onsite_append_only();

CREATE TABLE closeouts (
    provider  TEXT NOT NULL,
    order_id  TEXT NOT NULL,
    closed_at BIGINT NOT NULL,
    closed_by TEXT NOT NULL,
    PRIMARY KEY (provider, order_id)
);

CREATE TABLE experts (
    provider   TEXT NOT NULL REFERENCES providers (id),
    id         TEXT NOT NULL,
    name       TEXT NOT NULL,
    categories TEXT NOT NULL,
    brands     TEXT NOT NULL,
    fee_cents  BIGINT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    PRIMARY KEY (provider, id)
);

CREATE TABLE help_requests (
    provider   TEXT NOT NULL,
    id         TEXT NOT NULL,
    order_id   TEXT NOT NULL,
    engineer   TEXT NOT NULL,
    expert_id  TEXT,
    status     TEXT NOT NULL,
    cost_cents BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (provider, id)
);

CREATE TABLE certifications (
    id        TEXT PRIMARY KEY,
    provider  TEXT NOT NULL,
    engineer  TEXT NOT NULL,
    body      TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE INDEX certifications_engineer ON certifications (provider, engineer);
