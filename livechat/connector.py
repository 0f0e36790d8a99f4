"""
The connector API, inbound: an app acts as a messaging channel (the seed's
connector model; a WhatsApp connector is one).  Its consumers are visitors
of the licence, with a stable visitor id derived from app + consumer, and
their conversations are ordinary chats of the core, routed to agents like
any web chat.  Nothing here knows a wire: L{ConnectorHandler.handle} takes a
request dict and returns C{(HTTP status, response dict)}; the HTTPS
endpoint (L{livechat.api}) calls it, and so does the connector's WebSocket
(L{livechat.protocols.connectorws}), which also hears the conversation live.

Requests (C{{"kind": "req", "id", "type", "body"}}):

  - C{cm.ConsumerRequestConversation}: open a conversation
    (C{body}: C{context.name}, C{context.email}, C{groupId}, C{message},
    all optional) -> C{{"conversationId"}};
  - C{ms.PublishEvent} with C{body.dialogId} and C{body.event}: a
    ContentEvent, a ChatStateEvent (COMPOSING, PAUSE, ACTIVE, INACTIVE,
    GONE) or an AcceptStatusEvent (ACCEPT, READ, C{sequenceList}) ->
    C{{"sequence": N}} once stored (a ChatStateEvent is not stored: C{{}});
  - C{cm.UpdateConversationField} with C{conversationField.conversationState}
    C{CLOSE}: close the conversation.

Answers: C{{"reqId", "code": "OK", "body"}}, or a code such as
C{BAD_REQUEST}, C{NOT_FOUND}, C{FORBIDDEN}, C{WRONG_STATE} with
C{body.msg}.  Agents' messages reach the app as notifications of its
webhooks (L{livechat.notify.webhooks}), durably.
"""

from __future__ import annotations

import hashlib
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from livechat.core.errors import CoreError
from livechat.interfaces import IChannel
from livechat.model import AcceptStatus, ChatState
from livechat.notify.outbox import consumerVisitorPrefix

MAX_CONSUMER_ID = 128
MAX_REQUEST_ID = 64
REQUEST_TYPES = ("cm.ConsumerRequestConversation", "cm.UpdateConversationField", "ms.PublishEvent")

_HTTP = {
    "BAD_REQUEST": 400,
    "TOO_LARGE": 413,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "WRONG_STATE": 409,
    "UNAVAILABLE": 503,
    "RATE_LIMITED": 429,
}


def consumerVisitorId(licence: int, appId: int, consumerId: str) -> str:
    """The visitor id of an app's consumer: stable, and says which app it belongs to."""
    digest = hashlib.sha256(f"{licence}:{appId}:{consumerId}".encode()).hexdigest()[:32]
    return consumerVisitorPrefix(appId) + digest


class ConnectorRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@implementer(IChannel)
class ConsumerChannel:
    """
    The channel of a consumer's visitor session.  Agents' events go out by
    the app's webhooks in any case; when the consumer's requests come over
    the connector's WebSocket, its C{listener} (C{listener.notify(message)
    -> bool}, False once the WebSocket is gone) gets them live as well.  It
    notices the conversation closing, to let the visitor go.
    """

    def __init__(self, onClosed: Any = None) -> None:
        self._onClosed = onClosed
        self.listener: Any = None

    def deliver(self, message: dict[str, Any]) -> None:
        if self.listener is not None:
            try:
                alive = self.listener.notify(message)
            except Exception:
                ConnectorHandler._log.failure("connector listener failed")
                alive = False
            if not alive:
                self.listener = None
        if (
            self._onClosed is not None
            and message.get("type") == "chat.event"
            and message.get("event", {}).get("type") == "CloseEvent"
        ):
            self._onClosed()

    def close(self, reason: str) -> None:
        pass


