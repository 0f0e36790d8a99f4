"""
The web side for tests: a real core on a real store (L{CoreMixin}), its
front desk, the web front with a task.Clock, the resources on a real
twisted.web Site on 127.0.0.1 port 0, mail recorded (or sent to a real
SMTP receiver on port 0, L{SMTPReceiver}), and small HTTP helpers.
"""

from __future__ import annotations

import email
import email.policy
import json
from typing import Any

import attr
from autobahn.twisted.websocket import WebSocketClientProtocol
from twisted.internet import defer, protocol, reactor
from twisted.mail import smtp
from twisted.web import resource
from zope.interface import implementer

from livechat.core.reception import Reception
from livechat.licencesettings import SettingsCache
from livechat.notify.mailer import Mailer, MailSettings, loadTemplates
from livechat.protocols.http import makeSite
from livechat.protocols.web import WebFront, loadAssets, mountWeb
from livechat.protocols.webpolicy import WebSettings
from livechat.visitortoken import VisitorTokens
from tests.support.browser import serveSite
from tests.support.core import CoreMixin
from tests.support.http import request

SECRET = b"a test secret that is long enough"


class MailRecorder:
    """A Mailer's C{send}: keeps each mail; C{next()} waits for one."""

    def __init__(self) -> None:
        self.mails: list[tuple[list[str], email.message.EmailMessage]] = []
        self._waiting: list[defer.Deferred[Any]] = []
        self._attempted: list[defer.Deferred[int]] = []
        self.fail = 0
        self.attempts = 0

    def attempt(self, number: int, timeout: float = 10.0) -> defer.Deferred[int]:
        """Fires once the C{number}th attempt to send has been made."""
        if self.attempts >= number:
            return defer.succeed(self.attempts)
        d: defer.Deferred[int] = defer.Deferred()
        d.addTimeout(timeout, reactor)
        self._attempted.append(d)
        return d.addCallback(lambda _: self.attempt(number))

    def __call__(self, settings: Any, clock: Any, to: list[str], data: bytes) -> Any:
        self.attempts += 1
        attempted, self._attempted = self._attempted, []
        for d in attempted:
            # After this call has returned (and its failure been handled).
            reactor.callLater(0, d.callback, self.attempts)
        if self.fail:
            self.fail -= 1
            return defer.fail(ConnectionRefusedError("smtp down"))
        message = email.message_from_bytes(data, policy=email.policy.default)
        self.mails.append((list(to), message))  # type: ignore[arg-type]
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(self.mails[-1])
        return defer.succeed((len(to), []))

    def next(self, timeout: float = 10.0) -> defer.Deferred[Any]:
        """The next mail (after those already taken with C{next})."""
        taken = getattr(self, "_taken", 0)
        if len(self.mails) > taken:
            self._taken = taken + 1
            return defer.succeed(self.mails[taken])
        d: defer.Deferred[Any] = defer.Deferred()

        def take(mail: Any) -> Any:
            self._taken = getattr(self, "_taken", 0) + 1
            return mail

        d.addCallback(take)
        d.addTimeout(timeout, reactor)
        self._waiting.append(d)
        return d


class WebMixin(CoreMixin):
    """A core with its web front; C{serve()} puts the web on a real port."""

    webSettings = WebSettings(settingsCache=10.0)

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield super().setUp()
        self.mail = MailRecorder()
        self.mailer = Mailer(MailSettings(firstRetry=5.0), self.clock, loadTemplates(), self.mail)
        self.cache = SettingsCache(self.store, self.clock, self.webSettings.settingsCache)
        self.reception = Reception(self.core, self.cache, self.mailer)
        self.front = WebFront(self.core, self.reception, self.cache, self.webSettings, self.clock)
        self.front.tokens = VisitorTokens(SECRET, self.clock, 365 * 86400.0)
        self.front.assets = loadAssets()

    def serve(self) -> str:
        """The web resources on a real Site on 127.0.0.1:0; its base URL."""
        root = resource.Resource()
        mountWeb(root, self.front)
        return serveSite(self, makeSite(root))

    @defer.inlineCallbacks
    def setting(self, licence: int, name: str, value: Any) -> Any:
        """Set a licence setting (JSON-encoded unless text) and drop it from the cache."""
        text = value if isinstance(value, str) else json.dumps(value)
        yield self.store.forLicence(licence).setSetting(name, text)
        self.cache.forget(licence)

    @defer.inlineCallbacks
    def allow(self, licence: int, *origins: str) -> Any:
        yield self.licence(licence)
        yield self.setting(licence, "web.origins", list(origins))


