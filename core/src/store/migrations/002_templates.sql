-- 002: checklist templates published to this device (built-ins are compiled in). Versions are
-- only ever added: an order pinned to an old version keeps it.
CREATE TABLE templates (
    id           TEXT NOT NULL,
    version      INTEGER NOT NULL,
    sha256       TEXT NOT NULL,
    source       TEXT NOT NULL,
    published_at INTEGER NOT NULL,
    PRIMARY KEY (id, version)
) WITHOUT ROWID;
