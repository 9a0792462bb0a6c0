-- Opening a store looks up entries by kind (consents still to countersign, their
-- countersignatures): an index instead of a scan of the whole journal, which on an encrypted
-- store meant decrypting every page of it on every open (docs/adr/0018).
CREATE INDEX journal_by_kind ON journal (kind, seq);
