"""
The routes of C{/api/v1}, each declared with its OpenAPI operation next to
its handler: L{openapi} builds the document from this table, so a route
cannot exist undocumented (and a test checks the document against the
table and the running server).

A key of one licence only ever reaches that licence's database and rows
(every handler takes the licence from the key), so any id of another
licence is simply not found: 404.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import re
from collections.abc import Callable
from typing import Any

import livechat
from livechat.api import MAX_ID, ApiError, ApiResource, Context, Raw, Route, compileRoute, notFound
from livechat.auth import PasswordHasher, generatePassword
from livechat.config import EVENT_NAMES
from livechat.connector import REQUEST_TYPES, ConnectorHandler
from livechat.core.errors import CoreError
from livechat.model import AccountType, ChatKind, ChatStatus, Licence, LicenceType, Operator
from livechat.notify import outbox, webhooks
from livechat.storage import Conflict, NotFound, SeatsExhausted, hooks, reports
from livechat.storage.hooks import STATES, HookStore
from livechat.storage.settings import GROUP_SETTINGS

ROUTES: list[Route] = []


def route(
    method: str,
    path: str,
    *,
    scope: str = "api",
    summary: str,
    tag: str,
    query: tuple[dict[str, Any], ...] = (),
    body: dict[str, Any] | None = None,
    ok: tuple[int, str, dict[str, Any] | None] = (200, "OK", None),
    errors: tuple[int, ...] = (),
    extraResponses: dict[str, Any] | None = None,
) -> Callable[[Any], Any]:
    def register(handler: Any) -> Any:
        params = [
            {"name": n, "in": "path", "required": True, "schema": _idSchema(n)}
            for n in re.findall(r"\{(\w+)\}", path)
        ] + list(query)
        responses: dict[str, Any] = {}
        status, description, schema = ok
        responses[str(status)] = {"description": description}
        if schema is not None:
            responses[str(status)]["content"] = {"application/json": {"schema": schema}}
        if extraResponses:
            responses.update(extraResponses)
        codes = set(errors) | {400, 404, 405, 413}
        if scope != "public":
            codes |= {401, 403, 429}
        if body is not None:
            codes |= {400, 413}
        for code in sorted(codes):
            responses.setdefault(str(code), {"$ref": f"#/components/responses/E{code}"})
        operation: dict[str, Any] = {
            "operationId": handler.__name__,
            "summary": summary,
            "tags": [tag],
            "responses": responses,
        }
        if params:
            operation["parameters"] = params
        if body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body}},
            }
        if scope == "public":
            operation["security"] = []
        elif scope == "server":
            operation["security"] = [{"serverKey": []}]
        ROUTES.append(compileRoute(method, path, handler, scope, operation))
        return handler

    return register


def _idSchema(name: str) -> dict[str, Any]:
    if not (name.endswith("Id") or name == "number"):
        return {"type": "string", "minLength": 1, "maxLength": 64}
    return {"type": "integer", "minimum": 1, "maximum": MAX_ID}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def page(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "next"],
        "properties": {
            "items": {"type": "array", "items": ref(name)},
            "next": {"type": ["integer", "null"], "description": "pass as `after` for more"},
        },
    }


def q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


LIMIT = q("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size (default 50)")
AFTER = q("after", {"type": "integer", "minimum": 0}, "the `next` of the previous page")


def _paged(items: list[Any], limit: int, key: Callable[[Any], int]) -> dict[str, Any]:
    return {"items": items, "next": key(items[-1]) if len(items) == limit and items else None}


# -- value checks -------------------------------------------------------------------------


def _str(body: dict[str, Any], name: str, default: str | None = None, high: int = 200) -> str:
    value = body.get(name, default)
    if value is None:
        raise ApiError(400, "bad_request", f"{name} is required")
    if not isinstance(value, str) or len(value) > high:
        raise ApiError(400, "bad_request", f"{name} is text of at most {high} characters")
    return value


def _int(
    body: dict[str, Any], name: str, default: int | None = None, low: int = 0, high: int = MAX_ID
) -> int | None:
    value = body.get(name, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ApiError(400, "bad_request", f"{name} is a whole number {low}..{high}")
    return value


def _bool(body: dict[str, Any], name: str, default: bool | None = None) -> bool | None:
    value = body.get(name, default)
    if value is not None and not isinstance(value, bool):
        raise ApiError(400, "bad_request", f"{name} is true or false")
    return value


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(body) - allowed
    if unknown:
        raise ApiError(400, "bad_request", f"unknown field(s): {', '.join(sorted(unknown))}")


def _time(value: Any, name: str) -> int | None:
    """Milliseconds since the epoch, or an ISO 8601 date/time (UTC unless it says)."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= 10**14:
            return value
    elif isinstance(value, str):
        if value.isdigit() and len(value) <= 14:
            return int(value)
        try:
            moment = datetime.datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=datetime.UTC)
            try:
                return int(moment.timestamp() * 1000)
            except (OverflowError, OSError, ValueError):
                pass
    raise ApiError(400, "bad_request", f"{name} is a date (2026-11-22, ISO 8601) or milliseconds")


def _email(value: str, name: str = "email") -> str:
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", value) or len(value) > 254:
        raise ApiError(400, "bad_request", f"{name} must be an e-mail address")
    return value


def _core(e: CoreError) -> ApiError:
    status = {"not_found": 404, "forbidden": 403, "wrong_state": 409, "too_large": 413}.get(
        e.code, 400
    )
    return ApiError(status, e.code, e.message)


# -- JSON of the domain -------------------------------------------------------------------


def licenceJSON(licence: Licence) -> dict[str, Any]:
    return {
        "number": licence.number,
        "type": int(licence.lic_type),
        "name": licence.name,
        "language": licence.language,
        "expiresAt": licence.expires_at,
        "seatsCC": licence.seats_cc,
        "seatsCOM": licence.seats_com,
        "maxChats": licence.max_chats_default,
        "webPage": licence.web_page,
        "promoCode": licence.promo_code,
        "createdAt": licence.created_at,
        "disabled": licence.disabled,
    }


def operatorJSON(op: Operator) -> dict[str, Any]:
    return {
        "id": op.id,
        "nick": op.nick,
        "email": op.operator_id,
        "firstName": op.first_name,
        "lastName": op.last_name,
        "phone": op.phone,
        "accountType": op.account_type.value,
        "maxChats": op.max_chats,
        "admin": op.is_admin,
        "disabled": op.disabled,
        "createdAt": op.created_at,
    }


def _hooks(ctx: Context) -> HookStore:
    return ctx.api.services["hooks"]


def _kick(ctx: Context, licence: int | None = None) -> None:
    worker = ctx.api.parts.webhooks
    if worker is not None:
        worker.kick(licence, full=licence is None)


# -- the document ---------------------------------------------------------------------------


@route(
    "GET",
    "/openapi.json",
    scope="public",
    summary="This API, as OpenAPI 3",
    tag="meta",
    ok=(200, "The OpenAPI document", {"type": "object"}),
)
async def getOpenAPI(ctx: Context) -> Any:
    return 200, openapi()


# -- licences (server key) -------------------------------------------------------------------

