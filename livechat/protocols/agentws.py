"""
The web agent's WebSocket (C{/agent/ws}): Autobahn, mounted in the
twisted.web tree, speaking the core's JSON vocabulary (docs/events.md,
"Agents").  A thin adapter over L{livechat.core.hub.OperatorSession}.

 - The handshake is refused with 403 unless its C{Origin} is this server's
   own (as the browser reached it, through C{TRUSTED_PROXIES}), and with 401
   unless the agent's session cookie (C{lcs}) names a good session.
 - The first message is C{hello} with the last sequence seen per chat
   (C{resume}) and the status to take; the answer is C{welcome} (who, the
   open chats, the operators, groups and visitors), then the missed events
   of the open chats, then live messages.  Other requests: L{AgentCalls}.
 - Heartbeats are Autobahn's pings (C{WEB_PING_INTERVAL}/C{WEB_PING_TIMEOUT});
   a message is at most C{AGENT_MAX_MESSAGE_BYTES}; at most
   C{AGENT_SEND_BUFFER} bytes wait for a slow agent, beyond that it is cut
   (it reconnects and resumes).
 - The session is checked again every C{SESSION_CHECK_INTERVAL} seconds;
   logging out (here or on another node), an expired session or a disabled
   operator closes the socket with 4001.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attr
from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import defer, task
from twisted.internet.interfaces import IPushProducer, ISSLTransport
from twisted.logger import Logger
from zope.interface import implementer

from livechat import jsontext
from livechat.core import events as E
from livechat.core.errors import CoreError
from livechat.core.hub import Core, OperatorSession
from livechat.interfaces import IChannel
from livechat.model import AcceptStatus, ChatKind, ChatState, OperatorStatus, operatorRef
from livechat.protocols.webcalls import RequestRefused, error, reply, route
from livechat.protocols.websocket import parseResume
from livechat.protocols.wsbuffer import CLOSE_SERVER, ChannelSocket
from livechat.storage import reports
from livechat.websession import Session, SessionManager

CLOSE_SESSION = 4001
CLOSE_PROTOCOL = 4400
MAX_ERRORS = 10
HELLO_TIMEOUT = 10.0
SEARCH_LIMIT = 100

STATUS_NAMES = {
    "online": OperatorStatus.ONLINE,
    "away": OperatorStatus.AWAY,
    "offline": OperatorStatus.OFFLINE,
    "text_available": OperatorStatus.TEXT_AVAILABLE,
    "voice_available": OperatorStatus.VOICE_AVAILABLE,
    "invisible": OperatorStatus.INVISIBLE,
}
"""The seed's statuses by name; requests may also give the seed's numbers."""


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class AgentSettings:
    maxMessageBytes: int = 65536
    sendBuffer: int = 4194304
    pingInterval: float = 25.0
    pingTimeout: float = 20.0
    checkInterval: float = 60.0
    cannedMax: int = 1000
    cannedMaxLength: int = 2000
    rate: float = 20.0
    burst: float = 100.0

    @classmethod
    def fromConfig(cls, config: Any) -> AgentSettings:
        return cls(
            maxMessageBytes=config["AGENT_MAX_MESSAGE_BYTES"],
            sendBuffer=config["AGENT_SEND_BUFFER"],
            pingInterval=float(config["WEB_PING_INTERVAL"]),
            pingTimeout=float(config["WEB_PING_TIMEOUT"]),
            checkInterval=float(config["SESSION_CHECK_INTERVAL"]),
            cannedMax=config["CANNED_MAX_PER_LICENCE"],
            cannedMaxLength=config["CANNED_MAX_LENGTH"],
            rate=float(config["AGENT_RATE"]),
            burst=float(config["AGENT_BURST"]),
        )


def parseStatus(value: Any) -> OperatorStatus:
    if isinstance(value, str) and value.lower() in STATUS_NAMES:
        return STATUS_NAMES[value.lower()]
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return OperatorStatus(value)
        except ValueError:
            pass
    raise CoreError("bad_request", f"status is one of {', '.join(STATUS_NAMES)} (or 0-5)")


def _int(r: dict[str, Any], name: str, optional: bool = False) -> int | None:
    value = r.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**62:
        raise CoreError("bad_request", f"{name} is a positive whole number")
    return value


def _str(r: dict[str, Any], name: str, limit: int = 4000) -> str:
    value = r.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CoreError("bad_request", f"{name} is text")
    if len(value) > limit:
        raise CoreError("too_large", f"{name} has at most {limit} characters")
    return value


def chatInfo(chat: Any) -> dict[str, Any]:
    info = reports.chatJSON(chat)
    info["chatId"] = chat.id
    return info


class AgentCalls:
    """Serves an agent's requests on its L{OperatorSession}."""

    _log = Logger()

    def __init__(self, core: Core) -> None:
        self.core = core
        self._handlers: dict[
            str, Callable[[OperatorSession, dict[str, Any]], Awaitable[dict[str, Any]]]
        ] = {
            "status.set": self._status,
            "chat.accept": self._accept,
            "chat.decline": self._decline,
            "chat.send": self._send,
            "chat.state": self._state,
            "chat.read": self._read,
            "chat.transfer": self._transfer,
            "chat.invite": self._invite,
            "chat.join": self._join,
            "chat.leave": self._leave,
            "chat.close": self._close,
            "chat.info": self._info,
            "visitor.invite": self._inviteVisitor,
            "private.open": self._private,
            "history": self._history,
            "transcript": self._transcript,
            "transcripts.search": self._search,
            "operators": self._operators,
            "visitors": self._visitors,
            "ping": self._ping,
            "offline.handle": self._offlineHandled,
        }
        self.reception: Any = None
        """The node's L{Reception} (left messages), when the web side runs."""

    @property
    def types(self) -> list[str]:
        return sorted(self._handlers)

    async def call(self, session: OperatorSession, request: Any) -> dict[str, Any]:
        """Serve one request; the reply or error message (never fails)."""
        requestId: Any = None
        try:
            requestId, handler = route(request, self._handlers)
            return reply(requestId, await handler(session, request))
        except RequestRefused as e:
            return error(e.requestId, e.code, e.message)
        except CoreError as e:
            return error(requestId, e.code, e.message)
        except Exception:
            self._log.failure(
                "agent request {type!r} of licence {licence} failed",
                type=request.get("type") if isinstance(request, dict) else None,
                licence=session.licence,
            )
            return error(requestId, "internal", "the server could not do that")

    # -- presence and chats -------------------------------------------------------------

    async def _status(self, s: OperatorSession, r: dict[str, Any]) -> dict[str, Any]:
        status = parseStatus(r.get("status"))
        await s.setStatus(status)
        return {"status": int(status)}

    async def _accept(self, s: OperatorSession, r: dict[str, Any]) -> dict[str, Any]:
        return {"sequence": await s.accept(_int(r, "chatId"))}

    async def _decline(self, s: OperatorSession, r: dict[str, Any]) -> dict[str, Any]:
        await s.decline(_int(r, "chatId"))
        return {}

    async def _send(self, s: OperatorSession, r: dict[str, Any]) -> dict[str, Any]:
        return {"sequence": await s.send(_int(r, "chatId"), r.get("text"))}

    async def _state(self, s: OperatorSession, r: dict[str, Any]) -> dict[str, Any]:
        state = r.get("state")
        if state not in ChatState.__members__:
            raise CoreError("bad_request", f"state is one of {', '.join(ChatState.__members__)}")
        await s.chatState(_int(r, "chatId"), ChatState(str(state)))
        return {}

    async def _read(self, s: OperatorSession, r: dict[str, Any]) -> dict[str, Any]:
        status = r.get("status", "READ")
        if status not in AcceptStatus.__members__:
            raise CoreError("bad_request", "status is READ or ACCEPT")
        sequences = r.get("sequences")
        if not isinstance(sequences, list):
            raise CoreError("bad_request", "sequences is a list of numbers")
        sequence = await s.markRead(_int(r, "chatId"), sequences, AcceptStatus(status))
        return {"sequence": sequence}

    async def _transfer(self, s: OperatorSession, r: dict[str, Any]) -> dict[str, Any]:
        toOperator = _int(r, "operatorId", optional=True)
        toGroup = _int(r, "groupId", optional=True)
        if (toOperator is None) == (toGroup is None):
            raise CoreError("bad_request", "give operatorId or groupId")
        await s.transfer(_int(r, "chatId"), toOperator=toOperator, toGroup=toGroup)
        return {}

    async def _invite(self, s: OperatorSession, r: dict[str, Any]) -> dict[str, Any]:
        return {"sequence": await s.invite(_int(r, "chatId"), _int(r, "operatorId"))}

    async def _join(self, s: OperatorSession, r: dict[str, Any]) -> dict[str, Any]:
        return {"sequence": await s.join(_int(r, "chatId"))}

    async def _leave(self, s: OperatorSession, r: dict[str, Any]) -> dict[str, Any]:
        await s.leave(_int(r, "chatId"))
        return {}

    async def _close(self, s: OperatorSession, r: dict[str, Any]) -> dict[str, Any]:
        await s.close(_int(r, "chatId"))
        return {}

    async def _readableChat(self, s: OperatorSession, chatId: int) -> Any:
        """A chat of the licence this operator may read: visitor and team
        chats, and private chats they are in."""
        store = self.core.store.forLicence(s.licence)
        chat = await store.getChat(chatId)
        if chat is None:
            raise CoreError("not_found", f"no chat {chatId}")
        if chat.kind is ChatKind.PRIVATE:
            refs = [ref for ref, _ in await store.participants(chatId)]
            if s.ref not in refs and chatId not in s.feeds:
                raise CoreError("not_found", f"no chat {chatId}")
        return chat

    async def _info(self, s: OperatorSession, r: dict[str, Any]) -> dict[str, Any]:
        chatId = _int(r, "chatId")
        assert chatId is not None
        chat = await self._readableChat(s, chatId)
        store = self.core.store.forLicence(s.licence)
        info = chatInfo(chat)
        info["participants"] = [
            {"id": ref, "role": role} for ref, role in await store.participants(chatId)
        ]
        return info

    async def _inviteVisitor(self, s: OperatorSession, r: dict[str, Any]) -> dict[str, Any]:
        visitorId = _str(r, "visitorId", 64)
        message = _str(r, "message", self.core.settings.maxMessageLength)
        return {"invitationId": await s.inviteVisitor(visitorId, message)}

    async def _private(self, s: OperatorSession, r: dict[str, Any]) -> dict[str, Any]:
        return {"chatId": await s.privateChat(_int(r, "operatorId"))}

    # -- reading --------------------------------------------------------------------------

    async def _history(self, s: OperatorSession, r: dict[str, Any]) -> dict[str, Any]:
        visitorId = _str(r, "visitorId", 64)
        if not visitorId:
            raise CoreError("bad_request", "visitorId is required")
        limit = _int(r, "limit", optional=True) or 20
        return {"chats": await s.history(visitorId, min(limit, 100))}

    async def _transcript(self, s: OperatorSession, r: dict[str, Any]) -> dict[str, Any]:
        chatId = _int(r, "chatId")
        assert chatId is not None
        chat = await self._readableChat(s, chatId)
        store = self.core.store.forLicence(s.licence)
        info = chatInfo(chat)
        info["messages"] = [E.wire(s.licence, m) for m in await store.transcript(chatId)]
        return info

    async def _search(self, s: OperatorSession, r: dict[str, Any]) -> dict[str, Any]:
        text = _str(r, "text", 200).strip()
        if len(text) < 2:
            raise CoreError("bad_request", "search for at least 2 characters")
        limit = min(_int(r, "limit", optional=True) or 50, SEARCH_LIMIT)
        chats = await self.core.store.db.runLicence(  # type: ignore[attr-defined]  # SqlStore
            s.licence,
            "search transcripts",
            reports.listChats_txn,
            limit=limit,
            kind=ChatKind.VISITOR.value,
            text=text,
        )
        return {"chats": [chatInfo(c) for c in reversed(chats)]}

    async def _operators(self, s: OperatorSession, r: dict[str, Any]) -> dict[str, Any]:
        return {"operators": await operatorsList(self.core, s.licence)}

    async def _visitors(self, s: OperatorSession, r: dict[str, Any]) -> dict[str, Any]:
        return {"visitors": await s.visitors()}

    async def _ping(self, s: OperatorSession, r: dict[str, Any]) -> dict[str, Any]:
        return {"time": int(self.core.clock.seconds() * 1000)}

    async def _offlineHandled(self, s: OperatorSession, r: dict[str, Any]) -> dict[str, Any]:
        if self.reception is None:
            raise CoreError("unavailable", "left messages are not kept on this node")
        return {"ids": await self.reception.markHandled(s, r.get("ids") or [])}


