"""
SQL of chats: the chat rows, their participants, their numbered events,
visitors, and the domain events written in the same transaction.

The per-chat sequence is the C{last_seq} column of the chat's row: an append
locks the row (C{FOR UPDATE} on MariaDB; sqlite has one writer), takes the
next numbers, inserts the events and moves C{last_seq} on, all in one
transaction.  So numbers are strictly +1 with no gaps, on every node, and an
event is only ever acknowledged after it is committed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import attr

from livechat import jsontext
from livechat.model import Chat, ChatKind, ChatStatus, VisitorRecord
from livechat.storage.database import Txn
from livechat.storage.errors import Conflict, NotFound
from livechat.storage.settings import logEvent_txn

CHAT_COLUMNS = (
    "id, kind, status, visitor_id, group_id, operator, inviting_operator, name, email, "
    "created_at, assigned_at, accepted_at, closed_at, close_reason, last_seq, pair_key"
)
INVITED = "INVITED"
"""The participant role of an operator invited to a conference, not yet in it."""

_UPDATABLE = {
    "status",
    "group_id",
    "operator",
    "inviting_operator",
    "name",
    "email",
    "assigned_at",
    "accepted_at",
    "closed_at",
    "close_reason",
    "pair_key",
    "visitor_id",
}


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class EventDraft:
    """An event to append: who, in which role, what (the JSON C{event})."""

    originator: str
    role: str
    name: str
    event: dict[str, Any]


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class StoredEvent:
    """An event as committed, with its sequence number and time."""

    chat_id: int
    seq: int
    created_at: int
    originator: str
    role: str
    name: str
    event: dict[str, Any]


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class DomainEvent:
    """A business event for the outside world (the seed's RPC events)."""

    name: str
    fields: dict[str, Any]
    chat_id: int | None = None


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class Participants:
    """Participant changes to make with an append."""

    join: Sequence[tuple[str, str]] = ()
    """(participant, role) joining (or rejoining, or changing role)."""
    leave: Sequence[str] = ()


_encodeBody = jsontext.encoder(sortKeys=True)
"""An event's stored body (as C{json.dumps(body, sort_keys=True)}, with one encoder)."""


def chatFromRow(licence: int, row: Sequence[Any]) -> Chat:
    return Chat(
        id=int(row[0]),
        licence=licence,
        kind=ChatKind(row[1]),
        status=ChatStatus(row[2]),
        visitor_id=row[3],
        group_id=None if row[4] is None else int(row[4]),
        operator=None if row[5] is None else int(row[5]),
        inviting_operator=None if row[6] is None else int(row[6]),
        name=row[7],
        email=row[8],
        created_at=int(row[9]),
        assigned_at=None if row[10] is None else int(row[10]),
        accepted_at=None if row[11] is None else int(row[11]),
        closed_at=None if row[12] is None else int(row[12]),
        close_reason=row[13],
        last_seq=int(row[14]),
        pair_key=row[15],
    )


def _eventFromRow(row: Sequence[Any]) -> StoredEvent:
    body = json.loads(row[6])
    return StoredEvent(
        chat_id=int(row[0]),
        seq=int(row[1]),
        created_at=int(row[2]),
        originator=row[4],
        role=row[5],
        name=body.get("name", ""),
        event=body["event"],
    )


def getChat_txn(txn: Txn, chatId: int, lock: bool = False) -> Chat | None:
    row = txn.queryOne(
        f"SELECT {CHAT_COLUMNS} FROM {{chats}} WHERE id = ?"
        + (txn.engine.forUpdate if lock else ""),
        (chatId,),
    )
    licence = txn.licence or 0
    return None if row is None else chatFromRow(licence, row)


def _setParticipants(txn: Txn, chatId: int, changes: Participants, nowMS: int) -> None:
    for participant, role in changes.join:
        txn.upsert(
            "chat_participants",
            {"chat_id": chatId, "participant": participant},
            {"role": role, "joined_at": nowMS, "left_at": None},
        )
    for participant in changes.leave:
        txn.execute(
            "UPDATE {chat_participants} SET left_at = ? "
            "WHERE chat_id = ? AND participant = ? AND left_at IS NULL",
            (nowMS, chatId, participant),
        )


def _insertEvents(
    txn: Txn, chatId: int, firstSeq: int, drafts: Sequence[EventDraft], nowMS: int
) -> list[StoredEvent]:
    stored = []
    for offset, draft in enumerate(drafts):
        seq = firstSeq + offset
        body = _encodeBody({"event": draft.event, "name": draft.name})
        txn.execute(
            "INSERT INTO {chat_events} (chat_id, seq, created_at, type, originator, role, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (chatId, seq, nowMS, draft.event["type"], draft.originator, str(draft.role), body),
        )
        stored.append(
            StoredEvent(
                chat_id=chatId,
                seq=seq,
                created_at=nowMS,
                originator=draft.originator,
                role=draft.role,
                name=draft.name,
                event=draft.event,
            )
        )
    return stored


def _logDomain(txn: Txn, events: Iterable[DomainEvent], nowMS: int) -> None:
    for event in events:
        logEvent_txn(txn, event.name, event.fields, event.chat_id, nowMS)


def _requireGroup(txn: Txn, groupId: int) -> None:
    """
    The group exists, and stays until this transaction ends (a shared lock
    on MariaDB; sqlite has one writer): a group being deleted meanwhile
    either sees the chat waiting in its queue or is gone first.
    """
    if (
        txn.queryOne("SELECT id FROM {op_groups} WHERE id = ?" + txn.engine.forShare, (groupId,))
        is None
    ):
        raise NotFound(f"group {groupId} does not exist")


def createChat_txn(
    txn: Txn,
    *,
    kind: ChatKind,
    status: ChatStatus,
    nowMS: int,
    visitor_id: str | None = None,
    group_id: int | None = None,
    operator: int | None = None,
    inviting_operator: int | None = None,
    name: str = "",
    email: str = "",
    pair_key: str | None = None,
    participants: Sequence[tuple[str, str]] = (),
    events: Sequence[EventDraft] = (),
    domain: Sequence[DomainEvent] = (),
) -> tuple[Chat, list[StoredEvent], list[DomainEvent]]:
    """Create a chat with its first participants and events."""
    if group_id is not None:
        _requireGroup(txn, group_id)
    if pair_key is not None:
        existing = txn.queryOne("SELECT id FROM {chats} WHERE pair_key = ?", (pair_key,))
        if existing is not None:
            raise Conflict(f"chat {existing[0]} is already open for {pair_key}")
    chatId = txn.insert(
        "INSERT INTO {chats} (kind, status, visitor_id, group_id, operator, inviting_operator, "
        "name, email, created_at, assigned_at, last_seq, pair_key) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            kind.value,
            status.value,
            visitor_id,
            group_id,
            operator,
            inviting_operator,
            name,
            email,
            nowMS,
            nowMS if operator is not None else None,
            len(events),
            pair_key,
        ),
    )
    _setParticipants(txn, chatId, Participants(join=participants), nowMS)
    stored = _insertEvents(txn, chatId, 1, events, nowMS)
    logged = [attr.evolve(d, chat_id=chatId) for d in domain]
    _logDomain(txn, logged, nowMS)
    chat = getChat_txn(txn, chatId)
    assert chat is not None
    return chat, stored, logged


