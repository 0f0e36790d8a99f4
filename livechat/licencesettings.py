"""
The licence settings of the web side: their names, formats and checks, the
office-hours schedule, and a per-node cache in front of the licence
database's C{settings} table.

Every value is text in C{settings} (L{livechat.interfaces.ILicenceStore}
C{getSetting}/C{setSetting}); L{validate} turns what an administrator types
into the stored form or raises L{SettingError} with the reason, and
L{parse} turns the stored form into what the code uses (falling back to the
default, with a log line, if a value in the database is broken).
docs/web.md lists them all; a test keeps that list equal to L{SETTINGS}.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import json
import re
import zoneinfo
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import attr
from twisted.internet import defer
from twisted.logger import Logger

_log = Logger()

MAX_CSS = 32768
"""Longest custom CSS, in characters."""
MAX_TEXT = 500
"""Longest widget text, in characters."""
MAX_LIST = 500
"""Most entries in an origins or bans list."""

LANGUAGES = ("en", "pl")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SWITCHES = ("auto", "open", "closed")

TEXT_KEYS = (
    "title",
    "launcher",
    "greeting",
    "offline",
    "closed",
    "queued",
    "queue_position",
    "connecting",
    "name",
    "email",
    "message",
    "start",
    "send",
    "end",
    "ended",
    "new_chat",
    "leave_message",
    "left",
    "transcript",
    "transcript_sent",
    "typing",
    "read",
    "invitation",
    "accept",
    "decline",
    "close",
    "error",
    "joined",
    "left_chat",
    "you",
    "reconnecting",
    "email_required",
    "not_sent",
)
"""The widget's texts a licence may change, per language."""


class SettingError(ValueError):
    """A setting's value is not valid; the message says why."""


# -- origins --------------------------------------------------------------------

SELF = "self"
"""The allow-list entry that admits the server's own origin (the test page)."""

_HOST = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@functools.lru_cache(maxsize=4096)
def normalOrigin(origin: str) -> str:
    """
    C{scheme://host[:port]}, lower case, without a default port; a wildcard
    C{https://*.example.com} admits every subdomain of example.com.

    @raise SettingError: not an origin.
    """
    origin = origin.strip()
    if origin.lower() == SELF:
        return SELF
    parts = urlsplit(origin)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise SettingError(f"{origin!r}: an origin is http:// or https:// and a host")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise SettingError(f"{origin!r}: an origin has no path, query or user (only scheme://host)")
    raw = parts.netloc.lower()
    host, _, portText = raw.rpartition(":") if raw.count(":") == 1 else (raw, "", "")
    if raw.startswith("["):
        host, _, rest = raw.partition("]")
        host += "]"
        portText = rest[1:] if rest.startswith(":") else ""
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise SettingError(f"{origin!r}: bad IPv6 address") from None
    elif not _HOST.match(host):
        raise SettingError(f"{origin!r}: bad host name")
    port = None
    if portText:
        if not portText.isdigit() or not 0 < int(portText) < 65536:
            raise SettingError(f"{origin!r}: bad port")
        port = int(portText)
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def originAllowed(origin: str, allowed: Iterable[str], own: str | None) -> bool:
    """
    Whether C{origin} (a browser's C{Origin} header) is on the list
    C{allowed} (normalised entries); C{own} is this server's own origin as
    the request reached it, admitted by the entry C{self}.
    """
    try:
        origin = normalOrigin(origin)
    except SettingError:
        return False
    if origin == SELF:
        return False
    for entry in allowed:
        if entry == SELF:
            if own is not None and origin == own:
                return True
        elif "://*." in entry:
            scheme, _, suffix = entry.partition("://*.")
            if origin.startswith(scheme + "://") and origin.split("://", 1)[1].endswith(
                "." + suffix
            ):
                return True
        elif entry == origin:
            return True
    return False