LICENCE_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "number": {"type": "integer", "minimum": 1, "maximum": 2147483647},
        "type": {"type": "integer", "enum": [1, 9], "description": "1 ASP-FULL, 9 ASP-DEMO"},
        "name": {"type": "string", "maxLength": 200},
        "language": {"type": "string", "maxLength": 8},
        "expiresAt": {"type": ["string", "integer"], "description": "ISO 8601 or ms"},
        "seatsCC": {"type": ["integer", "null"], "minimum": 0, "maximum": 1000000},
        "seatsCOM": {"type": ["integer", "null"], "minimum": 0, "maximum": 1000000},
        "maxChats": {"type": ["integer", "null"], "minimum": 0, "maximum": 1000},
        "webPage": {"type": "string", "maxLength": 500},
        "promoCode": {"type": "string", "maxLength": 100},
        "admin": ref("NewOperator"),
    },
}


@route(
    "POST",
    "/licences",
    scope="server",
    summary="Create a licence (NEW_LICENCE)",
    tag="licences",
    body=LICENCE_BODY,
    errors=(409,),
    ok=(
        201,
        "The licence, and its administrator with the password shown once",
        ref("CreatedLicence"),
    ),
)
async def createLicence(ctx: Context) -> Any:
    body = ctx.json()
    _only(body, set(LICENCE_BODY["properties"]))
    number = _int(body, "number", 0, 0, 2147483647) or 0
    kind = _int(body, "type", 1, 1, 9)
    if kind not in (1, 9):
        raise ApiError(400, "bad_request", "type is 1 (ASP-FULL) or 9 (ASP-DEMO)")
    licence = Licence(
        number=number,
        lic_type=LicenceType(kind),
        name=_str(body, "name", ""),
        language=_str(body, "language", "en", 8),
        expires_at=_time(body.get("expiresAt"), "expiresAt"),
        seats_cc=_int(body, "seatsCC", None, 0, 1000000),
        seats_com=_int(body, "seatsCOM", None, 0, 1000000),
        max_chats_default=_int(body, "maxChats", None, 0, 1000),
        web_page=_str(body, "webPage", "", 500),
        promo_code=_str(body, "promoCode", "", 100),
    )
    operator, password, passwordHash = None, None, None
    if body.get("admin") is not None:
        operator, password = _newOperator(body["admin"], 0, admin=True)
        passwordHash = await _hasher(ctx).hash(password)
    store = ctx.api.parts.store
    extra = {"PASSWORD": password} if password and _sendPassword(ctx) else None
    try:
        created = await store.createLicence(licence, operator, passwordHash, event_extra=extra)
    except Conflict as e:
        raise ApiError(409, "conflict", str(e)) from None
    except SeatsExhausted as e:
        raise ApiError(409, "over_seats", str(e)) from None
    out: dict[str, Any] = {"licence": licenceJSON(created)}
    if operator is not None:
        admin = await store.getOperator(created.number, operator.nick)
        out["admin"] = operatorJSON(admin)
        if "password" not in body["admin"]:
            out["password"] = password
    _kick(ctx)
    return 201, out


@route(
    "GET",
    "/licences",
    scope="server",
    summary="List licences",
    tag="licences",
    query=(LIMIT, AFTER),
    ok=(200, "Licences by number", page("Licence")),
)
async def listLicences(ctx: Context) -> Any:
    limit, after = ctx.limit(), ctx.intArg("after", 0) or 0
    licences = [x for x in await ctx.api.parts.store.listLicences() if x.number > after][:limit]
    return 200, _paged([licenceJSON(x) for x in licences], limit, lambda x: x["number"])


@route(
    "GET",
    "/licences/{number}",
    scope="server",
    summary="One licence",
    tag="licences",
    ok=(200, "The licence", ref("Licence")),
)
async def getLicenceByNumber(ctx: Context, number: int) -> Any:
    if number > 2147483647:
        raise notFound(f"licence {number}")
    licence = await ctx.api.parts.store.getLicence(number)
    if licence is None:
        raise notFound(f"licence {number}")
    return 200, licenceJSON(licence)


@route(
    "GET",
    "/licence",
    summary="This key's licence, its seats and delivery counts",
    tag="licences",
    ok=(200, "The licence", ref("LicenceInfo")),
)
async def getLicence(ctx: Context) -> Any:
    store = ctx.api.parts.store
    licence = await store.getLicence(ctx.licence)
    if licence is None:
        raise notFound("licence")
    now = int(ctx.api.clock.seconds() * 1000)
    subscribed = await store.subscribedSeats(ctx.licence, now)
    counts = await store.countOperators(ctx.licence)
    out = licenceJSON(licence)
    out["subscribedSeats"] = (
        None
        if subscribed is None
        else {
            "cc": subscribed[AccountType.CONTACT_CENTER],
            "com": subscribed[AccountType.COMMUNICATOR],
        }
    )
    out["operators"] = {
        "cc": counts[AccountType.CONTACT_CENTER],
        "com": counts[AccountType.COMMUNICATOR],
    }
    out["deliveries"] = await _hooks(ctx).countDeliveries(ctx.licence)
    return 200, out


# -- operators ---------------------------------------------------------------------------------

NEW_OPERATOR: dict[str, Any] = {
    "type": "object",
    "required": ["nick", "email"],
    "additionalProperties": False,
    "properties": {
        "nick": {"type": "string", "minLength": 1, "maxLength": 64},
        "email": {"type": "string", "format": "email", "maxLength": 254},
        "firstName": {"type": "string", "maxLength": 100},
        "lastName": {"type": "string", "maxLength": 100},
        "phone": {"type": "string", "maxLength": 40},
        "accountType": {"type": "string", "enum": ["contact_center", "communicator"]},
        "maxChats": {"type": ["integer", "null"], "minimum": 0, "maximum": 1000},
        "admin": {"type": "boolean"},
        "password": {"type": "string", "minLength": 8, "maxLength": 200},
    },
}


def _sendPassword(ctx: Context) -> bool:
    return bool(ctx.api.config()["WEBHOOK_SEND_PASSWORD"])


def _hasher(ctx: Context) -> PasswordHasher:
    return ctx.api.parts.hasher


def _newOperator(body: Any, licence: int, admin: bool = False) -> tuple[Operator, str]:
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "an operator is a JSON object")
    _only(body, set(NEW_OPERATOR["properties"]))
    nick = _str(body, "nick", None, 64).strip()
    if not nick:
        raise ApiError(400, "bad_request", "nick is required")
    accountType = _str(body, "accountType", "contact_center", 20)
    if accountType not in ("contact_center", "communicator"):
        raise ApiError(400, "bad_request", "accountType is contact_center or communicator")
    password = body.get("password")
    if password is None:
        password = generatePassword()
    elif not isinstance(password, str) or not 8 <= len(password) <= 200:
        raise ApiError(400, "bad_request", "password has 8 to 200 characters")
    operator = Operator(
        id=0,
        licence=licence,
        nick=nick,
        operator_id=_email(_str(body, "email", None, 254)),
        first_name=_str(body, "firstName", "", 100),
        last_name=_str(body, "lastName", "", 100),
        phone=_str(body, "phone", "", 40),
        account_type=AccountType(accountType),
        max_chats=_int(body, "maxChats", None, 0, 1000),
        is_admin=bool(_bool(body, "admin", admin)),
    )
    return operator, password


