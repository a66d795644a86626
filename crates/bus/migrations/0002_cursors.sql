-- Where readers of a log that is not a bus stream (the ledger's journal) have got to, so a
-- relay resumes after a restart instead of starting over.
CREATE TABLE bus_cursors (
    name TEXT PRIMARY KEY,
    position BIGINT NOT NULL
);
