"""
The IWCS packets: one class per packet number and direction, and the line
format, kept apart from the protocol (as Synapse's replication commands) so
that parsing is tested with no connection at all.

A packet is one line of UTF-8 ending in CRLF::

    IWCS0020C id=7&chat=42&text=Hello%20there

C{IWCS}, four digits (the packet number), C{C} (client to server) or C{S}
(server to client), then, after one space, C{key=value} fields joined by
C{&}.  Values are percent-encoded UTF-8 (C{+} also stands for a space, as in
HTML forms, so a literal plus is C{%2B}).  docs/iwcs.md is the reference:
every packet, field and error code.

L{parseLine} turns a line into a packet or raises L{PacketError} with a
stable error name (L{ERRORS}); C{packet.toLine()} is the reverse.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, TypeVar, cast, dataclass_transform
from urllib.parse import unquote_plus

import attr

from livechat.model import AcceptStatus, ChatState, OperatorStatus, Role

PROTOCOL_VERSION = 1

# -- errors -------------------------------------------------------------------------------

ERRORS: Mapping[str, int] = {
    # the line or packet itself
    "malformed": 400,
    "not_logged_in": 401,
    "wrong_kind": 405,
    "unknown_packet": 406,
    "missing_field": 407,
    "bad_field": 408,
    "line_too_long": 414,
    # logging in
    "login_failed": 420,
    "login_refused": 421,
    "already_logged_in": 422,
    "throttled": 423,
    "too_many_visitors": 424,
    # what the chat core refuses (livechat.core.errors.CoreError codes)
    "bad_request": 430,
    "forbidden": 403,
    "not_found": 404,
    "wrong_state": 409,
    "too_large": 413,
    "rate_limited": 429,
    "unavailable": 503,
    "internal": 500,
}
"""Every error name with its number (the C{code} field of C{IWCS0009S})."""


class PacketError(Exception):
    """
    A line or packet that cannot be taken.  C{name} is one of L{ERRORS};
    C{requestId} is the request's C{id} when it could be read, so the error
    answers the right request; C{number} the packet number when known.
    """

    def __init__(
        self, name: str, text: str, requestId: str | None = None, number: int | None = None
    ) -> None:
        assert name in ERRORS, name
        super().__init__(f"{name}: {text}")
        self.name = name
        self.text = text
        self.requestId = requestId
        self.number = number

    @property
    def code(self) -> int:
        return ERRORS[self.name]


# -- field types --------------------------------------------------------------------------


class Codec:
    """How one field's value is written on the wire and read back."""

    kind = "text"
    """The type's name in docs/iwcs.md."""
    secret = False
    plain = False
    """Whether what C{format} writes never needs percent-encoding (digits, commas, colons)."""

    def parse(self, raw: str) -> Any:
        """The value of C{raw}, or ValueError with a message for people."""
        raise NotImplementedError

    def format(self, value: Any) -> str:
        return str(value)


class Text(Codec):
    def __init__(self, maxLength: int | None = None, secret: bool = False) -> None:
        self.maxLength = maxLength
        self.secret = secret
        self.kind = f"text (≤ {maxLength})" if maxLength else "text"

    def parse(self, raw: str) -> str:
        if self.maxLength is not None and len(raw) > self.maxLength:
            raise ValueError(f"at most {self.maxLength} characters")
        return raw


class Token(Codec):
    """Text of letters, digits and C{-_.:}, as ids are."""

    _ALLOWED = re.compile(r"[A-Za-z0-9_.:-]+\Z")

    def __init__(self, minLength: int = 1, maxLength: int = 64) -> None:
        self.minLength = minLength
        self.maxLength = maxLength
        self.kind = f"id ({minLength}–{maxLength} of A-Z a-z 0-9 - _ . :)"

    def parse(self, raw: str) -> str:
        if not self.minLength <= len(raw) <= self.maxLength or not self._ALLOWED.match(raw):
            raise ValueError(
                f"{self.minLength} to {self.maxLength} letters, digits, '-', '_', '.' or ':'"
            )
        return raw


class VisitorId(Token):
    """A visitor's id: what the core takes (8 to 64 of A-Z a-z 0-9 - _)."""

    _ALLOWED = re.compile(r"[A-Za-z0-9_-]+\Z")

    def __init__(self) -> None:
        super().__init__(8, 64)
        self.kind = "visitor id (8–64 of A-Z a-z 0-9 - _)"

    def parse(self, raw: str) -> str:
        if not 8 <= len(raw) <= 64 or not self._ALLOWED.match(raw):
            raise ValueError("8 to 64 letters, digits, '-' or '_'")
        return raw


_INT = re.compile(r"-?[0-9]{1,19}\Z")


def _int(raw: str) -> int:
    if not _INT.match(raw):
        raise ValueError("a whole number")
    return int(raw)


class Int(Codec):
    plain = True

    def __init__(self, minimum: int = 0, maximum: int = 2**63 - 1) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.kind = "int" if minimum == 0 else f"int ≥ {minimum}"

    def parse(self, raw: str) -> int:
        value = _int(raw)
        if not self.minimum <= value <= self.maximum:
            raise ValueError(f"between {self.minimum} and {self.maximum}")
        return value

    def format(self, value: Any) -> str:
        return str(int(value))


class Bool(Codec):
    plain = True

    kind = "0 or 1"

    def parse(self, raw: str) -> bool:
        if raw not in ("0", "1"):
            raise ValueError("0 or 1")
        return raw == "1"

    def format(self, value: Any) -> str:
        return "1" if value else "0"


