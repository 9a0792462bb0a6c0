-- 004: signed receipts. One row per revision; a row is never updated or deleted.
CREATE TABLE receipts (
    order_id       TEXT NOT NULL,
    revision       INTEGER NOT NULL,
    sha256         TEXT NOT NULL,          -- of `canonical`
    canonical      BLOB NOT NULL,          -- RFC 8785 JSON exactly as hashed
    strokes        BLOB,                   -- OSS1 signature strokes; NULL when refused
    strokes_sha256 TEXT,
    message        BLOB NOT NULL,          -- canonical signing message
    signature      BLOB NOT NULL,          -- ES256 r||s over `message`
    journal_seq    INTEGER NOT NULL,       -- the receipt_signed entry
    signed_at      INTEGER NOT NULL,
    PRIMARY KEY (order_id, revision)
) WITHOUT ROWID;

-- A receipt row cannot change once written.
CREATE TRIGGER receipts_immutable BEFORE UPDATE ON receipts
BEGIN
    SELECT RAISE(ABORT, 'signed receipts are immutable');
END;
CREATE TRIGGER receipts_undeletable BEFORE DELETE ON receipts
BEGIN
    SELECT RAISE(ABORT, 'signed receipts are never deleted');
END;
