"""
The fallback when a proxy blocks WebSockets: Server-Sent Events for what
the server sends, HTTP POST (C{/livesupport/call}) for what the visitor
asks.

    GET /livesupport/sse?licence=N&token=T&resume=42:7,43:0&group=3&lang=pl

answers C{text/event-stream}: first C{welcome}, then the events missed in
the open chats since the sequences in C{resume}, then live messages, each
as one C{data:} line of JSON (the same messages as on the WebSocket), with
a comment line as heartbeat every C{WEB_PING_INTERVAL} seconds.  Refusals
come before the stream, as a JSON error with its HTTP status (an
EventSource then stops; the widget decides what to do).  The stream is a
push producer on its request: a visitor that cannot keep up beyond
C{WEB_SEND_BUFFER} bytes is cut off and resumes when it reconnects.
"""

from __future__ import annotations

import collections
import json
from typing import Any

from twisted.internet import defer, task
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.web import resource, server
from zope.interface import implementer

from livechat.core.errors import CoreError
from livechat.interfaces import IChannel
from livechat.protocols.webcalls import HTTP_STATUS, Visitor, error
from livechat.protocols.webpolicy import WebRefused, parseLicence
from livechat.protocols.websocket import MAX_RESUME


def parseResumeText(text: str) -> dict[int, int]:
    """C{"42:7,43:0"} -> C{{42: 7, 43: 0}}."""
    resume: dict[int, int] = {}
    if not text:
        return resume
    items = text.split(",")
    if len(items) > MAX_RESUME:
        raise CoreError("bad_request", f"resume has at most {MAX_RESUME} chats")
    for item in items:
        chat, sep, seq = item.partition(":")
        if not sep or not chat.isdigit() or not seq.isdigit() or len(chat) > 18 or len(seq) > 9:
            raise CoreError("bad_request", "resume is chat:sequence,chat:sequence")
        resume[int(chat)] = int(seq)
    return resume


def frame(message: dict[str, Any]) -> bytes:
    data = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    return b"data: " + data.encode("utf-8") + b"\n\n"


@implementer(IChannel, IPushProducer)
class EventStream:
    """One visitor tab on SSE: the L{IChannel} of its session."""

    _log = Logger()

    def __init__(self, front: Any, request: server.Request) -> None:
        self.front = front
        self.request = request
        self.session: Any = None
        self.visitor: Visitor | None = None
        self._held: list[dict[str, Any]] | None = None
        self._queue: collections.deque[bytes] = collections.deque()
        self._queued = 0
        self._paused = False
        self._burst = False
        self.gone = False
        self._heartbeat: task.LoopingCall | None = None
        self._tab: tuple[int, str] | None = None

    # -- producer -------------------------------------------------------------------

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        while self._queue and not self._paused and not self.gone:
            data = self._queue.popleft()
            self._queued -= len(data)
            self.request.write(data)

    def stopProducing(self) -> None:
        self._end()

    def _write(self, data: bytes) -> None:
        if self.gone:
            return
        if not self._paused and not self._queue:
            self.request.write(data)
            return
        self._queue.append(data)
        self._queued += len(data)
        if self._queued > self.front.settings.sendBuffer and not self._burst:
            self._log.warn(
                "visitor {visitor} (SSE) cannot keep up ({bytes} bytes waiting); cutting it off",
                visitor=self.visitor.visitorId if self.visitor else "?",
                bytes=self._queued,
            )
            transport: Any = self.request.channel.transport if self.request.channel else None
            self._end()
            if transport is not None:
                transport.abortConnection()

    # -- IChannel -------------------------------------------------------------------

    def deliver(self, message: dict[str, Any]) -> None:
        if self._held is not None:
            self._held.append(message)
            return
        self._write(frame(message))

    def close(self, reason: str) -> None:
        if self.gone:
            return
        self._write(frame({"type": "closed", "reason": reason}))
        request = self.request
        self._end()
        if not request.finished:
            request.unregisterProducer()
            request.finish()

    # -- life -----------------------------------------------------------------------

    async def start(self, visitor: Visitor, token: str, resume: dict[int, int]) -> None:
        front = self.front
        request = self.request
        self.visitor = visitor
        key = (visitor.licence, visitor.visitorId)
        front.tabs[key] += 1
        self._tab = key
        front.channels.add(self)
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-accel-buffering", b"no")
        request.registerProducer(self, True)
        request.write(b"retry: 5000\n\n")
        self._heartbeat = task.LoopingCall(self._beat)
        self._heartbeat.clock = front.clock
        self._heartbeat.start(front.settings.pingInterval, now=False)
        session = front.core.connectVisitor(
            visitor.licence, visitor.visitorId, self, visitor.client.address
        )
        self.session = session
        self._held = []
        try:
            await session.start(resume)
            welcome = await front.welcome(session, visitor, token)
        finally:
            held, self._held = self._held, None
        if self.gone:
            session.disconnect()
            return
        self._burst = True  # the welcome and the backlog: queued, never cut
        try:
            self._write(frame(welcome))
            for message in held:
                self._write(frame(message))
        finally:
            self._burst = False

    def _beat(self) -> None:
        self._write(b": ping\n\n")

    def _end(self) -> None:
        """The stream is over (client gone, cut off, or closed)."""
        if self.gone:
            return
        self.gone = True
        self._queue.clear()
        self._queued = 0
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        front = self.front
        front.channels.discard(self)
        if self._tab is not None:
            front.tabs[self._tab] -= 1
            if front.tabs[self._tab] <= 0:
                del front.tabs[self._tab]
            self._tab = None
        if self.session is not None and self._held is None:
            self.session.disconnect()


