"""
The IWCS line protocol over TCP (or TLS): agent applications and controls.

One packet per line (L{livechat.protocols.iwcspackets}; docs/iwcs.md is the
reference).  This module is an adapter only: it parses, calls the chat core
(an L{OperatorSession} for an agent; one L{VisitorSession} per followed
visitor for a control), and turns the core's messages into packets.

Every bound is a configuration key (L{IwcsSettings}): the line length, the
idle time, the errors a connection may make, the packet rate, the data
waiting for a slow reader, the visitors one control may follow.  Bad input
is answered with an ERROR packet; too many errors or a flood end the
connection with BYE.  Requests about one chat run in the order they came;
requests about different chats run side by side.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable
from typing import Any

import attr
from twisted.internet import defer, protocol
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

import livechat
from livechat.apikeys import checkKey
from livechat.auth import LoginRefused, login
from livechat.core.errors import CoreError
from livechat.identity import IdentityKeyFile, IdentityVerifier
from livechat.interfaces import IChannel
from livechat.model import AcceptStatus
from livechat.protocols import iwcspackets as P
from livechat.storage.errors import NotFound

AGENT_PACKETS: frozenset[type[P.Packet]] = frozenset(
    {
        P.SetStatus,
        P.ListVisitors,
        P.ListOperators,
        P.Accept,
        P.Decline,
        P.InviteVisitor,
        P.History,
        P.Join,
        P.Transfer,
        P.Invite,
        P.Close,
        P.Private,
        P.MarkHandled,
    }
)
"""Packets only an agent application may send."""

CONTROL_PACKETS: frozenset[type[P.Packet]] = frozenset(
    {P.ReportVisitor, P.RequestChat, P.AnswerInvitation, P.Follow, P.Unfollow}
)
"""Packets only a control may send."""

SHARED_PACKETS: frozenset[type[P.Packet]] = frozenset(
    {P.Ping, P.Logout, P.SendMessage, P.SendState, P.SendRead, P.Leave}
)
"""Packets both kinds send (a control names the C{visitor} it acts for)."""

APPENDS: frozenset[type[P.Packet]] = frozenset({P.SendMessage, P.SendRead})
"""Requests whose work puts an append in the licence's batcher before it returns."""

COUNTED_ERRORS = frozenset(
    {
        "malformed",
        "not_logged_in",
        "wrong_kind",
        "unknown_packet",
        "missing_field",
        "bad_field",
        "line_too_long",
        "login_failed",
        "login_refused",
        "already_logged_in",
        "throttled",
    }
)
"""Errors that count towards IWCS_MAX_ERRORS (refusals of the core do not)."""


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class IwcsSettings:
    """The limits of IWCS connections; C{fromConfig} reads lc_serv.cfg."""

    maxLine: int = 16384
    idleTimeout: float = 90.0
    maxErrors: int = 10
    rate: float = 50.0
    burst: int = 200
    sendBuffer: int = 262144
    maxVisitors: int = 1000

    @classmethod
    def fromConfig(cls, config: Any) -> IwcsSettings:
        return cls(
            maxLine=config["IWCS_MAX_LINE"],
            idleTimeout=config["IWCS_IDLE_TIMEOUT"],
            maxErrors=config["IWCS_MAX_ERRORS"],
            rate=config["IWCS_RATE"],
            burst=config["IWCS_BURST"],
            sendBuffer=config["IWCS_SEND_BUFFER"],
            maxVisitors=config["IWCS_MAX_VISITORS"],
        )