class IntList(Codec):
    """C{3,4,5}: whole numbers ≥ C{minimum}, comma-separated; empty is an empty list."""

    plain = True

    def __init__(self, maxItems: int = 1000, minimum: int = 1) -> None:
        self.maxItems = maxItems
        self.minimum = minimum
        self.kind = "list of ints (3,4,5)"

    def parse(self, raw: str) -> tuple[int, ...]:
        if not raw:
            return ()
        parts = raw.split(",")
        if len(parts) > self.maxItems:
            raise ValueError(f"at most {self.maxItems} numbers")
        values = tuple(_int(p) for p in parts)
        if any(v < self.minimum for v in values):
            raise ValueError(f"numbers of at least {self.minimum}")
        return values

    def format(self, value: Any) -> str:
        return ",".join(str(int(v)) for v in value)


class IntMap(Codec):
    """C{42:7,43:0}: chat id to last sequence seen (resume)."""

    plain = True

    kind = "chat:seq list (42:7,43:0)"

    def parse(self, raw: str) -> dict[int, int]:
        result: dict[int, int] = {}
        if not raw:
            return result
        for part in raw.split(","):
            key, sep, value = part.partition(":")
            if not sep:
                raise ValueError("chat:sequence pairs, comma-separated")
            chat, seq = _int(key), _int(value)
            if chat < 1 or seq < 0:
                raise ValueError("chat ids ≥ 1 and sequences ≥ 0")
            if chat in result:
                raise ValueError(f"chat {chat} is named twice")
            result[chat] = seq
        return result

    def format(self, value: Any) -> str:
        return ",".join(f"{int(k)}:{int(v)}" for k, v in sorted(value.items()))


class Choice(Codec):
    """One of an enum's values (numbers for int enums, else the text)."""

    def __init__(self, values: type[enum.Enum] | Iterable[str]) -> None:
        if isinstance(values, type) and issubclass(values, enum.Enum):
            self.enum: type[enum.Enum] | None = values
            self.values = [str(m.value) for m in values]
        else:
            self.enum = None
            self.values = list(values)
        self.kind = " | ".join(self.values)

    def parse(self, raw: str) -> Any:
        if raw not in self.values:
            raise ValueError("one of " + ", ".join(self.values))
        if self.enum is None:
            return raw
        if issubclass(self.enum, enum.IntEnum):
            return self.enum(int(raw))
        return self.enum(raw)

    def format(self, value: Any) -> str:
        if isinstance(value, enum.Enum):
            return str(value.value)
        return str(value)


C = TypeVar("C")
_WIRE = "iwcs"
_ESCAPED = re.compile("[%&+=\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""What a written value escapes: the line's own characters and the invisible ones."""


def _escape(match: re.Match[str]) -> str:
    return "".join(f"%{b:02X}" for b in match.group().encode("utf-8"))


def writeValue(value: str) -> str:
    """
    A value as this side writes it: C{%}, C{&}, C{+}, C{=}, control
    characters and line separators as C{%XX}, spaces as C{+}, everything
    else as itself (UTF-8).  Any percent-decoder reads it back (docs/iwcs.md),
    and it costs two scans in C where a full percent-encoding costs a Python
    step per character.
    """
    if _ESCAPED.search(value) is not None:
        value = _ESCAPED.sub(_escape, value)
    return value.replace(" ", "+")


def wire(codec: Codec, *, default: Any = attr.NOTHING, name: str | None = None) -> Any:
    """An attrs field carried on the wire as C{codec}; with a default it is optional."""
    return attr.ib(default=default, metadata={_WIRE: (codec, name)})


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(wire,))
def packet(cls: type[C]) -> type[C]:
    """Make a packet class (attrs, frozen, keyword-only): type checkers see its fields."""
    return attr.s(frozen=True, kw_only=True)(cls)


# -- packets ------------------------------------------------------------------------------

CLIENT_PACKETS: dict[int, type[Packet]] = {}
SERVER_PACKETS: dict[int, type[Packet]] = {}

P = TypeVar("P", bound="type[Packet]")


def register(number: int, direction: str, name: str) -> Any:
    """Class decorator: the packet's number, direction (C or S) and name."""

    def decorate(cls: P) -> P:
        table = CLIENT_PACKETS if direction == "C" else SERVER_PACKETS
        assert number not in table, (number, direction)
        cls.NUMBER = number
        cls.DIRECTION = direction
        cls.NAME = name
        table[number] = cls
        type.__setattr__(cls, "toText", _compileWriter(cls))
        return cls

    return decorate


