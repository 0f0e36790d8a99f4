"""
The visitors' WebSocket (C{/ws?licence=N}): Autobahn, mounted in the
twisted.web tree, speaking JSON in the core's vocabulary (docs/events.md).

 - The handshake is refused (403/404/429) unless the licence exists, the
   page's C{Origin} is on its allow-list, the address is not banned and not
   over its rate.
 - The first message is C{hello} with the visitor's token and the last
   sequence seen per chat; the answer is C{welcome}, then the missed
   events of the open chats, then live events.  Other requests are those of
   L{livechat.protocols.webcalls}.
 - Heartbeats are Autobahn's pings (C{WEB_PING_INTERVAL}, answered within
   C{WEB_PING_TIMEOUT}); a message is at most C{WEB_MAX_MESSAGE_BYTES}.
 - The connection is a push producer on its transport: while the kernel's
   buffer is full, messages wait in a queue of at most C{WEB_SEND_BUFFER}
   bytes; a visitor that cannot keep up beyond that is cut off (its widget
   reconnects and resumes from its last sequence).
 - C{permessage-deflate} is off unless C{WEB_DEFLATE 1}.
"""

from __future__ import annotations

from typing import Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer, ISSLTransport
from twisted.logger import Logger
from zope.interface import implementer

from livechat import jsontext
from livechat.core.errors import CoreError
from livechat.interfaces import IChannel
from livechat.protocols.webcalls import Visitor, error
from livechat.protocols.webpolicy import WebRefused, parseLicence
from livechat.protocols.wsbuffer import CLOSE_SERVER, UNMASK_NATIVE, ChannelSocket

CLOSE_UNAUTHORIZED = 4001
CLOSE_FORBIDDEN = 4003
CLOSE_PROTOCOL = 4400
CLOSE_TOO_MANY_TABS = 4029
MAX_RESUME = 50
MAX_ERRORS = 10


def accelerationReport() -> str:
    """
    Which of Autobahn's native (NVX) parts are in use; logged at start.
    Our sockets (wsbuffer) unmask small frames and check a text message's
    UTF-8 themselves, faster than through the native parts' wrappers.
    """
    import autobahn
    from autobahn.websocket import HAS_NVX, USES_NVX, xormasker
    from autobahn.websocket.utf8validator import Utf8Validator

    validator = Utf8Validator.__module__
    masker = getattr(xormasker, "create_xor_masker", None)
    maskerModule = getattr(masker, "__module__", "pure Python")
    state = "in use" if USES_NVX else ("available but switched off" if HAS_NVX else "not built")
    if not USES_NVX:
        return (
            f"WebSocket: autobahn {autobahn.__version__}, native acceleration (NVX) {state}: "
            f"frames are unmasked with integer XOR, text checked by Python's decoder"
        )
    return (
        f"WebSocket: autobahn {autobahn.__version__}, native acceleration (NVX) {state}: "
        f"XOR masker {maskerModule} for payloads from {UNMASK_NATIVE} bytes (smaller "
        f"ones are one integer XOR), UTF-8 validator {validator} for close reasons "
        f"(a text message is checked whole by Python's decoder)"
    )