class TokenBucket:
    """C{rate} tokens a second, at most C{burst} saved up; C{take()} spends one."""

    def __init__(self, clock: Any, rate: float, burst: int) -> None:
        self._clock = clock
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = clock.seconds()

    def take(self) -> bool:
        now = self._clock.seconds()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class IwcsFactory(protocol.Factory):
    """
    Makes L{IwcsProtocol}s and holds what they share: the core, the portal
    (operators' logins), the store (API keys of controls), the settings, the
    clock, the channel logs, the key that verifies signed identities and,
    when the web side runs, its reception (office hours, left messages).
    """

    _log = Logger()
    noisy = False

    def __init__(
        self,
        core: Any,
        portal: Any,
        store: Any,
        settings: IwcsSettings,
        clock: Any,
        *,
        logs: Any = None,
        reception: Any = None,
        identity: IdentityKeyFile | None = None,
        keyPath: str | None = None,
    ) -> None:
        self.core = core
        self.portal = portal
        self.store = store
        self.settings = settings
        self.clock = clock
        self.logs = logs
        self.reception = reception
        self._ownsKey = identity is None
        self.identity = identity or IdentityKeyFile(keyPath, clock)
        self.connections: set[IwcsProtocol] = set()

    def buildProtocol(self, addr: Any) -> IwcsProtocol:  # type: ignore[override]
        p = IwcsProtocol()
        p.factory = self
        return p

    # -- the identity key ----------------------------------------------------------

    @property
    def verifier(self) -> IdentityVerifier | None:
        return self.identity.verifier

    @verifier.setter
    def verifier(self, verifier: IdentityVerifier | None) -> None:
        self.identity.verifier = verifier

    def startFactory(self) -> None:
        if self._ownsKey and not self.identity.loaded:
            self.identity.load()

    def stopFactory(self) -> None:
        for connection in list(self.connections):
            connection.bye("shutdown", "the server is stopping")

    def reconfigure(self, config: Any) -> None:
        """SIGHUP: the live limits, and the key file read again."""
        fresh = IwcsSettings.fromConfig(config)
        self.settings = attr.evolve(
            self.settings,
            idleTimeout=fresh.idleTimeout,
            maxErrors=fresh.maxErrors,
            rate=fresh.rate,
            burst=fresh.burst,
            sendBuffer=fresh.sendBuffer,
            maxVisitors=fresh.maxVisitors,
        )
        for connection in self.connections:
            connection.settingsChanged()
        if self._ownsKey:
            self.identity.reconfigure(config)

    # -- logs --------------------------------------------------------------------

    def logging(self, channel: str) -> bool:
        return self.logs is not None and self.logs.enabled(channel)


def _start(work: Callable[[], Any]) -> defer.Deferred[Any]:
    """Call C{work}: its Deferred, its coroutine as one, or its exception as a failure."""
    try:
        result = work()
    except Exception:
        return defer.fail()
    if isinstance(result, defer.Deferred):
        return result
    return defer.ensureDeferred(result)


@implementer(IChannel)
class _FollowedVisitor:
    """The channel of one visitor a control follows: their messages, tagged."""

    def __init__(self, connection: IwcsProtocol, visitorId: str) -> None:
        self.connection = connection
        self.visitorId = visitorId

    def deliver(self, message: dict[str, Any]) -> None:
        self.connection.deliverFor(self.visitorId, message)

    def close(self, reason: str) -> None:
        self.connection.unfollow(self.visitorId)


