"""The optional audit file (WORKER_AUDIT_LOG): one JSON line per committed batch, written off the loop.

The failover tests read it to prove that two workers never held one offer at once. Writing a file
blocks, so lines go through a queue to one writer thread, which keeps them in commit order.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Sequence


class AuditLog:
    """Appends batch lines to `path` from a thread of its own; `close()` writes what is left."""

    def __init__(self, path: str, worker_id: str) -> None:
        self._path = path
        self._worker_id = worker_id
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="audit-log", daemon=True)
        self._thread.start()

    def batch(self, locked_at: float, bids: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> None:
        """Record a committed batch: when its offers were locked, now (the commit), its (offer, bid)s."""
        line = {
            "worker": self._worker_id,
            "locked_at": locked_at,
            "committed_at": time.time(),
            "bids": [[str(offer_id), str(bid_id)] for offer_id, bid_id in bids],
        }
        self._lines.put(json.dumps(line) + "\n")

    def _write(self) -> None:
        with open(self._path, "a") as f:
            while (line := self._lines.get()) is not None:
                f.write(line)
                f.flush()

    def close(self) -> None:
        """Flush every line queued so far and stop the thread (blocks briefly: call at shutdown)."""
        self._lines.put(None)
        self._thread.join(timeout=5)