@defer.inlineCallbacks
def postJSON(url: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    """POST JSON as text/plain (as the loader does); C{(code, headers, parsed body)}."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    h = {"Content-Type": "text/plain"}
    h.update(headers or {})
    code, hs, raw = yield request("POST", url, data, h)
    return code, hs, json.loads(raw) if raw else None


@defer.inlineCallbacks
def getJSON(url: str, headers: dict[str, str] | None = None) -> Any:
    code, hs, raw = yield request("GET", url, None, headers)
    return code, hs, json.loads(raw) if raw else None


# -- a real SMTP server -------------------------------------------------------------


@attr.s(auto_attribs=True)
class ReceivedMail:
    sender: str
    recipients: list[str]
    message: Any


@implementer(smtp.IMessage)
class _Message:
    def __init__(self, receiver: SMTPReceiver, sender: str, recipients: list[str]) -> None:
        self.receiver = receiver
        self.sender = sender
        self.recipients = recipients
        self.lines: list[bytes] = []

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line)

    def eomReceived(self) -> Any:
        data = b"\n".join(self.lines) + b"\n"
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        self.receiver._received(ReceivedMail(self.sender, list(self.recipients), parsed))
        return defer.succeed(None)

    def connectionLost(self) -> None:
        self.lines = []


@implementer(smtp.IMessageDelivery)
class _Delivery:
    def __init__(self, receiver: SMTPReceiver) -> None:
        self.receiver = receiver
        self.sender = ""
        self.recipients: list[str] = []

    def receivedHeader(self, helo: Any, origin: Any, recipients: Any) -> bytes:
        return b"Received: by the test SMTP receiver"

    def validateFrom(self, helo: Any, origin: Any) -> Any:
        self.sender = str(origin)
        self.recipients = []
        return origin

    def validateTo(self, user: Any) -> Any:
        self.recipients.append(str(user.dest))
        recipients = self.recipients
        return lambda: _Message(self.receiver, self.sender, recipients)


class _ESMTP(smtp.ESMTP):
    def connectionLost(self, reason: Any) -> None:
        super().connectionLost(reason)
        self.factory.gone(self)


class _Factory(protocol.ServerFactory):
    def __init__(self, receiver: SMTPReceiver) -> None:
        self.receiver = receiver
        self.open: set[Any] = set()
        self._allGone: list[defer.Deferred[None]] = []

    def buildProtocol(self, addr: Any) -> Any:
        p = _ESMTP()
        p.factory = self
        p.host = b"test.example"
        p.delivery = _Delivery(self.receiver)
        self.open.add(p)
        return p

    def gone(self, p: Any) -> None:
        self.open.discard(p)
        if not self.open:
            waiting, self._allGone = self._allGone, []
            for d in waiting:
                d.callback(None)

    def closeAll(self) -> defer.Deferred[None]:
        if not self.open:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._allGone.append(d)
        for p in list(self.open):
            p.transport.abortConnection()
        return d


class SMTPReceiver:
    """twisted.mail's ESMTP server on 127.0.0.1:0 that keeps what it gets."""

    def __init__(self, testcase: Any) -> None:
        self.mails: list[ReceivedMail] = []
        self._waiting: list[defer.Deferred[ReceivedMail]] = []
        self.factory = _Factory(self)
        self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        testcase.addCleanup(self.factory.closeAll)
        testcase.addCleanup(self.port.stopListening)

    @property
    def portNumber(self) -> int:
        return int(self.port.getHost().port)

    def _received(self, mail: ReceivedMail) -> None:
        self.mails.append(mail)
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(mail)

    def next(self, timeout: float = 20.0) -> defer.Deferred[ReceivedMail]:
        taken = getattr(self, "_taken", 0)
        if len(self.mails) > taken:
            self._taken = taken + 1
            return defer.succeed(self.mails[taken])
        d: defer.Deferred[ReceivedMail] = defer.Deferred()

        def take(mail: ReceivedMail) -> ReceivedMail:
            self._taken = getattr(self, "_taken", 0) + 1
            return mail

        d.addCallback(take)
        d.addTimeout(timeout, reactor)
        self._waiting.append(d)
        return d


# -- WebSocket and SSE clients -------------------------------------------------------


class _Waiters:
    """Messages received, and Deferreds waiting for the next that matches."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._mark = 0
        self._waiting: list[tuple[Any, defer.Deferred[dict[str, Any]]]] = []

    def _got(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        still = []
        for predicate, d in self._waiting:
            if not d.called and predicate(message):
                self._mark = len(self.messages)
                d.callback(message)
            elif not d.called:
                still.append((predicate, d))
        self._waiting = still

    def next(self, predicate: Any, timeout: float = 10.0) -> defer.Deferred[dict[str, Any]]:
        """The first message after the last one waited for that matches."""
        for index in range(self._mark, len(self.messages)):
            if predicate(self.messages[index]):
                self._mark = index + 1
                return defer.succeed(self.messages[index])
        d: defer.Deferred[dict[str, Any]] = defer.Deferred()
        self._waiting.append((predicate, d))
        d.addTimeout(timeout, reactor)
        return d

    def chatEvents(self, chatId: int) -> list[dict[str, Any]]:
        return [
            m
            for m in self.messages
            if m.get("type") == "chat.event" and m.get("chatId") == chatId and "sequence" in m
        ]

    def sequences(self, chatId: int) -> list[int]:
        return [m["sequence"] for m in self.chatEvents(chatId)]


ANSWERS = ("reply", "error", "welcome", "chat.event")
"""The messages that answer a visitor's request (with its id)."""


def sent(answer: dict[str, Any]) -> int:
    """The sequence of a message sent over a visitor's WebSocket, from its answer."""
    assert answer["type"] == "chat.event" and answer["event"]["type"] == "ContentEvent", answer
    return int(answer["sequence"])


class WSClient(WebSocketClientProtocol):
    """A visitor's tab for tests: JSON in and out; C{ask()} waits for the answer."""

    def __init__(self) -> None:
        super().__init__()
        self.inbox = _Waiters()
        self.opened: defer.Deferred[WSClient] = defer.Deferred()
        self.closed: defer.Deferred[tuple[Any, Any]] = defer.Deferred()
        self._ids = 0
        self.pings = 0
        self._pinged: list[tuple[int, defer.Deferred[int]]] = []
        self._answers: dict[str, defer.Deferred[dict[str, Any]]] = {}

    def onOpen(self) -> None:
        self.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        message = json.loads(payload)
        waiting = self._answers.pop(str(message.get("id")), None)
        self.inbox._got(message)
        # chat.send's answer is its chat.event, carrying the request's id.
        if waiting is not None and message.get("type") in ANSWERS:
            waiting.callback(message)

    def onPing(self, payload: bytes) -> None:
        self.pings += 1
        super().onPing(payload)
        waiting, self._pinged = self._pinged, []
        for count, d in waiting:
            if self.pings >= count:
                d.callback(self.pings)
            else:
                self._pinged.append((count, d))

    def pinged(self, count: int, timeout: float = 10.0) -> defer.Deferred[int]:
        """Fires once the server has pinged this client C{count} times."""
        if self.pings >= count:
            return defer.succeed(self.pings)
        d: defer.Deferred[int] = defer.Deferred()
        d.addTimeout(timeout, reactor)
        self._pinged.append((count, d))
        return d

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        if not self.opened.called:
            self.opened.errback(ConnectionError(f"WebSocket not opened: {code} {reason}"))
        if not self.closed.called:
            self.closed.callback((code, reason))

    def send(self, message: dict[str, Any]) -> None:
        self.sendMessage(json.dumps(message).encode())

    def ask(
        self, kind: str, timeout: float = 10.0, **fields: Any
    ) -> defer.Deferred[dict[str, Any]]:
        """Send a request; fire with its reply, error or welcome (waiting marks move not)."""
        self._ids += 1
        requestId = f"q{self._ids}"
        d: defer.Deferred[dict[str, Any]] = defer.Deferred()
        d.addTimeout(timeout, reactor)
        self._answers[requestId] = d
        self.send({"type": kind, "id": requestId, **fields})
        return d

    def next(self, predicate: Any, timeout: float = 10.0) -> defer.Deferred[dict[str, Any]]:
        return self.inbox.next(predicate, timeout)


def connectWS(
    testcase: Any,
    url: str,
    origin: str | None,
    protocol: Any = WSClient,
    options: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> defer.Deferred[WSClient]:
    """
    Open a WebSocket on a real socket; fires with the client once the
    handshake is done, or fails with the server's refusal.  Cut at the end
    of the test.  C{options} go to the client factory's C{setProtocolOptions}.
    """
    from urllib.parse import urlsplit

    from autobahn.twisted.websocket import WebSocketClientFactory
    from twisted.internet.endpoints import TCP4ClientEndpoint

    factory = WebSocketClientFactory(url, origin=origin, headers=headers)
    factory.protocol = protocol
    if options:
        factory.setProtocolOptions(**options)
    parts = urlsplit(url)
    endpoint = TCP4ClientEndpoint(reactor, parts.hostname, parts.port)

    def connected(client: WSClient) -> Any:
        testcase.addCleanup(_cut, client)
        return client.opened

    return endpoint.connect(factory).addCallback(connected)


def _cut(client: WSClient) -> Any:
    if client.transport is not None and not client.closed.called:
        client.transport.abortConnection()
        return client.closed
    return None


class _SSEBody(protocol.Protocol):
    def __init__(self, stream: SSEStream) -> None:
        self.stream = stream
        self.buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\n\n" in self.buffer:
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            self.stream._block(block.decode("utf-8"))

    def connectionLost(self, reason: Any) -> None:
        self.stream.endReason = reason
        if not self.stream.ended.called:
            self.stream.ended.callback(None)


class SSEStream:
    """A visitor's event stream for tests: C{next()} waits for a message."""

    def __init__(self) -> None:
        self.inbox = _Waiters()
        self.comments: list[str] = []
        self.fields: list[str] = []
        self.ended: defer.Deferred[Any] = defer.Deferred()
        self.body: _SSEBody | None = None
        self.code = 0
        self.headers: Any = None
        self._comment: list[tuple[int, defer.Deferred[None]]] = []

    def _block(self, block: str) -> None:
        for line in block.split("\n"):
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                waiting, self._comment = self._comment, []
                for count, d in waiting:
                    if len(self.comments) >= count:
                        d.callback(None)
                    else:
                        self._comment.append((count, d))
            elif line.startswith("data: "):
                self.inbox._got(json.loads(line[len("data: ") :]))
            elif line:
                self.fields.append(line)

    def commented(self, count: int, timeout: float = 10.0) -> defer.Deferred[None]:
        if len(self.comments) >= count:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        d.addTimeout(timeout, reactor)
        self._comment.append((count, d))
        return d

    def next(self, predicate: Any, timeout: float = 10.0) -> defer.Deferred[dict[str, Any]]:
        return self.inbox.next(predicate, timeout)

    def cut(self) -> Any:
        if self.body is not None and self.body.transport is not None and not self.ended.called:
            self.body.transport.stopProducing()
            return self.ended
        return None


@defer.inlineCallbacks
def openSSE(testcase: Any, url: str, origin: str | None) -> Any:
    """
    GET an event stream; fires with an L{SSEStream} (its C{code} and, for a
    refusal, the JSON body as C{refusal}).  Cut at the end of the test.
    """
    from twisted.web.client import Agent, HTTPConnectionPool, readBody
    from twisted.web.http_headers import Headers

    agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
    headers = Headers({b"Origin": [origin.encode()]} if origin else {})
    response = yield agent.request(b"GET", url.encode(), headers)
    stream = SSEStream()
    stream.code = response.code
    stream.headers = response.headers
    if response.code != 200:
        stream.refusal = json.loads((yield readBody(response)))  # type: ignore[attr-defined]
        return stream
    stream.body = _SSEBody(stream)
    response.deliverBody(stream.body)
    testcase.addCleanup(stream.cut)
    return stream
