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
from tests.support.db import bothDialects

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

    nodeNames: tuple[str, ...] = ("a", "b")

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield super().setUp()  # node A: self.core (memory) is replaced below
        yield self.core.stop()
        self.prefix = f"t{secrets.token_hex(4)}:"
        self.nodes = []
        for name in self.nodeNames:
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
        # The message may come first by node A's replay: wait for node B's
        # resync (started before our listener ran) to have put anna back.
        yield defer.DeferredList(list(self.nodes[1]._inflight))
        info = yield self.nodes[0].operatorInfo(100, op.id)
        self.assertIsNotNone(info)
        after = yield agent.send(chatId, "after")
        yield vchan.next(isEvent("ContentEvent", chatId, message="after"))
        self.assertEqual(vchan.sequences(chatId), list(range(1, after + 1)))


class JanitorMixin(TwoNodesMixin):
    """Nodes whose janitors sweep when the test says (not on the clock)."""

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield super().setUp()
        for core in self.nodes:
            core.janitor.stop()

    def redis(self, *args: Any) -> Any:
        return self.nodes[0].bus._commands.execute_command(*args)

    @defer.inlineCallbacks
    def kill(self, index: int, *operators: int) -> Any:
        """
        Node C{index} dies as with SIGKILL: its timers and heartbeats stop,
        its Redis connections drop, and (as their expiry would) its alive
        key and its operators' presence and availability vanish.
        """
        core = self.nodes[index]
        core.janitor.stop()
        core.presence.stop()
        core.router.stop()
        for local in core._local.values():
            if local.grace is not None and local.grace.active():
                local.grace.cancel()
        for _, timer in core._offers.values():
            if timer.active():
                timer.cancel()
        core._offers.clear()
        core._local.clear()
        yield core.bus.stopService()
        keys = [self.prefix + "node:" + core.nodeId]
        for op in operators:
            keys += [self.prefix + f"lc:100:op:{op}", self.prefix + f"lc:100:avail:{op}"]
        yield self.redis("DEL", *keys)

    @defer.inlineCallbacks
    def sweep(self, index: int = 0) -> Any:
        adopted = yield self.nodes[index].janitor._sweep()
        return adopted

    @defer.inlineCallbacks
    def chat(self, chatId: int) -> Any:
        chat = yield self.store.forLicence(100).getChat(chatId)
        return chat


