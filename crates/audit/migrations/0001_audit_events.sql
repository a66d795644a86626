-- The audit trail. `body` is the record as hashed (canonical JSON); the other columns repeat
-- some of its fields for filtering, and verification checks that they agree with it.
-- hash = SHA-256(prev_hash || body); the first record's prev_hash is 32 zero bytes.
CREATE TABLE audit_events (
    seq BIGINT PRIMARY KEY,
    at_us BIGINT NOT NULL,
    principal TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome BIGINT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    prev_hash {{bytes}} NOT NULL,
    hash {{bytes}} NOT NULL
);
CREATE INDEX audit_events_principal ON audit_events (principal, seq);
CREATE INDEX audit_events_at ON audit_events (at_us);