@route(
    "GET",
    "/operators",
    summary="List operators",
    tag="operators",
    query=(LIMIT, AFTER),
    ok=(200, "Operators by id", page("Operator")),
)
async def listOperators(ctx: Context) -> Any:
    limit, after = ctx.limit(), ctx.intArg("after", 0) or 0
    ops = sorted(await ctx.api.parts.store.listOperators(ctx.licence), key=lambda o: o.id)
    items = [operatorJSON(o) for o in ops if o.id > after][:limit]
    return 200, _paged(items, limit, lambda x: x["id"])


@route(
    "POST",
    "/operators",
    summary="Create an operator (NEW_OPERATOR)",
    tag="operators",
    body=NEW_OPERATOR,
    errors=(409,),
    ok=(201, "The operator (and a generated password, shown once)", ref("CreatedOperator")),
)
async def createOperator(ctx: Context) -> Any:
    body = ctx.json()
    operator, password = _newOperator(body, ctx.licence)
    passwordHash = await _hasher(ctx).hash(password)
    extra = {"PASSWORD": password} if _sendPassword(ctx) else None
    try:
        created = await ctx.api.parts.store.createOperator(
            ctx.licence, operator, passwordHash, event_extra=extra
        )
    except Conflict as e:
        raise ApiError(409, "conflict", str(e)) from None
    except SeatsExhausted as e:
        raise ApiError(409, "over_seats", str(e)) from None
    out: dict[str, Any] = {"operator": operatorJSON(created)}
    if "password" not in body:
        out["password"] = password
    _kick(ctx)
    return 201, out


@route(
    "GET",
    "/operators/{operatorId}",
    summary="One operator",
    tag="operators",
    ok=(200, "The operator", ref("Operator")),
)
async def getOperator(ctx: Context, operatorId: int) -> Any:
    op = await ctx.api.parts.store.getOperatorById(ctx.licence, operatorId)
    if op is None:
        raise notFound(f"operator {operatorId}")
    return 200, operatorJSON(op)


OPERATOR_PATCH: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "firstName": {"type": "string", "maxLength": 100},
        "lastName": {"type": "string", "maxLength": 100},
        "phone": {"type": "string", "maxLength": 40},
        "accountType": {"type": "string", "enum": ["contact_center", "communicator"]},
        "maxChats": {"type": ["integer", "null"], "minimum": 0, "maximum": 1000},
        "admin": {"type": "boolean"},
        "disabled": {"type": "boolean"},
    },
}


@route(
    "PATCH",
    "/operators/{operatorId}",
    summary="Change an operator",
    tag="operators",
    body=OPERATOR_PATCH,
    errors=(409,),
    ok=(200, "The operator", ref("Operator")),
)
async def patchOperator(ctx: Context, operatorId: int) -> Any:
    body = ctx.json()
    _only(body, set(OPERATOR_PATCH["properties"]))
    store = ctx.api.parts.store
    op = await store.getOperatorById(ctx.licence, operatorId)
    if op is None:
        raise notFound(f"operator {operatorId}")
    changes: dict[str, Any] = {}
    for field, column, high in (
        ("firstName", "first_name", 100),
        ("lastName", "last_name", 100),
        ("phone", "phone", 40),
    ):
        if field in body:
            changes[column] = _str(body, field, None, high)
    if "accountType" in body:
        value = _str(body, "accountType", None, 20)
        if value not in ("contact_center", "communicator"):
            raise ApiError(400, "bad_request", "accountType is contact_center or communicator")
        changes["account_type"] = AccountType(value)
    if "maxChats" in body:
        changes["max_chats"] = _int(body, "maxChats", None, 0, 1000)
    for field, column in (("admin", "is_admin"), ("disabled", "disabled")):
        if field in body:
            flag = _bool(body, field)
            if flag is None:
                raise ApiError(400, "bad_request", f"{field} is true or false")
            changes[column] = flag
    try:
        updated = await store.updateOperator(ctx.licence, op.nick, **changes)
    except SeatsExhausted as e:
        raise ApiError(409, "over_seats", str(e)) from None
    return 200, operatorJSON(updated)


# -- subscriptions ------------------------------------------------------------------------------

SUBSCRIPTION_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["operatorsCC", "operatorsCOM", "startDate", "endDate"],
    "additionalProperties": False,
    "properties": {
        "operatorsCC": {"type": "integer", "minimum": 0, "maximum": 1000000},
        "operatorsCOM": {"type": "integer", "minimum": 0, "maximum": 1000000},
        "startDate": {"type": ["string", "integer"]},
        "endDate": {"type": ["string", "integer"]},
        "paymentMethod": {"type": "string", "maxLength": 40},
        "netPrice": {"type": "string", "maxLength": 20},
        "vat": {"type": "string", "maxLength": 20},
    },
}


@route(
    "GET",
    "/subscriptions",
    summary="List operator subscriptions",
    tag="operators",
    ok=(200, "Subscriptions, oldest first", page("Subscription")),
)
async def listSubscriptions(ctx: Context) -> Any:
    subs = await ctx.api.parts.store.listSubscriptions(ctx.licence)
    return 200, {"items": subs, "next": None}


@route(
    "POST",
    "/subscriptions",
    summary="Add an operator subscription (NEW_OPERATOR_SUBSCRIPTION)",
    tag="operators",
    body=SUBSCRIPTION_BODY,
    ok=(201, "The subscription", ref("Subscription")),
)
async def createSubscription(ctx: Context) -> Any:
    body = ctx.json()
    _only(body, set(SUBSCRIPTION_BODY["properties"]))
    start = _time(body.get("startDate"), "startDate")
    end = _time(body.get("endDate"), "endDate")
    if start is None or end is None or end <= start:
        raise ApiError(400, "bad_request", "startDate and endDate are required, end after start")
    sub = await ctx.api.parts.store.createSubscription(
        ctx.licence,
        operators_cc=_int(body, "operatorsCC", None, 0, 1000000),
        operators_com=_int(body, "operatorsCOM", None, 0, 1000000),
        start_at=start,
        end_at=end,
        payment_method=_str(body, "paymentMethod", "", 40),
        net_price=_str(body, "netPrice", "", 20),
        vat=_str(body, "vat", "", 20),
    )
    _kick(ctx)
    return 201, sub


# -- groups -------------------------------------------------------------------------------------


def groupJSON(group: Any, members: list[int]) -> dict[str, Any]:
    return {
        "id": group.id,
        "name": group.name,
        "description": group.description,
        "createdAt": group.created_at,
        "operators": members,
    }


@route(
    "GET", "/groups", summary="List groups", tag="groups", ok=(200, "Groups by name", page("Group"))
)
async def listGroups(ctx: Context) -> Any:
    store = ctx.api.parts.store.forLicence(ctx.licence)
    items = []
    for group in await store.listGroups():
        items.append(groupJSON(group, await store.groupMembers(group.id)))
    return 200, {"items": items, "next": None}


GROUP_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "description": {"type": "string", "maxLength": 500},
        "operators": {"type": "array", "items": {"type": "integer"}, "maxItems": 1000},
    },
}


