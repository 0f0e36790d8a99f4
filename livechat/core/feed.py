"""
L{ChatFeed}: the events of one chat, delivered to one session exactly once
and in sequence order, whatever order the bus brings them in.

An event with the next sequence number is delivered at once; a later one is
held until the gap before it is filled, by the bus or, after C{gapWait}
seconds, from the database.  Events already delivered are dropped.  Resuming
is the same mechanism started at the last sequence the client saw.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from livechat.core import events as E

MAX_PENDING = 500
"""Held events beyond this are dropped and fetched from the database instead."""
FETCH_LIMIT = 500


class ChatFeed:
    _log = Logger()

    def __init__(
        self,
        licence: int,
        chatId: int,
        lastSeq: int,
        deliver: Callable[[dict[str, Any]], None],
        fetch: Callable[[int, int], defer.Deferred[list[Any]]],
        clock: Any,
        gapWait: float,
    ) -> None:
        """
        @param deliver: called with each message, in order.
        @param fetch: C{fetch(afterSeq, limit)} fires with stored events.
        """
        self.licence = licence
        self.chatId = chatId
        self.last = lastSeq
        self._deliver = deliver
        self._fetch = fetch
        self._clock = clock
        self._gapWait = gapWait
        self._pending: dict[int, dict[str, Any]] = {}
        self._fetching = False
        self._timer: Any = None
        self.stopped = False
        self._ready = False
        self._whenReady: list[defer.Deferred[None]] = []

    def start(self) -> defer.Deferred[None]:
        """Deliver what is stored after C{last} (the backlog)."""
        d = self._fetchNow()
        d.addBoth(self._started)
        return self.whenReady()

    def _started(self, result: Any) -> None:
        self._ready = True
        waiting, self._whenReady = self._whenReady, []
        for d in waiting:
            d.callback(None)

    @property
    def ready(self) -> bool:
        """Whether the backlog given at start has been delivered."""
        return self._ready

    def whenReady(self) -> defer.Deferred[None]:
        """Fires once the backlog given at start has been delivered."""
        if self._ready:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._whenReady.append(d)
        return d

    def offer(self, message: dict[str, Any]) -> None:
        """Take a message from the bus (or the backlog)."""
        if self.stopped:
            return
        seq = message.get("sequence")
        if seq is None:
            self._deliver(message)
            return
        if seq <= self.last or seq in self._pending:
            return
        if seq == self.last + 1:
            self._emit(message)
            self._drain()
            return
        if len(self._pending) >= MAX_PENDING:
            self._pending.clear()
            self._fetchNow()
            return
        self._pending[seq] = message
        self._scheduleGapFill()

    def _emit(self, message: dict[str, Any]) -> None:
        self.last = message["sequence"]
        self._deliver(message)

    def _drain(self) -> None:
        while not self.stopped and self.last + 1 in self._pending:
            self._emit(self._pending.pop(self.last + 1))
        if not self._pending and self._timer is not None and self._timer.active():
            self._timer.cancel()
            self._timer = None

    def _scheduleGapFill(self) -> None:
        if self._fetching or (self._timer is not None and self._timer.active()):
            return
        self._timer = self._clock.callLater(self._gapWait, self._fetchNow)

    def _fetchNow(self) -> defer.Deferred[None]:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._fetching or self.stopped:
            return defer.succeed(None)
        self._fetching = True
        return defer.ensureDeferred(self._fetchLoop())

    async def _fetchLoop(self) -> None:
        try:
            while not self.stopped:
                before = self.last
                stored = await self._fetch(self.last, FETCH_LIMIT)
                for event in stored:
                    if self.stopped:
                        return
                    if event.seq == self.last + 1:
                        self._emit(E.wire(self.licence, event))
                        self._pending.pop(event.seq, None)
                self._drain()
                if len(stored) < FETCH_LIMIT or self.last == before:
                    break
        except Exception:
            self._log.failure(
                "fetching events of chat {chat} (licence {licence})",
                chat=self.chatId,
                licence=self.licence,
            )
        finally:
            self._fetching = False
        if self._pending and not self.stopped:
            self._scheduleGapFill()

    def refresh(self) -> None:
        """Fetch what is stored after C{last} (after the bus lost messages)."""
        self._fetchNow()

    def stop(self) -> None:
        self.stopped = True
        self._pending.clear()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
