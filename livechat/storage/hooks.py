"""
SQL of webhooks, apps and event delivery (the durable outbox).

The outbox is the event tables the core already writes in the transaction
of each change: a licence's C{event_log} (the seed's RPC events) and
C{chat_events} (what apps are notified of), and the global
C{account_events}.  The webhook worker reads them with a cursor per source
(L{fanOut_txn}), writes one C{deliveries} row per endpoint that wants the
event (idempotent: C{(endpoint, event_key)} is unique), and then tracks each
row until it is delivered or dead (L{claimDue_txn}, L{recordResult_txn}).

On MariaDB auto-increment ids are handed out at insert and may commit out
of order, so a cursor must not skip an id that is missing now but may
still commit: L{advanceCursor} only moves past such a gap once it has been
missing for C{gapWait} seconds (a rolled-back transaction).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import attr

from livechat.storage.database import Txn
from livechat.storage.errors import NotFound

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"
STATES = (PENDING, DELIVERED, DEAD)

DELIVERY_COLUMNS = (
    "id, endpoint, event_key, event, chat_id, order_key, order_no, state, attempts, "
    "created_at, retry_from, next_at, last_at, last_status, last_error, done_at"
)


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class DeliveryDraft:
    """A delivery to create: an event for one endpoint."""

    endpoint: str
    event_key: str
    event: str
    chat_id: int | None
    order_key: str
    order_no: int
    payload: dict[str, Any]


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class Delivery:
    """A delivery row (C{payload} only when asked for)."""

    id: int
    endpoint: str
    event_key: str
    event: str
    chat_id: int | None
    order_key: str
    order_no: int
    state: str
    attempts: int
    created_at: int
    retry_from: int
    next_at: int
    last_at: int | None
    last_status: int | None
    last_error: str
    done_at: int | None
    payload: dict[str, Any] | None = None

    def toJSON(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "endpoint": self.endpoint,
            "eventKey": self.event_key,
            "event": self.event,
            "chatId": self.chat_id,
            "state": self.state,
            "attempts": self.attempts,
            "createdAt": self.created_at,
            "nextAt": self.next_at if self.state == PENDING else None,
            "lastAttemptAt": self.last_at,
            "lastStatus": self.last_status,
            "lastError": self.last_error,
            "doneAt": self.done_at,
        }
        if self.payload is not None:
            out["payload"] = self.payload
        return out


def _deliveryFromRow(row: Sequence[Any], payload: str | None = None) -> Delivery:
    def opt(v: Any) -> int | None:
        return None if v is None else int(v)

    return Delivery(
        id=int(row[0]),
        endpoint=row[1],
        event_key=row[2],
        event=row[3],
        chat_id=opt(row[4]),
        order_key=row[5],
        order_no=int(row[6]),
        state=row[7],
        attempts=int(row[8]),
        created_at=int(row[9]),
        retry_from=int(row[10]),
        next_at=int(row[11]),
        last_at=opt(row[12]),
        last_status=opt(row[13]),
        last_error=row[14],
        done_at=opt(row[15]),
        payload=None if payload is None else json.loads(payload),
    )


# -- cursors ----------------------------------------------------------------------


def getCursor_txn(txn: Txn, name: str) -> int:
    row = txn.queryOne("SELECT position FROM {outbox_cursors} WHERE name = ?", (name,))
    return 0 if row is None else int(row[0])


def setCursor_txn(txn: Txn, name: str, position: int) -> None:
    """Move a cursor forward (never back: two nodes may race)."""
    txn.execute(
        "UPDATE {outbox_cursors} SET position = ? WHERE name = ? AND position < ?",
        (position, name, position),
    )
    if (
        txn.rowcount == 0
        and txn.queryOne("SELECT 1 FROM {outbox_cursors} WHERE name = ?", (name,)) is None
    ):
        try:
            txn.execute(
                "INSERT INTO {outbox_cursors} (name, position) VALUES (?, ?)", (name, position)
            )
        except Exception as e:
            if not txn.engine.isIntegrityError(e):
                raise


def advanceCursor(
    cursor: int, ids: Iterable[int], now: float, gaps: dict[int, float], gapWait: float
) -> tuple[int, dict[int, float]]:
    """
    How far a cursor may move over the ids read after it (ascending).

    A missing id is a gap: it may belong to a transaction that has not
    committed yet.  The cursor stops before a gap until the gap has been
    seen for C{gapWait} seconds (C{gaps} maps the first missing id of each
    gap to when it was first seen); then it is taken as rolled back.

    @return: the new position and the gaps still waited for.
    """
    position = cursor
    waiting: dict[int, float] = {}
    blocked = False
    for found in ids:
        if found <= position:
            continue
        if not blocked and found > position + 1:
            first = position + 1
            seen = gaps.get(first, now)
            if now - seen >= gapWait:
                position = found - 1
            else:
                waiting[first] = seen
                blocked = True
        if not blocked:
            position = found
    return position, waiting


# -- reading the sources ---------------------------------------------------------------


def readEventLog_txn(txn: Txn, after: int, limit: int) -> list[tuple[Any, ...]]:
    """C{(id, created_at, event, chat_id, payload dict)} of the licence's event log."""
    rows = txn.query(
        "SELECT id, created_at, event, chat_id, payload FROM {event_log} "
        "WHERE id > ? ORDER BY id LIMIT ?",
        (after, limit),
    )
    return [
        (int(r[0]), int(r[1]), r[2], None if r[3] is None else int(r[3]), json.loads(r[4]))
        for r in rows
    ]


