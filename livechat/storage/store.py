"""
L{SqlStore}: L{IStore} on adbapi, for sqlite and MariaDB alike.
"""

from __future__ import annotations

import collections
import random
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from livechat.interfaces import ILicenceStore, IStore
from livechat.model import AccountType, Chat, ChatStatus, Group, Licence, Operator, VisitorRecord
from livechat.storage import (
    accounts,
    canned,
    chats,
    migrations,
    offline,
    settings,
    subscriptions,
    websessions,
)
from livechat.storage.chats import DomainEvent, EventDraft, StoredEvent
from livechat.storage.database import GLOBAL, LICENCE, Database
from livechat.storage.errors import Conflict, NotFound


def _nowMS(clock: Any) -> int:
    return int(clock.seconds() * 1000)


class AppendBatcher:
    """
    Group commit of one licence's chat appends.

    An append that finds no transaction of appends running starts one at
    the end of the reactor's turn (with a C{clock}; at once without): with
    the appends of every packet read in that turn, and no added latency
    when the load is light.  The appends that arrive while it runs wait and
    then go together, in arrival order, in the next transaction
    (L{chats.appendBatch_txn}), at most C{maxBatch} at a time.
    Under load the cost of a commit (and of a hop to the database thread) is
    shared by a whole batch; every caller still hears only after the commit.
    When a batch ends, the next one starts before its callers hear, so that
    the database commits one batch while the reactor hands out the last.

    A batch takes its chats' row locks in chat id order (a stable sort keeps
    each chat's appends in arrival order), so it cannot deadlock with
    another node's batch.  C{concurrency} batches may run at once; more than
    one gives up the order of one chat's appends between batches
    (L{Database.appendBatching} keeps it at one).
    """

    def __init__(
        self,
        db: Database,
        licence: int,
        maxBatch: int = 256,
        concurrency: int = 1,
        clock: Any = None,
    ) -> None:
        self.db = db
        self.licence = licence
        self.maxBatch = maxBatch
        self.concurrency = concurrency
        self._clock = clock
        self._starting: Any = None
        self._waiting: list[tuple[chats.AppendRequest, defer.Deferred[Any]]] = []
        self._running = 0
        self._finished: collections.deque[tuple[Any, list[defer.Deferred[Any]]]] = (
            collections.deque()
        )
        self._answering = False

    @property
    def idle(self) -> bool:
        return not self._running and not self._waiting and not self._finished

    def append(self, request: chats.AppendRequest) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self._waiting.append((request, d))
        if self._running < self.concurrency and self._starting is None:
            if self._clock is None:
                self._next()
            else:
                # At the end of this turn of the reactor: the appends of
                # every packet read in it go together, not one then the rest.
                self._starting = self._clock.callLater(0, self._start)
        return d

    def _start(self) -> None:
        self._starting = None
        while self._waiting and self._running < self.concurrency:
            self._next()

    def _next(self) -> None:
        batch = self._waiting[: self.maxBatch]
        del self._waiting[: self.maxBatch]
        batch.sort(key=lambda item: item[0][0])
        self._running += 1
        ran = self.db.runLicence(
            self.licence, "append events", chats.appendBatch_txn, [r for r, _ in batch]
        )
        ran.addBoth(self._ran, [d for _, d in batch])

    def _ran(self, result: Any, waiting: list[defer.Deferred[Any]]) -> None:
        # The next batch starts before this one's callers hear, so that the
        # database thread commits it while this thread tells them (fan-out,
        # acks): the two overlap instead of taking turns.  A batch that ends
        # at once (a failure) waits its turn: callers hear in batch order.
        self._running -= 1
        self._finished.append((result, waiting))
        if self._answering:
            return
        self._answering = True
        try:
            while self._finished:
                result, waiting = self._finished.popleft()
                while self._waiting and self._running < self.concurrency:
                    self._next()
                self._answer(result, waiting)
        finally:
            self._answering = False

    @staticmethod
    def _answer(result: Any, waiting: list[defer.Deferred[Any]]) -> None:
        if isinstance(result, Failure):
            for d in waiting:
                d.errback(result)
            return
        for d, (ok, value) in zip(waiting, result):
            if ok:
                d.callback(value)
            else:
                d.errback(Failure(value))