class ConnectorHandler:
    """
    Serves connector requests on the core.  A consumer's visitor session
    stays connected while its conversation is open (so the chat is not
    closed as abandoned while the consumer is slow to answer, as messaging
    users are); at most C{maxSessions} are kept.
    """

    _log = Logger()

    def __init__(self, core: Any, maxSessions: int = 10000) -> None:
        self.core = core
        self.maxSessions = maxSessions
        self._sessions: dict[tuple[int, str], Any] = {}
        self._locks: dict[tuple[int, str], defer.DeferredLock] = {}

    @property
    def openSessions(self) -> int:
        return len(self._sessions)

    async def handle(
        self,
        licence: int,
        appId: int,
        consumerId: Any,
        request: Any,
        address: str = "",
        listener: Any = None,
    ) -> tuple[int, dict[str, Any]]:
        """
        Serve one request of C{consumerId} of app C{appId}: C{(HTTP status,
        answer)}.  C{listener}: the WebSocket the request came by, which from
        now on hears the consumer's conversation live (L{ConsumerChannel}).
        """
        reqId: Any = None
        try:
            if not isinstance(request, dict):
                raise ConnectorRefused("BAD_REQUEST", "a request is a JSON object")
            reqId = request.get("id")
            if not isinstance(reqId, (str, int)) or isinstance(reqId, bool):
                reqId = None
                raise ConnectorRefused("BAD_REQUEST", "id is required (a string)")
            reqId = str(reqId)
            if len(reqId) > MAX_REQUEST_ID:
                raise ConnectorRefused("BAD_REQUEST", f"id has at most {MAX_REQUEST_ID} characters")
            if request.get("kind") != "req":
                raise ConnectorRefused("BAD_REQUEST", 'kind must be "req"')
            kind = request.get("type")
            if kind not in REQUEST_TYPES:
                raise ConnectorRefused(
                    "BAD_REQUEST", f"type must be one of {', '.join(REQUEST_TYPES)}"
                )
            body = request.get("body", {})
            if not isinstance(body, dict):
                raise ConnectorRefused("BAD_REQUEST", "body is a JSON object")
            if (
                not isinstance(consumerId, str)
                or not consumerId
                or len(consumerId) > MAX_CONSUMER_ID
            ):
                raise ConnectorRefused(
                    "BAD_REQUEST", f"a consumer id of 1 to {MAX_CONSUMER_ID} characters is required"
                )
            visitorId = consumerVisitorId(licence, appId, consumerId)
            key = (licence, visitorId)
            lock = self._locks.setdefault(key, defer.DeferredLock())
            await lock.acquire()
            try:
                session = await self._session(licence, visitorId, address)
                if listener is not None and isinstance(session.channel, ConsumerChannel):
                    session.channel.listener = listener
                try:
                    result = await self._dispatch(session, kind, body)
                finally:
                    self._settle(key, session)
            finally:
                lock.release()
                if not lock.locked and not lock.waiting:
                    self._locks.pop(key, None)
        except ConnectorRefused as e:
            return _HTTP.get(e.code, 400), {
                "reqId": reqId,
                "code": e.code,
                "body": {"msg": e.message},
            }
        except CoreError as e:
            code = e.code.upper()
            return _HTTP.get(code, 400), {"reqId": reqId, "code": code, "body": {"msg": e.message}}
        return 200, {"reqId": reqId, "code": "OK", "body": result}

    async def _session(self, licence: int, visitorId: str, address: str) -> Any:
        session = self._sessions.get((licence, visitorId))
        if session is not None and not session.closed:
            return session
        if len(self._sessions) >= self.maxSessions:
            for stale, other in list(self._sessions.items()):
                if not other.feeds or other.closed:
                    self._sessions.pop(stale, None)
                    other.disconnect()
        if len(self._sessions) >= self.maxSessions:
            raise ConnectorRefused("UNAVAILABLE", "too many open connector conversations")
        key = (licence, visitorId)
        # After the CloseEvent is delivered the session stops following
        # the chat; then (next turn) it is let go unless a request holds it.
        channel = ConsumerChannel(lambda: self.core.clock.callLater(0, self._closed, key))
        session = self.core.connectVisitor(licence, visitorId, channel, address=address)
        await session.start()
        self._sessions[(licence, visitorId)] = session
        return session

    def _closed(self, key: tuple[int, str]) -> None:
        session = self._sessions.get(key)
        lock = self._locks.get(key)
        if session is not None and (lock is None or not lock.locked):
            self._settle(key, session)

    def _settle(self, key: tuple[int, str], session: Any) -> None:
        """Keep the session while a conversation is open; else let the visitor go."""
        if not session.feeds or session.closed:
            self._sessions.pop(key, None)
            session.disconnect()

    def closeAll(self) -> None:
        for session in list(self._sessions.values()):
            session.disconnect()
        self._sessions.clear()

    async def _dispatch(self, session: Any, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        if kind == "cm.ConsumerRequestConversation":
            return await self._open(session, body)
        if kind == "cm.UpdateConversationField":
            return await self._update(session, body)
        return await self._publish(session, body)

    def _conversation(self, session: Any, value: Any, name: str) -> int:
        try:
            chatId = int(value)
        except (TypeError, ValueError):
            raise ConnectorRefused("BAD_REQUEST", f"{name} is required") from None
        if chatId not in session.feeds:
            raise ConnectorRefused("NOT_FOUND", f"no open conversation {value} of this consumer")
        return chatId

    async def _open(self, session: Any, body: dict[str, Any]) -> dict[str, Any]:
        teamId = getattr(session, "teamChatId", None)
        open_ = [c for c in session.feeds if c != teamId]
        if open_:
            return {"conversationId": str(open_[0])}
        context = body.get("context") or {}
        if not isinstance(context, dict):
            raise ConnectorRefused("BAD_REQUEST", "context is a JSON object")
        name, email = context.get("name", ""), context.get("email", "")
        group = body.get("groupId")
        message = body.get("message", "")
        if not isinstance(message, str):
            raise ConnectorRefused("BAD_REQUEST", "message is text")
        chatId = await session.requestChat(name=name, email=email, group=group, message=message)
        return {"conversationId": str(chatId)}

    async def _update(self, session: Any, body: dict[str, Any]) -> dict[str, Any]:
        chatId = self._conversation(session, body.get("conversationId"), "conversationId")
        field = body.get("conversationField")
        if not isinstance(field, dict) or field.get("field") != "ConversationStateField":
            raise ConnectorRefused(
                "BAD_REQUEST", 'conversationField.field must be "ConversationStateField"'
            )
        if field.get("conversationState") != "CLOSE":
            raise ConnectorRefused("BAD_REQUEST", 'conversationState must be "CLOSE"')
        await session.leave(chatId)
        return {}

    async def _publish(self, session: Any, body: dict[str, Any]) -> dict[str, Any]:
        chatId = self._conversation(session, body.get("dialogId"), "dialogId")
        event = body.get("event")
        if not isinstance(event, dict):
            raise ConnectorRefused("BAD_REQUEST", "event is a JSON object")
        kind = event.get("type")
        if kind == "ContentEvent":
            contentType = event.get("contentType", "text/plain")
            if contentType != "text/plain":
                raise ConnectorRefused("BAD_REQUEST", "only text/plain content is supported")
            sequence = await session.send(chatId, event.get("message"))
            return {"sequence": sequence}
        if kind == "ChatStateEvent":
            state = event.get("chatState")
            if state not in ChatState.__members__:
                raise ConnectorRefused(
                    "BAD_REQUEST", f"chatState must be one of {', '.join(ChatState.__members__)}"
                )
            await session.chatState(chatId, ChatState(str(state)))
            return {}
        if kind == "AcceptStatusEvent":
            status = event.get("status")
            if status not in AcceptStatus.__members__:
                raise ConnectorRefused("BAD_REQUEST", "status must be ACCEPT or READ")
            sequences = event.get("sequenceList")
            if not isinstance(sequences, list):
                raise ConnectorRefused("BAD_REQUEST", "sequenceList is a list of numbers")
            sequence = await session.markRead(chatId, sequences, AcceptStatus(str(status)))
            return {"sequence": sequence}
        raise ConnectorRefused(
            "BAD_REQUEST", "event.type must be ContentEvent, ChatStateEvent or AcceptStatusEvent"
        )
