-- The platform's tables, in every service's database: the transactional outbox and the
-- processed-event ledger of idempotent consumers. Written once for both backends; `{{id}}`
-- becomes the backend's auto-increment primary key.

-- Events recorded in the same transaction as the change they describe. `seq` orders them;
-- a row is published once (published_at_us set) and kept for a retention period.
CREATE TABLE outbox (
    seq {{id}},
    event_id TEXT NOT NULL UNIQUE,
    aggregate TEXT NOT NULL,
    aggregate_seq BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    envelope TEXT NOT NULL,
    recorded_at_us BIGINT NOT NULL,
    published_at_us BIGINT,
    UNIQUE (aggregate, aggregate_seq)
);

CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at_us IS NULL;

-- The last sequence number given to each aggregate's events. Bumping it takes the
-- aggregate's row lock, so two transactions that record events for one aggregate are
-- serialized, and the later one's outbox row always has the higher `seq`.
CREATE TABLE outbox_aggregates (
    aggregate TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL
);

-- Events a consumer has applied, written in the same transaction as the effects.
CREATE TABLE processed_events (
    consumer TEXT NOT NULL,
    event_id TEXT NOT NULL,
    processed_at_us BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