@implementer(IStore)
class SqlStore:
    """
    The global database and the way to each licence's database.

    @param url: C{sqlite:///path/db_livechat.sqlite3} or C{mysql://...}.
    @param reactor: provides C{IReactorTime}, C{IReactorThreads} and
        C{IReactorCore}; its clock stamps every row.
    """

    _log = Logger()

    def __init__(self, url: str, reactor: Any, *, maxOpenLicences: int = 64) -> None:
        self._reactor = reactor
        self.db = Database(url, reactor, maxOpenLicences=maxOpenLicences)
        self.dialect = self.db.engine.name
        self._licences: dict[int, SqlLicenceStore] = {}
        self._batchers: dict[int, AppendBatcher] = {}

    def batcher(self, licence: int) -> AppendBatcher:
        """The one L{AppendBatcher} of C{licence} (idle ones are dropped now and then)."""
        batcher = self._batchers.get(licence)
        if batcher is None:
            if len(self._batchers) > 1000:
                self._batchers = {n: b for n, b in self._batchers.items() if not b.idle}
            maxBatch, concurrency = self.db.appendBatching
            batcher = self._batchers[licence] = AppendBatcher(
                self.db, licence, maxBatch=maxBatch, concurrency=concurrency, clock=self._reactor
            )
        return batcher

    def _now(self) -> int:
        return _nowMS(self._reactor)

    def describe(self) -> str:
        return self.db.describe()

    # -- life -------------------------------------------------------------------

    @defer.inlineCallbacks
    def open(self) -> Any:
        yield defer.ensureDeferred(self.db.start())
        applied = yield self.db.runGlobal(
            "migrate global", migrations.migrate_txn, GLOBAL, self._now()
        )
        if applied:
            self._log.info("global database migrated to version {version}", version=applied[-1])
        for licence in (yield self.listLicences()):
            yield self._migrateLicence(licence.number)

    @defer.inlineCallbacks
    def _migrateLicence(self, number: int) -> Any:
        applied = yield self.db.runLicence(
            number, "migrate licence", migrations.migrate_txn, LICENCE, self._now()
        )
        if applied:
            self._log.info(
                "licence {licence} database migrated to version {version}",
                licence=number,
                version=applied[-1],
            )

    def close(self) -> defer.Deferred[None]:
        self.db.close()
        return defer.succeed(None)

    def health(self) -> defer.Deferred[None]:
        return defer.ensureDeferred(self.db.ping())

    # -- licences -----------------------------------------------------------------

    @defer.inlineCallbacks
    def createLicence(
        self,
        licence: Licence,
        operator: Operator | None = None,
        password_hash: str | None = None,
        *,
        event_extra: dict[str, Any] | None = None,
    ) -> Any:
        number = licence.number
        if number == 0:
            number = yield self._freeLicenceNumber()
        elif (yield self.getLicence(number)) is not None:
            raise Conflict(f"licence {number} exists already")
        yield defer.ensureDeferred(self.db.createLicenceDatabase(number))
        yield self._migrateLicence(number)
        stored, created = yield self.db.runGlobal(
            "create licence",
            accounts.insertLicence_txn,
            _replace(licence, number=number),
            operator,
            password_hash,
            self._now(),
            event_extra,
        )
        self._log.info("licence {licence} created", licence=number)
        return stored

    @defer.inlineCallbacks
    def _freeLicenceNumber(self) -> Any:
        for _ in range(100):
            candidate = random.SystemRandom().randrange(100000, 1000000)
            exists = yield self.db.runGlobal(
                "licence exists", accounts.licenceExists_txn, candidate
            )
            if not exists:
                return candidate
        raise Conflict("no free six-digit licence number found")

    def getLicence(self, number: int) -> defer.Deferred[Licence | None]:
        return self.db.runGlobal("get licence", accounts.getLicence_txn, number)

    def listLicences(self) -> defer.Deferred[list[Licence]]:
        return self.db.runGlobal("list licences", accounts.listLicences_txn)

    def updateLicence(  # type: ignore[override]  # positional: a change may be named so
        self, number: int, /, **changes: Any
    ) -> defer.Deferred[Licence]:
        return self.db.runGlobal(
            "update licence", accounts.updateLicence_txn, number, changes, self._now()
        )

    @defer.inlineCallbacks
    def deleteLicence(self, number: int) -> Any:
        if (yield self.getLicence(number)) is None:
            raise NotFound(f"licence {number} does not exist")
        self._licences.pop(number, None)
        yield defer.ensureDeferred(self.db.dropLicenceDatabase(number))
        yield self.db.runGlobal("delete licence", accounts.deleteLicence_txn, number)
        self._log.info("licence {licence} and its database removed", licence=number)

    def accountEvents(
        self, licence: int, since_id: int = 0, limit: int = 100
    ) -> defer.Deferred[list[tuple[int, int, str, dict[str, Any]]]]:
        return self.db.runGlobal(
            "account events", accounts.accountEvents_txn, licence, since_id, limit
        )

    # -- operators ----------------------------------------------------------------

    def createOperator(
        self,
        licence: int,
        operator: Operator,
        password_hash: str,
        *,
        event_extra: dict[str, Any] | None = None,
    ) -> defer.Deferred[Operator]:
        return self.db.runGlobal(
            "create operator",
            accounts.createOperator_txn,
            licence,
            operator,
            password_hash,
            self._now(),
            event_extra,
        )

    def getOperator(self, licence: int, nick: str) -> defer.Deferred[Operator | None]:
        return self.db.runGlobal("get operator", accounts.getOperator_txn, licence, nick)

    def getOperatorById(self, licence: int, id: int) -> defer.Deferred[Operator | None]:
        return self.db.runGlobal("get operator", accounts.getOperatorById_txn, licence, id)

    def getCredentials(
        self, licence: int, nick: str
    ) -> defer.Deferred[tuple[Licence, Operator, str] | None]:
        return self.db.runGlobal("get credentials", accounts.getCredentials_txn, licence, nick)

    def listOperators(self, licence: int) -> defer.Deferred[list[Operator]]:
        return self.db.runGlobal("list operators", accounts.listOperators_txn, licence)

    def updateOperator(  # type: ignore[override]  # positional: a change may be named so
        self, licence: int, nick: str, /, **changes: Any
    ) -> defer.Deferred[Operator]:
        return self.db.runGlobal(
            "update operator", accounts.updateOperator_txn, licence, nick, changes
        )

    def setPasswordHash(self, licence: int, nick: str, password_hash: str) -> defer.Deferred[None]:
        return self.db.runGlobal(
            "set password", accounts.setPasswordHash_txn, licence, nick, password_hash
        )

    def countOperators(self, licence: int) -> defer.Deferred[dict[AccountType, int]]:
        return self.db.runGlobal("count operators", accounts.countOperators_txn, licence)

    # -- API keys -------------------------------------------------------------------

    def createApiKey(
        self, licence: int, key_id: str, secret_hash: str, name: str, scopes: str
    ) -> defer.Deferred[None]:
        return self.db.runGlobal(
            "create api key",
            accounts.createApiKey_txn,
            licence,
            key_id,
            secret_hash,
            name,
            scopes,
            self._now(),
        )

    def getApiKey(self, key_id: str) -> defer.Deferred[tuple[int, str, str, str, bool] | None]:
        return self.db.runGlobal("get api key", accounts.getApiKey_txn, key_id)

    def listApiKeys(self, licence: int) -> defer.Deferred[list[tuple[str, str, str, int, bool]]]:
        return self.db.runGlobal("list api keys", accounts.listApiKeys_txn, licence)

    def revokeApiKey(self, licence: int, key_id: str) -> defer.Deferred[None]:
        return self.db.runGlobal("revoke api key", accounts.revokeApiKey_txn, licence, key_id)

    # -- subscriptions ---------------------------------------------------------------

    def createSubscription(self, licence: int, **fields: Any) -> defer.Deferred[dict[str, Any]]:
        return self.db.runGlobal(
            "create subscription",
            subscriptions.createSubscription_txn,
            licence,
            nowMS=self._now(),
            **fields,
        )

    def listSubscriptions(self, licence: int) -> defer.Deferred[list[dict[str, Any]]]:
        return self.db.runGlobal("list subscriptions", subscriptions.listSubscriptions_txn, licence)

    def subscribedSeats(
        self, licence: int, nowMS: int
    ) -> defer.Deferred[dict[AccountType, int] | None]:
        return self.db.runGlobal(
            "subscribed seats", subscriptions.subscribedSeats_txn, licence, nowMS
        )

    # -- server state -------------------------------------------------------------

    def getState(self, name: str) -> defer.Deferred[str | None]:
        return self.db.runGlobal("get state", accounts.getState_txn, name)

    def setState(self, name: str, value: str) -> defer.Deferred[None]:
        return self.db.runGlobal("set state", accounts.setState_txn, name, value)

    def claimState(self, name: str, value: str) -> defer.Deferred[bool]:
        return self.db.runGlobal("claim state", accounts.claimState_txn, name, value)

    # -- browser sessions (livechat.websession) -----------------------------------------

    def createWebSession(
        self, session: websessions.SessionRow, maxPerOperator: int, idleMS: int
    ) -> defer.Deferred[int]:
        return self.db.runGlobal(
            "create web session", websessions.createSession_txn, session, maxPerOperator, idleMS
        )

    def getWebSession(
        self, idHash: str
    ) -> defer.Deferred[tuple[websessions.SessionRow, Licence, Operator] | None]:
        return self.db.runGlobal("get web session", websessions.getSession_txn, idHash)

    def touchWebSession(self, idHash: str, nowMS: int) -> defer.Deferred[bool]:
        return self.db.runGlobal("touch web session", websessions.touchSession_txn, idHash, nowMS)

    def deleteWebSession(self, idHash: str) -> defer.Deferred[int]:
        return self.db.runGlobal("delete web session", websessions.deleteSession_txn, idHash)

    def deleteOperatorWebSessions(
        self, licence: int, operator: int, scope: str | None = None
    ) -> defer.Deferred[list[str]]:
        return self.db.runGlobal(
            "end operator's web sessions",
            websessions.deleteOperatorSessions_txn,
            licence,
            operator,
            scope,
        )

    def listOperatorWebSessions(
        self, licence: int, operator: int
    ) -> defer.Deferred[list[websessions.SessionRow]]:
        return self.db.runGlobal(
            "list web sessions", websessions.listOperatorSessions_txn, licence, operator
        )

    def purgeWebSessions(self, nowMS: int, idleMS: int) -> defer.Deferred[int]:
        return self.db.runGlobal("purge web sessions", websessions.purgeSessions_txn, nowMS, idleMS)

    # -- licence data ---------------------------------------------------------------

    def forLicence(self, number: int) -> SqlLicenceStore:
        store = self._licences.get(number)
        if store is None:
            store = SqlLicenceStore(self.db, number, self._reactor, self.batcher)
            if len(self._licences) > 10000:
                self._licences.clear()
            self._licences[number] = store
        return store


