"""A client process holding many authenticated WebSocket sockets, timing each `offerCreated`.

`python -m bench.listeners URL COUNT` with BENCH_TOKENS=tok1,tok2,... in the environment. It prints
`ready N` once every socket is authenticated, `done <offer id>` once every open socket of it has
received that offer, and on the line `report` from stdin, one JSON line with every receive time
(time.monotonic(), which is one clock for every process of the machine), then exits.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import defaultdict

import aiohttp
import orjson

CONNECTING_AT_ONCE = 100


class Listeners:
    def __init__(self, url: str, count: int, tokens: list[str]) -> None:
        self.url = url
        self.count = count
        self.tokens = tokens
        self.received: dict[str, list[float]] = defaultdict(list)
        self.open = 0
        self.closed = 0
        self.errors: list[str] = []

    async def listen(
        self,
        session: aiohttp.ClientSession,
        index: int,
        ready: asyncio.Semaphore,
        authenticated: asyncio.Queue[bool],
    ) -> None:
        async with ready:
            try:
                ws = await session.ws_connect(self.url, autoping=True, max_msg_size=0)
                await ws.send_str(
                    orjson.dumps(
                        {"event": "authenticate", "token": self.tokens[index % len(self.tokens)]}
                    ).decode()
                )
                first = await ws.receive(timeout=60)
                ok = (
                    first.type is aiohttp.WSMsgType.TEXT
                    and orjson.loads(first.data).get("event") == "authenticated"
                )
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                self.errors.append(repr(exc)[:200])
                authenticated.put_nowait(False)
                return
        if not ok:
            self.errors.append(f"not authenticated: {first.data!r}"[:200])
            authenticated.put_nowait(False)
            await ws.close()
            return
        self.open += 1
        authenticated.put_nowait(True)
        async for message in ws:
            at = time.monotonic()
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            frame = orjson.loads(message.data)
            if frame.get("event") == "offerCreated":
                offer_id = frame["data"]["id"]
                times = self.received[offer_id]
                times.append(at)
                if len(times) == self.open:
                    print(f"done {offer_id}", flush=True)
        self.open -= 1
        self.closed += 1
        self.errors.append(f"socket closed by the server: {ws.close_code}")

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            ready = asyncio.Semaphore(CONNECTING_AT_ONCE)
            authenticated: asyncio.Queue[bool] = asyncio.Queue()
            tasks = [
                asyncio.create_task(self.listen(session, i, ready, authenticated)) for i in range(self.count)
            ]
            oks = [await authenticated.get() for _ in range(self.count)]
            print(f"ready {sum(oks)}", flush=True)
            await asyncio.to_thread(self.wait_for_report)
            print(
                orjson.dumps(
                    {"received": self.received, "closed": self.closed, "errors": self.errors[:20]}
                ).decode(),
                flush=True,
            )
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    def wait_for_report() -> None:
        for line in sys.stdin:
            if line.strip() == "report":
                return


def main() -> None:
    url, count = sys.argv[1], int(sys.argv[2])
    tokens = [t for t in os.environ.get("BENCH_TOKENS", "").split(",") if t]
    import uvloop

    uvloop.install()
    asyncio.run(Listeners(url, count, tokens or ["-"]).run())


if __name__ == "__main__":
    main()
