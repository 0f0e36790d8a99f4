"""
The cluster's shared state on a real Redis, and two cores ("nodes") in one
process sharing a database and a Redis: what must hold across nodes.

The router and presence contracts run against both implementations (the
memory one of a single node and the Redis one), so neither can drift.
"""

from __future__ import annotations

import secrets
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from livechat.bus.redis import RedisBus
from livechat.cluster import RedisPresence, RedisRouter
from livechat.core.hub import Core, CoreSettings
from livechat.core.presence import MemoryPresence, OperatorInfo
from livechat.core.routing import Availability, MemoryRouter, RouteRequest
from livechat.core.visitors import VisitorState
from livechat.interfaces import IPresence, IRouter
from livechat.model import OperatorStatus
from livechat.notify import RecordingNotifier
from tests.support import services
from tests.support.core import CoreMixin, isEvent, isType

ON = OperatorStatus.ONLINE


def avail(
    op: int, capacity: int = 2, status: OperatorStatus = ON, groups: Any = ()
) -> Availability:
    return Availability(operator=op, status=status, capacity=capacity, groups=frozenset(groups))


def redisBus(testcase: unittest.TestCase, prefix: str, url: str | None = None) -> RedisBus:
    bus = RedisBus(url or services.requireRedis(), reactor, prefix=prefix)
    bus.startService()
    testcase.addCleanup(bus.stopService)
    return bus


class RouterContract:
    """What every IRouter must do; subclasses make the router."""

    clock: task.Clock

    def makeRouter(self) -> Any:
        raise NotImplementedError()

    @defer.inlineCallbacks
    def test_interface(self: Any) -> Any:
        """The router provides IRouter."""
        router = yield self.makeRouter()
        verifyObject(IRouter, router)

    @defer.inlineCallbacks
    def test_fillsEvenlyThenQueues(self: Any) -> Any:
        """Chats spread over operators up to capacity; the rest wait in order."""
        router = yield self.makeRouter()
        for op in (1, 2, 3):
            self.clock.advance(1)
            yield router.updateOperator(1, avail(op, capacity=2))
        owners, positions = [], []
        for chat in range(10):
            a = yield router.route(1, RouteRequest(chat=chat))
            owners.append(a.operator)
            positions.append(a.position)
        self.assertEqual(owners[:6], [1, 2, 3, 1, 2, 3])
        self.assertEqual(owners[6:], [None] * 4)
        self.assertEqual(positions[6:], [1, 2, 3, 4])
        self.assertEqual((yield router.queue(1)), [6, 7, 8, 9])
        made = yield router.release(1, 2, 1)
        self.assertEqual([(m.chat, m.operator) for m in made], [(6, 2)])
        self.assertEqual((yield router.load(1, 2)), [4, 6])

    @defer.inlineCallbacks
    def test_concurrentRoutes(self: Any) -> Any:
        """Fifty routes at once never put an operator over capacity."""
        router = yield self.makeRouter()
        for op in (1, 2):
            yield router.updateOperator(1, avail(op, capacity=3))
        results = yield defer.gatherResults(
            [router.route(1, RouteRequest(chat=c)) for c in range(50)]
        )
        given = [r.operator for r in results if r.operator is not None]
        self.assertEqual(sorted(given), [1, 1, 1, 2, 2, 2])
        self.assertEqual(len((yield router.queue(1))), 44)

    @defer.inlineCallbacks
    def test_groupsStatusPreferExclude(self: Any) -> Any:
        """Groups, statuses that take no chats, capacity 0, prefer and exclude."""
        router = yield self.makeRouter()
        yield router.updateOperator(1, avail(1, groups=[7]))
        yield router.updateOperator(1, avail(2))
        yield router.updateOperator(1, avail(3, status=OperatorStatus.AWAY))
        yield router.updateOperator(1, avail(4, capacity=0))
        self.assertEqual((yield router.route(1, RouteRequest(chat=1, group=7))).operator, 1)
        self.assertIsNone(
            (yield router.route(1, RouteRequest(chat=2, group=7, exclude=frozenset({1})))).operator
        )
        self.assertEqual((yield router.route(1, RouteRequest(chat=3, prefer=1))).operator, 1)
        self.assertIsNone((yield router.route(1, RouteRequest(chat=4, group=8))).operator)
        self.assertEqual((yield router.route(1, RouteRequest(chat=5))).operator, 2)

    @defer.inlineCallbacks
    def test_reserveRemoveDequeue(self: Any) -> Any:
        """reserve ignores capacity; remove returns the chats; dequeue forgets a waiter."""
        router = yield self.makeRouter()
        yield router.updateOperator(1, avail(1, capacity=1))
        yield router.route(1, RouteRequest(chat=1))
        yield router.reserve(1, 1, 2)
        self.assertEqual((yield router.load(1, 1)), [1, 2])
        yield router.route(1, RouteRequest(chat=3))
        yield router.dequeue(1, 3)
        self.assertEqual((yield router.queue(1)), [])
        self.assertEqual((yield router.removeOperator(1, 1)), [1, 2])
        self.assertIsNone((yield router.route(1, RouteRequest(chat=4))).operator)

    @defer.inlineCallbacks
    def test_licencesApart(self: Any) -> Any:
        """One licence's operators never get another licence's chats."""
        router = yield self.makeRouter()
        yield router.updateOperator(2, avail(1))
        self.assertIsNone((yield router.route(1, RouteRequest(chat=1))).operator)
        self.assertEqual((yield router.queue(2)), [])