@implementer(ILicenceStore)
class SqlLicenceStore:
    """One licence's database; every query runs in that database only."""

    def __init__(
        self,
        db: Database,
        licence: int,
        clock: Any,
        batcher: Callable[[int], AppendBatcher] | None = None,
    ) -> None:
        self.db = db
        self.licence = licence
        self._clock = clock
        self._batcher = batcher

    def _run(self, desc: str, func: Any, *args: Any) -> defer.Deferred[Any]:
        return self.db.runLicence(self.licence, desc, func, *args)

    def getSetting(self, name: str) -> defer.Deferred[str | None]:
        return self._run("get setting", settings.getSetting_txn, name)

    def setSetting(self, name: str, value: str) -> defer.Deferred[None]:
        return self._run("set setting", settings.setSetting_txn, name, value)

    def createGroup(self, name: str, description: str = "") -> defer.Deferred[Group]:
        return self._run(
            "create group", settings.createGroup_txn, name, description, _nowMS(self._clock)
        )

    def updateGroup(
        self, group_id: int, name: str | None = None, description: str | None = None
    ) -> defer.Deferred[Group]:
        return self._run("update group", settings.updateGroup_txn, group_id, name, description)

    def deleteGroup(self, group_id: int) -> defer.Deferred[None]:
        return self._run("delete group", settings.deleteGroup_txn, group_id)

    def listGroups(self) -> defer.Deferred[list[Group]]:
        return self._run("list groups", settings.listGroups_txn)

    def setGroupMembers(self, group_id: int, operator_ids: Any) -> defer.Deferred[None]:
        return self._run(
            "set group members", settings.setGroupMembers_txn, group_id, list(operator_ids)
        )

    def groupMembers(self, group_id: int) -> defer.Deferred[list[int]]:
        return self._run("group members", settings.groupMembers_txn, group_id)

    def groupsOf(self, operator_id: int) -> defer.Deferred[list[int]]:
        return self._run("groups of", settings.groupsOf_txn, operator_id)

    def groupExists(self, group_id: int) -> defer.Deferred[bool]:
        return self._run("group exists", settings.groupExists_txn, group_id)

    def logEvent(
        self, event: str, payload: dict[str, Any], chat_id: int | None = None
    ) -> defer.Deferred[int]:
        return self._run(
            "log event", settings.logEvent_txn, event, payload, chat_id, _nowMS(self._clock)
        )

    def events(
        self,
        since_id: int = 0,
        limit: int = 100,
        event: str | None = None,
        chat_id: int | None = None,
    ) -> defer.Deferred[list[Any]]:
        return self._run("events", settings.events_txn, since_id, limit, event, chat_id)

    # -- chats ----------------------------------------------------------------------

    def createChat(
        self, **kw: Any
    ) -> defer.Deferred[tuple[Chat, list[StoredEvent], list[DomainEvent]]]:
        return self.db.runLicence(
            self.licence, "create chat", chats.createChat_txn, nowMS=_nowMS(self._clock), **kw
        )

    def appendEvents(
        self, chat_id: int, events: Sequence[EventDraft], **kw: Any
    ) -> defer.Deferred[tuple[Chat, list[StoredEvent], list[DomainEvent]]]:
        request = (chat_id, events if callable(events) else list(events), _nowMS(self._clock), kw)
        if self._batcher is None:
            return self.db.runLicence(
                self.licence, "append events", chats.appendBatch_txn, [request]
            ).addCallback(lambda outcomes: outcomes[0][1])
        return self._batcher(self.licence).append(request)

    def eventsAfter(
        self, chat_id: int, after_seq: int, limit: int = 1000
    ) -> defer.Deferred[list[StoredEvent]]:
        return self._run("events after", chats.eventsAfter_txn, chat_id, after_seq, limit)

    def eventsBetween(
        self, chat_id: int, after_seq: int, before_seq: int
    ) -> defer.Deferred[list[StoredEvent]]:
        return self._run("events between", chats.eventsBetween_txn, chat_id, after_seq, before_seq)

    def getChat(self, chat_id: int) -> defer.Deferred[Chat | None]:
        return self._run("get chat", chats.getChat_txn, chat_id)

    def participants(self, chat_id: int) -> defer.Deferred[list[tuple[str, str]]]:
        return self._run("participants", chats.participants_txn, chat_id)

    def openChatsOf(self, participant: str) -> defer.Deferred[list[Chat]]:
        return self._run("open chats of", chats.openChatsOf_txn, participant)

    def chatsByStatus(self, statuses: Sequence[ChatStatus]) -> defer.Deferred[list[Chat]]:
        return self._run("chats by status", chats.chatsByStatus_txn, list(statuses))

    def chatsOfOperator(self, operator_id: int) -> defer.Deferred[list[Chat]]:
        return self._run("chats of operator", chats.chatsOfOperator_txn, operator_id)

    def chatsOfVisitor(self, visitor_id: str, limit: int = 20) -> defer.Deferred[list[Chat]]:
        return self._run("chats of visitor", chats.chatsOfVisitor_txn, visitor_id, limit)

    def teamChat(self) -> defer.Deferred[Chat]:
        return self._run("team chat", chats.teamChat_txn, _nowMS(self._clock))

    def openPair(self, pair_key: str) -> defer.Deferred[Chat | None]:
        return self._run("open pair", chats.openPair_txn, pair_key)

    def transcript(self, chat_id: int) -> defer.Deferred[list[StoredEvent]]:
        return self._run("transcript", chats.transcript_txn, chat_id)

    def getVisitor(self, visitor_id: str) -> defer.Deferred[VisitorRecord | None]:
        return self._run("get visitor", chats.getVisitor_txn, visitor_id)

    def recordVisit(
        self, visitor_id: str, new_visit: bool, identity: dict[str, Any] | None = None
    ) -> defer.Deferred[VisitorRecord]:
        return self._run(
            "record visit",
            chats.recordVisit_txn,
            visitor_id,
            _nowMS(self._clock),
            new_visit,
            identity,
        )

    # -- canned responses (the web agent) --------------------------------------------

    def cannedResponses(self, operator: int) -> defer.Deferred[list[canned.CannedResponse]]:
        return self._run("canned responses", canned.list_txn, operator)

    def createCanned(
        self, owner: int | None, shortcut: str, text: str, maxPerLicence: int
    ) -> defer.Deferred[canned.CannedResponse]:
        return self._run(
            "create canned response",
            canned.create_txn,
            owner,
            shortcut,
            text,
            _nowMS(self._clock),
            maxPerLicence,
        )

    def updateCanned(
        self, cannedId: int, owner: int | None, shortcut: str, text: str
    ) -> defer.Deferred[canned.CannedResponse]:
        return self._run(
            "update canned response",
            canned.update_txn,
            cannedId,
            owner,
            shortcut,
            text,
            _nowMS(self._clock),
        )

    def deleteCanned(self, cannedId: int, owner: int | None) -> defer.Deferred[None]:
        return self._run("delete canned response", canned.delete_txn, cannedId, owner)

    # -- messages left while closed ------------------------------------------------

    def leaveMessage(self, **fields: Any) -> defer.Deferred[offline.OfflineMessage]:
        return self._run("leave message", offline.leaveMessage_txn, fields, _nowMS(self._clock))

    def offlineMessages(
        self, pending_only: bool = True, limit: int = 50
    ) -> defer.Deferred[list[offline.OfflineMessage]]:
        return self._run("offline messages", offline.messages_txn, pending_only, limit)

    def markOfflineMailed(self, message_id: int) -> defer.Deferred[None]:
        return self._run(
            "offline message mailed", offline.markMailed_txn, message_id, _nowMS(self._clock)
        )

    def markOfflineHandled(self, message_ids: Any, operator: int) -> defer.Deferred[list[int]]:
        return self._run(
            "offline messages handled",
            offline.markHandled_txn,
            list(message_ids),
            operator,
            _nowMS(self._clock),
        )


def _replace(licence: Licence, **changes: Any) -> Licence:
    import attr

    return attr.evolve(licence, **changes)
