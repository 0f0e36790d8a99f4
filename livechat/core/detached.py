"""
A visitor acting without a connection of its own on this node.

The web's fallback transport streams events over SSE and takes the
visitor's requests as separate HTTP POSTs; behind a load balancer the POST
may reach another node than the stream.  L{DetachedVisitorSession} lets such
a request act for the visitor with nothing kept on the node: it follows no
chat and receives nothing (the visitor's stream, wherever it is, gets the
results through the bus), and instead of a followed chat it checks in the
database that the visitor is a participant before each chat action.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.internet import defer
from zope.interface import implementer

from livechat.core import events as E
from livechat.core.errors import CoreError
from livechat.core.hub import Core, VisitorSession, _deferred
from livechat.interfaces import IChannel
from livechat.model import AcceptStatus, ChatState


@implementer(IChannel)
class _Nowhere:
    def deliver(self, message: dict[str, Any]) -> None:
        pass

    def close(self, reason: str) -> None:
        pass


class DetachedVisitorSession(VisitorSession):
    """A visitor's request with no stream here; make it with L{detachedVisitor}."""

    def __init__(self, core: Core, licence: int, visitorId: str, address: str) -> None:
        super().__init__(core, licence, visitorId, _Nowhere(), address)
        # Delivers nothing and follows nothing (watch() returns at once).
        self.closed = True

    def __repr__(self) -> str:
        return f"<DetachedVisitorSession {self.licence}/{self.visitorId}>"

    async def start(self, resume: dict[int, int] | None = None) -> None:
        raise RuntimeError("a detached visitor session is not started")

    def disconnect(self) -> None:
        pass

    async def _member(self, chatId: Any) -> None:
        if not isinstance(chatId, int) or isinstance(chatId, bool):
            raise CoreError("bad_request", "chatId is a number")
        participants = await self.core.store.forLicence(self.licence).participants(chatId)
        if not any(p == self.ref for p, _ in participants):
            raise CoreError("forbidden", f"you are not in chat {chatId}")

    @_deferred
    async def send(self, chatId: int, text: str) -> int:
        checked = self._checkText(text)
        await self._member(chatId)
        return await self.core._post(self, chatId, E.content(checked))

    @_deferred
    async def chatState(self, chatId: int, state: ChatState) -> None:
        await self._member(chatId)
        await self.core._chatState(self, chatId, state)

    @_deferred
    async def markRead(
        self, chatId: int, sequences: Iterable[int], status: AcceptStatus = AcceptStatus.READ
    ) -> int:
        await self._member(chatId)
        sequences = list(sequences)
        chat = await self.core.store.forLicence(self.licence).getChat(chatId)
        last = chat.last_seq if chat is not None else 0
        if any(isinstance(s, int) and s > last for s in sequences):
            raise CoreError("bad_request", f"no event {max(sequences)} in chat {chatId} yet")
        return await self.core._acceptStatus(self, chatId, status, sequences)

    @_deferred
    async def leave(self, chatId: int) -> None:
        await self._member(chatId)
        await self.core._close(self, chatId, "visitor_left")


def detachedVisitor(
    core: Core, licence: int, visitorId: str, address: str = ""
) -> defer.Deferred[DetachedVisitorSession]:
    """A detached session for the visitor, named as the agents know them."""

    async def make() -> DetachedVisitorSession:
        session = DetachedVisitorSession(core, licence, visitorId, address)
        state = await core.presence.visitor(licence, visitorId)
        if state is not None and state.name:
            session.displayName = state.name
        return session

    return defer.ensureDeferred(make())
