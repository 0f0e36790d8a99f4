"""
SQL of the global database: licences, operators, server state, account events.

Every function here is a C{*_txn(txn, ...)} run by
L{livechat.storage.database.Database.runGlobal}: plain SQL, no reactor.
"""

from __future__ import annotations

import json
from typing import Any

from livechat.model import AccountType, Licence, LicenceType, Operator
from livechat.storage.database import Txn
from livechat.storage.errors import Conflict, NotFound, SeatsExhausted

LICENCE_COLUMNS = (
    "id, lic_type, name, language, expires_at, seats_cc, seats_com, "
    "max_chats_default, web_page, promo_code, created_at, disabled"
)
LICENCE_FIELDS = (
    "lic_type",
    "name",
    "language",
    "expires_at",
    "seats_cc",
    "seats_com",
    "max_chats_default",
    "web_page",
    "promo_code",
    "disabled",
)

OPERATOR_COLUMNS = (
    "id, licence_id, nick, operator_id, first_name, last_name, phone, "
    "account_type, max_chats, is_admin, disabled, created_at"
)
OPERATOR_FIELDS = (
    "nick",
    "operator_id",
    "first_name",
    "last_name",
    "phone",
    "account_type",
    "max_chats",
    "is_admin",
    "disabled",
)


def licenceFromRow(row: tuple[Any, ...]) -> Licence:
    return Licence(
        number=int(row[0]),
        lic_type=LicenceType(int(row[1])),
        name=row[2],
        language=row[3],
        expires_at=None if row[4] is None else int(row[4]),
        seats_cc=None if row[5] is None else int(row[5]),
        seats_com=None if row[6] is None else int(row[6]),
        max_chats_default=None if row[7] is None else int(row[7]),
        web_page=row[8],
        promo_code=row[9],
        created_at=int(row[10]),
        disabled=bool(row[11]),
    )


def operatorFromRow(row: tuple[Any, ...]) -> Operator:
    return Operator(
        id=int(row[0]),
        licence=int(row[1]),
        nick=row[2],
        operator_id=row[3],
        first_name=row[4],
        last_name=row[5],
        phone=row[6],
        account_type=AccountType(row[7]),
        max_chats=None if row[8] is None else int(row[8]),
        is_admin=bool(row[9]),
        disabled=bool(row[10]),
        created_at=int(row[11]),
    )


def _dbValue(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (LicenceType,)):
        return int(value)
    if isinstance(value, AccountType):
        return value.value
    return value


# -- account events ----------------------------------------------------------


def logAccountEvent_txn(
    txn: Txn, licence: int, event: str, payload: dict[str, Any], nowMS: int
) -> int:
    return txn.insert(
        "INSERT INTO {account_events} (licence_id, created_at, event, payload) VALUES (?, ?, ?, ?)",
        (licence, nowMS, event, json.dumps(payload, sort_keys=True)),
    )


def accountEvents_txn(
    txn: Txn, licence: int, sinceId: int, limit: int
) -> list[tuple[int, int, str, dict[str, Any]]]:
    rows = txn.query(
        "SELECT id, created_at, event, payload FROM {account_events} "
        "WHERE licence_id = ? AND id > ? ORDER BY id LIMIT ?",
        (licence, sinceId, limit),
    )
    return [(int(r[0]), int(r[1]), r[2], json.loads(r[3])) for r in rows]


def formatTime(ms: int | None) -> str:
    """The seed's date and time format, UTC: C{2026-11-22 10:30:00}."""
    if ms is None:
        return ""
    import datetime

    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def licencePayload(licence: Licence) -> dict[str, Any]:
    """The seed's LICENCE_INFO fields."""
    return {
        "LICENCE": licence.number,
        "EXPIRATION_DATE": formatTime(licence.expires_at),
        "LIC_TYPE": int(licence.lic_type),
    }


def operatorPayload(operator: Operator) -> dict[str, Any]:
    """The seed's NEW_OPERATOR fields (the password is never stored)."""
    return {
        "LICENCE": operator.licence,
        "NICK": operator.nick,
        "LAST_NAME": operator.last_name,
        "FIRST_NAME": operator.first_name,
        "OPERATOR_ID": operator.operator_id,
        "PHONE": operator.phone,
        "ACCOUNT_TYPE": operator.account_type.value,
    }


# -- licences ----------------------------------------------------------------


