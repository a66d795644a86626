-- API keys. The secret is never stored: `hash` is SHA-256 of the whole key as sent.
-- A key is never deleted: a revoked one keeps its row, so the audit trail can name it.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    roles TEXT NOT NULL,
    hash {{bytes}} NOT NULL,
    created_by TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    expires_at_us BIGINT,
    revoked_at_us BIGINT,
    revoked_by TEXT,
    bootstrap BIGINT NOT NULL
);
