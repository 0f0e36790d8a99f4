"""
The connector API over a WebSocket:
C{ws(s)://HOST/api/v1/apps/{appId}/connector/ws}, for an app that acts as a
messaging channel and would rather keep one connection than make a request
per event (a WhatsApp bridge).  A thin adapter: every request goes to
L{livechat.connector.ConnectorHandler}, exactly as the HTTPS endpoint's.

The upgrade carries C{Authorization: Bearer <API key>} (a key of the app's
licence with the C{connector} or C{api} scope); an unknown key is refused
with 401, a key without the scope with 403, another licence's or an unknown
app with 404, a disabled app with 409 — before any socket opens.

Client to server, one JSON object per text message: the HTTPS request plus
the consumer (there, the C{X-Livechat-Consumer} header)::

    {"kind": "req", "id": "1", "type": "ms.PublishEvent",
     "consumer": "+48123456789", "body": {...}}

Server to client: the answer, C{{"kind": "resp", "reqId", "code", "body"}}
(C{code} C{OK}, or C{BAD_REQUEST}, C{NOT_FOUND}, C{FORBIDDEN},
C{WRONG_STATE}, C{UNAVAILABLE}, C{RATE_LIMITED}, C{INTERNAL} with C{body.msg}); and, for
every consumer whose requests came by this connection, the events of its
conversations as they happen, in the connector's notification shape with
the consumer added::

    {"kind": "notification", "type": "ms.MessagingEventNotification",
     "consumer": "+48123456789", "body": {"changes": [{"sequence", ...}]}}

(a chat-state change has no C{sequence}: it is not stored).  The app's
webhooks still get every stored event durably; the WebSocket is the live
path, and an app that reconnects reads what it missed from the transcript
(C{GET /api/v1/chats/{id}/transcript}).  Requests count against the key's
rate (C{API_RATE}, C{API_BURST}); a message larger than C{API_MAX_BODY}
closes the connection (1009); a reader slower than C{CONNECTOR_SEND_BUFFER}
bytes of waiting notifications is cut off.
"""

from __future__ import annotations

import re
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from livechat import jsontext
from livechat.api import ApiError, ApiResource
from livechat.protocols.wsbuffer import BoundedSender, encode

_PATH = re.compile(r"/api/v1/apps/([1-9][0-9]{0,17})/connector/ws/?")


def notification(consumer: str, message: dict[str, Any]) -> dict[str, Any] | None:
    """The connector notification of a core chat event, or C{None} for other messages."""
    if message.get("type") != "chat.event":
        return None
    conversation = str(message["chatId"])
    meta = message.get("originatorMetadata") or {}
    change: dict[str, Any] = {
        "originatorId": message.get("originatorId"),
        "originatorMetadata": {"id": meta.get("id"), "role": meta.get("role")},
        "serverTimestamp": message.get("serverTimestamp"),
        "event": message.get("event"),
        "conversationId": conversation,
        "dialogId": conversation,
    }
    if "sequence" in message:
        change = {"sequence": message["sequence"], **change}
    return {
        "kind": "notification",
        "type": "ms.MessagingEventNotification",
        "consumer": consumer,
        "body": {"changes": [change]},
    }


class _Listener:
    """What a consumer's channel calls: forwards to the socket while it is open."""

    def __init__(self, socket: ConnectorWebSocket, consumer: str) -> None:
        self.socket = socket
        self.consumer = consumer

    def notify(self, message: dict[str, Any]) -> bool:
        if self.socket.gone:
            return False
        note = notification(self.consumer, message)
        if note is not None:
            self.socket.push(note)
        return True


