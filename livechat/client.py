"""
A client library for the IWCS protocol (docs/iwcs.md): build agent
applications, bots and controls by subclassing L{IwcsClient} and
overriding its callbacks.

    class Bot(IwcsClient):
        def chatRequested(self, offer):
            self.accept(offer.chat)

        def messageReceived(self, message):
            if message.role == "CONSUMER":
                self.send(message.chat, "You said: " + message.text)

    factory = IwcsClientFactory(123456, nick="bot", password="...", protocol=Bot,
                                clock=reactor)
    service = IwcsClientService(clientFromString(reactor, "tcp:127.0.0.1:13201"), factory,
                                clock=reactor)
    service.startService()
    bot = await service.whenLoggedIn()

Requests (C{send}, C{accept}, …) return Deferreds that fire with what the
server's OK carries (the sequence of a stored event, a chat id, …) or fail
with L{IwcsError}.  The factory remembers the last sequence seen per chat
(and, for a control, the visitors it follows), so that after a reconnect
(L{IwcsClientService} reconnects with backoff) the login resumes: exactly
the missed events arrive, and nothing twice.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any, cast

import attr
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import defer, protocol, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from livechat.model import AcceptStatus, ChatState, OperatorStatus
from livechat.protocols import iwcspackets as P

__all__ = ["IwcsClient", "IwcsClientFactory", "IwcsClientService", "IwcsError", "P"]

MAX_LINE = 4 * 1024 * 1024
"""Longest line the client takes from the server."""


class IwcsError(Exception):
    """The server refused a request (an ERROR packet), or the connection was lost."""

    def __init__(self, code: int, name: str, text: str, packet: int | None = None) -> None:
        super().__init__(f"{code} {name}: {text}")
        self.code = code
        self.name = name
        self.text = text
        self.packet = packet

    @classmethod
    def of(cls, error: P.Error) -> IwcsError:
        return cls(error.code, error.name, error.text, error.packet)


class ConnectionGone(IwcsError):
    """The connection ended before the server answered."""

    def __init__(self, text: str = "the connection was lost") -> None:
        super().__init__(0, "connection_lost", text)


@attr.s(auto_attribs=True)
class _Pending:
    deferred: defer.Deferred[Any]
    items: list[P.Packet] = attr.Factory(list)


class IwcsClient(protocol.Protocol):
    """
    One connection to an IWCS server.  It logs in when connected (with the
    factory's credentials and resume state) and calls C{loggedInAs(welcome)}
    when the server says WELCOME (not C{connected}: that name is Twisted's
    flag on every protocol).  Override the callbacks you need; each
    gets the packet (see L{livechat.protocols.iwcspackets}).
    """

    _log = Logger()
    factory: IwcsClientFactory
    transport: Any

    def __init__(self) -> None:
        self._buffer = b""
        self._ids = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        self._loginId: str | None = None
        self._loggedIn: list[defer.Deferred[IwcsClient]] = []
        self._pinger: task.LoopingCall | None = None
        self._pingOut: str | None = None
        self.welcome: P.Welcome | None = None
        self.gone = False

    # -- callbacks to override --------------------------------------------------------

    def loggedInAs(self, welcome: P.Welcome) -> None:
        """Logged in (WELCOME); the missed events of open chats come next."""

    def disconnected(self, reason: Failure) -> None:
        """The connection is gone (L{IwcsClientService} reconnects)."""

    def chatRequested(self, offer: P.ChatOffered) -> None:
        """A chat is offered to you: C{accept} or C{decline} it."""

    def chatOpened(self, opened: P.ChatOpened) -> None:
        """A chat was opened for you (accepted, transferred to you, joined, private)."""

    def chatWithdrawn(self, withdrawn: P.ChatWithdrawn) -> None:
        """An offered chat went elsewhere."""

    def messageReceived(self, message: P.MessageEvent) -> None:
        """A message in one of your chats (yours too, with its sequence)."""

    def chatStateReceived(self, state: P.StateEvent) -> None:
        """Someone is typing (or stopped)."""

    def readReceived(self, read: P.ReadEvent) -> None:
        """Read receipts."""

    def participantJoined(self, join: P.JoinEvent) -> None:
        """Someone joined a chat."""

    def participantLeft(self, leave: P.LeaveEvent) -> None:
        """Someone left a chat."""

    def chatTransferred(self, transfer: P.TransferEvent) -> None:
        """A chat was handed on."""

    def operatorInvited(self, invite: P.InviteEvent) -> None:
        """An operator was invited into a chat."""

    def chatClosed(self, close: P.CloseEvent) -> None:
        """A chat is over."""

    def conferenceInvited(self, invited: P.ConferenceInvited) -> None:
        """A colleague invites you into a chat: C{join} it."""

    def queueChanged(self, queue: P.Queue) -> None:
        """The licence's waiting chats."""

    def queuePosition(self, position: P.QueuePosition) -> None:
        """(Control) your visitor's place in the queue."""

    def visitorUpdated(self, visitor: P.VisitorInfo) -> None:
        """A visitor arrived, moved or changed."""

    def visitorGone(self, gone: P.VisitorGone) -> None:
        """A visitor left the site."""

    def operatorStatusChanged(self, operator: P.OperatorInfo) -> None:
        """An operator's status changed."""

    def licenceStatusChanged(self, status: P.LicenceStatus) -> None:
        """Whether the licence takes chats now."""

    def invitationReceived(self, invitation: P.Invitation) -> None:
        """(Control) an operator invites your visitor."""

    def invitationAnswered(self, answered: P.InvitationAnswered) -> None:
        """A visitor answered an invitation."""

    def leftMessageReceived(self, message: P.LeftMessage) -> None:
        """A message a visitor left."""

    def messagesHandled(self, handled: P.Handled) -> None:
        """Left messages were marked handled."""

    def errorReceived(self, error: P.Error) -> None:
        """An ERROR that answers no request of ours (e.g. a line refused)."""
        self._log.warn("IWCS server error: {code} {name}: {text}", **_fields(error))

    def byeReceived(self, bye: P.Bye) -> None:
        """The server is closing the connection, and says why."""
        self._log.info("IWCS server says bye: {reason} {text}", reason=bye.reason, text=bye.text)

    # -- the connection -------------------------------------------------------------------

    def connectionMade(self) -> None:
        f = self.factory
        self._loginId = self._nextId()
        self.sendPacket(
            P.Login(
                id=self._loginId,
                licence=f.licence,
                kind=f.kind,
                nick=f.nick,
                password=f.password,
                key=f.key,
                status=f.status,
                resume=dict(f.lastSeqs) if f.kind == "agent" and f.lastSeqs else None,
                client=f.clientName,
                version=P.PROTOCOL_VERSION,
            )
        )

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.gone = True
        if self._pinger is not None and self._pinger.running:
            self._pinger.stop()
        pending, self._pending = self._pending, {}
        for entry in pending.values():
            entry.deferred.errback(ConnectionGone())
        waiting, self._loggedIn = self._loggedIn, []
        for d in waiting:
            d.errback(ConnectionGone("the connection was lost before WELCOME"))
        f = self.factory
        if f.stopping and f.service is not None and f.service.running:
            f.service.stopService()
        self.disconnected(reason)

    def loggedIn(self) -> defer.Deferred[IwcsClient]:
        """Fires with this client once WELCOME has come."""
        if self.welcome is not None:
            return defer.succeed(self)
        if self.gone:
            return defer.fail(ConnectionGone())
        d: defer.Deferred[IwcsClient] = defer.Deferred()
        self._loggedIn.append(d)
        return d

    def sendPacket(self, packet: P.Packet) -> None:
        if self.gone or self.transport is None:
            return
        self.transport.write(packet.toLine())

    def dataReceived(self, data: bytes) -> None:
        buffer = self._buffer + data
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        if len(self._buffer) > MAX_LINE:
            self._log.error("IWCS server sent a line over {max} bytes", max=MAX_LINE)
            self.transport.loseConnection()
            return
        for line in lines:
            if self.gone:
                return
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                continue
            try:
                packet = P.parseLine(line, "S")
            except P.PacketError as e:
                self._log.error("IWCS: cannot read the server's packet: {error}", error=e)
                continue
            self.packetReceived(packet)

    # -- packets in ---------------------------------------------------------------------

    def packetReceived(self, packet: P.Packet) -> None:
        """Every packet comes here first: answers fire requests, the rest go to callbacks."""
        requestId = getattr(packet, "id", None)
        if isinstance(packet, P.Welcome):
            self._welcomed(packet)
            return
        if requestId is not None and requestId == self._loginId and isinstance(packet, P.Error):
            self._loginRefused(packet)
            return
        if requestId is not None and requestId in self._pending:
            if isinstance(packet, (P.Ok, P.Pong, P.Error, P.Bye)):
                entry = self._pending.pop(requestId)
                if isinstance(packet, P.Error):
                    entry.deferred.errback(IwcsError.of(packet))
                elif isinstance(packet, P.Ok):
                    entry.deferred.callback((packet, entry.items))
                else:
                    entry.deferred.callback((packet, []))
                if not isinstance(packet, P.Bye):
                    return
            else:
                self._pending[requestId].items.append(packet)
                return
        if isinstance(packet, P.ChatEvent):
            self._chatEvent(packet)
            return
        handler = self._CALLBACKS.get(type(packet))
        if handler is not None:
            if isinstance(packet, P.ChatOpened) and packet.visitor:
                self.factory.chatVisitor[packet.chat] = packet.visitor
            getattr(self, handler)(packet)
        elif isinstance(packet, P.Pong):
            if packet.id == self._pingOut:
                self._pingOut = None

    _CALLBACKS: dict[type[P.Packet], str] = {
        P.ChatOffered: "chatRequested",
        P.ChatOpened: "chatOpened",
        P.ChatWithdrawn: "chatWithdrawn",
        P.ConferenceInvited: "conferenceInvited",
        P.Queue: "queueChanged",
        P.QueuePosition: "queuePosition",
        P.VisitorInfo: "visitorUpdated",
        P.VisitorGone: "visitorGone",
        P.OperatorInfo: "operatorStatusChanged",
        P.LicenceStatus: "licenceStatusChanged",
        P.Invitation: "invitationReceived",
        P.InvitationAnswered: "invitationAnswered",
        P.LeftMessage: "leftMessageReceived",
        P.Handled: "messagesHandled",
        P.Error: "errorReceived",
        P.Bye: "byeReceived",
    }

    _EVENTS: dict[type[P.Packet], str] = {
        P.MessageEvent: "messageReceived",
        P.StateEvent: "chatStateReceived",
        P.ReadEvent: "readReceived",
        P.JoinEvent: "participantJoined",
        P.LeaveEvent: "participantLeft",
        P.TransferEvent: "chatTransferred",
        P.InviteEvent: "operatorInvited",
        P.CloseEvent: "chatClosed",
    }

    def _chatEvent(self, event: P.ChatEvent) -> None:
        f = self.factory
        if event.seq is not None:
            last = f.lastSeqs.get(event.chat, 0)
            if event.seq <= last:
                return  # seen before a reconnect
            f.lastSeqs[event.chat] = event.seq
        if event.visitor:
            f.chatVisitor[event.chat] = event.visitor
        getattr(self, self._EVENTS[type(event)])(event)
        if isinstance(event, P.CloseEvent):
            f.lastSeqs.pop(event.chat, None)
            f.chatVisitor.pop(event.chat, None)
        elif isinstance(event, P.LeaveEvent) and self.welcome is not None:
            me = f"op:{self.welcome.operator}"
            if event.who == me and event.reason != "disconnected":
                f.lastSeqs.pop(event.chat, None)

    def _welcomed(self, welcome: P.Welcome) -> None:
        self.welcome = welcome
        f = self.factory
        interval = f.pingInterval or max(1.0, welcome.idle / 3)
        self._pinger = task.LoopingCall(self._ping)
        self._pinger.clock = f.clock
        self._pinger.start(interval, now=False)
        if f.kind == "control":
            for visitor in sorted(f.followed):
                resume = {c: s for c, s in f.lastSeqs.items() if f.chatVisitor.get(c) == visitor}
                self.follow(visitor, resume).addErrback(self._followFailed, visitor)
        waiting, self._loggedIn = self._loggedIn, []
        self.loggedInAs(welcome)
        for d in waiting:
            d.callback(self)

    def _followFailed(self, failure: Failure, visitor: str) -> None:
        self._log.failure("following {visitor} again", failure, visitor=visitor)

    def _loginRefused(self, error: P.Error) -> None:
        problem = IwcsError.of(error)
        self._log.error("IWCS login refused: {error}", error=problem)
        self.factory.loginRefused(problem)
        waiting, self._loggedIn = self._loggedIn, []
        for d in waiting:
            d.errback(problem)
        self.transport.loseConnection()

    def _ping(self) -> None:
        if self._pingOut is not None:
            self._log.warn("IWCS server did not answer a PING; dropping the connection")
            self.transport.abortConnection()
            return
        self._pingOut = self._nextId()
        self.sendPacket(P.Ping(id=self._pingOut))

    # -- requests ------------------------------------------------------------------------

    def _nextId(self) -> str:
        return str(next(self._ids))

    def request(self, packet: P.Request) -> defer.Deferred[tuple[P.Packet, list[P.Packet]]]:
        """
        Send a request; fires with C{(answer, items)}: the OK (or PONG) and
        the packets that came with it (a list's VISITOR packets, …).
        """
        if self.gone:
            return defer.fail(ConnectionGone())
        requestId = self._nextId()
        d: defer.Deferred[tuple[P.Packet, list[P.Packet]]] = defer.Deferred()
        self._pending[requestId] = _Pending(d)
        self.sendPacket(attr.evolve(cast(Any, packet), id=requestId))
        return d

    def _ok(self, packet: P.Request, field: str | None = None) -> defer.Deferred[Any]:
        def pick(result: tuple[P.Packet, list[P.Packet]]) -> Any:
            answer = result[0]
            return getattr(answer, field) if field else answer

        return self.request(packet).addCallback(pick)

    def _items(self, packet: P.Request) -> defer.Deferred[list[Any]]:
        return self.request(packet).addCallback(lambda result: result[1])

    def ping(self) -> defer.Deferred[int]:
        """Fires with the server's time (ms)."""
        return self._ok(P.Ping(), "time")

    def logout(self) -> defer.Deferred[Any]:
        """Log out; the server answers BYE and closes (the service does not reconnect)."""
        self.factory.stopping = True
        return self._ok(P.Logout())

    # agents

    def setStatus(self, status: OperatorStatus) -> defer.Deferred[Any]:
        self.factory.status = status
        return self._ok(P.SetStatus(status=status))

    def visitors(self) -> defer.Deferred[list[P.VisitorInfo]]:
        return self._items(P.ListVisitors())

    def operators(self) -> defer.Deferred[list[P.OperatorInfo]]:
        return self._items(P.ListOperators())

    def accept(self, chat: int) -> defer.Deferred[int]:
        """Accept an offered chat; fires with the sequence of your JoinEvent."""
        return self._ok(P.Accept(chat=chat), "seq")

    def decline(self, chat: int) -> defer.Deferred[Any]:
        return self._ok(P.Decline(chat=chat))

    def send(self, chat: int, text: str, visitor: str | None = None) -> defer.Deferred[int]:
        """Post a message; fires with its sequence once the server has stored it."""
        return self._ok(P.SendMessage(chat=chat, text=text, visitor=visitor), "seq")

    def chatState(
        self, chat: int, state: ChatState, visitor: str | None = None
    ) -> defer.Deferred[Any]:
        return self._ok(P.SendState(chat=chat, state=state, visitor=visitor))

    def markRead(
        self,
        chat: int,
        seqs: Iterable[int],
        status: AcceptStatus = AcceptStatus.READ,
        visitor: str | None = None,
    ) -> defer.Deferred[int]:
        return self._ok(
            P.SendRead(chat=chat, seqs=tuple(seqs), status=status, visitor=visitor), "seq"
        )

    def transfer(
        self, chat: int, operator: int | None = None, group: int | None = None
    ) -> defer.Deferred[Any]:
        return self._ok(P.Transfer(chat=chat, operator=operator, group=group))

    def invite(self, chat: int, operator: int) -> defer.Deferred[int]:
        return self._ok(P.Invite(chat=chat, operator=operator), "seq")

    def join(self, chat: int) -> defer.Deferred[int]:
        return self._ok(P.Join(chat=chat), "seq")

    def leave(self, chat: int, visitor: str | None = None) -> defer.Deferred[Any]:
        return self._ok(P.Leave(chat=chat, visitor=visitor))

    def close(self, chat: int) -> defer.Deferred[Any]:
        return self._ok(P.Close(chat=chat))

    def inviteVisitor(self, visitor: str, text: str = "") -> defer.Deferred[str]:
        """Fires with the invitation's id."""
        return self._ok(P.InviteVisitor(visitor=visitor, text=text), "invitation")

    def privateChat(self, operator: int) -> defer.Deferred[int]:
        """Fires with the private chat's id."""
        return self._ok(P.Private(operator=operator), "chat")

    def history(self, visitor: str, limit: int = 20) -> defer.Deferred[list[P.HistoryMessage]]:
        return self._items(P.History(visitor=visitor, limit=limit))

    def markHandled(self, ids: Iterable[int]) -> defer.Deferred[tuple[int, ...]]:
        return self._ok(P.MarkHandled(ids=tuple(ids)), "ids")

    # controls

    def reportVisitor(self, visitor: str, **fields: Any) -> defer.Deferred[bool]:
        """
        A page view of a visitor (C{url}, C{title}, C{referrer}, C{agent},
        C{address}; signed identity: C{name}, C{email}, C{customer_id},
        C{expires}, C{signature}).  Fires with whether the identity verified.
        """
        return self._ok(P.ReportVisitor(visitor=visitor, **fields), "verified")

    def follow(self, visitor: str, resume: dict[int, int] | None = None) -> defer.Deferred[Any]:
        self.factory.followed.add(visitor)
        return self._ok(P.Follow(visitor=visitor, resume=resume or None))

    def unfollow(self, visitor: str) -> defer.Deferred[Any]:
        self.factory.followed.discard(visitor)
        return self._ok(P.Unfollow(visitor=visitor))

    def requestChat(
        self,
        visitor: str,
        name: str = "",
        email: str = "",
        group: int | None = None,
        text: str = "",
    ) -> defer.Deferred[int]:
        """Ask for a chat for a visitor (who is then followed); fires with its id."""
        self.factory.followed.add(visitor)
        return self._ok(
            P.RequestChat(
                visitor=visitor,
                name=name or None,
                email=email or None,
                group=group,
                text=text or None,
            ),
            "chat",
        )

    def answerInvitation(
        self, visitor: str, accept: bool, name: str = "", email: str = ""
    ) -> defer.Deferred[int | None]:
        self.factory.followed.add(visitor)
        return self._ok(
            P.AnswerInvitation(
                visitor=visitor, accept=accept, name=name or None, email=email or None
            ),
            "chat",
        )


def _fields(error: P.Error) -> dict[str, Any]:
    return {"code": error.code, "name": error.name, "text": error.text}


class IwcsClientFactory(protocol.ClientFactory):
    """
    The credentials and the state that outlives one connection: the last
    sequence seen per chat, the visitors a control follows.

    @param kind: C{"agent"} (nick and password) or C{"control"} (key, or
        nick and password).
    @param status: the status to log in with (C{None}: keep the current one).
    @param clock: the reactor (for the keep-alive PINGs).
    """

    protocol = IwcsClient  # type: ignore[assignment]

    def __init__(
        self,
        licence: int,
        *,
        nick: str | None = None,
        password: str | None = None,
        key: str | None = None,
        kind: str = "agent",
        status: OperatorStatus | None = None,
        protocol: type[IwcsClient] | None = None,
        clock: Any = None,
        clientName: str = "livechat.client",
        pingInterval: float | None = None,
    ) -> None:
        if kind not in P.KINDS:
            raise ValueError(f"kind is one of {P.KINDS}")
        self.licence = licence
        self.nick = nick
        self.password = password
        self.key = key
        self.kind = kind
        self.status = status
        if protocol is not None:
            self.protocol = protocol
        if clock is None:
            raise TypeError("IwcsClientFactory needs the clock (the reactor)")
        self.clock = clock
        self.clientName = clientName
        self.pingInterval = pingInterval
        self.lastSeqs: dict[int, int] = {}
        self.chatVisitor: dict[int, str] = {}
        self.followed: set[str] = set()
        self.stopping = False
        self.service: IwcsClientService | None = None
        self.refusal: IwcsError | None = None

    def buildProtocol(self, addr: Any) -> IwcsClient:  # type: ignore[override]
        p = self.protocol()
        p.factory = self
        return p

    def loginRefused(self, error: IwcsError) -> None:
        """A refused login will not get better by retrying: stop reconnecting."""
        self.refusal = error
        self.stopping = True
        if self.service is not None and self.service.running:
            self.service.stopService()


class IwcsClientService(ClientService):
    """
    Keeps one logged-in connection: reconnects with backoff when it is lost
    (resuming from the last sequences), stops when the login is refused or
    after C{logout()}.
    """

    def __init__(self, endpoint: Any, factory: IwcsClientFactory, clock: Any, **kw: Any) -> None:
        kw.setdefault("retryPolicy", backoffPolicy(initialDelay=0.5, maxDelay=30.0))
        super().__init__(endpoint, factory, clock=clock, **kw)
        factory.service = self
        self.clientFactory = factory

    def whenLoggedIn(self) -> defer.Deferred[IwcsClient]:
        """Fires with the client once it is connected and logged in."""
        factory = self.clientFactory
        if factory.refusal is not None:
            return defer.fail(factory.refusal)

        def connected(client: Any) -> Any:
            d = client.loggedIn()

            def lost(failure: Failure) -> Any:
                failure.trap(ConnectionGone)
                if factory.refusal is not None:
                    return failure
                return self.whenLoggedIn()

            return d.addErrback(lost)

        return self.whenConnected(failAfterFailures=None).addCallback(connected)