class JanitorTests(JanitorMixin, unittest.TestCase):
    nodeNames = ("a", "b", "c")

    @defer.inlineCallbacks
    def test_deadNodesChatsRequeued(self) -> Any:
        """
        The agent's node dies and the agent never comes back: once their
        presence has been gone for OPERATOR_GRACE (60 s here), the chat is
        handed back to routing, exactly once though two nodes sweep at the
        same moment: the visitor sees one LeaveEvent (reason disconnected)
        and a queue position, the agents the operator offline.
        """
        op = yield self.operator(nick="anna")
        other = yield self.operator(nick="otto")
        agent, achan = yield self.on(1).connectOperator(op)
        visitor, vchan = yield self.on(0).connectVisitor()
        _, ochan = yield self.on(2).connectOperator(other, status=OperatorStatus.AWAY)
        chatId = yield self.activeChat(visitor, vchan, agent, achan, "hello")
        yield self.kill(1, op.id)
        self.assertEqual((yield self.sweep(0)), 0)  # first seen absent
        self.clock.advance(59)
        self.assertEqual((yield self.sweep(2)), 0)  # not for long enough
        self.assertEqual((yield self.chat(chatId)).status.value, "active")
        self.clock.advance(1)
        adopted = yield defer.gatherResults([self.sweep(0), self.sweep(2)])
        self.assertEqual(sorted(adopted), [0, 1])
        left = yield vchan.next(isEvent("LeaveEvent", chatId, reason="disconnected"))
        self.assertEqual(left["originatorId"], f"op:{op.id}")
        yield vchan.next(isType("chat.queue", chatId=chatId, position=1))
        status = yield ochan.next(
            lambda m: isType("operator.status")(m) and m["operator"]["id"] == f"op:{op.id}"
        )
        self.assertEqual(status["operator"]["status"], int(OperatorStatus.OFFLINE))
        chat = yield self.chat(chatId)
        self.assertEqual((chat.status.value, chat.operator), ("queued", None))
        events = yield self.store.forLicence(100).eventsAfter(chatId, 0)
        leaves = [e for e in events if e.event["type"] == "LeaveEvent"]
        self.assertEqual(len(leaves), 1)
        self.assertEqual((yield self.nodes[0].router.queue(100)), [chatId])
        self.assertIsNone((yield self.nodes[0].operatorInfo(100, op.id)))
        # Nothing more happens at later sweeps.
        self.clock.advance(120)
        yield self.sweep(0)
        self.clock.advance(15)
        yield self.sweep(2)
        events = yield self.store.forLicence(100).eventsAfter(chatId, 0)
        self.assertEqual(len([e for e in events if e.event["type"] == "LeaveEvent"]), 1)

    @defer.inlineCallbacks
    def test_reconnectWithinGrace(self) -> Any:
        """
        The agent's node dies and the agent reconnects to another node
        within the grace time: the chat stays theirs whatever the sweeps,
        they are available for routing again from the new node (the dead
        node's availability key is gone), and a new chat reaches them.
        """
        op = yield self.operator(nick="anna")
        agent, achan = yield self.on(1).connectOperator(op)
        visitor, vchan = yield self.on(0).connectVisitor()
        chatId = yield self.activeChat(visitor, vchan, agent, achan, "hello")
        seq = yield visitor.send(chatId, "before the crash")
        yield achan.next(isEvent("ContentEvent", chatId, message="before the crash"))
        yield self.kill(1, op.id)
        yield self.sweep(0)
        self.clock.advance(30)
        during = yield visitor.send(chatId, "while the agent is away")
        again, achan2 = yield self.on(0).connectOperator(op, status=None, resume={chatId: seq})
        got = yield achan2.next(isEvent("ContentEvent", chatId, message="while the agent is away"))
        self.assertEqual(got["sequence"], during)
        self.assertEqual(achan2.sequences(chatId), [during])
        for _ in range(6):
            self.clock.advance(15)
            self.assertEqual((yield self.sweep(0)), 0)
        chat = yield self.chat(chatId)
        self.assertEqual((chat.status.value, chat.operator), ("active", op.id))
        v2, v2chan = yield self.on(0).connectVisitor("visitor-0002")
        second = yield v2.requestChat(message="me too")
        yield achan2.next(isType("chat.offered", chatId=second))

    @defer.inlineCallbacks
    def test_reconnectKeepsAvailability(self) -> Any:
        """
        The agent reconnects to another node while the dead node's keys
        still live (their TTL not yet run out): the new node now refreshes
        the agent's routing availability, so it does not lapse with the
        dead node's last refresh.
        """
        op = yield self.operator(nick="anna")
        yield self.on(1).connectOperator(op)
        yield self.kill(1)
        yield self.on(0).connectOperator(op, status=None)
        key = self.prefix + f"lc:100:avail:{op.id}"
        yield self.redis("EXPIRE", key, "2")  # about to lapse
        yield self.nodes[0].router._beat()
        self.assertGreater(int((yield self.redis("TTL", key))), 2)

    @defer.inlineCallbacks
    def test_orphanedOffer(self) -> Any:
        """
        The node that offered a chat dies before the offer runs out: the
        offer is withdrawn by a sweep once CHAT_ACCEPT_TIMEOUT and one sweep
        interval have passed, not before, and the chat is routed again.
        """
        op = yield self.operator(nick="anna")
        _, achan = yield self.on(0).connectOperator(op)
        visitor, _ = yield self.on(1).connectVisitor()
        chatId = yield visitor.requestChat(message="anyone?")
        yield achan.next(isType("chat.offered", chatId=chatId))
        yield self.kill(1)
        self.clock.advance(30 + 15 - 1)
        yield self.sweep(0)
        self.assertEqual((yield self.chat(chatId)).status.value, "assigned")
        self.clock.advance(1)
        yield self.sweep(2)
        withdrawn = yield achan.next(isType("chat.withdrawn", chatId=chatId))
        self.assertEqual(withdrawn["reason"], "timeout")
        self.assertEqual((yield self.chat(chatId)).status.value, "queued")

    @defer.inlineCallbacks
    def test_leasePerInterval(self) -> Any:
        """One node sweeps per interval: the others' sweeps that interval do nothing."""
        self.assertTrue((yield self.nodes[0].presence.lease("janitor", 15)))
        self.assertFalse((yield self.nodes[1].presence.lease("janitor", 15)))
        self.clock.advance(15)
        self.assertTrue((yield self.nodes[1].presence.lease("janitor", 15)))
        self.assertFalse((yield self.nodes[0].presence.lease("janitor", 15)))


