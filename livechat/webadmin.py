"""
The commands of C{livechat-admin} for the web side: each licence's allowed
site origins (CORS), its banned addresses, office hours and the manual
open/closed switch, and any web setting by name (L{livechat.licencesettings}).

    livechat-admin allow-origin 123456 https://www.example.com https://*.example.com
    livechat-admin list-origins 123456
    livechat-admin disallow-origin 123456 https://www.example.com
    livechat-admin ban 123456 203.0.113.7 198.51.100.0/24
    livechat-admin list-bans 123456
    livechat-admin unban 123456 203.0.113.7
    livechat-admin set-hours 123456 --timezone Europe/Warsaw --mon 09:00-17:00 ...
    livechat-admin office 123456 closed [--group 3]
    livechat-admin web-setting 123456 widget.color '#0a7d32'

A running server reads a changed setting within WEB_SETTINGS_CACHE seconds.
"""

from __future__ import annotations

import json
from typing import Any, TextIO

from livechat import licencesettings as S


def _error(message: str) -> Exception:
    from livechat.admin import AdminError

    return AdminError(message)


def addCommands(sub: Any) -> None:
    """Add the web commands to C{livechat-admin}'s subparsers."""
    for name, what, noun in (
        ("allow-origin", "let sites embed a licence's widget (CORS allow-list)", "origin"),
        ("disallow-origin", "take sites off a licence's allow-list", "origin"),
        ("ban", "refuse visitors from addresses or networks", "address"),
        ("unban", "lift bans of addresses or networks", "address"),
    ):
        c = sub.add_parser(name, help=what)
        c.add_argument("licence", type=int)
        c.add_argument(noun + "s", nargs="+", metavar=noun.upper())
    for name, what in (
        ("list-origins", "list the sites allowed to embed a licence's widget"),
        ("list-bans", "list a licence's banned addresses"),
    ):
        c = sub.add_parser(name, help=what)
        c.add_argument("licence", type=int)

    h = sub.add_parser("set-hours", help="set office hours (of a licence, or of a group)")
    h.add_argument("licence", type=int)
    h.add_argument("--group", type=int, help="the group's own hours")
    h.add_argument("--timezone", default="UTC", help="e.g. Europe/Warsaw (default UTC)")
    for day in S.DAYS:
        h.add_argument(f"--{day}", action="append", default=[], metavar="HH:MM-HH:MM")
    h.add_argument("--closed", action="append", default=[], metavar="YYYY-MM-DD")
    h.add_argument("--clear", action="store_true", help="no office hours: always open")

    o = sub.add_parser("office", help="switch a licence (or a group) open or closed by hand")
    o.add_argument("licence", type=int)
    o.add_argument("state", choices=S.SWITCHES, help="auto follows the office hours")
    o.add_argument("--group", type=int)

    w = sub.add_parser("web-setting", help="show or set a web setting of a licence")
    w.add_argument("licence", type=int)
    w.add_argument("name", nargs="?", help="e.g. widget.color; none: list them all")
    w.add_argument("value", nargs="?", help="the new value ('' clears it)")


async def _licenceStore(store: Any, number: int) -> Any:
    if await store.getLicence(number) is None:
        raise _error(f"licence {number} does not exist")
    return store.forLicence(number)


async def _get(licence: Any, name: str) -> Any:
    return S.parse(name, await licence.getSetting(name))


async def _put(licence: Any, name: str, value: Any) -> None:
    setting, _ = S.lookup(name)
    await licence.setSetting(name, S.validate(name, setting.store(value)))


async def _changeList(
    store: Any, args: Any, out: TextIO, name: str, items: list[str], add: bool
) -> None:
    licence = await _licenceStore(store, args.licence)
    normalise = S.normalOrigin if name == "web.origins" else S.normalNetwork
    try:
        given = [normalise(item) for item in items]
    except S.SettingError as e:
        raise _error(str(e)) from None
    current = list(await _get(licence, name))
    if add:
        current += [g for g in given if g not in current]
    else:
        missing = [g for g in given if g not in current]
        if missing:
            raise _error(f"not on the list: {', '.join(missing)}")
        current = [c for c in current if c not in given]
    await _put(licence, name, current)
    _printList(out, args.licence, name, current)


