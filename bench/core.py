"""
The chat core alone, no wire: how many visitor messages per second it
stores (committed before the ack) and relays to the agent, and the latency
from send to the agent's delivery.

    python bench/core.py                       # sqlite in a temp dir
    python bench/core.py --database mysql://root@127.0.0.1:3306/ --seconds 10
    python bench/core.py --chats 200 --window 1

C{--chats} chats between visitors and operators (C{--operators} of them)
are opened first; then every visitor keeps C{--window} messages in flight
(sends the next one when one is acknowledged) for C{--seconds}.  Prints
messages/s stored and relayed, and p50/p99 of send -> agent delivery.
It measures the core and the store, which every wire (IWCS, WebSocket,
SSE, connector) shares: a wire can only be slower.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from typing import Any

from twisted.internet import defer, task

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from livechat.bus.memory import MemoryBus  # noqa: E402
from livechat.core.hub import Core, CoreSettings  # noqa: E402
from livechat.core.routing import MemoryRouter  # noqa: E402
from livechat.model import AccountType, Licence, Operator, OperatorStatus  # noqa: E402
from livechat.notify import RecordingNotifier  # noqa: E402
from livechat.storage import SqlStore  # noqa: E402


class Channel:
    """Counts the messages it is given; the operator's side answers offers."""

    def __init__(self, bench: Bench, operator: bool) -> None:
        self.bench = bench
        self.operator = operator
        self.session: Any = None

    def deliver(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if self.operator and kind == "chat.offered":
            self.bench.offered(self.session, message["chatId"])
        elif self.operator and kind == "chat.event":
            event = message.get("event", {})
            if event.get("type") == "ContentEvent":
                self.bench.received(event.get("message", ""))

    def close(self, reason: str) -> None:
        pass


class Bench:
    def __init__(self, reactor: Any, args: argparse.Namespace) -> None:
        self.reactor = reactor
        self.args = args
        self.latencies: list[float] = []
        self.sentAt: dict[str, float] = {}
        self.acked = 0
        self.relayed = 0
        self.running = False
        self.accepting: list[defer.Deferred[Any]] = []

    def offered(self, session: Any, chatId: int) -> None:
        self.accepting.append(session.accept(chatId))

    def received(self, text: str) -> None:
        started = self.sentAt.pop(text, None)
        if started is not None and self.running:
            self.relayed += 1
            self.latencies.append(time.perf_counter() - started)

    async def run(self) -> None:
        args = self.args
        tmp = None
        url = args.database
        if not url:
            tmp = tempfile.mkdtemp(prefix="lcbench-")
            url = "sqlite:///" + tmp.lstrip("/") + "/db_livechat.sqlite3"
        elif url.startswith("mysql"):
            sep = "&" if "?" in url else "?"
            url = url.rstrip("/") + "/" + sep + f"prefix=bench{os.getpid()}_"
        store = SqlStore(url, self.reactor)
        await store.open()
        try:
            await self._run(store)
        finally:
            await store.close()
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
            if url.startswith("mysql"):
                await self._dropMysql(url)

    async def _dropMysql(self, url: str) -> None:
        from twisted.internet import threads

        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from tests.support.db import _dropDatabases

        await threads.deferToThread(_dropDatabases, self.args.database, f"bench{os.getpid()}_")

    async def _run(self, store: SqlStore) -> None:
        args = self.args
        settings = CoreSettings(maxChatsDefault=args.chats)
        core = Core(
            store,
            MemoryBus(),
            MemoryRouter(self.reactor),
            RecordingNotifier(),
            self.reactor,
            settings,
        )
        core.start()
        licence = await store.createLicence(Licence(number=100))
        operators = []
        for n in range(args.operators):
            op = await store.createOperator(
                100,
                Operator(
                    id=0,
                    licence=0,
                    nick=f"op{n}",
                    operator_id=f"op{n}@example.com",
                    account_type=AccountType.CONTACT_CENTER,
                    max_chats=args.chats,
                ),
                "x",
            )
            channel = Channel(self, operator=True)
            session = core.connectOperator(licence, op, channel, client="bench")
            channel.session = session
            await session.start({}, OperatorStatus.ONLINE)
            operators.append(session)
        visitors = []
        for n in range(args.chats):
            session = core.connectVisitor(
                100, f"visitor-{n:06d}", Channel(self, False), address="127.0.0.1"
            )
            await session.pageView(url="https://shop.example/", title="Shop")
            await session.start({})
            chatId = await session.requestChat(name=f"V{n}", message="hello")
            visitors.append((session, chatId))
        while len(self.accepting) < args.chats:
            await task.deferLater(self.reactor, 0.01, lambda: None)
        await defer.gatherResults(self.accepting)

        self.running = True
        counter = iter(range(10**12))
        stop = time.perf_counter() + args.seconds

        async def loop(session: Any, chatId: int) -> None:
            while time.perf_counter() < stop:
                text = f"m{next(counter)}"
                self.sentAt[text] = time.perf_counter()
                await session.send(chatId, text)
                self.acked += 1

        started = time.perf_counter()
        cpu0 = time.process_time()
        await defer.gatherResults(
            [defer.ensureDeferred(loop(s, c)) for s, c in visitors for _ in range(args.window)]
        )
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu0
        self.running = False
        core.stop()
        lat = sorted(self.latencies)

        def pct(p: float) -> float:
            return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"core bench: {args.chats} chats, window {args.window}, {args.operators} operators, "
            f"{store.dialect}"
        )
        print(
            f"  stored+acked: {self.acked / elapsed:,.0f} msgs/s ({self.acked} in {elapsed:.1f} s)"
        )
        print(f"  relayed:      {self.relayed / elapsed:,.0f} msgs/s")
        print(
            f"  CPU: {cpu / max(1, self.acked) * 1e6:.0f} us per message "
            f"({cpu / elapsed:.2f} CPUs busy)"
        )
        print(f"  send -> agent latency: p50 {pct(0.5):.2f} ms, p99 {pct(0.99):.2f} ms")
        print(
            f"  max RSS {rss:.0f} MiB; {platform.python_implementation()} "
            f"{platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="", help="a mysql:// URL (default: sqlite, temp)")
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--operators", type=int, default=5)
    parser.add_argument("--window", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    def run(reactor: Any) -> defer.Deferred[None]:
        return defer.ensureDeferred(Bench(reactor, args).run())

    task.react(run)


if __name__ == "__main__":
    main()
