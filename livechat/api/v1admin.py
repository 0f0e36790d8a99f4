"""
The routes of C{/api/v1} that run a licence's settings: the licence default
of parallel chats, operators' passwords, office hours and the manual switch
(per licence and per group), the widget's look, the allowed origins and the
embed snippet, API keys, and the reports.  The control panel (L{livechat.panel})
is built on them; API keys with the C{api} scope reach them too.

They register in L{livechat.api.v1.ROUTES} with their OpenAPI operations, as
the routes of that module do (it imports this one at its end).
"""

from __future__ import annotations

import datetime
import json
import re
import zoneinfo
from typing import Any

from livechat import licencesettings as S
from livechat.api import ApiError, Context, Raw, notFound
from livechat.api.v1 import (
    SCHEMAS,
    _bool,
    _hasher,
    _int,
    _only,
    _str,
    licenceJSON,
    operatorJSON,
    page,
    q,
    ref,
    route,
)
from livechat.apikeys import SCOPES, createKey
from livechat.auth import generatePassword
from livechat.storage import NotFound, panelreports, reports

# -- helpers ------------------------------------------------------------------------------


def _settings(ctx: Context) -> Any:
    return ctx.api.parts.store.forLicence(ctx.licence)


async def _setting(ctx: Context, name: str) -> Any:
    """The parsed value of a licence setting (its default when unset)."""
    return S.parse(name, await _settings(ctx).getSetting(name))


async def _optional(ctx: Context, name: str) -> Any:
    """The parsed value of a setting, or C{None} when unset (a group's own)."""
    raw = await _settings(ctx).getSetting(name)
    if raw is None or raw.strip() == "":
        return None
    return S.parse(name, raw)


async def _put(ctx: Context, name: str, value: str) -> None:
    """Check and store a setting (the empty text clears it); forget it in this node's cache."""
    try:
        stored = S.validate(name, value)
    except S.SettingError as e:
        raise ApiError(400, "bad_request", str(e)) from None
    await _settings(ctx).setSetting(name, stored)
    cache = ctx.api.services.get("settingsCache")
    if cache is not None:
        cache.forget(ctx.licence, name)


def _sessions(ctx: Context) -> Any:
    """The browser sessions (L{livechat.websession}) when this node has them."""
    return ctx.api.services.get("sessions")


# -- the licence ----------------------------------------------------------------------------

LICENCE_PATCH: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "maxLength": 200},
        "maxChats": {
            "type": ["integer", "null"],
            "minimum": 0,
            "maximum": 1000,
            "description": "parallel chats per operator; null: the server's MAX_CHATS_PER_AGENT",
        },
    },
}


@route(
    "PATCH",
    "/licence",
    summary="Change this key's licence: its name, its default of parallel chats",
    tag="licences",
    body=LICENCE_PATCH,
    ok=(200, "The licence", ref("Licence")),
)
async def patchLicence(ctx: Context) -> Any:
    body = ctx.json()
    _only(body, set(LICENCE_PATCH["properties"]))
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = _str(body, "name", None, 200)
    if "maxChats" in body:
        changes["max_chats_default"] = _int(body, "maxChats", None, 0, 1000)
    try:
        licence = await ctx.api.parts.store.updateLicence(ctx.licence, **changes)
    except NotFound:
        raise notFound("licence") from None
    return 200, licenceJSON(licence)


# -- operators' passwords ------------------------------------------------------------------

PASSWORD_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "password": {
            "type": "string",
            "minLength": 8,
            "maxLength": 200,
            "description": "the new password; none: one is generated and answered once",
        }
    },
}


