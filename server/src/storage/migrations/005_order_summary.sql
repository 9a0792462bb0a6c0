-- The console's board reads one row per order (docs/adr/0021): the order's summary as JSON
-- (core's OrderSummary: customer, site, equipment, appointment window, the next SLA deadline),
-- written with every change like the other columns. Rows from before this migration hold ''
-- until their next change; readers then compute the summary from the document.
ALTER TABLE orders ADD COLUMN summary TEXT NOT NULL DEFAULT '';

-- The console's order page reads the order's photo entries (EXIF time, reuse). Only photo
-- rows are indexed, so the journal upload (about 50 rows per order) pays nothing for it.
CREATE INDEX journal_photos_by_order ON journal (order_id, device_id, seq) WHERE kind = 'photo';

-- When the server last heard from each device (the console's device list), written at most
-- once a minute per device.
ALTER TABLE devices ADD COLUMN last_seen_ms BIGINT;