async def _checkOperators(ctx: Context, body: dict[str, Any]) -> list[int] | None:
    ids = body.get("operators")
    if ids is None:
        return None
    if (
        not isinstance(ids, list)
        or len(ids) > 1000
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
    ):
        raise ApiError(400, "bad_request", "operators is a list of operator ids")
    known = {o.id for o in await ctx.api.parts.store.listOperators(ctx.licence)}
    missing = sorted(set(ids) - known)
    if missing:
        raise ApiError(400, "bad_request", f"no operator {missing[0]} in this licence")
    return ids


@route(
    "POST",
    "/groups",
    summary="Create a group",
    tag="groups",
    body=GROUP_BODY,
    errors=(409,),
    ok=(201, "The group", ref("Group")),
)
async def createGroup(ctx: Context) -> Any:
    body = ctx.json()
    _only(body, set(GROUP_BODY["properties"]))
    name = _str(body, "name", None, 100).strip()
    if not name:
        raise ApiError(400, "bad_request", "name is required")
    members = await _checkOperators(ctx, body)
    store = ctx.api.parts.store.forLicence(ctx.licence)
    try:
        group = await store.createGroup(name, _str(body, "description", "", 500))
    except Conflict as e:
        raise ApiError(409, "conflict", str(e)) from None
    if members is not None:
        await store.setGroupMembers(group.id, members)
    return 201, groupJSON(group, await store.groupMembers(group.id))


async def _group(ctx: Context, groupId: int) -> Any:
    store = ctx.api.parts.store.forLicence(ctx.licence)
    for group in await store.listGroups():
        if group.id == groupId:
            return group
    raise notFound(f"group {groupId}")


@route(
    "GET",
    "/groups/{groupId}",
    summary="One group",
    tag="groups",
    ok=(200, "The group", ref("Group")),
)
async def getGroup(ctx: Context, groupId: int) -> Any:
    group = await _group(ctx, groupId)
    members = await ctx.api.parts.store.forLicence(ctx.licence).groupMembers(groupId)
    return 200, groupJSON(group, members)


MEMBERS_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["operators"],
    "additionalProperties": False,
    "properties": {"operators": GROUP_BODY["properties"]["operators"]},
}


@route(
    "PUT",
    "/groups/{groupId}/operators",
    summary="Set a group's operators",
    tag="groups",
    body=MEMBERS_BODY,
    ok=(200, "The group", ref("Group")),
)
async def setGroupOperators(ctx: Context, groupId: int) -> Any:
    body = ctx.json()
    _only(body, {"operators"})
    group = await _group(ctx, groupId)
    members = await _checkOperators(ctx, body)
    if members is None:
        raise ApiError(400, "bad_request", "operators is required")
    store = ctx.api.parts.store.forLicence(ctx.licence)
    await store.setGroupMembers(groupId, members)
    return 200, groupJSON(group, await store.groupMembers(groupId))


GROUP_PATCH: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": GROUP_BODY["properties"]["name"],
        "description": GROUP_BODY["properties"]["description"],
    },
}


@route(
    "PATCH",
    "/groups/{groupId}",
    summary="Rename a group or change its description",
    tag="groups",
    body=GROUP_PATCH,
    errors=(409,),
    ok=(200, "The group", ref("Group")),
)
async def patchGroup(ctx: Context, groupId: int) -> Any:
    body = ctx.json()
    _only(body, set(GROUP_PATCH["properties"]))
    await _group(ctx, groupId)
    name = None
    if "name" in body:
        name = _str(body, "name", None, 100).strip()
        if not name:
            raise ApiError(400, "bad_request", "name may not be empty")
    description = _str(body, "description", "", 500) if "description" in body else None
    store = ctx.api.parts.store.forLicence(ctx.licence)
    try:
        group = await store.updateGroup(groupId, name, description)
    except Conflict as e:
        raise ApiError(409, "conflict", str(e)) from None
    return 200, groupJSON(group, await store.groupMembers(groupId))


@route(
    "DELETE",
    "/groups/{groupId}",
    summary="Remove a group (refused while chats wait in its queue)",
    tag="groups",
    errors=(409,),
    ok=(204, "Removed", None),
)
async def deleteGroup(ctx: Context, groupId: int) -> Any:
    await _group(ctx, groupId)
    try:
        await ctx.api.parts.store.forLicence(ctx.licence).deleteGroup(groupId)
    except Conflict as e:
        raise ApiError(409, "conflict", str(e)) from None
    cache = ctx.api.services.get("settingsCache")
    if cache is not None:
        for setting in GROUP_SETTINGS:
            cache.forget(ctx.licence, f"{setting}.{groupId}")
    return Raw(b"", "application/json", 204)


# -- visitors -----------------------------------------------------------------------------------


@route(
    "GET",
    "/visitors",
    summary="Visitors on the website now",
    tag="visitors",
    query=(LIMIT,),
    ok=(200, "Visitors, earliest visit first", page("Visitor")),
)
async def listVisitors(ctx: Context) -> Any:
    limit = ctx.limit(500, 10000)
    visitors = (await ctx.api.parts.core.presence.visitors(ctx.licence))[:limit]
    return 200, {"items": [v.toJSON() for v in visitors], "next": None}


# -- chats ------------------------------------------------------------------------------------

CHAT_FILTERS = (
    LIMIT,
    AFTER,
    q("from", {"type": "string"}, "created at or after (ISO 8601 date/time, or ms)"),
    q("to", {"type": "string"}, "created before (ISO 8601 date/time, or ms)"),
    q("operator", {"type": "integer", "minimum": 1}, "an operator took part"),
    q("visitor", {"type": "string", "maxLength": 64}, "the visitor's id"),
    q("status", {"type": "string", "enum": [s.value for s in ChatStatus]}, "the chat's state"),
    q("kind", {"type": "string", "enum": [k.value for k in ChatKind]}, "visitor, private or team"),
    q("q", {"type": "string", "maxLength": 200}, "a message contains this text"),
)


def _chatFilters(ctx: Context) -> dict[str, Any]:
    status = ctx.arg("status")
    if status is not None and status not in {s.value for s in ChatStatus}:
        raise ApiError(400, "bad_request", "unknown status")
    kind = ctx.arg("kind")
    if kind is not None and kind not in {k.value for k in ChatKind}:
        raise ApiError(400, "bad_request", "unknown kind")
    text = ctx.arg("q")
    if text is not None and len(text) > 200:
        raise ApiError(400, "bad_request", "q has at most 200 characters")
    visitor = ctx.arg("visitor")
    if visitor is not None and len(visitor) > 64:
        raise ApiError(400, "bad_request", "visitor has at most 64 characters")
    return {
        "after": ctx.intArg("after", 0) or 0,
        "since": _time(ctx.arg("from"), "from"),
        "until": _time(ctx.arg("to"), "to"),
        "operator": ctx.intArg("operator", None, 1),
        "visitor": visitor,
        "status": status,
        "kind": kind,
        "text": text or None,
    }


@route(
    "GET",
    "/chats",
    summary="List and search chats",
    tag="chats",
    query=CHAT_FILTERS,
    ok=(200, "Chats by id", page("Chat")),
)
async def listChats(ctx: Context) -> Any:
    limit = ctx.limit()
    chats = await ctx.api.parts.store.db.runLicence(
        ctx.licence, "list chats", reports.listChats_txn, limit=limit, **_chatFilters(ctx)
    )
    return 200, _paged([reports.chatJSON(c) for c in chats], limit, lambda x: x["id"])