def _origins(value: str) -> list[str]:
    items = _jsonList(value, "origins")
    normal = []
    for item in items:
        if not isinstance(item, str):
            raise SettingError("origins are text")
        entry = normalOrigin(item)
        if entry not in normal:
            normal.append(entry)
    return normal


# -- bans -----------------------------------------------------------------------


def normalNetwork(text: str) -> str:
    """An address or CIDR network, normalised; C{SettingError} otherwise."""
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise SettingError(f"{text!r} is not an IP address or network") from None


def _networks(value: str) -> list[str]:
    normal = []
    for item in _jsonList(value, "banned addresses"):
        if not isinstance(item, str):
            raise SettingError("banned addresses are text")
        entry = normalNetwork(item)
        if entry not in normal:
            normal.append(entry)
    return normal


@attr.s(frozen=True, auto_attribs=True)
class Bans:
    """Banned networks of a licence."""

    networks: tuple[Any, ...] = ()

    @classmethod
    def of(cls, entries: Iterable[str]) -> Bans:
        return cls(tuple(ipaddress.ip_network(e) for e in entries))

    def banned(self, address: str) -> bool:
        if not self.networks or not address:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        mapped = getattr(ip, "ipv4_mapped", None)
        return any(ip in n or (mapped is not None and mapped in n) for n in self.networks)


# -- office hours -------------------------------------------------------------------

_RANGE = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")