@packet
class Packet:
    """A packet; subclasses declare their fields with L{wire}."""

    NUMBER: ClassVar[int] = 0
    DIRECTION: ClassVar[str] = ""
    NAME: ClassVar[str] = ""

    @classmethod
    def header(cls) -> str:
        return f"IWCS{cls.NUMBER:04d}{cls.DIRECTION}"

    @classmethod
    def wireFields(cls) -> list[tuple[str, str, Codec, bool]]:
        """C{(attribute, wire name, codec, required)} of each field, in order."""
        cached: list[tuple[str, str, Codec, bool]] | None = cls.__dict__.get("_wireFields")
        if cached is None:
            cached = []
            for a in attr.fields(cast(Any, cls)):
                codec, name = a.metadata[_WIRE]
                cached.append((a.name, name or a.name, codec, a.default is attr.NOTHING))
            type.__setattr__(cls, "_wireFields", cached)
        return cached

    @classmethod
    def _byWireName(cls) -> dict[str, tuple[str, Codec, bool]]:
        cached: dict[str, tuple[str, Codec, bool]] | None = cls.__dict__.get("_byWire")
        if cached is None:
            cached = {w: (a, c, r) for a, w, c, r in cls.wireFields()}
            type.__setattr__(cls, "_byWire", cached)
        return cached

    @classmethod
    def fromFields(cls: type[T], pairs: list[tuple[str, str]]) -> T:
        """Build from decoded C{(key, value)} pairs; L{PacketError} if wrong."""
        raw: dict[str, str] = {}
        for key, value in pairs:
            if key in raw:
                requestId = raw.get("id") if key != "id" else None
                raise PacketError("bad_field", f"{key} is given twice", requestId, cls.NUMBER)
            raw[key] = value
        requestId = raw.get("id")
        known = cls._byWireName()
        for key in raw:
            if key not in known:
                raise PacketError(
                    "bad_field", f"{cls.header()} has no field {key!r}", requestId, cls.NUMBER
                )
        values: dict[str, Any] = {}
        for wireName, (attribute, codec, required) in known.items():
            if wireName not in raw:
                if required:
                    raise PacketError(
                        "missing_field",
                        f"{cls.header()} needs {wireName}",
                        requestId if wireName != "id" else None,
                        cls.NUMBER,
                    )
                continue
            try:
                values[attribute] = codec.parse(raw[wireName])
            except ValueError as e:
                raise PacketError(
                    "bad_field",
                    f"{wireName}: {e}",
                    requestId if wireName != "id" else None,
                    cls.NUMBER,
                ) from None
        return cls(**values)

    def toFields(self, mask: bool = False) -> list[tuple[str, str]]:
        """The fields as they go on the wire (C{None} values are left out)."""
        out = []
        for attribute, wireName, codec, _ in self.wireFields():
            value = getattr(self, attribute)
            if value is None:
                continue
            if mask and codec.secret:
                out.append((wireName, "********"))
            else:
                out.append((wireName, codec.format(value)))
        return out

    def toLine(self) -> bytes:
        """The packet as one line, CRLF included."""
        return (self.toText() + "\r\n").encode("utf-8")

    def toText(self, mask: bool = False) -> str:
        """The line without its CRLF; C{mask} hides secrets (for logs)."""
        fields = []
        for attribute, wireName, codec, _ in self.wireFields():
            value = getattr(self, attribute)
            if value is None:
                continue
            if mask and codec.secret:
                fields.append(f"{wireName}=********")
            elif codec.plain:
                fields.append(f"{wireName}={codec.format(value)}")
            else:
                fields.append(f"{wireName}={writeValue(codec.format(value))}")
        return f"{self.header()} {'&'.join(fields)}" if fields else self.header()


def _compileWriter(cls: type[Packet]) -> Callable[..., str]:
    """
    C{cls.toText} written out for its fields, as attrs writes C{__init__}:
    the same result as L{Packet.toText}, with no loop and no lookups.  Every
    packet the server sends goes through it, so it is worth a few lines.
    """
    names: dict[str, Any] = {"_write": writeValue, "_head": cls.header()}
    lines = ["def toText(self, mask=False):", "    fields = []"]
    for i, (attribute, wireName, codec, _) in enumerate(cls.wireFields()):
        assert attribute.isidentifier() and re.fullmatch(r"[a-z][a-z0-9_]*", wireName)
        if type(codec).format is Codec.format:
            text = "str(v)"
        elif type(codec) is Int:
            text = "str(int(v))"
        else:
            names[f"_format{i}"] = codec.format
            text = f"_format{i}(v)"
        if not codec.plain:
            text = f"_write({text})"
        if isinstance(codec, Choice) and codec.enum is not None:
            # An enum's members (equal to their values) to what is written.
            names[f"_known{i}"] = {m: writeValue(codec.format(m)) for m in codec.enum}
            text = f"(_known{i}.get(v) or {text})"
        if codec.secret:
            text = f'("********" if mask else {text})'
        lines += [
            f"    v = self.{attribute}",
            "    if v is not None:",
            f"        fields.append({wireName + '='!r} + {text})",
        ]
    lines.append("    return _head + ' ' + '&'.join(fields) if fields else _head")
    exec("\n".join(lines), names)  # noqa: S102 - our own field names, checked above
    writer: Callable[..., str] = names["toText"]
    writer.__doc__ = Packet.toText.__doc__
    return writer


T = TypeVar("T", bound=Packet)

# Codecs used by many packets.
REQUEST_ID = Token(1, 64)
CHAT = Int(1)
SEQ = Int(1)
TIME = Int(0)
OPERATOR = Int(1)
VISITOR = VisitorId()
NAME = Text(200)
EMAIL = Text(254)
REF = Text(80)
ROLE = Choice(Role)
KINDS = ("agent", "control")


@packet
class Request(Packet):
    """A client packet: C{id} (optional) is repeated in the answer."""

    id: str | None = wire(REQUEST_ID, default=None)


@packet
class ChatRequest(Request):
    """A request about one chat.  C{visitor}: a control acts for that visitor."""

    chat: int = wire(CHAT)
    visitor: str | None = wire(VISITOR, default=None)


# -- client to server ---------------------------------------------------------------------


@register(1, "C", "LOGIN")
@packet
class Login(Request):
    """
    Log in.  An agent application gives C{nick} and C{password}; a control
    gives C{key} (an API key with the C{control} scope), or an operator's
    C{nick} and C{password}.  C{resume}: the last sequence seen per chat.
    """

    licence: int = wire(Int(1, 2**31 - 1))
    kind: str = wire(Choice(KINDS))
    nick: str | None = wire(Text(100), default=None)
    password: str | None = wire(Text(200, secret=True), default=None)
    key: str | None = wire(Text(200, secret=True), default=None)
    status: OperatorStatus | None = wire(Choice(OperatorStatus), default=None)
    resume: dict[int, int] | None = wire(IntMap(), default=None)
    client: str | None = wire(Text(100), default=None)
    version: int | None = wire(Int(1, 1000), default=None)