class MemoryRouterContractTests(RouterContract, unittest.TestCase):
    def makeRouter(self) -> Any:
        self.clock = task.Clock()
        return defer.succeed(MemoryRouter(self.clock))


class RedisPresenceNodesTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_twoNodes(self) -> Any:
        """
        An operator held by two nodes stays present until both let go; a node
        that died (its alive key expired) does not keep them present.
        """
        clock = task.Clock()
        bus = redisBus(self, f"t{secrets.token_hex(4)}:")
        yield bus.whenConnected()
        a = RedisPresence(bus, clock, "a", visitorIdle=100)
        b = RedisPresence(bus, clock, "b", visitorIdle=100)
        yield a.operatorUp(1, info(5), "a")
        yield b.operatorUp(1, info(5), "b")
        self.assertFalse((yield a.operatorDown(1, 5, "a")))
        self.assertTrue((yield b.operatorDown(1, 5, "b")))
        yield a.operatorUp(1, info(7), "a")
        yield b.operatorUp(1, info(7), "b")
        yield bus._commands.execute_command("DEL", bus._prefix + "node:b")  # b died
        self.assertTrue((yield a.operatorDown(1, 7, "a")))


class RedisRouterContractTests(RouterContract, unittest.TestCase):
    @defer.inlineCallbacks
    def makeRouter(self) -> Any:
        self.clock = task.Clock()
        self.clock.advance(1000)
        bus = redisBus(self, f"t{secrets.token_hex(4)}:")
        yield bus.whenConnected()
        return RedisRouter(bus, self.clock)


def info(op: int, status: OperatorStatus = ON, capacity: int = 2) -> OperatorInfo:
    return OperatorInfo(
        operator=op,
        nick=f"op{op}",
        name=f"Op {op}",
        operator_id=f"op{op}@example.com",
        status=status,
        capacity=capacity,
    )