def _printList(out: TextIO, number: int, name: str, items: list[str]) -> None:
    what = "allowed origins" if name == "web.origins" else "banned addresses"
    if not items:
        out.write(f"licence {number} has no {what}\n")
        return
    out.write(f"licence {number} {what}:\n")
    for item in items:
        out.write(f"  {item}\n")


async def _allowOrigin(store: Any, hasher: Any, args: Any, out: TextIO, stdin: TextIO) -> None:
    await _changeList(store, args, out, "web.origins", args.origins, True)


async def _disallowOrigin(store: Any, hasher: Any, args: Any, out: TextIO, stdin: TextIO) -> None:
    await _changeList(store, args, out, "web.origins", args.origins, False)


async def _ban(store: Any, hasher: Any, args: Any, out: TextIO, stdin: TextIO) -> None:
    await _changeList(store, args, out, "web.banned", args.addresss, True)


async def _unban(store: Any, hasher: Any, args: Any, out: TextIO, stdin: TextIO) -> None:
    await _changeList(store, args, out, "web.banned", args.addresss, False)


async def _listOrigins(store: Any, hasher: Any, args: Any, out: TextIO, stdin: TextIO) -> None:
    licence = await _licenceStore(store, args.licence)
    _printList(out, args.licence, "web.origins", await _get(licence, "web.origins"))


async def _listBans(store: Any, hasher: Any, args: Any, out: TextIO, stdin: TextIO) -> None:
    licence = await _licenceStore(store, args.licence)
    _printList(out, args.licence, "web.banned", await _get(licence, "web.banned"))


def _suffix(group: int | None) -> str:
    return "" if group is None else f".{group}"


async def _setHours(store: Any, hasher: Any, args: Any, out: TextIO, stdin: TextIO) -> None:
    licence = await _licenceStore(store, args.licence)
    name = "office.hours" + _suffix(args.group)
    if args.clear:
        await licence.setSetting(name, "")
        out.write(f"{name} of licence {args.licence} cleared (always open)\n")
        return
    schedule = {
        "timezone": args.timezone,
        "week": {day: getattr(args, day) for day in S.DAYS if getattr(args, day)},
    }
    if args.closed:
        schedule["closed"] = args.closed
    try:
        stored = S.validate(name, json.dumps(schedule))
    except S.SettingError as e:
        raise _error(str(e)) from None
    await licence.setSetting(name, stored)
    out.write(f"{name} of licence {args.licence}: {stored}\n")


async def _office(store: Any, hasher: Any, args: Any, out: TextIO, stdin: TextIO) -> None:
    licence = await _licenceStore(store, args.licence)
    name = "office.switch" + _suffix(args.group)
    await licence.setSetting(name, args.state)
    out.write(f"{name} of licence {args.licence} is now {args.state}\n")


async def _webSetting(store: Any, hasher: Any, args: Any, out: TextIO, stdin: TextIO) -> None:
    licence = await _licenceStore(store, args.licence)
    if args.name is None:
        for name in S.SETTINGS:
            raw = await licence.getSetting(name)
            out.write(f"{name} {'(default)' if raw in (None, '') else raw}\n")
        return
    try:
        S.lookup(args.name)
        if args.value is None:
            raw = await licence.getSetting(args.name)
            out.write(f"{args.name} {'(default)' if raw in (None, '') else raw}\n")
            return
        stored = S.validate(args.name, args.value)
    except S.SettingError as e:
        raise _error(str(e)) from None
    await licence.setSetting(args.name, stored)
    out.write(f"{args.name} of licence {args.licence}: {stored or '(default)'}\n")


COMMANDS = {
    "allow-origin": _allowOrigin,
    "disallow-origin": _disallowOrigin,
    "list-origins": _listOrigins,
    "ban": _ban,
    "unban": _unban,
    "list-bans": _listBans,
    "set-hours": _setHours,
    "office": _office,
    "web-setting": _webSetting,
}