@register(2, "C", "VISITOR")
@packet
class ReportVisitor(Request):
    """
    A control reports a visitor's page view.  C{name}, C{email},
    C{customer_id} are trusted only when C{signature} verifies them (with
    C{expires}); see docs/iwcs.md, "Signed identity".
    """

    visitor: str = wire(VISITOR)
    url: str | None = wire(Text(2000), default=None)
    title: str | None = wire(Text(2000), default=None)
    referrer: str | None = wire(Text(2000), default=None)
    agent: str | None = wire(Text(2000), default=None)
    address: str | None = wire(Text(64), default=None)
    name: str | None = wire(NAME, default=None)
    email: str | None = wire(EMAIL, default=None)
    customer_id: str | None = wire(Text(128), default=None)
    expires: int | None = wire(Int(0), default=None)
    signature: str | None = wire(Text(1024), default=None)


@register(3, "C", "STATUS")
@packet
class SetStatus(Request):
    """Set one's status (0 online … 5 invisible)."""

    status: OperatorStatus = wire(Choice(OperatorStatus))


@register(4, "C", "PING")
@packet
class Ping(Request):
    """Keep the connection alive; answered by PONG."""


@register(5, "C", "VISITORS")
@packet
class ListVisitors(Request):
    """The licence's visitors now: one VISITOR packet each, then OK with C{count}."""


@register(6, "C", "OPERATORS")
@packet
class ListOperators(Request):
    """The licence's operators online: one OPERATOR packet each, then OK with C{count}."""


@register(7, "C", "LOGOUT")
@packet
class Logout(Request):
    """End the session; the server answers BYE and closes."""


@register(10, "C", "CHAT_REQUEST")
@packet
class RequestChat(Request):
    """A control asks for a chat for a visitor (it then follows the visitor)."""

    visitor: str = wire(VISITOR)
    name: str | None = wire(NAME, default=None)
    email: str | None = wire(EMAIL, default=None)
    group: int | None = wire(Int(1), default=None)
    text: str | None = wire(Text(), default=None)


@register(11, "C", "ACCEPT")
@packet
class Accept(Request):
    """Accept a chat offered to you (CHAT_OFFERED)."""

    chat: int = wire(CHAT)


@register(12, "C", "DECLINE")
@packet
class Decline(Request):
    """Decline an offered chat; it goes to the next operator."""

    chat: int = wire(CHAT)


@register(15, "C", "INVITE_VISITOR")
@packet
class InviteVisitor(Request):
    """Invite a visitor on the site to chat (proactive)."""

    visitor: str = wire(VISITOR)
    text: str | None = wire(Text(), default=None)


@register(16, "C", "ANSWER_INVITATION")
@packet
class AnswerInvitation(Request):
    """A control answers an invitation for its visitor."""

    visitor: str = wire(VISITOR)
    accept: bool = wire(Bool())
    name: str | None = wire(NAME, default=None)
    email: str | None = wire(EMAIL, default=None)


@register(17, "C", "HISTORY")
@packet
class History(Request):
    """A visitor's past chats: one HISTORY packet per message, then OK with C{count}."""

    visitor: str = wire(VISITOR)
    limit: int | None = wire(Int(1, 100), default=None)


@register(18, "C", "FOLLOW")
@packet
class Follow(Request):
    """A control follows a visitor: their chats' events, invitations and queue places."""

    visitor: str = wire(VISITOR)
    resume: dict[int, int] | None = wire(IntMap(), default=None)


@register(19, "C", "UNFOLLOW")
@packet
class Unfollow(Request):
    """A control stops following a visitor (the visitor left the site)."""

    visitor: str = wire(VISITOR)


@register(20, "C", "MESSAGE")
@packet
class SendMessage(ChatRequest):
    """Post a message; OK carries its C{seq} once stored."""

    text: str = wire(Text())


@register(21, "C", "STATE")
@packet
class SendState(ChatRequest):
    """Typing state (not stored)."""

    state: ChatState = wire(Choice(ChatState))


@register(22, "C", "READ")
@packet
class SendRead(ChatRequest):
    """Read (or accepted) receipts for events of the chat."""

    seqs: tuple[int, ...] = wire(IntList(1000))
    status: AcceptStatus | None = wire(Choice(AcceptStatus), default=None)


@register(23, "C", "JOIN")
@packet
class Join(Request):
    """Join a chat you were invited into (a conference)."""

    chat: int = wire(CHAT)


@register(24, "C", "LEAVE")
@packet
class Leave(ChatRequest):
    """Leave a chat (a control: its visitor leaves, which ends the chat)."""


@register(25, "C", "TRANSFER")
@packet
class Transfer(Request):
    """Hand your chat to another operator or to a group."""

    chat: int = wire(CHAT)
    operator: int | None = wire(OPERATOR, default=None)
    group: int | None = wire(Int(1), default=None)


@register(26, "C", "INVITE")
@packet
class Invite(Request):
    """Invite a colleague into your chat (a conference)."""

    chat: int = wire(CHAT)
    operator: int = wire(OPERATOR)


@register(27, "C", "CLOSE")
@packet
class Close(Request):
    """Close a chat."""

    chat: int = wire(CHAT)


@register(29, "C", "PRIVATE")
@packet
class Private(Request):
    """Open (or find) the private chat with a colleague; OK carries C{chat}."""

    operator: int = wire(OPERATOR)


@register(31, "C", "HANDLED")
@packet
class MarkHandled(Request):
    """Mark messages visitors left as handled; OK carries the C{ids} now handled."""

    ids: tuple[int, ...] = wire(IntList(200))


