-- 002: the spare-part ledger, order close-out, experts and help requests, certifications.

-- Part movements of every engineer: from devices (journaled there) and from the clerk.
CREATE TABLE part_movements (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    id       TEXT NOT NULL UNIQUE,
    provider TEXT NOT NULL REFERENCES providers (id),
    engineer TEXT NOT NULL,
    order_id TEXT,
    author   TEXT NOT NULL,            -- device:<id> or clerk:<name>
    body     TEXT NOT NULL             -- the movement, JSON
);
CREATE INDEX part_movements_engineer ON part_movements (provider, engineer, seq);
CREATE TRIGGER part_movements_append_only BEFORE UPDATE ON part_movements
BEGIN SELECT RAISE(ABORT, 'part movements are append-only'); END;
CREATE TRIGGER part_movements_no_delete BEFORE DELETE ON part_movements
BEGIN SELECT RAISE(ABORT, 'part movements are append-only'); END;

-- The coordinator's confirmation that an order is done (seed 003: after the parts are back).
CREATE TABLE closeouts (
    provider  TEXT NOT NULL,
    order_id  TEXT NOT NULL,
    closed_at INTEGER NOT NULL,
    closed_by TEXT NOT NULL,
    PRIMARY KEY (provider, order_id)
) WITHOUT ROWID;

CREATE TABLE experts (
    provider   TEXT NOT NULL REFERENCES providers (id),
    id         TEXT NOT NULL,
    name       TEXT NOT NULL,
    categories TEXT NOT NULL,          -- JSON array, lowercase; empty = any category
    brands     TEXT NOT NULL,          -- JSON array, lowercase; empty = any brand
    fee_cents  INTEGER NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    PRIMARY KEY (provider, id)
) WITHOUT ROWID;

CREATE TABLE help_requests (
    provider   TEXT NOT NULL,
    id         TEXT NOT NULL,
    order_id   TEXT NOT NULL,
    engineer   TEXT NOT NULL,
    expert_id  TEXT,
    status     TEXT NOT NULL,          -- routed | unrouted | answered
    cost_cents INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (provider, id)
) WITHOUT ROWID;

-- Certification levels issued by the provider (seed 001), signed with its log key.
CREATE TABLE certifications (
    id        TEXT PRIMARY KEY,
    provider  TEXT NOT NULL,
    engineer  TEXT NOT NULL,
    body      TEXT NOT NULL,           -- canonical JSON, as signed
    signature TEXT NOT NULL            -- hex
) WITHOUT ROWID;
CREATE INDEX certifications_engineer ON certifications (provider, engineer);
