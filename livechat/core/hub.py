"""
The chat core: presence, visitors, chats, routing, transfers, invitations,
conferences, and the agents' messenger.  No sockets and no SQL here: the
core talks to storage through L{ILicenceStore}, to other processes through
L{IBus}, to the outside world through L{INotifier}, and to connections
through L{IChannel}.  Adapters (IWCS, WebSocket, SSE, connectors) get a
session from L{Core} and call its methods.

Every delivery between participants goes through the bus, on these
channels::

    lc:<licence>:chat:<chat id>   the chat's events (numbered and typing)
    lc:<licence>:agents           to every agent: visitors, presence, queue
    lc:<licence>:visitors         to every visitor: the licence's online state
    lc:<licence>:op:<operator>    to one operator (all their connections)
    lc:<licence>:v:<visitor>      to one visitor (all their tabs)

A node subscribes to a channel only while it holds a session that needs it.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, cast

import attr
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from livechat.core import events as E
from livechat.core.errors import CoreError
from livechat.core.feed import ChatFeed
from livechat.core.janitor import Janitor
from livechat.core.presence import MemoryPresence, OperatorInfo
from livechat.core.routing import Assignment, Availability, RouteRequest
from livechat.core.visitors import VisitorState
from livechat.interfaces import IBus, INotifier, IPresence, IRouter, IStore
from livechat.model import (
    AcceptStatus,
    Chat,
    ChatKind,
    ChatState,
    ChatStatus,
    Licence,
    Operator,
    OperatorStatus,
    Role,
    operatorRef,
    visitorRef,
)
from livechat.storage.accounts import formatTime
from livechat.storage.chats import (
    INVITED,
    DomainEvent,
    EventDraft,
    NotParticipant,
    Participants,
    StoredEvent,
    WrongState,
    transcript_txn,
)
from livechat.storage.errors import NotFound

OPEN = (ChatStatus.REQUESTED, ChatStatus.QUEUED, ChatStatus.ASSIGNED, ChatStatus.ACTIVE)


def chatChannel(licence: int, chat: int) -> str:
    return f"lc:{licence}:chat:{chat}"


def agentsChannel(licence: int) -> str:
    return f"lc:{licence}:agents"


def visitorsChannel(licence: int) -> str:
    return f"lc:{licence}:visitors"


def operatorChannel(licence: int, operator: int) -> str:
    return f"lc:{licence}:op:{operator}"


def visitorChannel(licence: int, visitor: str) -> str:
    return f"lc:{licence}:v:{visitor}"


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class CoreSettings:
    """The core's limits and timers; C{fromConfig} reads them from lc_serv.cfg."""

    acceptTimeout: float = 30.0
    operatorGrace: float = 60.0
    visitorIdle: float = 600.0
    visitTimeout: float = 1800.0
    maxMessageLength: int = 4000
    maxChatsDefault: int = 3
    gapWait: float = 0.25
    teamBacklog: int = 50
    maxReadList: int = 200
    maxVisitorsPerLicence: int = 20000
    maxFieldLength: int = 2000
    orphanSweep: float = 15.0

    @classmethod
    def fromConfig(cls, config: Any) -> CoreSettings:
        return cls(
            acceptTimeout=config["CHAT_ACCEPT_TIMEOUT"],
            operatorGrace=config["OPERATOR_GRACE"],
            visitorIdle=config["VISITOR_IDLE_TIMEOUT"],
            maxMessageLength=config["MAX_MESSAGE_LENGTH"],
            maxChatsDefault=config["MAX_CHATS_PER_AGENT"],
            maxVisitorsPerLicence=config["MAX_VISITORS_PER_LICENCE"],
            orphanSweep=config["ORPHAN_SWEEP_INTERVAL"],
        )


def transcriptText(events: Iterable[StoredEvent]) -> str:
    """The seed's CHAT field: one line per message, before url-encoding."""
    lines = []
    for event in events:
        when = formatTime(event.created_at)
        lines.append(f"[{when}] {event.name}: {event.event.get('message', '')}")
    return "\n".join(lines)


# -- sessions -------------------------------------------------------------------


def _operatorDrafts(
    ref: str, name: str, operatorId: int, event: dict[str, Any], chat: Chat
) -> list[EventDraft]:
    """An operator's event in C{chat}: assigned agent or another agent."""
    if chat.kind is ChatKind.VISITOR and chat.operator == operatorId:
        role = Role.ASSIGNED_AGENT
    else:
        role = Role.AGENT
    return [EventDraft(originator=ref, role=role, name=name, event=event)]


def _postRefused(failure: Failure) -> Failure:
    if failure.check(WrongState):
        raise CoreError("wrong_state", str(failure.value))
    if failure.check(NotParticipant):
        raise CoreError("forbidden", str(failure.value))
    return failure


def _deferred(method: Callable[..., Any]) -> Callable[..., defer.Deferred[Any]]:
    """A session method always returns a Deferred; a refusal is its failure."""
    import functools
    import inspect

    @functools.wraps(method)
    def wrapper(*args: Any, **kw: Any) -> defer.Deferred[Any]:
        try:
            result = method(*args, **kw)
        except Exception:
            return defer.fail()
        if isinstance(result, defer.Deferred):  # the usual case: first, it is cheap
            return result
        if inspect.isawaitable(result):
            return defer.ensureDeferred(cast("Coroutine[Any, Any, Any]", result))
        return defer.succeed(result)

    return wrapper


class _Claim:
    """A session's own stored event, answered by its message from the feed (L{_Session._claim})."""

    __slots__ = ("stored", "message", "waiting")

    def __init__(self, stored: StoredEvent) -> None:
        self.stored = stored
        self.message: dict[str, Any] | None = None
        self.waiting: defer.Deferred[dict[str, Any]] | None = None

    def answer(self, message: dict[str, Any]) -> None:
        self.message = message
        if self.waiting is not None:
            self.waiting.callback(message)


class _Session:
    """What sessions of operators and visitors share: feeds and delivery."""

    _log = Logger()
    ref: str
    role: Role

    def __init__(self, core: Core, licence: int, channel: Any) -> None:
        self.core = core
        self.licence = licence
        self.channel = channel
        self.feeds: dict[int, ChatFeed] = {}
        self._leaving: set[int] = set()
        self._listening: list[tuple[str, Callable[[dict[str, Any]], None]]] = []
        self._claims: dict[tuple[int, int], _Claim] = {}
        """Own events whose message answers their request instead (L{_claim})."""
        self.closed = False

    @property
    def name(self) -> str:
        """The name others see on this session's events."""
        raise NotImplementedError

    # -- delivery ------------------------------------------------------------------

    def deliver(self, message: dict[str, Any]) -> None:
        if self.closed:
            return
        try:
            self.channel.deliver(message)
        except Exception:
            self._log.failure("delivering to {session}", session=self)

    def _listen(self, channel: str, handler: Callable[[dict[str, Any]], None]) -> Awaitable[None]:
        self._listening.append((channel, handler))
        return self.core._listen(channel, handler)

    def _onChatMessage(self, message: dict[str, Any]) -> None:
        feed = self.feeds.get(message.get("chatId", -1))
        if feed is not None:
            feed.offer(message)

    def _claim(self, stored: StoredEvent) -> _Claim:
        """
        Take this session's own stored event out of its channel's stream,
        before the event is published: its message goes to the claim when
        the chat's feed reaches it (so, in the chat's order), and the
        channel is not given it.  L{_claimed} then answers with it.
        """
        claim = _Claim(stored)
        feed = self.feeds.get(stored.chat_id)
        if feed is None or feed.last >= stored.seq or self.closed:
            claim.message = E.wire(self.licence, stored)  # not followed, or delivered
        else:
            self._claims[(stored.chat_id, stored.seq)] = claim
        return claim

    @staticmethod
    def _claimed(claim: _Claim) -> dict[str, Any] | defer.Deferred[dict[str, Any]]:
        """A claim's message, now (the usual case) or when the feed reaches it."""
        if claim.message is not None:
            return claim.message
        claim.waiting = defer.Deferred()
        return claim.waiting

    def _releaseClaims(self, chatId: int | None = None) -> None:
        """The feed stops before its claimed events: they answer now."""
        for key in [k for k in self._claims if chatId is None or k[0] == chatId]:
            claim = self._claims.pop(key)
            claim.answer(E.wire(self.licence, claim.stored))

    def _feedDelivered(self, message: dict[str, Any]) -> None:
        chatId = message.get("chatId", -1)
        if self._claims and message.get("sequence") is not None:
            claim = self._claims.pop((chatId, message["sequence"]), None)
            if claim is not None:
                claim.answer(message)
                return  # an own message: nothing follows it here (no join, leave or close)
        if chatId in self._leaving and message.get("type") == "chat.event":
            event = message["event"]
            if event.get("type") == E.JOIN and event["participant"].get("id") == self.ref:
                self._leaving.discard(chatId)  # back in
            else:
                return  # left: nothing more of this chat unless back in
        self.deliver(message)
        if message.get("type") != "chat.event" or "sequence" not in message:
            return
        event = message["event"]
        mine = event.get("participant", {}).get("id") == self.ref
        if event["type"] == E.CLOSE:
            self.unwatch(message["chatId"])
        elif event["type"] == E.LEAVE and mine:
            # Stop following, unless this session was brought back into the
            # chat meanwhile (a transfer or invitation back to it): its feed
            # may deliver the old leave after the new chat.opened arrived.
            chatId = message["chatId"]
            self._leaving.add(chatId)
            self.core.background(self._leftChat(chatId), "following a chat left")

    async def _leftChat(self, chatId: int) -> None:
        store = self.core.store.forLicence(self.licence)
        refs = [ref for ref, role in await store.participants(chatId) if role != INVITED]
        if chatId in self._leaving:
            self._leaving.discard(chatId)
            if self.ref not in refs:
                self.unwatch(chatId)

    async def watch(self, chatId: int, afterSeq: int = 0) -> None:
        """Follow a chat from C{afterSeq}: the backlog, then live events."""
        if self.closed:
            return
        if chatId in self.feeds:
            self._leaving.discard(chatId)  # back in: keep following
            await self.feeds[chatId].whenReady()
            return
        store = self.core.store.forLicence(self.licence)
        feed = ChatFeed(
            self.licence,
            chatId,
            max(0, afterSeq),
            self._feedDelivered,
            lambda after, limit: store.eventsAfter(chatId, after, limit),
            self.core.clock,
            self.core.settings.gapWait,
        )
        self.feeds[chatId] = feed
        await self._listen(chatChannel(self.licence, chatId), self._onChatMessage)
        await feed.start()

    def unwatch(self, chatId: int) -> None:
        feed = self.feeds.pop(chatId, None)
        if feed is None:
            return
        feed.stop()
        self._releaseClaims(chatId)
        channel = chatChannel(self.licence, chatId)
        for entry in [e for e in self._listening if e[0] == channel]:
            self._listening.remove(entry)
            self.core._unlisten(*entry)

    def lastSequences(self) -> dict[int, int]:
        """The last sequence delivered, per chat followed."""
        return {chatId: feed.last for chatId, feed in self.feeds.items()}

    def _detach(self) -> None:
        self.closed = True
        for feed in self.feeds.values():
            feed.stop()
        self.feeds.clear()
        self._releaseClaims()
        for channel, handler in self._listening:
            self.core._unlisten(channel, handler)
        self._listening = []

    def _requireFeed(self, chatId: int) -> None:
        if chatId not in self.feeds:
            raise CoreError("forbidden", f"you are not in chat {chatId}")

    def _checkText(self, text: Any) -> str:
        if not isinstance(text, str):
            raise CoreError("bad_request", "a message is text")
        if not text.strip():
            raise CoreError("bad_request", "a message cannot be empty")
        limit = self.core.settings.maxMessageLength
        if len(text) > limit:
            raise CoreError("too_large", f"a message has at most {limit} characters")
        return text


