"""
A chat core for tests: a real store (sqlite, or MariaDB with the same
body), the memory bus and router, a recording notifier, a task.Clock for
every timer, and channels that record what they are given and let a test
wait for a message without sleeping.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, task
from zope.interface import implementer

from livechat.bus.memory import MemoryBus
from livechat.core.hub import Core, CoreSettings
from livechat.core.routing import MemoryRouter
from livechat.interfaces import IChannel
from livechat.model import AccountType, Licence, Operator, OperatorStatus
from livechat.notify import RecordingNotifier
from tests.support.db import DialectMixin

Predicate = Callable[[dict[str, Any]], bool]


@implementer(IChannel)
class RecordingChannel:
    """Records deliveries; C{next(pred)} waits for the next one that matches."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.messages: list[dict[str, Any]] = []
        self._mark = 0
        self._waiting: list[tuple[Predicate, defer.Deferred[dict[str, Any]]]] = []
        self.closedWith: str | None = None

    def __repr__(self) -> str:
        return f"<RecordingChannel {self.name}>"

    def deliver(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        still = []
        for predicate, d in self._waiting:
            if not d.called and predicate(message):
                self._mark = len(self.messages)
                d.callback(message)
            else:
                still.append((predicate, d))
        self._waiting = still

    def close(self, reason: str) -> None:
        self.closedWith = reason

    def next(self, predicate: Predicate, timeout: float = 10.0) -> defer.Deferred[dict[str, Any]]:
        """The first message after the last one waited for that matches."""
        for index in range(self._mark, len(self.messages)):
            if predicate(self.messages[index]):
                self._mark = index + 1
                return defer.succeed(self.messages[index])
        d: defer.Deferred[dict[str, Any]] = defer.Deferred()
        self._waiting.append((predicate, d))
        from twisted.internet import reactor

        d.addTimeout(timeout, reactor)
        return d

    def chatEvents(self, chatId: int) -> list[dict[str, Any]]:
        """The numbered chat events of C{chatId} received, in order."""
        return [
            m
            for m in self.messages
            if m.get("type") == "chat.event" and m.get("chatId") == chatId and "sequence" in m
        ]

    def sequences(self, chatId: int) -> list[int]:
        return [m["sequence"] for m in self.chatEvents(chatId)]

    def ofType(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]


def isType(kind: str, **fields: Any) -> Predicate:
    def check(m: dict[str, Any]) -> bool:
        return m.get("type") == kind and all(m.get(k) == v for k, v in fields.items())

    return check


def isEvent(eventType: str, chatId: int | None = None, **fields: Any) -> Predicate:
    def check(m: dict[str, Any]) -> bool:
        if m.get("type") != "chat.event" or m["event"]["type"] != eventType:
            return False
        if chatId is not None and m["chatId"] != chatId:
            return False
        return all(m["event"].get(k) == v for k, v in fields.items())

    return check


_nicks = itertools.count(1)


class CoreMixin(DialectMixin):
    """Builds a core per test; helpers make licences, operators and visitors."""

    settings = CoreSettings(acceptTimeout=30, operatorGrace=60, visitorIdle=600)

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.clock = task.Clock()
        self.clock.advance(1_800_000_000)
        self.store = yield self.openStore()
        self.bus = MemoryBus()
        self.router = MemoryRouter(self.clock)
        self.notifier = RecordingNotifier()
        self.core = Core(
            self.store, self.bus, self.router, self.notifier, self.clock, self.settings
        )
        self.core.start()
        self.addCleanup(self.core.stop)
        self.sessions: list[Any] = []
        self.addCleanup(self._disconnectAll)

    def _disconnectAll(self) -> None:
        for session in self.sessions:
            session.disconnect()

    @defer.inlineCallbacks
    def licence(self, number: int = 100, **kw: Any) -> Any:
        licence = yield self.store.getLicence(number)
        if licence is None:
            licence = yield self.store.createLicence(Licence(number=number, **kw))
        return licence

    @defer.inlineCallbacks
    def operator(self, licence: int = 100, nick: str | None = None, **kw: Any) -> Any:
        yield self.licence(licence)
        nick = nick or f"op{next(_nicks)}"
        kw.setdefault("account_type", AccountType.CONTACT_CENTER)
        op = yield self.store.createOperator(
            licence,
            Operator(
                id=0,
                licence=0,
                nick=nick,
                operator_id=f"{nick}@example.com",
                first_name=nick.capitalize(),
                **kw,
            ),
            "not-a-real-hash",
        )
        return op

    @defer.inlineCallbacks
    def connectOperator(
        self,
        op: Operator,
        status: OperatorStatus | None = OperatorStatus.ONLINE,
        resume: dict[int, int] | None = None,
    ) -> Any:
        licence = yield self.store.getLicence(op.licence)
        channel = RecordingChannel(op.nick)
        session = self.core.connectOperator(licence, op, channel, client="test")
        self.sessions.append(session)
        yield defer.ensureDeferred(session.start(resume, status))
        return session, channel

    @defer.inlineCallbacks
    def connectVisitor(
        self,
        visitorId: str = "visitor-0001",
        licence: int = 100,
        resume: dict[int, int] | None = None,
        pageView: bool = True,
    ) -> Any:
        yield self.licence(licence)
        channel = RecordingChannel(visitorId)
        session = self.core.connectVisitor(licence, visitorId, channel, address="192.0.2.1")
        self.sessions.append(session)
        if pageView:
            yield session.pageView(
                url="https://shop.example/",
                title="Shop",
                referrer="https://search.example/",
                user_agent="Test/1.0",
            )
        yield defer.ensureDeferred(session.start(resume))
        return session, channel

    @defer.inlineCallbacks
    def activeChat(
        self,
        visitor: Any,
        vchannel: RecordingChannel,
        operator: Any,
        ochannel: RecordingChannel,
        message: str = "Hello",
    ) -> Any:
        """A visitor asks, the operator is offered and accepts; fires with the chat id."""
        chatId = yield visitor.requestChat(name="Vera", email="vera@example.com", message=message)
        offered = yield ochannel.next(isType("chat.offered", chatId=chatId))
        self.assertEqual(offered["firstMessage"], message)
        yield operator.accept(chatId)
        yield vchannel.next(isEvent("JoinEvent", chatId))
        return chatId
