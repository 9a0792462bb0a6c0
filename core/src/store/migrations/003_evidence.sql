-- 003: the signed operation log, evidence photos and trusted blobs.
CREATE TABLE journal (
    seq       INTEGER PRIMARY KEY,         -- 1, 2, 3... no gaps
    order_id  TEXT,
    kind      TEXT NOT NULL,
    body      BLOB NOT NULL,               -- canonical JSON exactly as hashed and signed
    hash      TEXT NOT NULL,               -- SHA-256 of body, hex
    signature BLOB NOT NULL                -- ES256 r||s
);
CREATE INDEX journal_by_order ON journal (order_id, seq);

CREATE TABLE photos (
    order_id     TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    step         TEXT,
    phash        INTEGER,                  -- 64-bit dHash, bit-cast to i64
    format       TEXT NOT NULL,
    width        INTEGER,
    height       INTEGER,
    size         INTEGER NOT NULL,
    exif         TEXT NOT NULL,            -- JSON
    thumb_sha256 TEXT,
    problems     TEXT NOT NULL,            -- JSON array
    ingested_at  INTEGER NOT NULL,
    journal_seq  INTEGER NOT NULL,
    PRIMARY KEY (order_id, sha256)
) WITHOUT ROWID;
CREATE INDEX photos_by_sha ON photos (sha256);

-- Blobs whose bytes were hashed and found correct; others are re-hashed before use.
CREATE TABLE blobs (
    sha256      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    verified_at INTEGER NOT NULL
) WITHOUT ROWID;