def readChatGids_txn(txn: Txn, after: int, limit: int) -> list[int]:
    """The global positions of the stored chat events after C{after} (as readChatEvents_txn)."""
    rows = txn.query(
        "SELECT gid FROM {chat_events} WHERE gid > ? ORDER BY gid LIMIT ?", (after, limit)
    )
    return [int(r[0]) for r in rows]


def readChatEvents_txn(txn: Txn, after: int, limit: int) -> list[dict[str, Any]]:
    """Stored chat events after global position C{after}, with their chat's kind and visitor."""
    rows = txn.query(
        "SELECT e.gid, e.chat_id, e.seq, e.created_at, e.type, e.originator, e.role, e.body, "
        "c.kind, c.visitor_id FROM {chat_events} e JOIN {chats} c ON c.id = e.chat_id "
        "WHERE e.gid > ? ORDER BY e.gid LIMIT ?",
        (after, limit),
    )
    out = []
    for r in rows:
        body = json.loads(r[7])
        out.append(
            {
                "gid": int(r[0]),
                "chat_id": int(r[1]),
                "seq": int(r[2]),
                "created_at": int(r[3]),
                "type": r[4],
                "originator": r[5],
                "role": r[6],
                "name": body.get("name", ""),
                "event": body["event"],
                "kind": r[8],
                "visitor_id": r[9],
            }
        )
    return out


def readAccountEvents_txn(txn: Txn, after: int, limit: int) -> list[tuple[Any, ...]]:
    """C{(id, licence, created_at, event, payload dict)} of every licence (global database)."""
    rows = txn.query(
        "SELECT id, licence_id, created_at, event, payload FROM {account_events} "
        "WHERE id > ? ORDER BY id LIMIT ?",
        (after, limit),
    )
    return [(int(r[0]), int(r[1]), int(r[2]), r[3], json.loads(r[4])) for r in rows]


# -- deliveries -----------------------------------------------------------------------


def addDeliveries_txn(txn: Txn, drafts: Iterable[DeliveryDraft], nowMS: int) -> int:
    """Insert deliveries, skipping those that exist; how many were new."""
    added = 0
    for d in drafts:
        if txn.queryOne(
            "SELECT 1 FROM {deliveries} WHERE endpoint = ? AND event_key = ?",
            (d.endpoint, d.event_key),
        ):
            continue
        try:
            txn.execute(
                "INSERT INTO {deliveries} (endpoint, event_key, event, chat_id, order_key, "
                "order_no, payload, state, attempts, created_at, retry_from, next_at, last_error) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, '')",
                (
                    d.endpoint,
                    d.event_key,
                    d.event,
                    d.chat_id,
                    d.order_key,
                    d.order_no,
                    json.dumps(d.payload, sort_keys=True),
                    PENDING,
                    nowMS,
                    nowMS,
                    nowMS,
                ),
            )
        except Exception as e:
            if not txn.engine.isIntegrityError(e):
                raise
            continue
        added += 1
    return added


def dueEndpoints_txn(txn: Txn, nowMS: int) -> list[str]:
    rows = txn.query(
        "SELECT DISTINCT endpoint FROM {deliveries} WHERE state = ? AND next_at <= ?",
        (PENDING, nowMS),
    )
    return sorted(r[0] for r in rows)