@route(
    "POST",
    "/operators/{operatorId}/password",
    summary="Reset an operator's password (ends the operator's browser sessions)",
    tag="operators",
    body=PASSWORD_BODY,
    ok=(200, "The operator (and the generated password, shown once)", ref("CreatedOperator")),
)
async def resetPassword(ctx: Context, operatorId: int) -> Any:
    body = ctx.json()
    _only(body, {"password"})
    password = body.get("password")
    if password is None:
        password = generatePassword()
    elif not isinstance(password, str) or not 8 <= len(password) <= 200:
        raise ApiError(400, "bad_request", "password has 8 to 200 characters")
    store = ctx.api.parts.store
    op = await store.getOperatorById(ctx.licence, operatorId)
    if op is None:
        raise notFound(f"operator {operatorId}")
    await store.setPasswordHash(ctx.licence, op.nick, await _hasher(ctx).hash(password))
    sessions = _sessions(ctx)
    if sessions is not None:
        await sessions.logoutEverywhere(op)
    out: dict[str, Any] = {"operator": operatorJSON(op)}
    if "password" not in body:
        out["password"] = password
    return 200, out


# -- office hours and the switch ------------------------------------------------------------

OFFICE_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "hours": {
            "type": ["object", "null"],
            "description": 'office hours {"timezone": "Europe/Warsaw", "week": {"mon": '
            '["09:00-17:00"], ...}, "closed": ["2026-12-25"]}; days not listed are closed; '
            "null: always open (a group: the licence's hours)",
        },
        "switch": {
            "type": ["string", "null"],
            "enum": [*S.SWITCHES, None],
            "description": "auto follows the hours; open or closed by hand "
            "(a group: null takes the licence's)",
        },
    },
}


def _status(switch: str, schedule: Any, now: float) -> dict[str, Any]:
    """Open or closed now and why, as the widget's reception decides it."""
    if switch == "closed":
        return {"open": False, "reason": "switch", "nextChange": None}
    if switch == "open" or schedule is None:
        return {"open": True, "reason": "", "nextChange": None}
    isOpen = schedule.isOpen(now)
    change = schedule.nextChange(now)
    return {
        "open": isOpen,
        "reason": "" if isOpen else "hours",
        "nextChange": None if change is None else int(change * 1000),
    }


async def _office(ctx: Context, group: int | None) -> dict[str, Any]:
    suffix = "" if group is None else f".{group}"
    hours = await _optional(ctx, "office.hours" + suffix)
    switch = await _optional(ctx, "office.switch" + suffix)
    effectiveHours, effectiveSwitch = hours, switch
    if group is not None:
        if effectiveHours is None:
            effectiveHours = await _optional(ctx, "office.hours")
        if effectiveSwitch is None:
            effectiveSwitch = await _setting(ctx, "office.switch")
    elif switch is None:
        switch = effectiveSwitch = "auto"
    return {
        "group": group,
        "hours": None if hours is None else hours.toJSON(),
        "switch": switch,
        "status": _status(effectiveSwitch, effectiveHours, ctx.api.clock.seconds()),
    }


async def _patchOffice(ctx: Context, group: int | None) -> dict[str, Any]:
    body = ctx.json()
    _only(body, {"hours", "switch"})
    suffix = "" if group is None else f".{group}"
    if "hours" in body:
        hours = body["hours"]
        if hours is not None and not isinstance(hours, dict):
            raise ApiError(400, "bad_request", "hours is an object or null")
        await _put(ctx, "office.hours" + suffix, "" if hours is None else json.dumps(hours))
    if "switch" in body:
        switch = body["switch"]
        if switch is None and group is None:
            switch = "auto"
        if switch is not None and switch not in S.SWITCHES:
            raise ApiError(400, "bad_request", f"switch is one of {', '.join(S.SWITCHES)}")
        await _put(ctx, "office.switch" + suffix, switch or "")
    return await _office(ctx, group)


@route(
    "GET",
    "/office",
    summary="The licence's office hours, the manual switch, open now or not",
    tag="office",
    ok=(200, "Office hours", ref("Office")),
)
async def getOffice(ctx: Context) -> Any:
    return 200, await _office(ctx, None)