class WrongState(Exception):
    """The chat is not in a state that allows the change."""

    def __init__(self, chat: Chat) -> None:
        super().__init__(f"chat {chat.id} is {chat.status.value}")
        self.chat = chat


def _isParticipant(txn: Txn, chatId: int, participant: str, invited: bool) -> bool:
    row = txn.queryOne(
        "SELECT role FROM {chat_participants} "
        "WHERE chat_id = ? AND participant = ? AND left_at IS NULL",
        (chatId, participant),
    )
    return row is not None and (row[0] == INVITED) == invited


class NotParticipant(Exception):
    """The originator is not (or no longer) a participant of the chat."""


def appendEvents_txn(
    txn: Txn,
    chatId: int,
    events: Sequence[EventDraft] | Callable[[Chat], Sequence[EventDraft]],
    nowMS: int,
    *,
    require: Iterable[ChatStatus] | None = None,
    requireParticipant: str | None = None,
    requireInvited: str | None = None,
    update: dict[str, Any] | None = None,
    participants: Participants | None = None,
    domain: Sequence[DomainEvent] = (),
    domainAfter: Any = None,
) -> tuple[Chat, list[StoredEvent], list[DomainEvent]]:
    """
    Append C{events} to a chat with the next sequence numbers; in the same
    transaction change the chat's row, its participants, and log C{domain}
    events.

    @param events: the events, or a function of the locked chat row giving
        them (for a role that depends on who is assigned now).
    @param require: the chat must be in one of these states (else WrongState).
    @param requireParticipant: this participant must be in the chat (not
        checked for the team chat, which every operator is in); one only
        invited is not in it yet.
    @param requireInvited: this participant must be invited to the chat.
    @param domainAfter: optional C{f(chat_after, stored_events, txn) ->
        [DomainEvent]} for domain events that need the result (a transcript).
    @return: the chat as it is after the change, the stored events, and the
        domain events logged.
    """
    chat = getChat_txn(txn, chatId, lock=True)
    if chat is None:
        raise NotFound(f"chat {chatId} does not exist")
    if require is not None and chat.status not in set(require):
        raise WrongState(chat)
    if requireParticipant is not None and chat.kind is not ChatKind.TEAM:
        if not _isParticipant(txn, chatId, requireParticipant, invited=False):
            raise NotParticipant(f"{requireParticipant} is not in chat {chatId}")
    if requireInvited is not None:
        if not _isParticipant(txn, chatId, requireInvited, invited=True):
            raise NotParticipant(f"{requireInvited} is not invited to chat {chatId}")
    if update and update.get("group_id") is not None:
        _requireGroup(txn, update["group_id"])
    if callable(events):
        events = events(chat)
    stored = _insertEvents(txn, chatId, chat.last_seq + 1, events, nowMS)
    columns = dict(update or {})
    unknown = set(columns) - _UPDATABLE
    if unknown:
        raise ValueError(f"cannot update chat columns {sorted(unknown)}")
    columns["last_seq"] = chat.last_seq + len(events)
    values = [v.value if isinstance(v, (ChatStatus, ChatKind)) else v for v in columns.values()]
    sets = ", ".join(f"{name} = ?" for name in columns)
    txn.execute(f"UPDATE {{chats}} SET {sets} WHERE id = ?", (*values, chatId))
    if participants is not None:
        _setParticipants(txn, chatId, participants, nowMS)
    # The row as it is now: the locked one with the columns just set (no
    # second read; the columns are the Chat's attributes of the same name).
    if "status" in columns:
        columns["status"] = ChatStatus(columns["status"])
    after = attr.evolve(chat, **columns)
    more = list(domain)
    if domainAfter is not None:
        more.extend(domainAfter(after, stored, txn))
    logged = [attr.evolve(d, chat_id=d.chat_id or chatId) for d in more]
    _logDomain(txn, logged, nowMS)
    return after, stored, logged


