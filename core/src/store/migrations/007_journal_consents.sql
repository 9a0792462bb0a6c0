-- Opening a store looks up consents still to countersign and their countersignatures: a
-- partial index over those two kinds only (ordinary edits add nothing to it), instead of a
-- scan of the whole journal, which on an encrypted store meant decrypting every page of it
-- on every open (docs/adr/0018). Queries name the kinds literally so the planner can use it.
CREATE INDEX journal_consents ON journal (kind, seq) WHERE kind = 'consent' OR kind = 'countersign';