@route(
    "PATCH",
    "/office",
    summary="Set the licence's office hours and/or the manual switch",
    tag="office",
    body=OFFICE_BODY,
    ok=(200, "Office hours", ref("Office")),
)
async def patchOffice(ctx: Context) -> Any:
    return 200, await _patchOffice(ctx, None)


async def _group(ctx: Context, groupId: int) -> int:
    if not await _settings(ctx).groupExists(groupId):
        raise notFound(f"group {groupId}")
    return groupId


@route(
    "GET",
    "/groups/{groupId}/office",
    summary="A group's own office hours and switch (null: the licence's apply)",
    tag="office",
    ok=(200, "Office hours", ref("Office")),
)
async def getGroupOffice(ctx: Context, groupId: int) -> Any:
    return 200, await _office(ctx, await _group(ctx, groupId))


@route(
    "PATCH",
    "/groups/{groupId}/office",
    summary="Set a group's own office hours and/or switch",
    tag="office",
    body=OFFICE_BODY,
    ok=(200, "Office hours", ref("Office")),
)
async def patchGroupOffice(ctx: Context, groupId: int) -> Any:
    return 200, await _patchOffice(ctx, await _group(ctx, groupId))


# -- the widget ------------------------------------------------------------------------------

_TEXTS_SCHEMA = {
    "type": "object",
    "propertyNames": {"enum": list(S.TEXT_KEYS)},
    "additionalProperties": {"type": "string", "maxLength": S.MAX_TEXT},
}
WIDGET_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "color": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
        "textColor": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
        "position": {"type": "string", "enum": ["right", "left"]},
        "prechat": {"type": "boolean"},
        "texts": {
            "type": "object",
            "additionalProperties": False,
            "properties": {lang: _TEXTS_SCHEMA for lang in S.LANGUAGES},
            "description": "per language, the texts replacing the widget's own",
        },
        "css": {"type": "string", "maxLength": S.MAX_CSS},
    },
}
_WIDGET_SETTINGS = {
    "color": "widget.color",
    "textColor": "widget.text_color",
    "position": "widget.position",
    "css": "widget.css",
}


async def _widget(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {f: await _setting(ctx, n) for f, n in _WIDGET_SETTINGS.items()}
    out["prechat"] = await _setting(ctx, "widget.prechat") == "1"
    out["texts"] = {lang: await _setting(ctx, f"widget.texts.{lang}") for lang in S.LANGUAGES}
    out["textKeys"] = list(S.TEXT_KEYS)
    return out


@route(
    "GET",
    "/widget",
    summary="The widget's look: colours, position, texts (en, pl), custom CSS",
    tag="widget",
    ok=(200, "The look", ref("Widget")),
)
async def getWidget(ctx: Context) -> Any:
    return 200, await _widget(ctx)


@route(
    "PATCH",
    "/widget",
    summary="Change the widget's look (the fields given)",
    tag="widget",
    body=WIDGET_BODY,
    ok=(200, "The look", ref("Widget")),
)
async def patchWidget(ctx: Context) -> Any:
    body = ctx.json()
    _only(body, set(WIDGET_BODY["properties"]))
    pending: list[tuple[str, str]] = []
    for field, name in _WIDGET_SETTINGS.items():
        if field in body:
            value = body[field]
            if not isinstance(value, str):
                raise ApiError(400, "bad_request", f"{field} is text")
            pending.append((name, value))
    if "prechat" in body:
        flag = _bool(body, "prechat")
        if flag is None:
            raise ApiError(400, "bad_request", "prechat is true or false")
        pending.append(("widget.prechat", "1" if flag else "0"))
    if "texts" in body:
        texts = body["texts"]
        if not isinstance(texts, dict) or set(texts) - set(S.LANGUAGES):
            raise ApiError(400, "bad_request", "texts is an object {en: {...}, pl: {...}}")
        for lang, values in texts.items():
            if not isinstance(values, dict):
                raise ApiError(400, "bad_request", f"texts.{lang} is an object {{key: text}}")
            pending.append((f"widget.texts.{lang}", json.dumps(values) if values else ""))
    for name, value in pending:  # check them all before storing any
        if value.strip():
            try:
                S.validate(name, value)
            except S.SettingError as e:
                raise ApiError(400, "bad_request", str(e)) from None
    for name, value in pending:
        await _put(ctx, name, value)
    return 200, await _widget(ctx)


ORIGINS_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["origins"],
    "additionalProperties": False,
    "properties": {
        "origins": {
            "type": "array",
            "maxItems": S.MAX_LIST,
            "items": {"type": "string", "maxLength": 300},
            "description": 'https://www.example.com, https://*.example.com, or "self" '
            "(this server's own pages)",
        }
    },
}


