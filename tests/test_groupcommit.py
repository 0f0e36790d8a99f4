"""
Group commit of chat appends (L{livechat.storage.store.AppendBatcher} and
L{livechat.storage.chats.appendBatch_txn}) on sqlite and MariaDB: appends
that arrive together share a transaction, each keeps its own answer, a
refused one is undone alone, and a spoiled transaction is run again whole.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from livechat.model import ChatKind, ChatStatus, Licence
from livechat.storage import chats
from livechat.storage.chats import EventDraft, NotParticipant, WrongState
from tests.support.db import DialectMixin, bothDialects

OPEN = [ChatStatus.REQUESTED, ChatStatus.ACTIVE]


def draft(text: str, who: str = "visitor:v1") -> EventDraft:
    return EventDraft(
        originator=who,
        role="CONSUMER",
        name="V",
        event={"type": "ContentEvent", "message": text},
    )


PER_CHAT = 26


class GroupCommitMixin(DialectMixin):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.url = self.databaseURL()
        self.store = yield self.openStore(self.url)
        yield self.store.createLicence(Licence(number=100))
        self.licence = self.store.forLicence(100)
        self.transactions: list[int] = []
        real = self.store.db.runLicence

        def counting(licence: int, desc: str, func: Any, *args: Any, **kw: Any) -> Any:
            if func is chats.appendBatch_txn:
                self.transactions.append(len(args[0]))
            return real(licence, desc, func, *args, **kw)

        self.patch(self.store.db, "runLicence", counting)

    @defer.inlineCallbacks
    def newChat(self, visitor: str = "visitor:v1") -> Any:
        chat, _, _ = yield self.licence.createChat(
            kind=ChatKind.VISITOR,
            status=ChatStatus.ACTIVE,
            visitor_id="visitor-0001",
            participants=[(visitor, "CONSUMER")],
        )
        return chat

    @defer.inlineCallbacks
    def test_togetherInFewTransactions(self) -> Any:
        """
        A hundred and four appends to four chats, asked in one turn of the
        reactor, share transactions (as few as the largest batch allows;
        sqlite writes them as multi-row INSERTs of 64, 32 and 8 rows); every
        caller gets its own event, and each chat's sequences are 1..26 in the
        order asked.
        """
        chatList = []
        for _ in range(4):
            chatList.append((yield self.newChat()))
        calls = []
        for n in range(PER_CHAT):
            for chat in chatList:
                calls.append(
                    self.licence.appendEvents(chat.id, [draft(f"{chat.id}-{n}")], require=OPEN)
                )
        results = yield defer.gatherResults(calls)
        total = 4 * PER_CHAT
        maxBatch, concurrency = self.store.db.appendBatching
        self.assertEqual(sum(self.transactions), total)
        self.assertEqual(self.transactions[0], min(total, maxBatch))
        self.assertEqual(len(self.transactions), -(-total // maxBatch))
        for (chat_, stored, _), n in zip(results, range(total)):
            chat = chatList[n % 4]
            self.assertEqual(stored[0].chat_id, chat.id)
            self.assertEqual(stored[0].event["message"], f"{chat.id}-{n // 4}")
            self.assertEqual(stored[0].seq, n // 4 + 1)
            self.assertEqual(chat_.last_seq, n // 4 + 1)
        for chat in chatList:
            events = yield self.licence.eventsAfter(chat.id, 0)
            self.assertEqual([e.seq for e in events], list(range(1, PER_CHAT + 1)))
            stored = yield self.licence.getChat(chat.id)
            self.assertEqual(stored.last_seq, PER_CHAT)
            self.assertEqual(
                [e.event["message"] for e in events], [f"{chat.id}-{n}" for n in range(PER_CHAT)]
            )

    @defer.inlineCallbacks
    def test_globalOrder(self) -> Any:
        """
        Every chat event gets its place in the licence's global order (gid,
        the webhooks' cursor), whether appended alone, in bulk or one by one
        in a batch: all distinct, each chat's in its sequence order, and on
        sqlite (one writer) without a gap.
        """
        chatList = []
        for _ in range(3):
            chatList.append((yield self.newChat()))
        oneByOne: list[int] = []
        real = chats._appendOne_txn
        self.patch(chats, "_appendOne_txn", lambda txn, r: (oneByOne.append(r[0]), real(txn, r))[1])
        calls = [self.licence.appendEvents(chatList[0].id, [draft("alone")])]
        for n in range(5):
            for chat in chatList:
                calls.append(self.licence.appendEvents(chat.id, [draft(f"{n}")], require=OPEN))
        calls.append(
            self.licence.appendEvents(chatList[1].id, [draft("x")], update={"name": "changed"})
        )
        yield defer.gatherResults(calls)

        def gids(txn: Any) -> Any:
            return txn.query("SELECT gid, chat_id, seq FROM {chat_events} ORDER BY gid")

        rows = yield self.store.db.runLicence(100, "gids", gids)
        # The plain ones went in bulk (no fallback): only the change went alone.
        self.assertEqual(oneByOne, [chatList[1].id])
        self.assertEqual(len(rows), 17)
        numbers = [r[0] for r in rows]
        self.assertEqual(len(set(numbers)), 17)
        if self.dialect == "sqlite":
            self.assertEqual(numbers, list(range(numbers[0], numbers[0] + 17)))
        for chat in chatList:
            self.assertEqual(
                [r[2] for r in rows if r[1] == chat.id],
                sorted(r[2] for r in rows if r[1] == chat.id),
            )

    @defer.inlineCallbacks
    def test_refusedAlone(self) -> Any:
        """
        In one batch: an append to a closed chat and one by a stranger are
        refused with their own errors and leave nothing; the others commit.
        """
        first = yield self.newChat()
        open_ = yield self.newChat()
        closed = yield self.newChat()
        yield self.licence.appendEvents(
            closed.id, [draft("bye")], update={"status": ChatStatus.CLOSED}
        )
        self.transactions.clear()
        blocker = self.licence.appendEvents(first.id, [draft("first")], require=OPEN)
        wrong = self.licence.appendEvents(closed.id, [draft("late")], require=OPEN)
        good = self.licence.appendEvents(open_.id, [draft("hello")], require=OPEN)
        stranger = self.licence.appendEvents(
            open_.id, [draft("intruder", "visitor:v2")], requireParticipant="visitor:v2"
        )
        good2 = self.licence.appendEvents(open_.id, [draft("again")], require=OPEN)
        yield blocker
        # They run as they come while the close is answered: batched.
        self.assertEqual(sum(self.transactions), 5)
        self.assertLess(len(self.transactions), 3)
        yield self.assertFailure(wrong, WrongState)
        yield self.assertFailure(stranger, NotParticipant)
        (_, one, _), (_, two, _) = yield defer.gatherResults([good, good2])
        self.assertEqual((one[0].seq, two[0].seq), (1, 2))
        events = yield self.licence.eventsAfter(open_.id, 0)
        self.assertEqual([e.event["message"] for e in events], ["hello", "again"])
        events = yield self.licence.eventsAfter(closed.id, 0)
        self.assertEqual([e.event["message"] for e in events], ["bye"])

    @defer.inlineCallbacks
    def test_refusedFirstInBatch(self) -> Any:
        """
        A batch whose first append (the lowest chat id) is refused, before
        anything is written, still commits the rest (sqlite's transaction
        is opened first, so the savepoint is not the transaction).
        """
        closed = yield self.newChat()
        blockerChat = yield self.newChat()
        other = yield self.newChat()
        yield self.licence.appendEvents(
            closed.id, [draft("bye")], update={"status": ChatStatus.CLOSED}
        )
        self.transactions.clear()
        blocker = self.licence.appendEvents(blockerChat.id, [draft("x")])
        wrong = self.licence.appendEvents(closed.id, [draft("late")], require=OPEN)
        good = self.licence.appendEvents(other.id, [draft("kept")], require=OPEN)
        yield blocker
        yield self.assertFailure(wrong, WrongState)
        yield good
        self.assertEqual(sum(self.transactions), 3)
        self.assertIn(self.transactions[-1], (2, 3))
        # Another connection sees it: it was committed.
        fresh = yield self.openStore(self.url)
        events = yield fresh.forLicence(100).eventsAfter(other.id, 0)
        self.assertEqual([e.event["message"] for e in events], ["kept"])

    @defer.inlineCallbacks
    def test_bulkSpoiledRunsAgain(self) -> Any:
        """
        Plain appends go in bulk; a deadlock-like error in the bulk write
        spoils the transaction: the batch runs again, each stored once.
        """
        chatList = []
        for _ in range(3):
            chatList.append((yield self.newChat()))
        from livechat.storage.database import Txn

        realMany, realOne = Txn.executeMany, Txn.execute
        failures = [self.retryableError()]
        bulk = []

        def flaky(txn: Any, sql: str, rows: Any) -> Any:
            bulk.append(len(rows))
            if failures and "INSERT" in sql:
                raise failures.pop()
            return realMany(txn, sql, rows)

        def flakyOne(txn: Any, sql: str, args: Any = ()) -> Any:
            # sqlite's bulk INSERT: one statement of many rows (VALUES (...), (...)).
            if sql.startswith("INSERT INTO {chat_events}"):
                bulk.append(sql.count("(?"))
                if failures:
                    raise failures.pop()
            return realOne(txn, sql, args)

        self.patch(Txn, "executeMany", flaky)
        self.patch(Txn, "execute", flakyOne)
        blocker = self.licence.appendEvents(chatList[0].id, [draft("a0")])
        rest = [
            self.licence.appendEvents(chat.id, [draft(f"b{i}")]) for i, chat in enumerate(chatList)
        ]
        yield blocker
        yield defer.gatherResults(rest)
        self.assertEqual(failures, [])
        # One batch (four events of three chats): the failed INSERT, then
        # the INSERT of the batch run again (the chats' UPDATE is one statement).
        self.assertEqual(bulk, [4, 4])
        for i, chat in enumerate(chatList):
            events = yield self.licence.eventsAfter(chat.id, 0)
            expected = (["a0"] if i == 0 else []) + [f"b{i}"]
            self.assertEqual([e.event["message"] for e in events], expected)

    @defer.inlineCallbacks
    def test_bulkWriteRefusedAlone(self) -> Any:
        """
        A bulk write that fails for one append's own reason (here a row
        already at its next sequence) is undone and done again one by one:
        that append alone is refused, the others are stored.
        """
        chatList = []
        for _ in range(3):
            chatList.append((yield self.newChat()))
        bad = chatList[1]

        def squat(txn: Any) -> None:
            txn.execute(
                "INSERT INTO {chat_events} "
                "(chat_id, seq, created_at, type, originator, role, body) "
                "VALUES (?, 1, 0, 'ContentEvent', 'x', 'CONSUMER', '{}')",
                (bad.id,),
            )

        yield self.store.db.runLicence(100, "squat", squat)
        blocker = self.licence.appendEvents(chatList[0].id, [draft("a0")])
        rest = [
            self.licence.appendEvents(chat.id, [draft(f"b{i}")]) for i, chat in enumerate(chatList)
        ]
        yield blocker
        results = yield defer.DeferredList(rest, consumeErrors=True)
        self.assertEqual([ok for ok, _ in results], [True, False, True])
        self.assertTrue(self.store.db.engine.isIntegrityError(results[1][1].value))
        for i, chat in enumerate(chatList):
            if chat is bad:
                continue
            events = yield self.licence.eventsAfter(chat.id, 0)
            expected = (["a0"] if i == 0 else []) + [f"b{i}"]
            self.assertEqual([e.event["message"] for e in events], expected)

    @defer.inlineCallbacks
    def test_spoiledTransactionRunsAgain(self) -> Any:
        """
        A deadlock-like error in the middle of a batch of appends that change
        the chat (one by one, each in a savepoint) spoils the whole
        transaction: the batch runs again, and every append is stored once.
        """
        chatList = []
        for _ in range(3):
            chatList.append((yield self.newChat()))
        real = chats.appendEvents_txn
        failures = [self.retryableError()]

        def flaky(txn: Any, chatId: int, *args: Any, **kw: Any) -> Any:
            result = real(txn, chatId, *args, **kw)
            if chatId == chatList[1].id and failures:
                raise failures.pop()
            return result

        self.patch(chats, "appendEvents_txn", flaky)
        blocker = self.licence.appendEvents(chatList[0].id, [draft("a0")])
        rest = [
            self.licence.appendEvents(chat.id, [draft(f"b{i}")], update={"name": f"n{i}"})
            for i, chat in enumerate(chatList)
        ]
        yield blocker
        yield defer.gatherResults(rest)
        self.assertEqual(failures, [])
        self.assertEqual(sum(self.transactions), 4)
        self.assertLess(len(self.transactions), 4)
        for i, chat in enumerate(chatList):
            events = yield self.licence.eventsAfter(chat.id, 0)
            expected = (["a0"] if i == 0 else []) + [f"b{i}"]
            self.assertEqual([e.event["message"] for e in events], expected)
            self.assertEqual([e.seq for e in events], list(range(1, len(expected) + 1)))

    def retryableError(self) -> Exception:
        if self.dialect == "sqlite":
            import sqlite3

            return sqlite3.OperationalError("database is locked")
        import pymysql

        return pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock")


globals().update(bothDialects(GroupCommitMixin, "GroupCommitTests"))


class BatcherOrderTests(unittest.TestCase):
    """L{AppendBatcher} without a database: batching, order, concurrency."""

    def test_sortsByChatKeepingOrder(self) -> None:
        from livechat.storage.store import AppendBatcher

        ran: list[list[Any]] = []
        pending: list[defer.Deferred[Any]] = []

        class FakeDb:
            def runLicence(self, licence: int, desc: str, func: Any, requests: Any) -> Any:
                ran.append([(r[0], r[1]) for r in requests])
                d: defer.Deferred[Any] = defer.Deferred()
                pending.append(d)
                return d

        batcher = AppendBatcher(FakeDb(), 1, maxBatch=3, concurrency=1)  # type: ignore[arg-type]
        answers: list[Any] = []
        for chat, text in [(5, "a"), (9, "b"), (2, "c"), (9, "d"), (2, "e"), (1, "f")]:
            batcher.append((chat, text, 0, {})).addCallbacks(
                answers.append, lambda f: answers.append(f.value)
            )
        self.assertEqual(ran, [[(5, "a")]])
        pending.pop(0).callback([(True, "A")])
        # Three waiting ones, sorted by chat (9's b stays before 9's d).
        self.assertEqual(ran[1], [(2, "c"), (9, "b"), (9, "d")])
        pending.pop(0).callback([(True, "C"), (True, "B"), (True, "D")])
        self.assertEqual(ran[2], [(1, "f"), (2, "e")])
        pending.pop(0).callback([(True, "F"), (False, ValueError("no"))])
        # Answered batch by batch, in each batch's (chat) order.
        self.assertEqual(answers[:5], ["A", "C", "B", "D", "F"])
        self.assertIsInstance(answers[5], ValueError)
        self.assertTrue(batcher.idle)

    def test_appendsOfOneTurnGoTogether(self) -> None:
        """
        With a clock, the first append waits for the end of the reactor's
        turn, so that the appends of that turn make one batch; an append
        while a batch runs waits for it, as without a clock.
        """
        from twisted.internet import task

        from livechat.storage.store import AppendBatcher

        ran: list[list[Any]] = []
        pending: list[defer.Deferred[Any]] = []

        class FakeDb:
            def runLicence(self, licence: int, desc: str, func: Any, requests: Any) -> Any:
                ran.append([r[1] for r in requests])
                d: defer.Deferred[Any] = defer.Deferred()
                pending.append(d)
                return d

        clock = task.Clock()
        batcher = AppendBatcher(FakeDb(), 1, maxBatch=10, clock=clock)  # type: ignore[arg-type]
        answers: list[Any] = []
        for text in "abc":
            batcher.append((1, text, 0, {})).addCallback(answers.append)
        self.assertEqual(ran, [])
        self.assertFalse(batcher.idle)
        clock.advance(0)
        self.assertEqual(ran, [["a", "b", "c"]])
        batcher.append((1, "d", 0, {})).addCallback(answers.append)
        clock.advance(0)
        self.assertEqual(len(ran), 1)
        pending.pop(0).callback([(True, "A"), (True, "B"), (True, "C")])
        self.assertEqual(ran[1], ["d"])
        pending.pop(0).callback([(True, "D")])
        self.assertEqual(answers, ["A", "B", "C", "D"])
        self.assertTrue(batcher.idle)
        self.assertEqual(clock.getDelayedCalls(), [])


class WithLastSeqTests(unittest.TestCase):
    def test_sameAsEvolve(self) -> None:
        """_withLastSeq is attr.evolve(chat, last_seq=n): equal, frozen, the original untouched."""
        import attr

        from livechat.model import Chat, ChatKind, ChatStatus
        from livechat.storage.chats import _withLastSeq

        chat = Chat(
            id=7,
            licence=100,
            kind=ChatKind.VISITOR,
            status=ChatStatus.ACTIVE,
            visitor_id="v1",
            operator=3,
            created_at=1,
            last_seq=4,
        )
        moved = _withLastSeq(chat, 9)
        self.assertEqual(moved, attr.evolve(chat, last_seq=9))
        self.assertEqual(chat.last_seq, 4)
        self.assertRaises(attr.exceptions.FrozenInstanceError, setattr, moved, "last_seq", 1)