@implementer(IChannel, IPushProducer)
class IwcsProtocol(protocol.Protocol):
    """One IWCS connection: an agent application or a control."""

    _log = Logger()
    factory: IwcsFactory
    transport: Any

    def __init__(self) -> None:
        self._buffer = b""
        self._discarding = False
        self._gone = False
        self._errors = 0
        self._bucket: TokenBucket | None = None
        self._idle: Any = None
        self.kind: str | None = None
        self.licence: int | None = None
        self.session: Any = None
        self.visitors: dict[str, Any] = {}
        self._loggingIn = False
        self._held: list[dict[str, Any]] | None = None
        self._queue: collections.deque[bytes] | None = None
        self._queued = 0
        self._paused = False
        self._burst = False
        self._tails: dict[Any, list[Any]] = {}
        self._online: bool | None = None
        self.peer = ""

    def __repr__(self) -> str:
        return f"<IwcsProtocol {self.kind or 'new'} {self.licence} {self.peer}>"

    @property
    def settings(self) -> IwcsSettings:
        return self.factory.settings

    @property
    def clock(self) -> Any:
        return self.factory.clock

    # -- the connection ---------------------------------------------------------------

    def connectionMade(self) -> None:
        self.peer = getattr(self.transport.getPeer(), "host", "") or ""
        self.factory.connections.add(self)
        self.transport.registerProducer(self, True)
        s = self.settings
        self._bucket = TokenBucket(self.clock, s.rate, s.burst)
        self._idle = self.clock.callLater(s.idleTimeout, self._idleTimedOut)
        if self.factory.logging("sockets"):
            self.factory.logs.write("sockets", "IWCS open {peer}", peer=self.peer)

    def settingsChanged(self) -> None:
        s = self.settings
        if self._bucket is not None:
            self._bucket.rate, self._bucket.burst = s.rate, s.burst

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self._gone = True
        self.factory.connections.discard(self)
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None
        self._queue = None
        if self.session is not None and not self._loggingIn:
            self.session.disconnect()
        for session in self.visitors.values():
            session.disconnect()
        self.visitors.clear()
        if self.factory.logging("sockets"):
            self.factory.logs.write(
                "sockets",
                "IWCS closed {peer} {kind} {licence}",
                peer=self.peer,
                kind=self.kind or "-",
                licence=self.licence or "-",
            )

    def _idleTimedOut(self) -> None:
        self._idle = None
        self.bye("idle", f"nothing received for {self.settings.idleTimeout:g} s")

    def bye(self, reason: str, text: str, requestId: str | None = None) -> None:
        """Say why, and close (after what is queued has been written)."""
        if self._gone:
            return
        self._send(P.Bye(id=requestId, reason=reason, text=text))
        self._gone = True
        if self._queue:
            for data in self._queue:
                self.transport.write(data)
            self._queue = None
        self.transport.loseConnection()

    # -- writing (a push producer for the transport) --------------------------------------

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        while self._queue and not self._paused:
            data = self._queue.popleft()
            self._queued -= len(data)
            self.transport.write(data)
        if not self._queue:
            self._queue = None

    def stopProducing(self) -> None:
        self._gone = True
        self._queue = None

    def _send(self, packet: P.Packet) -> None:
        if self._gone:
            return
        data = packet.toLine()
        if self.factory.logging("packets"):
            self.factory.logs.write(
                "packets",
                "> {peer} {licence} {line}",
                peer=self.peer,
                licence=self.licence or "-",
                line=packet.toText(mask=True),
            )
        if not self._paused and not self._queue:
            self.transport.write(data)
            return
        if self._queue is None:
            self._queue = collections.deque()
        self._queue.append(data)
        self._queued += len(data)
        if self._queued > self.settings.sendBuffer and not self._burst:
            self._log.warn(
                "IWCS {kind} {peer} of licence {licence} cannot keep up "
                "({bytes} bytes waiting); cutting the connection",
                kind=self.kind,
                peer=self.peer,
                licence=self.licence,
                bytes=self._queued,
            )
            self._gone = True
            self._queue = None
            self._queued = 0
            self.transport.abortConnection()

    # -- IChannel ------------------------------------------------------------------

    def deliver(self, message: dict[str, Any]) -> None:
        """A message of the core for the agent."""
        if self._held is not None:
            self._held.append(message)
            return
        self._deliverPackets(message, None)

    def close(self, reason: str) -> None:
        self.bye("closed", reason)

    def deliverFor(self, visitorId: str, message: dict[str, Any]) -> None:
        """A message of the core for a visitor the control follows."""
        if message.get("type") == "licence.status":
            online = bool(message.get("online"))
            if online == self._online:
                return
            self._online = online
        self._deliverPackets(message, visitorId)

    def _deliverPackets(self, message: dict[str, Any], visitorId: str | None) -> None:
        try:
            packets = P.packetsFor(message, visitorId)
        except Exception:
            self._log.failure("IWCS: cannot carry {message!r}", message=message)
            return
        for packet in packets:
            self._send(packet)

    # -- reading ------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        buffer = self._buffer + data
        maxLine = self.settings.maxLine
        start = 0
        while not self._gone:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            line = buffer[start:end]
            start = end + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if self._discarding:
                self._discarding = False
                continue
            if len(line) > maxLine:
                self._lineTooLong(len(line))
                continue
            self._lineReceived(line)
        rest = buffer[start:]
        if self._gone:
            self._buffer = b""
            return
        # A line of exactly maxLine bytes may wait for its CRLF here.
        if len(rest) > maxLine + 1:
            if not self._discarding:
                self._lineTooLong(len(rest))
                self._discarding = True
            rest = b""
        self._buffer = rest

    def _lineTooLong(self, length: int) -> None:
        if not self._count():
            return
        self._error(
            P.PacketError(
                "line_too_long", f"a line has at most {self.settings.maxLine} bytes ({length}+)"
            )
        )

    def _count(self) -> bool:
        """Count a packet against the rate; a flood ends the connection."""
        if self._idle is not None and self._idle.active():
            self._idle.reset(self.settings.idleTimeout)
        assert self._bucket is not None
        if self._bucket.take():
            return True
        self._log.warn(
            "IWCS {peer} (licence {licence}) floods: over {rate}/s beyond a burst of "
            "{burst}; closing",
            peer=self.peer,
            licence=self.licence,
            rate=self.settings.rate,
            burst=self.settings.burst,
        )
        self.bye("flood", f"more than {self.settings.rate:g} packets a second")
        return False

    def _lineReceived(self, line: bytes) -> None:
        if not self._count():
            return
        if self.factory.logging("packets"):
            self.factory.logs.write(
                "packets",
                "< {peer} {licence} {line}",
                peer=self.peer,
                licence=self.licence or "-",
                line=P.maskLine(line.decode("utf-8", "replace")),
            )
        if not line.strip():
            return  # blank lines are allowed (keep-alives of simple clients)
        try:
            packet = P.parseLine(line, "C")
        except P.PacketError as e:
            self._error(e)
            return
        self._dispatch(packet)

    def _error(self, e: P.PacketError | CoreError, requestId: str | None = None) -> None:
        if isinstance(e, CoreError):
            name = e.code if e.code in P.ERRORS else "bad_request"
            error = P.Error.of(name, e.message, requestId)
        else:
            error = P.Error.of(e.name, e.text, e.requestId or requestId, e.number)
        self._send(error)
        if error.name in COUNTED_ERRORS:
            self._errors += 1
            if self._errors >= self.settings.maxErrors:
                self.bye("too_many_errors", f"{self._errors} protocol errors")

    # -- dispatch --------------------------------------------------------------------

    def _dispatch(self, packet: P.Packet) -> None:
        assert isinstance(packet, P.Request)
        requestId = packet.id
        kind = type(packet)
        if isinstance(packet, P.Ping):
            self._send(P.Pong(id=requestId, time=self._nowMS()))
            return
        if isinstance(packet, P.Login):
            if self.kind is not None or self._loggingIn:
                self._error(
                    P.PacketError("already_logged_in", "this connection is logged in"), requestId
                )
                return
            self._run(None, requestId, lambda: self._login(packet))
            return
        if self.kind is None:
            text = "wait for WELCOME" if self._loggingIn else "log in first (IWCS0001C)"
            self._error(P.PacketError("not_logged_in", text, requestId, kind.NUMBER))
            return
        if isinstance(packet, P.Logout):
            self.bye("logout", "goodbye", requestId)
            return
        if self.kind == "agent":
            allowed = kind in AGENT_PACKETS or kind in SHARED_PACKETS
        else:
            allowed = kind in CONTROL_PACKETS or kind in SHARED_PACKETS
        if not allowed:
            self._error(
                P.PacketError(
                    "wrong_kind",
                    f"{kind.header()} is not for a {self.kind}",
                    requestId,
                    kind.NUMBER,
                )
            )
            return
        handler = self._handlers[kind]
        chat = getattr(packet, "chat", None)
        self._run(chat, requestId, lambda: handler(self, packet), kind in APPENDS)

    def _run(
        self,
        chat: int | None,
        requestId: str | None,
        work: Callable[[], Awaitable[Any]],
        append: bool = False,
    ) -> None:
        """
        Do a request and answer it (OK from its result, or ERROR).  Requests
        about one chat wait for the one before to finish, but for an
        C{append} (a message or a receipt) after another append: both went
        to the licence's append batcher in this order, which stores and
        answers them in it, so the second need not wait for the first's
        commit (a client that sends without waiting fills a batch).
        Plain Deferred callbacks, not a coroutine: this runs for every packet.
        """
        tail = self._tails.get(chat) if chat is not None else None
        # [the request's Deferred, whether it is an append now in the batcher]
        entry: list[Any]
        if tail is None or (append and tail[1]):
            d = _start(work)
            entry = [d, append]
        else:
            d = defer.Deferred()
            entry = [d, False]

            def next(_: Any) -> None:
                entry[1] = append
                _start(work).chainDeferred(d)

            tail[0].addBoth(next)
        if chat is not None:
            self._tails[chat] = entry
        d.addBoth(self._done, requestId, chat, d)

    def _done(
        self, result: Any, requestId: str | None, chat: int | None, d: defer.Deferred[Any]
    ) -> None:
        """A request's end: its answer (or error), and the chat's tail let go."""
        try:
            if isinstance(result, Failure):
                self._refused(result, requestId)
            else:
                self._answer(result, requestId)
        except Exception:
            self._refused(Failure(), requestId)
        finally:
            if chat is not None:
                tail = self._tails.get(chat)
                if tail is not None and tail[0] is d:
                    del self._tails[chat]

    def _answer(self, answer: P.Packet | None, requestId: str | None) -> None:
        if answer is not None:
            if answer.id != requestId:  # type: ignore[attr-defined]
                answer = attr.evolve(answer, id=requestId)  # type: ignore[misc]  # attrs subclasses
            self._send(answer)

    def _refused(self, failure: Failure, requestId: str | None) -> None:
        e = failure.value
        if isinstance(e, (CoreError, P.PacketError)):
            self._error(e, requestId)
        elif isinstance(e, NotFound):
            self._error(CoreError("not_found", str(e)), requestId)
        elif isinstance(e, LoginRefused):
            name = {"bad_credentials": "login_failed", "throttled": "throttled"}.get(
                e.code, "login_refused"
            )
            self._error(P.PacketError(name, e.message), requestId)
        else:
            self._log.failure("IWCS request of {connection}", failure, connection=self)
            self._send(P.Error.of("internal", "the server failed; try again", requestId))

    def _nowMS(self) -> int:
        return int(self.clock.seconds() * 1000)

    # -- logging in ---------------------------------------------------------------------

    async def _login(self, p: P.Login) -> P.Packet | None:
        f = self.factory
        self._loggingIn = True
        try:
            if p.kind == "agent":
                return await self._loginAgent(p)
            return await self._loginControl(p)
        finally:
            self._loggingIn = False
            if self._gone and self.session is not None:
                self.session.disconnect()
            if self.kind is not None and f.logging("packets"):
                f.logs.write(
                    "packets",
                    "= {peer} logged in as {kind} of {licence}",
                    peer=self.peer,
                    kind=self.kind,
                    licence=self.licence,
                )

    async def _loginAgent(self, p: P.Login) -> P.Packet | None:
        if p.nick is None or p.password is None:
            raise P.PacketError("missing_field", "an agent logs in with nick and password")
        f = self.factory
        avatar = await login(f.portal, p.licence, p.nick, p.password, self.peer)
        if self._gone:
            return None
        session = f.core.connectOperator(
            avatar.licence, avatar.operator, self, client=f"iwcs {p.client or ''}".strip()
        )
        self.session = session
        self._held = []
        try:
            await session.start(p.resume or {}, p.status)
        except BaseException:
            self._held = None
            self.session = None
            session.disconnect()
            raise
        held, self._held = self._held, None
        if self._gone:
            return None
        self.kind = "agent"
        self._loggingIn = False
        self.licence = avatar.licence.number
        info = await f.core.operatorInfo(self.licence, avatar.operator.id)
        team = getattr(session, "teamChatId", None)
        self._log.info(
            "IWCS agent {nick} of licence {licence} logged in from {peer}",
            nick=avatar.operator.nick,
            licence=self.licence,
            peer=self.peer,
        )
        self._sendWelcome(
            p,
            operator=avatar.operator.id,
            nick=avatar.operator.nick,
            name=avatar.operator.displayName,
            status=info.status if info is not None else None,
            team=team,
            chats=tuple(sorted(c for c in session.lastSequences() if c != team)),
        )
        # The backlog goes out whatever its size; the send limit is for later.
        self._burst = True
        try:
            for message in held:
                self.deliver(message)
        finally:
            self._burst = False
        return None

    async def _loginControl(self, p: P.Login) -> P.Packet | None:
        f = self.factory
        if p.key is not None:
            key = await checkKey(f.store, p.key, licence=p.licence, scope="control")
            if key is None:
                raise LoginRefused("bad_credentials", "wrong licence or key")
            licence = await f.store.getLicence(p.licence)
            if licence is None:
                raise LoginRefused("bad_credentials", "wrong licence or key")
            if licence.disabled:
                raise LoginRefused("licence_disabled", f"licence {licence.number} is disabled")
            if licence.isExpired(self._nowMS()):
                raise LoginRefused("expired", f"licence {licence.number} has expired")
        elif p.nick is not None and p.password is not None:
            avatar = await login(f.portal, p.licence, p.nick, p.password, self.peer)
            licence = avatar.licence
        else:
            raise P.PacketError(
                "missing_field", "a control logs in with key (or nick and password)"
            )
        if self._gone:
            return None
        self.kind = "control"
        self._loggingIn = False
        self.licence = licence.number
        self._online = await f.core.isLicenceOnline(self.licence)
        self._log.info(
            "IWCS control of licence {licence} logged in from {peer}",
            licence=self.licence,
            peer=self.peer,
        )
        self._sendWelcome(p)
        self._send(P.LicenceStatus(online=self._online))
        return None

    def _sendWelcome(self, p: P.Login, **fields: Any) -> None:
        f = self.factory
        assert self.licence is not None and self.kind is not None
        self._send(
            P.Welcome(
                id=p.id,
                licence=self.licence,
                kind=self.kind,
                version=P.PROTOCOL_VERSION,
                server=f"livechat {livechat.__version__}",
                time=self._nowMS(),
                max_line=self.settings.maxLine,
                max_message=f.core.settings.maxMessageLength,
                idle=int(self.settings.idleTimeout),
                **fields,
            )
        )

    # -- an agent's requests ---------------------------------------------------------------

    async def _status(self, p: P.SetStatus) -> P.Packet:
        await self.session.setStatus(p.status)
        return P.Ok()

    async def _visitors(self, p: P.ListVisitors) -> P.Packet:
        visitors = await self.session.visitors()
        for v in visitors:
            self._send(P.visitorPacket(v, p.id))
        return P.Ok(count=len(visitors))

    async def _operators(self, p: P.ListOperators) -> P.Packet:
        operators = await self.session.operators()
        for o in operators:
            self._send(P.operatorPacket(o, p.id))
        return P.Ok(count=len(operators))

    async def _accept(self, p: P.Accept) -> P.Packet:
        return P.Ok(seq=await self.session.accept(p.chat), chat=p.chat)

    async def _decline(self, p: P.Decline) -> P.Packet:
        await self.session.decline(p.chat)
        return P.Ok(chat=p.chat)

    async def _inviteVisitor(self, p: P.InviteVisitor) -> P.Packet:
        return P.Ok(invitation=await self.session.inviteVisitor(p.visitor, p.text or ""))

    async def _history(self, p: P.History) -> P.Packet:
        chats = await self.session.history(p.visitor, p.limit or 20)
        count = 0
        for chat in chats:
            for m in chat["messages"]:
                event = m["event"]
                if event.get("type") != "ContentEvent":
                    continue
                meta = m.get("originatorMetadata") or {}
                self._send(
                    P.HistoryMessage(
                        id=p.id,
                        chat=chat["chatId"],
                        status=chat["status"],
                        created=chat["createdAt"] or 0,
                        closed=chat["closedAt"],
                        seq=m["sequence"],
                        time=m["serverTimestamp"],
                        sender=m["originatorId"],
                        role=meta.get("role", "SYSTEM"),
                        name=meta.get("name", ""),
                        text=event.get("message", ""),
                    )
                )
                count += 1
        return P.Ok(count=count)

    async def _join(self, p: P.Join) -> P.Packet:
        return P.Ok(seq=await self.session.join(p.chat), chat=p.chat)

    async def _transfer(self, p: P.Transfer) -> P.Packet:
        await self.session.transfer(p.chat, toOperator=p.operator, toGroup=p.group)
        return P.Ok(chat=p.chat)

    async def _invite(self, p: P.Invite) -> P.Packet:
        return P.Ok(seq=await self.session.invite(p.chat, p.operator), chat=p.chat)

    async def _close(self, p: P.Close) -> P.Packet:
        await self.session.close(p.chat)
        return P.Ok(chat=p.chat)

    async def _private(self, p: P.Private) -> P.Packet:
        return P.Ok(chat=await self.session.privateChat(p.operator))

    async def _handled(self, p: P.MarkHandled) -> P.Packet:
        reception = self.factory.reception
        if reception is None:
            raise CoreError("unavailable", "left messages are not kept on this server")
        done = await reception.markHandled(self.session, list(p.ids))
        return P.Ok(ids=tuple(done))

    # -- requests of both (a control acts for a visitor) ----------------------------------

    def _actor(self, p: P.ChatRequest) -> Any:
        """The session a chat request acts through."""
        if self.kind == "agent":
            if p.visitor is not None:
                raise P.PacketError("bad_field", "visitor: only controls act for visitors")
            return self.session
        if p.visitor is None:
            raise P.PacketError("missing_field", f"{p.header()} from a control needs visitor")
        session = self.visitors.get(p.visitor)
        if session is None:
            raise CoreError("not_found", f"you do not follow visitor {p.visitor} (FOLLOW first)")
        return session

    def _message(self, p: P.SendMessage) -> defer.Deferred[P.Packet]:
        # The busiest request: a Deferred, no coroutine, and the answer has its id.
        return (
            self._actor(p)
            .send(p.chat, p.text)
            .addCallback(lambda seq: P.Ok(id=p.id, seq=seq, chat=p.chat))
        )

    async def _state(self, p: P.SendState) -> P.Packet:
        await self._actor(p).chatState(p.chat, p.state)
        return P.Ok(chat=p.chat)

    async def _read(self, p: P.SendRead) -> P.Packet:
        status = p.status or AcceptStatus.READ
        return P.Ok(seq=await self._actor(p).markRead(p.chat, list(p.seqs), status), chat=p.chat)

    async def _leave(self, p: P.Leave) -> P.Packet:
        await self._actor(p).leave(p.chat)
        return P.Ok(chat=p.chat)

    # -- a control's requests -------------------------------------------------------------

    async def _reportVisitor(self, p: P.ReportVisitor) -> P.Packet:
        f = self.factory
        assert self.licence is not None
        identity = None
        signed = {
            "licence": self.licence,
            "visitor": p.visitor,
            "name": p.name,
            "email": p.email,
            "customer_id": p.customer_id,
            "expires": p.expires,
        }
        claimed = any(v is not None for v in (p.name, p.email, p.customer_id, p.signature))
        if claimed:
            found = f.identity.verify(signed, p.signature)
            identity = found.toCore() if found is not None else None
        info: dict[str, Any] = {
            "url": p.url,
            "title": p.title,
            "referrer": p.referrer,
            "user_agent": p.agent,
            "address": p.address,
        }
        info = {k: v for k, v in info.items() if v is not None}
        if identity is not None:
            info["identity"] = identity
        await f.core.pageView(self.licence, p.visitor, **info)
        return P.Ok(verified=identity is not None)

    async def follow(self, visitorId: str, resume: dict[int, int] | None = None) -> Any:
        """Follow a visitor (if not yet); fires with their session."""
        session = self.visitors.get(visitorId)
        if session is not None:
            return session
        if len(self.visitors) >= self.settings.maxVisitors:
            raise P.PacketError(
                "too_many_visitors",
                f"a control follows at most {self.settings.maxVisitors} visitors; UNFOLLOW some",
            )
        assert self.licence is not None
        session = self.factory.core.connectVisitor(
            self.licence, visitorId, _FollowedVisitor(self, visitorId), self.peer
        )
        self.visitors[visitorId] = session
        try:
            await session.start(resume or {})
        except BaseException:
            self.visitors.pop(visitorId, None)
            session.disconnect()
            raise
        if self._gone:
            self.visitors.pop(visitorId, None)
            session.disconnect()
        return session

    def unfollow(self, visitorId: str) -> bool:
        session = self.visitors.pop(visitorId, None)
        if session is None:
            return False
        session.disconnect()
        return True

    async def _follow(self, p: P.Follow) -> P.Packet:
        session = await self.follow(p.visitor, p.resume)
        return P.Ok(count=len(session.feeds))

    async def _unfollow(self, p: P.Unfollow) -> P.Packet:
        if not self.unfollow(p.visitor):
            raise CoreError("not_found", f"you do not follow visitor {p.visitor}")
        return P.Ok()

    async def _requestChat(self, p: P.RequestChat) -> P.Packet:
        session = await self.follow(p.visitor)
        fields = dict(name=p.name or "", email=p.email or "", group=p.group, message=p.text or "")
        reception = self.factory.reception
        if reception is not None:
            chat = await reception.requestChat(session, **fields)
        else:
            chat = await session.requestChat(**fields)
        return P.Ok(chat=chat)

    async def _answerInvitation(self, p: P.AnswerInvitation) -> P.Packet:
        session = await self.follow(p.visitor)
        chat = await session.answerInvitation(p.accept, name=p.name or "", email=p.email or "")
        return P.Ok(chat=chat)

    _handlers: dict[type[P.Packet], Callable[[IwcsProtocol, Any], Awaitable[Any]]] = {
        P.SetStatus: _status,
        P.ListVisitors: _visitors,
        P.ListOperators: _operators,
        P.Accept: _accept,
        P.Decline: _decline,
        P.InviteVisitor: _inviteVisitor,
        P.History: _history,
        P.Join: _join,
        P.Transfer: _transfer,
        P.Invite: _invite,
        P.Close: _close,
        P.Private: _private,
        P.MarkHandled: _handled,
        P.SendMessage: _message,
        P.SendState: _state,
        P.SendRead: _read,
        P.Leave: _leave,
        P.ReportVisitor: _reportVisitor,
        P.Follow: _follow,
        P.Unfollow: _unfollow,
        P.RequestChat: _requestChat,
        P.AnswerInvitation: _answerInvitation,
    }


def makeFactory(
    parts: Any, reactor: Any, reception: Any = None, identity: IdentityKeyFile | None = None
) -> IwcsFactory:
    """The IWCS factory of a node (no I/O: the key file is read when it starts listening)."""
    config = parts.config
    return IwcsFactory(
        parts.core,
        parts.portal,
        parts.store,
        IwcsSettings.fromConfig(config),
        reactor,
        logs=parts.logs,
        reception=reception,
        identity=identity,
        keyPath=config.verifyKeyFile,
    )