async def _chat(ctx: Context, chatId: int) -> Any:
    chat = await ctx.api.parts.store.forLicence(ctx.licence).getChat(chatId)
    if chat is None:
        raise notFound(f"chat {chatId}")
    return chat


def _message(event: Any) -> dict[str, Any]:
    return {
        "sequence": event.seq,
        "createdAt": event.created_at,
        "originatorId": event.originator,
        "role": event.role,
        "name": event.name,
        "message": event.event.get("message", ""),
    }


@route(
    "GET",
    "/chats/{chatId}",
    summary="One chat, with its participants",
    tag="chats",
    ok=(200, "The chat", ref("ChatDetail")),
)
async def getChat(ctx: Context, chatId: int) -> Any:
    chat = await _chat(ctx, chatId)
    store = ctx.api.parts.store.forLicence(ctx.licence)
    out = reports.chatJSON(chat)
    out["participants"] = [{"id": p, "role": r} for p, r in await store.participants(chatId)]
    return 200, out


@route(
    "GET",
    "/chats/{chatId}/transcript",
    summary="A chat's messages",
    tag="chats",
    query=(q("format", {"type": "string", "enum": ["json", "text"]}, "json (default) or text"),),
    ok=(200, "The messages in order", ref("Transcript")),
    extraResponses=None,
)
async def getTranscript(ctx: Context, chatId: int) -> Any:
    await _chat(ctx, chatId)
    fmt = ctx.arg("format") or "json"
    if fmt not in ("json", "text"):
        raise ApiError(400, "bad_request", "format is json or text")
    messages = await ctx.api.parts.store.forLicence(ctx.licence).transcript(chatId)
    if fmt == "text":
        from livechat.core.hub import transcriptText

        return Raw(transcriptText(messages).encode("utf-8") + b"\n", "text/plain; charset=utf-8")
    return 200, {"chatId": chatId, "messages": [_message(m) for m in messages]}


@route(
    "GET",
    "/chats/export",
    summary="Export chats with their messages",
    tag="chats",
    query=CHAT_FILTERS
    + (q("format", {"type": "string", "enum": ["jsonl", "csv"]}, "jsonl (default) or csv"),),
    ok=(
        200,
        "One chat per line (JSON Lines), or one message per row (CSV); "
        "the X-Next-After header gives the next page",
        None,
    ),
)
async def exportChats(ctx: Context) -> Any:
    fmt = ctx.arg("format") or "jsonl"
    if fmt not in ("jsonl", "csv"):
        raise ApiError(400, "bad_request", "format is jsonl or csv")
    limit = ctx.limit(100, 500)
    store = ctx.api.parts.store.forLicence(ctx.licence)
    chats = await ctx.api.parts.store.db.runLicence(
        ctx.licence, "export chats", reports.listChats_txn, limit=limit, **_chatFilters(ctx)
    )
    if fmt == "jsonl":
        lines = []
        for chat in chats:
            row = reports.chatJSON(chat)
            row["messages"] = [_message(m) for m in await store.transcript(chat.id)]
            lines.append(json.dumps(row, sort_keys=True, ensure_ascii=False))
        body = ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8")
        return Raw(body, "application/x-ndjson; charset=utf-8")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "chat_id",
            "visitor_id",
            "operator_id",
            "sequence",
            "created_at",
            "originator",
            "name",
            "message",
        ]
    )
    for chat in chats:
        for m in await store.transcript(chat.id):
            writer.writerow(
                [
                    chat.id,
                    chat.visitor_id or "",
                    chat.operator or "",
                    m.seq,
                    m.created_at,
                    m.originator,
                    m.name,
                    m.event.get("message", ""),
                ]
            )
    return Raw(out.getvalue().encode("utf-8"), "text/csv; charset=utf-8")


# -- apps and the connector ---------------------------------------------------------------------

HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
RESERVED_HEADERS = {"host", "content-length", "content-type", "transfer-encoding", "connection"}

APP_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "description": {"type": "string", "maxLength": 2000},
        "enabled": {"type": "boolean"},
        "endpoint": {"type": "string", "maxLength": 2000, "description": "for every event type"},
        "endpoints": {
            "type": "object",
            "description": "per event type, overriding `endpoint`",
            "propertyNames": {"enum": list(outbox.CHAT_EVENT_TYPES)},
            "additionalProperties": {"type": "string", "maxLength": 2000},
        },
        "headers": {
            "type": "object",
            "maxProperties": 20,
            "additionalProperties": {"type": "string", "maxLength": 1000},
        },
        "allChats": {
            "type": "boolean",
            "description": "every visitor chat, not only its consumers'",
        },
    },
}


def _appFields(ctx: Context, body: dict[str, Any], creating: bool) -> dict[str, Any]:
    _only(body, set(APP_BODY["properties"]))
    allowPrivate = ctx.api.config()["WEBHOOK_ALLOW_PRIVATE"]
    fields: dict[str, Any] = {}
    if creating or "name" in body:
        name = _str(body, "name", None, 200).strip()
        if not name:
            raise ApiError(400, "bad_request", "name is required")
        fields["name"] = name
    if "description" in body:
        fields["description"] = _str(body, "description", "", 2000)
    for flag in ("enabled", "allChats"):
        if flag in body:
            value = _bool(body, flag)
            if value is None:
                raise ApiError(400, "bad_request", f"{flag} is true or false")
            fields[flag] = value
    if "endpoint" in body:
        url = _str(body, "endpoint", "", 2000)
        fields["endpoint"] = _url(url, allowPrivate) if url else ""
    if "endpoints" in body:
        endpoints = body["endpoints"]
        if not isinstance(endpoints, dict):
            raise ApiError(400, "bad_request", "endpoints is an object {event type: URL}")
        checked = {}
        for kind, url in endpoints.items():
            if kind not in outbox.CHAT_EVENT_TYPES:
                raise ApiError(400, "bad_request", f"unknown event type {kind!r}")
            if not isinstance(url, str):
                raise ApiError(400, "bad_request", "endpoints are URLs")
            if url:
                checked[kind] = _url(url, allowPrivate)
        fields["endpoints"] = checked
    if "headers" in body:
        headers = body["headers"]
        if not isinstance(headers, dict) or len(headers) > 20:
            raise ApiError(400, "bad_request", "headers is an object of at most 20 names")
        for name, value in headers.items():
            if (
                not HEADER_NAME.match(name)
                or name.lower() in RESERVED_HEADERS
                or name.lower().startswith("x-livechat-")
            ):
                raise ApiError(400, "bad_request", f"header {name!r} cannot be set")
            if not isinstance(value, str) or len(value) > 1000 or any(c in value for c in "\r\n\0"):
                raise ApiError(400, "bad_request", f"header {name!r}: a value of one line")
        fields["headers"] = headers
    return fields


def _url(url: str, allowPrivate: bool) -> str:
    try:
        return webhooks.checkURL(url, allowPrivate)
    except ValueError as e:
        raise ApiError(400, "bad_url", str(e)) from None


@route("GET", "/apps", summary="List apps", tag="apps", ok=(200, "Apps by id", page("App")))
async def listApps(ctx: Context) -> Any:
    return 200, {"items": await _hooks(ctx).listApps(ctx.licence), "next": None}


