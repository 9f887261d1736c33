-- Bids as the bid-worker applied them, in the order it applied them (seq). Written by the
-- bid-worker; the offers service sets `accepted` when the owner sells.
CREATE TABLE bids (
    id           uuid PRIMARY KEY,
    offer_id     uuid NOT NULL REFERENCES offers (id),
    user_id      uuid NOT NULL,
    username     text NOT NULL,
    bid_price    numeric(14, 2) NOT NULL CHECK (bid_price > 0),
    placed_at    timestamptz NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    status       text NOT NULL CHECK (status IN ('leading', 'outbid', 'rejected', 'accepted')),
    reason       text CHECK (reason IN ('too_low', 'offer_closed', 'not_live')),
    accepted     boolean NOT NULL DEFAULT false
);

-- GET /v1/offer/{id}/bids: highest first, the earlier of equal bids first.
CREATE INDEX bids_offer_price_idx ON bids (offer_id, bid_price DESC, seq);

-- Idempotency-Key of POST /v1/bid: a retry with the same key and user gets the first bid back.
-- Written by the bids service.
CREATE TABLE bid_requests (
    user_id         uuid NOT NULL,
    idempotency_key text NOT NULL,
    bid             jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, idempotency_key)
);

-- Which worker applied a bid (host:pid), for operators and the failover tests.
ALTER TABLE bids ADD COLUMN processed_by text NOT NULL DEFAULT '';
