"""
SQL of a licence's own database: settings, groups, the event log.

Every function here runs through
L{livechat.storage.database.Database.runLicence}, so its C{{table}} tokens
resolve to that one licence's tables and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from livechat.model import Group
from livechat.storage.database import Txn
from livechat.storage.errors import Conflict, NotFound


def getSetting_txn(txn: Txn, name: str) -> str | None:
    row = txn.queryOne("SELECT value FROM {settings} WHERE name = ?", (name,))
    return None if row is None else row[0]


def setSetting_txn(txn: Txn, name: str, value: str) -> None:
    txn.upsert("settings", {"name": name}, {"value": value})


def _groupFromRow(row: tuple[Any, ...]) -> Group:
    return Group(id=int(row[0]), name=row[1], description=row[2], created_at=int(row[3]))


def createGroup_txn(txn: Txn, name: str, description: str, nowMS: int) -> Group:
    name = name.strip()
    if not name:
        raise ValueError("a group needs a name")
    key = name.casefold()
    if txn.queryOne("SELECT 1 FROM {op_groups} WHERE name_key = ?", (key,)):
        raise Conflict(f"group {name!r} exists already")
    newId = txn.insert(
        "INSERT INTO {op_groups} (name, name_key, description, created_at) VALUES (?, ?, ?, ?)",
        (name, key, description, nowMS),
    )
    return Group(id=newId, name=name, description=description, created_at=nowMS)


GROUP_SETTINGS = ("office.hours", "office.switch")
"""Settings a group may have of its own, named C{<setting>.<group id>}."""


def updateGroup_txn(
    txn: Txn, groupId: int, name: str | None = None, description: str | None = None
) -> Group:
    """Rename a group and/or change its description; the group as it is now."""
    row = txn.queryOne(
        "SELECT id, name, description, created_at FROM {op_groups} WHERE id = ?", (groupId,)
    )
    if row is None:
        raise NotFound(f"group {groupId} does not exist")
    group = _groupFromRow(row)
    if name is not None:
        name = name.strip()
        if not name:
            raise ValueError("a group needs a name")
        key = name.casefold()
        if txn.queryOne("SELECT 1 FROM {op_groups} WHERE name_key = ? AND id <> ?", (key, groupId)):
            raise Conflict(f"group {name!r} exists already")
        txn.execute(
            "UPDATE {op_groups} SET name = ?, name_key = ? WHERE id = ?", (name, key, groupId)
        )
    if description is not None:
        txn.execute("UPDATE {op_groups} SET description = ? WHERE id = ?", (description, groupId))
    return Group(
        id=group.id,
        name=group.name if name is None else name,
        description=group.description if description is None else description,
        created_at=group.created_at,
    )


def deleteGroup_txn(txn: Txn, groupId: int) -> None:
    """
    Remove a group, its members and its own settings.  Refused (L{Conflict})
    while chats wait in its queue: nobody would be offered them.  Chats it
    had keep its id (reports, transcripts); ids are never given again.
    """
    if (
        txn.queryOne("SELECT 1 FROM {op_groups} WHERE id = ?" + txn.engine.forUpdate, (groupId,))
        is None
    ):
        raise NotFound(f"group {groupId} does not exist")
    # A locking read: it sees chats committed while this waited for the
    # group's row (not the snapshot of a plain read on MariaDB).
    waiting = txn.queryOne(
        "SELECT COUNT(*) FROM {chats} WHERE group_id = ? AND status IN (?, ?)"
        + txn.engine.forShare,
        (groupId, "requested", "queued"),
    )
    if waiting and int(waiting[0]):
        raise Conflict(
            f"group {groupId} has {int(waiting[0])} chat(s) waiting; "
            "they must be taken or end before the group goes"
        )
    txn.execute("DELETE FROM {group_members} WHERE group_id = ?", (groupId,))
    txn.execute("DELETE FROM {op_groups} WHERE id = ?", (groupId,))
    for setting in GROUP_SETTINGS:
        txn.execute("DELETE FROM {settings} WHERE name = ?", (f"{setting}.{groupId}",))


def listGroups_txn(txn: Txn) -> list[Group]:
    rows = txn.query("SELECT id, name, description, created_at FROM {op_groups} ORDER BY name_key")
    return [_groupFromRow(r) for r in rows]


def setGroupMembers_txn(txn: Txn, groupId: int, operatorIds: Iterable[int]) -> None:
    if txn.queryOne("SELECT 1 FROM {op_groups} WHERE id = ?", (groupId,)) is None:
        raise NotFound(f"group {groupId} does not exist")
    txn.execute("DELETE FROM {group_members} WHERE group_id = ?", (groupId,))
    for operator in sorted(set(operatorIds)):
        txn.execute(
            "INSERT INTO {group_members} (group_id, operator) VALUES (?, ?)",
            (groupId, operator),
        )


def groupMembers_txn(txn: Txn, groupId: int) -> list[int]:
    rows = txn.query(
        "SELECT operator FROM {group_members} WHERE group_id = ? ORDER BY operator",
        (groupId,),
    )
    return [int(r[0]) for r in rows]


def logEvent_txn(
    txn: Txn, event: str, payload: dict[str, Any], chatId: int | None, nowMS: int
) -> int:
    return txn.insert(
        "INSERT INTO {event_log} (created_at, event, chat_id, payload) VALUES (?, ?, ?, ?)",
        (nowMS, event, chatId, json.dumps(payload, sort_keys=True)),
    )


def events_txn(
    txn: Txn, sinceId: int, limit: int, event: str | None = None, chatId: int | None = None
) -> list[tuple[int, int, str, int | None, dict[str, Any]]]:
    """Events after C{sinceId} by id; only C{event}'s, only C{chatId}'s when given."""
    where: list[str] = ["id > ?"]
    args: list[Any] = [sinceId]
    if event is not None:
        where.append("event = ?")
        args.append(event)
    if chatId is not None:
        where.append("chat_id = ?")
        args.append(chatId)
    rows = txn.query(
        "SELECT id, created_at, event, chat_id, payload FROM {event_log} "
        f"WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
        (*args, limit),
    )
    return [
        (int(r[0]), int(r[1]), r[2], None if r[3] is None else int(r[3]), json.loads(r[4]))
        for r in rows
    ]


def groupsOf_txn(txn: Txn, operatorId: int) -> list[int]:
    rows = txn.query(
        "SELECT group_id FROM {group_members} WHERE operator = ? ORDER BY group_id", (operatorId,)
    )
    return [int(r[0]) for r in rows]


def groupExists_txn(txn: Txn, groupId: int) -> bool:
    return txn.queryOne("SELECT 1 FROM {op_groups} WHERE id = ?", (groupId,)) is not None
