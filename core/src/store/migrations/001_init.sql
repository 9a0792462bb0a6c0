-- 001: work orders as Automerge documents (snapshot + incremental changes) with summary
-- columns for list screens.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- One row per order: what list screens read. Never holds the document itself.
CREATE TABLE orders (
    id                TEXT PRIMARY KEY,
    status            TEXT NOT NULL,
    priority          TEXT NOT NULL,
    customer          TEXT NOT NULL,
    site              TEXT NOT NULL,
    equipment         TEXT NOT NULL,
    engineer_id       TEXT NOT NULL,
    reported_at       INTEGER NOT NULL,
    appointment_start INTEGER,
    appointment_end   INTEGER,
    sla_deadline      INTEGER,          -- earliest running SLA deadline (ms), NULL when none
    sla_kind          TEXT,
    updated_at        INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX orders_by_sla ON orders (sla_deadline IS NULL, sla_deadline, id);
CREATE INDEX orders_by_status ON orders (status, sla_deadline);

-- The compacted document (Automerge `save()` format).
CREATE TABLE order_docs (
    order_id   TEXT PRIMARY KEY REFERENCES orders (id),
    snapshot   BLOB NOT NULL
) WITHOUT ROWID;

-- Incremental changes since the snapshot (Automerge `save_after()` chunks), in order.
CREATE TABLE order_changes (
    order_id TEXT NOT NULL REFERENCES orders (id),
    seq      INTEGER NOT NULL,
    bytes    BLOB NOT NULL,
    PRIMARY KEY (order_id, seq)
) WITHOUT ROWID;
