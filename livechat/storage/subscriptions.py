"""
SQL of operator subscriptions (global database): seats per account type for
a period, with the payment fields, and the seed's NEW_OPERATOR_SUBSCRIPTION
event written in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from livechat.model import AccountType
from livechat.storage.accounts import formatTime, getLicence_txn, logAccountEvent_txn
from livechat.storage.database import Txn
from livechat.storage.errors import NotFound

COLUMNS = (
    "id, licence_id, operators_cc, operators_com, start_at, end_at, payment_method, "
    "net_price, vat, created_at"
)


def _fromRow(row: Sequence[Any]) -> dict[str, Any]:
    return {
        "id": int(row[0]),
        "licence": int(row[1]),
        "operatorsCC": int(row[2]),
        "operatorsCOM": int(row[3]),
        "startAt": int(row[4]),
        "endAt": int(row[5]),
        "paymentMethod": row[6],
        "netPrice": row[7],
        "vat": row[8],
        "createdAt": int(row[9]),
    }


def subscriptionPayload(sub: dict[str, Any]) -> dict[str, Any]:
    """The seed's NEW_OPERATOR_SUBSCRIPTION fields."""
    return {
        "EVENT": "NEW_OPERATOR_SUBSCRIPTION",
        "LICENCE": sub["licence"],
        "OPERATORS_COUNT_CC": sub["operatorsCC"],
        "OPERATORS_COUNT_COM": sub["operatorsCOM"],
        "START_DATE": formatTime(sub["startAt"]),
        "END_DATE": formatTime(sub["endAt"]),
        "PAYMENT_METHOD": sub["paymentMethod"],
        "NET_PRICE": sub["netPrice"],
        "VAT": sub["vat"],
    }


def createSubscription_txn(
    txn: Txn,
    licence: int,
    operators_cc: int,
    operators_com: int,
    start_at: int,
    end_at: int,
    payment_method: str,
    net_price: str,
    vat: str,
    nowMS: int,
) -> dict[str, Any]:
    if getLicence_txn(txn, licence) is None:
        raise NotFound(f"licence {licence} does not exist")
    if end_at <= start_at:
        raise ValueError("a subscription ends after it starts")
    newId = txn.insert(
        "INSERT INTO {subscriptions} (licence_id, operators_cc, operators_com, start_at, end_at, "
        "payment_method, net_price, vat, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            licence,
            operators_cc,
            operators_com,
            start_at,
            end_at,
            payment_method,
            net_price,
            vat,
            nowMS,
        ),
    )
    sub = getSubscription_txn(txn, licence, newId)
    assert sub is not None
    logAccountEvent_txn(txn, licence, "NEW_OPERATOR_SUBSCRIPTION", subscriptionPayload(sub), nowMS)
    return sub


def getSubscription_txn(txn: Txn, licence: int, subId: int) -> dict[str, Any] | None:
    row = txn.queryOne(
        f"SELECT {COLUMNS} FROM {{subscriptions}} WHERE licence_id = ? AND id = ?",
        (licence, subId),
    )
    return None if row is None else _fromRow(row)


def listSubscriptions_txn(txn: Txn, licence: int) -> list[dict[str, Any]]:
    rows = txn.query(
        f"SELECT {COLUMNS} FROM {{subscriptions}} WHERE licence_id = ? ORDER BY id", (licence,)
    )
    return [_fromRow(r) for r in rows]


def subscribedSeats_txn(txn: Txn, licence: int, nowMS: int) -> dict[AccountType, int] | None:
    """
    The seats the subscriptions running at C{nowMS} give (summed), or
    C{None} when none runs (the licence's own seats apply).
    """
    row = txn.queryOne(
        "SELECT COUNT(*), SUM(operators_cc), SUM(operators_com) FROM {subscriptions} "
        "WHERE licence_id = ? AND start_at <= ? AND end_at > ?",
        (licence, nowMS, nowMS),
    )
    if row is None or not row[0]:
        return None
    return {
        AccountType.CONTACT_CENTER: int(row[1] or 0),
        AccountType.COMMUNICATOR: int(row[2] or 0),
    }