class OperatorSession(_Session):
    """One connection of a logged-in operator."""

    def __init__(
        self, core: Core, licence: Licence, operator: Operator, channel: Any, client: str
    ) -> None:
        super().__init__(core, licence.number, channel)
        self.licenceInfo = licence
        self.operator = operator
        self.ref = operatorRef(operator.id)
        self.role = Role.AGENT
        self.client = client

    def __repr__(self) -> str:
        return f"<OperatorSession {self.licence}/{self.operator.nick} {self.client}>"

    @property
    def name(self) -> str:
        return self.operator.displayName

    def _onMessage(self, message: dict[str, Any]) -> None:
        self.deliver(message)
        if message.get("type") == "chat.opened":
            self.core.background(self.watch(message["chatId"], 0), "following a new chat")

    async def start(
        self,
        resume: dict[int, int] | None = None,
        status: OperatorStatus | None = OperatorStatus.ONLINE,
    ) -> None:
        """
        Follow every open chat of the operator and the team chat, from the
        sequences in C{resume} (chat id -> last sequence seen; 0 or absent:
        from the start; the team chat: its last few events).
        """
        resume = resume or {}
        await self._listen(operatorChannel(self.licence, self.operator.id), self._onMessage)
        await self._listen(agentsChannel(self.licence), self.deliver)
        await self.core._operatorConnected(self, status)
        store = self.core.store.forLicence(self.licence)
        for chat in await store.openChatsOf(self.ref):
            await self.watch(chat.id, resume.get(chat.id, 0))
        team = await store.teamChat()
        self.teamChatId = team.id
        backlog = max(0, team.last_seq - self.core.settings.teamBacklog)
        await self.watch(team.id, resume.get(team.id, backlog))
        for hook in self.core.operatorStartHooks:
            await hook(self)

    # -- presence ----------------------------------------------------------------

    @_deferred
    def setStatus(self, status: OperatorStatus) -> defer.Deferred[None]:
        return defer.ensureDeferred(self.core._setStatus(self.licence, self.operator.id, status))

    @_deferred
    async def operators(self) -> list[dict[str, Any]]:
        """Fires with the licence's operators that are online, with their status."""
        return await self.core.operatorsOnline(self.licence)

    @_deferred
    async def visitors(self) -> list[dict[str, Any]]:
        """Fires with the licence's visitors now (changes follow as visitor.update)."""
        return [v.toJSON() for v in await self.core.presence.visitors(self.licence)]

    # -- chats -------------------------------------------------------------------

    @_deferred
    def accept(self, chatId: int) -> defer.Deferred[int]:
        return defer.ensureDeferred(self.core._accept(self, chatId))

    @_deferred
    def decline(self, chatId: int) -> defer.Deferred[None]:
        return defer.ensureDeferred(self.core._decline(self, chatId))

    @_deferred
    def send(self, chatId: int, text: str) -> defer.Deferred[int]:
        """Post a message; fires with its sequence once it is stored."""
        self._requireFeed(chatId)
        return self.core._post(self, chatId, E.content(self._checkText(text)))

    @_deferred
    def chatState(self, chatId: int, state: ChatState) -> defer.Deferred[None]:
        self._requireFeed(chatId)
        return self.core._chatState(self, chatId, state)

    @_deferred
    def markRead(
        self, chatId: int, sequences: Iterable[int], status: AcceptStatus = AcceptStatus.READ
    ) -> defer.Deferred[int]:
        self._requireFeed(chatId)
        return defer.ensureDeferred(self.core._acceptStatus(self, chatId, status, sequences))

    @_deferred
    def transfer(
        self, chatId: int, toOperator: int | None = None, toGroup: int | None = None
    ) -> defer.Deferred[None]:
        return defer.ensureDeferred(self.core._transfer(self, chatId, toOperator, toGroup))

    @_deferred
    def invite(self, chatId: int, operatorId: int) -> defer.Deferred[int]:
        """Invite a colleague into the chat (a conference)."""
        self._requireFeed(chatId)
        return defer.ensureDeferred(self.core._inviteAgent(self, chatId, operatorId))

    @_deferred
    def join(self, chatId: int) -> defer.Deferred[int]:
        """Join a chat one was invited to."""
        return defer.ensureDeferred(self.core._joinConference(self, chatId))

    @_deferred
    def leave(self, chatId: int) -> defer.Deferred[None]:
        self._requireFeed(chatId)
        return defer.ensureDeferred(self.core._leaveAgent(self, chatId))

    @_deferred
    def close(self, chatId: int) -> defer.Deferred[None]:
        self._requireFeed(chatId)
        return defer.ensureDeferred(self.core._close(self, chatId, "operator_closed"))

    @_deferred
    def inviteVisitor(self, visitorId: str, message: str = "") -> defer.Deferred[str]:
        """Invite a visitor to chat (proactive); fires with the invitation id."""
        return defer.ensureDeferred(self.core._inviteVisitor(self, visitorId, message))

    @_deferred
    def privateChat(self, operatorId: int) -> defer.Deferred[int]:
        """Open (or find) the private chat with a colleague; fires with its id."""
        return defer.ensureDeferred(self.core._privateChat(self, operatorId))

    @_deferred
    def history(self, visitorId: str, limit: int = 20) -> defer.Deferred[list[dict[str, Any]]]:
        """Past chats of a visitor, newest first, with their messages."""
        return defer.ensureDeferred(self.core._history(self.licence, visitorId, limit))

    def disconnect(self) -> None:
        """The connection is gone."""
        if not self.closed:
            self._detach()
            self.core._operatorDisconnected(self)