# -- server to client ---------------------------------------------------------------------


@packet
class Answer(Packet):
    """A server packet that answers a request: C{id} is the request's."""

    id: str | None = wire(REQUEST_ID, default=None)


@register(1, "S", "WELCOME")
@packet
class Welcome(Answer):
    """Logged in.  Chat events missed since C{resume} follow."""

    licence: int = wire(Int(1))
    kind: str = wire(Choice(KINDS))
    version: int = wire(Int(1))
    server: str = wire(Text(100))
    time: int = wire(TIME)
    max_line: int = wire(Int(1))
    max_message: int = wire(Int(1))
    idle: int = wire(Int(1))
    operator: int | None = wire(OPERATOR, default=None)
    nick: str | None = wire(Text(100), default=None)
    name: str | None = wire(NAME, default=None)
    status: OperatorStatus | None = wire(Choice(OperatorStatus), default=None)
    team: int | None = wire(CHAT, default=None)
    chats: tuple[int, ...] | None = wire(IntList(), default=None)


@register(2, "S", "VISITOR")
@packet
class VisitorInfo(Answer):
    """A visitor on the site, as agents see them (in a list, or a change)."""

    visitor: str = wire(VISITOR)
    url: str = wire(Text(), default="")
    title: str = wire(Text(), default="")
    referrer: str = wire(Text(), default="")
    agent: str = wire(Text(), default="")
    first_seen: int = wire(TIME, default=0)
    previous_visit: int | None = wire(TIME, default=None)
    returning: bool = wire(Bool(), default=False)
    visits: int = wire(Int(0), default=1)
    pages: int = wire(Int(0), default=0)
    visit_started: int = wire(TIME, default=0)
    last_seen: int = wire(TIME, default=0)
    invitation: str = wire(Choice(("", "sent", "accepted", "declined")), default="")
    name: str = wire(Text(), default="")
    email: str = wire(Text(), default="")
    customer_id: str = wire(Text(), default="")
    verified: bool = wire(Bool(), default=False)
    chat: int | None = wire(CHAT, default=None)
    connected: bool = wire(Bool(), default=False)


@register(3, "S", "OPERATOR")
@packet
class OperatorInfo(Answer):
    """An operator online and their status (in a list, or a change)."""

    operator: int = wire(OPERATOR)
    operator_id: str = wire(Text())
    nick: str = wire(Text())
    name: str = wire(Text())
    status: OperatorStatus = wire(Choice(OperatorStatus))


@register(4, "S", "PONG")
@packet
class Pong(Answer):
    """The answer to PING, with the server's time (ms)."""

    time: int = wire(TIME)


@register(5, "S", "VISITOR_GONE")
@packet
class VisitorGone(Packet):
    """A visitor left the site."""

    visitor: str = wire(VISITOR)


@register(6, "S", "LICENCE")
@packet
class LicenceStatus(Packet):
    """Whether an operator of the licence takes chats now (the chat button)."""

    online: bool = wire(Bool())


BYE_REASONS = ("logout", "idle", "too_many_errors", "flood", "shutdown", "closed")


@register(7, "S", "BYE")
@packet
class Bye(Answer):
    """The server closes the connection, and why."""

    reason: str = wire(Choice(BYE_REASONS))
    text: str = wire(Text(), default="")


@register(8, "S", "OK")
@packet
class Ok(Answer):
    """A request was done; the fields that apply to it are set."""

    seq: int | None = wire(SEQ, default=None)
    chat: int | None = wire(CHAT, default=None)
    count: int | None = wire(Int(0), default=None)
    invitation: str | None = wire(Text(), default=None)
    verified: bool | None = wire(Bool(), default=None)
    ids: tuple[int, ...] | None = wire(IntList(), default=None)


@register(9, "S", "ERROR")
@packet
class Error(Answer):
    """A request (or a line) was refused: C{code} and C{name} (stable), C{text}."""

    code: int = wire(Int(0))
    name: str = wire(Choice(tuple(ERRORS)))
    text: str = wire(Text(), default="")
    packet: int | None = wire(Int(0), default=None)

    @classmethod
    def of(
        cls, name: str, text: str, requestId: str | None = None, packet: int | None = None
    ) -> Error:
        return cls(id=requestId, code=ERRORS[name], name=name, text=text, packet=packet)


@register(10, "S", "CHAT_OFFERED")
@packet
class ChatOffered(Packet):
    """A chat is yours if you ACCEPT it within C{expires} seconds."""

    chat: int = wire(CHAT)
    visitor: str = wire(VISITOR)
    name: str = wire(Text(), default="")
    email: str = wire(Text(), default="")
    group: int | None = wire(Int(1), default=None)
    text: str = wire(Text(), default="")
    expires: int = wire(Int(0))
    url: str = wire(Text(), default="")


@register(11, "S", "CHAT_OPENED")
@packet
class ChatOpened(Packet):
    """A chat was opened for you; its events follow."""

    chat: int = wire(CHAT)
    kind: str = wire(Choice(("visitor", "private", "team")))
    visitor: str | None = wire(VISITOR, default=None)
    transferred_by: str | None = wire(REF, default=None)
    with_: tuple[int, ...] | None = wire(IntList(), default=None, name="with")


@register(12, "S", "CHAT_WITHDRAWN")
@packet
class ChatWithdrawn(Packet):
    """An offered chat is not yours any more (C{reason}: timeout, declined, …)."""

    chat: int = wire(CHAT)
    reason: str = wire(Text(), default="")


@register(13, "S", "QUEUE_POSITION")
@packet
class QueuePosition(Packet):
    """To a control: its visitor's place in the queue (0: being offered)."""

    chat: int = wire(CHAT)
    position: int = wire(Int(0))
    visitor: str | None = wire(VISITOR, default=None)


