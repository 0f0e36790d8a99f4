"""ChatFeed: exactly once, in order, gaps filled from storage (task.Clock)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.trial import unittest

from livechat.core.feed import MAX_PENDING, ChatFeed
from livechat.storage.chats import StoredEvent


def stored(seq: int) -> StoredEvent:
    return StoredEvent(
        chat_id=7,
        seq=seq,
        created_at=seq,
        originator="v:x",
        role="CONSUMER",
        name="V",
        event={"type": "ContentEvent", "message": f"m{seq}"},
    )


def wire(seq: int) -> dict[str, Any]:
    return {
        "type": "chat.event",
        "chatId": 7,
        "sequence": seq,
        "event": {"type": "ContentEvent", "message": f"m{seq}"},
    }


class FeedTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.delivered: list[int | None] = []
        self.database: list[StoredEvent] = []
        self.fetches: list[int] = []

    def fetch(self, after: int, limit: int) -> defer.Deferred[list[StoredEvent]]:
        self.fetches.append(after)
        return defer.succeed([e for e in self.database if e.seq > after][:limit])

    def feed(self, last: int = 0) -> ChatFeed:
        return ChatFeed(
            7,
            7,
            last,
            lambda m: self.delivered.append(m.get("sequence")),
            self.fetch,
            self.clock,
            gapWait=0.25,
        )

    def test_inOrder(self) -> None:
        """Consecutive events go straight through; duplicates are dropped."""
        feed = self.feed()
        for seq in (1, 2, 2, 1, 3):
            feed.offer(wire(seq))
        self.assertEqual(self.delivered, [1, 2, 3])
        self.assertEqual(self.fetches, [])

    def test_reorders(self) -> None:
        """Events that arrive out of order are held and delivered in order."""
        feed = self.feed()
        for seq in (2, 3, 1):
            feed.offer(wire(seq))
        self.assertEqual(self.delivered, [1, 2, 3])
        self.clock.advance(1)
        self.assertEqual(self.fetches, [], "the gap closed by itself: no fetch")

    def test_gapFilledFromStorage(self) -> None:
        """A gap the bus never fills is fetched after gapWait, not before."""
        self.database = [stored(s) for s in (1, 2, 3, 4)]
        feed = self.feed()
        feed.offer(wire(1))
        feed.offer(wire(4))
        self.clock.advance(0.24)
        self.assertEqual(self.delivered, [1])
        self.clock.advance(0.01)
        self.assertEqual(self.delivered, [1, 2, 3, 4])
        self.assertEqual(self.fetches, [1])

    def test_chatStateNotNumbered(self) -> None:
        """Typing events have no sequence and pass at once, even during a gap."""
        feed = self.feed()
        feed.offer(wire(2))
        feed.offer({"type": "chat.event", "chatId": 7, "event": {"type": "ChatStateEvent"}})
        self.assertEqual(self.delivered, [None])

    def test_backlogThenLive(self) -> None:
        """start() delivers what was stored after the resume point; live events follow once."""
        self.database = [stored(s) for s in range(1, 6)]
        feed = self.feed(last=2)
        d = feed.start()
        self.assertTrue(d.called)
        feed.offer(wire(5))
        feed.offer(wire(6))
        self.assertEqual(self.delivered, [3, 4, 5, 6])

    def test_tooManyPending(self) -> None:
        """Past MAX_PENDING held events, the feed drops them and reads storage instead."""
        self.database = [stored(s) for s in range(1, MAX_PENDING + 10)]
        feed = self.feed()
        for seq in range(3, MAX_PENDING + 4):
            feed.offer(wire(seq))
        self.assertEqual(self.delivered, list(range(1, MAX_PENDING + 10)))

    def test_stop(self) -> None:
        """A stopped feed delivers nothing and leaves no timer."""
        feed = self.feed()
        feed.offer(wire(3))
        feed.stop()
        feed.offer(wire(1))
        self.assertEqual(self.delivered, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])
