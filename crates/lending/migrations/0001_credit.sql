-- Every model version ever used, exactly: a stored evaluation replays under its own.
CREATE TABLE credit_models (
    version TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at_us BIGINT NOT NULL
);

-- Evaluations: the inputs, the requested loan and the result are personal credit information,
-- so they are stored only sealed (AES-256-GCM under a data key of the evaluation's own,
-- wrapped by the vault's master key).
CREATE TABLE evaluations (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    model_version TEXT NOT NULL,
    master_key_id TEXT NOT NULL,
    wrapped_key {{bytes}} NOT NULL,
    sealed {{bytes}} NOT NULL,
    created_at_us BIGINT NOT NULL
);
CREATE INDEX evaluations_customer ON evaluations (customer_id, created_at_us);
