"""
What goes on the wire to webhooks: the seed's RPC parameters (form-encoded),
the connector notification (JSON), and the signature over either.

Pure functions, no I/O: the worker (L{livechat.notify.webhooks}) and the
fan-out (L{livechat.notify.outbox}) use them; docs/webhooks.md shows their
output and a test keeps the two in step.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

RPC_FIELDS: Mapping[str, tuple[str, ...]] = {
    "NEW_LICENCE": (
        "EVENT",
        "LICENCE",
        "PASSWORD",
        "NICK",
        "LAST_NAME",
        "FIRST_NAME",
        "OPERATOR_ID",
        "PHONE",
        "LIC_TYPE",
        "WEB_PAGE",
        "PROMO_CODE",
        "ACCOUNT_TYPE",
        "EXPIRATION_DATE",
        "LANGUAGE",
    ),
    "NEW_OPERATOR": (
        "EVENT",
        "LICENCE",
        "PASSWORD",
        "LAST_NAME",
        "FIRST_NAME",
        "OPERATOR_ID",
        "ACCOUNT_TYPE",
    ),
    "LICENCE_INFO": ("EVENT", "LICENCE", "EXPIRATION_DATE", "LIC_TYPE"),
    "NEW_OPERATOR_SUBSCRIPTION": (
        "EVENT",
        "LICENCE",
        "OPERATORS_COUNT_CC",
        "OPERATORS_COUNT_COM",
        "START_DATE",
        "END_DATE",
        "PAYMENT_METHOD",
        "NET_PRICE",
        "VAT",
    ),
    "OPERATOR_TRANSFER": (
        "EVENT",
        "LICENCE",
        "CLIENT_ID",
        "NEW_OPERATOR_ID",
        "OPERATOR_ID",
        "STATUS",
    ),
    "OPERATOR_STATUS": ("EVENT", "LICENCE", "OPERATOR_ID", "STATUS"),
    "BUTTON_STATUS": ("EVENT", "LICENCE", "STATUS"),
    "CHAT_STARTED": ("EVENT", "LICENCE", "CLIENT_ID", "INVITING_OP", "OPERATOR_ID", "STATUS"),
    "PRIVATE_CHAT_STATUS": ("EVENT", "LICENCE", "OPERATOR_ID", "STATUS", "GROUP"),
    "CLIENT_INVITED": ("EVENT", "LICENCE", "OPERATOR_ID", "CLIENT_ID"),
    "OPERATOR_STOPED_CHAT": ("EVENT", "LICENCE", "OPERATOR_ID", "CLIENT_ID", "GROUP", "CHAT"),
    "VISITOR_LEFT_CHAT": ("EVENT", "LICENCE", "OPERATOR_ID", "CLIENT_ID", "GROUP", "CHAT"),
}
"""The seed's parameters of each of its twelve events, in its order."""

OPTIONAL = frozenset({"INVITING_OP"})
"""Sent only when there is a value (the seed marks them optional)."""

ACCOUNT_TYPE_WORDS = {"communicator": "communicator", "contact_center": "contact center"}
"""ACCOUNT_TYPE on the wire: the seed's words."""


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def rpcFields(
    licence: int,
    event: str,
    fields: Mapping[str, Any],
    chatId: int | None = None,
    *,
    sendPassword: bool = False,
) -> list[tuple[str, str]]:
    """
    The parameters of one RPC request, exactly the seed's for C{event}, in
    its order: C{EVENT} and C{LICENCE} first, a missing value as the empty
    string, optional ones left out when empty, C{PASSWORD} only when
    C{sendPassword} (and known).
    """
    names = RPC_FIELDS[event]
    values = dict(fields)
    values["EVENT"] = event
    values["LICENCE"] = licence
    if "GROUP" in names and values.get("GROUP") in (None, "") and chatId is not None:
        values["GROUP"] = chatId
    if "ACCOUNT_TYPE" in values:
        values["ACCOUNT_TYPE"] = ACCOUNT_TYPE_WORDS.get(
            str(values["ACCOUNT_TYPE"]), values["ACCOUNT_TYPE"]
        )
    out = []
    for name in names:
        if name == "PASSWORD" and not sendPassword:
            continue
        value = _text(values.get(name))
        if name in OPTIONAL and not value:
            continue
        out.append((name, value))
    return out


def formEncode(pairs: list[tuple[str, str]]) -> bytes:
    """C{application/x-www-form-urlencoded}, UTF-8 (the CHAT transcript is url-encoded here)."""
    return urlencode(pairs, encoding="utf-8").encode("ascii")


def rpcOrderKey(event: str, fields: Mapping[str, Any], chatId: int | None) -> str:
    """Deliveries with one key go in order: a chat's events, an operator's statuses."""
    if chatId is not None:
        return f"chat:{chatId}"
    if event == "OPERATOR_STATUS":
        return f"op:{fields.get('OPERATOR_ID', '')}"
    if event == "CLIENT_INVITED":
        return f"visitor:{fields.get('CLIENT_ID', '')}"
    if event == "BUTTON_STATUS":
        return "button"
    return "licence"


# -- the connector's notifications ---------------------------------------------------


def connectorChange(row: Mapping[str, Any]) -> dict[str, Any]:
    """One C{changes} entry of a C{ms.MessagingEventNotification} for a stored chat event."""
    conversation = str(row["chat_id"])
    return {
        "sequence": row["seq"],
        "originatorId": row["originator"],
        "originatorMetadata": {"id": row["originator"], "role": row["role"]},
        "serverTimestamp": row["created_at"],
        "event": row["event"],
        "conversationId": conversation,
        "dialogId": conversation,
    }


def connectorNotification(changes: list[dict[str, Any]]) -> dict[str, Any]:
    """The seed's notification shape."""
    return {
        "kind": "notification",
        "type": "ms.MessagingEventNotification",
        "body": {"changes": changes},
    }


# -- signatures -------------------------------------------------------------------------

SIGNATURE_HEADER = "X-Livechat-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """C{t=<timestamp>,v1=<hex HMAC-SHA256 of b"<timestamp>." + body>}."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, now: float, tolerance: float = 300) -> bool:
    """
    Check a signature header as a receiver would (docs/webhooks.md shows the
    same in a few lines): the MAC matches and the timestamp is recent.
    """
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (ValueError, KeyError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)