def nextDue_txn(txn: Txn, nowMS: int) -> int | None:
    """When the next pending delivery not claimed now is due (a claim's lapse is not)."""
    row = txn.queryOne(
        "SELECT MIN(next_at) FROM {deliveries} WHERE state = ? "
        "AND (claim_until IS NULL OR claim_until < ?)",
        (PENDING, nowMS),
    )
    return None if row is None or row[0] is None else int(row[0])


def claimDue_txn(
    txn: Txn, endpoint: str, nowMS: int, limit: int, owner: str, leaseMS: int
) -> list[Delivery]:
    """
    Claim up to C{limit} due deliveries of one endpoint for C{owner}, each the
    oldest pending one of its order key (so a chat's events go in order).
    A claim lapses after C{leaseMS}; another node may then take it.
    """
    rows = txn.query(
        f"SELECT {', '.join('d.' + c.strip() for c in DELIVERY_COLUMNS.split(','))}, d.payload "
        "FROM {deliveries} d WHERE d.endpoint = ? AND d.state = ? AND d.next_at <= ? "
        "AND (d.claim_until IS NULL OR d.claim_until < ?) "
        "AND NOT EXISTS (SELECT 1 FROM {deliveries} p WHERE p.endpoint = d.endpoint "
        "AND p.order_key = d.order_key AND p.state = ? AND p.order_no < d.order_no) "
        "ORDER BY d.next_at, d.id LIMIT ?",
        (endpoint, PENDING, nowMS, nowMS, PENDING, limit),
    )
    claimed = []
    for row in rows:
        txn.execute(
            "UPDATE {deliveries} SET claimed_by = ?, claim_until = ? "
            "WHERE id = ? AND state = ? AND (claim_until IS NULL OR claim_until < ?)",
            (owner, nowMS + leaseMS, row[0], PENDING, nowMS),
        )
        if txn.rowcount == 1:
            claimed.append(_deliveryFromRow(row[:-1], row[-1]))
    return claimed


def recordResult_txn(
    txn: Txn,
    deliveryId: int,
    owner: str,
    nowMS: int,
    *,
    state: str,
    status: int | None,
    error: str,
    nextAt: int | None = None,
) -> bool:
    """
    Record an attempt: C{state} delivered, dead, or pending (retry at
    C{nextAt}).  Only the claim's owner may record; whether it did.
    """
    txn.execute(
        "UPDATE {deliveries} SET state = ?, attempts = attempts + 1, last_at = ?, "
        "last_status = ?, last_error = ?, next_at = ?, done_at = ?, claimed_by = NULL, "
        "claim_until = NULL WHERE id = ? AND claimed_by = ? AND state = ?",
        (
            state,
            nowMS,
            status,
            error[:500],
            nextAt if nextAt is not None else nowMS,
            nowMS if state != PENDING else None,
            deliveryId,
            owner,
            PENDING,
        ),
    )
    if txn.rowcount != 1:
        return False
    if state != PENDING:
        _scrubPassword(txn, deliveryId)
    return True


def _scrubPassword(txn: Txn, deliveryId: int) -> None:
    """A delivery done with keeps no password (WEBHOOK_SEND_PASSWORD)."""
    row = txn.queryOne("SELECT payload FROM {deliveries} WHERE id = ?", (deliveryId,))
    if row is None or "PASSWORD" not in row[0]:
        return
    payload = json.loads(row[0])
    if payload.get("fields", {}).pop("PASSWORD", None) is not None:
        txn.execute(
            "UPDATE {deliveries} SET payload = ? WHERE id = ?",
            (json.dumps(payload, sort_keys=True), deliveryId),
        )


def scrubAccountPasswords_txn(txn: Txn, eventIds: Sequence[int]) -> None:
    """Remove PASSWORD from account events (global database) once copied to deliveries."""
    for eventId in eventIds:
        row = txn.queryOne("SELECT payload FROM {account_events} WHERE id = ?", (eventId,))
        if row is None:
            continue
        payload = json.loads(row[0])
        if payload.pop("PASSWORD", None) is not None:
            txn.execute(
                "UPDATE {account_events} SET payload = ? WHERE id = ?",
                (json.dumps(payload, sort_keys=True), eventId),
            )


def releaseClaims_txn(txn: Txn, owner: str) -> None:
    """Give back the claims of C{owner} (a node stopping)."""
    txn.execute(
        "UPDATE {deliveries} SET claimed_by = NULL, claim_until = NULL "
        "WHERE claimed_by = ? AND state = ?",
        (owner, PENDING),
    )