@attr.s(frozen=True, auto_attribs=True)
class Schedule:
    """
    A weekly schedule in a time zone: open ranges per weekday (minutes from
    midnight, local time) and closed dates.
    """

    timezone: str
    week: tuple[tuple[tuple[int, int], ...], ...]
    """Seven tuples (Monday first) of (start, end) minutes."""
    closed: frozenset[str] = frozenset()
    """Dates (YYYY-MM-DD, local) closed all day."""

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def isOpen(self, when: float) -> bool:
        """Whether the schedule is open at C{when} (seconds since the epoch)."""
        local = datetime.datetime.fromtimestamp(when, self.zone)
        if local.date().isoformat() in self.closed:
            return False
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.week[local.weekday()])

    def nextChange(self, when: float) -> float | None:
        """When (seconds) C{isOpen} next changes after C{when}; C{None} if never in 8 days."""
        zone = self.zone
        now = self.isOpen(when)
        today = datetime.datetime.fromtimestamp(when, zone).date()
        candidates: list[float] = []
        for offset in range(0, 9):
            day = today + datetime.timedelta(days=offset)
            for start, end in self.week[day.weekday()]:
                for minute in (start, end):
                    if minute >= 1440:
                        moment = datetime.datetime.combine(
                            day + datetime.timedelta(days=1), datetime.time(0, 0), zone
                        )
                    else:
                        moment = datetime.datetime.combine(
                            day, datetime.time(minute // 60, minute % 60), zone
                        )
                    candidates.append(moment.timestamp())
            # a closed date flips at its midnights too
            candidates.append(datetime.datetime.combine(day, datetime.time(0, 0), zone).timestamp())
        for candidate in sorted(set(c for c in candidates if c > when)):
            if self.isOpen(candidate) != now:
                return candidate
        return None

    def toJSON(self) -> dict[str, Any]:
        week: dict[str, list[str]] = {}
        for name, ranges in zip(DAYS, self.week):
            week[name] = [
                f"{s // 60:02d}:{s % 60:02d}-{e // 60:02d}:{e % 60:02d}" for s, e in ranges
            ]
        result: dict[str, Any] = {"timezone": self.timezone, "week": week}
        if self.closed:
            result["closed"] = sorted(self.closed)
        return result


def parseSchedule(value: str) -> Schedule:
    """
    Read C{{"timezone": "Europe/Warsaw", "week": {"mon": ["09:00-17:00"], ...},
    "closed": ["2026-12-25"]}}.  Days not given are closed.

    @raise SettingError: with the reason.
    """
    try:
        data = json.loads(value)
    except ValueError as e:
        raise SettingError(f"office hours are JSON: {e}") from None
    if not isinstance(data, dict):
        raise SettingError('office hours are a JSON object {"timezone": ..., "week": {...}}')
    unknown = set(data) - {"timezone", "week", "closed"}
    if unknown:
        raise SettingError(f"unknown office-hours field(s): {', '.join(sorted(unknown))}")
    tz = data.get("timezone", "UTC")
    if not isinstance(tz, str):
        raise SettingError("timezone is text, e.g. Europe/Warsaw")
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise SettingError(f"unknown time zone {tz!r}") from None
    week = data.get("week", {})
    if not isinstance(week, dict) or set(week) - set(DAYS):
        raise SettingError(f"week maps days ({', '.join(DAYS)}) to lists of HH:MM-HH:MM")
    days = []
    for name in DAYS:
        ranges = week.get(name, [])
        if isinstance(ranges, str):
            ranges = [ranges]
        if not isinstance(ranges, list):
            raise SettingError(f"{name}: a list of HH:MM-HH:MM")
        parsed = []
        for text in ranges:
            match = _RANGE.match(text) if isinstance(text, str) else None
            if match is None:
                raise SettingError(f"{name}: {text!r} is not HH:MM-HH:MM")
            h1, m1, h2, m2 = (int(g) for g in match.groups())
            start, end = h1 * 60 + m1, h2 * 60 + m2
            if h1 > 23 or m1 > 59 or m2 > 59 or end > 1440 or end <= start:
                raise SettingError(f"{name}: {text!r} is not a range within one day")
            parsed.append((start, end))
        parsed.sort()
        for (_, e1), (s2, _) in zip(parsed, parsed[1:]):
            if s2 < e1:
                raise SettingError(f"{name}: ranges overlap")
        days.append(tuple(parsed))
    closed = data.get("closed", [])
    if not isinstance(closed, list):
        raise SettingError("closed is a list of dates YYYY-MM-DD")
    for day in closed:
        try:
            datetime.date.fromisoformat(day)
        except (TypeError, ValueError):
            raise SettingError(f"closed: {day!r} is not a date YYYY-MM-DD") from None
    return Schedule(tz, tuple(days), frozenset(closed))


# -- the settings -------------------------------------------------------------------


def _jsonList(value: str, what: str) -> list[Any]:
    try:
        data = json.loads(value) if value.strip() else []
    except ValueError as e:
        raise SettingError(f"{what} are a JSON list: {e}") from None
    if not isinstance(data, list):
        raise SettingError(f"{what} are a JSON list")
    if len(data) > MAX_LIST:
        raise SettingError(f"at most {MAX_LIST} {what}")
    return data


def _colour(value: str) -> str:
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", value.strip()):
        raise SettingError(f"{value!r} is not a colour #rrggbb")
    return value.strip().lower()


def _choice(*choices: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value.strip() not in choices:
            raise SettingError(f"{value!r}: expected one of {', '.join(choices)}")
        return value.strip()

    return check


def _flag(value: str) -> str:
    if value.strip() not in ("0", "1"):
        raise SettingError(f"{value!r}: expected 0 or 1")
    return value.strip()


def _texts(value: str) -> dict[str, str]:
    try:
        data = json.loads(value)
    except ValueError as e:
        raise SettingError(f"texts are a JSON object: {e}") from None
    if not isinstance(data, dict):
        raise SettingError("texts are a JSON object {key: text}")
    for key, text in data.items():
        if key not in TEXT_KEYS:
            raise SettingError(f"unknown text {key!r}; known: {', '.join(TEXT_KEYS)}")
        if not isinstance(text, str) or len(text) > MAX_TEXT:
            raise SettingError(f"{key}: text of at most {MAX_TEXT} characters")
    return dict(data)


def _css(value: str) -> str:
    if len(value) > MAX_CSS:
        raise SettingError(f"custom CSS has at most {MAX_CSS} characters")
    if "</" in value:
        raise SettingError("custom CSS cannot contain '</'")
    return value


def _addresses(value: str) -> list[str]:
    found = [a.strip() for a in value.split(",") if a.strip()]
    for address in found:
        if not re.fullmatch(r"[^@\s,<>]+@[^@\s,<>]+\.[^@\s,<>]+", address):
            raise SettingError(f"{address!r} is not an e-mail address")
    if len(found) > 20:
        raise SettingError("at most 20 addresses")
    return found


@attr.s(frozen=True, auto_attribs=True)
class Setting:
    """One setting: how to check and read it, its default, what it is for."""

    name: str
    parse: Callable[[str], Any]
    default: Any
    doc: str
    perGroup: bool = False

    def store(self, parsed: Any) -> str:
        """The stored text of a parsed value."""
        if isinstance(parsed, Schedule):
            return json.dumps(parsed.toJSON(), sort_keys=True)
        if isinstance(parsed, (list, dict)):
            return json.dumps(parsed, sort_keys=True, ensure_ascii=False)
        return str(parsed)


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting(
            "web.origins",
            _origins,
            [],
            "Sites that may embed the widget (CORS): a JSON list of origins, e.g. "
            '["https://www.example.com", "https://*.example.com"]; "self" admits this '
            "server's own pages (the test page). Empty: no site.",
        ),
        Setting(
            "web.banned",
            _networks,
            [],
            "Visitor addresses refused everything: a JSON list of addresses or networks, "
            'e.g. ["203.0.113.7", "198.51.100.0/24"].',
        ),
        Setting(
            "office.hours",
            parseSchedule,
            None,
            'Office hours: {"timezone": "Europe/Warsaw", "week": {"mon": ["09:00-17:00"], '
            '...}, "closed": ["2026-12-25"]}; days not listed are closed. Unset: always open. '
            "office.hours.<group id> sets a group's own.",
            perGroup=True,
        ),
        Setting(
            "office.switch",
            _choice(*SWITCHES),
            "auto",
            "The manual switch: auto (follow office.hours), open or closed. "
            "office.switch.<group id> sets a group's own.",
            perGroup=True,
        ),
        Setting(
            "mail.offline_to",
            _addresses,
            [],
            "Where messages left outside hours go (comma-separated addresses). "
            "Empty: the licence's administrators.",
        ),
        Setting("widget.color", _colour, "#1f6feb", "The widget's main colour, #rrggbb."),
        Setting("widget.text_color", _colour, "#ffffff", "Text on the main colour, #rrggbb."),
        Setting(
            "widget.position",
            _choice("right", "left"),
            "right",
            "Bottom corner of the widget: right or left.",
        ),
        Setting(
            "widget.prechat",
            _flag,
            "1",
            "Ask for a name and an e-mail (both optional) before a chat: 1 or 0.",
        ),
        Setting(
            "widget.texts.en",
            _texts,
            {},
            "English texts replacing the widget's own: a JSON object {key: text}.",
        ),
        Setting("widget.texts.pl", _texts, {}, "Polish texts, as widget.texts.en."),
        Setting(
            "widget.css",
            _css,
            "",
            "Custom CSS added to the widget (prefix rules with "
            "div.ls-LiveSupportRoot[class*=ls-LiveSupport]).",
        ),
    )
}


