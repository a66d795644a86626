-- Pruning removes a stream's messages older than its maximum age; this index finds them
-- without reading the whole log.
CREATE INDEX bus_messages_by_age ON bus_messages (stream, stored_at_us);