@route(
    "POST",
    "/apps",
    summary="Create an app",
    tag="apps",
    body={**APP_BODY, "required": ["name"]},
    ok=(201, "The app", ref("App")),
)
async def createApp(ctx: Context) -> Any:
    fields = _appFields(ctx, ctx.json(), creating=True)
    return 201, await _hooks(ctx).createApp(ctx.licence, fields)


async def _app(ctx: Context, appId: int) -> dict[str, Any]:
    app = await _hooks(ctx).getApp(ctx.licence, appId)
    if app is None:
        raise notFound(f"app {appId}")
    return app


@route("GET", "/apps/{appId}", summary="One app", tag="apps", ok=(200, "The app", ref("App")))
async def getApp(ctx: Context, appId: int) -> Any:
    return 200, await _app(ctx, appId)


@route(
    "PATCH",
    "/apps/{appId}",
    summary="Change an app",
    tag="apps",
    body=APP_BODY,
    ok=(200, "The app", ref("App")),
)
async def patchApp(ctx: Context, appId: int) -> Any:
    fields = _appFields(ctx, ctx.json(), creating=False)
    await _app(ctx, appId)
    return 200, await _hooks(ctx).updateApp(ctx.licence, appId, fields)


@route(
    "DELETE",
    "/apps/{appId}",
    summary="Remove an app (its undelivered events go with it)",
    tag="apps",
    ok=(204, "Removed", None),
)
async def deleteApp(ctx: Context, appId: int) -> Any:
    await _app(ctx, appId)
    await _hooks(ctx).deleteApp(ctx.licence, appId)
    return Raw(b"", "application/json", 204)


CONNECTOR_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["kind", "id", "type"],
    "properties": {
        "kind": {"type": "string", "enum": ["req"]},
        "id": {"type": "string", "maxLength": 64},
        "type": {"type": "string", "enum": list(REQUEST_TYPES)},
        "body": {"type": "object"},
    },
}


@route(
    "POST",
    "/apps/{appId}/connector",
    scope="connector",
    summary="The connector API: an app's consumer opens, writes in and closes conversations",
    tag="connector",
    body=CONNECTOR_REQUEST,
    query=(
        {
            "name": "X-Livechat-Consumer",
            "in": "header",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 128},
            "description": "the consumer's id in the app (e.g. a phone number)",
        },
    ),
    errors=(409, 503),
    ok=(200, "Done: {reqId, code: OK, body}", ref("ConnectorResponse")),
)
async def connector(ctx: Context, appId: int) -> Any:
    app = await _app(ctx, appId)
    if not app["enabled"]:
        raise ApiError(409, "wrong_state", f"app {appId} is disabled")
    request = ctx.json()
    consumer = ctx.request.getHeader("x-livechat-consumer")
    if consumer is not None:
        try:
            consumer = consumer.encode("latin-1").decode("utf-8")
        except UnicodeError:
            consumer = None
    handler: ConnectorHandler = ctx.api.services["connector"]
    address = getattr(ctx.request.getClientAddress(), "host", "") or ""
    status, answer = await handler.handle(ctx.licence, appId, consumer, request, address)
    if status != 200:
        raise ApiError(status, answer["code"].lower(), answer["body"]["msg"], reqId=answer["reqId"])
    return 200, answer


# -- RPC webhooks -----------------------------------------------------------------------------

WEBHOOK_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "event": {"type": "string", "enum": list(EVENT_NAMES) + ["*"]},
        "url": {"type": "string", "maxLength": 2000, "pattern": "^https?://"},
        "method": {"type": "string", "enum": ["POST", "GET"]},
        "enabled": {"type": "boolean"},
    },
}


def _webhookFields(ctx: Context, body: dict[str, Any], creating: bool) -> dict[str, Any]:
    _only(body, set(WEBHOOK_BODY["properties"]))
    fields: dict[str, Any] = {}
    if creating or "event" in body:
        event = _str(body, "event", None, 40)
        if event not in EVENT_NAMES and event != "*":
            raise ApiError(400, "bad_request", f"event is one of {', '.join(EVENT_NAMES)} or *")
        fields["event"] = event
    if creating or "url" in body:
        fields["url"] = _url(
            _str(body, "url", None, 2000), ctx.api.config()["WEBHOOK_ALLOW_PRIVATE"]
        )
    if creating or "method" in body:
        method = _str(body, "method", "POST", 8).upper()
        if method not in ("POST", "GET"):
            raise ApiError(400, "bad_request", "method is POST or GET")
        fields["method"] = method
    if creating or "enabled" in body:
        fields["enabled"] = _bool(body, "enabled", True)
    return fields


@route(
    "GET",
    "/webhooks",
    summary="List RPC webhooks",
    tag="webhooks",
    ok=(200, "Webhooks by id", page("Webhook")),
)
async def listWebhooks(ctx: Context) -> Any:
    return 200, {"items": await _hooks(ctx).listWebhooks(ctx.licence), "next": None}


@route(
    "POST",
    "/webhooks",
    summary="Add an RPC webhook (the seed's events, form-encoded)",
    tag="webhooks",
    body={**WEBHOOK_BODY, "required": ["event", "url"]},
    ok=(201, "The webhook", ref("Webhook")),
)
async def createWebhook(ctx: Context) -> Any:
    f = _webhookFields(ctx, ctx.json(), creating=True)
    return 201, await _hooks(ctx).createWebhook(
        ctx.licence, f["event"], f["url"], f["method"], f["enabled"]
    )


async def _webhook(ctx: Context, webhookId: int) -> dict[str, Any]:
    hook = await _hooks(ctx).getWebhook(ctx.licence, webhookId)
    if hook is None:
        raise notFound(f"webhook {webhookId}")
    return hook


@route(
    "GET",
    "/webhooks/{webhookId}",
    summary="One webhook",
    tag="webhooks",
    ok=(200, "The webhook", ref("Webhook")),
)
async def getWebhook(ctx: Context, webhookId: int) -> Any:
    return 200, await _webhook(ctx, webhookId)


@route(
    "PATCH",
    "/webhooks/{webhookId}",
    summary="Change a webhook",
    tag="webhooks",
    body=WEBHOOK_BODY,
    ok=(200, "The webhook", ref("Webhook")),
)
async def patchWebhook(ctx: Context, webhookId: int) -> Any:
    fields = _webhookFields(ctx, ctx.json(), creating=False)
    await _webhook(ctx, webhookId)
    return 200, await _hooks(ctx).updateWebhook(ctx.licence, webhookId, fields)


@route(
    "DELETE",
    "/webhooks/{webhookId}",
    summary="Remove a webhook (its undelivered events go with it)",
    tag="webhooks",
    ok=(204, "Removed", None),
)
async def deleteWebhook(ctx: Context, webhookId: int) -> Any:
    await _webhook(ctx, webhookId)
    await _hooks(ctx).deleteWebhook(ctx.licence, webhookId)
    return Raw(b"", "application/json", 204)


@route(
    "GET",
    "/webhook-secret",
    summary="The licence's signing secret (HMAC-SHA256)",
    tag="webhooks",
    ok=(200, "The secret", ref("Secret")),
)
async def getSecret(ctx: Context) -> Any:
    return 200, {"secret": await _hooks(ctx).secret(ctx.licence)}


