-- A deposit account. Its money lives in the ledger: the account's own ledger account (id =
-- the 128-bit value of `id`) and its accrued-interest account (`interest_ledger_id`).
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    product_code TEXT NOT NULL,
    product_version BIGINT NOT NULL,
    kind TEXT NOT NULL,
    currency TEXT NOT NULL,
    rate TEXT NOT NULL,
    term_months BIGINT,
    maturity_on TEXT,
    interest_ledger_id TEXT NOT NULL,
    status TEXT NOT NULL,
    opened_on TEXT NOT NULL,
    opened_at_us BIGINT NOT NULL,
    closed_on TEXT,
    closed_at_us BIGINT,
    closing TEXT,
    accrued_through TEXT,
    month_numerator TEXT NOT NULL,
    month_accrued BIGINT NOT NULL,
    open_key TEXT,
    updated_at_us BIGINT NOT NULL
);
CREATE INDEX accounts_customer ON accounts (customer_id, id);
CREATE UNIQUE INDEX accounts_open_key ON accounts (customer_id, open_key);

-- Every money movement, by the Idempotency-Key it came with: the ledger transfer id is fixed
-- before the ledger is asked, so a retry never moves money twice.
CREATE TABLE operations (
    account_id TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request TEXT NOT NULL,
    kind TEXT NOT NULL,
    transfer_id TEXT NOT NULL,
    outcome TEXT,
    created_at_us BIGINT NOT NULL,
    PRIMARY KEY (account_id, idem_key)
);

-- One row per account and business date accrued (the end-of-day trail).
CREATE TABLE accruals (
    account_id TEXT NOT NULL,
    business_date TEXT NOT NULL,
    balance TEXT NOT NULL,
    accrued BIGINT NOT NULL,
    posted BIGINT NOT NULL,
    PRIMARY KEY (account_id, business_date)
);

CREATE TABLE eod_runs (
    business_date TEXT PRIMARY KEY,
    started_at_us BIGINT NOT NULL,
    finished_at_us BIGINT,
    accounts BIGINT NOT NULL,
    accrued TEXT NOT NULL,
    posted TEXT NOT NULL
);