def listDeliveries_txn(
    txn: Txn,
    *,
    state: str | None = None,
    endpoint: str | None = None,
    event: str | None = None,
    chat_id: int | None = None,
    after: int = 0,
    limit: int = 100,
) -> list[Delivery]:
    where: list[str] = ["id > ?"]
    args: list[Any] = [after]
    for column, value in (
        ("state", state),
        ("endpoint", endpoint),
        ("event", event),
        ("chat_id", chat_id),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    rows = txn.query(
        f"SELECT {DELIVERY_COLUMNS} FROM {{deliveries}} WHERE {' AND '.join(where)} "
        "ORDER BY id LIMIT ?",
        (*args, limit),
    )
    return [_deliveryFromRow(r) for r in rows]


def getDelivery_txn(txn: Txn, deliveryId: int) -> Delivery | None:
    row = txn.queryOne(
        f"SELECT {DELIVERY_COLUMNS}, payload FROM {{deliveries}} WHERE id = ?", (deliveryId,)
    )
    return None if row is None else _deliveryFromRow(row[:-1], row[-1])


def replay_txn(
    txn: Txn,
    nowMS: int,
    *,
    deliveryId: int | None = None,
    endpoint: str | None = None,
    state: str = DEAD,
) -> int:
    """
    Send again: one delivery (dead or delivered), or every delivery in
    C{state} (of C{endpoint}).  They get a fresh retry window.

    @return: how many were queued again.
    """
    sets = (
        "UPDATE {deliveries} SET state = ?, attempts = 0, retry_from = ?, next_at = ?, "
        "done_at = NULL, claimed_by = NULL, claim_until = NULL"
    )
    if deliveryId is not None:
        found = getDelivery_txn(txn, deliveryId)
        if found is None:
            raise NotFound(f"no delivery {deliveryId}")
        if found.state == PENDING:
            return 0
        txn.execute(sets + " WHERE id = ?", (PENDING, nowMS, nowMS, deliveryId))
        return txn.rowcount
    if state not in (DEAD, DELIVERED):
        raise ValueError("replay dead or delivered deliveries")
    where, args = "state = ?", [state]
    if endpoint is not None:
        where += " AND endpoint = ?"
        args.append(endpoint)
    txn.execute(sets + f" WHERE {where}", (PENDING, nowMS, nowMS, *args))
    return txn.rowcount


def purge_txn(txn: Txn, beforeMS: int) -> int:
    """Forget delivered and dead deliveries finished before C{beforeMS}."""
    txn.execute(
        "DELETE FROM {deliveries} WHERE state IN (?, ?) AND done_at < ?",
        (DELIVERED, DEAD, beforeMS),
    )
    return txn.rowcount


def countDeliveries_txn(txn: Txn) -> dict[str, int]:
    counts = {s: 0 for s in STATES}
    for state, n in txn.query("SELECT state, COUNT(*) FROM {deliveries} GROUP BY state"):
        counts[state] = int(n)
    return counts


# -- webhooks --------------------------------------------------------------------------

WEBHOOK_COLUMNS = "id, event, url, method, enabled, created_at, updated_at"


def _webhook(row: Sequence[Any]) -> dict[str, Any]:
    return {
        "id": int(row[0]),
        "event": row[1],
        "url": row[2],
        "method": row[3],
        "enabled": bool(row[4]),
        "createdAt": int(row[5]),
        "updatedAt": int(row[6]),
    }


def createWebhook_txn(
    txn: Txn, event: str, url: str, method: str, enabled: bool, nowMS: int
) -> dict[str, Any]:
    newId = txn.insert(
        "INSERT INTO {webhooks} (event, url, method, enabled, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (event, url, method, int(enabled), nowMS, nowMS),
    )
    found = getWebhook_txn(txn, newId)
    assert found is not None
    return found


def getWebhook_txn(txn: Txn, webhookId: int) -> dict[str, Any] | None:
    row = txn.queryOne(f"SELECT {WEBHOOK_COLUMNS} FROM {{webhooks}} WHERE id = ?", (webhookId,))
    return None if row is None else _webhook(row)


def listWebhooks_txn(txn: Txn) -> list[dict[str, Any]]:
    return [
        _webhook(r) for r in txn.query(f"SELECT {WEBHOOK_COLUMNS} FROM {{webhooks}} ORDER BY id")
    ]


def updateWebhook_txn(
    txn: Txn, webhookId: int, changes: dict[str, Any], nowMS: int
) -> dict[str, Any]:
    if getWebhook_txn(txn, webhookId) is None:
        raise NotFound(f"no webhook {webhookId}")
    columns = {k: (int(v) if isinstance(v, bool) else v) for k, v in changes.items()}
    columns["updated_at"] = nowMS
    sets = ", ".join(f"{k} = ?" for k in columns)
    txn.execute(f"UPDATE {{webhooks}} SET {sets} WHERE id = ?", (*columns.values(), webhookId))
    found = getWebhook_txn(txn, webhookId)
    assert found is not None
    return found


def deleteWebhook_txn(txn: Txn, webhookId: int) -> None:
    txn.execute("DELETE FROM {webhooks} WHERE id = ?", (webhookId,))
    if txn.rowcount == 0:
        raise NotFound(f"no webhook {webhookId}")
    _dropPending(txn, f"hook:{webhookId}")


def _dropPending(txn: Txn, endpoint: str) -> None:
    """An endpoint removed: its undelivered events are dropped with it."""
    txn.execute("DELETE FROM {deliveries} WHERE endpoint = ? AND state = ?", (endpoint, PENDING))


# -- apps -------------------------------------------------------------------------------

APP_COLUMNS = (
    "id, name, description, enabled, endpoint, endpoints, headers, all_chats, "
    "created_at, updated_at"
)


def _app(row: Sequence[Any]) -> dict[str, Any]:
    return {
        "id": int(row[0]),
        "name": row[1],
        "description": row[2],
        "enabled": bool(row[3]),
        "endpoint": row[4],
        "endpoints": json.loads(row[5] or "{}"),
        "headers": json.loads(row[6] or "{}"),
        "allChats": bool(row[7]),
        "createdAt": int(row[8]),
        "updatedAt": int(row[9]),
    }


_APP_FIELDS = {
    "name": "name",
    "description": "description",
    "enabled": "enabled",
    "endpoint": "endpoint",
    "endpoints": "endpoints",
    "headers": "headers",
    "allChats": "all_chats",
}


def _appValue(key: str, value: Any) -> Any:
    if key in ("endpoints", "headers"):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, bool):
        return int(value)
    return value


