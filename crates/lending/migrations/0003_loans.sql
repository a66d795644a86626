-- Loans, from the accepted offer to the last payment. Terms, balances and the collections
-- record are credit information: sealed under the loan's own data key. What operations must
-- select on is in the clear: the status, and the last business day closed.
CREATE TABLE loans (
    id TEXT PRIMARY KEY,
    application_id TEXT NOT NULL UNIQUE,
    customer_id TEXT NOT NULL,
    product_code TEXT NOT NULL,
    product_version BIGINT NOT NULL,
    account_id TEXT NOT NULL,
    contract_id TEXT,
    status TEXT NOT NULL,
    closed_through TEXT,
    version BIGINT NOT NULL,
    master_key_id TEXT NOT NULL,
    wrapped_key {{bytes}} NOT NULL,
    sealed {{bytes}} NOT NULL,
    pending {{bytes}},
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL
);
CREATE INDEX loans_status ON loans (status, id);
CREATE INDEX loans_customer ON loans (customer_id, created_at_us);

-- One row per Idempotency-Key of a step on a loan (repayment, prepayment, restructuring,
-- write-off): the request's hash, and the outcome sealed under the loan's key once known.
CREATE TABLE loan_steps (
    loan_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    status TEXT NOT NULL,
    outcome {{bytes}},
    created_at_us BIGINT NOT NULL,
    PRIMARY KEY (loan_id, idempotency_key)
);

CREATE TABLE loan_eod_runs (
    business_date TEXT PRIMARY KEY,
    started_at_us BIGINT NOT NULL,
    finished_at_us BIGINT,
    loans BIGINT NOT NULL
);
