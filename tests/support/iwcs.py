"""
IWCS for tests: a real core (L{CoreMixin}: a real store, task.Clock), a
portal with real (cheap) argon2 hashes, the IWCS factory, and clients of
L{livechat.client} that record every packet and let a test wait for one.

    self.serveIwcs()                                 # real TCP on 127.0.0.1:0
    agent = yield self.agentClient(op)               # logged in
    offer = yield agent.next(P.ChatOffered)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.testing import StringTransport

from livechat.apikeys import createKey
from livechat.auth import LoginThrottle, PasswordHasher, makePortal
from livechat.client import IwcsClient, IwcsClientFactory, IwcsClientService
from livechat.model import AccountType, Operator
from livechat.protocols import iwcspackets as P
from livechat.protocols.iwcs import IwcsFactory, IwcsProtocol, IwcsSettings
from tests.support.core import CoreMixin

PASSWORD = "correct horse battery"
_nicks = itertools.count(1)


class RecordingClient(IwcsClient):
    """Keeps every packet; C{next(cls, **fields)} waits for the next that matches."""

    def __init__(self) -> None:
        super().__init__()
        self.packets: list[P.Packet] = []
        self._mark = 0
        self._waiting: list[tuple[Callable[[P.Packet], bool], defer.Deferred[Any]]] = []
        self.lost: defer.Deferred[None] = defer.Deferred()

    def packetReceived(self, packet: P.Packet) -> None:
        self.packets.append(packet)
        still = []
        for predicate, d in self._waiting:
            if not d.called and predicate(packet):
                self._mark = len(self.packets)
                d.callback(packet)
            else:
                still.append((predicate, d))
        self._waiting = still
        super().packetReceived(packet)

    def disconnected(self, reason: Any) -> None:
        if not self.lost.called:
            self.lost.callback(None)

    def next(self, kind: type[P.Packet], timeout: float = 10.0, **fields: Any) -> Any:
        """The first packet of C{kind} (with C{fields}) after the last one waited for."""

        def matches(p: P.Packet) -> bool:
            return isinstance(p, kind) and all(getattr(p, k) == v for k, v in fields.items())

        for index in range(self._mark, len(self.packets)):
            if matches(self.packets[index]):
                self._mark = index + 1
                return defer.succeed(self.packets[index])
        d: defer.Deferred[Any] = defer.Deferred()
        self._waiting.append((matches, d))
        d.addTimeout(timeout, reactor)
        return d

    def of(self, kind: type[P.Packet], **fields: Any) -> list[Any]:
        return [
            p
            for p in self.packets
            if isinstance(p, kind) and all(getattr(p, k) == v for k, v in fields.items())
        ]

    def seqs(self, chat: int) -> list[int]:
        """The sequences of the numbered events of C{chat} received, in order."""
        return [
            p.seq
            for p in self.packets
            if isinstance(p, P.ChatEvent) and p.chat == chat and p.seq is not None
        ]


class RecordingTransport(StringTransport):
    """A StringTransport that reads back the server's packets as they are written."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.packets: list[P.Packet] = []
        self._partial = b""
        self._mark = 0
        self._waiting: list[tuple[Callable[[P.Packet], bool], defer.Deferred[Any]]] = []

    def write(self, data: bytes) -> None:
        super().write(data)
        lines = (self._partial + data).split(b"\r\n")
        self._partial = lines.pop()
        for line in lines:
            packet = P.parseLine(line, "S")
            self.packets.append(packet)
            still = []
            for predicate, d in self._waiting:
                if not d.called and predicate(packet):
                    self._mark = len(self.packets)
                    # As a real peer would: after the server's call has returned.
                    reactor.callLater(0, d.callback, packet)
                else:
                    still.append((predicate, d))
            self._waiting = still

    def next(self, kind: type[P.Packet], timeout: float = 10.0, **fields: Any) -> Any:
        """The first packet of C{kind} (with C{fields}) after the last one waited for."""

        def matches(p: P.Packet) -> bool:
            return isinstance(p, kind) and all(getattr(p, k) == v for k, v in fields.items())

        for index in range(self._mark, len(self.packets)):
            if matches(self.packets[index]):
                self._mark = index + 1
                return defer.succeed(self.packets[index])
        d: defer.Deferred[Any] = defer.Deferred()
        self._waiting.append((matches, d))
        d.addTimeout(timeout, reactor)
        return d

    def of(self, kind: type[P.Packet], **fields: Any) -> list[Any]:
        return [
            p
            for p in self.packets
            if isinstance(p, kind) and all(getattr(p, k) == v for k, v in fields.items())
        ]