def parseResume(value: Any) -> dict[int, int]:
    """C{{"42": 7}} (chat id: last sequence seen) from a client."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_RESUME:
        raise CoreError("bad_request", f"resume maps up to {MAX_RESUME} chat ids to sequences")
    resume = {}
    for chat, seq in value.items():
        try:
            chatId = int(chat)
        except (TypeError, ValueError):
            raise CoreError("bad_request", "resume keys are chat ids") from None
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or chatId <= 0:
            raise CoreError("bad_request", "resume values are sequences (0 or more)")
        resume[chatId] = seq
    return resume


@implementer(IChannel, IPushProducer)
class VisitorWebSocket(ChannelSocket, WebSocketServerProtocol):  # type: ignore[misc]  # Autobahn
    """One tab of a visitor.  It is the L{IChannel} of the visitor's session."""

    _log = Logger()

    def __init__(self) -> None:
        super().__init__()
        self.session: Any = None
        self.visitor: Visitor | None = None
        self.licence: int | None = None
        self.client: Any = None
        self._starting = False
        self._held: list[dict[str, Any]] | None = None
        self._burst = False
        """While the welcome and the backlog go out: queued, never cut."""
        self._gone = False
        self._errors = 0
        self._helloTimer: Any = None
        self._tab: tuple[int, str] | None = None

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
            "visitor {visitor} of licence {licence} cannot keep up "
            "({bytes} bytes waiting); cutting the connection",
            visitor=self.visitor.visitorId if self.visitor else "?",
            licence=self.licence,
            bytes=queued,
        )

    # IChannel (deliver, close): ChannelSocket.

    # -- the handshake -----------------------------------------------------------------

    def onConnect(self, request: Any) -> Any:
        front = self.front
        try:
            licence = parseLicence((request.params.get("licence") or [""])[0])
        except WebRefused as e:
            raise ConnectionDeny(e.status, e.message) from None
        transport: Any = self.transport
        peer = getattr(transport.getPeer(), "host", "") or ""
        secure = ISSLTransport.providedBy(self.transport)
        headers = request.headers
        client = front.proxies.client(peer, secure, lambda name: headers.get(name))
        try:
            front.limits.address(client.address)
        except WebRefused as e:
            raise ConnectionDeny(e.status, e.message) from None
        origin = headers.get("origin")
        d = front.door.admit(licence, origin if origin != "null" else None, client)

        def admitted(_: Any) -> None:
            self.licence = licence
            self.client = client
            return None

        def refused(f: Any) -> None:
            f.trap(WebRefused)
            raise ConnectionDeny(f.value.status, f.value.message)

        return d.addCallbacks(admitted, refused)

    _HANDSHAKE = (
        "http_headers",
        "http_request_data",
        "http_request_params",
        "http_response_data",
        "http_status_line",
        "http_request_uri",
        "http_request_host",
        "_wskey",
        "websocket_origin",
    )
    """What Autobahn keeps of the handshake and never reads again (~3 KiB a socket)."""

    def onOpen(self) -> None:
        for name in self._HANDSHAKE:
            if name in self.__dict__:
                setattr(self, name, None)
        self.front.channels.add(self)
        self._helloTimer = self.front.clock.callLater(
            self.front.settings.helloTimeout, self._noHello
        )

    def _noHello(self) -> None:
        self._helloTimer = None
        if self.session is None:
            self.sendClose(CLOSE_PROTOCOL, "no hello")

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
        assert self.visitor is not None
        self.front.calls.call(self.session, self.visitor, request, True).addCallback(self._push)

    def _protocolError(self, requestId: Any, message: str) -> None:
        self._errors += 1
        self._push(
            error(requestId if isinstance(requestId, (str, int)) else None, "bad_request", message)
        )
        if self._errors >= MAX_ERRORS:
            self.sendClose(CLOSE_PROTOCOL, "too many bad requests")

    async def _hello(self, request: dict[str, Any]) -> None:
        from livechat.protocols.web import _group, _language

        front = self.front
        requestId = request.get("id") if isinstance(request.get("id"), (str, int)) else None
        assert self.licence is not None
        try:
            visitorId, token, _ = front.identify(self.licence, request.get("token"), False)
            resume = parseResume(request.get("resume"))
            group = _group(request.get("group"))
        except WebRefused as e:
            self._push(error(requestId, e.code, e.message))
            self.sendClose(CLOSE_UNAUTHORIZED if e.status == 401 else CLOSE_PROTOCOL, e.code)
            return
        except CoreError as e:
            self._push(error(requestId, e.code, e.message))
            self.sendClose(CLOSE_PROTOCOL, e.code)
            return
        key = (self.licence, visitorId)
        if front.tabs[key] >= front.settings.maxTabs:
            self._push(error(requestId, "too_many_tabs", "too many open tabs"))
            self.sendClose(CLOSE_TOO_MANY_TABS, "too many tabs")
            return
        if self._gone or self.state != WebSocketServerProtocol.STATE_OPEN:
            return
        front.tabs[key] += 1
        self._tab = key
        if self._helloTimer is not None and self._helloTimer.active():
            self._helloTimer.cancel()
        self._helloTimer = None
        self.visitor = Visitor(
            licence=self.licence,
            visitorId=visitorId,
            client=self.client,
            group=group,
            language=_language(request.get("language")),
        )
        session = front.core.connectVisitor(self.licence, visitorId, self, self.client.address)
        self.session = session
        self._held = []
        try:
            await session.start(resume)
            welcome = await front.welcome(session, self.visitor, token, requestId)
        finally:
            held, self._held = self._held, None
            self._starting = False
        if self._gone:
            # Closed while starting: let the session go now that it is whole.
            session.disconnect()
            return
        # The backlog (bounded by the stored chats) goes out whatever its
        # size; the limit is for a visitor that stays slow afterwards.
        self._burst = True
        try:
            self._push(welcome)
            for message in held:
                self._push(message)
        finally:
            self._burst = False

    def _helloFailed(self, f: Any) -> None:
        self._log.failure("visitor hello on licence {licence}", f, licence=self.licence)
        self._push(error(None, "internal", "the server could not start your session"))
        self.sendClose(CLOSE_SERVER, "internal error")

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        self._gone = True
        front = self.factory.front
        front.channels.discard(self)
        if self._helloTimer is not None and self._helloTimer.active():
            self._helloTimer.cancel()
        self._helloTimer = None
        if self._tab is not None:
            front.tabs[self._tab] -= 1
            if front.tabs[self._tab] <= 0:
                del front.tabs[self._tab]
            self._tab = None
        if self.session is not None and not self._starting:
            self.session.disconnect()


def _acceptDeflate(offers: list[Any]) -> Any:
    from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept

    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


def makeFactory(front: Any) -> WebSocketServerFactory:
    settings = front.settings
    factory = WebSocketServerFactory()
    factory.protocol = VisitorWebSocket
    factory.front = front  # type: ignore[attr-defined]
    factory.noisy = False
    options: dict[str, Any] = dict(
        maxFramePayloadSize=settings.maxMessageBytes,
        maxMessagePayloadSize=settings.maxMessageBytes,
        autoPingInterval=settings.pingInterval,
        autoPingTimeout=settings.pingTimeout,
        openHandshakeTimeout=10,
        closeHandshakeTimeout=5,
        failByDrop=False,
    )
    if settings.deflate:
        options["perMessageCompressionAccept"] = _acceptDeflate
    factory.setProtocolOptions(**options)
    return factory


def makeWebSocketResource(front: Any) -> WebSocketResource:
    return WebSocketResource(makeFactory(front))
