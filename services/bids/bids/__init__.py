"""The bids service: bid intake onto RabbitMQ, and bid reads. Writes only `bid_requests`."""