def createApp_txn(txn: Txn, fields: dict[str, Any], nowMS: int) -> dict[str, Any]:
    values = {
        "name": fields["name"],
        "description": fields.get("description", ""),
        "enabled": fields.get("enabled", True),
        "endpoint": fields.get("endpoint", ""),
        "endpoints": fields.get("endpoints", {}),
        "headers": fields.get("headers", {}),
        "allChats": fields.get("allChats", False),
    }
    columns = [_APP_FIELDS[k] for k in values] + ["created_at", "updated_at"]
    args = [_appValue(k, v) for k, v in values.items()] + [nowMS, nowMS]
    newId = txn.insert(
        f"INSERT INTO {{apps}} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
        args,
    )
    found = getApp_txn(txn, newId)
    assert found is not None
    return found


def getApp_txn(txn: Txn, appId: int) -> dict[str, Any] | None:
    row = txn.queryOne(f"SELECT {APP_COLUMNS} FROM {{apps}} WHERE id = ?", (appId,))
    return None if row is None else _app(row)


def listApps_txn(txn: Txn) -> list[dict[str, Any]]:
    return [_app(r) for r in txn.query(f"SELECT {APP_COLUMNS} FROM {{apps}} ORDER BY id")]


def updateApp_txn(txn: Txn, appId: int, changes: dict[str, Any], nowMS: int) -> dict[str, Any]:
    if getApp_txn(txn, appId) is None:
        raise NotFound(f"no app {appId}")
    columns = {_APP_FIELDS[k]: _appValue(k, v) for k, v in changes.items()}
    columns["updated_at"] = nowMS
    sets = ", ".join(f"{k} = ?" for k in columns)
    txn.execute(f"UPDATE {{apps}} SET {sets} WHERE id = ?", (*columns.values(), appId))
    found = getApp_txn(txn, appId)
    assert found is not None
    return found


def deleteApp_txn(txn: Txn, appId: int) -> None:
    txn.execute("DELETE FROM {apps} WHERE id = ?", (appId,))
    if txn.rowcount == 0:
        raise NotFound(f"no app {appId}")
    _dropPending(txn, f"app:{appId}")


