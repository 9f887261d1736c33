"""A RabbitMQ user per service with only the permissions its job needs; `python -m` sets them up.

Each permission is three regular expressions over the names of exchanges and queues (configure:
declare or delete; write: publish to, or bind a queue/exchange *to* it; read: consume, or bind
*from* it), all under the deployment's prefix (`auction.` by default). The auth service uses no
broker. Set up through the management API with an administrator's login (compose's one-shot
`broker-users`, the Kubernetes Job of the same name, and `make run` on the local broker).
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp
from yarl import URL

from .config import read, setting
from .outages import BROKER_ADMIN_FAILED


@dataclass(frozen=True)
class Permission:
    configure: str
    write: str
    read: str


# The services that talk to the broker.
SERVICES = ("offers", "bids", "gateway", "bid-worker")


def user_name(service: str, prefix: str) -> str:
    return f"{prefix}_{service.replace('-', '_')}"


def permissions(prefix: str) -> dict[str, Permission]:
    """What each service may do on the names of `prefix` (see broker.Topology for the names)."""
    p = re.escape(prefix)

    def only(*names: str) -> str:
        return rf"^{p}\.({'|'.join(names)})$"

    shards = r"bids\.shard\.\d+"
    # Declaring the shard queues (quorum, dead-lettering to dlx) needs configure and read on them and
    # write on dlx; binding needs write on the destination and read on the source. So intake, which
    # declares the pipeline before its first publish, could also consume a shard: RabbitMQ has no
    # permission that tells the two apart. It has no read on the dead-letter queue.
    pipeline = Permission(
        configure=only("events", "bids", "dlx", "dead", shards),
        write=only("events", "bids", "dlx", "dead", shards),
        read=only("events", "bids", "dlx", shards),
    )
    # The worker's heartbeat queue is exclusive to its connection and named by aio-pika (amq_<hex>).
    heartbeat = r"amq_[0-9a-f]+"
    gateway_queue = r"gateway\.[0-9a-f]+"
    return {
        # The outbox relay publishes offer events.
        "offers": Permission(configure=only("events"), write=only("events"), read="^$"),
        # Intake declares the pipeline (so a bid is never published before its queues exist) and
        # publishes bid.placed.
        "bids": pipeline,
        # Its own queue of offer.* events.
        "gateway": Permission(
            configure=only("events", gateway_queue),
            write=only(gateway_queue),
            read=only("events", gateway_queue),
        ),
        # Consumes the shards, publishes offer.updated, dead-letters, announces itself on workers.
        "bid-worker": Permission(
            configure=rf"^({p}\.(events|bids|dlx|dead|workers|{shards})|{heartbeat})$",
            write=rf"^({p}\.(events|bids|dlx|dead|workers|{shards})|{heartbeat})$",
            read=rf"^({p}\.(events|bids|dlx|dead|workers|{shards})|{heartbeat})$",
        ),
    }


@dataclass(frozen=True)
class BrokerUserSettings:
    """What `python -m auction_shared.broker_users` reads."""

    management_url: str = setting("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672")
    admin_user: str = setting("RABBITMQ_ADMIN_USER", "guest")
    admin_password: str = setting("RABBITMQ_ADMIN_PASSWORD", "guest", secret=True)
    vhost: str = setting("RABBITMQ_VHOST", "/")
    prefix: str = setting("AMQP_PREFIX", "auction")
    offers_password: str = setting("OFFERS_AMQP_PASSWORD", "", secret=True)
    bids_password: str = setting("BIDS_AMQP_PASSWORD", "", secret=True)
    gateway_password: str = setting("GATEWAY_AMQP_PASSWORD", "", secret=True)
    bid_worker_password: str = setting("BID_WORKER_AMQP_PASSWORD", "", secret=True)

    @property
    def passwords(self) -> dict[str, str]:
        return {
            "offers": self.offers_password,
            "bids": self.bids_password,
            "gateway": self.gateway_password,
            "bid-worker": self.bid_worker_password,
        }


class ManagementApi:
    """The few calls of RabbitMQ's management HTTP API this needs."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base = base_url.rstrip("/")

    async def put(self, *path: str, body: Mapping[str, str]) -> None:
        # Each path segment quoted whole: the default vhost "/" must travel as %2F.
        url = URL(self._base + "/api/" + "/".join(quote(part, safe="") for part in path), encoded=True)
        async with self._session.put(url, json=dict(body)) as resp:
            if resp.status not in (200, 201, 204):
                raise RuntimeError(f"PUT /api/{'/'.join(path)}: {resp.status} {await resp.text()}")

    async def delete(self, *path: str) -> None:
        url = URL(self._base + "/api/" + "/".join(quote(part, safe="") for part in path), encoded=True)
        async with self._session.delete(url) as resp:
            if resp.status not in (200, 204, 404):
                raise RuntimeError(f"removing /api/{'/'.join(path)}: {resp.status} {await resp.text()}")


def management_session(admin_user: str, admin_password: str, timeout: float = 10.0) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        headers={"Authorization": aiohttp.encode_basic_auth(admin_user, admin_password)},
        timeout=aiohttp.ClientTimeout(total=timeout),
    )


async def apply_users(
    api: ManagementApi, prefix: str, passwords: Mapping[str, str], vhost: str = "/"
) -> dict[str, str]:
    """Create (or update) every service's user with its password and exactly its permissions on
    `vhost`. Returns service -> user name."""
    missing = [s for s in SERVICES if not passwords.get(s)]
    if missing:
        raise ValueError(f"no broker password for {', '.join(missing)}")
    users = {}
    for service, permission in permissions(prefix).items():
        name = user_name(service, prefix)
        await api.put("users", name, body={"password": passwords[service], "tags": ""})
        await api.put(
            "permissions",
            vhost,
            name,
            body={"configure": permission.configure, "write": permission.write, "read": permission.read},
        )
        users[service] = name
    return users


async def main() -> int:
    settings = read(BrokerUserSettings)
    try:
        async with management_session(settings.admin_user, settings.admin_password) as session:
            users = await apply_users(
                ManagementApi(session, settings.management_url),
                settings.prefix,
                settings.passwords,
                settings.vhost,
            )
    except BROKER_ADMIN_FAILED + (ValueError,) as exc:  # ValueError: a password is missing
        print(f"cannot set up the broker users at {settings.management_url}: {exc}", file=sys.stderr)
        return 1
    print(f"broker users {', '.join(users.values())} have their permissions on vhost {settings.vhost!r}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
