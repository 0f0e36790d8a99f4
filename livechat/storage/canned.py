"""
SQL of the canned responses (licence delta 005), run in one licence's
database by L{livechat.storage.store.SqlLicenceStore}.  A response belongs
to the licence (C{operator_id} NULL: everyone sees it) or to one operator.
Who may change which is the caller's rule (L{livechat.agent.canned}).
"""

from __future__ import annotations

from typing import Any

import attr

from livechat.storage.database import Txn
from livechat.storage.errors import NotFound

COLUMNS = "id, operator_id, shortcut, text, created_at, updated_at"


class TooMany(ValueError):
    """The licence keeps as many canned responses as it may."""


@attr.s(frozen=True, auto_attribs=True)
class CannedResponse:
    id: int
    operator: int | None
    """The owner; C{None} for the licence's."""
    shortcut: str
    text: str
    createdAt: int
    updatedAt: int

    def toJSON(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scope": "licence" if self.operator is None else "operator",
            "operatorId": self.operator,
            "shortcut": self.shortcut,
            "text": self.text,
            "createdAt": self.createdAt,
            "updatedAt": self.updatedAt,
        }


def _row(row: tuple[Any, ...]) -> CannedResponse:
    return CannedResponse(
        id=int(row[0]),
        operator=None if row[1] is None else int(row[1]),
        shortcut=row[2],
        text=row[3],
        createdAt=int(row[4]),
        updatedAt=int(row[5]),
    )


def list_txn(txn: Txn, operator: int) -> list[CannedResponse]:
    """The licence's responses and C{operator}'s own, by shortcut."""
    rows = txn.query(
        f"SELECT {COLUMNS} FROM {{canned_responses}} "
        "WHERE operator_id IS NULL OR operator_id = ? ORDER BY shortcut, id",
        (operator,),
    )
    return [_row(r) for r in rows]


def get_txn(txn: Txn, cannedId: int) -> CannedResponse | None:
    row = txn.queryOne(f"SELECT {COLUMNS} FROM {{canned_responses}} WHERE id = ?", (cannedId,))
    return None if row is None else _row(row)


def create_txn(
    txn: Txn, owner: int | None, shortcut: str, text: str, nowMS: int, maxPerLicence: int
) -> CannedResponse:
    row = txn.queryOne("SELECT COUNT(*) FROM {canned_responses}")
    if row is not None and int(row[0]) >= maxPerLicence:
        raise TooMany(f"the licence keeps at most {maxPerLicence} canned responses")
    newId = txn.insert(
        "INSERT INTO {canned_responses} (operator_id, shortcut, text, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (owner, shortcut, text, nowMS, nowMS),
    )
    return CannedResponse(newId, owner, shortcut, text, nowMS, nowMS)


def update_txn(
    txn: Txn, cannedId: int, owner: int | None, shortcut: str, text: str, nowMS: int
) -> CannedResponse:
    """Change a response of C{owner} (C{None}: the licence's); L{NotFound} otherwise."""
    found = get_txn(txn, cannedId)
    if found is None or found.operator != owner:
        raise NotFound(f"no canned response {cannedId}")
    txn.execute(
        "UPDATE {canned_responses} SET shortcut = ?, text = ?, updated_at = ? WHERE id = ?",
        (shortcut, text, nowMS, cannedId),
    )
    return attr.evolve(found, shortcut=shortcut, text=text, updatedAt=nowMS)


def delete_txn(txn: Txn, cannedId: int, owner: int | None) -> None:
    found = get_txn(txn, cannedId)
    if found is None or found.operator != owner:
        raise NotFound(f"no canned response {cannedId}")
    txn.execute("DELETE FROM {canned_responses} WHERE id = ?", (cannedId,))
