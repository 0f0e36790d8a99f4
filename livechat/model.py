"""
Value types of the domain: licences, operators, groups, and the numeric codes
the seed defines for them.  Everything here is immutable and free of I/O.

Times are whole milliseconds since the epoch, UTC (C{int}), everywhere: in the
database, in events, on every wire.
"""

from __future__ import annotations

import enum

import attr


class LicenceType(enum.IntEnum):
    """The seed's LIC_TYPE values."""

    ASP_FULL = 1
    ASP_DEMO = 9


class AccountType(enum.StrEnum):
    """The seed's ACCOUNT_TYPE: what kind of seat an operator takes."""

    COMMUNICATOR = "communicator"
    CONTACT_CENTER = "contact_center"


class OperatorStatus(enum.IntEnum):
    """An operator's status, with the seed's numbers (its RPC STATUS values)."""

    ONLINE = 0
    AWAY = 1
    OFFLINE = 2
    TEXT_AVAILABLE = 3
    VOICE_AVAILABLE = 4
    INVISIBLE = 5

    @property
    def takesChats(self) -> bool:
        """Whether the router may give this operator a new chat."""
        return self in (OperatorStatus.ONLINE, OperatorStatus.TEXT_AVAILABLE)


LICENCE_MIN = 1
LICENCE_MAX = 2**31 - 1
"""Licence numbers are positive and fit a signed 32-bit column."""


def databaseName(licence: int) -> str:
    """The seed's name of a licence's own database: C{LC123456}."""
    if not LICENCE_MIN <= licence <= LICENCE_MAX:
        raise ValueError(f"licence number {licence} out of range")
    return f"LC{int(licence)}"


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class Licence:
    """A licence: one company, its operators and its data."""

    number: int
    lic_type: LicenceType = LicenceType.ASP_FULL
    name: str = ""
    language: str = "en"
    expires_at: int | None = None
    """Milliseconds since the epoch; C{None} never expires."""
    seats_cc: int | None = None
    """Contact-center operator seats; C{None} is unlimited."""
    seats_com: int | None = None
    """Communicator operator seats; C{None} is unlimited."""
    max_chats_default: int | None = None
    """Parallel chats per operator; C{None} takes the server's MAX_CHATS_PER_AGENT."""
    web_page: str = ""
    promo_code: str = ""
    created_at: int = 0
    disabled: bool = False

    def isExpired(self, nowMS: int) -> bool:
        return self.expires_at is not None and nowMS >= self.expires_at

    def seatsFor(self, accountType: AccountType) -> int | None:
        if accountType is AccountType.CONTACT_CENTER:
            return self.seats_cc
        return self.seats_com


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class Operator:
    """
    An operator (agent) of a licence.  C{id} is the internal number;
    C{operator_id} is the seed's "LIVECHAT ID", the operator's e-mail.
    """

    id: int
    licence: int
    nick: str
    operator_id: str
    first_name: str = ""
    last_name: str = ""
    phone: str = ""
    account_type: AccountType = AccountType.CONTACT_CENTER
    max_chats: int | None = None
    """Parallel chats; C{None} takes the licence default; 0 gets no routed chats."""
    is_admin: bool = False
    disabled: bool = False
    created_at: int = 0

    @property
    def displayName(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return name or self.nick


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class Group:
    """A group of operators of one licence; chats can be dispatched to it."""

    id: int
    name: str
    description: str = ""
    created_at: int = 0


# -- chats -------------------------------------------------------------------


class ChatKind(enum.StrEnum):
    """What a chat is between."""

    VISITOR = "visitor"
    """A visitor and operators (the seed's conference)."""
    PRIVATE = "private"
    """Two operators (the seed's business messenger)."""
    TEAM = "team"
    """Every operator of the licence."""


class ChatStatus(enum.StrEnum):
    """Lifecycle of a chat: requested -> queued -> assigned -> active -> closed."""

    REQUESTED = "requested"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    ACTIVE = "active"
    CLOSED = "closed"


class Role(enum.StrEnum):
    """Who did something on a chat (the connector API's roles)."""

    CONSUMER = "CONSUMER"
    """The visitor."""
    ASSIGNED_AGENT = "ASSIGNED_AGENT"
    AGENT = "AGENT"
    SYSTEM = "SYSTEM"


class ChatState(enum.StrEnum):
    """Chat-state (typing) values of the connector API."""

    COMPOSING = "COMPOSING"
    PAUSE = "PAUSE"
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    GONE = "GONE"


class AcceptStatus(enum.StrEnum):
    ACCEPT = "ACCEPT"
    READ = "READ"


def operatorRef(operatorId: int) -> str:
    """The participant id of an operator on a chat: C{op:12}."""
    return f"op:{int(operatorId)}"


def visitorRef(visitorId: str) -> str:
    """The participant id of a visitor on a chat: C{v:<cookie id>}."""
    return f"v:{visitorId}"


def parseRef(ref: str) -> tuple[str, str]:
    """C{("op", "12")} or C{("v", "abc")}; ValueError otherwise."""
    kind, sep, rest = ref.partition(":")
    if not sep or kind not in ("op", "v", "sys") or not rest:
        raise ValueError(f"bad participant id {ref!r}")
    return kind, rest


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class Chat:
    """A chat as stored.  C{id} is also the seed's conference number (GROUP)."""

    id: int
    licence: int
    kind: ChatKind
    status: ChatStatus
    visitor_id: str | None = None
    group_id: int | None = None
    operator: int | None = None
    """The assigned operator's internal id."""
    inviting_operator: int | None = None
    name: str = ""
    email: str = ""
    created_at: int = 0
    assigned_at: int | None = None
    accepted_at: int | None = None
    closed_at: int | None = None
    close_reason: str = ""
    last_seq: int = 0
    pair_key: str | None = None
    """For private chats: C{"<low op id>:<high op id>"} while open."""


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class VisitorRecord:
    """What is stored of a visitor (the live state is in the core)."""

    id: str
    first_seen: int
    last_seen: int
    visits: int = 1
    name: str = ""
    email: str = ""
    customer_id: str = ""
    verified: bool = False