def lookup(name: str) -> tuple[Setting, int | None]:
    """
    The setting C{name} is (C{office.hours.12} is C{office.hours} for group
    12) and the group, or L{SettingError}.
    """
    if name in SETTINGS:
        return SETTINGS[name], None
    base, _, group = name.rpartition(".")
    setting = SETTINGS.get(base)
    if setting is None or not setting.perGroup or not group.isdigit():
        raise SettingError(f"unknown setting {name!r}; known: {', '.join(SETTINGS)}")
    return setting, int(group)


def validate(name: str, value: str) -> str:
    """
    The stored form of C{value} for setting C{name}; L{SettingError} if
    wrong.  The empty value clears a setting (its default applies).
    """
    setting, _ = lookup(name)
    if value.strip() == "":
        return ""
    return setting.store(setting.parse(value))


def parse(name: str, value: str | None) -> Any:
    """The parsed stored value, or the default (when unset, cleared or broken, logged)."""
    setting, _ = lookup(name)
    if value is None or value.strip() == "":
        return setting.default
    try:
        return setting.parse(value)
    except SettingError as e:
        _log.warn(
            "licence setting {name} is broken ({error}); using the default", name=name, error=e
        )
        return setting.default


# -- the cache ---------------------------------------------------------------------


class SettingsCache:
    """
    Parsed licence settings and licence records, kept for C{ttl} seconds on
    this node (so a page view costs no database read), fetched once however
    many requests wait for them.  In a cluster each node has its own: a
    change reaches every node within C{ttl} seconds.
    """

    MAX_ENTRIES = 100000

    def __init__(self, store: Any, clock: Any, ttl: float) -> None:
        self._store = store
        self._clock = clock
        self.ttl = ttl
        self._values: dict[tuple[int, str], tuple[float, Any]] = {}
        self._pending: dict[tuple[int, str], list[defer.Deferred[Any]]] = {}

    def peek(self, licence: int, name: str) -> tuple[bool, Any]:
        """C{(True, value)} when a fresh value is at hand, else C{(False, None)}."""
        entry = self._values.get((licence, name))
        if entry is not None and entry[0] > self._clock.seconds():
            return True, entry[1]
        return False, None

    def licence(self, number: int) -> defer.Deferred[Any]:
        """Fires with the L{livechat.model.Licence} or C{None}."""
        return self._get(number, "", lambda: self._store.getLicence(number), lambda v: v)

    def get(self, licence: int, name: str) -> defer.Deferred[Any]:
        """Fires with the parsed value of setting C{name} (its default when unset)."""
        return self._get(
            licence,
            name,
            lambda: self._store.forLicence(licence).getSetting(name),
            lambda raw: parse(name, raw),
        )

    def getOptional(self, licence: int, name: str) -> defer.Deferred[Any]:
        """As L{get}, but C{None} when the setting is unset (a group's own setting)."""
        return self._get(
            licence,
            "?" + name,
            lambda: self._store.forLicence(licence).getSetting(name),
            lambda raw: None if raw is None or raw.strip() == "" else parse(name, raw),
        )

    def _get(
        self, licence: int, name: str, fetch: Callable[[], Any], convert: Callable[[Any], Any]
    ) -> defer.Deferred[Any]:
        key = (licence, name)
        fresh, value = self.peek(licence, name)
        if fresh:
            return defer.succeed(value)
        d: defer.Deferred[Any] = defer.Deferred()
        waiting = self._pending.get(key)
        if waiting is not None:
            waiting.append(d)
            return d
        self._pending[key] = [d]

        def got(raw: Any) -> None:
            value = convert(raw)
            if self.ttl > 0:
                if len(self._values) >= self.MAX_ENTRIES:
                    self._prune()
                self._values[key] = (self._clock.seconds() + self.ttl, value)
            for w in self._pending.pop(key, []):
                w.callback(value)

        def failed(f: Any) -> None:
            for w in self._pending.pop(key, []):
                w.errback(f)

        defer.maybeDeferred(fetch).addCallbacks(got, failed)
        return d

    def _prune(self) -> None:
        now = self._clock.seconds()
        for key in [k for k, (expires, _) in self._values.items() if expires <= now]:
            del self._values[key]
        if len(self._values) >= self.MAX_ENTRIES:
            self._values.clear()

    def forget(self, licence: int, name: str | None = None) -> None:
        """Drop cached values of a licence (one setting, or all) on this node."""
        names = (None, name, None if name is None else "?" + name)
        for key in [k for k in self._values if k[0] == licence and (name is None or k[1] in names)]:
            del self._values[key]
