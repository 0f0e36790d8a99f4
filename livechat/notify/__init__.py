"""
Sinks of domain events (L{INotifier}): the seed's events channel log, a
recorder for tests, and a fan-out.  The HTTP webhooks live in this package
too once they land.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from livechat.interfaces import INotifier
from livechat.storage.chats import DomainEvent


@implementer(INotifier)
class RecordingNotifier:
    """Keeps every event it is given: C{events} is a list of (licence, DomainEvent)."""

    def __init__(self) -> None:
        self.events: list[tuple[int, DomainEvent]] = []
        self._waiting: list[tuple[str, int, defer.Deferred[DomainEvent]]] = []

    def notify(self, licence: int, event: DomainEvent) -> None:
        self.events.append((licence, event))
        waiting, self._waiting = self._waiting, []
        for name, count, d in waiting:
            if len(self.named(name)) >= count:
                d.callback(self.named(name)[count - 1][1])
            else:
                self._waiting.append((name, count, d))

    def wait(self, name: str, count: int = 1) -> defer.Deferred[DomainEvent]:
        """Fires with the C{count}th event called C{name}, once there is one."""
        if len(self.named(name)) >= count:
            return defer.succeed(self.named(name)[count - 1][1])
        d: defer.Deferred[DomainEvent] = defer.Deferred()
        self._waiting.append((name, count, d))
        return d

    def named(self, name: str) -> list[tuple[int, DomainEvent]]:
        return [(licence, e) for licence, e in self.events if e.name == name]


@implementer(INotifier)
class EventsLogNotifier:
    """Writes each event to the seed's events<date>.log when LOG_EVENTS is on."""

    def __init__(self, logs: Any) -> None:
        self._logs = logs

    def notify(self, licence: int, event: DomainEvent) -> None:
        if self._logs.enabled("events"):
            self._logs.write(
                "events",
                "{licence} {name} {fields}",
                licence=licence,
                name=event.name,
                fields=json.dumps(event.fields, sort_keys=True, ensure_ascii=False),
            )


@implementer(INotifier)
class FanoutNotifier:
    """Gives each event to every notifier; one failing does not stop the others."""

    _log = Logger()

    def __init__(self, notifiers: Iterable[Any]) -> None:
        self.notifiers = list(notifiers)

    def notify(self, licence: int, event: DomainEvent) -> None:
        for notifier in self.notifiers:
            try:
                notifier.notify(licence, event)
            except Exception:
                self._log.failure("notifier {n!r} failed on {event}", n=notifier, event=event.name)
