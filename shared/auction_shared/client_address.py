"""The client's address behind a known number of trusted reverse proxies (X-Forwarded-For)."""

from __future__ import annotations

from aiohttp import web


def client_address(request: web.Request, trusted_hops: int) -> str:
    """The address the outermost of the `trusted_hops` nearest proxies saw the request come from.

    Each proxy appends the address it saw to X-Forwarded-For, so the last `trusted_hops` entries were
    written by proxies we trust and anything left of them by whoever sent the request: a client can
    prepend what it likes, never replace those. 0 trusts no header at all. This holds only if the
    gateway cannot be reached past those proxies (in Kubernetes: its NetworkPolicy)."""
    if trusted_hops > 0:
        entries = [e.strip() for h in request.headers.getall("X-Forwarded-For", []) for e in h.split(",")]
        entries = [e for e in entries if e]
        if entries:
            # Fewer entries than hops: a proxy was left out; take the outermost entry there is.
            return entries[-min(trusted_hops, len(entries))]
    return request.remote or "unknown"
