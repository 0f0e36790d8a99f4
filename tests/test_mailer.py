"""
livechat.notify.mailer: the seed's templates in English and Polish, the
message it composes, retries on task.Clock, giving up at shutdown, and a
real delivery to twisted.mail's ESMTP server on port 0.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from livechat.notify.mailer import LANGUAGES, TEMPLATES, Mailer, MailSettings, loadTemplates
from tests.support.web import MailRecorder, SMTPReceiver


class TemplateTests(unittest.TestCase):
    def test_everyTemplateInEveryLanguage(self) -> None:
        """left_msg and transcript exist in en and pl, each with a subject and a body."""
        templates = loadTemplates()
        self.assertEqual(
            sorted(templates), sorted((t, lang) for t in TEMPLATES for lang in LANGUAGES)
        )
        for (name, language), (subject, body) in templates.items():
            self.assertTrue(subject, (name, language))
            self.assertIn("$", body, (name, language))

    def test_render(self) -> None:
        """Fields fill the placeholders; unknown languages fall back to English."""
        mailer = Mailer(MailSettings(), task.Clock(), loadTemplates())
        subject, body = mailer.render(
            "left_msg",
            "pl",
            reason_text="biuro było zamknięte",
            name="Vera",
            email="v@x.example",
            url="-",
            time="2027-01-01 10:00:00",
            group="-",
            visitor_id="v1",
            message="Hej",
            licence=100,
            reply_hint="",
        )
        self.assertEqual(subject, "Odwiedzający zostawił wiadomość (biuro było zamknięte)")
        self.assertIn("Hej", body)
        subject, _ = mailer.render(
            "transcript", "de", site="Acme", name="Vera", time="t", transcript=""
        )
        self.assertEqual(subject, "Your chat with Acme")

    def test_compose(self) -> None:
        """From, To, Subject, Date, Message-ID and Reply-To; UTF-8 text."""
        clock = task.Clock()
        clock.advance(1_800_000_000)
        mailer = Mailer(MailSettings(sender="chat@example.com"), clock, loadTemplates())
        message = mailer.compose(
            ["a@example.com", "b@example.com"], "Zażółć", "Gęślą jaźń", replyTo="v@example.com"
        )
        self.assertEqual(message["From"], "chat@example.com")
        self.assertEqual(message["To"], "a@example.com, b@example.com")
        self.assertEqual(message["Reply-To"], "v@example.com")
        self.assertEqual(message["Subject"], "Zażółć")
        self.assertIn("2027", message["Date"])
        self.assertTrue(message["Message-ID"].endswith("@example.com>"))
        self.assertEqual(message.get_content(), "Gęślą jaźń\n")


class SendingTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.sent = MailRecorder()
        self.mailer = Mailer(
            MailSettings(attempts=3, firstRetry=30), self.clock, loadTemplates(), self.sent
        )

    @defer.inlineCallbacks
    def test_retriesThenGivesUp(self) -> Any:
        """Tried at 0, 30 and 90 s (doubling); after the last failure the Deferred fails."""
        self.sent.fail = 3
        d = self.mailer.send(["a@example.com"], "s", "b")
        yield self.sent.attempt(1)
        self.clock.advance(29.9)
        self.assertEqual(self.sent.attempts, 1)
        self.clock.advance(0.1)
        yield self.sent.attempt(2)
        self.clock.advance(60)
        yield self.sent.attempt(3)
        yield self.assertFailure(d, ConnectionRefusedError)
        self.assertEqual(self.sent.mails, [])

    @defer.inlineCallbacks
    def test_stopGivesUpAtOnce(self) -> Any:
        """At shutdown a mail waiting for its retry is given up; nothing is left waiting."""
        self.sent.fail = 1
        d = self.mailer.send(["a@example.com"], "s", "b")
        yield self.sent.attempt(1)
        self.mailer.stop()
        yield self.assertFailure(d, defer.CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_noRecipient(self) -> None:
        """A mail without a recipient is refused."""
        return self.assertFailure(self.mailer.send([""], "s", "b"), ValueError)

    @defer.inlineCallbacks
    def test_realSMTP(self) -> Any:
        """Through twisted.mail's client to a real ESMTP server on 127.0.0.1."""
        smtp = SMTPReceiver(self)
        mailer = Mailer(
            MailSettings(host="127.0.0.1", port=smtp.portNumber, sender="chat@example.com"),
            reactor,
            loadTemplates(),
        )
        yield mailer.send(
            ["desk@example.com"], "Hello", "Zażółć gęślą jaźń\n.\nend", replyTo="v@example.com"
        )
        mail = yield smtp.next()
        self.assertEqual((mail.sender, mail.recipients), ("chat@example.com", ["desk@example.com"]))
        self.assertEqual(mail.message["Subject"], "Hello")
        self.assertEqual(mail.message.get_content(), "Zażółć gęślą jaźń\n.\nend\n")
