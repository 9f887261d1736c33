-- What the bid-worker needs to apply the price formula across batches: the best maximum among the
-- bidders other than the leader (S in the formula), and each bidder's standing bid on an offer.
ALTER TABLE offers ADD COLUMN runner_up_max_price numeric(14, 2);

-- Offers bid on before the rules: the best other bidder is the highest bid of anyone but the leader.
UPDATE offers o SET runner_up_max_price = s.best
    FROM (
        SELECT b.offer_id, max(coalesce(b.max_price, b.bid_price)) AS best
        FROM bids b JOIN offers x ON x.id = b.offer_id
        WHERE b.status IN ('leading', 'outbid') AND b.user_id IS DISTINCT FROM x.leader_id
        GROUP BY b.offer_id
    ) s
    WHERE s.offer_id = o.id;

-- A bidder's standing bid (the one a new bid of theirs supersedes), looked up per batch.
CREATE INDEX bids_standing_idx ON bids (offer_id, user_id) WHERE status IN ('leading', 'outbid');
