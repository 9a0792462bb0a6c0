-- 006: the spare-part ledger, and certifications received from the provider.

-- Every part movement this device knows: its own (origin 'local', each sealed by a journal
-- entry) and the clerk's or other devices' (origin 'remote', merged in by sync). Append-only:
-- only `synced` may change, from 0 to 1.
CREATE TABLE part_movements (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    body        TEXT NOT NULL,             -- the movement, JSON
    order_id    TEXT,
    step        TEXT,                      -- the checklist step that recorded it, if any
    origin      TEXT NOT NULL CHECK (origin IN ('local', 'remote')),
    journal_seq INTEGER,
    synced      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX part_movements_unsynced ON part_movements (synced) WHERE synced = 0;
CREATE INDEX part_movements_order ON part_movements (order_id, step);
CREATE TRIGGER part_movements_no_delete BEFORE DELETE ON part_movements
BEGIN SELECT RAISE(ABORT, 'part movements are append-only'); END;
CREATE TRIGGER part_movements_no_update BEFORE UPDATE ON part_movements
WHEN NEW.id IS NOT OLD.id OR NEW.body IS NOT OLD.body OR NEW.order_id IS NOT OLD.order_id OR NEW.step IS NOT OLD.step
  OR NEW.origin IS NOT OLD.origin OR NEW.journal_seq IS NOT OLD.journal_seq OR NEW.synced < OLD.synced
BEGIN SELECT RAISE(ABORT, 'part movements are append-only'); END;

-- Certification levels (seed 001) the provider issued to this engineer, as signed by the
-- provider's log key; kept verbatim so a service record can carry them.
CREATE TABLE certifications (
    id          TEXT PRIMARY KEY,
    body        TEXT NOT NULL,             -- canonical JSON, as signed
    signature   TEXT NOT NULL,             -- hex
    received_at INTEGER NOT NULL
) WITHOUT ROWID;