class PresenceContract:
    clock: task.Clock
    node: str

    def makePresence(self) -> Any:
        raise NotImplementedError()

    @defer.inlineCallbacks
    def test_operators(self: Any) -> Any:
        """An operator is present from operatorUp until operatorDown; status changes show."""
        presence = yield self.makePresence()
        verifyObject(IPresence, presence)
        yield presence.operatorUp(1, info(5), self.node)
        yield presence.operatorUp(1, info(6), self.node)
        yield presence.operatorUp(1, info(5, status=OperatorStatus.AWAY), self.node)
        self.assertEqual((yield presence.operator(1, 5)).status, OperatorStatus.AWAY)
        self.assertEqual([i.operator for i in (yield presence.operators(1))], [5, 6])
        self.assertEqual((yield presence.operators(2)), [])
        self.assertTrue((yield presence.operatorDown(1, 5, self.node)))
        self.assertIsNone((yield presence.operator(1, 5)))
        self.assertEqual([i.operator for i in (yield presence.operators(1))], [6])

    @defer.inlineCallbacks
    def test_online(self: Any) -> Any:
        """setOnline reports a change once."""
        presence = yield self.makePresence()
        self.assertTrue((yield presence.setOnline(1, True)))
        self.assertFalse((yield presence.setOnline(1, True)))
        self.assertTrue((yield presence.setOnline(1, False)))
        self.assertFalse((yield presence.setOnline(1, False)))

    @defer.inlineCallbacks
    def test_visitors(self: Any) -> Any:
        """Visitors are stored, listed per licence, and expire after the idle time once."""
        presence = yield self.makePresence()
        now = self.clock.seconds()
        yield presence.putVisitor(
            VisitorState(id="v1", licence=1, url="/a", last_seen=now, visit_started=now)
        )
        yield presence.putVisitor(
            VisitorState(id="v2", licence=1, last_seen=now + 50, visit_started=now + 1)
        )
        yield presence.putVisitor(
            VisitorState(id="v3", licence=2, last_seen=now, visit_started=now)
        )
        self.assertEqual((yield presence.visitor(1, "v1")).url, "/a")
        self.assertEqual([v.id for v in (yield presence.visitors(1))], ["v1", "v2"])
        self.clock.advance(99.5)
        self.assertEqual((yield presence.expiredVisitors()), [])
        self.clock.advance(0.5)
        gone = yield presence.expiredVisitors()
        self.assertEqual(sorted(v.id for v in gone), ["v1", "v3"])
        self.assertEqual((yield presence.expiredVisitors()), [])
        self.assertEqual([v.id for v in (yield presence.visitors(1))], ["v2"])
        removed = yield presence.removeVisitor(1, "v2")
        self.assertEqual(removed.id, "v2")
        self.assertEqual((yield presence.visitors(1)), [])


class MemoryPresenceContractTests(PresenceContract, unittest.TestCase):
    node = "local"

    def makePresence(self) -> Any:
        self.clock = task.Clock()
        self.clock.advance(1000)
        return defer.succeed(MemoryPresence(self.clock, visitorIdle=100))


class RedisPresenceContractTests(PresenceContract, unittest.TestCase):
    node = "node-a"

    @defer.inlineCallbacks
    def makePresence(self) -> Any:
        self.clock = task.Clock()
        self.clock.advance(1000)
        bus = redisBus(self, f"t{secrets.token_hex(4)}:")
        yield bus.whenConnected()
        return RedisPresence(bus, self.clock, "node-a", visitorIdle=100)


class TwoNodesMixin(CoreMixin):
    """Two cores on one database and one Redis, as two nodes would be."""

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield super().setUp()  # node A: self.core (memory) is replaced below
        yield self.core.stop()
        self.prefix = f"t{secrets.token_hex(4)}:"
        self.nodes = []
        for name in ("a", "b"):
            bus = redisBus(self, self.prefix, getattr(self, "_url", None))
            yield bus.whenConnected()
            presence = RedisPresence(bus, self.clock, name, visitorIdle=600)
            router = RedisRouter(bus, self.clock)
            core = Core(
                self.store,
                bus,
                router,
                RecordingNotifier(),
                self.clock,
                CoreSettings(acceptTimeout=30),
                presence=presence,
                nodeId=name,
            )
            core.start()
            self.addCleanup(core.stop)
            self.nodes.append(core)
        self.core = self.nodes[0]

    def on(self, index: int) -> Any:
        self.core = self.nodes[index]
        return self


