-- The blocks the automatic response to findings put in force, kept beyond one edge process:
-- every replica writes the blocks it begins or extends and enforces every replica's; lifting a
-- block deletes its row. Rows past `until_us` are swept.
CREATE TABLE guard_blocks (
    subject TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    since_us BIGINT NOT NULL,
    until_us BIGINT NOT NULL
);
