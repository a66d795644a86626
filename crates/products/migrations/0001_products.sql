CREATE TABLE products (
    code TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL
);

-- A published or retired version never changes: contracts point at (code, version).
CREATE TABLE product_versions (
    code TEXT NOT NULL,
    version BIGINT NOT NULL,
    status TEXT NOT NULL,
    effective_from TEXT NOT NULL,
    terms TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    published_at_us BIGINT,
    retired_at_us BIGINT,
    PRIMARY KEY (code, version)
);