@implementer(IPushProducer)
class ConnectorWebSocket(BoundedSender, WebSocketServerProtocol):  # type: ignore[misc]  # Autobahn
    """One connection of one app."""

    _log = Logger()

    def __init__(self) -> None:
        super().__init__()
        self.licence: int | None = None
        self.appId: int | None = None
        self.keyId = ""
        self.address = ""
        self._consumers: dict[str, _Listener] = {}

    @property
    def api(self) -> ApiResource:
        return self.factory.api  # type: ignore[no-any-return]

    # -- the handshake -------------------------------------------------------------

    def onConnect(self, request: Any) -> Any:
        match = _PATH.fullmatch(request.path)
        if match is None:
            raise ConnectionDeny(404, "no such connector")
        header = request.headers.get("authorization") or ""
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise ConnectionDeny(401, "send Authorization: Bearer <API key>")
        transport: Any = self.transport
        self.address = getattr(transport.getPeer(), "host", "") or ""
        # API_MAX_BODY may have changed (SIGHUP) since the factory was made.
        size = self.api.config()["API_MAX_BODY"]
        self.maxMessagePayloadSize = self.maxFramePayloadSize = size
        return defer.ensureDeferred(self._admit(int(match.group(1)), token.strip()))

    async def _admit(self, appId: int, token: str) -> None:
        try:
            principal = await self.api.authenticateToken(token, "connector")
        except ApiError as e:
            raise ConnectionDeny(e.status, str(e)) from None
        app = await self.api.services["hooks"].getApp(principal.licence, appId)
        if app is None:
            raise ConnectionDeny(404, f"app {appId} does not exist")
        if not app["enabled"]:
            raise ConnectionDeny(409, f"app {appId} is disabled")
        self.licence, self.appId, self.keyId = principal.licence, appId, principal.keyId

    def onOpen(self) -> None:
        self.registerAsProducer()

    # -- requests ------------------------------------------------------------------

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        defer.ensureDeferred(self._serve(payload, isBinary)).addErrback(
            lambda f: self._log.failure("connector WebSocket request", f)
        )

    async def _serve(self, payload: bytes, isBinary: bool) -> None:
        try:
            request = jsontext.loads(payload) if not isBinary else None
        except ValueError:
            request = None
        if not isinstance(request, dict):
            self.push(_refusal(None, "BAD_REQUEST", "a request is one JSON object, as text"))
            return
        config = self.api.config()
        wait = self.api.limiter.take(self.keyId, config["API_RATE"], config["API_BURST"])
        if wait:
            self.push(
                _refusal(
                    request.get("id"), "RATE_LIMITED", f"too many requests; retry in {wait:.1f} s"
                )
            )
            return
        consumer = request.get("consumer")
        listener = None
        if isinstance(consumer, str):
            listener = self._consumers.get(consumer)
            if (
                listener is None
                and len(self._consumers) < self.api.services["connector"].maxSessions
            ):
                listener = self._consumers[consumer] = _Listener(self, consumer)
        request = {k: v for k, v in request.items() if k != "consumer"}
        assert self.licence is not None and self.appId is not None
        try:
            _, answer = await self.api.services["connector"].handle(
                self.licence, self.appId, consumer, request, self.address, listener=listener
            )
        except Exception:
            self._log.failure(
                "connector request of app {app} of licence {licence}",
                app=self.appId,
                licence=self.licence,
            )
            answer = _refusal(request.get("id"), "INTERNAL", "the server could not do that")
        self.push({"kind": "resp", **answer})

    # -- sending, bounded (wsbuffer) ------------------------------------------------

    def sendLimit(self) -> int:
        return int(self.api.config()["CONNECTOR_SEND_BUFFER"])

    def tooSlow(self, queued: int) -> None:
        self._log.warn(
            "connector app {app} of licence {licence} cannot keep up "
            "({bytes} bytes waiting); cutting the connection",
            app=self.appId,
            licence=self.licence,
            bytes=queued,
        )

    def push(self, message: dict[str, Any]) -> None:
        self.sendBounded(encode(message))

    @property
    def gone(self) -> bool:
        return self._gone

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        self._gone = True
        self._consumers.clear()


def _refusal(reqId: Any, code: str, message: str) -> dict[str, Any]:
    if not isinstance(reqId, (str, int)) or isinstance(reqId, bool):
        reqId = None
    return {"kind": "resp", "reqId": reqId, "code": code, "body": {"msg": message}}


def makeConnectorWebSocket(api: ApiResource) -> WebSocketResource:
    """The resource that upgrades C{/api/v1/apps/{appId}/connector/ws}."""
    factory = WebSocketServerFactory()
    factory.protocol = ConnectorWebSocket
    factory.api = api  # type: ignore[attr-defined]
    factory.noisy = False
    config = api.config()
    size = config["API_MAX_BODY"]
    factory.setProtocolOptions(
        maxFramePayloadSize=size,
        maxMessagePayloadSize=size,
        autoPingInterval=config["WEB_PING_INTERVAL"],
        autoPingTimeout=config["WEB_PING_TIMEOUT"],
        openHandshakeTimeout=10,
        closeHandshakeTimeout=5,
        failByDrop=False,
    )
    return WebSocketResource(factory)