@route(
    "POST",
    "/webhook-secret",
    summary="Replace the signing secret",
    tag="webhooks",
    ok=(200, "The new secret", ref("Secret")),
)
async def rotateSecret(ctx: Context) -> Any:
    return 200, {"secret": await _hooks(ctx).rotateSecret(ctx.licence)}


# -- deliveries -----------------------------------------------------------------------------


@route(
    "GET",
    "/deliveries",
    summary="The delivery log",
    tag="deliveries",
    query=(
        LIMIT,
        AFTER,
        q("state", {"type": "string", "enum": list(STATES)}, "pending, delivered or dead"),
        q("endpoint", {"type": "string", "maxLength": 64}, "cfg:<EVENT>, hook:<id> or app:<id>"),
        q("event", {"type": "string", "maxLength": 40}, "event name"),
        q("chat", {"type": "integer", "minimum": 1}, "chat id"),
    ),
    ok=(200, "Deliveries by id", page("Delivery")),
)
async def listDeliveries(ctx: Context) -> Any:
    limit = ctx.limit()
    state = ctx.arg("state")
    if state is not None and state not in STATES:
        raise ApiError(400, "bad_request", "state is pending, delivered or dead")
    endpoint, event = ctx.arg("endpoint"), ctx.arg("event")
    if (endpoint and len(endpoint) > 64) or (event and len(event) > 40):
        raise ApiError(400, "bad_request", "endpoint or event too long")
    found = await _hooks(ctx).listDeliveries(
        ctx.licence,
        state=state,
        endpoint=endpoint,
        event=event,
        chat_id=ctx.intArg("chat", None, 1),
        after=ctx.intArg("after", 0) or 0,
        limit=limit,
    )
    return 200, _paged([d.toJSON() for d in found], limit, lambda x: x["id"])


@route(
    "GET",
    "/deliveries/{deliveryId}",
    summary="One delivery, with its payload",
    tag="deliveries",
    ok=(200, "The delivery", ref("Delivery")),
)
async def getDelivery(ctx: Context, deliveryId: int) -> Any:
    found = await _hooks(ctx).getDelivery(ctx.licence, deliveryId)
    if found is None:
        raise notFound(f"delivery {deliveryId}")
    return 200, found.toJSON()


@route(
    "POST",
    "/deliveries/{deliveryId}/replay",
    summary="Send a dead (or delivered) delivery again",
    tag="deliveries",
    ok=(200, "How many were queued", ref("Replayed")),
)
async def replayDelivery(ctx: Context, deliveryId: int) -> Any:
    try:
        count = await _hooks(ctx).replay(ctx.licence, deliveryId=deliveryId)
    except NotFound:
        raise notFound(f"delivery {deliveryId}") from None
    _kick(ctx, ctx.licence)
    return 200, {"replayed": count}


REPLAY_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "state": {"type": "string", "enum": ["dead", "delivered"]},
        "endpoint": {"type": "string", "maxLength": 64},
    },
}


@route(
    "POST",
    "/deliveries/replay",
    summary="Send every dead delivery (of an endpoint) again",
    tag="deliveries",
    body=REPLAY_BODY,
    ok=(200, "How many were queued", ref("Replayed")),
)
async def replayDeliveries(ctx: Context) -> Any:
    body = ctx.json()
    _only(body, {"state", "endpoint"})
    state = _str(body, "state", hooks.DEAD, 10)
    if state not in (hooks.DEAD, hooks.DELIVERED):
        raise ApiError(400, "bad_request", "state is dead or delivered")
    endpoint = body.get("endpoint")
    if endpoint is not None:
        endpoint = _str(body, "endpoint", None, 64)
    count = await _hooks(ctx).replay(ctx.licence, state=state, endpoint=endpoint)
    _kick(ctx, ctx.licence)
    return 200, {"replayed": count}


# -- the event log ----------------------------------------------------------------------------


@route(
    "GET",
    "/events",
    summary="The licence's event log (the seed's RPC events)",
    tag="events",
    query=(
        LIMIT,
        AFTER,
        q("event", {"type": "string", "maxLength": 64}, "only this event (CHAT_STARTED, ...)"),
        q("chat", {"type": "integer", "minimum": 1}, "only the events of this chat"),
    ),
    ok=(200, "Events by id", page("Event")),
)
async def listEvents(ctx: Context) -> Any:
    limit, after = ctx.limit(), ctx.intArg("after", 0) or 0
    event = ctx.arg("event") or None
    if event is not None and (len(event) > 64 or not event.replace("_", "").isalnum()):
        raise ApiError(400, "bad_request", "event is an event's name, such as CHAT_STARTED")
    chat = ctx.intArg("chat", None, 1)
    rows = await ctx.api.parts.store.forLicence(ctx.licence).events(after, limit, event, chat)
    items = [
        {"id": r[0], "createdAt": r[1], "event": r[2], "chatId": r[3], "fields": r[4]} for r in rows
    ]
    return 200, _paged(items, limit, lambda x: x["id"])


@route(
    "GET",
    "/account-events",
    summary="The licence's account events (NEW_OPERATOR, ...)",
    tag="events",
    query=(LIMIT, AFTER),
    ok=(200, "Events by id", page("Event")),
)
async def listAccountEvents(ctx: Context) -> Any:
    limit, after = ctx.limit(), ctx.intArg("after", 0) or 0
    rows = await ctx.api.parts.store.accountEvents(ctx.licence, after, limit)
    items = [
        {
            "id": r[0],
            "createdAt": r[1],
            "event": r[2],
            "chatId": None,
            "fields": {k: v for k, v in r[3].items() if k != "PASSWORD"},
        }
        for r in rows
    ]
    return 200, _paged(items, limit, lambda x: x["id"])


# -- the OpenAPI document ------------------------------------------------------------------------