@route(
    "GET",
    "/origins",
    summary="The sites allowed to embed the widget (CORS allow-list)",
    tag="widget",
    ok=(200, "The allow-list", ref("Origins")),
)
async def getOrigins(ctx: Context) -> Any:
    return 200, {"origins": await _setting(ctx, "web.origins")}


@route(
    "PUT",
    "/origins",
    summary="Replace the allow-list",
    tag="widget",
    body=ORIGINS_BODY,
    ok=(200, "The allow-list, normalised", ref("Origins")),
)
async def putOrigins(ctx: Context) -> Any:
    body = ctx.json()
    _only(body, {"origins"})
    origins = body.get("origins")
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise ApiError(400, "bad_request", "origins is a list of origins")
    await _put(ctx, "web.origins", json.dumps(origins) if origins else "")
    return 200, {"origins": await _setting(ctx, "web.origins")}


def _publicBase(ctx: Context) -> str:
    configured = ctx.api.config()["PUBLIC_URL"]
    if configured:
        return configured.rstrip("/") + "/"
    known = ctx.api.services.get("publicUrl")
    if known is not None and known():
        return known().rstrip("/") + "/"
    host = ctx.request.getHeader("host") or "127.0.0.1"
    scheme = "https" if ctx.request.isSecure() else "http"
    return f"{scheme}://{host}/"


@route(
    "GET",
    "/embed",
    summary="The tag to paste into the website's pages",
    tag="widget",
    query=(
        q("group", {"type": "integer", "minimum": 1}, "send chats to this group"),
        q("lang", {"type": "string", "enum": list(S.LANGUAGES)}, "the widget's language"),
    ),
    ok=(200, "The snippet", ref("Embed")),
)
async def getEmbed(ctx: Context) -> Any:
    group = ctx.intArg("group", None, 1)
    if group is not None:
        await _group(ctx, group)
    lang = ctx.arg("lang")
    if lang is not None and lang not in S.LANGUAGES:
        raise ApiError(400, "bad_request", "lang is en or pl")
    base = _publicBase(ctx)
    attrs = f' data-licence="{ctx.licence}"'
    if group is not None:
        attrs += f' data-dispatch-to="{group}"'
    if lang:
        attrs += f' data-lang="{lang}"'
    script = base + "livechat.js"
    return 200, {
        "licence": ctx.licence,
        "script": script,
        "snippet": f'<script src="{script}"{attrs} async></script>',
        "testPage": f"{base}?licence={ctx.licence}",
    }


# -- API keys ---------------------------------------------------------------------------------

KEY_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "scopes": {
            "type": "array",
            "items": {"type": "string", "enum": sorted(SCOPES)},
            "minItems": 1,
            "uniqueItems": True,
            "description": "api (this API), connector (the connector API), control (IWCS); "
            "default api",
        },
    },
}


def _keyJSON(row: tuple[str, str, str, int, bool]) -> dict[str, Any]:
    keyId, name, scopes, createdAt, revoked = row
    return {
        "id": keyId,
        "name": name,
        "scopes": sorted(scopes.split()),
        "createdAt": createdAt,
        "revoked": revoked,
    }


