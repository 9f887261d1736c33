-- The headers an event's contract gives it (schema version; the offer_id that hashes shard work),
-- published with the row.
ALTER TABLE outbox ADD COLUMN headers jsonb;
