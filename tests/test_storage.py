"""
Storage tests: one body, run on sqlite and on a real MariaDB.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor, threads
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from livechat.interfaces import ILicenceStore, IStore
from livechat.model import AccountType, Licence, LicenceType, Operator
from livechat.storage import Conflict, NotFound, SeatsExhausted, SqlStore, migrations
from livechat.storage.database import GLOBAL, LICENCE, NoSuchLicenceDatabase
from tests.support.db import DialectMixin, bothDialects


def op(nick: str, email: str | None = None, **kw: Any) -> Operator:
    return Operator(id=0, licence=0, nick=nick, operator_id=email or f"{nick}@example.com", **kw)


class StoreTestsMixin(DialectMixin):
    @defer.inlineCallbacks
    def test_interfaces(self) -> Any:
        """SqlStore and its licence stores provide the interfaces in full."""
        store = yield self.openStore()
        verifyObject(IStore, store)
        licence = yield store.createLicence(Licence(number=0))
        verifyObject(ILicenceStore, store.forLicence(licence.number))

    @defer.inlineCallbacks
    def test_migrationsTwice(self) -> Any:
        """
        Opening a store migrates the global and every licence database to the
        latest version; opening it again (a second node, a restart) applies
        nothing and leaves the data alone.
        """
        url = self.databaseURL()
        first = self.makeStore(url)
        yield first.open()
        licence = yield first.createLicence(Licence(number=424242, name="Acme"))
        versions = yield first.db.runGlobal("v", migrations.appliedVersions_txn)
        self.assertEqual(versions[-1], migrations.latestVersion(GLOBAL))
        lversions = yield first.db.runLicence(424242, "v", migrations.appliedVersions_txn)
        self.assertEqual(lversions[-1], migrations.latestVersion(LICENCE))

        again = yield first.db.runGlobal("migrate", migrations.migrate_txn, GLOBAL, 0)
        self.assertEqual(again, [])
        yield first.close()

        second = self.makeStore(url)
        yield second.open()
        self.assertEqual((yield second.db.runGlobal("v", migrations.appliedVersions_txn)), versions)
        self.assertEqual((yield second.getLicence(424242)), licence)

    @defer.inlineCallbacks
    def test_migrationsConcurrent(self) -> Any:
        """Two stores migrating the same fresh database at once both succeed."""
        url = self.databaseURL()
        a, b = self.makeStore(url), self.makeStore(url)
        yield defer.gatherResults([a.open(), b.open()], consumeErrors=True)
        self.assertEqual(
            (yield a.db.runGlobal("v", migrations.appliedVersions_txn))[-1],
            migrations.latestVersion(GLOBAL),
        )

    @defer.inlineCallbacks
    def test_createLicence(self) -> Any:
        """
        A licence is stored with its fields, gets its own database, and a
        NEW_LICENCE event with the seed's fields (no password) is recorded.
        """
        store = yield self.openStore()
        licence = yield store.createLicence(
            Licence(
                number=123456,
                lic_type=LicenceType.ASP_DEMO,
                name="Acme",
                language="pl",
                expires_at=1_900_000_000_000,
                seats_cc=3,
                seats_com=1,
                web_page="https://acme.example",
            ),
            op("anna", first_name="Anna", last_name="Nowak", phone="+48 1"),
            "hash-of-anna",
        )
        self.assertEqual(licence.number, 123456)
        self.assertEqual(licence.lic_type, LicenceType.ASP_DEMO)
        self.assertEqual((yield store.getLicence(123456)), licence)
        self.assertTrue((yield store.db.licenceDatabaseExists(123456)))
        events = yield store.accountEvents(123456)
        self.assertEqual([e[2] for e in events], ["NEW_LICENCE"])
        payload = events[0][3]
        self.assertEqual(payload["LICENCE"], 123456)
        self.assertEqual(payload["LIC_TYPE"], 9)
        self.assertEqual(payload["NICK"], "anna")
        self.assertEqual(payload["OPERATOR_ID"], "anna@example.com")
        self.assertEqual(payload["EXPIRATION_DATE"], "2030-03-17 17:46:40")
        self.assertEqual(payload["LANGUAGE"], "pl")
        self.assertNotIn("PASSWORD", payload)
        self.assertNotIn("hash-of-anna", repr(payload))

    @defer.inlineCallbacks
    def test_createLicenceRandomNumber(self) -> Any:
        """Number 0 picks a free six-digit number."""
        store = yield self.openStore()
        a = yield store.createLicence(Licence(number=0))
        b = yield store.createLicence(Licence(number=0))
        self.assertNotEqual(a.number, b.number)
        for licence in (a, b):
            self.assertTrue(100000 <= licence.number <= 999999)

    @defer.inlineCallbacks
    def test_createLicenceTwice(self) -> Any:
        """A taken licence number is a Conflict and changes nothing."""
        store = yield self.openStore()
        first = yield store.createLicence(Licence(number=555, name="first"))
        yield self.assertFailure(store.createLicence(Licence(number=555, name="x")), Conflict)
        self.assertEqual((yield store.getLicence(555)), first)

    @defer.inlineCallbacks
    def test_updateLicence(self) -> Any:
        """Changing expiry or type records LICENCE_INFO; other fields do not."""
        store = yield self.openStore()
        yield store.createLicence(Licence(number=777))
        updated = yield store.updateLicence(777, name="Renamed")
        self.assertEqual(updated.name, "Renamed")
        yield store.updateLicence(777, expires_at=1_900_000_000_000)
        events = [e[2] for e in (yield store.accountEvents(777))]
        self.assertEqual(events, ["NEW_LICENCE", "LICENCE_INFO"])
        yield self.assertFailure(store.updateLicence(778, name="x"), NotFound)
        yield self.assertFailure(store.updateLicence(777, bogus=1), ValueError)

    @defer.inlineCallbacks
    def test_operators(self) -> Any:
        """
        Operators are found by nick without regard to case, nicks and e-mails
        are unique per licence (not across licences), and the password hash
        is only returned by getCredentials.
        """
        store = yield self.openStore()
        yield store.createLicence(Licence(number=1))
        yield store.createLicence(Licence(number=2))
        anna = yield store.createOperator(1, op("Anna", max_chats=2), "h1")
        self.assertEqual(anna.nick, "Anna")
        self.assertEqual(anna.max_chats, 2)
        self.assertEqual((yield store.getOperator(1, "ANNA")), anna)
        self.assertEqual((yield store.getOperatorById(1, anna.id)), anna)
        self.assertIsNone((yield store.getOperator(2, "anna")))
        yield self.assertFailure(store.createOperator(1, op("anna", "other@x.com"), "h"), Conflict)
        yield self.assertFailure(
            store.createOperator(1, op("other", "ANNA@example.com"), "h"), Conflict
        )
        other = yield store.createOperator(2, op("anna"), "h2")
        self.assertNotEqual(other.id, anna.id)
        creds = yield store.getCredentials(1, "anna")
        self.assertEqual(creds[1], anna)
        self.assertEqual(creds[2], "h1")
        self.assertIsNone((yield store.getCredentials(1, "nobody")))
        self.assertIsNone((yield store.getCredentials(3, "anna")))
        yield store.setPasswordHash(1, "anna", "h3")
        self.assertEqual((yield store.getCredentials(1, "anna"))[2], "h3")
        self.assertEqual((yield store.getCredentials(2, "anna"))[2], "h2")
        yield self.assertFailure(store.setPasswordHash(1, "nobody", "h"), NotFound)
        yield self.assertFailure(store.createOperator(3, op("x"), "h"), NotFound)
        events = [e[2] for e in (yield store.accountEvents(1))]
        self.assertEqual(events, ["NEW_LICENCE", "NEW_OPERATOR"])

    @defer.inlineCallbacks
    def test_updateOperator(self) -> Any:
        """Fields change; a nick clash is a Conflict; unknown fields are refused."""
        store = yield self.openStore()
        yield store.createLicence(Licence(number=1))
        yield store.createOperator(1, op("anna"), "h")
        yield store.createOperator(1, op("bob"), "h")
        changed = yield store.updateOperator(1, "anna", first_name="Ann", max_chats=0)
        self.assertEqual((changed.first_name, changed.max_chats), ("Ann", 0))
        yield self.assertFailure(store.updateOperator(1, "anna", nick="BOB"), Conflict)
        yield self.assertFailure(store.updateOperator(1, "anna", password_hash="x"), ValueError)
        yield self.assertFailure(store.updateOperator(1, "zed", first_name="x"), NotFound)

    @defer.inlineCallbacks
    def test_seats(self) -> Any:
        """
        Seats are counted per account type: a full contact-center licence
        still takes communicators; disabled operators free their seat, and
        enabling one again needs a free seat.
        """
        store = yield self.openStore()
        yield store.createLicence(Licence(number=1, seats_cc=1, seats_com=1))
        yield store.createOperator(1, op("a"), "h")
        yield self.assertFailure(store.createOperator(1, op("b"), "h"), SeatsExhausted)
        yield store.createOperator(1, op("c", account_type=AccountType.COMMUNICATOR), "h")
        yield store.createOperator(1, op("d", disabled=True), "h")
        counts = yield store.countOperators(1)
        self.assertEqual(counts, {AccountType.CONTACT_CENTER: 1, AccountType.COMMUNICATOR: 1})
        yield self.assertFailure(store.updateOperator(1, "d", disabled=False), SeatsExhausted)
        yield store.updateOperator(1, "a", disabled=True)
        yield store.updateOperator(1, "d", disabled=False)
        yield self.assertFailure(
            store.updateOperator(1, "d", account_type=AccountType.COMMUNICATOR), SeatsExhausted
        )

    @defer.inlineCallbacks
    def test_seatsConcurrent(self) -> Any:
        """Ten concurrent creations on a 3-seat licence give exactly 3 operators."""
        store = yield self.openStore()
        yield store.createLicence(Licence(number=1, seats_cc=3))
        results = yield defer.DeferredList(
            [store.createOperator(1, op(f"n{i}"), "h") for i in range(10)], consumeErrors=True
        )
        made = [r for ok, r in results if ok]
        refused = [r for ok, r in results if not ok]
        self.assertEqual(len(made), 3)
        self.assertTrue(all(f.check(SeatsExhausted) for f in refused))
        self.assertEqual(len((yield store.listOperators(1))), 3)

    @defer.inlineCallbacks
    def test_listings(self) -> Any:
        """Licences list by number, operators by nick."""
        store = yield self.openStore()
        for number in (30, 10, 20):
            yield store.createLicence(Licence(number=number))
        self.assertEqual([lic.number for lic in (yield store.listLicences())], [10, 20, 30])
        for nick in ("zoe", "Adam", "mia"):
            yield store.createOperator(10, op(nick), "h")
        self.assertEqual([o.nick for o in (yield store.listOperators(10))], ["Adam", "mia", "zoe"])
        self.assertEqual((yield store.listOperators(20)), [])

    @defer.inlineCallbacks
    def test_deleteLicence(self) -> Any:
        """
        Deleting a licence drops its database and its operators; its number
        can be used again and starts empty.
        """
        store = yield self.openStore()
        yield store.createLicence(Licence(number=9), op("anna"), "h")
        yield store.forLicence(9).setSetting("colour", "red")
        yield store.deleteLicence(9)
        self.assertIsNone((yield store.getLicence(9)))
        self.assertFalse((yield store.db.licenceDatabaseExists(9)))
        self.assertIsNone((yield store.getOperator(9, "anna")))
        yield self.assertFailure(store.forLicence(9).getSetting("colour"), NoSuchLicenceDatabase)
        yield self.assertFailure(store.deleteLicence(9), NotFound)
        yield store.createLicence(Licence(number=9))
        self.assertIsNone((yield store.forLicence(9).getSetting("colour")))

    @defer.inlineCallbacks
    def test_noDatabaseForUnknownLicence(self) -> Any:
        """
        Asking for the data of a licence that does not exist fails with
        NoSuchLicenceDatabase and creates nothing (no file, no database).
        """
        store = yield self.openStore()
        yield self.assertFailure(store.forLicence(31337).listGroups(), NoSuchLicenceDatabase)
        self.assertFalse((yield store.db.licenceDatabaseExists(31337)))

    @defer.inlineCallbacks
    def test_licenceIsolation(self) -> Any:
        """
        One licence's store reads and writes only its own database: the same
        names in two licences are separate rows, and a transaction of one
        licence cannot even name a global table or reach the other's data.
        """
        store = yield self.openStore()
        yield store.createLicence(Licence(number=1))
        yield store.createLicence(Licence(number=2))
        one, two = store.forLicence(1), store.forLicence(2)
        yield one.setSetting("greeting", "hello from 1")
        g1 = yield one.createGroup("Sales")
        yield one.setGroupMembers(g1.id, [5, 6])
        yield one.logEvent("CHAT_STARTED", {"CLIENT_ID": "v1"}, chat_id=1)
        self.assertIsNone((yield two.getSetting("greeting")))
        self.assertEqual((yield two.listGroups()), [])
        self.assertEqual((yield two.events()), [])
        g2 = yield two.createGroup("Sales")
        self.assertEqual((yield two.groupMembers(g2.id)), [])
        self.assertEqual((yield one.groupMembers(g1.id)), [5, 6])
        self.assertEqual([e[2] for e in (yield one.events())], ["CHAT_STARTED"])

        def readGlobal(txn: Any) -> Any:
            return txn.query("SELECT id FROM {licences}")

        yield self.assertFailure(store.db.runLicence(1, "sneak", readGlobal), KeyError)

    @defer.inlineCallbacks
    def test_groups(self) -> Any:
        """Group names are unique per licence regardless of case; members are replaced."""
        store = yield self.openStore()
        yield store.createLicence(Licence(number=1))
        ls = store.forLicence(1)
        sales = yield ls.createGroup("Sales", "the sales team")
        yield self.assertFailure(ls.createGroup("SALES"), Conflict)
        yield self.assertFailure(ls.createGroup("  "), ValueError)
        yield ls.createGroup("Billing")
        self.assertEqual([g.name for g in (yield ls.listGroups())], ["Billing", "Sales"])
        yield ls.setGroupMembers(sales.id, [3, 1, 3])
        self.assertEqual((yield ls.groupMembers(sales.id)), [1, 3])
        yield ls.setGroupMembers(sales.id, [2])
        self.assertEqual((yield ls.groupMembers(sales.id)), [2])
        yield self.assertFailure(ls.setGroupMembers(999, [1]), NotFound)

    @defer.inlineCallbacks
    def test_groupRenameAndDelete(self) -> Any:
        """
        A group is renamed (not onto another's name, in any case), and
        deleted with its members and its own settings, but not while a chat
        waits in its queue; no chat is created for it after; its id is not
        given again.
        """
        from livechat.model import ChatKind, ChatStatus

        store = yield self.openStore()
        yield store.createLicence(Licence(number=1))
        ls = store.forLicence(1)
        sales = yield ls.createGroup("Sales", "the sales team")
        billing = yield ls.createGroup("Billing")
        renamed = yield ls.updateGroup(sales.id, name=" Shop ")
        self.assertEqual((renamed.name, renamed.description), ("Shop", "the sales team"))
        renamed = yield ls.updateGroup(sales.id, description="")
        self.assertEqual((renamed.name, renamed.description), ("Shop", ""))
        yield ls.updateGroup(sales.id, name="SHOP")  # its own name, another case
        yield self.assertFailure(ls.updateGroup(sales.id, name="billing"), Conflict)
        yield self.assertFailure(ls.updateGroup(sales.id, name=" "), ValueError)
        yield self.assertFailure(ls.updateGroup(999, name="x"), NotFound)
        self.assertEqual([g.name for g in (yield ls.listGroups())], ["Billing", "SHOP"])

        yield ls.setGroupMembers(sales.id, [1, 2])
        yield ls.setGroupMembers(billing.id, [2])
        yield ls.setSetting(f"office.switch.{sales.id}", "closed")
        yield ls.setSetting(f"office.switch.{billing.id}", "open")
        chat, _, _ = yield ls.createChat(
            kind=ChatKind.VISITOR, status=ChatStatus.QUEUED, visitor_id="v-1", group_id=sales.id
        )
        yield self.assertFailure(ls.deleteGroup(sales.id), Conflict)
        self.assertTrue((yield ls.groupExists(sales.id)))
        yield ls.appendEvents(chat.id, [], update={"status": ChatStatus.CLOSED})
        yield ls.deleteGroup(sales.id)
        self.assertFalse((yield ls.groupExists(sales.id)))
        self.assertEqual((yield ls.groupsOf(1)), [])
        self.assertEqual((yield ls.groupsOf(2)), [billing.id])
        self.assertIsNone((yield ls.getSetting(f"office.switch.{sales.id}")))
        self.assertEqual((yield ls.getSetting(f"office.switch.{billing.id}")), "open")
        self.assertEqual((yield ls.getChat(chat.id)).group_id, sales.id)
        yield self.assertFailure(ls.deleteGroup(sales.id), NotFound)
        # A chat for the deleted group is refused in its own transaction
        # (the request's earlier check may have seen the group still there).
        yield self.assertFailure(
            ls.createChat(
                kind=ChatKind.VISITOR,
                status=ChatStatus.REQUESTED,
                visitor_id="v-2",
                group_id=sales.id,
            ),
            NotFound,
        )
        again = yield ls.createGroup("Shop")
        self.assertGreater(again.id, billing.id)

    @defer.inlineCallbacks
    def test_settingsAndState(self) -> Any:
        """Settings and server state are upserted; claimState has one winner."""
        store = yield self.openStore()
        yield store.createLicence(Licence(number=1))
        ls = store.forLicence(1)
        yield ls.setSetting("a", "1")
        yield ls.setSetting("a", "2")
        self.assertEqual((yield ls.getSetting("a")), "2")
        self.assertIsNone((yield store.getState("x")))
        yield store.setState("x", "1")
        yield store.setState("x", "2")
        self.assertEqual((yield store.getState("x")), "2")
        self.assertTrue((yield store.claimState("y", "me")))
        self.assertFalse((yield store.claimState("y", "you")))
        self.assertEqual((yield store.getState("y")), "me")

    @defer.inlineCallbacks
    def test_unicode(self) -> Any:
        """Names outside ASCII (Polish, emoji) are stored and found intact."""
        store = yield self.openStore()
        yield store.createLicence(Licence(number=1, name="Żółć Sp. z o.o."))
        anna = yield store.createOperator(
            1, op("Łucja", "łucja@example.pl", first_name="Łucja 🙂"), "h"
        )
        self.assertEqual((yield store.getOperator(1, "łucja")), anna)
        self.assertEqual((yield store.getLicence(1)).name, "Żółć Sp. z o.o.")
        self.assertEqual(anna.first_name, "Łucja 🙂")

    @defer.inlineCallbacks
    def test_health(self) -> Any:
        """health() succeeds on an open store and fails once it is closed."""
        store = yield self.openStore()
        yield store.health()
        yield store.close()
        yield self.assertFailure(store.health(), Exception)


globals().update(bothDialects(StoreTestsMixin, "StoreTests"))


class MysqlReconnectTests(DialectMixin, unittest.TestCase):
    """What happens when MariaDB drops a pooled connection."""

    dialect = "mysql"

    @defer.inlineCallbacks
    def test_killedConnectionIsRetried(self) -> Any:
        """
        When the server kills the pool's connection (as a restart or
        wait_timeout would), the next transaction fails on the dead socket,
        the pool reconnects, and the transaction is retried and succeeds.
        """
        import pymysql

        store = yield self.openStore()
        yield store.createLicence(Licence(number=1))

        def connectionIds(txn: Any) -> int:
            txn.executeRaw("SELECT CONNECTION_ID()")
            return txn.fetchall()[0][0]

        # Make every pooled connection known, then kill them all.
        ids = set()
        for _ in range(6):
            ids.add((yield store.db.runGlobal("id", connectionIds)))
        from urllib.parse import urlsplit

        parts = urlsplit(store.db._url)

        def kill() -> None:
            conn = pymysql.connect(
                host=parts.hostname,
                port=parts.port or 3306,
                user=parts.username or "root",
                password=parts.password or "",
            )
            try:
                with conn.cursor() as c:
                    for cid in ids:
                        c.execute(f"KILL {int(cid)}")
            finally:
                conn.close()

        yield threads.deferToThread(kill)
        licence = yield store.getLicence(1)
        self.assertEqual(licence.number, 1)
        after = yield store.db.runGlobal("id", connectionIds)
        self.assertNotIn(after, ids)
        # adbapi logs the failed rollback on each dead connection.
        from twisted.enterprise.adbapi import ConnectionLost

        self.flushLoggedErrors(
            pymysql.err.InterfaceError, pymysql.err.OperationalError, ConnectionLost
        )


class SqliteLruTests(DialectMixin, unittest.TestCase):
    """sqlite keeps a bounded number of licence files open."""

    @defer.inlineCallbacks
    def test_closesLeastRecentlyUsed(self) -> Any:
        """
        With room for two open licence files, using a third closes the least
        recently used one, and using that one again reopens it intact.
        """
        store = SqlStore(self.databaseURL(), reactor, maxOpenLicences=2)
        self.addCleanup(store.close)
        yield store.open()
        for n in (1, 2, 3):
            yield store.createLicence(Licence(number=n))
            yield store.forLicence(n).setSetting("n", str(n))
        for n in (1, 2, 3):
            self.assertEqual((yield store.forLicence(n).getSetting("n")), str(n))
            self.assertLessEqual(len(store.db._licencePools), 2)
        self.assertEqual(list(store.db._licencePools), [2, 3])


class SqliteCheckpointTests(DialectMixin, unittest.TestCase):
    """sqlite: the write-ahead log is copied into the database off the append path."""

    dialect = "sqlite"

    @defer.inlineCallbacks
    def test_backgroundCheckpoint(self) -> Any:
        """
        The writer's connection checkpoints by itself only past
        WAL_AUTOCHECKPOINT pages, so what a licence wrote is first in the
        write-ahead log only; L{Database.checkpoint} copies it into the
        database file, on a connection of its own that close() closes.
        """
        from livechat.storage.database import WAL_AUTOCHECKPOINT

        store = SqlStore(self.databaseURL(), reactor)
        self.addCleanup(store.close)
        yield store.open()
        yield store.createLicence(Licence(number=7))
        licence = store.forLicence(7)
        marker = "checkpoint-marker-" + "v" * 100
        for n in range(50):
            yield licence.setSetting(f"k{n}", marker)
        pages = yield store.db.runLicence(
            7, "pragma", lambda txn: txn.executeRaw("PRAGMA wal_autocheckpoint") or txn.fetchall()
        )
        self.assertEqual(pages, [(WAL_AUTOCHECKPOINT,)])
        path = store.db._sqliteLicencePath(7)

        def inFile(name: str) -> bool:
            with open(name, "rb") as f:
                return marker.encode() in f.read()

        self.assertTrue(inFile(path + "-wal"))
        self.assertFalse(inFile(path))
        yield store.db.checkpoint()
        self.assertTrue(inFile(path))
        self.assertEqual(set(store.db._checkpointers), {store.db.path, path})
        store.db.close()
        self.assertEqual(store.db._checkpointers, {})


class PinnedClock:
    """The real reactor, with seconds() pinned to a known time."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(reactor, name)

    def seconds(self) -> float:
        return self._seconds


class ClockTests(DialectMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_timesComeFromTheReactorClock(self) -> Any:
        """created_at is the injected clock's time, in milliseconds."""
        store = SqlStore(self.databaseURL(), PinnedClock(1_800_000_000.5))
        self.addCleanup(store.close)
        yield store.open()
        licence = yield store.createLicence(Licence(number=1))
        self.assertEqual(licence.created_at, 1_800_000_000_500)
        group = yield store.forLicence(1).createGroup("g")
        self.assertEqual(group.created_at, 1_800_000_000_500)
