"""The bids service: bid intake onto RabbitMQ, and bid reads. Writes `bid_requests` and each bid's pending row."""