@register(14, "S", "QUEUE")
@packet
class Queue(Packet):
    """To agents: the licence's waiting chats, first first."""

    chats: tuple[int, ...] = wire(IntList())


@register(15, "S", "INVITATION")
@packet
class Invitation(Packet):
    """To a control: an operator invites its visitor to chat."""

    visitor: str = wire(VISITOR)
    invitation: str = wire(Text())
    operator: str = wire(REF)
    name: str = wire(Text(), default="")
    text: str = wire(Text(), default="")


@register(16, "S", "INVITATION_ANSWERED")
@packet
class InvitationAnswered(Packet):
    """To agents: a visitor answered an invitation."""

    invitation: str = wire(Text())
    visitor: str = wire(VISITOR)
    operator: str = wire(REF)
    accepted: bool = wire(Bool())


@register(17, "S", "HISTORY")
@packet
class HistoryMessage(Answer):
    """One message of a visitor's past chat (answering HISTORY)."""

    chat: int = wire(CHAT)
    status: str = wire(Text())
    created: int = wire(TIME)
    closed: int | None = wire(TIME, default=None)
    seq: int = wire(SEQ)
    time: int = wire(TIME)
    sender: str = wire(REF, name="from")
    role: Role = wire(ROLE)
    name: str = wire(Text(), default="")
    text: str = wire(Text(), default="")


@packet
class ChatEvent(Packet):
    """
    A chat event: C{seq} (absent for typing), the time (ms), who did it
    (C{from}, C{role}, C{name}); C{visitor} when sent to a control.
    """

    chat: int = wire(CHAT)
    seq: int | None = wire(SEQ, default=None)
    time: int = wire(TIME)
    sender: str = wire(REF, name="from")
    role: Role = wire(ROLE)
    name: str = wire(Text(), default="")
    visitor: str | None = wire(VISITOR, default=None)


@register(20, "S", "MESSAGE")
@packet
class MessageEvent(ChatEvent):
    """A message (ContentEvent)."""

    text: str = wire(Text())
    content_type: str = wire(Text(100), default="text/plain")


@register(21, "S", "STATE")
@packet
class StateEvent(ChatEvent):
    """A typing state (ChatStateEvent; no C{seq})."""

    state: ChatState = wire(Choice(ChatState))


@register(22, "S", "READ")
@packet
class ReadEvent(ChatEvent):
    """Read or accepted receipts (AcceptStatusEvent)."""

    status: AcceptStatus = wire(Choice(AcceptStatus))
    seqs: tuple[int, ...] = wire(IntList())


@packet
class ParticipantEvent(ChatEvent):
    """An event about a participant: C{who}, C{who_role}, C{who_name}."""

    who: str = wire(REF)
    who_role: Role = wire(ROLE)
    who_name: str = wire(Text(), default="")


@register(23, "S", "JOIN")
@packet
class JoinEvent(ParticipantEvent):
    """Someone joined the chat (JoinEvent)."""


@register(24, "S", "LEAVE")
@packet
class LeaveEvent(ParticipantEvent):
    """Someone left the chat (LeaveEvent; C{reason}: left, transfer, disconnected)."""

    reason: str = wire(Text(), default="")


@register(25, "S", "TRANSFER")
@packet
class TransferEvent(ChatEvent):
    """The chat was handed on (TransferEvent); C{by_status}: the transferring operator's."""

    by_status: OperatorStatus = wire(Choice(OperatorStatus))
    to_operator: str | None = wire(REF, default=None)
    to_name: str | None = wire(Text(), default=None)
    to_group: int | None = wire(Int(1), default=None)


@register(26, "S", "INVITE")
@packet
class InviteEvent(ChatEvent):
    """An operator was invited into the chat (InviteEvent)."""

    who: str = wire(REF)
    who_name: str = wire(Text(), default="")


@register(27, "S", "CLOSE")
@packet
class CloseEvent(ChatEvent):
    """The chat is over (CloseEvent; C{reason}: visitor_left, operator_closed, visitor_gone)."""

    reason: str = wire(Text(), default="")


@register(28, "S", "CONFERENCE_INVITED")
@packet
class ConferenceInvited(Packet):
    """A colleague invites you into a chat; JOIN it."""

    chat: int = wire(CHAT)
    sender: str = wire(REF, name="from")
    name: str = wire(Text(), default="")


@register(30, "S", "LEFT_MESSAGE")
@packet
class LeftMessage(Packet):
    """A message a visitor left (outside office hours, or with nobody there)."""

    message: int = wire(Int(1))
    time: int = wire(TIME)
    visitor: str = wire(Text())
    group: int | None = wire(Int(1), default=None)
    reason: str = wire(Text(), default="")
    name: str = wire(Text(), default="")
    email: str = wire(Text(), default="")
    text: str = wire(Text(), default="")
    url: str = wire(Text(), default="")
    language: str = wire(Text(), default="")
    mailed: bool = wire(Bool(), default=False)
    handled: int | None = wire(TIME, default=None)
    handled_by: int | None = wire(Int(0), default=None)


@register(31, "S", "HANDLED")
@packet
class Handled(Packet):
    """Left messages were marked handled (by C{by})."""

    ids: tuple[int, ...] = wire(IntList())
    by: str = wire(REF)


# -- the line -----------------------------------------------------------------------------

_HEADER = re.compile(r"IWCS([0-9]{4})([CS])(?: (.*))?\Z", re.S)
_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ID = re.compile(r"(?:^|&)id=([A-Za-z0-9_.:-]{1,64})(?:&|$)")


