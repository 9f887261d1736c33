"""The bid-worker: applies queued bids to offers, one shard at a time, exactly once."""
