-- The threat detectors' findings, kept beyond one edge process: every replica writes its own
-- (an id derived from the kind, whom, where and when it began) and every replica lists all.
CREATE TABLE guard_findings (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    principal TEXT,
    address TEXT,
    evidence TEXT NOT NULL,
    first_seen_us BIGINT NOT NULL,
    last_seen_us BIGINT NOT NULL,
    count BIGINT NOT NULL
);
CREATE INDEX guard_findings_first ON guard_findings (first_seen_us, id);
