-- Idempotency-Keys are kept for a retention period (24 hours, bids/store.py) and then deleted by the
-- bids service: this index lets it find the expired ones without reading the whole table.
CREATE INDEX bid_requests_created_idx ON bid_requests (created_at);
