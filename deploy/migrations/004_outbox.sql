-- Transactional outbox: an event that must follow a database write commits with it, and a relay
-- publishes it to RabbitMQ with confirms, then deletes the row.
CREATE TABLE outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    routing_key text NOT NULL,
    body        bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
