"""
RPC webhooks and app notifications, end to end: a real core on a real store
(sqlite and MariaDB), the worker sending through treq over real sockets to
a real receiver (twisted.web on port 0), task.Clock for every retry timer.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from livechat.config import EVENT_NAMES
from livechat.model import AccountType, Licence, LicenceType, Operator, OperatorStatus
from livechat.notify import outbox, payloads
from livechat.notify.webhooks import (
    Refused,
    Sender,
    WebhookService,
    WebhookSettings,
    addressAllowed,
    checkURL,
)
from livechat.storage import hooks
from tests.support.core import CoreMixin, isEvent, isType
from tests.support.db import bothDialects
from tests.support.receiver import Receiver

SECRET = "s" * 40


class WorkerMixin(CoreMixin):
    def makeWorker(
        self, urls: dict[str, str] | None = None, sendLicenceInfo: bool = False, **kw: Any
    ) -> WebhookService:
        from twisted.internet import reactor

        kw.setdefault("allowPrivate", True)
        settings = WebhookSettings(urls=urls or {}, secret=SECRET, **kw)
        worker = WebhookService(
            self.store,
            settings,
            reactor,
            clock=self.clock,
            node="test-node",
            sendLicenceInfo=sendLicenceInfo,
        )
        self.core.storedListeners.append(worker.stored)
        worker.startService()
        self.addCleanup(worker.stopService)
        return worker

    def receiver(self) -> Receiver:
        r = Receiver().start()
        self.addCleanup(r.stop)
        return r

    @defer.inlineCallbacks
    def deliverAll(self, worker: WebhookService, licence: int = 100, rounds: int = 400) -> Any:
        """Run passes until the licence has no pending delivery left."""
        for _ in range(rounds):
            yield worker.runPass()
            yield worker.whenIdle()
            pending = yield self.store.db.runLicence(
                licence, "pending", hooks.listDeliveries_txn, state=hooks.PENDING
            )
            if not pending:
                return
        self.fail("deliveries still pending")

    @defer.inlineCallbacks
    def deliver(self, worker: WebhookService, until: Any, rounds: int = 200) -> Any:
        """Run passes (advancing the fake clock by nothing) until C{until()} holds."""
        for _ in range(rounds):
            yield worker.runPass()
            yield worker.whenIdle()
            if until():
                return
        rows = yield self.store.db.runLicence(100, "list", hooks.listDeliveries_txn)
        self.fail(f"deliveries did not arrive: {rows}")


class RpcEventsMixin(WorkerMixin):
    @defer.inlineCallbacks
    def test_twelveEvents(self) -> Any:
        """
        Every one of the seed's twelve events reaches its EVENT_* URL as a
        form-encoded POST with exactly the seed's parameters and values.
        """
        r = self.receiver()
        worker = self.makeWorker({e: r.url(f"/{e.lower()}") for e in EVENT_NAMES})
        store = self.store
        yield store.createLicence(
            Licence(
                number=100,
                lic_type=LicenceType.ASP_DEMO,
                expires_at=1893456000000,
                web_page="https://shop.example",
                promo_code="P1",
                language="en",
            ),
            Operator(
                id=0,
                licence=0,
                nick="anna",
                operator_id="anna@example.com",
                first_name="Anna",
                last_name="Smith",
                phone="+1 555",
            ),
            "hash",
        )
        bob = yield self.operator(nick="bob", account_type=AccountType.COMMUNICATOR)
        anna = yield store.getOperator(100, "anna")
        yield store.updateLicence(100, expires_at=1924992000000)
        yield store.createSubscription(
            100,
            operators_cc=5,
            operators_com=2,
            start_at=1800000000000,
            end_at=1831536000000,
            payment_method="card",
            net_price="99.00",
            vat="23",
        )
        agent, achan = yield self.connectOperator(anna)
        other, ochan = yield self.connectOperator(bob)
        visitor, vchan = yield self.connectVisitor()
        chatId = yield self.activeChat(visitor, vchan, agent, achan, "Hello there")
        yield agent.transfer(chatId, toOperator=bob.id)
        yield ochan.next(isEvent("JoinEvent", chatId))
        private = yield agent.privateChat(bob.id)
        second, _ = yield self.connectVisitor("visitor-0002")
        yield agent.inviteVisitor("visitor-0002", "Can I help?")
        yield other.send(chatId, "Bye")
        yield other.close(chatId)
        third, tchan = yield self.connectVisitor("visitor-0003")
        chat3 = yield third.requestChat(message="me too")
        offered = yield achan.next(isType("chat.offered", chatId=chat3))
        yield agent.accept(offered["chatId"])
        yield third.leave(chat3)
        yield agent.setStatus(OperatorStatus.AWAY)

        yield self.deliverAll(worker)
        self.assertEqual(set(EVENT_NAMES), {x.form.get("EVENT") for x in r.requests})

        got = {}
        for x in r.requests:
            got.setdefault(x.form["EVENT"], []).append(x)
        for name, received in got.items():
            for x in received:
                self.assertEqual(x.method, "POST")
                self.assertEqual(x.path, f"/{name.lower()}")
                self.assertEqual(x.headers["content-type"], "application/x-www-form-urlencoded")
                self.assertEqual(
                    [k for k, _ in x.pairs], [k for k in payloads.RPC_FIELDS[name] if k in x.form]
                )
        first = lambda name: got[name][0].form  # noqa: E731
        self.assertEqual(
            first("NEW_LICENCE"),
            {
                "EVENT": "NEW_LICENCE",
                "LICENCE": "100",
                "NICK": "anna",
                "LAST_NAME": "Smith",
                "FIRST_NAME": "Anna",
                "OPERATOR_ID": "anna@example.com",
                "PHONE": "+1 555",
                "LIC_TYPE": "9",
                "WEB_PAGE": "https://shop.example",
                "PROMO_CODE": "P1",
                "ACCOUNT_TYPE": "contact center",
                "EXPIRATION_DATE": "2030-01-01 00:00:00",
                "LANGUAGE": "en",
            },
        )
        self.assertEqual(
            first("NEW_OPERATOR"),
            {
                "EVENT": "NEW_OPERATOR",
                "LICENCE": "100",
                "LAST_NAME": "",
                "FIRST_NAME": "Bob",
                "OPERATOR_ID": "bob@example.com",
                "ACCOUNT_TYPE": "communicator",
            },
        )
        self.assertEqual(
            first("LICENCE_INFO"),
            {
                "EVENT": "LICENCE_INFO",
                "LICENCE": "100",
                "EXPIRATION_DATE": "2031-01-01 00:00:00",
                "LIC_TYPE": "9",
            },
        )
        self.assertEqual(
            first("NEW_OPERATOR_SUBSCRIPTION"),
            {
                "EVENT": "NEW_OPERATOR_SUBSCRIPTION",
                "LICENCE": "100",
                "OPERATORS_COUNT_CC": "5",
                "OPERATORS_COUNT_COM": "2",
                "START_DATE": "2027-01-15 08:00:00",
                "END_DATE": "2028-01-15 08:00:00",
                "PAYMENT_METHOD": "card",
                "NET_PRICE": "99.00",
                "VAT": "23",
            },
        )
        self.assertIn(
            {
                "EVENT": "OPERATOR_STATUS",
                "LICENCE": "100",
                "OPERATOR_ID": "anna@example.com",
                "STATUS": "0",
            },
            [x.form for x in got["OPERATOR_STATUS"]],
        )
        self.assertIn(
            {
                "EVENT": "OPERATOR_STATUS",
                "LICENCE": "100",
                "OPERATOR_ID": "anna@example.com",
                "STATUS": "1",
            },
            [x.form for x in got["OPERATOR_STATUS"]],
        )
        self.assertEqual(
            first("BUTTON_STATUS"), {"EVENT": "BUTTON_STATUS", "LICENCE": "100", "STATUS": "online"}
        )
        # Chats are delivered in order each, not in order with each other.
        self.assertIn(
            {
                "EVENT": "CHAT_STARTED",
                "LICENCE": "100",
                "CLIENT_ID": "visitor-0001",
                "OPERATOR_ID": "anna@example.com",
                "STATUS": "0",
            },
            [x.form for x in got["CHAT_STARTED"]],
        )
        self.assertEqual(
            first("OPERATOR_TRANSFER"),
            {
                "EVENT": "OPERATOR_TRANSFER",
                "LICENCE": "100",
                "CLIENT_ID": "visitor-0001",
                "NEW_OPERATOR_ID": "bob@example.com",
                "OPERATOR_ID": "anna@example.com",
                "STATUS": "0",
            },
        )
        self.assertEqual(
            first("PRIVATE_CHAT_STATUS"),
            {
                "EVENT": "PRIVATE_CHAT_STATUS",
                "LICENCE": "100",
                "OPERATOR_ID": "anna@example.com",
                "STATUS": "start",
                "GROUP": str(private),
            },
        )
        self.assertEqual(
            first("CLIENT_INVITED"),
            {
                "EVENT": "CLIENT_INVITED",
                "LICENCE": "100",
                "OPERATOR_ID": "anna@example.com",
                "CLIENT_ID": "visitor-0002",
            },
        )
        stopped = first("OPERATOR_STOPED_CHAT")
        self.assertEqual(
            {k: v for k, v in stopped.items() if k != "CHAT"},
            {
                "EVENT": "OPERATOR_STOPED_CHAT",
                "LICENCE": "100",
                "OPERATOR_ID": "bob@example.com",
                "CLIENT_ID": "visitor-0001",
                "GROUP": str(chatId),
            },
        )
        self.assertRegex(
            stopped["CHAT"], r"^\[[\d :-]+\] Vera: Hello there\n\[[\d :-]+\] Bob: Bye$"
        )
        self.assertIn(b"CHAT=%5B", got["OPERATOR_STOPED_CHAT"][0].body)
        left = first("VISITOR_LEFT_CHAT")
        self.assertEqual(
            (left["OPERATOR_ID"], left["CLIENT_ID"], left["GROUP"]),
            ("anna@example.com", "visitor-0003", str(chat3)),
        )
        self.assertRegex(left["CHAT"], r"Visitor: me too$")

    @defer.inlineCallbacks
    def test_licenceInfoAtStartAndGet(self) -> Any:
        """
        LICENCE_INFO is sent at server start for every licence ("including
        server starting"); with WEBHOOK_METHOD GET the parameters are the
        query string, and a CHAT_STARTED of an invitation carries INVITING_OP.
        """
        r = self.receiver()
        yield self.licence(100, expires_at=None)
        yield self.licence(200)
        worker = self.makeWorker(
            {"LICENCE_INFO": r.url("/info?x=1")}, method="GET", sendLicenceInfo=True
        )
        yield self.deliver(worker, lambda: len(r.requests) >= 2)
        self.assertEqual(
            sorted((x.method, x.form["LICENCE"], x.form["EVENT"], x.form["x"]) for x in r.requests),
            [("GET", "100", "LICENCE_INFO", "1"), ("GET", "200", "LICENCE_INFO", "1")],
        )
        self.assertTrue(
            payloads.verify(
                SECRET,
                r.requests[0].headers["x-livechat-signature"],
                r.requests[0].signed,
                self.clock.seconds(),
            )
        )

    @defer.inlineCallbacks
    def test_downThenUp(self) -> Any:
        """
        The receiver is down (drops every connection) while events happen: they
        are retried with backoff on the fake clock, nothing is lost, and when
        it is up again every event arrives once, each chat's in order; the
        event id header is the same for a retry of one event.
        """
        r = self.receiver()
        r.down = True
        worker = self.makeWorker({e: r.url() for e in EVENT_NAMES})
        op = yield self.operator(nick="anna")
        # The EVENT_* URLs are an endpoint each; the licence's webhook for
        # every event is one endpoint that gets each chat's several events.
        yield self.store.db.runLicence(
            100, "hook", hooks.createWebhook_txn, "*", r.url("/all"), "POST", True, 1
        )
        agent, achan = yield self.connectOperator(op)
        chats = []
        for i in range(3):
            v, vchan = yield self.connectVisitor(f"visitor-{i:04d}")
            chatId = yield self.activeChat(v, vchan, agent, achan)
            chats.append(chatId)
        for chatId in chats:
            yield agent.close(chatId)
        yield worker.runPass()
        yield worker.whenIdle()
        dead = yield self.store.db.runLicence(
            100, "list", hooks.listDeliveries_txn, state=hooks.PENDING
        )
        self.assertTrue(dead)
        self.assertTrue(all(d.attempts >= 1 and d.last_error for d in dead if d.attempts))
        for _ in range(5):
            self.clock.advance(3600)
            yield worker.runPass()
            yield worker.whenIdle()
        self.assertEqual(r.requests, [])
        self.assertGreater(r.refused, 0)
        r.down = False
        self.clock.advance(3600)
        expected = yield self.store.forLicence(100).events()
        wanted = [e for e in expected if e[2] in payloads.RPC_FIELDS]
        before: Any = None
        for _ in range(400):
            yield worker.runPass()
            yield worker.whenIdle()
            pending = yield self.store.db.runLicence(
                100, "list", hooks.listDeliveries_txn, state=hooks.PENDING
            )
            # The account events (global database) fan out in their own pass.
            if not pending and len(r.requests) >= 2 * (len(wanted) + 2):
                break
            # A pass that changed nothing (no request is in flight after
            # whenIdle): deliveries wait for a later try (one that failed on
            # a slow machine), for one before them in their chat's order, or
            # for their endpoint's pause after failures.  Move the test's
            # clock to the first later try, or by a minute, and only then.
            state = (len(r.requests), sorted((d.id, d.attempts, d.next_at) for d in pending))
            now = int(self.clock.seconds() * 1000)
            later = [d.next_at for d in pending if d.next_at > now]
            if state == before and pending:
                self.clock.advance((min(later) - now) / 1000 if later else 60)
            before = state
        self.assertGreaterEqual(len(r.requests), 2 * (len(wanted) + 2))
        ids = [(x.path, x.headers["x-livechat-event-id"]) for x in r.requests]
        self.assertEqual(len(ids), len(set(ids)))
        for chatId in chats:
            names = [
                x.form["EVENT"]
                for x in r.requests
                if x.form.get("GROUP") == str(chatId) and x.path == "/events"
            ]
            self.assertEqual(names, ["OPERATOR_STOPED_CHAT"])
        logOrder = [
            x.headers["x-livechat-event-id"]
            for x in r.requests
            if "-log-" in x.headers["x-livechat-event-id"]
        ]
        # A chat's events reach each endpoint in order (docs/webhooks.md);
        # the EVENT_* URLs are one endpoint each, retried on their own.
        perChat: dict[tuple[str, int], list[int]] = {}
        for x in r.requests:
            d = yield self.store.db.runLicence(
                100, "get", hooks.getDelivery_txn, int(x.headers["x-livechat-delivery"])
            )
            if d.chat_id is not None:
                perChat.setdefault((d.endpoint, d.chat_id), []).append(d.order_no)
        self.assertGreaterEqual(max(len(numbers) for numbers in perChat.values()), 2)
        for numbers in perChat.values():
            self.assertEqual(numbers, sorted(numbers))
        self.assertTrue(logOrder)
        pending = yield self.store.db.runLicence(
            100, "list", hooks.listDeliveries_txn, state=hooks.PENDING
        )
        self.assertEqual(pending, [])

    @defer.inlineCallbacks
    def test_deadAndReplay(self) -> Any:
        """
        After WEBHOOK_RETRY_FOR the delivery is dead (with its last error);
        a replay sends it again once the receiver answers.
        """
        r = self.receiver()
        r.status = 500
        worker = self.makeWorker({"NEW_OPERATOR": r.url()}, retryFor=600)
        yield self.operator(nick="zed")
        for _ in range(20):
            yield worker.runPass()
            yield worker.whenIdle()
            self.clock.advance(400)
        [dead] = yield self.store.db.runLicence(100, "list", hooks.listDeliveries_txn)
        self.assertEqual(dead.state, hooks.DEAD)
        self.assertIn("HTTP 500", dead.last_error)
        attempts = len(r.requests)
        self.assertGreaterEqual(attempts, 2)
        r.status = 200
        count = yield worker.hooks.replay(100, deliveryId=dead.id)
        self.assertEqual(count, 1)
        yield self.deliver(worker, lambda: len(r.requests) > attempts)
        [done] = yield self.store.db.runLicence(100, "list", hooks.listDeliveries_txn)
        self.assertEqual(done.state, hooks.DELIVERED)

    @defer.inlineCallbacks
    def test_chatCursorWithoutApps(self) -> Any:
        """
        With no app, a pass moves the chat cursor past the stored events
        (reading only their positions) and makes no delivery; an app added
        then is told of the events after it, not of the ones before.
        """
        r = self.receiver()
        worker = self.makeWorker()
        anna = yield self.operator(nick="anna")
        agent, achan = yield self.connectOperator(anna)
        visitor, vchan = yield self.connectVisitor()
        chatId = yield self.activeChat(visitor, vchan, agent, achan, "Before any app")
        yield visitor.send(chatId, "Still no app")
        db = self.store.db
        yield worker.runPass()
        newest = yield db.runLicence(
            100, "max gid", lambda txn: txn.queryOne("SELECT MAX(gid) FROM {chat_events}")[0]
        )
        cursor = yield db.runLicence(100, "cursor", hooks.getCursor_txn, outbox.SOURCE_CHAT)
        self.assertEqual(cursor, newest)
        self.assertEqual((yield db.runLicence(100, "list", hooks.listDeliveries_txn)), [])

        app = yield db.runLicence(
            100,
            "app",
            hooks.createApp_txn,
            {"name": "A", "endpoint": r.url("/app"), "allChats": True},
            1,
        )
        seq = yield visitor.send(chatId, "After the app")
        yield worker.runPass()
        deliveries = yield db.runLicence(100, "list", hooks.listDeliveries_txn)
        self.assertEqual(
            [(d.endpoint, d.event_key) for d in deliveries],
            [(f"app:{app['id']}", f"chat:{chatId}:{seq}")],
        )


globals().update(bothDialects(RpcEventsMixin, "RpcEventsTests"))


class GuardTests(unittest.TestCase):
    def test_addresses(self) -> None:
        """Loopback, private, link-local, shared, mapped addresses are refused; public pass."""
        for bad in (
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "::1",
            "fe80::1",
            "100.64.0.1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
            "fc00::1",
        ):
            self.assertFalse(addressAllowed(bad), bad)
        for good in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"):
            self.assertTrue(addressAllowed(good), good)

    def test_checkURL(self) -> None:
        """Configured URLs: http(s) only, no literal private address or localhost unless allowed."""
        for bad in (
            "ftp://x/",
            "http://localhost/",
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://169.254.169.254/latest",
            "x" * 2001,
            "",
        ):
            with self.assertRaises(ValueError):
                checkURL(bad, allowPrivate=False)
        self.assertEqual(checkURL("http://127.0.0.1/", allowPrivate=True), "http://127.0.0.1/")
        self.assertEqual(
            checkURL("https://hooks.example/x", allowPrivate=False), "https://hooks.example/x"
        )

    @defer.inlineCallbacks
    def test_resolvedAddressRefused(self) -> Any:
        """
        A name is checked by what it resolves to, before any connection: a
        name resolving to a private address is refused (no request is made).
        """
        from twisted.internet import reactor

        asked = []

        def resolver(host: str, port: int) -> defer.Deferred[list[str]]:
            asked.append(host)
            return defer.succeed(["93.184.216.34", "10.0.0.5"])

        sender = Sender(reactor, reactor, resolver)
        yield self.assertFailure(
            defer.ensureDeferred(
                sender.send("POST", "http://internal.example/x", b"", {}, guard=True)
            ),
            Refused,
        )
        self.assertEqual(asked, ["internal.example"])


class SignatureTests(unittest.TestCase):
    def test_signAndVerify(self) -> None:
        """The documented check accepts our signature; a changed body, key or old time fails."""
        header = payloads.sign("k", 1000, b"a=1")
        self.assertTrue(payloads.verify("k", header, b"a=1", 1000))
        self.assertFalse(payloads.verify("k", header, b"a=2", 1000))
        self.assertFalse(payloads.verify("other", header, b"a=1", 1000))
        self.assertFalse(payloads.verify("k", header, b"a=1", 2000))
        self.assertFalse(payloads.verify("k", "junk", b"a=1", 1000))

    def test_cursorGaps(self) -> None:
        """A missing id stops the cursor until it has been missing for gapWait seconds."""
        self.assertEqual(hooks.advanceCursor(0, [1, 2, 3], 0, {}, 60), (3, {}))
        self.assertEqual(hooks.advanceCursor(0, [1, 3], 10, {}, 60), (1, {2: 10}))
        self.assertEqual(hooks.advanceCursor(1, [3, 4], 50, {2: 10}, 60), (1, {2: 10}))
        self.assertEqual(hooks.advanceCursor(1, [3, 4], 70, {2: 10}, 60), (4, {}))
        self.assertEqual(hooks.advanceCursor(5, [], 0, {}, 60), (5, {}))


class DeliveryMixin(WorkerMixin):
    @defer.inlineCallbacks
    def test_passwordWhenConfigured(self) -> Any:
        """
        With WEBHOOK_SEND_PASSWORD the PASSWORD given at creation is sent in
        the seed's place; the account log and the delivery keep it no longer.
        """
        r = self.receiver()
        worker = self.makeWorker({"NEW_OPERATOR": r.url()}, sendPassword=True)
        yield self.licence(100)
        yield self.store.createOperator(
            100,
            Operator(id=0, licence=0, nick="pat", operator_id="pat@example.com"),
            "hash",
            event_extra={"PASSWORD": "secret-pw-1"},
        )
        yield self.deliver(worker, lambda: len(r.requests) >= 1)
        [x] = r.requests
        self.assertEqual(
            x.pairs[:3],
            [("EVENT", "NEW_OPERATOR"), ("LICENCE", "100"), ("PASSWORD", "secret-pw-1")],
        )
        events = yield self.store.accountEvents(100)
        self.assertNotIn("secret-pw-1", json.dumps(events))
        [d] = yield self.store.db.runLicence(100, "list", hooks.listDeliveries_txn)
        full = yield self.store.db.runLicence(100, "get", hooks.getDelivery_txn, d.id)
        self.assertNotIn("PASSWORD", full.payload["fields"])

    @defer.inlineCallbacks
    def test_passwordNotSentByDefault(self) -> Any:
        """Without WEBHOOK_SEND_PASSWORD no PASSWORD parameter is sent at all."""
        r = self.receiver()
        worker = self.makeWorker({"NEW_OPERATOR": r.url()})
        yield self.licence(100)
        yield self.store.createOperator(
            100,
            Operator(id=0, licence=0, nick="pat", operator_id="pat@example.com"),
            "hash",
            event_extra={"PASSWORD": "secret-pw-1"},
        )
        yield self.deliver(worker, lambda: len(r.requests) >= 1)
        self.assertNotIn("PASSWORD", r.requests[0].form)

    @defer.inlineCallbacks
    def test_rpcServerIP(self) -> Any:
        """With RPC_SERVER_IP the request goes to that address; the Host header keeps the name."""
        r = self.receiver()
        url = f"http://crm.example.com:{r.portNumber}/events.pl"
        worker = self.makeWorker({"NEW_OPERATOR": url}, rpcServerIP="127.0.0.1")
        yield self.operator(nick="ivy")
        yield self.deliver(worker, lambda: len(r.requests) >= 1)
        self.assertEqual(r.requests[0].headers["host"], f"crm.example.com:{r.portNumber}")
        self.assertEqual(r.requests[0].path, "/events.pl")

    @defer.inlineCallbacks
    def test_licenceHookGuarded(self) -> Any:
        """
        A licence's webhook whose name resolves to this server's network is
        refused at delivery (dead, no request made); allowed, it is sent to
        the checked address with the name as Host.
        """
        from twisted.internet import reactor

        r = self.receiver()
        yield self.licence(100)
        store = WebhookService(self.store, WebhookSettings(), reactor).hooks
        yield store.createWebhook(
            100, "*", f"http://hooks.internal.example:{r.portNumber}/x", "POST", True
        )
        resolved = []

        def resolver(host: str, port: int) -> Any:
            resolved.append(host)
            return defer.succeed(["127.0.0.1"])

        worker = WebhookService(
            self.store,
            WebhookSettings(secret=SECRET, allowPrivate=False),
            reactor,
            clock=self.clock,
            node="guarded",
            resolver=resolver,
            sendLicenceInfo=False,
        )
        worker.startService()
        self.addCleanup(worker.stopService)
        yield self.operator(nick="una")
        for _ in range(3):
            yield worker.runPass()
            yield worker.whenIdle()
        [d] = yield self.store.db.runLicence(
            100, "list", hooks.listDeliveries_txn, event="NEW_OPERATOR"
        )
        self.assertEqual(d.state, hooks.DEAD)
        self.assertIn("refused", d.last_error)
        self.assertEqual(r.requests, [])
        self.assertIn("hooks.internal.example", resolved)
        worker.settings = WebhookSettings(secret=SECRET, allowPrivate=True)
        yield worker.hooks.replay(100, deliveryId=d.id)
        yield self.deliver(worker, lambda: len(r.requests) >= 1)
        self.assertEqual(r.requests[0].headers["host"], f"hooks.internal.example:{r.portNumber}")
        self.assertEqual([x.form["EVENT"] for x in r.requests], ["NEW_OPERATOR"])

    @defer.inlineCallbacks
    def test_unknownEventIsDead(self) -> Any:
        """A delivery of an event the server does not know is dead, with why; no failure."""
        r = self.receiver()
        worker = self.makeWorker({"NEW_OPERATOR": r.url()})
        yield self.operator(nick="una")
        yield self.store.db.runLicence(
            100,
            "add",
            hooks.addDeliveries_txn,
            [
                hooks.DeliveryDraft(
                    endpoint="cfg:NEW_OPERATOR",
                    event_key="log:999",
                    event="NO_SUCH_EVENT",
                    chat_id=None,
                    order_key="elsewhere",
                    order_no=999,
                    payload={},
                )
            ],
            0,
        )
        yield self.deliverAll(worker)
        [d] = yield self.store.db.runLicence(
            100, "list", hooks.listDeliveries_txn, event="NO_SUCH_EVENT"
        )
        self.assertEqual(d.state, hooks.DEAD)
        self.assertIn("no such event 'NO_SUCH_EVENT'", d.last_error)
        self.assertEqual([x.form["EVENT"] for x in r.requests], ["NEW_OPERATOR"])

    @defer.inlineCallbacks
    def test_slowReceiverHoldsUpNobody(self) -> Any:
        """
        A receiver that never answers gets at most WEBHOOK_ENDPOINT_CONCURRENCY
        requests at once, and the other endpoint gets all its events
        meanwhile; its requests time out (task.Clock) and are retried later.
        """
        slow, fast = self.receiver(), self.receiver()
        slow.hang = True
        worker = self.makeWorker(
            {"OPERATOR_STATUS": slow.url(), "NEW_OPERATOR": fast.url()}, perEndpoint=2, timeout=10
        )
        ops = []
        for i in range(5):
            ops.append((yield self.operator(nick=f"op{i}x")))
        for op in ops:
            yield self.connectOperator(op)
        for _ in range(50):
            yield worker.runPass()
            yield worker.whenIdle(exclude=frozenset({"cfg:OPERATOR_STATUS"}))
            if len(fast.requests) >= 5:
                break
        self.assertEqual(len(fast.requests), 5)
        self.assertEqual(len(slow.hanging), 2)
        self.assertEqual(worker.inflight(100, "cfg:OPERATOR_STATUS"), 2)
        # Due work that cannot be taken now does not make the worker spin.
        worker.kick(100)
        self.clock.advance(0)
        if worker._passing is not None:
            yield worker._passing
        self.assertGreaterEqual(worker._timer.getTime() - self.clock.seconds(), 1.0)
        self.clock.advance(10)
        yield worker.whenIdle()
        pending = yield self.store.db.runLicence(
            100, "list", hooks.listDeliveries_txn, endpoint="cfg:OPERATOR_STATUS"
        )
        tried = [d for d in pending if d.attempts]
        self.assertEqual(len(tried), 2)
        self.assertTrue(all("no answer within 10 s" in d.last_error for d in tried))
        self.assertTrue(all(d.state == hooks.PENDING for d in pending))

    @defer.inlineCallbacks
    def test_twoNodes(self) -> Any:
        """Two workers on one database deliver every event exactly once between them."""
        r = self.receiver()
        urls = {"NEW_OPERATOR": r.url(), "OPERATOR_STATUS": r.url()}
        a = self.makeWorker(urls)
        b = self.makeWorker(urls)
        b.node = "other-node"
        for i in range(6):
            op = yield self.operator(nick=f"tw{i}")
            yield self.connectOperator(op)
        for _ in range(50):
            yield defer.gatherResults([a.runPass(), b.runPass()])
            yield defer.gatherResults([a.whenIdle(), b.whenIdle()])
            if len(r.requests) >= 12:
                break
        for _ in range(3):
            yield defer.gatherResults([a.runPass(), b.runPass()])
            yield defer.gatherResults([a.whenIdle(), b.whenIdle()])
        ids = [x.headers["x-livechat-event-id"] for x in r.requests]
        self.assertEqual(len(ids), 12)
        self.assertEqual(len(set(ids)), 12)


globals().update(bothDialects(DeliveryMixin, "DeliveryTests"))
