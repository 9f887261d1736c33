-- Offers (auctions). Created and sold by the offers service; the bid-worker alone moves the
-- highest bid (bid_price, highest_bid_id, highest_bidder, bid_count).
CREATE TABLE offers (
    id             uuid PRIMARY KEY,
    title          text NOT NULL,
    photo_url      text NOT NULL DEFAULT '',
    start_price    numeric(14, 2) NOT NULL CHECK (start_price > 0),
    bid_price      numeric(14, 2) NOT NULL CHECK (bid_price > 0),
    go_live        timestamptz NOT NULL,
    lifetime       integer NOT NULL DEFAULT 0 CHECK (lifetime >= 0),
    ends_at        timestamptz,
    created_by_id  uuid NOT NULL,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    sold           boolean NOT NULL DEFAULT false,
    sold_at        timestamptz,
    highest_bid_id uuid,
    highest_bidder text,
    bid_count      integer NOT NULL DEFAULT 0
);

-- One index per sort key of GET /v1/offer; id breaks ties so pages never overlap or skip.
CREATE INDEX offers_go_live_idx    ON offers (go_live, id);
CREATE INDEX offers_bid_price_idx  ON offers (bid_price, id);
CREATE INDEX offers_title_idx      ON offers (title, id);
CREATE INDEX offers_created_at_idx ON offers (created_at, id);