class VisitorSession(_Session):
    """One connection (tab) of a visitor."""

    def __init__(
        self, core: Core, licence: int, visitorId: str, channel: Any, address: str
    ) -> None:
        super().__init__(core, licence, channel)
        self.visitorId = visitorId
        self.displayName = "Visitor"
        self.ref = visitorRef(visitorId)
        self.role = Role.CONSUMER
        self.address = address

    def __repr__(self) -> str:
        return f"<VisitorSession {self.licence}/{self.visitorId}>"

    @property
    def name(self) -> str:
        return self.displayName

    def _onMessage(self, message: dict[str, Any]) -> None:
        self.deliver(message)
        if message.get("type") == "chat.opened":
            self.core.background(self.watch(message["chatId"], 0), "following a new chat")

    async def start(self, resume: dict[int, int] | None = None) -> None:
        """Follow the visitor's open chats from the sequences in C{resume}."""
        resume = resume or {}
        await self._listen(visitorChannel(self.licence, self.visitorId), self._onMessage)
        await self._listen(visitorsChannel(self.licence), self.deliver)
        await self.core._visitorConnected(self)
        store = self.core.store.forLicence(self.licence)
        for chat in await store.openChatsOf(self.ref):
            await self.watch(chat.id, resume.get(chat.id, 0))

    @_deferred
    def pageView(self, **info: Any) -> defer.Deferred[dict[str, Any]]:
        return self.core.pageView(self.licence, self.visitorId, address=self.address, **info)

    @_deferred
    def requestChat(
        self, *, name: str = "", email: str = "", group: int | None = None, message: str = ""
    ) -> defer.Deferred[int]:
        """Ask for a chat; fires with its id (routing follows as chat.queue)."""
        if message:
            self._checkText(message)
        return defer.ensureDeferred(
            self.core._requestChat(self, name=name, email=email, group=group, message=message)
        )

    @_deferred
    def send(self, chatId: int, text: str) -> defer.Deferred[int]:
        self._requireFeed(chatId)
        return self.core._post(self, chatId, E.content(self._checkText(text)))

    @_deferred
    def sendInFeed(self, chatId: int, text: str) -> defer.Deferred[dict[str, Any]]:
        """
        Like L{send}, but fires with the stored message itself, when this
        session's feed of the chat reaches it; the channel is not given it
        (one answer to the sender, in order with the chat's other events).
        The visitor's other tabs get it as usual.
        """
        self._requireFeed(chatId)
        return self.core._post(self, chatId, E.content(self._checkText(text)), inFeed=True)

    @_deferred
    def chatState(self, chatId: int, state: ChatState) -> defer.Deferred[None]:
        self._requireFeed(chatId)
        return self.core._chatState(self, chatId, state)

    @_deferred
    def markRead(
        self, chatId: int, sequences: Iterable[int], status: AcceptStatus = AcceptStatus.READ
    ) -> defer.Deferred[int]:
        self._requireFeed(chatId)
        return defer.ensureDeferred(self.core._acceptStatus(self, chatId, status, sequences))

    @_deferred
    def leave(self, chatId: int) -> defer.Deferred[None]:
        self._requireFeed(chatId)
        return defer.ensureDeferred(self.core._close(self, chatId, "visitor_left"))

    @_deferred
    def answerInvitation(
        self, accept: bool, *, name: str = "", email: str = ""
    ) -> defer.Deferred[int | None]:
        """Accept (fires with the new chat's id) or decline a proactive invitation."""
        return defer.ensureDeferred(self.core._answerInvitation(self, accept, name, email))

    def disconnect(self) -> None:
        if not self.closed:
            self._detach()
            self.core._visitorDisconnected(self)


# -- presence ---------------------------------------------------------------------


@attr.s(auto_attribs=True, kw_only=True)
class _LocalOperator:
    """An operator's connections on this node (their presence is shared)."""

    info: OperatorInfo
    sessions: list[OperatorSession] = attr.Factory(list)
    grace: Any = None


@attr.s(auto_attribs=True)
class _Listeners:
    """The local handlers of one bus channel, and the bus subscription once made."""

    handlers: list[Callable[[dict[str, Any]], None]]
    subscription: Any = None
    ready: bool = False
    dropped: bool = False
    waiting: list[defer.Deferred[None]] = attr.Factory(list)

    def subscribed(self, subscription: Any) -> None:
        self.subscription = subscription
        self.ready = True
        if self.dropped:
            subscription.unsubscribe()
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            d.callback(None)

    def whenReady(self) -> defer.Deferred[None]:
        # A fresh Deferred per caller: awaiting a Deferred consumes its result.
        if self.ready:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self.waiting.append(d)
        return d


# -- the core ----------------------------------------------------------------------