def cheapHasher() -> PasswordHasher:
    return PasswordHasher(defer.maybeDeferred, timeCost=1, memoryCostKiB=8)


class IwcsMixin(CoreMixin):
    """A core with the IWCS factory; C{serveIwcs()} puts it on a real port."""

    iwcsSettings = IwcsSettings()

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield super().setUp()
        self.hasher = cheapHasher()
        self.throttle = LoginThrottle(self.clock)
        self.portal = makePortal(self.store, self.hasher, self.throttle, self.clock)
        self.factory = IwcsFactory(
            self.core, self.portal, self.store, self.iwcsSettings, self.clock
        )
        self.factory.startFactory()
        self.clients: list[RecordingClient] = []
        self.addCleanup(self._closeClients)

    def _closeClients(self) -> Any:
        waits = []
        for client in self.clients:
            if not client.gone and client.transport is not None:
                client.factory.stopping = True
                client.transport.loseConnection()
                if hasattr(client, "lost"):
                    waits.append(client.lost)
        for service in getattr(self, "_services", []):
            if service.running:
                waits.append(service.stopService())
        return defer.DeferredList(waits)

    @defer.inlineCallbacks
    def agent(self, licence: int = 100, nick: str | None = None, **kw: Any) -> Any:
        """An operator whose password is L{PASSWORD}."""
        yield self.licence(licence)
        nick = nick or f"agent{next(_nicks)}"
        kw.setdefault("account_type", AccountType.CONTACT_CENTER)
        passwordHash = yield self.hasher.hash(PASSWORD)
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
            passwordHash,
        )
        return op

    @defer.inlineCallbacks
    def controlKey(self, licence: int = 100) -> Any:
        yield self.licence(licence)
        key, _ = yield createKey(self.store, licence, "website", {"control"})
        return key

    # -- on StringTransport ------------------------------------------------------------

    def connection(self, peer: str = "192.0.2.7") -> tuple[IwcsProtocol, RecordingTransport]:
        """A protocol on a StringTransport (no socket) that records what it sends."""
        from twisted.internet.address import IPv4Address

        proto = self.factory.buildProtocol(None)
        transport = RecordingTransport(peerAddress=IPv4Address("TCP", peer, 40000))
        proto.makeConnection(transport)
        return proto, transport

    # -- on real TCP ---------------------------------------------------------------------

    def serveIwcs(self) -> int:
        port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.iwcsPort = port.getHost().port
        return self.iwcsPort

    def clientFactory(self, licence: int, **kw: Any) -> IwcsClientFactory:
        kw.setdefault("protocol", RecordingClient)
        kw.setdefault("clock", task.Clock())
        return IwcsClientFactory(licence, **kw)

    @defer.inlineCallbacks
    def connectClient(self, factory: IwcsClientFactory, endpoint: Any = None) -> Any:
        """Connect once (no reconnecting) and wait for WELCOME."""
        endpoint = endpoint or TCP4ClientEndpoint(reactor, "127.0.0.1", self.iwcsPort)
        client = yield endpoint.connect(factory)
        self.clients.append(client)
        yield client.loggedIn().addTimeout(10, reactor)
        return client

    @defer.inlineCallbacks
    def agentClient(self, op: Operator, **kw: Any) -> Any:
        factory = self.clientFactory(op.licence, nick=op.nick, password=PASSWORD, **kw)
        client = yield self.connectClient(factory)
        return client

    @defer.inlineCallbacks
    def controlClient(self, licence: int = 100, **kw: Any) -> Any:
        key = yield self.controlKey(licence)
        factory = self.clientFactory(licence, kind="control", key=key, **kw)
        client = yield self.connectClient(factory)
        return client

    def service(self, factory: IwcsClientFactory, endpoint: Any = None) -> IwcsClientService:
        """A reconnecting client service (stopped after the test)."""
        endpoint = endpoint or TCP4ClientEndpoint(reactor, "127.0.0.1", self.iwcsPort)
        service = IwcsClientService(endpoint, factory, clock=reactor)
        if not hasattr(self, "_services"):
            self._services = []
        self._services.append(service)
        service.startService()
        return service
