"""
The front desk (livechat.core.reception) on a real core and store (sqlite
and MariaDB): office hours and the switch, operators available, chat
requests outside hours, left messages (stored, told, mailed, given to
operators at start, handled), transcripts mailed to visitors.
"""

from __future__ import annotations

import datetime
import zoneinfo
from typing import Any

from twisted.internet import defer

from livechat.core.errors import CoreError
from livechat.model import OperatorStatus
from tests.support.core import isType
from tests.support.db import bothDialects
from tests.support.web import WebMixin

WARSAW = zoneinfo.ZoneInfo("Europe/Warsaw")
HOURS = {"timezone": "Europe/Warsaw", "week": {"mon": ["09:00-17:00"], "sat": ["10:00-12:00"]}}


def at(year: int, month: int, day: int, hour: int, minute: int = 0) -> float:
    return datetime.datetime(year, month, day, hour, minute, tzinfo=WARSAW).timestamp()


class ReceptionMixin(WebMixin):
    def setTime(self, when: float) -> None:
        self.clock.advance(when - self.clock.seconds())

    @defer.inlineCallbacks
    def test_noHoursAlwaysOpen(self) -> Any:
        """Without office hours and switch a licence is open; online only with an operator."""
        yield self.licence()
        status = yield self.reception.status(100)
        self.assertEqual(
            status, {"open": True, "online": False, "reason": "", "nextChange": None, "group": None}
        )
        op = yield self.operator()
        yield self.connectOperator(op)
        status = yield self.reception.status(100)
        self.assertTrue(status["online"])

    @defer.inlineCallbacks
    def test_officeHours(self) -> Any:
        """
        The schedule decides in its own time zone: open on Monday 09:00-17:00
        Warsaw time, closed a minute before and at 17:00; nextChange is the
        moment it flips.
        """
        yield self.licence()
        yield self.setting(100, "office.hours", HOURS)
        self.setTime(at(2027, 3, 1, 8, 59))  # a Monday
        status = yield self.reception.status(100)
        self.assertEqual((status["open"], status["reason"]), (False, "hours"))
        self.assertEqual(status["nextChange"], int(at(2027, 3, 1, 9, 0) * 1000))
        self.setTime(at(2027, 3, 1, 9, 0))
        status = yield self.reception.status(100)
        self.assertTrue(status["open"])
        self.assertEqual(status["nextChange"], int(at(2027, 3, 1, 17, 0) * 1000))
        self.setTime(at(2027, 3, 1, 17, 0))
        status = yield self.reception.status(100)
        self.assertFalse(status["open"])
        self.assertEqual(status["nextChange"], int(at(2027, 3, 6, 10, 0) * 1000))

    @defer.inlineCallbacks
    def test_switchWinsAndGroupsHaveTheirOwn(self) -> Any:
        """
        The manual switch overrides the hours (closed or open); a group's own
        hours and switch win over the licence's, and a group without its own
        follows the licence.
        """
        yield self.licence()
        store = self.store.forLicence(100)
        sales = yield store.createGroup("Sales")
        support = yield store.createGroup("Support")
        self.setTime(at(2027, 3, 1, 12, 0))
        yield self.setting(100, "office.hours", HOURS)
        yield self.setting(100, "office.switch", "closed")
        self.assertEqual((yield self.reception.status(100))["reason"], "switch")
        yield self.setting(100, "office.switch", "open")
        self.setTime(at(2027, 3, 1, 20, 0))
        self.assertTrue((yield self.reception.status(100))["open"])
        yield self.setting(100, "office.switch", "auto")
        self.assertFalse((yield self.reception.status(100))["open"])
        yield self.setting(
            100, f"office.hours.{sales.id}", {"timezone": "UTC", "week": {"mon": ["00:00-24:00"]}}
        )
        self.assertTrue((yield self.reception.status(100, sales.id))["open"])
        self.assertFalse((yield self.reception.status(100, support.id))["open"])
        yield self.setting(100, f"office.switch.{support.id}", "open")
        self.assertTrue((yield self.reception.status(100, support.id))["open"])

    @defer.inlineCallbacks
    def test_onlineByGroup(self) -> Any:
        """With a group asked for, only an operator of that group who takes chats counts."""
        yield self.licence()
        store = self.store.forLicence(100)
        sales = yield store.createGroup("Sales")
        op = yield self.operator()
        yield self.connectOperator(op)
        self.assertFalse((yield self.reception.status(100, sales.id))["online"])
        seller = yield self.operator()
        yield store.setGroupMembers(sales.id, [seller.id])
        session, _ = yield self.connectOperator(seller, status=OperatorStatus.AWAY)
        self.assertFalse((yield self.reception.status(100, sales.id))["online"])
        yield session.setStatus(OperatorStatus.ONLINE)
        self.assertTrue((yield self.reception.status(100, sales.id))["online"])

    @defer.inlineCallbacks
    def test_requestOutsideHoursRefused(self) -> Any:
        """
        Outside hours a chat request is refused (unavailable) and no chat is
        made; within hours, with nobody online, it is taken and queued.
        """
        yield self.licence()
        yield self.setting(100, "office.hours", HOURS)
        self.setTime(at(2027, 3, 2, 12, 0))  # a Tuesday: closed
        visitor, vchan = yield self.connectVisitor()
        e = yield self.assertFailure(
            defer.ensureDeferred(self.reception.requestChat(visitor, message="hi")), CoreError
        )
        self.assertEqual(e.code, "unavailable")
        self.assertEqual((yield self.store.forLicence(100).chatsOfVisitor("visitor-0001")), [])
        self.setTime(at(2027, 3, 8, 12, 0))  # a Monday: open
        chatId = yield defer.ensureDeferred(self.reception.requestChat(visitor, message="hi"))
        queued = yield vchan.next(isType("chat.queue", chatId=chatId))
        self.assertEqual(queued["position"], 1)

    @defer.inlineCallbacks
    def test_leaveMessage(self) -> Any:
        """
        A left message is stored (with why), told to the operators online,
        and mailed to the licence's administrators, in the licence's language,
        replying to the visitor; then it is marked mailed.
        """
        yield self.licence(language="pl")
        admin = yield self.operator(nick="boss", is_admin=True)
        op = yield self.operator()
        _, achan = yield self.connectOperator(op, status=OperatorStatus.AWAY)
        stored = yield defer.ensureDeferred(
            self.reception.leaveMessage(
                100,
                "visitor-0001",
                address="192.0.2.9",
                name="Vera",
                email="vera@example.com",
                message="Call me back, please",
                url="https://shop.example/cart",
                language="pl",
            )
        )
        self.assertEqual(stored["reason"], "offline")
        told = yield achan.next(isType("offline.message"))
        self.assertEqual(told["message"]["message"], "Call me back, please")
        self.assertNotIn("address", told["message"])
        to, mail = yield self.mail.next()
        self.assertEqual(to, [admin.operator_id])
        self.assertEqual(mail["Reply-To"], "vera@example.com")
        self.assertIn("zostawił wiadomość", mail["Subject"])
        self.assertIn("Call me back, please", mail.get_content())
        self.assertIn("https://shop.example/cart", mail.get_content())
        yield self.core.stop()
        rows = yield self.store.forLicence(100).offlineMessages(True, 10)
        self.assertEqual([r.message for r in rows], ["Call me back, please"])
        self.assertIsNotNone(rows[0].mailed_at)
        self.assertEqual(rows[0].address, "192.0.2.9")

    @defer.inlineCallbacks
    def test_leaveMessageChecks(self) -> Any:
        """An e-mail address is required and checked; the message has the core's bound."""
        yield self.licence()
        for fields, code in (
            ({"email": "", "message": "x"}, "bad_request"),
            ({"email": "not-an-address", "message": "x"}, "bad_request"),
            ({"email": "a@example.com", "message": "  "}, "bad_request"),
            ({"email": "a@example.com", "message": "x" * 4001}, "too_large"),
            ({"email": "a@example.com", "message": "x", "group": 999}, "not_found"),
        ):
            e = yield self.assertFailure(
                defer.ensureDeferred(self.reception.leaveMessage(100, "visitor-0001", **fields)),
                CoreError,
            )
            self.assertEqual(e.code, code, fields)
        self.assertEqual((yield self.store.forLicence(100).offlineMessages(False, 10)), [])

    @defer.inlineCallbacks
    def test_mailRetriedThenConfiguredAddress(self) -> Any:
        """
        With mail.offline_to set the mail goes there; a failing SMTP server is
        tried again after the retry delay (task.Clock), and the mail arrives.
        """
        yield self.licence()
        yield self.setting(100, "mail.offline_to", "desk@example.com, boss@example.com")
        self.mail.fail = 1
        yield defer.ensureDeferred(
            self.reception.leaveMessage(100, "visitor-0001", email="v@example.com", message="hi")
        )
        yield self.mail.attempt(1)
        self.assertEqual(self.mail.mails, [])
        self.clock.advance(4.9)
        self.assertEqual(self.mail.attempts, 1)
        self.clock.advance(0.1)
        to, mail = yield self.mail.next()
        self.assertEqual(to, ["desk@example.com", "boss@example.com"])
        self.assertIn("A visitor left a message", mail["Subject"])

    @defer.inlineCallbacks
    def test_operatorsGetPendingAtStartUntilHandled(self) -> Any:
        """
        An operator connecting gets the messages no operator has handled
        (offline.messages); once one marks them handled every operator is told
        (offline.handled) and the next session gets none.
        """
        yield self.licence()
        for text in ("first", "second"):
            yield defer.ensureDeferred(
                self.reception.leaveMessage(
                    100, "visitor-0001", email="v@example.com", message=text
                )
            )
        op = yield self.operator()
        session, chan = yield self.connectOperator(op)
        pending = yield chan.next(isType("offline.messages"))
        self.assertEqual([m["message"] for m in pending["messages"]], ["first", "second"])
        other = yield self.operator()
        _, otherChan = yield self.connectOperator(other)
        ids = [m["id"] for m in pending["messages"]]
        done = yield defer.ensureDeferred(self.reception.markHandled(session, ids + ids))
        self.assertEqual(done, ids)
        handled = yield otherChan.next(isType("offline.handled"))
        self.assertEqual((handled["ids"], handled["by"]), (ids, session.ref))
        third = yield self.operator()
        _, thirdChan = yield self.connectOperator(third)
        self.assertEqual(thirdChan.ofType("offline.messages"), [])
        again = yield defer.ensureDeferred(self.reception.markHandled(session, ids))
        self.assertEqual(again, [])

    @defer.inlineCallbacks
    def test_transcriptOfOwnChatOnly(self) -> Any:
        """
        A visitor may have their own chat mailed to them (the messages, in
        their language); another visitor's chat is refused.
        """
        op = yield self.operator(nick="anna")
        agent, achan = yield self.connectOperator(op)
        visitor, vchan = yield self.connectVisitor()
        chatId = yield self.activeChat(visitor, vchan, agent, achan, "Where is my parcel?")
        yield agent.send(chatId, "On its way!")
        yield defer.ensureDeferred(
            self.reception.mailTranscript(visitor, chatId, "vera@example.com", "en")
        )
        to, mail = yield self.mail.next()
        self.assertEqual(to, ["vera@example.com"])
        body = mail.get_content()
        self.assertIn("Vera: Where is my parcel?", body)
        self.assertIn("Anna: On its way!", body)
        other, _ = yield self.connectVisitor("visitor-0002")
        e = yield self.assertFailure(
            defer.ensureDeferred(self.reception.mailTranscript(other, chatId, "x@example.com")),
            CoreError,
        )
        self.assertEqual(e.code, "forbidden")


globals().update(bothDialects(ReceptionMixin, "ReceptionTests"))