class JanitorOutageTests(JanitorMixin, unittest.TestCase):
    """The janitor with a private Redis that goes away."""

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
    def test_nothingWithoutRedis(self) -> Any:
        """
        While Redis is away a node cannot tell the others' operators from
        dead ones: its janitor takes no turn and claims nobody, however long
        the outage, and the chat stays with its operator.
        """
        op = yield self.operator(nick="anna")
        agent, achan = yield self.on(1).connectOperator(op)
        visitor, vchan = yield self.on(0).connectVisitor()
        chatId = yield self.activeChat(visitor, vchan, agent, achan, "hello")
        self.server.stop()
        presence = self.nodes[0].presence
        for _ in range(10):
            self.assertFalse((yield presence.lease("janitor", 15)))
            self.assertFalse((yield presence.operatorAbsent(100, op.id, 60)))
            self.assertEqual((yield self.sweep(0)), 0)
            self.clock.advance(15)
        chat = yield self.chat(chatId)
        self.assertEqual((chat.status.value, chat.operator), ("active", op.id))


class AbsenceContract:
    """operatorAbsent: the grace is counted from the first call that finds the operator gone."""

    clock: task.Clock

    def makePresences(self) -> Any:
        raise NotImplementedError()

    @defer.inlineCallbacks
    def test_graceEdge(self: Any) -> Any:
        """
        Absent at t, t+grace-1: no; at t+grace: yes, once; present
        in between resets the count.
        """
        first, second = yield self.makePresences()
        self.assertFalse((yield first.operatorAbsent(1, 5, 60)))
        self.clock.advance(59.999)
        self.assertFalse((yield second.operatorAbsent(1, 5, 60)))
        self.clock.advance(0.001)
        answers = yield defer.gatherResults(
            [first.operatorAbsent(1, 5, 60), second.operatorAbsent(1, 5, 60)]
        )
        self.assertEqual(sorted(answers), [False, True])
        self.assertFalse((yield first.operatorAbsent(1, 6, 60)))
        self.clock.advance(30)
        yield first.operatorUp(1, info(6), self.node)
        self.assertFalse((yield second.operatorAbsent(1, 6, 60)))
        yield first.operatorDown(1, 6, self.node)
        self.assertFalse((yield second.operatorAbsent(1, 6, 60)))
        self.clock.advance(59)
        self.assertFalse((yield first.operatorAbsent(1, 6, 60)))
        self.clock.advance(1)
        self.assertTrue((yield first.operatorAbsent(1, 6, 60)))
        self.assertFalse((yield first.operatorAbsent(2, 6, 60)))  # licences apart


class MemoryAbsenceTests(AbsenceContract, unittest.TestCase):
    node = "local"

    def makePresences(self) -> Any:
        self.clock = task.Clock()
        self.clock.advance(1000)
        presence = MemoryPresence(self.clock, visitorIdle=100)
        return defer.succeed((presence, presence))


class RedisAbsenceTests(AbsenceContract, unittest.TestCase):
    node = "node-a"

    @defer.inlineCallbacks
    def makePresences(self) -> Any:
        self.clock = task.Clock()
        self.clock.advance(1000)
        bus = redisBus(self, f"t{secrets.token_hex(4)}:")
        yield bus.whenConnected()
        return (
            RedisPresence(bus, self.clock, "node-a", visitorIdle=100),
            RedisPresence(bus, self.clock, "node-b", visitorIdle=100),
        )


class RestartedNodeMixin(CoreMixin):
    @defer.inlineCallbacks
    def test_operatorNeverBack(self) -> Any:
        """
        A single node crashes with a chat active and restarts; the operator
        never comes back.  The new process's janitor hands the chat back to
        routing after OPERATOR_GRACE (not a sweep before), taking the chat
        from the database since the new router never counted it.
        """
        from livechat.bus.memory import MemoryBus

        op = yield self.operator(nick="anna")
        agent, achan = yield self.connectOperator(op)
        visitor, vchan = yield self.connectVisitor()
        chatId = yield self.activeChat(visitor, vchan, agent, achan, "hello")
        self.core.janitor.stop()
        self.sessions.clear()  # the crash: nobody says goodbye
        yield self.core.stop()
        self.core = Core(
            self.store,
            MemoryBus(),
            MemoryRouter(self.clock),
            RecordingNotifier(),
            self.clock,
            self.settings,
        )
        self.addCleanup(self.core.stop)
        visitor, vchan = yield self.connectVisitor(resume={chatId: 2})
        yield self.core.janitor._sweep()
        self.clock.advance(59)
        yield self.core.janitor._sweep()
        chat = yield self.store.forLicence(100).getChat(chatId)
        self.assertEqual(chat.operator, op.id)
        self.clock.advance(1)
        self.assertEqual((yield self.core.janitor._sweep()), 1)
        yield vchan.next(isEvent("LeaveEvent", chatId, reason="disconnected"))
        chat = yield self.store.forLicence(100).getChat(chatId)
        self.assertEqual((chat.status.value, chat.operator), ("queued", None))


globals().update(bothDialects(RestartedNodeMixin, "RestartedNodeTests"))
