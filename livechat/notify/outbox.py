"""
Fan-out: from the event tables (the outbox) to one delivery row per
endpoint.  Transaction functions only (plain SQL, no reactor); the worker in
L{livechat.notify.webhooks} runs them.

Endpoints are named in the delivery rows:

  - C{cfg:<EVENT>}: the C{EVENT_*} URL of lc_serv.cfg (the server's);
  - C{hook:<id>}: a licence's RPC webhook set through the API;
  - C{app:<id>}: a licence's connector app (JSON notifications).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attr

from livechat.notify import payloads
from livechat.storage import hooks
from livechat.storage.database import Txn

SOURCE_LOG = "log"
SOURCE_CHAT = "chat"
SOURCE_ACCOUNT = "account"

CHAT_EVENT_TYPES = (
    "ContentEvent",
    "AcceptStatusEvent",
    "JoinEvent",
    "LeaveEvent",
    "TransferEvent",
    "InviteEvent",
    "CloseEvent",
)
"""The stored chat events an app can be notified of (one endpoint each, or one for all)."""


def consumerVisitorPrefix(appId: int) -> str:
    """Visitor ids of an app's consumers start with this (see L{livechat.connector})."""
    return f"c{int(appId)}-"


@attr.s(frozen=True, auto_attribs=True)
class PassResult:
    """What one licence pass found."""

    added: int
    gaps: dict[str, dict[int, float]]
    dueEndpoints: list[str]
    nextDue: int | None
    more: bool


def rpcDrafts(
    key: str,
    orderNo: int,
    event: str,
    fields: Mapping[str, Any],
    chatId: int | None,
    createdAt: int,
    cfgEvents: frozenset[str],
    webhooks: Iterable[Mapping[str, Any]],
) -> list[hooks.DeliveryDraft]:
    """The deliveries of one RPC event: the server's URL and the licence's webhooks."""
    if event not in payloads.RPC_FIELDS:
        return []
    endpoints = [f"cfg:{event}"] if event in cfgEvents else []
    endpoints += [f"hook:{h['id']}" for h in webhooks if h["event"] in (event, "*")]
    payload = {"fields": dict(fields), "chatId": chatId, "createdAt": createdAt}
    orderKey = payloads.rpcOrderKey(event, fields, chatId)
    return [
        hooks.DeliveryDraft(
            endpoint=endpoint,
            event_key=key,
            event=event,
            chat_id=chatId,
            order_key=orderKey,
            order_no=orderNo,
            payload=payload,
        )
        for endpoint in endpoints
    ]


def appDrafts(
    row: Mapping[str, Any], apps: Iterable[Mapping[str, Any]]
) -> list[hooks.DeliveryDraft]:
    """The deliveries of one stored chat event to the apps that want it."""
    if row["kind"] != "visitor":
        return []
    drafts = []
    visitor = row["visitor_id"] or ""
    for app in apps:
        if not (app["allChats"] or visitor.startswith(consumerVisitorPrefix(app["id"]))):
            continue
        if not (app["endpoints"].get(row["type"]) or app["endpoint"]):
            continue
        drafts.append(
            hooks.DeliveryDraft(
                endpoint=f"app:{app['id']}",
                event_key=f"chat:{row['chat_id']}:{row['seq']}",
                event=row["type"],
                chat_id=row["chat_id"],
                order_key=f"c:{row['chat_id']}",
                order_no=row["seq"],
                payload=payloads.connectorChange(row),
            )
        )
    return drafts


def licencePass_txn(
    txn: Txn,
    cfgEvents: frozenset[str],
    gaps: dict[str, dict[int, float]],
    now: float,
    nowMS: int,
    gapWait: float,
    batch: int,
) -> PassResult:
    """
    Fan out what is new in the licence's event log and chat events, then
    say which endpoints have deliveries due and when the next one is.
    """
    webhooks, apps = hooks.endpointsOf_txn(txn)
    drafts: list[hooks.DeliveryDraft] = []
    newGaps: dict[str, dict[int, float]] = {}
    more = False

    cursor = hooks.getCursor_txn(txn, SOURCE_LOG)
    rows = hooks.readEventLog_txn(txn, cursor, batch)
    for eventId, createdAt, event, chatId, fields in rows:
        drafts += rpcDrafts(
            f"log:{eventId}", eventId, event, fields, chatId, createdAt, cfgEvents, webhooks
        )
    position, newGaps[SOURCE_LOG] = hooks.advanceCursor(
        cursor, [r[0] for r in rows], now, gaps.get(SOURCE_LOG, {}), gapWait
    )
    if position != cursor:
        hooks.setCursor_txn(txn, SOURCE_LOG, position)
    more = more or len(rows) >= batch

    cursor = hooks.getCursor_txn(txn, SOURCE_CHAT)
    if apps:
        chatRows = hooks.readChatEvents_txn(txn, cursor, batch)
        for row in chatRows:
            drafts += appDrafts(row, apps)
        gids = [r["gid"] for r in chatRows]
    else:
        # No app to tell: only move the cursor past them (no join, no JSON).
        gids = hooks.readChatGids_txn(txn, cursor, batch)
    position, newGaps[SOURCE_CHAT] = hooks.advanceCursor(
        cursor, gids, now, gaps.get(SOURCE_CHAT, {}), gapWait
    )
    if position != cursor:
        hooks.setCursor_txn(txn, SOURCE_CHAT, position)
    more = more or len(gids) >= batch

    added = hooks.addDeliveries_txn(txn, drafts, nowMS)
    return PassResult(
        added=added,
        gaps=newGaps,
        dueEndpoints=hooks.dueEndpoints_txn(txn, nowMS),
        nextDue=hooks.nextDue_txn(txn, nowMS),
        more=more,
    )


def accountDrafts_txn(
    txn: Txn, events: list[tuple[Any, ...]], cfgEvents: frozenset[str], nowMS: int
) -> int:
    """In one licence's database: the deliveries of that licence's account events."""
    webhooks, _ = hooks.endpointsOf_txn(txn)
    drafts = []
    for eventId, _licence, createdAt, event, fields in events:
        drafts += rpcDrafts(
            f"acct:{eventId}", eventId, event, fields, None, createdAt, cfgEvents, webhooks
        )
    drafts = [attr.evolve(d, order_key="account") for d in drafts]
    return hooks.addDeliveries_txn(txn, drafts, nowMS)