def _allKeys() -> frozenset[str]:
    return frozenset(
        w
        for table in (CLIENT_PACKETS, SERVER_PACKETS)
        for c in table.values()
        for w in c._byWireName()
    )


_KEYS: frozenset[str] = frozenset()
"""Every packet's wire names (valid keys, so most keys skip the regex); set below the packets."""


def splitFields(text: str) -> list[tuple[str, str]]:
    """C{key=value&...} into decoded pairs; L{PacketError} C{malformed} if wrong."""
    if not text:
        return []
    pairs = []
    for part in text.split("&"):
        key, sep, value = part.partition("=")
        if not sep or (key not in _KEYS and not _KEY.match(key)):
            raise PacketError("malformed", f"expected key=value, got {part[:40]!r}")
        if "%" in value:
            if _BAD_ESCAPE.search(value):
                raise PacketError("malformed", f"{key}: a % is not followed by two hex digits")
            try:
                value = unquote_plus(value, encoding="utf-8", errors="strict")
            except UnicodeDecodeError:
                raise PacketError("malformed", f"{key}: not UTF-8 once decoded") from None
        elif "+" in value:
            value = value.replace("+", " ")
        pairs.append((key, value))
    return pairs


def _requestId(fieldText: str) -> str | None:
    found = _ID.search(fieldText)
    return found.group(1) if found else None