@route(
    "GET",
    "/api-keys",
    summary="The licence's API keys (never their secrets)",
    tag="keys",
    ok=(200, "Keys, oldest first", page("ApiKey")),
)
async def listApiKeys(ctx: Context) -> Any:
    rows = await ctx.api.parts.store.listApiKeys(ctx.licence)
    return 200, {"items": [_keyJSON(r) for r in rows], "next": None}


@route(
    "POST",
    "/api-keys",
    summary="Make an API key; its secret is in this answer only",
    tag="keys",
    body=KEY_BODY,
    errors=(409,),
    ok=(201, "The key, with the whole secret once", ref("NewApiKey")),
)
async def createApiKey(ctx: Context) -> Any:
    body = ctx.json()
    _only(body, {"name", "scopes"})
    name = _str(body, "name", None, 100).strip()
    if not name:
        raise ApiError(400, "bad_request", "name is required")
    scopes = body.get("scopes", ["api"])
    if (
        not isinstance(scopes, list)
        or not scopes
        or not all(isinstance(s, str) and s in SCOPES for s in scopes)
    ):
        raise ApiError(400, "bad_request", f"scopes is a list of {', '.join(sorted(SCOPES))}")
    store = ctx.api.parts.store
    active = [r for r in await store.listApiKeys(ctx.licence) if not r[4]]
    most = ctx.api.config()["API_MAX_KEYS"]
    if len(active) >= most:
        raise ApiError(
            409, "too_many_keys", f"a licence has at most {most} keys (API_MAX_KEYS); revoke one"
        )
    secret, key = await createKey(store, ctx.licence, name, set(scopes))
    rows = await store.listApiKeys(ctx.licence)
    made = next(r for r in rows if r[0] == key.key_id)
    return 201, {**_keyJSON(made), "key": secret}


@route(
    "DELETE",
    "/api-keys/{apiKey}",
    summary="Revoke an API key (it stops working at once)",
    tag="keys",
    ok=(204, "Revoked", None),
)
async def revokeApiKey(ctx: Context, apiKey: str) -> Any:
    if not re.fullmatch(r"[0-9a-f]{12}", apiKey):
        raise notFound(f"key {apiKey!r}")
    try:
        await ctx.api.parts.store.revokeApiKey(ctx.licence, apiKey)
    except NotFound:
        raise notFound(f"key {apiKey}") from None
    return Raw(b"", "application/json", 204)


# -- reports -------------------------------------------------------------------------------------

REPORT_QUERY = (
    q("from", {"type": "string", "format": "date"}, "first day, YYYY-MM-DD (default: 29 days ago)"),
    q("to", {"type": "string", "format": "date"}, "last day, YYYY-MM-DD (default: today)"),
    q("tz", {"type": "string", "maxLength": 64}, "the time zone of the days (default UTC)"),
)


def _reportRange(
    ctx: Context,
) -> tuple[zoneinfo.ZoneInfo, datetime.date, datetime.date, int, int]:
    name = ctx.arg("tz") or "UTC"
    try:
        if len(name) > 64:
            raise ValueError(name)
        zone = zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ApiError(400, "bad_request", f"unknown time zone {name[:64]!r}") from None
    today = panelreports.localDate(int(ctx.api.clock.seconds() * 1000), zone)

    def date(arg: str, default: datetime.date) -> datetime.date:
        raw = ctx.arg(arg)
        if not raw:
            return default
        try:
            if not re.fullmatch(r"\d{4}-\d\d-\d\d", raw):
                raise ValueError(raw)
            value = datetime.date.fromisoformat(raw)
        except ValueError:
            raise ApiError(400, "bad_request", f"{arg} is a date YYYY-MM-DD") from None
        if not 1971 <= value.year <= 9998:
            raise ApiError(400, "bad_request", f"{arg}: dates from 1971 to 9998")
        return value

    last = date("to", today)
    first = date("from", last - datetime.timedelta(days=29))
    most = ctx.api.config()["REPORT_MAX_DAYS"]
    if first > last:
        raise ApiError(400, "bad_request", "from is after to")
    if (last - first).days + 1 > most:
        raise ApiError(400, "bad_request", f"a report covers at most {most} days (REPORT_MAX_DAYS)")
    since, until = panelreports.dayRange(zone, first, last)
    return zone, first, last, since, until


