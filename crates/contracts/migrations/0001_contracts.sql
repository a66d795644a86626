-- A contract: what was agreed (a snapshot of the product version's terms and the particulars),
-- the document in object storage and its SHA-256, and where it stands.
CREATE TABLE contracts (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    product_code TEXT NOT NULL,
    product_version BIGINT NOT NULL,
    subject TEXT,
    particulars TEXT NOT NULL,
    status TEXT NOT NULL,
    document_key TEXT NOT NULL,
    document_sha256 TEXT NOT NULL,
    document_bytes BIGINT NOT NULL,
    issued_on TEXT NOT NULL,
    issued_at_us BIGINT NOT NULL,
    signed_at_us BIGINT,
    cancelled_at_us BIGINT,
    updated_at_us BIGINT NOT NULL
);
CREATE INDEX contracts_customer ON contracts (customer_id, issued_at_us);
CREATE INDEX contracts_product ON contracts (product_code, issued_at_us);
CREATE INDEX contracts_status ON contracts (status, issued_at_us);
CREATE INDEX contracts_issued ON contracts (issued_on, id);

-- Every signature: who, in which role, when, from where, and the hash of the document they
-- signed (always the stored document's).
CREATE TABLE signatures (
    contract_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    role TEXT NOT NULL,
    signer TEXT NOT NULL,
    method TEXT NOT NULL,
    signed_at_us BIGINT NOT NULL,
    client_address TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    document_sha256 TEXT NOT NULL,
    PRIMARY KEY (contract_id, seq)
);
