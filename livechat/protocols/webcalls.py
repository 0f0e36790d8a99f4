"""
The requests of a visitor's widget, the same over the WebSocket and over
HTTP POST (the SSE fallback): each is a JSON object with a C{type}, an
optional C{id} the reply repeats, and its fields.  docs/events.md is the
reference; L{REQUESTS} lists the types.

Replies::

    {"type": "reply", "id": "7", "result": {...}}
    {"type": "error", "id": "7", "code": "rate_limited", "message": "..."}

This module only translates: everything a request does is a call on the
core (a L{livechat.core.hub.VisitorSession}) or on its front desk
(L{livechat.core.reception.Reception}).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attr
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from livechat.core.errors import CoreError
from livechat.core.hub import Core, VisitorSession
from livechat.core.reception import Reception
from livechat.model import AcceptStatus, ChatState
from livechat.protocols.webpolicy import Client, Limits, WebRefused

MAX_ID = 64

HTTP_STATUS = {
    "bad_request": 400,
    "too_large": 413,
    "forbidden": 403,
    "origin_refused": 403,
    "banned": 403,
    "unauthorized": 401,
    "not_found": 404,
    "wrong_state": 409,
    "unavailable": 503,
    "rate_limited": 429,
    "too_many_tabs": 429,
    "internal": 500,
}
"""The HTTP status of each error code (the POST fallback answers with it)."""


@attr.s(auto_attribs=True, kw_only=True)
class Visitor:
    """Who a request is from: a visitor of a licence, with their client."""

    licence: int
    visitorId: str
    client: Client
    group: int | None = None
    language: str = "en"


def reply(requestId: Any, result: dict[str, Any]) -> dict[str, Any]:
    return {"type": "reply", "id": requestId, "result": result}


def _replyTo(result: dict[str, Any], requestId: Any) -> dict[str, Any]:
    return {"type": "reply", "id": requestId, "result": result}


def _eventTo(message: dict[str, Any], requestId: Any) -> dict[str, Any]:
    return {**message, "id": requestId}


def error(requestId: Any, code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "id": requestId, "code": code, "message": message}


def _sequence(sequence: int) -> dict[str, Any]:
    return {"sequence": sequence}


def _int(value: Any, name: str, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise CoreError("bad_request", f"{name} is a number")
    return value


def _str(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CoreError("bad_request", f"{name} is text")
    return value


def route(request: Any, handlers: dict[str, Any]) -> tuple[Any, Any]:
    """
    A request's id and handler (by its C{type}), for the WebSockets' calls.

    @raise RequestRefused: not an object, a bad id (the id is then
        C{None}), or an unknown type (with the request's id).
    """
    if not isinstance(request, dict):
        raise RequestRefused(None, "a request is a JSON object")
    requestId = request.get("id")
    if requestId is not None and (
        not isinstance(requestId, (str, int))
        or isinstance(requestId, bool)
        or len(str(requestId)) > MAX_ID
    ):
        raise RequestRefused(None, f"id is text of at most {MAX_ID} characters")
    handler = handlers.get(str(request.get("type")))
    if handler is None:
        raise RequestRefused(
            requestId, f"unknown request type; known: {', '.join(sorted(handlers))}"
        )
    return requestId, handler


class RequestRefused(CoreError):
    """A request that cannot be routed: C{bad_request}, with the id to answer with."""

    def __init__(self, requestId: Any, message: str) -> None:
        super().__init__("bad_request", message)
        self.requestId = requestId


class VisitorCalls:
    """Serves a visitor's requests on the core, with the web's rate limits."""

    _log = Logger()

    def __init__(self, core: Core, reception: Reception, limits: Limits) -> None:
        self.core = core
        self.reception = reception
        self.limits = limits
        self._handlers: dict[
            str, Callable[[VisitorSession, Visitor, dict[str, Any]], Awaitable[dict[str, Any]]]
        ] = {
            "chat.request": self._request,
            "chat.send": self._send,
            "chat.state": self._state,
            "chat.read": self._read,
            "chat.leave": self._leave,
            "invitation.answer": self._answer,
            "message.leave": self._leaveMessage,
            "transcript.mail": self._transcript,
            "reception": self._reception,
            "page.view": self._pageView,
            "ping": self._ping,
        }
        self._streamHandlers = {**self._handlers, "chat.send": self._sendInFeed}
        self._streamAnswers = {"chat.send": _eventTo}
        """Over the stream, answered by the event they stored rather than a reply."""

    @property
    def types(self) -> list[str]:
        return sorted(self._handlers)

    def call(
        self, session: VisitorSession, visitor: Visitor, request: Any, stream: bool = False
    ) -> defer.Deferred[dict[str, Any]]:
        """
        Serve one request; fires with the reply or error message (never
        fails).  C{stream}: the request came on the session's own stream
        (the WebSocket), so C{chat.send} is answered by the stored message
        itself, carrying the request's id, in the chat's order.
        """
        # Callbacks, not a coroutine: this is every message's path.
        requestId: Any = None
        try:
            requestId, handler = route(request, self._streamHandlers if stream else self._handlers)
            self.limits.address(visitor.client.address)
            result = handler(session, visitor, request)
        except Exception:
            return defer.succeed(self._refused(Failure(), requestId, request, visitor))
        if not isinstance(result, defer.Deferred):
            result = defer.ensureDeferred(result)
        return result.addCallbacks(
            self._streamAnswers.get(request["type"], _replyTo) if stream else _replyTo,
            self._refused,
            callbackArgs=(requestId,),
            errbackArgs=(requestId, request, visitor),
        )

    def _refused(
        self, failure: Failure, requestId: Any, request: Any, visitor: Visitor
    ) -> dict[str, Any]:
        """The error message answering a request that failed with C{failure}."""
        e = failure.value
        if isinstance(e, RequestRefused):
            return error(e.requestId, e.code, e.message)
        if isinstance(e, (CoreError, WebRefused)):
            return error(requestId, e.code, e.message)
        self._log.failure(
            "visitor request {type!r} of licence {licence} failed",
            failure,
            type=request.get("type") if isinstance(request, dict) else None,
            licence=visitor.licence,
        )
        return error(requestId, "internal", "the server could not do that")

    # -- the requests -------------------------------------------------------------------

    async def _request(
        self, session: VisitorSession, visitor: Visitor, r: dict[str, Any]
    ) -> dict[str, Any]:
        group = _int(r.get("group", visitor.group), "group", optional=True)
        message = _str(r.get("message"), "message")
        if message:
            session._checkText(message)
        self.limits.chat(visitor.licence, visitor.visitorId)
        chatId = await self.reception.requestChat(
            session,
            name=_str(r.get("name"), "name"),
            email=_str(r.get("email"), "email"),
            group=group,
            message=message,
        )
        return {"chatId": chatId}

    def _send(
        self, session: VisitorSession, visitor: Visitor, r: dict[str, Any]
    ) -> defer.Deferred[dict[str, Any]]:
        chatId = _int(r.get("chatId"), "chatId")
        text = _str(r.get("text"), "text")
        session._checkText(text)
        self.limits.message(visitor.licence, visitor.visitorId)
        return session.send(chatId, text).addCallback(_sequence)

    def _sendInFeed(
        self, session: VisitorSession, visitor: Visitor, r: dict[str, Any]
    ) -> defer.Deferred[dict[str, Any]]:
        chatId = _int(r.get("chatId"), "chatId")
        text = _str(r.get("text"), "text")
        session._checkText(text)
        self.limits.message(visitor.licence, visitor.visitorId)
        return session.sendInFeed(chatId, text)

    async def _state(
        self, session: VisitorSession, visitor: Visitor, r: dict[str, Any]
    ) -> dict[str, Any]:
        chatId = _int(r.get("chatId"), "chatId")
        state = r.get("state")
        if state not in ChatState.__members__:
            raise CoreError("bad_request", f"state is one of {', '.join(ChatState.__members__)}")
        await session.chatState(chatId, ChatState(str(state)))
        return {}

    async def _read(
        self, session: VisitorSession, visitor: Visitor, r: dict[str, Any]
    ) -> dict[str, Any]:
        chatId = _int(r.get("chatId"), "chatId")
        status = r.get("status", "READ")
        if status not in AcceptStatus.__members__:
            raise CoreError("bad_request", "status is READ or ACCEPT")
        sequences = r.get("sequences")
        if not isinstance(sequences, list):
            raise CoreError("bad_request", "sequences is a list of numbers")
        sequence = await session.markRead(chatId, sequences, AcceptStatus(status))
        return {"sequence": sequence}

    async def _leave(
        self, session: VisitorSession, visitor: Visitor, r: dict[str, Any]
    ) -> dict[str, Any]:
        await session.leave(_int(r.get("chatId"), "chatId"))
        return {}

    async def _answer(
        self, session: VisitorSession, visitor: Visitor, r: dict[str, Any]
    ) -> dict[str, Any]:
        accept = r.get("accept")
        if not isinstance(accept, bool):
            raise CoreError("bad_request", "accept is true or false")
        if accept:
            self.limits.chat(visitor.licence, visitor.visitorId)
        chatId = await session.answerInvitation(
            accept, name=_str(r.get("name"), "name"), email=_str(r.get("email"), "email")
        )
        return {"chatId": chatId}

    async def _leaveMessage(
        self, session: VisitorSession, visitor: Visitor, r: dict[str, Any]
    ) -> dict[str, Any]:
        self.limits.chat(visitor.licence, visitor.visitorId)
        stored = await self.reception.leaveMessage(
            visitor.licence,
            visitor.visitorId,
            address=visitor.client.address,
            name=r.get("name", ""),
            email=r.get("email", ""),
            message=r.get("message", ""),
            group=r.get("group", visitor.group),
            url=r.get("url", ""),
            language=r.get("language", visitor.language),
        )
        return {"id": stored["id"]}

    async def _transcript(
        self, session: VisitorSession, visitor: Visitor, r: dict[str, Any]
    ) -> dict[str, Any]:
        self.limits.chat(visitor.licence, visitor.visitorId)
        await self.reception.mailTranscript(
            session, r.get("chatId"), r.get("email"), r.get("language", visitor.language)
        )
        return {}

    async def _reception(
        self, session: VisitorSession, visitor: Visitor, r: dict[str, Any]
    ) -> dict[str, Any]:
        group = _int(r.get("group", visitor.group), "group", optional=True)
        return await self.reception.status(visitor.licence, group)

    async def _pageView(
        self, session: VisitorSession, visitor: Visitor, r: dict[str, Any]
    ) -> dict[str, Any]:
        await self.core.pageView(
            visitor.licence,
            visitor.visitorId,
            url=_str(r.get("url"), "url"),
            title=_str(r.get("title"), "title"),
            referrer=_str(r.get("referrer"), "referrer"),
            address=visitor.client.address,
        )
        return {}

    async def _ping(
        self, session: VisitorSession, visitor: Visitor, r: dict[str, Any]
    ) -> dict[str, Any]:
        return {"time": int(self.core.clock.seconds() * 1000)}
