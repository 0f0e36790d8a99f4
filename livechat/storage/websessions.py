"""
SQL of the browser sessions (global table C{web_sessions}, delta 003), run
by L{livechat.storage.database.Database.runGlobal}.  L{livechat.websession}
is the only user; it decides what a session means.
"""

from __future__ import annotations

from typing import Any

import attr

from livechat.model import Licence, Operator
from livechat.storage.accounts import getLicence_txn, getOperatorById_txn
from livechat.storage.database import Txn

COLUMNS = (
    "id_hash, scope, licence_id, operator_id, created_at, last_seen, expires_at, "
    "csrf_token, user_agent, address"
)


@attr.s(frozen=True, auto_attribs=True)
class SessionRow:
    """One stored session (times in milliseconds since the epoch)."""

    idHash: str
    scope: str
    licence: int
    operator: int
    createdAt: int
    lastSeen: int
    expiresAt: int
    csrf: str
    userAgent: str = ""
    address: str = ""


def _row(row: tuple[Any, ...]) -> SessionRow:
    return SessionRow(
        idHash=row[0],
        scope=row[1],
        licence=int(row[2]),
        operator=int(row[3]),
        createdAt=int(row[4]),
        lastSeen=int(row[5]),
        expiresAt=int(row[6]),
        csrf=row[7],
        userAgent=row[8],
        address=row[9],
    )


def createSession_txn(txn: Txn, session: SessionRow, maxPerOperator: int, idleMS: int) -> int:
    """
    Store C{session}; first drop the operator's sessions that have ended
    and, beyond C{maxPerOperator - 1} left, the least recently used.

    @return: how many older sessions were dropped.
    """
    now = session.createdAt
    txn.execute(
        "DELETE FROM {web_sessions} WHERE licence_id = ? AND operator_id = ? "
        "AND (expires_at <= ? OR last_seen <= ?)",
        (session.licence, session.operator, now, now - idleMS),
    )
    dropped = max(0, txn.rowcount)
    rows = txn.query(
        "SELECT id_hash FROM {web_sessions} WHERE licence_id = ? AND operator_id = ? "
        "ORDER BY last_seen DESC, created_at DESC",
        (session.licence, session.operator),
    )
    for (idHash,) in rows[max(0, maxPerOperator - 1) :]:
        txn.execute("DELETE FROM {web_sessions} WHERE id_hash = ?", (idHash,))
        dropped += 1
    txn.execute(
        f"INSERT INTO {{web_sessions}} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            session.idHash,
            session.scope,
            session.licence,
            session.operator,
            session.createdAt,
            session.lastSeen,
            session.expiresAt,
            session.csrf,
            session.userAgent,
            session.address,
        ),
    )
    return dropped


def getSession_txn(txn: Txn, idHash: str) -> tuple[SessionRow, Licence, Operator] | None:
    """The session with its licence and operator, or C{None} when there is none."""
    row = txn.queryOne(f"SELECT {COLUMNS} FROM {{web_sessions}} WHERE id_hash = ?", (idHash,))
    if row is None:
        return None
    session = _row(row)
    licence = getLicence_txn(txn, session.licence)
    operator = getOperatorById_txn(txn, session.licence, session.operator)
    if licence is None or operator is None:
        txn.execute("DELETE FROM {web_sessions} WHERE id_hash = ?", (idHash,))
        return None
    return session, licence, operator


def touchSession_txn(txn: Txn, idHash: str, nowMS: int) -> bool:
    """Record use of a session now; whether it still exists."""
    txn.execute(
        "UPDATE {web_sessions} SET last_seen = ? WHERE id_hash = ? AND last_seen < ?",
        (nowMS, idHash, nowMS),
    )
    if txn.rowcount > 0:
        return True
    return txn.queryOne("SELECT 1 FROM {web_sessions} WHERE id_hash = ?", (idHash,)) is not None


def deleteSession_txn(txn: Txn, idHash: str) -> int:
    txn.execute("DELETE FROM {web_sessions} WHERE id_hash = ?", (idHash,))
    return max(0, txn.rowcount)


def deleteOperatorSessions_txn(
    txn: Txn, licence: int, operator: int, scope: str | None = None
) -> list[str]:
    """End every session of an operator (of one scope, or all); the hashes ended."""
    where = "licence_id = ? AND operator_id = ?"
    args: list[Any] = [licence, operator]
    if scope is not None:
        where += " AND scope = ?"
        args.append(scope)
    hashes = [r[0] for r in txn.query(f"SELECT id_hash FROM {{web_sessions}} WHERE {where}", args)]
    txn.execute(f"DELETE FROM {{web_sessions}} WHERE {where}", args)
    return hashes


def listOperatorSessions_txn(txn: Txn, licence: int, operator: int) -> list[SessionRow]:
    rows = txn.query(
        f"SELECT {COLUMNS} FROM {{web_sessions}} WHERE licence_id = ? AND operator_id = ? "
        "ORDER BY created_at",
        (licence, operator),
    )
    return [_row(r) for r in rows]


def purgeSessions_txn(txn: Txn, nowMS: int, idleMS: int) -> int:
    """Drop every session that has ended (absolute or idle expiry); how many."""
    txn.execute(
        "DELETE FROM {web_sessions} WHERE expires_at <= ? OR last_seen <= ?",
        (nowMS, nowMS - idleMS),
    )
    return max(0, txn.rowcount)