AppendRequest = tuple[int, Any, int, dict[str, Any]]
"""One L{appendEvents_txn} call for L{appendBatch_txn}: chat id, events, nowMS, options."""


def appendBatch_txn(txn: Txn, requests: Sequence[AppendRequest]) -> list[tuple[bool, Any]]:
    """
    Several L{appendEvents_txn} calls in one transaction (group commit),
    each in a savepoint of its own: a request refused (a closed chat, a
    participant who left) is undone alone and the others still commit.

    Requests run in the order given, so the appends of one chat keep their
    order.  An error that spoils the whole transaction (a deadlock, a lost
    connection: the engine's retryable and connection errors) is raised, and
    the caller runs the whole batch again.

    @return: per request, C{(True, appendEvents_txn's result)} or
        C{(False, the exception)}.
    """
    if len(requests) == 1:
        chatId, events, nowMS, options = requests[0]
        return [(True, appendEvents_txn(txn, chatId, events, nowMS, **options))]
    txn.begin()
    outcomes: list[tuple[bool, Any]] = []
    index = 0
    while index < len(requests):
        # Runs of plain appends (messages, receipts) go in bulk; the rest one
        # by one, each in a savepoint.  Order is kept either way.
        end = index
        while end < len(requests) and _plain(requests[end]):
            end += 1
        if end - index > 1:
            outcomes.extend(_appendPlain_txn(txn, requests[index:end]))
            index = end
        else:
            outcomes.append(_appendOne_txn(txn, requests[index]))
            index += 1
    return outcomes


_PLAIN_OPTIONS = frozenset({"require", "requireParticipant"})


def _plain(request: AppendRequest) -> bool:
    """An append that only adds events (no state change, participants, domain events)."""
    return _PLAIN_OPTIONS.issuperset(request[3])


