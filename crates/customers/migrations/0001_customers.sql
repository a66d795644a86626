-- Customers. Every regulated value is a sealed blob (`*_sealed`: AES-256-GCM under the
-- customer's data key); exact-match search goes through keyed blind indexes (`*_index`).
-- An erased customer keeps its row as a tombstone: id, kind, state, times; nothing personal.
CREATE TABLE customers (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    kyc_status TEXT NOT NULL,
    name_sealed {{bytes}},
    rrn_sealed {{bytes}},
    phone_sealed {{bytes}},
    address_sealed {{bytes}},
    income_sealed {{bytes}},
    employer_sealed {{bytes}},
    credit_sealed {{bytes}},
    rrn_index {{bytes}},
    phone_index {{bytes}},
    business_number TEXT,
    version BIGINT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    erased_at_us BIGINT
);
CREATE UNIQUE INDEX customers_rrn_index ON customers (rrn_index);
CREATE INDEX customers_phone_index ON customers (phone_index);
CREATE UNIQUE INDEX customers_business_number ON customers (business_number);
CREATE INDEX customers_kyc_status ON customers (kyc_status, id);

-- One data key per customer, wrapped by a master key (whose id is kept with it). Deleting
-- the row is crypto-shredding: the customer's sealed values can no longer be opened.
CREATE TABLE customer_keys (
    customer_id TEXT PRIMARY KEY,
    master_key_id TEXT NOT NULL,
    wrapped_key {{bytes}} NOT NULL,
    created_at_us BIGINT NOT NULL,
    rewrapped_at_us BIGINT
);
CREATE INDEX customer_keys_master_key ON customer_keys (master_key_id, customer_id);

CREATE TABLE kyc_history (
    seq {{id}},
    customer_id TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    actor TEXT NOT NULL,
    at_us BIGINT NOT NULL
);
CREATE INDEX kyc_history_customer ON kyc_history (customer_id, seq);

CREATE TABLE consents (
    customer_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    granted BIGINT NOT NULL,
    channel TEXT NOT NULL,
    at_us BIGINT NOT NULL,
    PRIMARY KEY (customer_id, purpose)
);

CREATE TABLE consent_history (
    seq {{id}},
    customer_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    granted BIGINT NOT NULL,
    channel TEXT NOT NULL,
    actor TEXT NOT NULL,
    at_us BIGINT NOT NULL
);
CREATE INDEX consent_history_customer ON consent_history (customer_id, seq);

-- Every unmasked read: who, which fields, why. Kept after erasure (it holds no values).
CREATE TABLE pii_access (
    seq {{id}},
    customer_id TEXT NOT NULL,
    principal TEXT NOT NULL,
    fields TEXT NOT NULL,
    purpose TEXT NOT NULL,
    trace_id TEXT,
    at_us BIGINT NOT NULL
);
CREATE INDEX pii_access_customer ON pii_access (customer_id, seq);