def endpointsOf_txn(txn: Txn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The enabled webhooks and apps of the licence (what fan-out needs)."""
    hooks = [h for h in listWebhooks_txn(txn) if h["enabled"]]
    apps = [a for a in listApps_txn(txn) if a["enabled"]]
    return hooks, apps


# -- signing secrets ------------------------------------------------------------------

SECRET_SETTING = "webhook_secret"


def getOrCreateSecret_txn(txn: Txn, candidate: str) -> str:
    """The licence's signing secret; C{candidate} becomes it when there is none yet."""
    row = txn.queryOne("SELECT value FROM {settings} WHERE name = ?", (SECRET_SETTING,))
    if row is not None:
        return str(row[0])
    try:
        txn.execute(
            "INSERT INTO {settings} (name, value) VALUES (?, ?)", (SECRET_SETTING, candidate)
        )
    except Exception as e:
        if not txn.engine.isIntegrityError(e):
            raise
        # Another transaction made it first.  A locking read sees its row,
        # which this transaction's snapshot (MariaDB, repeatable read) does not.
        row = txn.queryOne(
            "SELECT value FROM {settings} WHERE name = ?" + txn.engine.forUpdate,
            (SECRET_SETTING,),
        )
        assert row is not None
        return str(row[0])
    return candidate


def setSecret_txn(txn: Txn, secret: str) -> None:
    txn.upsert("settings", {"name": SECRET_SETTING}, {"value": secret})


# -- the store ------------------------------------------------------------------------


class HookStore:
    """
    Webhooks, apps and deliveries of each licence, over the same
    L{livechat.storage.database.Database} as L{livechat.storage.SqlStore}
    (C{store.db}).  Every method returns a Deferred and touches one
    licence's database only.
    """

    def __init__(self, db: Any, clock: Any) -> None:
        self.db = db
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock.seconds() * 1000)

    def run(self, licence: int, desc: str, func: Any, *args: Any, **kw: Any) -> Any:
        return self.db.runLicence(licence, desc, func, *args, **kw)

    def runGlobal(self, desc: str, func: Any, *args: Any, **kw: Any) -> Any:
        return self.db.runGlobal(desc, func, *args, **kw)

    # webhooks
    def createWebhook(self, licence: int, event: str, url: str, method: str, enabled: bool) -> Any:
        return self.run(
            licence, "create webhook", createWebhook_txn, event, url, method, enabled, self._now()
        )

    def getWebhook(self, licence: int, webhookId: int) -> Any:
        return self.run(licence, "get webhook", getWebhook_txn, webhookId)

    def listWebhooks(self, licence: int) -> Any:
        return self.run(licence, "list webhooks", listWebhooks_txn)

    def updateWebhook(self, licence: int, webhookId: int, changes: dict[str, Any]) -> Any:
        return self.run(
            licence, "update webhook", updateWebhook_txn, webhookId, changes, self._now()
        )

    def deleteWebhook(self, licence: int, webhookId: int) -> Any:
        return self.run(licence, "delete webhook", deleteWebhook_txn, webhookId)

    # apps
    def createApp(self, licence: int, fields: dict[str, Any]) -> Any:
        return self.run(licence, "create app", createApp_txn, fields, self._now())

    def getApp(self, licence: int, appId: int) -> Any:
        return self.run(licence, "get app", getApp_txn, appId)

    def listApps(self, licence: int) -> Any:
        return self.run(licence, "list apps", listApps_txn)

    def updateApp(self, licence: int, appId: int, changes: dict[str, Any]) -> Any:
        return self.run(licence, "update app", updateApp_txn, appId, changes, self._now())

    def deleteApp(self, licence: int, appId: int) -> Any:
        return self.run(licence, "delete app", deleteApp_txn, appId)

    # deliveries
    def listDeliveries(self, licence: int, **filters: Any) -> Any:
        return self.run(licence, "list deliveries", listDeliveries_txn, **filters)

    def getDelivery(self, licence: int, deliveryId: int) -> Any:
        return self.run(licence, "get delivery", getDelivery_txn, deliveryId)

    def replay(self, licence: int, **which: Any) -> Any:
        return self.run(licence, "replay deliveries", replay_txn, self._now(), **which)

    def countDeliveries(self, licence: int) -> Any:
        return self.run(licence, "count deliveries", countDeliveries_txn)

    # secrets
    def secret(self, licence: int) -> Any:
        import secrets

        return self.run(licence, "webhook secret", getOrCreateSecret_txn, secrets.token_urlsafe(32))

    def rotateSecret(self, licence: int) -> Any:
        import secrets

        secret = secrets.token_urlsafe(32)
        d = self.run(licence, "rotate webhook secret", setSecret_txn, secret)
        return d.addCallback(lambda _: secret)