class Core:
    """
    One node's chat core.  C{start()} begins the visitor sweep; C{stop()}
    ends it and every timer.
    """

    _log = Logger()

    def __init__(
        self,
        store: IStore,
        bus: IBus,
        router: IRouter,
        notifier: INotifier,
        clock: Any,
        settings: CoreSettings | None = None,
        presence: IPresence | None = None,
        nodeId: str = "local",
    ) -> None:
        self.store = store
        self.bus = bus
        self.router = router
        self.notifier = notifier
        self.clock = clock
        self.settings = settings or CoreSettings()
        self.presence: IPresence = presence or MemoryPresence(
            clock, self.settings.visitorIdle, self.settings.maxVisitorsPerLicence
        )
        self.nodeId = nodeId
        self._local: dict[tuple[int, int], _LocalOperator] = {}
        self._localVisitors: dict[tuple[int, str], list[VisitorSession]] = {}
        self._channels: dict[str, _Listeners] = {}
        self._offers: dict[tuple[int, int], tuple[int, Any]] = {}
        self._sweep: task.LoopingCall | None = None
        self._inflight: set[defer.Deferred[Any]] = set()
        self.storedListeners: list[Callable[[int, list[StoredEvent]], None]] = []
        """Called with (licence, events) after chat events are committed (webhooks)."""
        self.operatorStartHooks: list[Callable[[OperatorSession], Awaitable[None]]] = []
        """Awaited with each operator session at the end of its start (left messages)."""
        self.janitor = Janitor(self)

    # -- life ---------------------------------------------------------------------

    def start(self) -> None:
        addListener = getattr(self.bus, "addReconnectListener", None)
        if addListener is not None:
            addListener(lambda: self.background(self.resync(), "resync after the bus came back"))
        self._sweep = task.LoopingCall(self._sweepVisitors)
        self._sweep.clock = self.clock
        self._sweep.start(min(60.0, self.settings.visitorIdle / 4), now=False)
        self.janitor.start()

    def stop(self) -> defer.Deferred[Any]:
        """Stop every timer; fires when work already under way has finished."""
        if self._sweep is not None and self._sweep.running:
            self._sweep.stop()
        self.janitor.stop()
        for _, timer in self._offers.values():
            if timer.active():
                timer.cancel()
        self._offers.clear()
        for local in self._local.values():
            if local.grace is not None and local.grace.active():
                local.grace.cancel()
        return defer.DeferredList(list(self._inflight), consumeErrors=True)

    def reconfigure(self, config: Any) -> None:
        """SIGHUP: the live keys the core uses."""
        self.settings = attr.evolve(
            self.settings,
            maxChatsDefault=config["MAX_CHATS_PER_AGENT"],
            acceptTimeout=config["CHAT_ACCEPT_TIMEOUT"],
            maxMessageLength=config["MAX_MESSAGE_LENGTH"],
        )

    def background(
        self, work: Coroutine[Any, Any, Any] | defer.Deferred[Any], what: str
    ) -> defer.Deferred[Any]:
        """
        Run C{work} without waiting for it: log if it fails (a refusal,
        CoreError, is only noted), and let C{stop()} wait for it.
        """
        d: defer.Deferred[Any] = defer.ensureDeferred(work)

        def failed(f: Any) -> None:
            if f.check(CoreError):
                self._log.info("{what}: {error}", what=what, error=f.value)
            else:
                self._log.failure("{what}", f, what=what)

        d.addErrback(failed)
        self._inflight.add(d)

        def forget(result: Any) -> Any:
            self._inflight.discard(d)
            return result

        d.addBoth(forget)
        return d

    def settled(self) -> defer.Deferred[None]:
        """Fires once the background work running now (L{background}) is done."""
        return defer.DeferredList(list(self._inflight), consumeErrors=True).addCallback(
            lambda _: None
        )

    def _now(self) -> int:
        return int(self.clock.seconds() * 1000)

    # -- bus --------------------------------------------------------------------------

    async def _listen(self, channel: str, handler: Callable[[dict[str, Any]], None]) -> None:
        listeners = self._channels.get(channel)
        if listeners is None:

            def dispatch(message: dict[str, Any], channel: str = channel) -> None:
                current = self._channels.get(channel)
                for h in list(current.handlers if current else ()):
                    h(message)

            listeners = self._channels[channel] = _Listeners([handler])
            d = self.bus.subscribe(channel, dispatch)
            d.addCallback(listeners.subscribed)
            d.addErrback(lambda f: self._log.failure("subscribing to {c}", f, c=channel))
        else:
            listeners.handlers.append(handler)
        await listeners.whenReady()

    def _unlisten(self, channel: str, handler: Callable[[dict[str, Any]], None]) -> None:
        listeners = self._channels.get(channel)
        if listeners is None or handler not in listeners.handlers:
            return
        listeners.handlers.remove(handler)
        if not listeners.handlers:
            del self._channels[channel]
            if listeners.ready:
                d = listeners.subscription.unsubscribe()
                d.addErrback(lambda f: self._log.failure("unsubscribing {c}", f, c=channel))
            else:
                listeners.dropped = True

    def _publish(self, channel: str, message: dict[str, Any], replay: bool = False) -> None:
        d = self.bus.publish(channel, message, replay=replay)
        if d.called and not isinstance(d.result, Failure):
            return  # the in-memory bus: done already (no errback to add per message)
        d.addErrback(lambda f: self._log.failure("publishing to {c}", f, c=channel))

    def _notify(self, licence: int, domain: Iterable[DomainEvent]) -> None:
        for event in domain:
            try:
                self.notifier.notify(licence, event)
            except Exception:
                self._log.failure("notifier failed on {event}", event=event.name)

    async def _logDomain(self, licence: int, event: DomainEvent) -> None:
        await self.store.forLicence(licence).logEvent(event.name, event.fields, event.chat_id)
        self._notify(licence, [event])

    def _publishStored(self, licence: int, stored: Iterable[StoredEvent]) -> None:
        stored = list(stored)
        for event in stored:
            self._publish(chatChannel(licence, event.chat_id), E.wire(licence, event), replay=True)
        self._stored(licence, stored)

    def _stored(self, licence: int, stored: list[StoredEvent]) -> None:
        if not stored:
            return
        for listener in self.storedListeners:
            try:
                listener(licence, stored)
            except Exception:
                self._log.failure("stored-events listener failed")

    # -- operators' presence ------------------------------------------------------------

    def operatorInfo(self, licence: int, operator: int) -> defer.Deferred[OperatorInfo | None]:
        """Fires with a connected operator's OperatorInfo (on any node), or C{None}."""
        return self.presence.operator(licence, operator)

    async def operatorsOnline(self, licence: int) -> list[dict[str, Any]]:
        return [info.toJSON() for info in await self.presence.operators(licence)]

    def isLicenceOnline(self, licence: int) -> defer.Deferred[bool]:
        """
        Fires with whether an operator of the licence can take chats now (its
        chat button shows online).  Asynchronous: in a cluster the answer
        comes from shared state.
        """
        return defer.ensureDeferred(self._licenceOnline(licence))

    async def _licenceOnline(self, licence: int) -> bool:
        return any(info.canTakeChats for info in await self.presence.operators(licence))

    def _capacity(self, licence: Licence, operator: Operator) -> int:
        if operator.max_chats is not None:
            return operator.max_chats
        if licence.max_chats_default is not None:
            return licence.max_chats_default
        return self.settings.maxChatsDefault

    async def _operatorConnected(
        self, session: OperatorSession, status: OperatorStatus | None
    ) -> None:
        licence, operator = session.licence, session.operator
        key = (licence, operator.id)
        local = self._local.get(key)
        if local is None:
            groups = await self.store.forLicence(licence).groupsOf(operator.id)
            shared = await self.presence.operator(licence, operator.id)
            info = OperatorInfo(
                operator=operator.id,
                nick=operator.nick,
                name=operator.displayName,
                operator_id=operator.operator_id,
                status=shared.status if shared else OperatorStatus.OFFLINE,
                capacity=self._capacity(session.licenceInfo, operator),
                groups=frozenset(groups),
            )
            local = self._local.setdefault(key, _LocalOperator(info=info))
            fresh = True
        else:
            fresh = False
        if local.grace is not None and local.grace.active():
            local.grace.cancel()
        local.grace = None
        local.sessions.append(session)
        current = await self.presence.operator(licence, operator.id)
        currentStatus = current.status if current else OperatorStatus.OFFLINE
        if status is not None and status != currentStatus:
            await self._setStatus(licence, operator.id, status)
        elif current is None:
            await self._setStatus(licence, operator.id, OperatorStatus.ONLINE)
        else:
            await self.presence.operatorUp(licence, current, self.nodeId)
            if fresh and current.status is not OperatorStatus.OFFLINE:
                # Present already through another node (maybe one that died):
                # this node now keeps their routing availability alive too.
                local.info = current
                assignments = await self.router.updateOperator(
                    licence,
                    Availability(
                        operator=operator.id,
                        status=current.status,
                        capacity=current.capacity,
                        groups=current.groups,
                    ),
                )
                await self._assign(licence, assignments)

    def _operatorDisconnected(self, session: OperatorSession) -> None:
        local = self._local.get((session.licence, session.operator.id))
        if local is None or session not in local.sessions:
            return
        local.sessions.remove(session)
        if local.sessions:
            return
        local.grace = self.clock.callLater(
            self.settings.operatorGrace,
            lambda: self.background(
                self._operatorGone(session.licence, session.operator.id), "operator gone"
            ),
        )

    async def _operatorGone(self, licence: int, operatorId: int) -> None:
        """The grace period after this node's last connection of the operator ended."""
        local = self._local.get((licence, operatorId))
        if local is None or local.sessions:
            return
        del self._local[(licence, operatorId)]
        info = await self.presence.operator(licence, operatorId) or local.info
        if not await self.presence.operatorDown(licence, operatorId, self.nodeId):
            await self.router.leftNode(licence, operatorId)
            return  # connected on another node still
        offline = attr.evolve(info, status=OperatorStatus.OFFLINE)
        await self._operatorOffline(licence, offline)
        if info.status is not OperatorStatus.OFFLINE:
            await self._statusChanged(licence, offline)
        await self._checkLicenceOnline(licence)

    async def _setStatus(self, licence: int, operatorId: int, status: OperatorStatus) -> None:
        local = self._local.get((licence, operatorId))
        if local is None:
            raise CoreError("unavailable", "the operator is not connected")
        if not isinstance(status, OperatorStatus):
            raise CoreError("bad_request", f"unknown status {status!r}")
        before = await self.presence.operator(licence, operatorId)
        info = attr.evolve(before or local.info, status=status)
        local.info = info
        await self.presence.operatorUp(licence, info, self.nodeId)
        if status is OperatorStatus.OFFLINE:
            await self._operatorOffline(licence, info)
        else:
            assignments = await self.router.updateOperator(
                licence,
                Availability(
                    operator=operatorId,
                    status=status,
                    capacity=info.capacity,
                    groups=info.groups,
                ),
            )
            await self._assign(licence, assignments)
        if before is None or before.status != status:
            await self._statusChanged(licence, info)
        await self._checkLicenceOnline(licence)

    async def _statusChanged(self, licence: int, info: OperatorInfo) -> None:
        self._publish(
            agentsChannel(licence), {"type": "operator.status", "operator": info.toJSON()}
        )
        await self._logDomain(
            licence,
            DomainEvent(
                name="OPERATOR_STATUS",
                fields={"OPERATOR_ID": info.operator_id, "STATUS": int(info.status)},
            ),
        )

    async def _checkLicenceOnline(self, licence: int) -> None:
        online = await self._licenceOnline(licence)
        if not await self.presence.setOnline(licence, online):
            return
        message = {"type": "licence.status", "licence": licence, "online": online}
        self._publish(agentsChannel(licence), message)
        self._publish(visitorsChannel(licence), message)
        await self._logDomain(
            licence,
            DomainEvent(
                name="BUTTON_STATUS",
                fields={"STATUS": "online" if online else "offline"},
            ),
        )

    async def _operatorOffline(self, licence: int, info: OperatorInfo) -> None:
        """An operator went offline: hand their chats back to routing."""
        operatorId = info.operator
        counted = await self.router.removeOperator(licence, operatorId)
        store = self.store.forLicence(licence)
        # The database's word too: the router's count is soft state (lost
        # with an empty Redis whose node of the operator did not restore it).
        held = [c.id for c in await store.chatsOfOperator(operatorId)]
        chats = sorted(set(counted) | set(held))
        for chatId in chats:
            if await self._withdraw(licence, chatId, operatorId, "operator_offline"):
                continue
            chat = await store.getChat(chatId)
            if chat is None or chat.status is not ChatStatus.ACTIVE or chat.operator != operatorId:
                continue
            ref = operatorRef(operatorId)
            try:
                _, stored, _ = await store.appendEvents(
                    chatId,
                    [
                        EventDraft(
                            originator=ref,
                            role=Role.SYSTEM,
                            name=info.name,
                            event=E.leave(ref, Role.ASSIGNED_AGENT, info.name, "disconnected"),
                        )
                    ],
                    require=[ChatStatus.ACTIVE],
                    update={"status": ChatStatus.REQUESTED, "operator": None},
                    participants=Participants(leave=[ref]),
                )
            except WrongState:
                continue
            self._publishStored(licence, stored)
            await self._route(licence, chat, exclude={operatorId})

    async def _operatorOrphaned(self, licence: int, operatorId: int) -> None:
        """
        The janitor found the operator absent from presence for the grace
        time while chats are theirs (their node died): what their node's
        grace timer would have done.
        """
        if (licence, operatorId) in self._local:
            return  # connected here after all
        operator = await self.store.getOperatorById(licence, operatorId)
        info = OperatorInfo(
            operator=operatorId,
            nick=operator.nick if operator else str(operatorId),
            name=operator.displayName if operator else str(operatorId),
            operator_id=operator.operator_id if operator else "",
            status=OperatorStatus.OFFLINE,
            capacity=0,
        )
        self._log.warn(
            "licence {licence}: operator {operator} has been gone for {grace:g} s with no "
            "node holding them; routing their chats again",
            licence=licence,
            operator=operatorId,
            grace=self.settings.operatorGrace,
        )
        await self.presence.operatorDown(licence, operatorId, self.nodeId)
        await self._operatorOffline(licence, info)
        await self._statusChanged(licence, info)
        await self._checkLicenceOnline(licence)

    # -- visitors ------------------------------------------------------------------

    def pageView(self, licence: int, visitorId: str, **info: Any) -> defer.Deferred[dict[str, Any]]:
        """A page view of the monitoring code: the visitor is here, on this page."""
        return defer.ensureDeferred(self._pageView(licence, visitorId, info))

    async def _pageView(self, licence: int, visitorId: str, info: dict[str, Any]) -> dict[str, Any]:
        limit = self.settings.maxFieldLength
        fields = {}
        for key in ("url", "title", "referrer", "user_agent", "address"):
            value = info.get(key)
            if value is not None:
                if not isinstance(value, str):
                    raise CoreError("bad_request", f"{key} is text")
                fields[key] = value[:limit]
        identity = info.get("identity")
        now = self.clock.seconds()
        state = await self.presence.visitor(licence, visitorId)
        newVisit = state is None or now - state.last_seen >= self.settings.visitTimeout
        if state is None or newVisit or identity:
            record = await self.store.forLicence(licence).recordVisit(
                visitorId, newVisit, identity or None
            )
            state = await self.presence.visitor(licence, visitorId)
            if state is None:
                state = VisitorState(id=visitorId, licence=licence, visit_started=now)
            if newVisit:
                state.previous_visit = record.last_seen if record.visits > 1 else None
                state.visit_started = now
                state.pages = 0
            state.first_seen = record.first_seen
            state.visits = record.visits
            state.name, state.email = record.name, record.email
            state.customer_id, state.verified = record.customer_id, record.verified
        for key, value in fields.items():
            setattr(state, key, value)
        if info.get("url") is not None:
            state.pages += 1
        state.last_seen = now
        if (licence, visitorId) in self._localVisitors:
            state.sessions = max(state.sessions, 1)
        await self._putVisitor(state)
        return state.toJSON()

    async def _putVisitor(self, state: VisitorState) -> None:
        """Store a visitor's state and tell the agents (and who was dropped)."""
        for session in self._localVisitors.get((state.licence, state.id), ()):
            session.displayName = state.name or "Visitor"
        for evicted in await self.presence.putVisitor(state):
            self._publish(
                agentsChannel(evicted.licence), {"type": "visitor.gone", "visitorId": evicted.id}
            )
        self._publish(
            agentsChannel(state.licence), {"type": "visitor.update", "visitor": state.toJSON()}
        )

    async def _visitorConnected(self, session: VisitorSession) -> None:
        key = (session.licence, session.visitorId)
        self._localVisitors.setdefault(key, []).append(session)
        state = await self.presence.visitor(session.licence, session.visitorId)
        if state is None:
            await self._pageView(session.licence, session.visitorId, {"address": session.address})
            state = await self.presence.visitor(session.licence, session.visitorId)
        assert state is not None
        session.displayName = state.name or "Visitor"
        if not state.sessions:
            state.sessions = 1
            state.last_seen = self.clock.seconds()
            await self._putVisitor(state)
        session.deliver(
            {
                "type": "licence.status",
                "licence": session.licence,
                "online": await self._licenceOnline(session.licence),
            }
        )

    def _visitorDisconnected(self, session: VisitorSession) -> None:
        key = (session.licence, session.visitorId)
        sessions = self._localVisitors.get(key, [])
        if session in sessions:
            sessions.remove(session)
        if sessions:
            return
        self._localVisitors.pop(key, None)
        self.background(
            self._visitorUpdated(
                session.licence, session.visitorId, sessions=0, last_seen=self.clock.seconds()
            ),
            "visitor disconnected",
        )

    def _sweepVisitors(self) -> defer.Deferred[None]:
        return self.background(self._sweep_(), "visitor sweep")

    async def _sweep_(self) -> None:
        now = self.clock.seconds()
        # Visitors with a connection open here are seen, page view or not.
        for licence, visitorId in list(self._localVisitors):
            state = await self.presence.visitor(licence, visitorId)
            if state is not None:
                state.last_seen = now
                await self.presence.putVisitor(state)
        for state in await self.presence.expiredVisitors():
            self._publish(
                agentsChannel(state.licence), {"type": "visitor.gone", "visitorId": state.id}
            )
            if state.chat_id is not None:
                self.background(
                    self._closeChat(
                        state.licence,
                        state.chat_id,
                        visitorRef(state.id),
                        Role.CONSUMER,
                        state.name or "Visitor",
                        "visitor_gone",
                    ),
                    "closing an abandoned chat",
                )

    async def _visitorUpdated(self, licence: int, visitorId: str, **changes: Any) -> None:
        state = await self.presence.visitor(licence, visitorId)
        if state is None:
            return
        for key, value in changes.items():
            setattr(state, key, value)
        await self._putVisitor(state)

    # -- routing -------------------------------------------------------------------

    async def _route(
        self, licence: int, chat: Chat, exclude: Iterable[int] = (), prefer: int | None = None
    ) -> None:
        assignment = await self.router.route(
            licence,
            RouteRequest(
                chat=chat.id,
                group=chat.group_id,
                exclude=frozenset(exclude),
                prefer=prefer,
            ),
        )
        if assignment.operator is None:
            store = self.store.forLicence(licence)
            try:
                await store.appendEvents(
                    chat.id,
                    [],
                    require=[ChatStatus.REQUESTED, ChatStatus.QUEUED],
                    update={"status": ChatStatus.QUEUED, "operator": None},
                )
            except WrongState:
                await self.router.dequeue(licence, chat.id)
                return
            await self._publishQueue(licence)
        else:
            await self._assign(licence, [assignment])

    async def _publishQueue(self, licence: int) -> None:
        queue = await self.router.queue(licence)
        for position, chatId in enumerate(queue, 1):
            self._publish(
                chatChannel(licence, chatId),
                {"type": "chat.queue", "chatId": chatId, "position": position},
            )
        self._publish(agentsChannel(licence), {"type": "queue.update", "queue": queue})

    async def _assign(self, licence: int, assignments: Iterable[Assignment]) -> None:
        """Offer chats the router gave out; each waits for an accept."""
        assignments = [a for a in assignments if a.operator is not None]
        if not assignments:
            return
        store = self.store.forLicence(licence)
        for assignment in assignments:
            operatorId = assignment.operator
            assert operatorId is not None
            try:
                chat, _, _ = await store.appendEvents(
                    assignment.chat,
                    [],
                    require=[ChatStatus.REQUESTED, ChatStatus.QUEUED],
                    update={
                        "status": ChatStatus.ASSIGNED,
                        "operator": operatorId,
                        "assigned_at": self._now(),
                    },
                )
            except (WrongState, LookupError):
                await self.router.release(licence, operatorId, assignment.chat)
                continue
            timer = self.clock.callLater(
                self.settings.acceptTimeout,
                lambda c=chat.id, o=operatorId, at=chat.assigned_at: self.background(
                    self._acceptTimedOut(licence, c, o, at), "accept timeout"
                ),
            )
            self._offers[(licence, chat.id)] = (operatorId, timer)
            visitor = await self.presence.visitor(licence, chat.visitor_id or "")
            first = await store.eventsAfter(chat.id, 0, 1)
            self._publish(
                operatorChannel(licence, operatorId),
                {
                    "type": "chat.offered",
                    "chatId": chat.id,
                    "visitor": visitor.toJSON() if visitor else {"id": chat.visitor_id},
                    "name": chat.name,
                    "email": chat.email,
                    "group": chat.group_id,
                    "firstMessage": first[0].event.get("message", "") if first else "",
                    "expiresIn": self.settings.acceptTimeout,
                },
            )
            self._publish(
                chatChannel(licence, chat.id),
                {"type": "chat.queue", "chatId": chat.id, "position": 0},
            )
        await self._publishQueue(licence)

    async def _acceptTimedOut(
        self, licence: int, chatId: int, operatorId: int, assignedAt: int | None
    ) -> None:
        await self._withdraw(licence, chatId, operatorId, "timeout", assignedAt)

    async def _withdraw(
        self, licence: int, chatId: int, operatorId: int, reason: str, assignedAt: int | None = None
    ) -> bool:
        """
        Take an offered chat back from an operator and route it again.  The
        database decides: only a chat still offered to that operator (in the
        offer made at C{assignedAt}, when given) is taken back.
        """
        offer = self._offers.get((licence, chatId))
        if offer is not None and offer[0] == operatorId:
            self._offers.pop((licence, chatId), None)
            if offer[1].active():
                offer[1].cancel()
        store = self.store.forLicence(licence)

        def check(locked: Chat) -> list[EventDraft]:
            if locked.operator != operatorId or (
                assignedAt is not None and locked.assigned_at != assignedAt
            ):
                raise WrongState(locked)
            return []

        try:
            chat, _, _ = await store.appendEvents(
                chatId,
                check,
                require=[ChatStatus.ASSIGNED],
                update={"status": ChatStatus.REQUESTED, "operator": None},
            )
        except (WrongState, LookupError):
            return False
        self._publish(
            operatorChannel(licence, operatorId),
            {"type": "chat.withdrawn", "chatId": chatId, "reason": reason},
        )
        assignments = await self.router.release(licence, operatorId, chatId)
        await self._route(licence, chat, exclude={operatorId})
        await self._assign(licence, assignments)
        return True

    # -- chat requests --------------------------------------------------------------

    async def _requestChat(
        self,
        session: VisitorSession,
        *,
        name: str,
        email: str,
        group: int | None,
        message: str,
        invitingOperator: int | None = None,
    ) -> int:
        licence = session.licence
        store = self.store.forLicence(licence)
        limit = self.settings.maxFieldLength
        if not isinstance(name, str) or not isinstance(email, str):
            raise CoreError("bad_request", "name and email are text")
        if len(name) > 200 or len(email) > 254:
            raise CoreError("too_large", "name or email too long")
        state = await self.presence.visitor(licence, session.visitorId)
        if state is not None and state.chat_id is not None:
            existing = await store.getChat(state.chat_id)
            if existing is not None and existing.status in OPEN:
                raise CoreError("wrong_state", f"chat {existing.id} is still open")
        if group is not None:
            if not isinstance(group, int) or not await store.groupExists(group):
                raise CoreError("not_found", f"no group {group}")
        if name or email:
            await store.recordVisit(
                session.visitorId, False, {"name": name[:limit], "email": email[:limit]}
            )
        displayName = name or (state.name if state else "") or "Visitor"
        events = []
        if message:
            events.append(
                EventDraft(
                    originator=session.ref,
                    role=Role.CONSUMER,
                    name=displayName,
                    event=E.content(message),
                )
            )
        try:
            chat, stored, _ = await store.createChat(
                kind=ChatKind.VISITOR,
                status=ChatStatus.REQUESTED,
                visitor_id=session.visitorId,
                group_id=group,
                name=name,
                email=email,
                inviting_operator=invitingOperator,
                participants=[(session.ref, Role.CONSUMER)],
                events=events,
            )
        except NotFound:  # the group was deleted since the check above
            raise CoreError("not_found", f"no group {group}") from None
        self._stored(licence, stored)
        await self._visitorUpdated(
            licence,
            session.visitorId,
            chat_id=chat.id,
            **({"name": name} if name else {}),
            **({"email": email} if email else {}),
        )
        self._publish(
            visitorChannel(licence, session.visitorId),
            {"type": "chat.opened", "chatId": chat.id, "kind": chat.kind.value},
        )
        await session.watch(chat.id, 0)
        await self._route(licence, chat, prefer=invitingOperator)
        return chat.id

    async def _accept(self, session: OperatorSession, chatId: int) -> int:
        licence = session.licence
        operator = session.operator
        presence = await self.presence.operator(licence, operator.id)
        store = self.store.forLicence(licence)
        chat = await store.getChat(chatId)
        if chat is None or chat.status is not ChatStatus.ASSIGNED or chat.operator != operator.id:
            raise CoreError("wrong_state", f"chat {chatId} is not offered to you")
        inviting = None
        if chat.inviting_operator is not None:
            inviter = await self.store.getOperatorById(licence, chat.inviting_operator)
            inviting = inviter.operator_id if inviter else None
        fields = {
            "CLIENT_ID": chat.visitor_id,
            "OPERATOR_ID": operator.operator_id,
            "STATUS": int(presence.status if presence else OperatorStatus.ONLINE),
        }
        if inviting:
            fields["INVITING_OP"] = inviting

        def drafts(locked: Chat) -> list[EventDraft]:
            # The offer is the database's word, so an accept works on any node.
            if locked.operator != operator.id:
                raise WrongState(locked)
            return [
                EventDraft(
                    originator=session.ref,
                    role=Role.ASSIGNED_AGENT,
                    name=session.name,
                    event=E.join(session.ref, Role.ASSIGNED_AGENT, session.name),
                )
            ]

        try:
            chat, stored, domain = await store.appendEvents(
                chatId,
                drafts,
                require=[ChatStatus.ASSIGNED],
                update={"status": ChatStatus.ACTIVE, "accepted_at": self._now()},
                participants=Participants(join=[(session.ref, Role.ASSIGNED_AGENT)]),
                domain=[DomainEvent(name="CHAT_STARTED", fields=fields)],
            )
        except WrongState:
            raise CoreError("wrong_state", f"chat {chatId} is not offered to you") from None
        offer = self._offers.pop((licence, chatId), None)
        if offer is not None and offer[1].active():
            offer[1].cancel()
        self._publishStored(licence, stored)
        self._publish(
            operatorChannel(licence, operator.id),
            {"type": "chat.opened", "chatId": chatId, "kind": chat.kind.value},
        )
        await session.watch(chatId, 0)
        self._notify(licence, domain)
        return stored[-1].seq

    async def _decline(self, session: OperatorSession, chatId: int) -> None:
        if not await self._withdraw(session.licence, chatId, session.operator.id, "declined"):
            raise CoreError("wrong_state", f"chat {chatId} is not offered to you")

    # -- posting ---------------------------------------------------------------------

    def _post(
        self, session: _Session, chatId: int, event: dict[str, Any], inFeed: bool = False
    ) -> defer.Deferred[Any]:
        """
        Store one event of C{session} in the chat and publish it; fires with
        its sequence, or, C{inFeed}, with its message as the session's feed
        delivers it (L{_Session._claim}).
        """
        # Callbacks, not a coroutine, and no closures: this is every message's path.
        drafts: Any
        if not isinstance(session, OperatorSession):  # a visitor: the role is the chat's
            drafts = [
                EventDraft(
                    originator=session.ref, role=Role.CONSUMER, name=session.name, event=event
                )
            ]
        else:
            drafts = functools.partial(
                _operatorDrafts, session.ref, session.name, session.operator.id, event
            )
        d = self.store.forLicence(session.licence).appendEvents(
            chatId, drafts, require=OPEN, requireParticipant=session.ref
        )
        return d.addCallbacks(self._posted, _postRefused, callbackArgs=(session, inFeed))

    def _posted(
        self,
        result: tuple[Chat, list[StoredEvent], list[DomainEvent]],
        session: _Session,
        inFeed: bool,
    ) -> Any:
        events = result[1]
        if not inFeed:
            self._publishStored(session.licence, events)
            return events[-1].seq
        claim = session._claim(events[-1])
        self._publishStored(session.licence, events)
        return session._claimed(claim)

    def _chatState(self, session: _Session, chatId: int, state: Any) -> defer.Deferred[None]:
        try:
            state = ChatState(state)
        except ValueError:
            return defer.fail(CoreError("bad_request", f"unknown chat state {state!r}"))
        role = Role.CONSUMER if isinstance(session, VisitorSession) else Role.AGENT
        self._publish(
            chatChannel(session.licence, chatId),
            E.wireState(
                session.licence, chatId, session.ref, role, session.name, state, self._now()
            ),
        )
        return defer.succeed(None)

    async def _acceptStatus(
        self, session: _Session, chatId: int, status: Any, sequences: Iterable[int]
    ) -> int:
        try:
            status = AcceptStatus(status)
        except ValueError:
            raise CoreError("bad_request", f"unknown accept status {status!r}") from None
        sequences = list(sequences)
        if not sequences or len(sequences) > self.settings.maxReadList:
            raise CoreError(
                "bad_request", f"give 1 to {self.settings.maxReadList} sequence numbers"
            )
        if not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sequences):
            raise CoreError("bad_request", "sequence numbers are positive whole numbers")
        feed = session.feeds.get(chatId)
        if feed is not None and max(sequences) > feed.last:
            raise CoreError("bad_request", f"no event {max(sequences)} in chat {chatId} yet")
        return await self._post(session, chatId, E.acceptStatus(status, sequences))

    # -- transfer, conference, leave, close ----------------------------------------------

    async def _transfer(
        self, session: OperatorSession, chatId: int, toOperator: int | None, toGroup: int | None
    ) -> None:
        licence = session.licence
        store = self.store.forLicence(licence)
        chat = await store.getChat(chatId)
        if chat is None or chat.kind is not ChatKind.VISITOR:
            raise CoreError("not_found", f"no chat {chatId}")
        if chat.operator != session.operator.id or chat.status is not ChatStatus.ACTIVE:
            raise CoreError("forbidden", "only the assigned operator can transfer an active chat")
        if (toOperator is None) == (toGroup is None):
            raise CoreError("bad_request", "transfer to an operator or to a group")
        me = await self.presence.operator(licence, session.operator.id)
        myStatus = int(me.status if me else OperatorStatus.ONLINE)
        by = E.participant(session.ref, Role.ASSIGNED_AGENT, session.name)
        leaving = EventDraft(
            originator=session.ref,
            role=Role.ASSIGNED_AGENT,
            name=session.name,
            event=E.leave(session.ref, Role.ASSIGNED_AGENT, session.name, "transfer"),
        )
        if toOperator is not None:
            if toOperator == session.operator.id:
                raise CoreError("bad_request", "cannot transfer to yourself")
            target = await self.presence.operator(licence, toOperator)
            if target is None or target.status is OperatorStatus.OFFLINE:
                raise CoreError("unavailable", f"operator {toOperator} is not online")
            ref = operatorRef(toOperator)
            name = target.name
            try:
                chat, stored, domain = await store.appendEvents(
                    chatId,
                    [
                        EventDraft(
                            originator=session.ref,
                            role=Role.ASSIGNED_AGENT,
                            name=session.name,
                            event=E.transfer(
                                by, myStatus, E.participant(ref, Role.ASSIGNED_AGENT, name), None
                            ),
                        ),
                        leaving,
                        EventDraft(
                            originator=ref,
                            role=Role.ASSIGNED_AGENT,
                            name=name,
                            event=E.join(ref, Role.ASSIGNED_AGENT, name),
                        ),
                    ],
                    require=[ChatStatus.ACTIVE],
                    update={"operator": toOperator},
                    participants=Participants(
                        join=[(ref, Role.ASSIGNED_AGENT)], leave=[session.ref]
                    ),
                    domain=[
                        DomainEvent(
                            name="OPERATOR_TRANSFER",
                            fields={
                                "CLIENT_ID": chat.visitor_id,
                                "NEW_OPERATOR_ID": target.operator_id,
                                "OPERATOR_ID": session.operator.operator_id,
                                "STATUS": myStatus,
                            },
                        )
                    ],
                )
            except WrongState as e:
                raise CoreError("wrong_state", str(e)) from None
            await self.router.reserve(licence, toOperator, chatId)
            self._publishStored(licence, stored)
            self._publish(
                operatorChannel(licence, toOperator),
                {
                    "type": "chat.opened",
                    "chatId": chatId,
                    "kind": chat.kind.value,
                    "transferredBy": by,
                },
            )
            self._notify(licence, domain)
            assignments = await self.router.release(licence, session.operator.id, chatId)
            await self._assign(licence, assignments)
            return
        assert toGroup is not None
        if not isinstance(toGroup, int) or not await store.groupExists(toGroup):
            raise CoreError("not_found", f"no group {toGroup}")
        try:
            chat, stored, domain = await store.appendEvents(
                chatId,
                [
                    EventDraft(
                        originator=session.ref,
                        role=Role.ASSIGNED_AGENT,
                        name=session.name,
                        event=E.transfer(by, myStatus, None, toGroup),
                    ),
                    leaving,
                ],
                require=[ChatStatus.ACTIVE],
                update={"operator": None, "status": ChatStatus.REQUESTED, "group_id": toGroup},
                participants=Participants(leave=[session.ref]),
                domain=[
                    DomainEvent(
                        name="OPERATOR_TRANSFER",
                        fields={
                            "CLIENT_ID": chat.visitor_id,
                            "NEW_OPERATOR_ID": "",
                            "OPERATOR_ID": session.operator.operator_id,
                            "STATUS": myStatus,
                            "GROUP_ID": toGroup,
                        },
                    )
                ],
            )
        except WrongState as e:
            raise CoreError("wrong_state", str(e)) from None
        except NotFound:  # the group was deleted since the check above
            raise CoreError("not_found", f"no group {toGroup}") from None
        self._publishStored(licence, stored)
        self._notify(licence, domain)
        assignments = await self.router.release(licence, session.operator.id, chatId)
        await self._route(licence, chat, exclude={session.operator.id})
        await self._assign(licence, assignments)

    async def _inviteAgent(self, session: OperatorSession, chatId: int, operatorId: int) -> int:
        licence = session.licence
        target = await self.presence.operator(licence, operatorId)
        if target is None or target.status is OperatorStatus.OFFLINE:
            raise CoreError("unavailable", f"operator {operatorId} is not online")
        ref = operatorRef(operatorId)
        store = self.store.forLicence(licence)
        if any(p == ref for p, _ in await store.participants(chatId)):
            raise CoreError("wrong_state", "that operator is in the chat already")
        invited = E.participant(ref, Role.AGENT, target.name)

        def drafts(locked: Chat) -> list[EventDraft]:
            if locked.kind is not ChatKind.VISITOR:
                raise WrongState(locked)
            return [
                EventDraft(
                    originator=session.ref,
                    role=Role.AGENT,
                    name=session.name,
                    event=E.invite(invited),
                )
            ]

        try:
            chat, stored, _ = await store.appendEvents(
                chatId,
                drafts,
                require=[ChatStatus.ACTIVE],
                requireParticipant=session.ref,
                participants=Participants(join=[(ref, INVITED)]),
            )
        except WrongState as e:
            raise CoreError("wrong_state", str(e)) from None
        except NotParticipant as e:
            raise CoreError("forbidden", str(e)) from None
        self._publishStored(licence, stored)
        self._publish(
            operatorChannel(licence, operatorId),
            {
                "type": "conference.invited",
                "chatId": chatId,
                "by": E.participant(session.ref, Role.AGENT, session.name),
            },
        )
        return stored[-1].seq

    async def _joinConference(self, session: OperatorSession, chatId: int) -> int:
        licence = session.licence
        store = self.store.forLicence(licence)
        try:
            chat, stored, _ = await store.appendEvents(
                chatId,
                [
                    EventDraft(
                        originator=session.ref,
                        role=Role.AGENT,
                        name=session.name,
                        event=E.join(session.ref, Role.AGENT, session.name),
                    )
                ],
                require=[ChatStatus.ACTIVE],
                requireInvited=session.ref,
                participants=Participants(join=[(session.ref, Role.AGENT)]),
            )
        except WrongState as e:
            raise CoreError("wrong_state", str(e)) from None
        except NotParticipant as e:
            raise CoreError("forbidden", str(e)) from None
        self._publishStored(licence, stored)
        self._publish(
            operatorChannel(licence, session.operator.id),
            {"type": "chat.opened", "chatId": chatId, "kind": chat.kind.value},
        )
        await session.watch(chatId, 0)
        return stored[-1].seq

    async def _leaveAgent(self, session: OperatorSession, chatId: int) -> None:
        licence = session.licence
        store = self.store.forLicence(licence)
        chat = await store.getChat(chatId)
        if chat is None:
            raise CoreError("not_found", f"no chat {chatId}")
        if chat.kind is ChatKind.TEAM:
            raise CoreError("bad_request", "the team chat cannot be left")
        if chat.kind is ChatKind.PRIVATE:
            await self._close(session, chatId, "operator_closed")
            return
        if chat.operator == session.operator.id:
            # The assigned operator leaving hands the chat back to routing.
            try:
                chat, stored, _ = await store.appendEvents(
                    chatId,
                    [
                        EventDraft(
                            originator=session.ref,
                            role=Role.ASSIGNED_AGENT,
                            name=session.name,
                            event=E.leave(session.ref, Role.ASSIGNED_AGENT, session.name, "left"),
                        )
                    ],
                    require=[ChatStatus.ACTIVE],
                    update={"operator": None, "status": ChatStatus.REQUESTED},
                    participants=Participants(leave=[session.ref]),
                )
            except WrongState as e:
                raise CoreError("wrong_state", str(e)) from None
            self._publishStored(licence, stored)
            assignments = await self.router.release(licence, session.operator.id, chatId)
            await self._route(licence, chat, exclude={session.operator.id})
            await self._assign(licence, assignments)
            return
        try:
            _, stored, _ = await store.appendEvents(
                chatId,
                [
                    EventDraft(
                        originator=session.ref,
                        role=Role.AGENT,
                        name=session.name,
                        event=E.leave(session.ref, Role.AGENT, session.name, "left"),
                    )
                ],
                require=OPEN,
                participants=Participants(leave=[session.ref]),
            )
        except WrongState as e:
            raise CoreError("wrong_state", str(e)) from None
        self._publishStored(licence, stored)

    async def _close(self, session: _Session, chatId: int, reason: str) -> None:
        role = Role.CONSUMER if isinstance(session, VisitorSession) else Role.AGENT
        await self._closeChat(session.licence, chatId, session.ref, role, session.name, reason)

    async def _closeChat(
        self, licence: int, chatId: int, ref: str, role: Role, name: str, reason: str
    ) -> None:
        store = self.store.forLicence(licence)
        chat = await store.getChat(chatId)
        if chat is None:
            raise CoreError("not_found", f"no chat {chatId}")
        if chat.kind is ChatKind.TEAM:
            raise CoreError("bad_request", "the team chat cannot be closed")
        assigned = chat.operator
        operatorEmail = ""
        if assigned is not None:
            op = await self.store.getOperatorById(licence, assigned)
            operatorEmail = op.operator_id if op else ""
        closer = ""
        if ref.startswith("op:"):
            op = await self.store.getOperatorById(licence, int(ref[3:]))
            closer = op.operator_id if op else ""

        def domainAfter(after: Chat, stored: list[StoredEvent], txn: Any) -> list[DomainEvent]:
            if after.kind is ChatKind.PRIVATE:
                return [
                    DomainEvent(
                        name="PRIVATE_CHAT_STATUS",
                        fields={"OPERATOR_ID": closer, "STATUS": "stop", "GROUP": after.id},
                    )
                ]
            text = transcriptText(transcript_txn(txn, after.id))
            if role is Role.CONSUMER or reason == "visitor_gone":
                return [
                    DomainEvent(
                        name="VISITOR_LEFT_CHAT",
                        fields={
                            "OPERATOR_ID": operatorEmail,
                            "CLIENT_ID": after.visitor_id,
                            "GROUP": after.id,
                            "CHAT": text,
                        },
                    )
                ]
            return [
                DomainEvent(
                    name="OPERATOR_STOPED_CHAT",
                    fields={
                        "OPERATOR_ID": closer or operatorEmail,
                        "CLIENT_ID": after.visitor_id,
                        "GROUP": after.id,
                        "CHAT": text,
                    },
                )
            ]

        try:
            chat, stored, domain = await store.appendEvents(
                chatId,
                [EventDraft(originator=ref, role=role, name=name, event=E.close(reason))],
                require=OPEN,
                update={
                    "status": ChatStatus.CLOSED,
                    "closed_at": self._now(),
                    "close_reason": reason,
                    "pair_key": None,
                },
                domainAfter=domainAfter,
            )
        except WrongState as e:
            raise CoreError("wrong_state", str(e)) from None
        offer = self._offers.pop((licence, chatId), None)
        if offer is not None and offer[1].active():
            offer[1].cancel()
        self._publishStored(licence, stored)
        self._notify(licence, domain)
        if chat.visitor_id:
            state = await self.presence.visitor(licence, chat.visitor_id)
            if state is not None and state.chat_id == chatId:
                await self._visitorUpdated(licence, chat.visitor_id, chat_id=None)
        await self.router.dequeue(licence, chatId)
        if assigned is not None:
            assignments = await self.router.release(licence, assigned, chatId)
            await self._assign(licence, assignments)
        await self._publishQueue(licence)

    # -- invitations ------------------------------------------------------------------

    async def _inviteVisitor(self, session: OperatorSession, visitorId: str, message: str) -> str:
        licence = session.licence
        state = await self.presence.visitor(licence, visitorId)
        if state is None:
            raise CoreError("not_found", f"visitor {visitorId} is not on the site")
        if state.chat_id is not None:
            raise CoreError("wrong_state", "the visitor is chatting already")
        if not isinstance(message, str) or len(message) > self.settings.maxMessageLength:
            raise CoreError("bad_request", "bad invitation message")
        invitation = secrets.token_urlsafe(9)
        await self._visitorUpdated(
            licence,
            visitorId,
            invitation="sent",
            invited_by=session.operator.id,
            invitation_id=invitation,
        )
        self._publish(
            visitorChannel(licence, visitorId),
            {
                "type": "invitation",
                "invitationId": invitation,
                "operator": E.participant(session.ref, Role.AGENT, session.name),
                "message": message,
            },
        )
        await self._logDomain(
            licence,
            DomainEvent(
                name="CLIENT_INVITED",
                fields={"OPERATOR_ID": session.operator.operator_id, "CLIENT_ID": visitorId},
            ),
        )
        return invitation

    async def _answerInvitation(
        self, session: VisitorSession, accept: bool, name: str, email: str
    ) -> int | None:
        licence = session.licence
        state = await self.presence.visitor(licence, session.visitorId)
        if state is None or state.invitation != "sent" or state.invited_by is None:
            raise CoreError("not_found", "there is no invitation to answer")
        invitationId, operatorId = state.invitation_id, state.invited_by
        await self._visitorUpdated(
            licence,
            session.visitorId,
            invitation="accepted" if accept else "declined",
            invitation_id="",
        )
        self._publish(
            agentsChannel(licence),
            {
                "type": "invitation.answered",
                "invitationId": invitationId,
                "visitorId": session.visitorId,
                "operator": operatorRef(operatorId),
                "accepted": bool(accept),
            },
        )
        if not accept:
            return None
        return await self._requestChat(
            session, name=name, email=email, group=None, message="", invitingOperator=operatorId
        )

    # -- the agents' messenger ---------------------------------------------------------

    async def _privateChat(self, session: OperatorSession, operatorId: int) -> int:
        licence = session.licence
        if operatorId == session.operator.id:
            raise CoreError("bad_request", "a private chat needs another operator")
        other = await self.store.getOperatorById(licence, operatorId)
        if other is None:
            raise CoreError("not_found", f"no operator {operatorId} in licence {licence}")
        low, high = sorted((session.operator.id, operatorId))
        key = f"{low}:{high}"
        store = self.store.forLicence(licence)
        chat = await store.openPair(key)
        if chat is None:
            from livechat.storage.errors import Conflict

            try:
                chat, _, domain = await store.createChat(
                    kind=ChatKind.PRIVATE,
                    status=ChatStatus.ACTIVE,
                    pair_key=key,
                    participants=[(session.ref, Role.AGENT), (operatorRef(operatorId), Role.AGENT)],
                    domain=[
                        DomainEvent(
                            name="PRIVATE_CHAT_STATUS",
                            fields={"OPERATOR_ID": session.operator.operator_id, "STATUS": "start"},
                        )
                    ],
                )
            except Conflict:
                chat = await store.openPair(key)
                assert chat is not None
            else:
                self._notify(
                    licence, [attr.evolve(d, fields={**d.fields, "GROUP": chat.id}) for d in domain]
                )
        for op in (session.operator.id, operatorId):
            self._publish(
                operatorChannel(licence, op),
                {
                    "type": "chat.opened",
                    "chatId": chat.id,
                    "kind": chat.kind.value,
                    "with": [operatorRef(session.operator.id), operatorRef(operatorId)],
                },
            )
        await session.watch(chat.id, 0)
        return chat.id

    async def _history(self, licence: int, visitorId: str, limit: int) -> list[dict[str, Any]]:
        store = self.store.forLicence(licence)
        result = []
        for chat in await store.chatsOfVisitor(visitorId, max(1, min(limit, 100))):
            messages = await store.transcript(chat.id)
            result.append(
                {
                    "chatId": chat.id,
                    "status": chat.status.value,
                    "createdAt": chat.created_at,
                    "closedAt": chat.closed_at,
                    "messages": [E.wire(licence, m) for m in messages],
                }
            )
        return result

    # -- sessions -----------------------------------------------------------------------

    def connectOperator(
        self, licence: Licence, operator: Operator, channel: Any, client: str = ""
    ) -> OperatorSession:
        """A new connection of a logged-in operator; call C{start()} on it."""
        return OperatorSession(self, licence, operator, channel, client)

    def connectVisitor(
        self, licence: int, visitorId: str, channel: Any, address: str = ""
    ) -> VisitorSession:
        """A new connection of a visitor; call C{start()} on it."""
        if (
            not isinstance(visitorId, str)
            or not 8 <= len(visitorId) <= 64
            or not all(c.isalnum() or c in "-_" for c in visitorId)
        ):
            raise CoreError("bad_request", "a visitor id has 8 to 64 letters, digits, - or _")
        return VisitorSession(self, licence, visitorId, channel, address)

    async def resync(self) -> None:
        """
        The bus (Redis) came back after an outage, maybe empty: put this
        node's operators back into presence and routing with the chats they
        hold, route the chats that waited, and let every feed here fetch
        what it missed from the database.
        """
        for (licence, operatorId), local in list(self._local.items()):
            info = local.info
            await self.presence.operatorUp(licence, info, self.nodeId)
            if info.status is not OperatorStatus.OFFLINE:
                await self.router.updateOperator(
                    licence,
                    Availability(
                        operator=operatorId,
                        status=info.status,
                        capacity=info.capacity,
                        groups=info.groups,
                    ),
                )
            for chat in await self.store.forLicence(licence).chatsOfOperator(operatorId):
                await self.router.reserve(licence, operatorId, chat.id)
        await self.recover()
        sessions: list[_Session] = [s for local in self._local.values() for s in local.sessions]
        sessions += [s for group in self._localVisitors.values() for s in group]
        for session in sessions:
            for feed in list(session.feeds.values()):
                feed.refresh()
        for licence in {licence for licence, _ in self._local}:
            await self._checkLicenceOnline(licence)

    async def recover(self) -> None:
        """
        At start (and when the bus comes back): chats waiting in the
        database but in no queue go back to routing (the queue is soft
        state); an offer whose accept time has run out is withdrawn, and a
        younger one gets a timer here too (whichever node's fires first
        withdraws it, the database makes sure only once).
        """
        now = self._now()
        for licence in await self.store.listLicences():
            store = self.store.forLicence(licence.number)
            waiting = await store.chatsByStatus(
                [ChatStatus.REQUESTED, ChatStatus.QUEUED, ChatStatus.ASSIGNED]
            )
            if not waiting:
                continue
            queued = set(await self.router.queue(licence.number))
            for chat in waiting:
                if chat.kind is not ChatKind.VISITOR:
                    continue
                if chat.status is ChatStatus.ASSIGNED:
                    assert chat.operator is not None
                    deadline = (chat.assigned_at or 0) + int(self.settings.acceptTimeout * 1000)
                    self.clock.callLater(
                        max(0, deadline - now) / 1000,
                        lambda c=chat, n=licence.number: self.background(
                            self._acceptTimedOut(n, c.id, c.operator, c.assigned_at),
                            "recovered offer timeout",
                        ),
                    )
                    continue
                if chat.id in queued:
                    continue
                await self._route(licence.number, chat)