def _withLastSeq(chat: Chat, lastSeq: int) -> Chat:
    """
    C{attr.evolve(chat, last_seq=lastSeq)} for a message's append: the same
    frozen fields, one changed, without evolve's walk over all of them.
    """
    copy = object.__new__(Chat)
    copy.__dict__.update(chat.__dict__)
    copy.__dict__["last_seq"] = lastSeq
    return copy


_CHUNKS = (64, 32, 16, 8, 4, 2, 1)


def _insertRows(txn: Txn, head: str, values: str, rows: list[tuple[Any, ...]]) -> None:
    """
    C{head} + C{values} for each of C{rows}, as multi-row INSERTs of 64,
    32, ... 1 rows: a few statements (each one step of sqlite, which lets
    go of Python's lock once, not once a row as executemany does) of a few
    texts (sqlite's statement cache keeps them).
    """
    for chunk in _chunks(rows):
        txn.execute(head + ", ".join([values] * len(chunk)), [v for row in chunk for v in row])


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    """C{items} in runs of 64, 32, ... 1: few sizes, so few statement texts."""
    done = 0
    for size in _CHUNKS:
        while len(items) - done >= size:
            yield items[done : done + size]
            done += size


def _moveLastSeqs(txn: Txn, seqs: list[tuple[int, int]]) -> None:
    """Set the chats' C{last_seq}s, C{(chat id, sequence)}: one UPDATE per chunk, not per chat."""
    for chunk in _chunks(seqs):
        txn.execute(
            "UPDATE {chats} SET last_seq = CASE id "
            + " ".join(["WHEN ? THEN ?"] * len(chunk))
            + " END WHERE id IN ("
            + ", ".join(["?"] * len(chunk))
            + ")",
            [v for pair in chunk for v in pair] + [chatId for chatId, _ in chunk],
        )


