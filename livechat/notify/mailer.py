"""
Outgoing mail through SMTP (C{twisted.mail}), with the templates of the
seed: C{mail/left_msg_en.lcs} and C{mail/left_msg_pl.lcs} (a message a
visitor left while nobody took chats) and C{mail/transcript_*.lcs} (a chat
sent to the visitor at their request).

A template is a C{Subject:} line, a blank line and the body, with
C{$name} placeholders (L{string.Template}).  Sending never blocks the
reactor and is retried with a growing delay; a mail that cannot be sent in
the end is logged, and the caller's Deferred fails.
"""

from __future__ import annotations

import email.message
import email.utils
import string
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

import attr
from twisted.internet import defer, task
from twisted.logger import Logger

TEMPLATES = ("left_msg", "transcript")
LANGUAGES = ("en", "pl")


def loadTemplates() -> dict[tuple[str, str], tuple[str, str]]:
    """
    Read every template: C{{(name, language): (subject, body)}}.  This reads
    files: call it off the reactor thread (C{deferToThread}) or at start-up.
    """
    found = {}
    folder = resources.files("livechat.notify").joinpath("mail")
    for name in TEMPLATES:
        for language in LANGUAGES:
            text = folder.joinpath(f"{name}_{language}.lcs").read_text(encoding="utf-8")
            head, _, body = text.partition("\n\n")
            if not head.startswith("Subject:"):
                raise ValueError(f"mail/{name}_{language}.lcs must start with a Subject: line")
            found[(name, language)] = (head[len("Subject:") :].strip(), body)
    return found


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class MailSettings:
    host: str = "localhost"
    port: int = 25
    user: str = ""
    password: str = ""
    sender: str = "livechat@localhost"
    starttls: bool = False
    attempts: int = 4
    firstRetry: float = 30.0
    timeout: float = 60.0

    @classmethod
    def fromConfig(cls, config: Any) -> MailSettings:
        return cls(
            host=config["SMTP_HOST"],
            port=config["SMTP_PORT"],
            user=config["SMTP_USER"],
            password=config["SMTP_PASSWORD"],
            sender=config["SMTP_FROM"],
            starttls=config["SMTP_STARTTLS"],
        )


def _smtpSend(settings: MailSettings, reactor: Any, to: list[str], message: bytes) -> Any:
    from twisted.mail.smtp import sendmail

    domain = settings.sender.rpartition("@")[2] or "localhost"
    return sendmail(
        settings.host,
        settings.sender,
        to,
        message,
        senderDomainName=domain,
        port=settings.port,
        reactor=reactor,
        username=settings.user or None,
        password=settings.password or None,
        requireAuthentication=bool(settings.user),
        requireTransportSecurity=settings.starttls,
    )


class Mailer:
    """
    Renders templates and sends mail.

    @param send: C{send(settings, reactor, to, message bytes)} returning a
        Deferred; SMTP by default (tests may record instead).
    """

    _log = Logger()

    def __init__(
        self,
        settings: MailSettings,
        reactor: Any,
        templates: dict[tuple[str, str], tuple[str, str]] | None = None,
        send: Callable[..., Any] = _smtpSend,
    ) -> None:
        self.settings = settings
        self._reactor = reactor
        self.templates = templates
        self._send = send
        self._inflight: set[defer.Deferred[Any]] = set()

    def render(self, template: str, language: str, /, **fields: Any) -> tuple[str, str]:
        """The subject and body of a template filled with C{fields}."""
        if self.templates is None:
            raise RuntimeError("mail templates not loaded yet")
        if language not in LANGUAGES:
            language = "en"
        subject, body = self.templates[(template, language)]
        values = {k: str(v) for k, v in fields.items()}
        return (
            string.Template(subject).safe_substitute(values).replace("\n", " "),
            string.Template(body).safe_substitute(values),
        )

    def compose(
        self, to: Iterable[str], subject: str, body: str, replyTo: str = ""
    ) -> email.message.EmailMessage:
        message = email.message.EmailMessage()
        message["From"] = self.settings.sender
        message["To"] = ", ".join(to)
        message["Subject"] = subject
        message["Date"] = email.utils.formatdate(self._reactor.seconds(), usegmt=True)
        domain = self.settings.sender.rpartition("@")[2] or "localhost"
        message["Message-ID"] = email.utils.make_msgid("livechat", domain)
        if replyTo:
            message["Reply-To"] = replyTo
        message.set_content(body)
        return message

    def send(self, to: Iterable[str], subject: str, body: str, replyTo: str = "") -> Any:
        """
        Send one mail, trying up to C{attempts} times (30 s, 60 s, 120 s
        apart by default).  Fires with C{None} once the server took it.
        """
        recipients = [a for a in to if a]
        if not recipients:
            return defer.fail(ValueError("a mail needs a recipient"))
        data = self.compose(recipients, subject, body, replyTo).as_bytes()
        d = defer.ensureDeferred(self._sendWithRetries(recipients, subject, data))
        self._inflight.add(d)

        def done(result: Any) -> Any:
            self._inflight.discard(d)
            return result

        return d.addBoth(done)

    async def _sendWithRetries(self, to: list[str], subject: str, data: bytes) -> None:
        delay = self.settings.firstRetry
        for attempt in range(1, self.settings.attempts + 1):
            try:
                sending = defer.maybeDeferred(self._send, self.settings, self._reactor, to, data)
                sending.addTimeout(self.settings.timeout, self._reactor)
                await sending
                self._log.info("mail {subject!r} sent to {to}", subject=subject, to=", ".join(to))
                return
            except defer.CancelledError:
                self._log.warn(
                    "mail {subject!r} to {to} given up (shutting down)",
                    subject=subject,
                    to=", ".join(to),
                )
                raise
            except Exception as e:
                if attempt == self.settings.attempts:
                    self._log.error(
                        "mail {subject!r} to {to} not sent after {n} attempts: {error}",
                        subject=subject,
                        to=", ".join(to),
                        n=attempt,
                        error=e,
                    )
                    raise
                self._log.warn(
                    "mail {subject!r} to {to} failed ({error}); retrying in {delay:.0f} s",
                    subject=subject,
                    to=", ".join(to),
                    error=e,
                    delay=delay,
                )
                await task.deferLater(self._reactor, delay)
                delay *= 2

    def whenIdle(self) -> defer.Deferred[Any]:
        """Fires when every mail under way has been sent or given up."""
        return defer.DeferredList(list(self._inflight), consumeErrors=True)

    def stop(self) -> None:
        """Give up the mails still being tried (at shutdown); each is logged."""
        for d in list(self._inflight):
            d.cancel()