async def operatorsList(core: Core, licence: int) -> list[dict[str, Any]]:
    """Every operator of the licence (not disabled), with the status of those online."""
    online = {o["id"]: o["status"] for o in await core.operatorsOnline(licence)}
    result = []
    for op in await core.store.listOperators(licence):
        if op.disabled:
            continue
        ref = operatorRef(op.id)
        result.append(
            {
                "id": op.id,
                "ref": ref,
                "nick": op.nick,
                "name": op.displayName,
                "status": online.get(ref, int(OperatorStatus.OFFLINE)),
            }
        )
    return result


@implementer(IChannel, IPushProducer)
class AgentWebSocket(ChannelSocket, WebSocketServerProtocol):  # type: ignore[misc]  # Autobahn
    """One browser tab of a logged-in operator: the L{IChannel} of its session."""

    _log = Logger()

    def __init__(self) -> None:
        super().__init__()
        self.web: Session | None = None
        self.session: OperatorSession | None = None
        self._starting = False
        self._held: list[dict[str, Any]] | None = None
        self._burst = False
        self._gone = False
        self._errors = 0
        self._helloTimer: Any = None
        self._check: task.LoopingCall | None = None
        self._cancelEnded: Callable[[], None] | None = None

    @property
    def front(self) -> Any:
        return self.factory.front

    # -- sending, bounded (wsbuffer) ------------------------------------------------

    def connectionMade(self) -> None:
        super().connectionMade()
        self.registerAsProducer()

    def sendLimit(self) -> int:
        return int(self.front.settings.sendBuffer)

    def tooSlow(self, queued: int) -> None:
        self._log.warn(
            "agent {session} cannot keep up ({bytes} bytes waiting); cutting the connection",
            session=self.session,
            bytes=queued,
        )

    # IChannel (deliver, close): ChannelSocket.

    # -- the handshake -----------------------------------------------------------------

    def onConnect(self, request: Any) -> Any:
        front = self.front
        manager: SessionManager = front.sessions
        transport: Any = self.transport
        peer = getattr(transport.getPeer(), "host", "") or ""
        secure = ISSLTransport.providedBy(self.transport)
        headers = request.headers
        client = manager.proxies.client(peer, secure, lambda name: headers.get(name))
        if not manager.originAllowed(headers.get("origin"), client):
            raise ConnectionDeny(403, "the agent connects from this server's own page only")
        d = defer.ensureDeferred(manager.fromCookieHeader(headers.get("cookie")))

        def found(web: Session | None) -> None:
            if web is None:
                raise ConnectionDeny(401, "log in first")
            self.web = web
            return None

        return d.addCallback(found)

    def onOpen(self) -> None:
        self.front.channels.add(self)
        self._helloTimer = self.front.clock.callLater(HELLO_TIMEOUT, self._noHello)
        assert self.web is not None
        self._cancelEnded = self.front.sessions.onEnded(
            self.web.idHash, lambda: self._sessionEnded("logged out")
        )
        loop = task.LoopingCall(self._checkSession)
        loop.clock = self.front.clock
        self._check = loop
        loop.start(self.front.settings.checkInterval, now=False).addErrback(
            lambda f: self._log.failure("agent session check", f)
        )

    def _noHello(self) -> None:
        self._helloTimer = None
        if self.session is None:
            self.sendClose(CLOSE_PROTOCOL, "no hello")

    def _checkSession(self) -> defer.Deferred[None]:
        assert self.web is not None
        d = defer.ensureDeferred(self.front.sessions.check(self.web.idHash))

        def checked(web: Session | None) -> None:
            if web is None:
                self._sessionEnded("session ended")

        def failed(f: Any) -> None:
            self._log.failure("checking the session of {session}", f, session=self.session)

        return d.addCallbacks(checked, failed)

    def _sessionEnded(self, reason: str) -> None:
        if self.state == WebSocketServerProtocol.STATE_OPEN:
            self._push({"type": "session.ended", "reason": reason})
            self.sendClose(CLOSE_SESSION, reason)

    # -- messages ---------------------------------------------------------------------

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if isBinary:
            self.sendClose(CLOSE_PROTOCOL, "text (JSON) messages only")
            return
        try:
            request = jsontext.loads(payload)
        except ValueError:  # bad JSON, or bad UTF-8 (a UnicodeDecodeError)
            self._protocolError(None, "a message is a JSON object")
            return
        if not isinstance(request, dict):
            self._protocolError(None, "a message is a JSON object")
            return
        if self._starting:
            self._protocolError(request.get("id"), "wait for the welcome")
            return
        if self.session is None:
            if request.get("type") != "hello":
                self._protocolError(request.get("id"), "say hello first")
            else:
                self._starting = True
                defer.ensureDeferred(self._hello(request)).addErrback(self._helloFailed)
            return
        settings = self.front.settings
        wait = self.front.limiter.take(
            f"{self.session.licence}:{self.session.operator.id}", settings.rate, settings.burst
        )
        if wait:
            rid = request.get("id") if isinstance(request.get("id"), (str, int)) else None
            self._push(error(rid, "rate_limited", f"too many requests; retry in {wait:.1f} s"))
            return
        d = defer.ensureDeferred(self.front.calls.call(self.session, request))
        d.addCallback(self._push)

    def _protocolError(self, requestId: Any, message: str) -> None:
        self._errors += 1
        rid = requestId if isinstance(requestId, (str, int)) else None
        self._push(error(rid, "bad_request", message))
        if self._errors >= MAX_ERRORS:
            self.sendClose(CLOSE_PROTOCOL, "too many bad requests")

    async def _hello(self, request: dict[str, Any]) -> None:
        front = self.front
        requestId = request.get("id") if isinstance(request.get("id"), (str, int)) else None
        assert self.web is not None
        try:
            resume = parseResume(request.get("resume"))
            status = None if request.get("status") is None else parseStatus(request.get("status"))
        except CoreError as e:
            self._push(error(requestId, e.code, e.message))
            self.sendClose(CLOSE_PROTOCOL, e.code)
            self._starting = False
            return
        if self._helloTimer is not None and self._helloTimer.active():
            self._helloTimer.cancel()
        self._helloTimer = None
        if self._gone or self.state != WebSocketServerProtocol.STATE_OPEN:
            self._starting = False
            return
        web = self.web
        session = front.core.connectOperator(web.licence, web.operator, self, client="web agent")
        self.session = session
        self._held = []
        try:
            await session.start(resume, status)
            welcome = await self._welcome(session, requestId)
        finally:
            held, self._held = self._held, None
            self._starting = False
        if self._gone:
            session.disconnect()
            return
        self._burst = True
        try:
            self._push(welcome)
            for message in held:
                self._push(message)
        finally:
            self._burst = False

    async def _welcome(self, session: OperatorSession, requestId: Any) -> dict[str, Any]:
        core: Core = self.front.core
        store = core.store.forLicence(session.licence)
        chats = [chatInfo(c) for c in await store.openChatsOf(session.ref)]
        groups = [{"id": g.id, "name": g.name} for g in await store.listGroups()]
        operators = await operatorsList(core, session.licence)
        me = next((o for o in operators if o["id"] == session.operator.id), None)
        assert self.web is not None
        return {
            "type": "welcome",
            "id": requestId,
            "session": self.web.toJSON(self.front.sessions.settings.idleTimeout),
            "status": me["status"] if me else int(OperatorStatus.ONLINE),
            "teamChatId": getattr(session, "teamChatId", None),
            "chats": chats,
            "operators": operators,
            "groups": groups,
            "visitors": await session.visitors(),
            "limits": {
                "maxMessageLength": core.settings.maxMessageLength,
                "maxMessageBytes": self.front.settings.maxMessageBytes,
            },
        }

    def _helloFailed(self, f: Any) -> None:
        self._log.failure("agent hello of {session}", f, session=self.session)
        self._push(error(None, "internal", "the server could not start your session"))
        self.sendClose(CLOSE_SERVER, "internal error")

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        self._gone = True
        front = self.factory.front
        front.channels.discard(self)
        if self._helloTimer is not None and self._helloTimer.active():
            self._helloTimer.cancel()
        self._helloTimer = None
        if self._check is not None and self._check.running:
            self._check.stop()
        self._check = None
        if self._cancelEnded is not None:
            self._cancelEnded()
            self._cancelEnded = None
        if self.session is not None and not self._starting:
            self.session.disconnect()


def makeFactory(front: Any) -> WebSocketServerFactory:
    settings: AgentSettings = front.settings
    factory = WebSocketServerFactory()
    factory.protocol = AgentWebSocket
    factory.front = front  # type: ignore[attr-defined]
    factory.noisy = False
    factory.setProtocolOptions(
        maxFramePayloadSize=settings.maxMessageBytes,
        maxMessagePayloadSize=settings.maxMessageBytes,
        autoPingInterval=settings.pingInterval,
        autoPingTimeout=settings.pingTimeout,
        openHandshakeTimeout=10,
        closeHandshakeTimeout=5,
        failByDrop=False,
    )
    return factory


def makeAgentWebSocketResource(front: Any) -> WebSocketResource:
    return WebSocketResource(makeFactory(front))
