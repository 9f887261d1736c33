-- Idempotency-Keys are kept for a retention period (24 hours, bids/store.py) and then deleted by the
-- bids service: this index lets it find the expired ones without reading the whole table.
CREATE INDEX bid_requests_created_idx ON bid_requests (created_at);

-- GET /v1/offer?created_by=NAME matches the seller's name in any case, as usernames are unique in
-- any case (migration 008).
DROP INDEX IF EXISTS offers_created_by_idx;
CREATE INDEX offers_created_by_idx ON offers (lower(created_by), go_live, id);
