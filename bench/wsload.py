"""
WebSocket load for bench/web.py (Twisted + Autobahn clients, one process):

    python bench/wsload.py idle URL ORIGIN SECRET N
        N visitors connect (hello, welcome) and stay idle; prints
        "connected N in S s", then waits until stdin closes.
    python bench/wsload.py relay URL ORIGIN SECRET VISITORS COUNT WINDOW [NAME]
        each visitor asks for a chat, then sends COUNT/VISITORS messages,
        WINDOW unanswered at a time; prints the rate of stored messages.
        NAME (default "") tells this run's visitors from another run's.
    python bench/wsload.py echo URL COUNT WINDOW VISITORS
        the same traffic to a raw echo server; prints the echo rate.

URL is ws://127.0.0.1:PORT/ws(?licence=N).  The tokens are made with the
node's SESSION_SECRET, as the node itself would make them.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, reactor, stdio, task
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Protocol

from livechat.visitortoken import VisitorTokens

TEXT = "Hello, I have a question about my order number 12345, can you help me?"


class Client(WebSocketClientProtocol):
    def __init__(self) -> None:
        super().__init__()
        self.opened: defer.Deferred[Client] = defer.Deferred()
        self.waiting: dict[str, defer.Deferred[Any]] = {}
        self.onEvent: Any = None
        self.n = 0

    def onOpen(self) -> None:
        self.opened.callback(self)

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        if not self.opened.called:
            self.opened.errback(ConnectionError(f"{code} {reason}"))

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.onEvent is not None and self.onEvent(payload):
            return
        message = json.loads(payload)
        d = self.waiting.pop(str(message.get("id")), None)
        if d is not None:
            d.callback(message)
        elif (
            message.get("type") == "chat.event"
            and message["event"]["type"] == "JoinEvent"
            and "join" in self.waiting
        ):
            self.waiting.pop("join").callback(message)

    def ask(self, kind: str, **fields: Any) -> defer.Deferred[Any]:
        self.n += 1
        key = str(self.n)
        d: defer.Deferred[Any] = defer.Deferred()
        self.waiting[key] = d
        self.sendMessage(json.dumps({"type": kind, "id": key, **fields}).encode())
        return d


def connect(url: str, origin: str | None) -> defer.Deferred[Client]:
    factory = WebSocketClientFactory(url, origin=origin)
    factory.protocol = Client
    parts = urlsplit(url)
    endpoint = TCP4ClientEndpoint(reactor, parts.hostname, parts.port, timeout=60)
    return endpoint.connect(factory).addCallback(lambda c: c.opened)


async def idle(url: str, origin: str, secret: str, n: int) -> None:
    tokens = VisitorTokens(secret.encode(), reactor, 86400.0)
    clients: list[Client] = []
    start = time.monotonic()
    sem = defer.DeferredSemaphore(200)

    async def one(i: int) -> None:
        client = await connect(url, origin)
        welcome = await client.ask("hello", token=tokens.issue(100, f"bench-visitor-{i:08d}"))
        if welcome.get("type") != "welcome":
            raise RuntimeError(str(welcome))
        clients.append(client)

    await defer.gatherResults(
        [sem.run(lambda i=i: defer.ensureDeferred(one(i))) for i in range(n)],
        consumeErrors=True,
    )
    print(f"connected {len(clients)} in {time.monotonic() - start:.1f} s", flush=True)
    done: defer.Deferred[None] = defer.Deferred()

    class Stdin(Protocol):
        def connectionLost(self, reason: Any) -> None:
            done.callback(None)

    stdio.StandardIO(Stdin())
    await done


async def relay(
    url: str, origin: str, secret: str, visitors: int, count: int, window: int, name: str = ""
) -> None:
    tokens = VisitorTokens(secret.encode(), reactor, 86400.0)
    clients = []
    for i in range(visitors):
        client = await connect(url, origin)
        await client.ask("hello", token=tokens.issue(100, f"relay-visitor-{name}{i:08d}"))
        joined: defer.Deferred[Any] = defer.Deferred()
        client.waiting["join"] = joined
        reply = await client.ask(
            "chat.request"
        )  # no first message: the agent counts the flood only
        await joined  # the agent accepted
        clients.append((client, reply["result"]["chatId"]))
    per = count // visitors

    def drive(client: Client, chatId: int) -> defer.Deferred[None]:
        request = {"type": "chat.send", "id": "s", "chatId": chatId, "text": TEXT}
        # Each answer is the stored message (a chat.event), not decoded.
        return pump(client, json.dumps(request).encode(), per, window, b'{"type":"chat.event"')

    start = time.monotonic()
    await defer.gatherResults([drive(c, i) for c, i in clients])
    took = time.monotonic() - start
    print(json.dumps({"messages": per * visitors, "seconds": took}), flush=True)


async def echo(url: str, count: int, window: int, visitors: int) -> None:
    payload = json.dumps({"type": "chat.send", "id": "1", "chatId": 1, "text": TEXT}).encode()
    clients = [await connect(url, None) for _ in range(visitors)]
    per = count // visitors
    start = time.monotonic()
    await defer.gatherResults([pump(c, payload, per, window, payload[:20]) for c in clients])
    took = time.monotonic() - start
    print(json.dumps({"messages": per * visitors, "seconds": took}), flush=True)


def pump(
    client: Client, payload: bytes, count: int, window: int, prefix: bytes
) -> defer.Deferred[None]:
    """
    The loop of both the relay and the echo: send C{payload} C{count}
    times, C{window} unanswered at a time, the next one for each answer.
    Fires when all are answered; fails on an answer not starting with
    C{prefix}.
    """
    done: defer.Deferred[None] = defer.Deferred()
    state = {"sent": 0, "got": 0}

    def got(answer: bytes) -> bool:
        if not answer.startswith(prefix):
            if not done.called:
                done.errback(RuntimeError(answer.decode()))
            return True
        state["got"] += 1
        if state["sent"] < count:
            state["sent"] += 1
            client.sendMessage(payload)
        if state["got"] == count:
            done.callback(None)
        return True

    client.onEvent = got
    for _ in range(min(window, count)):
        state["sent"] += 1
        client.sendMessage(payload)
    return done


def main(argv: list[str]) -> None:
    kind = argv[0]

    async def run(_: Any) -> None:
        if kind == "idle":
            await idle(argv[1], argv[2], argv[3], int(argv[4]))
        elif kind == "relay":
            name = argv[7] if len(argv) > 7 else ""
            await relay(argv[1], argv[2], argv[3], int(argv[4]), int(argv[5]), int(argv[6]), name)
        else:
            await echo(argv[1], int(argv[2]), int(argv[3]), int(argv[4]))

    task.react(lambda r: defer.ensureDeferred(run(r)))


if __name__ == "__main__":
    main(sys.argv[1:])
