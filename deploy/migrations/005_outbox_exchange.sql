-- Each outbox row names the exchange it goes to, and a relay takes only its own: deployments (or
-- test runs) with different broker prefixes can share one database without sending each other's
-- events to the wrong exchange.
ALTER TABLE outbox ADD COLUMN exchange text NOT NULL DEFAULT 'auction.events';
CREATE INDEX outbox_exchange_idx ON outbox (exchange, id);
