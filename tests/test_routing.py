"""MemoryRouter on its own: choice, capacity, queue, groups."""

from __future__ import annotations

from typing import Any

from twisted.internet import task
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from livechat.core.routing import Availability, MemoryRouter, RouteRequest
from livechat.interfaces import IRouter
from livechat.model import OperatorStatus

ON = OperatorStatus.ONLINE


def avail(
    op: int, capacity: int = 2, status: OperatorStatus = ON, groups: Any = ()
) -> Availability:
    return Availability(operator=op, status=status, capacity=capacity, groups=frozenset(groups))


class RouterTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.router = MemoryRouter(self.clock)

    def route(self, chat: int, **kw: Any) -> Any:
        return self.successResultOf(self.router.route(1, RouteRequest(chat=chat, **kw)))

    def test_interface(self) -> None:
        """MemoryRouter provides IRouter."""
        verifyObject(IRouter, self.router)

    def test_fillsEvenly(self) -> None:
        """Chats spread over operators, never above capacity, the rest queued in order."""
        for op in (1, 2, 3):
            self.clock.advance(1)
            self.successResultOf(self.router.updateOperator(1, avail(op, capacity=2)))
        results = [self.route(chat) for chat in range(10)]
        owners = [r.operator for r in results]
        self.assertEqual(owners[:6], [1, 2, 3, 1, 2, 3])
        self.assertEqual(owners[6:], [None] * 4)
        self.assertEqual([r.position for r in results[6:]], [1, 2, 3, 4])
        for op in (1, 2, 3):
            self.assertEqual(len(self.successResultOf(self.router.load(1, op))), 2)

    def test_releaseGivesHeadOfQueue(self) -> None:
        """A freed slot takes the first waiting chat."""
        self.successResultOf(self.router.updateOperator(1, avail(1, capacity=1)))
        self.route(10)
        self.route(11)
        self.route(12)
        made = self.successResultOf(self.router.release(1, 1, 10))
        self.assertEqual([(a.chat, a.operator) for a in made], [(11, 1)])
        self.assertEqual(self.successResultOf(self.router.queue(1)), [12])

    def test_comingOnlineDrainsQueue(self) -> None:
        """An operator coming online takes waiting chats up to capacity."""
        for chat in (1, 2, 3):
            self.assertIsNone(self.route(chat).operator)
        made = self.successResultOf(self.router.updateOperator(1, avail(5, capacity=2)))
        self.assertEqual([a.chat for a in made], [1, 2])

    def test_notAvailable(self) -> None:
        """AWAY, OFFLINE, INVISIBLE, VOICE_AVAILABLE and capacity 0 take nothing."""
        for op, status in enumerate(
            (OperatorStatus.AWAY, OperatorStatus.INVISIBLE, OperatorStatus.VOICE_AVAILABLE), 1
        ):
            self.successResultOf(self.router.updateOperator(1, avail(op, status=status)))
        self.successResultOf(self.router.updateOperator(1, avail(9, capacity=0)))
        self.assertIsNone(self.route(1).operator)

    def test_groupsExcludePrefer(self) -> None:
        """Group requests go to members; excluded operators are skipped; prefer wins."""
        self.successResultOf(self.router.updateOperator(1, avail(1, groups=[7])))
        self.successResultOf(self.router.updateOperator(1, avail(2)))
        self.assertEqual(self.route(1, group=7).operator, 1)
        self.assertIsNone(self.route(2, group=7, exclude=frozenset({1})).operator)
        self.assertEqual(self.route(3, prefer=1).operator, 1)
        self.assertIsNone(self.route(4, group=8).operator)

    def test_reserveIgnoresCapacity(self) -> None:
        """reserve() counts a chat even above the limit (a transfer to that operator)."""
        self.successResultOf(self.router.updateOperator(1, avail(1, capacity=1)))
        self.route(1)
        self.successResultOf(self.router.reserve(1, 1, 2))
        self.assertEqual(self.successResultOf(self.router.load(1, 1)), [1, 2])
        self.assertIsNone(self.route(3).operator)

    def test_removeOperator(self) -> None:
        """Removing an operator returns their chats and they get no more."""
        self.successResultOf(self.router.updateOperator(1, avail(1)))
        self.route(1)
        self.assertEqual(self.successResultOf(self.router.removeOperator(1, 1)), [1])
        self.assertIsNone(self.route(2).operator)

    def test_licencesSeparate(self) -> None:
        """One licence's operators never get another licence's chats."""
        self.successResultOf(self.router.updateOperator(2, avail(1)))
        self.assertIsNone(self.route(1).operator)
