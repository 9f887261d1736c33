-- Outbox rows the relay could not publish for a reason no retry cures (a body that is not an event,
-- headers the broker cannot carry): set aside here with the reason, so the rows behind them go on.
-- An operator re-inserts a repaired row into `outbox` (the relay publishes it) or deletes it.
CREATE TABLE outbox_dead (
    id          bigint PRIMARY KEY,
    exchange    text NOT NULL,
    routing_key text NOT NULL,
    body        bytea NOT NULL,
    headers     jsonb,
    reason      text NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now()
);
