"""
SQL for the REST API's reading of a licence's chats: filtered lists and
text search (run through L{livechat.storage.database.Database.runLicence}).
"""

from __future__ import annotations

import json
from typing import Any

from livechat.model import Chat
from livechat.storage.chats import CHAT_COLUMNS, chatFromRow
from livechat.storage.database import Txn


def _like(text: str) -> str:
    """A LIKE pattern matching C{text} as stored in the JSON bodies (escape: !)."""
    encoded = json.dumps(text)[1:-1]
    escaped = encoded.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f"%{escaped}%"


def listChats_txn(
    txn: Txn,
    *,
    after: int = 0,
    limit: int = 50,
    since: int | None = None,
    until: int | None = None,
    operator: int | None = None,
    visitor: str | None = None,
    status: str | None = None,
    kind: str | None = None,
    text: str | None = None,
) -> list[Chat]:
    """Chats with id > C{after}, oldest first, matching every filter given."""
    where: list[str] = ["id > ?"]
    args: list[Any] = [after]
    if since is not None:
        where.append("created_at >= ?")
        args.append(since)
    if until is not None:
        where.append("created_at < ?")
        args.append(until)
    if operator is not None:
        where.append(
            "(operator = ? OR id IN "
            "(SELECT chat_id FROM {chat_participants} WHERE participant = ?))"
        )
        args += [operator, f"op:{operator}"]
    if visitor is not None:
        where.append("visitor_id = ?")
        args.append(visitor)
    if status is not None:
        where.append("status = ?")
        args.append(status)
    if kind is not None:
        where.append("kind = ?")
        args.append(kind)
    if text:
        where.append(
            "id IN (SELECT chat_id FROM {chat_events} WHERE type = 'ContentEvent' "
            "AND body LIKE ? ESCAPE '!')"
        )
        args.append(_like(text))
    rows = txn.query(
        f"SELECT {CHAT_COLUMNS} FROM {{chats}} WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
        (*args, limit),
    )
    return [chatFromRow(txn.licence or 0, r) for r in rows]


def chatJSON(chat: Chat) -> dict[str, Any]:
    return {
        "id": chat.id,
        "kind": chat.kind.value,
        "status": chat.status.value,
        "visitorId": chat.visitor_id,
        "groupId": chat.group_id,
        "operatorId": chat.operator,
        "name": chat.name,
        "email": chat.email,
        "createdAt": chat.created_at,
        "acceptedAt": chat.accepted_at,
        "closedAt": chat.closed_at,
        "closeReason": chat.close_reason,
        "lastSequence": chat.last_seq,
    }
