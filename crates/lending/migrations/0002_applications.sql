-- Loan applications: the decision and the terms are credit information, sealed like
-- evaluations; the status is in the clear so a loan officer's queue can be listed.
CREATE TABLE applications (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    product_code TEXT NOT NULL,
    product_version BIGINT NOT NULL,
    evaluation_id TEXT NOT NULL,
    status TEXT NOT NULL,
    master_key_id TEXT NOT NULL,
    wrapped_key {{bytes}} NOT NULL,
    sealed {{bytes}} NOT NULL,
    decided_by TEXT,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL
);
CREATE INDEX applications_status ON applications (status, created_at_us);
CREATE INDEX applications_customer ON applications (customer_id, created_at_us);