def _appendPlain_txn(txn: Txn, requests: Sequence[AppendRequest]) -> list[tuple[bool, Any]]:
    """
    Plain appends in bulk: their chats read (and locked) in one query, the
    participants in one, the events inserted and the sequences moved on with
    one statement each (executemany).  The same checks and results as
    L{appendEvents_txn}, one after the other; a refused one changes nothing.
    If a write fails for a reason of its own, the run is undone and done
    again one by one, so the failing append alone is refused.
    """
    ids = sorted({r[0] for r in requests})
    marks = ", ".join("?" for _ in ids)
    chats = {
        int(row[0]): chatFromRow(txn.licence or 0, row)
        for row in txn.query(
            f"SELECT {CHAT_COLUMNS} FROM {{chats}} WHERE id IN ({marks}) ORDER BY id"
            + txn.engine.forUpdate,
            ids,
        )
    }
    members = {
        (int(row[0]), row[1])
        for row in txn.query(
            "SELECT chat_id, participant, role FROM {chat_participants} "
            f"WHERE left_at IS NULL AND chat_id IN ({marks})",
            ids,
        )
        if row[2] != INVITED
    }
    outcomes: list[tuple[bool, Any]] = []
    rows: list[tuple[Any, ...]] = []
    touched: dict[int, Chat] = {}
    for chatId, events, nowMS, options in requests:
        chat = chats.get(chatId)
        try:
            if chat is None:
                raise NotFound(f"chat {chatId} does not exist")
            require = options.get("require")
            if require is not None and chat.status not in set(require):
                raise WrongState(chat)
            who = options.get("requireParticipant")
            if who is not None and chat.kind is not ChatKind.TEAM and (chatId, who) not in members:
                raise NotParticipant(f"{who} is not in chat {chatId}")
            drafts = events(chat) if callable(events) else events
        except Exception as e:  # refused before anything of it was written
            outcomes.append((False, e))
            continue
        stored = []
        for offset, draft in enumerate(drafts):
            seq = chat.last_seq + 1 + offset
            body = _encodeBody({"event": draft.event, "name": draft.name})
            # str(): a Role (a str subclass) would go through sqlite3's
            # adapter lookup, an AttributeError raised and formatted per row.
            rows.append(
                (chatId, seq, nowMS, draft.event["type"], draft.originator, str(draft.role), body)
            )
            stored.append(
                StoredEvent(
                    chat_id=chatId,
                    seq=seq,
                    created_at=nowMS,
                    originator=draft.originator,
                    role=draft.role,
                    name=draft.name,
                    event=draft.event,
                )
            )
        chat = chats[chatId] = touched[chatId] = _withLastSeq(chat, chat.last_seq + len(drafts))
        outcomes.append((True, (chat, stored, [])))
    if not rows:
        return outcomes
    txn.savepoint("lc_bulk")
    try:
        if txn.dialect == "sqlite":
            # The global order of chat events (gid, for the webhooks' cursor):
            # given here, one writer, rather than by the trigger's update of
            # each row after its insert.
            top = txn.queryOne("SELECT COALESCE(MAX(gid), 0) FROM {chat_events}")
            first = int(top[0]) + 1 if top else 1
            _insertRows(
                txn,
                "INSERT INTO {chat_events} "
                "(chat_id, seq, created_at, type, originator, role, body, gid) VALUES ",
                "(?, ?, ?, ?, ?, ?, ?, ?)",
                [row + (first + n,) for n, row in enumerate(rows)],
            )
        else:
            txn.executeMany(
                "INSERT INTO {chat_events} "
                "(chat_id, seq, created_at, type, originator, role, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        _moveLastSeqs(txn, [(chatId, chat.last_seq) for chatId, chat in touched.items()])
    except Exception as e:
        if txn.engine.isRetryable(e) or txn.engine.isConnectionError(e):
            raise
        txn.rollbackToSavepoint("lc_bulk")
        return [_appendOne_txn(txn, r) for r in requests]
    txn.releaseSavepoint("lc_bulk")
    return outcomes


def _appendOne_txn(txn: Txn, request: AppendRequest) -> tuple[bool, Any]:
    """One append of a batch, in a savepoint: refused alone."""
    chatId, events, nowMS, options = request
    txn.savepoint("lc_append")
    try:
        result = appendEvents_txn(txn, chatId, events, nowMS, **options)
    except Exception as e:
        if txn.engine.isRetryable(e) or txn.engine.isConnectionError(e):
            raise
        try:
            txn.rollbackToSavepoint("lc_append")
        except Exception:
            raise e from None
        return (False, e)
    txn.releaseSavepoint("lc_append")
    return (True, result)


def eventsAfter_txn(txn: Txn, chatId: int, afterSeq: int, limit: int) -> list[StoredEvent]:
    rows = txn.query(
        "SELECT chat_id, seq, created_at, type, originator, role, body FROM {chat_events} "
        "WHERE chat_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        (chatId, afterSeq, limit),
    )
    return [_eventFromRow(r) for r in rows]


def eventsBetween_txn(txn: Txn, chatId: int, afterSeq: int, beforeSeq: int) -> list[StoredEvent]:
    rows = txn.query(
        "SELECT chat_id, seq, created_at, type, originator, role, body FROM {chat_events} "
        "WHERE chat_id = ? AND seq > ? AND seq < ? ORDER BY seq",
        (chatId, afterSeq, beforeSeq),
    )
    return [_eventFromRow(r) for r in rows]


def participants_txn(txn: Txn, chatId: int, activeOnly: bool = True) -> list[tuple[str, str]]:
    sql = "SELECT participant, role FROM {chat_participants} WHERE chat_id = ?"
    if activeOnly:
        sql += " AND left_at IS NULL"
    return [(r[0], r[1]) for r in txn.query(sql + " ORDER BY joined_at, participant", (chatId,))]


def openChatsOf_txn(txn: Txn, participant: str) -> list[Chat]:
    """Chats not closed in which C{participant} is (still) a participant."""
    rows = txn.query(
        f"SELECT {', '.join('c.' + c.strip() for c in CHAT_COLUMNS.split(','))} "
        "FROM {chats} c JOIN {chat_participants} p ON p.chat_id = c.id "
        "WHERE p.participant = ? AND p.left_at IS NULL AND p.role <> 'INVITED' "
        "AND c.status <> 'closed' ORDER BY c.id",
        (participant,),
    )
    return [chatFromRow(txn.licence or 0, r) for r in rows]


def chatsByStatus_txn(txn: Txn, statuses: Sequence[ChatStatus]) -> list[Chat]:
    marks = ", ".join("?" for _ in statuses)
    rows = txn.query(
        f"SELECT {CHAT_COLUMNS} FROM {{chats}} WHERE status IN ({marks}) ORDER BY id",
        tuple(s.value for s in statuses),
    )
    return [chatFromRow(txn.licence or 0, r) for r in rows]


def chatsOfOperator_txn(txn: Txn, operator: int) -> list[Chat]:
    """Chats offered to or held by the operator now (what counts against them)."""
    rows = txn.query(
        f"SELECT {CHAT_COLUMNS} FROM {{chats}} WHERE operator = ? AND status IN (?, ?) ORDER BY id",
        (operator, ChatStatus.ASSIGNED.value, ChatStatus.ACTIVE.value),
    )
    return [chatFromRow(txn.licence or 0, r) for r in rows]


def chatsOfVisitor_txn(txn: Txn, visitorId: str, limit: int) -> list[Chat]:
    rows = txn.query(
        f"SELECT {CHAT_COLUMNS} FROM {{chats}} WHERE visitor_id = ? ORDER BY id DESC LIMIT ?",
        (visitorId, limit),
    )
    return [chatFromRow(txn.licence or 0, r) for r in rows]


def teamChat_txn(txn: Txn, nowMS: int) -> Chat:
    """The licence's team chat, created on first use."""
    row = txn.queryOne(f"SELECT {CHAT_COLUMNS} FROM {{chats}} WHERE pair_key = 'team'")
    if row is not None:
        return chatFromRow(txn.licence or 0, row)
    chat, _, _ = createChat_txn(
        txn, kind=ChatKind.TEAM, status=ChatStatus.ACTIVE, nowMS=nowMS, pair_key="team"
    )
    return chat


def openPair_txn(txn: Txn, pairKey: str) -> Chat | None:
    row = txn.queryOne(f"SELECT {CHAT_COLUMNS} FROM {{chats}} WHERE pair_key = ?", (pairKey,))
    return None if row is None else chatFromRow(txn.licence or 0, row)


def transcript_txn(txn: Txn, chatId: int) -> list[StoredEvent]:
    """The chat's messages (ContentEvents), in order."""
    rows = txn.query(
        "SELECT chat_id, seq, created_at, type, originator, role, body FROM {chat_events} "
        "WHERE chat_id = ? AND type = 'ContentEvent' ORDER BY seq",
        (chatId,),
    )
    return [_eventFromRow(r) for r in rows]


# -- visitors ------------------------------------------------------------------


def _visitorFromRow(row: Sequence[Any]) -> VisitorRecord:
    return VisitorRecord(
        id=row[0],
        first_seen=int(row[1]),
        last_seen=int(row[2]),
        visits=int(row[3]),
        name=row[4],
        email=row[5],
        customer_id=row[6],
        verified=bool(row[7]),
    )


def getVisitor_txn(txn: Txn, visitorId: str) -> VisitorRecord | None:
    row = txn.queryOne(
        "SELECT id, first_seen, last_seen, visits, name, email, customer_id, verified "
        "FROM {visitors} WHERE id = ?",
        (visitorId,),
    )
    return None if row is None else _visitorFromRow(row)


def recordVisit_txn(
    txn: Txn, visitorId: str, nowMS: int, newVisit: bool, identity: dict[str, Any] | None
) -> VisitorRecord:
    """
    Note that a visitor was seen: a new visit counts one more; identity
    fields (name, email, customer_id, verified) are set when given.
    """
    existing = getVisitor_txn(txn, visitorId)
    if existing is None:
        txn.execute(
            "INSERT INTO {visitors} (id, first_seen, last_seen, visits) VALUES (?, ?, ?, 1)",
            (visitorId, nowMS, nowMS),
        )
    else:
        txn.execute(
            "UPDATE {visitors} SET last_seen = ?, visits = visits + ? WHERE id = ?",
            (nowMS, 1 if newVisit else 0, visitorId),
        )
    if identity:
        fields = {
            k: identity[k] for k in ("name", "email", "customer_id", "verified") if k in identity
        }
        if "verified" in fields:
            fields["verified"] = int(bool(fields["verified"]))
        if fields:
            sets = ", ".join(f"{k} = ?" for k in fields)
            txn.execute(
                f"UPDATE {{visitors}} SET {sets} WHERE id = ?", (*fields.values(), visitorId)
            )
    record = getVisitor_txn(txn, visitorId)
    assert record is not None
    return record
