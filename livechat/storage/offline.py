"""
SQL of the messages visitors leave when nobody takes chats (outside office
hours, or no operator available): the C{offline_messages} table of a
licence's database.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attr

from livechat.storage.database import Txn

COLUMNS = (
    "id, created_at, visitor_id, group_id, reason, name, email, message, url, address, "
    "language, mailed_at, handled_at, handled_by"
)


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class OfflineMessage:
    """A message left by a visitor."""

    id: int
    created_at: int
    visitor_id: str
    group_id: int | None = None
    reason: str = ""
    """C{closed} (outside office hours) or C{offline} (nobody available)."""
    name: str = ""
    email: str = ""
    message: str = ""
    url: str = ""
    address: str = ""
    language: str = "en"
    mailed_at: int | None = None
    handled_at: int | None = None
    handled_by: int | None = None

    def toJSON(self) -> dict[str, Any]:
        """As operators receive it (the visitor's address is left out)."""
        return {
            "id": self.id,
            "createdAt": self.created_at,
            "visitorId": self.visitor_id,
            "group": self.group_id,
            "reason": self.reason,
            "name": self.name,
            "email": self.email,
            "message": self.message,
            "url": self.url,
            "language": self.language,
            "mailed": self.mailed_at is not None,
            "handledAt": self.handled_at,
            "handledBy": self.handled_by,
        }


def _fromRow(row: Any) -> OfflineMessage:
    def optional(value: Any) -> int | None:
        return None if value is None else int(value)

    return OfflineMessage(
        id=int(row[0]),
        created_at=int(row[1]),
        visitor_id=row[2],
        group_id=optional(row[3]),
        reason=row[4],
        name=row[5],
        email=row[6],
        message=row[7],
        url=row[8],
        address=row[9],
        language=row[10],
        mailed_at=optional(row[11]),
        handled_at=optional(row[12]),
        handled_by=optional(row[13]),
    )


def leaveMessage_txn(txn: Txn, fields: dict[str, Any], nowMS: int) -> OfflineMessage:
    """Store a message; C{fields} are the columns of L{OfflineMessage} but the times."""
    row = dict(fields)
    names = [
        "visitor_id",
        "group_id",
        "reason",
        "name",
        "email",
        "message",
        "url",
        "address",
        "language",
    ]
    newId = txn.insert(
        "INSERT INTO {offline_messages} (created_at, "
        + ", ".join(names)
        + ") VALUES (?, "
        + ", ".join("?" for _ in names)
        + ")",
        (nowMS, *(row.get(n, "" if n != "group_id" else None) for n in names)),
    )
    found = getMessage_txn(txn, newId)
    assert found is not None
    return found


def getMessage_txn(txn: Txn, messageId: int) -> OfflineMessage | None:
    row = txn.queryOne(f"SELECT {COLUMNS} FROM {{offline_messages}} WHERE id = ?", (messageId,))
    return None if row is None else _fromRow(row)


def messages_txn(txn: Txn, pendingOnly: bool, limit: int) -> list[OfflineMessage]:
    """The newest C{limit} messages (not yet handled, with C{pendingOnly}), oldest first."""
    where = "WHERE handled_at IS NULL " if pendingOnly else ""
    rows = txn.query(
        f"SELECT {COLUMNS} FROM {{offline_messages}} {where}ORDER BY id DESC LIMIT ?", (limit,)
    )
    return [_fromRow(r) for r in reversed(rows)]


def markMailed_txn(txn: Txn, messageId: int, nowMS: int) -> None:
    txn.execute("UPDATE {offline_messages} SET mailed_at = ? WHERE id = ?", (nowMS, messageId))


def markHandled_txn(txn: Txn, messageIds: Iterable[int], operator: int, nowMS: int) -> list[int]:
    """Mark messages handled by C{operator}; return the ids that were pending."""
    done = []
    for messageId in sorted(set(messageIds)):
        txn.execute(
            "UPDATE {offline_messages} SET handled_at = ?, handled_by = ? "
            "WHERE id = ? AND handled_at IS NULL",
            (nowMS, operator, messageId),
        )
        if txn.rowcount > 0:
            done.append(messageId)
    return done
