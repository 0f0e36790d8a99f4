"""
Routing: who gets a new chat, and the queue when nobody can take it.

L{MemoryRouter} is the default L{IRouter} of a single node.  A chat goes to
an operator of the licence whose status takes chats (ONLINE or
TEXT_AVAILABLE), in the requested group if any, below their capacity (0 gets
no routed chats); least loaded first, then the one who got a chat longest
ago.  All of it happens synchronously on the reactor thread, so a
reservation can never be interleaved with another: concurrent requests
cannot put an operator over their limit.  When nobody fits, the chat joins
the licence's queue (first come, first served) and is given out as soon as
an operator frees a slot or comes online.
"""

from __future__ import annotations

from typing import Any

import attr
from twisted.internet import defer
from zope.interface import implementer

from livechat.interfaces import IRouter
from livechat.model import OperatorStatus


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class Availability:
    """What the router needs to know about an operator."""

    operator: int
    status: OperatorStatus
    capacity: int
    """Parallel chats the router may give; 0 means none."""
    groups: frozenset[int] = frozenset()


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class RouteRequest:
    chat: int
    group: int | None = None
    exclude: frozenset[int] = frozenset()
    """Operators not to give it to now (the one who let it time out)."""
    prefer: int | None = None
    """An operator to give it to if they can take it (who invited the visitor)."""


@attr.s(frozen=True, auto_attribs=True)
class Assignment:
    """C{chat} goes to C{operator}; or, with C{operator=None}, waits at C{position}."""

    chat: int
    operator: int | None
    position: int = 0


@attr.s(auto_attribs=True)
class _Operator:
    availability: Availability
    load: set[int] = attr.Factory(set)
    lastAssigned: float = 0.0


@attr.s(auto_attribs=True)
class _Licence:
    operators: dict[int, _Operator] = attr.Factory(dict)
    queue: list[RouteRequest] = attr.Factory(list)


@implementer(IRouter)
class MemoryRouter:
    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._licences: dict[int, _Licence] = {}

    def _licence(self, licence: int) -> _Licence:
        state = self._licences.get(licence)
        if state is None:
            state = self._licences[licence] = _Licence()
        return state

    # -- choosing ----------------------------------------------------------------

    def _candidate(self, state: _Licence, request: RouteRequest) -> _Operator | None:
        best: _Operator | None = None
        for op in state.operators.values():
            a = op.availability
            if not a.status.takesChats or a.capacity <= 0 or len(op.load) >= a.capacity:
                continue
            if a.operator in request.exclude:
                continue
            if request.group is not None and request.group not in a.groups:
                continue
            if a.operator == request.prefer:
                return op
            if best is None or (len(op.load), op.lastAssigned, a.operator) < (
                len(best.load),
                best.lastAssigned,
                best.availability.operator,
            ):
                best = op
        return best

    def _give(self, op: _Operator, chat: int) -> Assignment:
        op.load.add(chat)
        op.lastAssigned = self._clock.seconds()
        return Assignment(chat, op.availability.operator)

    def _drain(self, state: _Licence) -> list[Assignment]:
        made = []
        waiting = []
        for request in state.queue:
            op = self._candidate(state, request)
            if op is None:
                waiting.append(request)
            else:
                made.append(self._give(op, request.chat))
        state.queue = waiting
        return made

    # -- IRouter -----------------------------------------------------------------

    def updateOperator(
        self, licence: int, availability: Availability
    ) -> defer.Deferred[list[Assignment]]:
        state = self._licence(licence)
        op = state.operators.get(availability.operator)
        if op is None:
            state.operators[availability.operator] = _Operator(
                availability, lastAssigned=self._clock.seconds()
            )
        else:
            op.availability = availability
        return defer.succeed(self._drain(state))

    def removeOperator(self, licence: int, operator: int) -> defer.Deferred[list[int]]:
        state = self._licence(licence)
        op = state.operators.pop(operator, None)
        return defer.succeed(sorted(op.load) if op else [])

    def leftNode(self, licence: int, operator: int) -> defer.Deferred[None]:
        return defer.succeed(None)  # one node: nobody else holds them

    def route(self, licence: int, request: RouteRequest) -> defer.Deferred[Assignment]:
        state = self._licence(licence)
        # A chat is never both queued and reserved.
        state.queue = [r for r in state.queue if r.chat != request.chat]
        # The queue is drained whenever capacity appears, so no waiting chat
        # fits any operator now: a new chat that fits one jumps no one.
        op = self._candidate(state, request)
        if op is not None:
            return defer.succeed(self._give(op, request.chat))
        state.queue.append(attr.evolve(request, exclude=frozenset(), prefer=None))
        return defer.succeed(Assignment(request.chat, None, len(state.queue)))

    def reserve(self, licence: int, operator: int, chat: int) -> defer.Deferred[None]:
        state = self._licence(licence)
        op = state.operators.get(operator)
        if op is not None:
            op.load.add(chat)
            op.lastAssigned = self._clock.seconds()
        return defer.succeed(None)

    def release(self, licence: int, operator: int, chat: int) -> defer.Deferred[list[Assignment]]:
        state = self._licence(licence)
        op = state.operators.get(operator)
        if op is not None:
            op.load.discard(chat)
        return defer.succeed(self._drain(state))

    def dequeue(self, licence: int, chat: int) -> defer.Deferred[None]:
        state = self._licence(licence)
        state.queue = [r for r in state.queue if r.chat != chat]
        return defer.succeed(None)

    def queue(self, licence: int) -> defer.Deferred[list[int]]:
        return defer.succeed([r.chat for r in self._licence(licence).queue])

    def load(self, licence: int, operator: int) -> defer.Deferred[list[int]]:
        op = self._licence(licence).operators.get(operator)
        return defer.succeed(sorted(op.load) if op else [])
