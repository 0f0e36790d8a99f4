"""
Presence: who is online and who is on the site — soft state, never the
source of truth for anything stored.

L{MemoryPresence} keeps it in this process (a single node); the cluster's
Redis presence keeps the same things in Redis with expiry.  Both implement
L{livechat.interfaces.IPresence} and every method fires a Deferred.
"""

from __future__ import annotations

from typing import Any

import attr
from twisted.internet import defer
from zope.interface import implementer

from livechat.core.visitors import VisitorRegistry, VisitorState
from livechat.interfaces import IPresence
from livechat.model import OperatorStatus, operatorRef


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class OperatorInfo:
    """An operator as the licence sees them while they are connected."""

    operator: int
    nick: str
    name: str
    operator_id: str
    """The seed's LIVECHAT ID (e-mail)."""
    status: OperatorStatus
    capacity: int
    groups: frozenset[int] = frozenset()

    @property
    def canTakeChats(self) -> bool:
        return self.status.takesChats and self.capacity > 0

    def toJSON(self) -> dict[str, Any]:
        return {
            "id": operatorRef(self.operator),
            "operatorId": self.operator_id,
            "nick": self.nick,
            "name": self.name,
            "status": int(self.status),
        }

    def toRecord(self) -> dict[str, Any]:
        """Everything, JSON-able (for shared storage)."""
        return {
            "operator": self.operator,
            "nick": self.nick,
            "name": self.name,
            "operator_id": self.operator_id,
            "status": int(self.status),
            "capacity": self.capacity,
            "groups": sorted(self.groups),
        }

    @classmethod
    def fromRecord(cls, record: dict[str, Any]) -> OperatorInfo:
        return cls(
            operator=int(record["operator"]),
            nick=record["nick"],
            name=record["name"],
            operator_id=record["operator_id"],
            status=OperatorStatus(record["status"]),
            capacity=int(record["capacity"]),
            groups=frozenset(record["groups"]),
        )


@implementer(IPresence)
class MemoryPresence:
    """Presence of a single node."""

    def __init__(self, clock: Any, visitorIdle: float, maxVisitorsPerLicence: int = 20000) -> None:
        self._clock = clock
        self._operators: dict[int, dict[int, tuple[OperatorInfo, set[str]]]] = {}
        self._online: dict[int, bool] = {}
        self._visitors = VisitorRegistry(clock, visitorIdle, maxVisitorsPerLicence)
        self._absent: dict[tuple[int, int], float] = {}
        self._leases: dict[str, int] = {}

    # -- operators -----------------------------------------------------------------

    def operatorUp(self, licence: int, info: OperatorInfo, node: str) -> defer.Deferred[None]:
        ops = self._operators.setdefault(licence, {})
        nodes = ops[info.operator][1] if info.operator in ops else set()
        nodes.add(node)
        ops[info.operator] = (info, nodes)
        return defer.succeed(None)

    def operatorDown(self, licence: int, operator: int, node: str) -> defer.Deferred[bool]:
        ops = self._operators.get(licence, {})
        entry = ops.get(operator)
        if entry is None:
            return defer.succeed(True)
        entry[1].discard(node)
        if entry[1]:
            return defer.succeed(False)
        del ops[operator]
        if not ops:
            self._operators.pop(licence, None)
        return defer.succeed(True)

    def operator(self, licence: int, operator: int) -> defer.Deferred[OperatorInfo | None]:
        entry = self._operators.get(licence, {}).get(operator)
        return defer.succeed(entry[0] if entry else None)

    def operators(self, licence: int) -> defer.Deferred[list[OperatorInfo]]:
        infos = [info for info, _ in self._operators.get(licence, {}).values()]
        return defer.succeed(sorted(infos, key=lambda i: i.nick.casefold()))

    def setOnline(self, licence: int, online: bool) -> defer.Deferred[bool]:
        changed = self._online.get(licence, False) != online
        if online:
            self._online[licence] = True
        else:
            self._online.pop(licence, None)
        return defer.succeed(changed)

    # -- visitors ------------------------------------------------------------------

    def visitor(self, licence: int, visitorId: str) -> defer.Deferred[VisitorState | None]:
        return defer.succeed(self._visitors.get(licence, visitorId))

    def putVisitor(self, state: VisitorState) -> defer.Deferred[list[VisitorState]]:
        return defer.succeed(self._visitors.add(state))

    def removeVisitor(self, licence: int, visitorId: str) -> defer.Deferred[VisitorState | None]:
        return defer.succeed(self._visitors.remove(licence, visitorId))

    def visitors(self, licence: int) -> defer.Deferred[list[VisitorState]]:
        return defer.succeed(self._visitors.all(licence))

    def expiredVisitors(self) -> defer.Deferred[list[VisitorState]]:
        expired = list(self._visitors.expired())
        for state in expired:
            self._visitors.remove(state.licence, state.id)
        return defer.succeed(expired)

    # -- the janitor's bookkeeping ------------------------------------------------------

    def operatorAbsent(self, licence: int, operator: int, grace: float) -> defer.Deferred[bool]:
        key = (licence, operator)
        if operator in self._operators.get(licence, {}):
            self._absent.pop(key, None)
            return defer.succeed(False)
        now = self._clock.seconds()
        since = self._absent.setdefault(key, now)
        if now - since < grace:
            return defer.succeed(False)
        del self._absent[key]
        return defer.succeed(True)

    def lease(self, name: str, period: float) -> defer.Deferred[bool]:
        turn = int(self._clock.seconds() // period)
        if self._leases.get(name) == turn:
            return defer.succeed(False)
        self._leases[name] = turn
        return defer.succeed(True)
