"""The bid-worker's own settings, read by the one configuration reader."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from auction_shared.config import read, setting


@dataclass(frozen=True)
class WorkerSettings:
    # Unacked messages the broker may push per shard; also bounds the next batch.
    prefetch: int = setting("WORKER_PREFETCH", 1000, minimum=1, maximum=65535)
    max_batch: int = setting("WORKER_MAX_BATCH", 1000, minimum=1)
    # Shard batches applied at once (each in its own transaction); the other shards gather theirs.
    concurrent_batches: int = setting("WORKER_CONCURRENT_BATCHES", 2, minimum=1, maximum=64)
    # Under load (messages waiting behind the first), how long a shard's batch may gather before it
    # is applied; a lone message is applied at once (shards.Shard.gather).
    batch_wait_ms: float = setting("WORKER_BATCH_WAIT_MS", 50.0, minimum=0, maximum=1000)
    # Names this worker on the roster and in `bids.processed_by`.
    worker_id: str = setting("WORKER_ID", f"{socket.gethostname()}:{os.getpid()}")
    # GET /health for probes on this port; off when unset.
    health_port: int | None = setting("WORKER_HEALTH_PORT", None, minimum=1, maximum=65535)
    # If set, one JSON line per committed batch (which offers and bids, when locked and committed):
    # the failover tests read it.
    audit_log: str | None = setting("WORKER_AUDIT_LOG", None)
    # An offer is closed only once the database clock is this far past its ends_at: longer than
    # intake's publish p99, so every bid received before the end is queued ahead of the close.
    end_grace_seconds: float = setting("END_GRACE_SECONDS", 2.0, minimum=0, maximum=60)
    # How often each worker looks for offers due to close (any number of workers may: a duplicate
    # close changes nothing).
    close_scan_seconds: float = setting("CLOSE_SCAN_SECONDS", 0.5, minimum=0.05, maximum=60)

    @property
    def full_batch(self) -> int:
        """The most one batch can hold: no more than max_batch, and no more than the broker lets a
        shard have unacked (a batch gathering for more than prefetch would wait out its whole wait)."""
        return min(self.max_batch, self.prefetch)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        return read(cls, env)