def getLicence_txn(txn: Txn, number: int) -> Licence | None:
    row = txn.queryOne(f"SELECT {LICENCE_COLUMNS} FROM {{licences}} WHERE id = ?", (number,))
    return None if row is None else licenceFromRow(row)


def listLicences_txn(txn: Txn) -> list[Licence]:
    rows = txn.query(f"SELECT {LICENCE_COLUMNS} FROM {{licences}} ORDER BY id")
    return [licenceFromRow(r) for r in rows]


def licenceExists_txn(txn: Txn, number: int) -> bool:
    return txn.queryOne("SELECT 1 FROM {licences} WHERE id = ?", (number,)) is not None


def insertLicence_txn(
    txn: Txn,
    licence: Licence,
    operator: Operator | None,
    passwordHash: str | None,
    nowMS: int,
    eventExtra: dict[str, Any] | None = None,
) -> tuple[Licence, Operator | None]:
    """
    Insert the licence row (and first operator), and log NEW_LICENCE (with
    C{eventExtra} fields added, e.g. the seed's PASSWORD for webhooks).
    """
    if licenceExists_txn(txn, licence.number):
        raise Conflict(f"licence {licence.number} exists already")
    txn.execute(
        f"INSERT INTO {{licences}} ({LICENCE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            licence.number,
            int(licence.lic_type),
            licence.name,
            licence.language,
            licence.expires_at,
            licence.seats_cc,
            licence.seats_com,
            licence.max_chats_default,
            licence.web_page,
            licence.promo_code,
            nowMS,
            int(licence.disabled),
        ),
    )
    stored = getLicence_txn(txn, licence.number)
    assert stored is not None
    created = None
    payload = licencePayload(stored)
    payload.update(
        EVENT="NEW_LICENCE",
        WEB_PAGE=stored.web_page,
        PROMO_CODE=stored.promo_code,
        LANGUAGE=stored.language,
    )
    if operator is not None:
        assert passwordHash is not None
        created = _insertOperator_txn(txn, stored, operator, passwordHash, nowMS, log=False)
        payload.update(operatorPayload(created))
    payload.update(eventExtra or {})
    logAccountEvent_txn(txn, stored.number, "NEW_LICENCE", payload, nowMS)
    return stored, created


def updateLicence_txn(txn: Txn, number: int, changes: dict[str, Any], nowMS: int) -> Licence:
    unknown = set(changes) - set(LICENCE_FIELDS)
    if unknown:
        raise ValueError(f"unknown licence fields: {', '.join(sorted(unknown))}")
    before = getLicence_txn(txn, number)
    if before is None:
        raise NotFound(f"licence {number} does not exist")
    if changes:
        sets = ", ".join(f"{name} = ?" for name in changes)
        txn.execute(
            f"UPDATE {{licences}} SET {sets} WHERE id = ?",
            tuple(_dbValue(v) for v in changes.values()) + (number,),
        )
    after = getLicence_txn(txn, number)
    assert after is not None
    if licencePayload(after) != licencePayload(before):
        payload = licencePayload(after)
        payload["EVENT"] = "LICENCE_INFO"
        logAccountEvent_txn(txn, number, "LICENCE_INFO", payload, nowMS)
    return after


def deleteLicence_txn(txn: Txn, number: int) -> None:
    if not licenceExists_txn(txn, number):
        raise NotFound(f"licence {number} does not exist")
    for table in ("api_keys", "operators", "account_events"):
        txn.execute(f"DELETE FROM {{{table}}} WHERE licence_id = ?", (number,))
    txn.execute("DELETE FROM {licences} WHERE id = ?", (number,))


# -- operators ---------------------------------------------------------------


def nickKey(nick: str) -> str:
    return nick.strip().casefold()


def _lockLicence_txn(txn: Txn, number: int) -> Licence:
    row = txn.queryOne(
        f"SELECT {LICENCE_COLUMNS} FROM {{licences}} WHERE id = ?" + txn.engine.forUpdate,
        (number,),
    )
    if row is None:
        raise NotFound(f"licence {number} does not exist")
    return licenceFromRow(row)


def countOperators_txn(txn: Txn, licence: int) -> dict[AccountType, int]:
    counts = {kind: 0 for kind in AccountType}
    for kind, count in txn.query(
        "SELECT account_type, COUNT(*) FROM {operators} "
        "WHERE licence_id = ? AND disabled = 0 GROUP BY account_type",
        (licence,),
    ):
        counts[AccountType(kind)] = int(count)
    return counts


