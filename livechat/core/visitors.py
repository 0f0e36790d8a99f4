"""
The visitors on a licence's website right now: soft state, kept in memory,
forgotten after C{idle} seconds without a page view or a connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attr


@attr.s(auto_attribs=True, kw_only=True)
class VisitorState:
    """One visitor as the agents see them."""

    id: str
    licence: int
    url: str = ""
    title: str = ""
    referrer: str = ""
    user_agent: str = ""
    address: str = ""
    first_seen: int = 0
    """First visit ever (ms)."""
    previous_visit: int | None = None
    """When the previous visit was (ms), for a returning visitor."""
    visits: int = 1
    pages: int = 0
    """Pages seen during this visit."""
    visit_started: float = 0.0
    last_seen: float = 0.0
    invitation: str = ""
    """'' | 'sent' | 'accepted' | 'declined'."""
    invited_by: int | None = None
    invitation_id: str = ""
    name: str = ""
    email: str = ""
    customer_id: str = ""
    verified: bool = False
    chat_id: int | None = None
    sessions: int = 0
    """Connections (widget sockets) open now."""

    def toJSON(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "title": self.title,
            "referrer": self.referrer,
            "userAgent": self.user_agent,
            "firstSeen": self.first_seen,
            "previousVisit": self.previous_visit,
            "returning": self.visits > 1,
            "visits": self.visits,
            "pages": self.pages,
            "visitStarted": int(self.visit_started * 1000),
            "lastSeen": int(self.last_seen * 1000),
            "invitation": self.invitation,
            "identity": {
                "name": self.name,
                "email": self.email,
                "customerId": self.customer_id,
                "verified": self.verified,
            },
            "chatId": self.chat_id,
            "connected": self.sessions > 0,
        }


class VisitorRegistry:
    """
    Visitors per licence, bounded: at most C{maxPerLicence}; beyond that the
    visitor idle longest (and not chatting, not connected) is forgotten.
    """

    def __init__(self, clock: Any, idle: float, maxPerLicence: int = 20000) -> None:
        self._clock = clock
        self.idle = idle
        self.maxPerLicence = maxPerLicence
        self._licences: dict[int, dict[str, VisitorState]] = {}

    def get(self, licence: int, visitorId: str) -> VisitorState | None:
        return self._licences.get(licence, {}).get(visitorId)

    def add(self, state: VisitorState) -> list[VisitorState]:
        """Add a visitor; return the ones forgotten to make room."""
        visitors = self._licences.setdefault(state.licence, {})
        evicted = []
        if state.id not in visitors and len(visitors) >= self.maxPerLicence:
            candidates = sorted(
                (v for v in visitors.values() if v.chat_id is None and v.sessions == 0),
                key=lambda v: v.last_seen,
            )
            for victim in candidates[: len(visitors) - self.maxPerLicence + 1]:
                del visitors[victim.id]
                evicted.append(victim)
        visitors[state.id] = state
        return evicted

    def remove(self, licence: int, visitorId: str) -> VisitorState | None:
        visitors = self._licences.get(licence)
        if not visitors:
            return None
        state = visitors.pop(visitorId, None)
        if not visitors:
            del self._licences[licence]
        return state

    def all(self, licence: int) -> list[VisitorState]:
        return sorted(self._licences.get(licence, {}).values(), key=lambda v: v.visit_started)

    def expired(self) -> Iterator[VisitorState]:
        """
        Visitors not seen for C{idle} seconds (the core refreshes
        C{last_seen} of visitors whose connection stays open).
        """
        now = self._clock.seconds()
        for visitors in list(self._licences.values()):
            for state in list(visitors.values()):
                if now - state.last_seen >= self.idle:
                    yield state

    def count(self, licence: int) -> int:
        return len(self._licences.get(licence, {}))
