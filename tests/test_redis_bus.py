"""
RedisBus against a real Redis: two buses in one process play two nodes.
Tests that stop or restart Redis run their own private server.
"""

from __future__ import annotations

import os
import secrets
import signal
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from livechat.bus.redis import RedisBus
from livechat.interfaces import IBus
from tests.support import services


class Inbox:
    """Collects messages; C{next()} waits for the next one."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._waiting: list[defer.Deferred[dict[str, Any]]] = []

    def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        if self._waiting:
            self._waiting.pop(0).callback(message)

    def next(self, timeout: float = 10.0) -> defer.Deferred[dict[str, Any]]:
        d: defer.Deferred[dict[str, Any]] = defer.Deferred()
        self._waiting.append(d)
        d.addTimeout(timeout, reactor)
        return d


class BusMixin:
    def bus(self: Any, url: str, **kw: Any) -> RedisBus:
        kw.setdefault("prefix", self.prefix)
        bus = RedisBus(url, reactor, **kw)
        bus.startService()
        self.addCleanup(bus.stopService)
        return bus

    def setUp(self: Any) -> None:
        self.prefix = f"t{secrets.token_hex(4)}:"


class RedisBusTests(BusMixin, unittest.TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.url = services.requireRedis()

    @defer.inlineCallbacks
    def test_acrossNodes(self) -> Any:
        """
        A message published on one node reaches the other node's handler,
        and the publisher's own handler exactly once (not again from Redis).
        """
        a, b = self.bus(self.url), self.bus(self.url)
        verifyObject(IBus, a)
        yield defer.gatherResults([a.whenConnected(), b.whenConnected()])
        onA, onB = Inbox(), Inbox()
        yield a.subscribe("lc:1:chat:7", onA)
        yield b.subscribe("lc:1:chat:7", onB)
        received = onA.next()
        yield b.publish("lc:1:chat:7", {"type": "chat.event", "sequence": 1})
        self.assertEqual((yield received), {"type": "chat.event", "sequence": 1})
        self.assertEqual(onB.messages, [{"type": "chat.event", "sequence": 1}])
        # A round trip through Redis the other way shows b saw nothing twice.
        back = onB.next()
        yield a.publish("lc:1:chat:7", {"n": 2})
        yield back
        self.assertEqual(onB.messages, [{"type": "chat.event", "sequence": 1}, {"n": 2}])
        self.assertEqual(onA.messages, [{"type": "chat.event", "sequence": 1}, {"n": 2}])

    def test_ownEchoDroppedUndecoded(self) -> None:
        """
        What Redis hands back of this node's own publishes is dropped by its
        start, before any JSON is decoded (even a body that would not
        decode); another node's message with the same body is delivered.
        """
        bus = RedisBus(self.url, reactor, prefix=self.prefix, nodeId="node-a")
        inbox = Inbox()
        bus._handlers["c"] = [type("S", (), {"handler": staticmethod(inbox)})()]
        channel = self.prefix + "c"
        bus._received(channel, b'{"n":"node-a",not json at all')
        bus._received(channel, '{"n":"node-a","m":{"x":1}}')
        self.assertEqual((inbox.messages, bus.received), ([], 0))
        bus._received(channel, b'{"n":"node-b","m":{"x":1}}')
        bus._received(channel, '{"n":"node-a-2","m":{"x":2}}')
        self.assertEqual(inbox.messages, [{"x": 1}, {"x": 2}])

    @defer.inlineCallbacks
    def test_narrowSubscriptions(self) -> Any:
        """A node subscribes in Redis only to channels it has handlers for, and drops them."""
        import txredisapi

        a = self.bus(self.url)
        yield a.whenConnected()
        sub = yield a.subscribe("lc:1:agents", lambda m: None)
        yield a.subscribe("lc:2:agents", lambda m: None)
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        probe = yield txredisapi.Connection(parts.hostname, parts.port or 6379, reconnect=False)
        self.addCleanup(probe.disconnect)
        channels = yield probe.execute_command("PUBSUB", "CHANNELS", self.prefix + "*")
        self.assertEqual(
            sorted(channels), [self.prefix + "lc:1:agents", self.prefix + "lc:2:agents"]
        )
        yield sub.unsubscribe()
        channels = yield probe.execute_command("PUBSUB", "CHANNELS", self.prefix + "*")
        self.assertEqual(channels, [self.prefix + "lc:2:agents"])

    @defer.inlineCallbacks
    def test_prefixesIsolate(self) -> Any:
        """Buses with different prefixes on one Redis never hear each other."""
        a = self.bus(self.url, prefix="one:")
        b = self.bus(self.url, prefix="two:")
        c = self.bus(self.url, prefix="one:")
        yield defer.gatherResults([a.whenConnected(), b.whenConnected(), c.whenConnected()])
        onB, onC = Inbox(), Inbox()
        yield b.subscribe("x", onB)
        yield c.subscribe("x", onC)
        got = onC.next()
        yield a.publish("x", {"hello": 1})
        yield got
        self.assertEqual(onB.messages, [])


class RedisOutageTests(BusMixin, unittest.TestCase):
    """With a private Redis that the test stops, freezes and restarts."""

    def setUp(self) -> None:
        super().setUp()
        if not services.RedisServer.installed():
            raise unittest.SkipTest("redis-server is not installed")
        self.server = services.RedisServer()
        self.server.start()
        self.addCleanup(self.server.stop)

    @defer.inlineCallbacks
    def test_restartResubscribes(self) -> Any:
        """
        Redis restarts: meanwhile each node still delivers its own messages
        locally; afterwards both reconnect, resubscribe by themselves, tell
        their reconnect listeners, and messages cross again.
        """
        a, b = self.bus(self.server.url), self.bus(self.server.url)
        yield defer.gatherResults([a.whenConnected(), b.whenConnected()])
        onA, onB = Inbox(), Inbox()
        yield a.subscribe("c", onA)
        yield b.subscribe("c", onB)
        backA: defer.Deferred[None] = defer.Deferred()
        backB: defer.Deferred[None] = defer.Deferred()
        a.addReconnectListener(lambda: backA.called or backA.callback(None))
        b.addReconnectListener(lambda: backB.called or backB.callback(None))
        lost = a._subscriber.whenDisconnected()
        self.server.stop()
        yield lost
        yield a.publish("c", {"during": "outage"})
        self.assertEqual(onA.messages, [{"during": "outage"}])
        self.server.start()
        yield defer.gatherResults([backA, backB])
        yield a.whenConnected()
        self.assertEqual((yield self._subscribedChannels(a)), ["c"])
        got = onB.next()
        yield a.publish("c", {"after": "restart"})
        self.assertEqual((yield got), {"after": "restart"})

    @defer.inlineCallbacks
    def test_replayAfterOwnReconnect(self) -> Any:
        """
        A node's command connection drops while the other node stays
        connected: of what it publishes meanwhile, the last replay message
        of each channel reaches the other node once it is back (before
        anything it publishes after), and nothing else does.
        """
        a, b = self.bus(self.server.url), self.bus(self.server.url)
        yield defer.gatherResults([a.whenConnected(), b.whenConnected()])
        onC, onD = Inbox(), Inbox()
        yield b.subscribe("c", onC)
        yield b.subscribe("d", onD)
        back: defer.Deferred[None] = defer.Deferred()
        a.addReconnectListener(lambda: back.called or back.callback(None))
        got = onC.next()
        commands = a._commands
        lost = commands.whenDisconnected()
        commands.transport.abortConnection()
        yield lost
        yield a.publish("c", {"sequence": 1}, replay=True)
        yield a.publish("c", {"sequence": 2}, replay=True)
        yield a.publish("d", {"typing": True})
        self.assertEqual(a.dropped, 3)
        yield back
        yield a.publish("c", {"marker": True})
        self.assertEqual((yield got), {"sequence": 2})
        marker = yield onC.next()
        self.assertEqual(marker, {"marker": True})
        self.assertEqual(onD.messages, [])

    def _subscribedChannels(self, bus: RedisBus) -> defer.Deferred[list[str]]:
        if bus._commands is None:
            return defer.succeed([])
        d = bus._commands.execute_command("PUBSUB", "CHANNELS", self.prefix + "*")
        return d.addCallback(lambda cs: [c[len(self.prefix) :] for c in cs])

    @defer.inlineCallbacks
    def test_frozenRedisFoundByPing(self) -> Any:
        """
        A Redis that stops answering (SIGSTOP) without closing the socket is
        found by the PING loop; the bus drops the connection, and once Redis
        runs again (SIGCONT) reconnects and resubscribes.  Meanwhile at most
        maxPending publishes wait; the rest are dropped, not buffered.
        """
        a = self.bus(self.server.url, pingInterval=0.2, replyTimeout=0.5, maxPending=5)
        yield a.whenConnected()
        inbox = Inbox()
        yield a.subscribe("c", inbox)
        back: defer.Deferred[None] = defer.Deferred()
        a.addReconnectListener(lambda: back.called or back.callback(None))
        lost = a._subscriber.whenDisconnected()
        os.kill(self.server.pid, signal.SIGSTOP)
        try:
            for i in range(100):
                yield a.publish("c", {"i": i})
            self.assertLessEqual(a.pending, 5)
            self.assertGreaterEqual(a.dropped, 95)
            self.assertEqual(len(inbox.messages), 100, "local delivery never stops")
            yield lost
        finally:
            os.kill(self.server.pid, signal.SIGCONT)
        yield back
        yield a.whenConnected()
        self.assertIn("c", (yield self._subscribedChannels(a)))


class EndpointTests(unittest.TestCase):
    def test_urls(self) -> None:
        """
        Each kind of Redis URL gets its endpoint; one without a host means
        localhost (as redis-cli takes it), not a crash at the first connect.
        """
        from twisted.internet.endpoints import (
            HostnameEndpoint,
            TCP4ClientEndpoint,
            TCP6ClientEndpoint,
            UNIXClientEndpoint,
        )
        from twisted.internet.testing import MemoryReactorClock

        from livechat.bus.redis import _endpoint

        r = MemoryReactorClock()
        self.assertIsInstance(_endpoint(r, "redis://127.0.0.1:6380/0", 5), TCP4ClientEndpoint)
        self.assertIsInstance(_endpoint(r, "redis://[::1]/0", 5), TCP6ClientEndpoint)
        self.assertIsInstance(_endpoint(r, "unix:///run/redis.sock", 5), UNIXClientEndpoint)
        local = _endpoint(r, "redis:///0", 5)
        self.assertIsInstance(local, HostnameEndpoint)
        self.assertEqual(local._hostText, "localhost")
        self.assertEqual(local._port, 6379)
