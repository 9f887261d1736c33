-- Auction rules: every auction ends once, with increments, a hidden reserve, proxy bids and a soft
-- close. The bid-worker (the offer's single active consumer) moves the auction state; the offers
-- service writes the terms at creation and the sale on an accept.
--
-- `status` stores live/ended/sold; "scheduled" is read off `go_live` (a live offer whose go_live is
-- still ahead), so no job has to flip it.
ALTER TABLE offers
    ADD COLUMN status text NOT NULL DEFAULT 'live' CHECK (status IN ('live', 'ended', 'sold')),
    ADD COLUMN end_reason text CHECK (end_reason IN ('accepted', 'ended', 'no_bids', 'reserve_not_met')),
    ADD COLUMN ended_at timestamptz,
    ADD COLUMN min_increment numeric(14, 2) CHECK (min_increment > 0),
    ADD COLUMN reserve_price numeric(14, 2) CHECK (reserve_price > 0),
    ADD COLUMN soft_close_seconds integer NOT NULL DEFAULT 0
        CHECK (soft_close_seconds BETWEEN 0 AND 3600),
    ADD COLUMN max_extension_seconds integer NOT NULL DEFAULT 3600
        CHECK (max_extension_seconds BETWEEN 0 AND 86400),
    ADD COLUMN hard_ends_at timestamptz,
    -- The leader: their user id and their maximum (never shown to anyone but them).
    ADD COLUMN leader_id uuid,
    ADD COLUMN leader_max_price numeric(14, 2),
    ADD COLUMN version bigint NOT NULL DEFAULT 1 CHECK (version >= 1);

-- Offers that existed before the rules: sold ones are sold (by an accept); an offer whose end has
-- passed is left live, and the closer ends it by the new rules on its first pass.
UPDATE offers SET status = 'sold', end_reason = 'accepted', ended_at = sold_at WHERE sold;
UPDATE offers SET hard_ends_at = ends_at WHERE ends_at IS NOT NULL;
UPDATE offers o SET leader_id = b.user_id, leader_max_price = b.bid_price
    FROM bids b WHERE b.id = o.highest_bid_id;
ALTER TABLE offers ADD CONSTRAINT offers_sold_is_status CHECK (sold = (status = 'sold'));

-- The closer's question, asked every second: which live offers are due?
CREATE INDEX offers_due_idx ON offers (ends_at) WHERE status = 'live' AND ends_at IS NOT NULL;
-- GET /v1/offer?status=…&created_by=…
CREATE INDEX offers_status_idx ON offers (status, go_live, id);
CREATE INDEX offers_created_by_idx ON offers (created_by, go_live, id);

-- Bids: the proxy maximum, the pending record written at intake, and the end-of-auction statuses.
ALTER TABLE bids ADD COLUMN max_price numeric(14, 2) CHECK (max_price >= bid_price);
ALTER TABLE bids DROP CONSTRAINT bids_status_check;
ALTER TABLE bids ADD CONSTRAINT bids_status_check CHECK (
    status IN ('pending', 'leading', 'outbid', 'rejected', 'superseded', 'won', 'accepted')
);
-- A pending bid has not been processed yet.
ALTER TABLE bids ALTER COLUMN processed_at DROP NOT NULL;
-- GET /v1/bid: the caller's own bids, newest first.
CREATE INDEX bids_user_idx ON bids (user_id, placed_at DESC, id);