def _checkSeats(txn: Txn, licence: Licence, accountType: AccountType, adding: int) -> None:
    seats = licence.seatsFor(accountType)
    if seats is None:
        return
    used = countOperators_txn(txn, licence.number)[accountType]
    if used + adding > seats:
        raise SeatsExhausted(
            f"licence {licence.number} has {seats} {accountType.value} seat(s), all taken"
        )


def _insertOperator_txn(
    txn: Txn,
    licence: Licence,
    operator: Operator,
    passwordHash: str,
    nowMS: int,
    log: bool = True,
    eventExtra: dict[str, Any] | None = None,
) -> Operator:
    if not operator.disabled:
        _checkSeats(txn, licence, operator.account_type, 1)
    key = nickKey(operator.nick)
    email = operator.operator_id.strip().casefold()
    if txn.queryOne(
        "SELECT 1 FROM {operators} WHERE licence_id = ? AND nick_key = ?",
        (licence.number, key),
    ):
        raise Conflict(f"nick {operator.nick!r} is taken in licence {licence.number}")
    if txn.queryOne(
        "SELECT 1 FROM {operators} WHERE licence_id = ? AND operator_key = ?",
        (licence.number, email),
    ):
        raise Conflict(f"operator id {operator.operator_id!r} is taken in licence {licence.number}")
    newId = txn.insert(
        "INSERT INTO {operators} (licence_id, nick, nick_key, operator_id, operator_key, "
        "first_name, last_name, phone, account_type, max_chats, is_admin, password_hash, "
        "disabled, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            licence.number,
            operator.nick.strip(),
            key,
            operator.operator_id.strip(),
            email,
            operator.first_name,
            operator.last_name,
            operator.phone,
            operator.account_type.value,
            operator.max_chats,
            int(operator.is_admin),
            passwordHash,
            int(operator.disabled),
            nowMS,
        ),
    )
    created = getOperatorById_txn(txn, licence.number, newId)
    assert created is not None
    if log:
        payload = operatorPayload(created)
        payload["EVENT"] = "NEW_OPERATOR"
        payload.update(eventExtra or {})
        logAccountEvent_txn(txn, licence.number, "NEW_OPERATOR", payload, nowMS)
    return created


def createOperator_txn(
    txn: Txn,
    licence: int,
    operator: Operator,
    passwordHash: str,
    nowMS: int,
    eventExtra: dict[str, Any] | None = None,
) -> Operator:
    locked = _lockLicence_txn(txn, licence)
    return _insertOperator_txn(txn, locked, operator, passwordHash, nowMS, eventExtra=eventExtra)


def getOperator_txn(txn: Txn, licence: int, nick: str) -> Operator | None:
    row = txn.queryOne(
        f"SELECT {OPERATOR_COLUMNS} FROM {{operators}} WHERE licence_id = ? AND nick_key = ?",
        (licence, nickKey(nick)),
    )
    return None if row is None else operatorFromRow(row)


def getOperatorById_txn(txn: Txn, licence: int, operatorId: int) -> Operator | None:
    row = txn.queryOne(
        f"SELECT {OPERATOR_COLUMNS} FROM {{operators}} WHERE licence_id = ? AND id = ?",
        (licence, operatorId),
    )
    return None if row is None else operatorFromRow(row)


def getCredentials_txn(txn: Txn, licence: int, nick: str) -> tuple[Licence, Operator, str] | None:
    found = getLicence_txn(txn, licence)
    if found is None:
        return None
    row = txn.queryOne(
        f"SELECT {OPERATOR_COLUMNS}, password_hash FROM {{operators}} "
        "WHERE licence_id = ? AND nick_key = ?",
        (licence, nickKey(nick)),
    )
    if row is None:
        return None
    return found, operatorFromRow(row[:-1]), row[-1]


def listOperators_txn(txn: Txn, licence: int) -> list[Operator]:
    rows = txn.query(
        f"SELECT {OPERATOR_COLUMNS} FROM {{operators}} WHERE licence_id = ? ORDER BY nick_key",
        (licence,),
    )
    return [operatorFromRow(r) for r in rows]