class TwoNodesTests(TwoNodesMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_chatAcrossNodes(self) -> Any:
        """
        A visitor on node A and an agent on node B: the agent sees the
        visitor, gets the chat, and they talk with typing and read receipts.
        """
        op = yield self.operator(nick="anna")
        agent, achan = yield self.on(1).connectOperator(op)
        visitor, vchan = yield self.on(0).connectVisitor()
        seen = yield achan.next(isType("visitor.update"))
        self.assertEqual(seen["visitor"]["id"], "visitor-0001")
        self.assertEqual([v["id"] for v in (yield agent.visitors())], ["visitor-0001"])
        chatId = yield visitor.requestChat(name="Vera", message="hello from A")
        yield achan.next(isType("chat.offered", chatId=chatId))
        yield agent.accept(chatId)
        yield vchan.next(isEvent("JoinEvent", chatId))
        seq = yield agent.send(chatId, "hello from B")
        got = yield vchan.next(isEvent("ContentEvent", chatId, message="hello from B"))
        self.assertEqual(got["sequence"], seq)
        yield visitor.chatState(chatId, "COMPOSING")
        yield achan.next(isEvent("ChatStateEvent", chatId))
        yield agent.markRead(chatId, [1])
        yield vchan.next(isEvent("AcceptStatusEvent", chatId))
        self.assertEqual(vchan.sequences(chatId), list(range(1, seq + 2)))

    @defer.inlineCallbacks
    def test_capacityAcrossNodes(self) -> Any:
        """Requests on both nodes at once never exceed an operator's capacity."""
        op = yield self.operator(nick="solo", max_chats=2)
        yield self.on(1).connectOperator(op)
        sessions = []
        for i in range(8):
            node = i % 2
            sessions.append((yield self.on(node).connectVisitor(f"visitor-{i:04d}"))[0])
        yield defer.gatherResults([s.requestChat(message="hi") for s in sessions])
        load = yield self.nodes[0].router.load(100, op.id)
        self.assertEqual(len(load), 2)
        self.assertEqual(len((yield self.nodes[1].router.queue(100))), 6)

    @defer.inlineCallbacks
    def test_transferAcrossNodes(self) -> Any:
        """An agent on A transfers to an agent on B, who sees the history."""
        a = yield self.operator(nick="ann")
        b = yield self.operator(nick="bob")
        sa, ca = yield self.on(0).connectOperator(a)
        sb, cb = yield self.on(1).connectOperator(b, status=OperatorStatus.AWAY)
        v, vchan = yield self.on(0).connectVisitor()
        chatId = yield self.activeChat(v, vchan, sa, ca, "question")
        yield sa.transfer(chatId, toOperator=b.id)
        yield cb.next(isEvent("ContentEvent", chatId, message="question"))
        yield v.send(chatId, "for bob")
        yield cb.next(isEvent("ContentEvent", chatId, message="for bob"))

    @defer.inlineCallbacks
    def test_operatorOnTwoNodes(self) -> Any:
        """An operator connected to both nodes stays online while either holds a connection."""
        a = yield self.operator(nick="ann")
        s0, _ = yield self.on(0).connectOperator(a)
        s1, _ = yield self.on(1).connectOperator(a, status=None)
        s0.disconnect()
        self.clock.advance(61)
        yield self.nodes[0].stop()
        self.assertEqual((yield self.nodes[1].operatorInfo(100, a.id)).status, ON)
        self.assertTrue((yield self.nodes[0].isLicenceOnline(100)))


class RedisRestartTests(TwoNodesMixin, unittest.TestCase):
    """Two nodes on a private Redis that the test restarts mid-chat."""

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        if not services.RedisServer.installed():
            raise unittest.SkipTest("redis-server is not installed")
        self.server = services.RedisServer()
        self.server.start()
        self.addCleanup(self.server.stop)
        self._url = self.server.url
        yield super().setUp()

    @defer.inlineCallbacks
    def test_chatGoesOn(self) -> Any:
        """
        Redis restarts (empty) mid-chat: messages sent meanwhile reach the
        other node once Redis is back (filled in from the database), the
        operator is present again, and the chat goes on.
        """
        op = yield self.operator(nick="anna")
        agent, achan = yield self.on(1).connectOperator(op)
        visitor, vchan = yield self.on(0).connectVisitor()
        chatId = yield self.activeChat(visitor, vchan, agent, achan, "before")
        back = [defer.Deferred() for _ in self.nodes]
        for core, d in zip(self.nodes, back):
            core.bus.addReconnectListener(lambda d=d: d.called or d.callback(None))
        self.server.stop()
        during = yield visitor.send(chatId, "during the outage")
        self.server.start()
        yield defer.gatherResults(back)
        got = yield achan.next(isEvent("ContentEvent", chatId, message="during the outage"))
        self.assertEqual(got["sequence"], during)
        info = yield self.nodes[0].operatorInfo(100, op.id)
        self.assertIsNotNone(info)
        after = yield agent.send(chatId, "after")
        yield vchan.next(isEvent("ContentEvent", chatId, message="after"))
        self.assertEqual(vchan.sequences(chatId), list(range(1, after + 1)))
