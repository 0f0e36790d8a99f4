"""
The front desk of a licence: whether it takes chats now, the messages
visitors leave when it does not, and transcripts mailed to visitors.

Presence has two levels, as in the seed's live support:

 1. Is support provided now?  Office hours per group (a weekly schedule in
    a time zone, licence setting C{office.hours[.<group>]}) and a manual
    switch (C{office.switch[.<group>]}: auto, open, closed).  Outside hours a
    chat cannot be requested; the visitor can leave a message.
 2. Is an operator available?  Whether an operator who takes chats (in the
    group, when one is asked for) is online, from the core's presence.
    When nobody is, the request is still taken: it waits in the queue, and
    the visitor may leave a message instead.

Left messages are stored (the licence's C{offline_messages}), told to the
operators online (C{offline.message} on the agents' channel), mailed to
the licence's address, and given to every operator session at its start
(C{offline.messages}) until an operator marks them handled.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from twisted.logger import Logger

from livechat.core.errors import CoreError
from livechat.core.hub import Core, OperatorSession, VisitorSession, agentsChannel, transcriptText
from livechat.licencesettings import SettingsCache
from livechat.model import ChatKind
from livechat.storage.accounts import formatTime

EMAIL = re.compile(r"^[^@\s,<>]+@[^@\s,<>]+\.[^@\s,<>]+$")
MAX_URL = 2000
PENDING_LIMIT = 50
"""Left messages given to an operator at the start of a session, newest."""


def checkEmail(value: Any, required: bool) -> str:
    if not isinstance(value, str):
        raise CoreError("bad_request", "email is text")
    value = value.strip()
    if not value:
        if required:
            raise CoreError("bad_request", "an e-mail address is required")
        return ""
    if len(value) > 254 or not EMAIL.match(value):
        raise CoreError("bad_request", "that is not an e-mail address")
    return value


def _text(value: Any, name: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CoreError("bad_request", f"{name} is text")
    if len(value) > limit:
        raise CoreError("too_large", f"{name} has at most {limit} characters")
    return value.strip()


class Reception:
    """
    @param mailer: a L{livechat.notify.mailer.Mailer}, or C{None} to send no
        mail (messages are still stored and shown).
    """

    _log = Logger()

    def __init__(self, core: Core, settings: SettingsCache, mailer: Any = None) -> None:
        self.core = core
        self.settings = settings
        self.mailer = mailer
        core.operatorStartHooks.append(self.deliverPending)

    # -- is anyone there? -----------------------------------------------------------

    async def _forGroup(self, licence: int, name: str, group: int | None) -> Any:
        if group is not None:
            value = await self.settings.getOptional(licence, f"{name}.{group}")
            if value is not None:
                return value
        return await self.settings.get(licence, name)

    async def status(self, licence: int, group: int | None = None) -> dict[str, Any]:
        """
        The two levels of presence for a licence (and group):
        C{{"open": office hours say yes, "online": an operator who takes chats
        is there, "reason": "hours" | "switch" | "", "nextChange": ms or null}}.
        """
        switch = await self._forGroup(licence, "office.switch", group)
        schedule = await self._forGroup(licence, "office.hours", group)
        now = self.core.clock.seconds()
        nextChange = None
        if switch == "closed":
            isOpen, reason = False, "switch"
        elif switch == "open" or schedule is None:
            isOpen, reason = True, ""
        else:
            isOpen = schedule.isOpen(now)
            reason = "" if isOpen else "hours"
            change = schedule.nextChange(now)
            nextChange = None if change is None else int(change * 1000)
        online = any(
            info.canTakeChats and (group is None or group in info.groups)
            for info in await self.core.presence.operators(licence)
        )
        return {
            "open": isOpen,
            "online": online,
            "reason": reason,
            "nextChange": nextChange,
            "group": group,
        }

    async def requestChat(
        self,
        session: VisitorSession,
        *,
        name: str = "",
        email: str = "",
        group: int | None = None,
        message: str = "",
    ) -> int:
        """A chat request, refused outside office hours (leave a message then)."""
        status = await self.status(session.licence, group)
        if not status["open"]:
            raise CoreError("unavailable", "outside office hours: leave a message instead")
        email = checkEmail(email, required=False)
        return int(await session.requestChat(name=name, email=email, group=group, message=message))

    # -- messages left ------------------------------------------------------------------

    async def leaveMessage(
        self,
        licence: int,
        visitorId: str,
        *,
        address: str = "",
        name: Any = "",
        email: Any = "",
        message: Any = "",
        group: Any = None,
        url: Any = "",
        language: Any = "en",
    ) -> dict[str, Any]:
        """
        Store a visitor's message, tell the operators online, mail it to the
        licence (in the background).  Fires with the stored message (JSON).
        """
        text = _text(message, "message", self.core.settings.maxMessageLength)
        if not text:
            raise CoreError("bad_request", "a message cannot be empty")
        fields = {
            "visitor_id": visitorId,
            "name": _text(name, "name", 200),
            "email": checkEmail(email, required=True),
            "message": text,
            "url": _text(url, "url", MAX_URL),
            "address": address[:64],
            "language": language if language in ("en", "pl") else "en",
        }
        if group is not None and (not isinstance(group, int) or isinstance(group, bool)):
            raise CoreError("bad_request", "group is a number")
        store = self.core.store.forLicence(licence)
        if group is not None and not await store.groupExists(group):
            raise CoreError("not_found", f"no group {group}")
        status = await self.status(licence, group)
        fields["group_id"] = group
        fields["reason"] = (
            "closed" if not status["open"] else "offline" if not status["online"] else "online"
        )
        stored = await store.leaveMessage(**fields)
        self.core._publish(
            agentsChannel(licence), {"type": "offline.message", "message": stored.toJSON()}
        )
        self._log.info(
            "licence {licence}: visitor {visitor} left message {id} ({reason})",
            licence=licence,
            visitor=visitorId,
            id=stored.id,
            reason=stored.reason,
        )
        if self.mailer is not None:
            self.core.background(self._mailLeft(licence, stored), "mailing a left message")
        return stored.toJSON()

    async def _recipients(self, licence: int) -> list[str]:
        configured = await self.settings.get(licence, "mail.offline_to")
        if configured:
            return list(configured)
        return [
            op.operator_id
            for op in await self.core.store.listOperators(licence)
            if op.is_admin and not op.disabled and "@" in op.operator_id
        ]

    async def _mailLeft(self, licence: int, stored: Any) -> None:
        to = await self._recipients(licence)
        if not to:
            self._log.warn(
                "licence {licence}: nobody to mail left message {id} to "
                "(set mail.offline_to or give the licence an administrator)",
                licence=licence,
                id=stored.id,
            )
            return
        info = await self.settings.licence(licence)
        language = info.language if info is not None and info.language in ("en", "pl") else "en"
        reasons = {
            "en": {
                "closed": "you were closed",
                "offline": "nobody was available",
                "online": "your operators were busy",
            },
            "pl": {
                "closed": "biuro było zamknięte",
                "offline": "nikt nie był dostępny",
                "online": "konsultanci byli zajęci",
            },
        }
        subject, body = self.mailer.render(
            "left_msg",
            language,
            reason_text=reasons[language].get(stored.reason, stored.reason),
            name=stored.name or "-",
            email=stored.email,
            url=stored.url or "-",
            time=formatTime(stored.created_at),
            group="-" if stored.group_id is None else stored.group_id,
            visitor_id=stored.visitor_id,
            message=stored.message,
            licence=licence,
            reply_hint=f" ({stored.email})" if stored.email else "",
        )
        await self.mailer.send(to, subject, body, replyTo=stored.email)
        await self.core.store.forLicence(licence).markOfflineMailed(stored.id)

    async def deliverPending(self, session: OperatorSession) -> None:
        """At an operator session's start: the left messages not yet handled."""
        try:
            pending = await self.core.store.forLicence(session.licence).offlineMessages(
                True, PENDING_LIMIT
            )
        except Exception:
            self._log.failure("reading left messages of licence {licence}", licence=session.licence)
            return
        if pending:
            session.deliver({"type": "offline.messages", "messages": [m.toJSON() for m in pending]})

    async def markHandled(self, session: OperatorSession, messageIds: Iterable[Any]) -> list[int]:
        """An operator has dealt with left messages; every operator is told."""
        ids = list(messageIds)
        if not ids or len(ids) > 200 or not all(isinstance(i, int) and i > 0 for i in ids):
            raise CoreError("bad_request", "give 1 to 200 message ids")
        done = await self.core.store.forLicence(session.licence).markOfflineHandled(
            ids, session.operator.id
        )
        if done:
            self.core._publish(
                agentsChannel(session.licence),
                {"type": "offline.handled", "ids": done, "by": session.ref},
            )
        return list(done)

    # -- transcripts --------------------------------------------------------------------

    async def mailTranscript(
        self, session: VisitorSession, chatId: Any, email: Any, language: Any = "en"
    ) -> None:
        """
        Mail a chat of the visitor's own to the address they give (their
        request).  Fires once the mail is under way.
        """
        if self.mailer is None:
            raise CoreError("unavailable", "this server sends no mail")
        address = checkEmail(email, required=True)
        if not isinstance(chatId, int) or isinstance(chatId, bool):
            raise CoreError("bad_request", "chatId is a number")
        store = self.core.store.forLicence(session.licence)
        chat = await store.getChat(chatId)
        if chat is None or chat.kind is not ChatKind.VISITOR:
            raise CoreError("not_found", f"no chat {chatId}")
        if chat.visitor_id != session.visitorId:
            raise CoreError("forbidden", f"chat {chatId} is not yours")
        events = await store.transcript(chatId)
        info = await self.settings.licence(session.licence)
        site = (info.name or info.web_page) if info is not None else ""
        lang = language if language in ("en", "pl") else "en"
        subject, body = self.mailer.render(
            "transcript",
            lang,
            site=site or "us",
            name=chat.name or "",
            time=formatTime(chat.created_at),
            transcript=transcriptText(events),
        )
        self.core.background(self._sendTranscript(address, subject, body), "mailing a transcript")

    async def _sendTranscript(self, address: str, subject: str, body: str) -> None:
        await self.mailer.send([address], subject, body)