def parseLine(line: bytes, direction: str = "C") -> Packet:
    """
    One line (without its CRLF) into a packet of C{direction} (what this end
    receives: C{C} on a server, C{S} on a client).

    @raise PacketError: C{malformed}, C{unknown_packet}, C{missing_field}
        or C{bad_field}, with the request id when it could be read.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise PacketError("malformed", "a line is UTF-8") from None
    match = _HEADER.match(text)
    if match is None:
        raise PacketError("malformed", "a packet line is IWCS<nnnn><C|S> key=value&...")
    number = int(match.group(1))
    fieldText = match.group(3) or ""
    if match.group(2) != direction:
        raise PacketError(
            "unknown_packet",
            f"IWCS{number:04d}{match.group(2)} goes the other way",
            _requestId(fieldText),
            number,
        )
    table = CLIENT_PACKETS if direction == "C" else SERVER_PACKETS
    cls = table.get(number)
    if cls is None:
        raise PacketError(
            "unknown_packet",
            f"no packet IWCS{number:04d}{direction}",
            _requestId(fieldText),
            number,
        )
    try:
        pairs = splitFields(fieldText)
    except PacketError as e:
        raise PacketError(e.name, e.text, _requestId(fieldText), number) from None
    return cls.fromFields(pairs)


_SECRET = re.compile(r"(?:^|(?<=[ &]))(password|key)=[^&]*")


def maskLine(text: str) -> str:
    """A line as it may be logged: passwords and keys masked."""
    return _SECRET.sub(lambda m: f"{m.group(1)}=********", text)


_KEYS = _allKeys()


# -- from the core's messages --------------------------------------------------------------


def _participantRef(value: Any) -> str:
    return str(value.get("id", "")) if isinstance(value, dict) else ""


def _opNumber(ref: str) -> int:
    return int(ref[3:]) if ref.startswith("op:") and ref[3:].isdigit() else 0


_ROLES: dict[Any, Role] = {r.value: r for r in Role}


def chatEventPacket(message: Mapping[str, Any], visitor: str | None = None) -> Packet | None:
    """The packet of a core C{chat.event}; C{None} for an event type IWCS does not carry."""
    event = message["event"]
    meta = message.get("originatorMetadata") or {}
    role = meta.get("role", Role.SYSTEM)
    role = _ROLES.get(role) or Role(role)
    kind = event.get("type")
    if kind == "ContentEvent":  # the usual one: no dict of common fields to build
        return MessageEvent(
            chat=message["chatId"],
            seq=message.get("sequence"),
            time=int(message.get("serverTimestamp") or 0),
            sender=str(message.get("originatorId", "")),
            role=role,
            name=str(meta.get("name", "")),
            visitor=visitor,
            text=event.get("message", ""),
            content_type=event.get("contentType", "text/plain"),
        )
    common: dict[str, Any] = dict(
        chat=message["chatId"],
        seq=message.get("sequence"),
        time=int(message.get("serverTimestamp") or 0),
        sender=str(message.get("originatorId", "")),
        role=role,
        name=str(meta.get("name", "")),
        visitor=visitor,
    )
    if kind == "ChatStateEvent":
        return StateEvent(state=ChatState(event["chatState"]), **common)
    if kind == "AcceptStatusEvent":
        return ReadEvent(
            status=AcceptStatus(event["status"]), seqs=tuple(event["sequenceList"]), **common
        )
    if kind in ("JoinEvent", "LeaveEvent"):
        who = event.get("participant") or {}
        fields = dict(
            who=str(who.get("id", "")),
            who_role=Role(who.get("role", Role.AGENT)),
            who_name=str(who.get("name", "")),
            **common,
        )
        if kind == "JoinEvent":
            return JoinEvent(**fields)
        return LeaveEvent(reason=str(event.get("reason", "")), **fields)
    if kind == "TransferEvent":
        to = event.get("toOperator")
        return TransferEvent(
            by_status=OperatorStatus(int(event.get("status", 0))),
            to_operator=_participantRef(to) if to else None,
            to_name=str(to.get("name", "")) if to else None,
            to_group=event.get("toGroup"),
            **common,
        )
    if kind == "InviteEvent":
        invited = event.get("invited") or {}
        return InviteEvent(
            who=str(invited.get("id", "")), who_name=str(invited.get("name", "")), **common
        )
    if kind == "CloseEvent":
        return CloseEvent(reason=str(event.get("reason", "")), **common)
    return None


def visitorPacket(v: Mapping[str, Any], requestId: str | None = None) -> VisitorInfo:
    """The VISITOR packet of the core's visitor (C{visitor.update}'s C{visitor})."""
    identity = v.get("identity") or {}
    return VisitorInfo(
        id=requestId,
        visitor=v["id"],
        url=v.get("url") or "",
        title=v.get("title") or "",
        referrer=v.get("referrer") or "",
        agent=v.get("userAgent") or "",
        first_seen=int(v.get("firstSeen") or 0),
        previous_visit=v.get("previousVisit"),
        returning=bool(v.get("returning")),
        visits=int(v.get("visits") or 0),
        pages=int(v.get("pages") or 0),
        visit_started=int(v.get("visitStarted") or 0),
        last_seen=int(v.get("lastSeen") or 0),
        invitation=v.get("invitation") or "",
        name=identity.get("name") or "",
        email=identity.get("email") or "",
        customer_id=identity.get("customerId") or "",
        verified=bool(identity.get("verified")),
        chat=v.get("chatId"),
        connected=bool(v.get("connected")),
    )


def operatorPacket(o: Mapping[str, Any], requestId: str | None = None) -> OperatorInfo:
    """The OPERATOR packet of the core's operator (C{operator.status}'s C{operator})."""
    return OperatorInfo(
        id=requestId,
        operator=_opNumber(str(o["id"])),
        operator_id=o.get("operatorId", ""),
        nick=o.get("nick", ""),
        name=o.get("name", ""),
        status=OperatorStatus(int(o["status"])),
    )


def leftMessagePacket(m: Mapping[str, Any]) -> LeftMessage:
    return LeftMessage(
        message=m["id"],
        time=int(m.get("createdAt") or 0),
        visitor=str(m.get("visitorId", "")),
        group=m.get("group"),
        reason=m.get("reason") or "",
        name=m.get("name") or "",
        email=m.get("email") or "",
        text=m.get("message") or "",
        url=m.get("url") or "",
        language=m.get("language") or "",
        mailed=bool(m.get("mailed")),
        handled=m.get("handledAt"),
        handled_by=m.get("handledBy"),
    )


def packetsFor(message: Mapping[str, Any], visitor: str | None = None) -> list[Packet]:
    """
    The packets that carry one of the core's messages (docs/events.md);
    C{visitor} names the visitor when the receiver is a control.  A message
    type IWCS does not carry gives no packet.
    """
    kind = message.get("type")
    if kind == "chat.event":
        packet = chatEventPacket(message, visitor)
        return [packet] if packet is not None else []
    if kind == "chat.opened":
        with_ = message.get("with")
        return [
            ChatOpened(
                chat=message["chatId"],
                kind=message.get("kind", "visitor"),
                visitor=visitor,
                transferred_by=_participantRef(message.get("transferredBy")) or None,
                with_=tuple(_opNumber(r) for r in with_) if with_ else None,
            )
        ]
    if kind == "chat.offered":
        v = message.get("visitor") or {}
        return [
            ChatOffered(
                chat=message["chatId"],
                visitor=v.get("id") or "",
                name=message.get("name") or "",
                email=message.get("email") or "",
                group=message.get("group"),
                text=message.get("firstMessage") or "",
                expires=int(message.get("expiresIn") or 0),
                url=v.get("url") or "",
            )
        ]
    if kind == "chat.withdrawn":
        return [ChatWithdrawn(chat=message["chatId"], reason=message.get("reason", ""))]
    if kind == "chat.queue":
        return [
            QueuePosition(chat=message["chatId"], position=message["position"], visitor=visitor)
        ]
    if kind == "queue.update":
        return [Queue(chats=tuple(message.get("queue") or ()))]
    if kind == "visitor.update":
        return [visitorPacket(message["visitor"])]
    if kind == "visitor.gone":
        return [VisitorGone(visitor=message["visitorId"])]
    if kind == "operator.status":
        return [operatorPacket(message["operator"])]
    if kind == "licence.status":
        return [LicenceStatus(online=bool(message.get("online")))]
    if kind == "invitation":
        operator = message.get("operator") or {}
        return [
            Invitation(
                visitor=visitor or "",
                invitation=message["invitationId"],
                operator=_participantRef(operator),
                name=str(operator.get("name", "")),
                text=message.get("message") or "",
            )
        ]
    if kind == "invitation.answered":
        return [
            InvitationAnswered(
                invitation=message["invitationId"],
                visitor=message["visitorId"],
                operator=str(message.get("operator", "")),
                accepted=bool(message.get("accepted")),
            )
        ]
    if kind == "conference.invited":
        by = message.get("by") or {}
        return [
            ConferenceInvited(
                chat=message["chatId"], sender=_participantRef(by), name=str(by.get("name", ""))
            )
        ]
    if kind == "offline.messages":
        return [leftMessagePacket(m) for m in message.get("messages") or ()]
    if kind == "offline.message":
        return [leftMessagePacket(message["message"])]
    if kind == "offline.handled":
        return [Handled(ids=tuple(message.get("ids") or ()), by=str(message.get("by", "")))]
    return []


CORE_MESSAGE_TYPES = (
    "chat.event",
    "chat.opened",
    "chat.offered",
    "chat.withdrawn",
    "chat.queue",
    "queue.update",
    "visitor.update",
    "visitor.gone",
    "operator.status",
    "licence.status",
    "invitation",
    "invitation.answered",
    "conference.invited",
    "offline.messages",
    "offline.message",
    "offline.handled",
)
"""The core's message types that IWCS carries (a test checks it is all of them)."""