_NULLABLE_INT = {"type": ["integer", "null"]}
SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
    },
    "Licence": {
        "type": "object",
        "required": ["number", "type", "name", "createdAt", "disabled"],
        "properties": {
            "number": {"type": "integer"},
            "type": {"type": "integer", "enum": [1, 9]},
            "name": {"type": "string"},
            "language": {"type": "string"},
            "expiresAt": _NULLABLE_INT,
            "seatsCC": _NULLABLE_INT,
            "seatsCOM": _NULLABLE_INT,
            "maxChats": _NULLABLE_INT,
            "webPage": {"type": "string"},
            "promoCode": {"type": "string"},
            "createdAt": {"type": "integer"},
            "disabled": {"type": "boolean"},
        },
    },
    "NewOperator": NEW_OPERATOR,
    "Operator": {
        "type": "object",
        "required": ["id", "nick", "email", "accountType", "disabled"],
        "properties": {
            "id": {"type": "integer"},
            "nick": {"type": "string"},
            "email": {"type": "string"},
            "firstName": {"type": "string"},
            "lastName": {"type": "string"},
            "phone": {"type": "string"},
            "accountType": {"type": "string", "enum": ["contact_center", "communicator"]},
            "maxChats": _NULLABLE_INT,
            "admin": {"type": "boolean"},
            "disabled": {"type": "boolean"},
            "createdAt": {"type": "integer"},
        },
    },
    "CreatedOperator": {
        "type": "object",
        "required": ["operator"],
        "properties": {"operator": ref("Operator"), "password": {"type": "string"}},
    },
    "Subscription": {
        "type": "object",
        "required": ["id", "operatorsCC", "operatorsCOM", "startAt", "endAt"],
        "properties": {
            "id": {"type": "integer"},
            "licence": {"type": "integer"},
            "operatorsCC": {"type": "integer"},
            "operatorsCOM": {"type": "integer"},
            "startAt": {"type": "integer"},
            "endAt": {"type": "integer"},
            "paymentMethod": {"type": "string"},
            "netPrice": {"type": "string"},
            "vat": {"type": "string"},
            "createdAt": {"type": "integer"},
        },
    },
    "Group": {
        "type": "object",
        "required": ["id", "name", "operators"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "createdAt": {"type": "integer"},
            "operators": {"type": "array", "items": {"type": "integer"}},
        },
    },
    "Visitor": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
    "Chat": {
        "type": "object",
        "required": ["id", "kind", "status", "createdAt", "lastSequence"],
        "properties": {
            "id": {"type": "integer"},
            "kind": {"type": "string", "enum": [k.value for k in ChatKind]},
            "status": {"type": "string", "enum": [s.value for s in ChatStatus]},
            "visitorId": {"type": ["string", "null"]},
            "groupId": _NULLABLE_INT,
            "operatorId": _NULLABLE_INT,
            "name": {"type": "string"},
            "email": {"type": "string"},
            "createdAt": {"type": "integer"},
            "acceptedAt": _NULLABLE_INT,
            "closedAt": _NULLABLE_INT,
            "closeReason": {"type": "string"},
            "lastSequence": {"type": "integer"},
        },
    },
    "App": {
        "type": "object",
        "required": ["id", "name", "enabled", "endpoint", "endpoints", "headers", "allChats"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "enabled": {"type": "boolean"},
            "endpoint": {"type": "string"},
            "endpoints": {"type": "object", "additionalProperties": {"type": "string"}},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "allChats": {"type": "boolean"},
            "createdAt": {"type": "integer"},
            "updatedAt": {"type": "integer"},
        },
    },
    "Webhook": {
        "type": "object",
        "required": ["id", "event", "url", "method", "enabled"],
        "properties": {
            "id": {"type": "integer"},
            "event": {"type": "string"},
            "url": {"type": "string"},
            "method": {"type": "string", "enum": ["POST", "GET"]},
            "enabled": {"type": "boolean"},
            "createdAt": {"type": "integer"},
            "updatedAt": {"type": "integer"},
        },
    },
    "Delivery": {
        "type": "object",
        "required": ["id", "endpoint", "event", "state", "attempts"],
        "properties": {
            "id": {"type": "integer"},
            "endpoint": {"type": "string"},
            "eventKey": {"type": "string"},
            "event": {"type": "string"},
            "chatId": _NULLABLE_INT,
            "state": {"type": "string", "enum": list(STATES)},
            "attempts": {"type": "integer"},
            "createdAt": {"type": "integer"},
            "nextAt": _NULLABLE_INT,
            "lastAttemptAt": _NULLABLE_INT,
            "lastStatus": _NULLABLE_INT,
            "lastError": {"type": "string"},
            "doneAt": _NULLABLE_INT,
            "payload": {"type": "object"},
        },
    },
    "Event": {
        "type": "object",
        "required": ["id", "createdAt", "event", "fields"],
        "properties": {
            "id": {"type": "integer"},
            "createdAt": {"type": "integer"},
            "event": {"type": "string"},
            "chatId": _NULLABLE_INT,
            "fields": {"type": "object"},
        },
    },
    "Secret": {
        "type": "object",
        "required": ["secret"],
        "properties": {"secret": {"type": "string"}},
    },
    "Replayed": {
        "type": "object",
        "required": ["replayed"],
        "properties": {"replayed": {"type": "integer"}},
    },
    "ConnectorResponse": {
        "type": "object",
        "required": ["reqId", "code", "body"],
        "properties": {
            "reqId": {"type": ["string", "null"]},
            "code": {"type": "string"},
            "body": {"type": "object"},
        },
    },
}
SCHEMAS["CreatedLicence"] = {
    "type": "object",
    "required": ["licence"],
    "properties": {
        "licence": ref("Licence"),
        "admin": ref("Operator"),
        "password": {"type": "string"},
    },
}
SCHEMAS["LicenceInfo"] = {
    "allOf": [ref("Licence")],
    "type": "object",
    "properties": {
        "subscribedSeats": {"type": ["object", "null"]},
        "operators": {"type": "object"},
        "deliveries": {"type": "object"},
    },
}
SCHEMAS["ChatDetail"] = {
    "allOf": [ref("Chat")],
    "type": "object",
    "required": ["participants"],
    "properties": {"participants": {"type": "array", "items": {"type": "object"}}},
}
SCHEMAS["Transcript"] = {
    "type": "object",
    "required": ["chatId", "messages"],
    "properties": {
        "chatId": {"type": "integer"},
        "messages": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["sequence", "message"],
                "properties": {
                    "sequence": {"type": "integer"},
                    "createdAt": {"type": "integer"},
                    "originatorId": {"type": "string"},
                    "role": {"type": "string"},
                    "name": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}

_ERRORS = {
    400: "Bad request: the message says what is wrong",
    401: "No valid API key",
    403: "The key may not do this (scope, or a server-key route)",
    404: "No such resource (or not of this key's licence)",
    405: "Method not allowed here",
    409: "Conflict with the current state",
    413: "Request body too large (API_MAX_BODY)",
    429: "Rate limited (API_RATE, API_BURST); see Retry-After",
    503: "Unavailable now",
}


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route in L{ROUTES}."""
    paths: dict[str, dict[str, Any]] = {}
    for r in ROUTES:
        paths.setdefault(r.path, {})[r.method.lower()] = r.operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "livechat Enterprise REST API",
            "version": livechat.__version__,
            "description": "JSON over HTTPS; `Authorization: Bearer <API key>` (a licence's key "
            "with scope `api`, made by `livechat-admin create-api-key LICENCE --scope api`). "
            'Errors are `{"error": code, "message": text}`. Lists are paged with `limit` '
            "and `after` (the `next` of the previous page). See docs/api.md.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"apiKey": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a licence's API key",
                },
                "serverKey": {"type": "http", "scheme": "bearer", "description": "SERVER_API_KEY"},
            },
            "schemas": SCHEMAS,
            "responses": {
                f"E{code}": {
                    "description": text,
                    "content": {"application/json": {"schema": ref("Error")}},
                }
                for code, text in _ERRORS.items()
            },
        },
    }


def makeResource(parts: Any, identify: Any = None) -> ApiResource:
    """The C{/api/v1} resource over a node's parts (C{identify}: see L{ApiResource})."""
    api = ApiResource(parts, ROUTES, parts.reactor, identify)
    api.services["hooks"] = HookStore(parts.store.db, parts.reactor)
    api.services["connector"] = ConnectorHandler(parts.core)
    from livechat.protocols.connectorws import makeConnectorWebSocket

    api.services["connectorWebSocket"] = makeConnectorWebSocket(api)
    return api


# The routes of the licence's settings and reports (they register in ROUTES on import).
from livechat.api import v1admin  # noqa: E402, F401
