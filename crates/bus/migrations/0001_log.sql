-- The embedded bus: a message log per stream and durable consumers with their in-flight
-- deliveries, in one SQLite file. Mirrors what JetStream keeps for a stream and its
-- consumers, so both buses pass the same contract tests.

CREATE TABLE bus_streams (
    name TEXT PRIMARY KEY,
    subjects TEXT NOT NULL,
    duplicate_window_us BIGINT NOT NULL,
    max_age_us BIGINT NOT NULL
);

-- With one writer connection, `seq` is assigned in commit order: a consumer's cursor can
-- never pass a message that commits later with a lower number.
CREATE TABLE bus_messages (
    seq {{id}},
    stream TEXT NOT NULL,
    subject TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    stored_at_us BIGINT NOT NULL
);
CREATE INDEX bus_messages_by_stream ON bus_messages (stream, seq);
CREATE INDEX bus_messages_by_msg_id ON bus_messages (stream, msg_id);

CREATE TABLE bus_consumers (
    stream TEXT NOT NULL,
    name TEXT NOT NULL,
    filter_subject TEXT NOT NULL,
    delivered_seq BIGINT NOT NULL,
    PRIMARY KEY (stream, name)
);

-- Delivered and not yet acknowledged: redelivered when `due_at_us` passes (ack wait, or the
-- delay of a negative acknowledgement).
CREATE TABLE bus_pending (
    stream TEXT NOT NULL,
    consumer TEXT NOT NULL,
    seq BIGINT NOT NULL,
    deliveries BIGINT NOT NULL,
    due_at_us BIGINT NOT NULL,
    PRIMARY KEY (stream, consumer, seq)
);
