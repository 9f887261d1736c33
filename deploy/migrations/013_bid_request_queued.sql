-- An Idempotency-Key notes when the broker confirmed its bid, so a replay publishes the bid again only
-- when that is not known (intake now records a bid pending before it publishes it, so a pending row
-- no longer says the bid was queued). Keys from before this migration read as "not known": a replay
-- of one publishes its bid once more, which the worker drops as a duplicate id.
ALTER TABLE bid_requests ADD COLUMN queued boolean NOT NULL DEFAULT false;
