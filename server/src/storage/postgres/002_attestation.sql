-- The key attestation's verdict (JSON) kept with each device (docs/adr/0019).
ALTER TABLE devices ADD COLUMN attestation TEXT;