def updateOperator_txn(txn: Txn, licence: int, nick: str, changes: dict[str, Any]) -> Operator:
    unknown = set(changes) - set(OPERATOR_FIELDS)
    if unknown:
        raise ValueError(f"unknown operator fields: {', '.join(sorted(unknown))}")
    locked = _lockLicence_txn(txn, licence)
    before = getOperator_txn(txn, licence, nick)
    if before is None:
        raise NotFound(f"no operator {nick!r} in licence {licence}")
    accountType = AccountType(changes.get("account_type", before.account_type))
    enabling = before.disabled and changes.get("disabled") is False
    changingType = accountType is not before.account_type and not before.disabled
    if enabling or changingType:
        _checkSeats(txn, locked, accountType, 1)
    columns = dict(changes)
    if "nick" in columns:
        columns["nick_key"] = nickKey(columns["nick"])
    if "operator_id" in columns:
        columns["operator_key"] = columns["operator_id"].strip().casefold()
    if columns:
        sets = ", ".join(f"{name} = ?" for name in columns)
        try:
            txn.execute(
                f"UPDATE {{operators}} SET {sets} WHERE id = ?",
                tuple(_dbValue(v) for v in columns.values()) + (before.id,),
            )
        except Exception as e:
            if txn.engine.isIntegrityError(e):
                raise Conflict(f"nick or operator id taken in licence {licence}") from None
            raise
    after = getOperatorById_txn(txn, licence, before.id)
    assert after is not None
    return after


def setPasswordHash_txn(txn: Txn, licence: int, nick: str, passwordHash: str) -> None:
    txn.execute(
        "UPDATE {operators} SET password_hash = ? WHERE licence_id = ? AND nick_key = ?",
        (passwordHash, licence, nickKey(nick)),
    )
    if txn.rowcount == 0 and getOperator_txn(txn, licence, nick) is None:
        raise NotFound(f"no operator {nick!r} in licence {licence}")


# -- server state ------------------------------------------------------------


def getState_txn(txn: Txn, name: str) -> str | None:
    row = txn.queryOne("SELECT value FROM {server_state} WHERE name = ?", (name,))
    return None if row is None else row[0]


def setState_txn(txn: Txn, name: str, value: str) -> None:
    txn.upsert("server_state", {"name": name}, {"value": value})


def claimState_txn(txn: Txn, name: str, value: str) -> bool:
    """Set C{name} only if it is not set; whether this call set it."""
    if getState_txn(txn, name) is not None:
        return False
    try:
        txn.execute("INSERT INTO {server_state} (name, value) VALUES (?, ?)", (name, value))
    except Exception as e:
        if txn.engine.isIntegrityError(e):
            return False
        raise
    return True


# -- API keys ------------------------------------------------------------------


def createApiKey_txn(
    txn: Txn, licence: int, keyId: str, secretHash: str, name: str, scopes: str, nowMS: int
) -> None:
    if not licenceExists_txn(txn, licence):
        raise NotFound(f"licence {licence} does not exist")
    txn.execute(
        "INSERT INTO {api_keys} (licence_id, key_id, secret_hash, name, scopes, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (licence, keyId, secretHash, name, scopes, nowMS),
    )


def getApiKey_txn(txn: Txn, keyId: str) -> tuple[int, str, str, str, bool] | None:
    """C{(licence, secret hash, name, scopes, revoked)} of a key id."""
    row = txn.queryOne(
        "SELECT licence_id, secret_hash, name, scopes, revoked FROM {api_keys} WHERE key_id = ?",
        (keyId,),
    )
    if row is None:
        return None
    return int(row[0]), row[1], row[2], row[3], bool(row[4])


def listApiKeys_txn(txn: Txn, licence: int) -> list[tuple[str, str, str, int, bool]]:
    rows = txn.query(
        "SELECT key_id, name, scopes, created_at, revoked FROM {api_keys} "
        "WHERE licence_id = ? ORDER BY id",
        (licence,),
    )
    return [(r[0], r[1], r[2], int(r[3]), bool(r[4])) for r in rows]


def revokeApiKey_txn(txn: Txn, licence: int, keyId: str) -> None:
    txn.execute(
        "UPDATE {api_keys} SET revoked = 1 WHERE licence_id = ? AND key_id = ?", (licence, keyId)
    )
    if (
        txn.rowcount == 0
        and txn.queryOne(
            "SELECT 1 FROM {api_keys} WHERE licence_id = ? AND key_id = ?", (licence, keyId)
        )
        is None
    ):
        raise NotFound(f"no key {keyId} in licence {licence}")