class EventStreamResource(resource.Resource):
    """C{GET /livesupport/sse}: see the module's docstring."""

    isLeaf = True
    _log = Logger()

    def __init__(self, front: Any) -> None:
        super().__init__()
        self.front = front

    def render_GET(self, request: server.Request) -> Any:
        from livechat.protocols.web import _cors, _group, _language, jsonResponse

        front = self.front
        stream = EventStream(front, request)

        def refuse(status: int, body: dict[str, Any]) -> None:
            if not request.finished and not stream.gone:
                request.write(jsonResponse(request, status, body))
                request.finish()

        request.notifyFinish().addBoth(lambda _: stream._end())

        async def open_() -> None:
            args: dict[bytes, list[bytes]] = request.args or {}

            def arg(name: bytes) -> str:
                return (args.get(name) or [b""])[0].decode("utf-8", "replace")

            licence = parseLicence(arg(b"licence"))
            client = front.clientOf(request)
            origin = front.originOf(request)
            front.limits.address(client.address)
            await front.door.admit(licence, origin, client)
            _cors(request, origin)
            visitorId, token, _ = front.identify(licence, arg(b"token"), allowNew=False)
            resume = parseResumeText(arg(b"resume"))
            visitor = Visitor(
                licence=licence,
                visitorId=visitorId,
                client=client,
                group=_group(arg(b"group")),
                language=_language(arg(b"lang")),
            )
            if front.tabs[(licence, visitorId)] >= front.settings.maxTabs:
                raise WebRefused("too_many_tabs", "too many open tabs", 429)
            if request.finished or stream.gone:
                return
            await stream.start(visitor, token, resume)

        def failed(f: Any) -> None:
            if f.check(WebRefused):
                refuse(f.value.status, error(None, f.value.code, f.value.message))
            elif f.check(CoreError):
                refuse(
                    HTTP_STATUS.get(f.value.code, 400), error(None, f.value.code, f.value.message)
                )
            else:
                self._log.failure("opening an event stream", f)
                if stream.session is None:
                    refuse(500, error(None, "internal", "the server could not do that"))
                else:
                    stream.close("internal error")

        defer.ensureDeferred(open_()).addErrback(failed)
        return server.NOT_DONE_YET
