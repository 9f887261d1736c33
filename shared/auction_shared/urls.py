"""Connection URLs that log in as another user (a service's own database role or broker user)."""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit


def with_login(url: str, user: str, password: str | None = None) -> str:
    """`url` logging in as `user` (with `password`, if given) on the same host, port and path."""
    parts = urlsplit(url)
    login = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    return urlunsplit(parts._replace(netloc=f"{login}@{host}" + (f":{parts.port}" if parts.port else "")))