def _run(ctx: Context, what: str, func: Any, *args: Any) -> Any:
    return ctx.api.parts.store.db.runLicence(ctx.licence, what, func, *args)


def _range(first: datetime.date, last: datetime.date, zone: Any) -> dict[str, Any]:
    return {"from": first.isoformat(), "to": last.isoformat(), "tz": str(zone.key)}


@route(
    "GET",
    "/reports/chats",
    summary="Visitor chats per day: all, accepted, missed",
    tag="reports",
    query=REPORT_QUERY,
    ok=(200, "Days", ref("ChatsReport")),
)
async def reportChats(ctx: Context) -> Any:
    zone, first, last, since, until = _reportRange(ctx)
    rows = await _run(ctx, "report chats", panelreports.chatBuckets_txn, since, until)
    days = panelreports.foldDays(rows, zone, first, last, 3)
    items: list[dict[str, Any]] = [
        {"date": d.isoformat(), "chats": v[0], "missed": v[1], "accepted": v[2]} for d, v in days
    ]
    return 200, {
        **_range(first, last, zone),
        "days": items,
        "total": {k: sum(i[k] for i in items) for k in ("chats", "missed", "accepted")},
    }


@route(
    "GET",
    "/reports/first-response",
    summary="Time to the first operator message, per day and by class",
    tag="reports",
    query=REPORT_QUERY,
    ok=(200, "Days and classes", ref("FirstResponseReport")),
)
async def reportFirstResponse(ctx: Context) -> Any:
    zone, first, last, since, until = _reportRange(ctx)
    rows = await _run(
        ctx, "report first response", panelreports.firstResponseBuckets_txn, since, until
    )
    width = 2 + len(panelreports.RESPONSE_CLASSES) + 1
    days = panelreports.foldDays(rows, zone, first, last, width)
    items = []
    classes = [0] * (len(panelreports.RESPONSE_CLASSES) + 1)
    count = waited = 0
    for d, v in days:
        items.append(
            {
                "date": d.isoformat(),
                "answered": v[0],
                "averageMS": (v[1] // v[0]) if v[0] else None,
            }
        )
        count += v[0]
        waited += v[1]
        for i, c in enumerate(v[2:]):
            classes[i] += c
    bounds = [*panelreports.RESPONSE_CLASSES, None]
    return 200, {
        **_range(first, last, zone),
        "days": items,
        "answered": count,
        "averageMS": (waited // count) if count else None,
        "classes": [{"belowMS": b, "chats": c} for b, c in zip(bounds, classes)],
    }


@route(
    "GET",
    "/reports/missed",
    summary="Missed chats (closed, never accepted): per day and the latest ones",
    tag="reports",
    query=(*REPORT_QUERY, q("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "latest")),
    ok=(200, "Days and chats", ref("MissedReport")),
)
async def reportMissed(ctx: Context) -> Any:
    zone, first, last, since, until = _reportRange(ctx)
    limit = ctx.limit(50, 500)
    rows = await _run(ctx, "report missed", panelreports.chatBuckets_txn, since, until)
    days = panelreports.foldDays(rows, zone, first, last, 3)
    chats = await _run(ctx, "missed chats", panelreports.missedChats_txn, since, until, limit)
    return 200, {
        **_range(first, last, zone),
        "days": [{"date": d.isoformat(), "missed": v[1]} for d, v in days],
        "missed": sum(v[1] for _, v in days),
        "chats": [reports.chatJSON(c) for c in chats],
    }


@route(
    "GET",
    "/reports/operators",
    summary="Load per operator: chats, messages, time in chats",
    tag="reports",
    query=REPORT_QUERY,
    ok=(200, "Operators", ref("OperatorsReport")),
)
async def reportOperators(ctx: Context) -> Any:
    zone, first, last, since, until = _reportRange(ctx)
    load = await _run(ctx, "report operators", panelreports.operatorLoad_txn, since, until)
    operators = {o.id: o for o in await ctx.api.parts.store.listOperators(ctx.licence)}
    items = []
    for opId in sorted(set(load) | set(operators)):
        op = operators.get(opId)
        row = load.get(opId, {"chats": 0, "closed": 0, "talkMS": 0, "messages": 0})
        if op is None and not row["chats"] and not row["messages"]:
            continue
        items.append(
            {
                "operatorId": opId,
                "nick": op.nick if op is not None else None,
                "name": op.displayName if op is not None else None,
                "chats": row["chats"],
                "messages": row["messages"],
                "talkMS": row["talkMS"],
                "averageMS": (row["talkMS"] // row["closed"]) if row["closed"] else None,
            }
        )
    return 200, {**_range(first, last, zone), "items": items}


# -- schemas ------------------------------------------------------------------------------------

_DAYS = {"type": "array", "items": {"type": "object"}}
_NULL_INT = {"type": ["integer", "null"]}
SCHEMAS.update(
    {
        "Office": {
            "type": "object",
            "required": ["hours", "switch", "status"],
            "properties": {
                "group": _NULL_INT,
                "hours": {"type": ["object", "null"]},
                "switch": {"type": ["string", "null"]},
                "status": {
                    "type": "object",
                    "properties": {
                        "open": {"type": "boolean"},
                        "reason": {"type": "string", "enum": ["", "hours", "switch"]},
                        "nextChange": _NULL_INT,
                    },
                },
            },
        },
        "Widget": {
            "type": "object",
            "required": ["color", "textColor", "position", "prechat", "texts", "css"],
            "properties": {
                "color": {"type": "string"},
                "textColor": {"type": "string"},
                "position": {"type": "string"},
                "prechat": {"type": "boolean"},
                "texts": {"type": "object"},
                "css": {"type": "string"},
                "textKeys": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "the names texts may have (read only)",
                },
            },
        },
        "Origins": {
            "type": "object",
            "required": ["origins"],
            "properties": {"origins": {"type": "array", "items": {"type": "string"}}},
        },
        "Embed": {
            "type": "object",
            "required": ["snippet", "script"],
            "properties": {
                "licence": {"type": "integer"},
                "script": {"type": "string"},
                "snippet": {"type": "string"},
                "testPage": {"type": "string"},
            },
        },
        "ApiKey": {
            "type": "object",
            "required": ["id", "name", "scopes", "revoked"],
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "scopes": {"type": "array", "items": {"type": "string"}},
                "createdAt": {"type": "integer"},
                "revoked": {"type": "boolean"},
            },
        },
        "NewApiKey": {
            "allOf": [ref("ApiKey")],
            "type": "object",
            "required": ["key"],
            "properties": {"key": {"type": "string", "description": "shown this once"}},
        },
        "ChatsReport": {
            "type": "object",
            "required": ["days", "total"],
            "properties": {"days": _DAYS, "total": {"type": "object"}},
        },
        "FirstResponseReport": {
            "type": "object",
            "required": ["days", "answered", "classes"],
            "properties": {
                "days": _DAYS,
                "answered": {"type": "integer"},
                "averageMS": _NULL_INT,
                "classes": _DAYS,
            },
        },
        "MissedReport": {
            "type": "object",
            "required": ["days", "missed", "chats"],
            "properties": {
                "days": _DAYS,
                "missed": {"type": "integer"},
                "chats": {"type": "array", "items": ref("Chat")},
            },
        },
        "OperatorsReport": {
            "type": "object",
            "required": ["items"],
            "properties": {"items": _DAYS},
        },
    }
)
