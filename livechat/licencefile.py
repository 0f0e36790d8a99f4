"""
The optional licence file, C{lc_licence.cfg}, in the same C{KEY value}
format as C{lc_serv.cfg}.  Each C{LICENCE <number>} line starts a licence;
the keys after it describe that licence::

    LICENCE 123456
    LIC_TYPE 1
    EXPIRATION_DATE 2027-12-31 23:59:59
    OPERATORS_COUNT_CC 10
    OPERATORS_COUNT_COM 5
    LANGUAGE en
    NAME Example Ltd
    WEB_PAGE https://www.example.com

At start the server creates the licences of the file that do not exist yet
and brings the others' type, expiry, seats and language in line with it.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from livechat.config import ConfigError
from livechat.model import LICENCE_MAX, LICENCE_MIN, LicenceType

_FIELDS = {
    "LIC_TYPE": "lic_type",
    "EXPIRATION_DATE": "expires_at",
    "OPERATORS_COUNT_CC": "seats_cc",
    "OPERATORS_COUNT_COM": "seats_com",
    "LANGUAGE": "language",
    "NAME": "name",
    "WEB_PAGE": "web_page",
    "MAX_CHATS_PER_AGENT": "max_chats_default",
}

LANGUAGES = ("en", "pl")


def parseDate(value: str) -> int:
    """C{YYYY-MM-DD} or C{YYYY-MM-DD HH:MM[:SS]}, UTC, to milliseconds."""
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            moment = datetime.datetime.strptime(value.strip(), fmt)
        except ValueError:
            continue
        if fmt == "%Y-%m-%d":
            moment = moment.replace(hour=23, minute=59, second=59)
        return int(moment.replace(tzinfo=datetime.UTC).timestamp() * 1000)
    raise ValueError(f"expected a date like 2027-12-31 or 2027-12-31 23:59:59, got {value!r}")


def _value(field: str, raw: str) -> Any:
    if field == "lic_type":
        try:
            return LicenceType(int(raw))
        except ValueError:
            raise ValueError(f"LIC_TYPE is 1 (ASP-FULL) or 9 (ASP-DEMO), got {raw!r}") from None
    if field == "expires_at":
        return None if raw.lower() in ("", "never") else parseDate(raw)
    if field in ("seats_cc", "seats_com", "max_chats_default"):
        if raw.lower() in ("", "unlimited"):
            return None
        number = int(raw)
        if number < 0:
            raise ValueError(f"{raw} is negative")
        return number
    if field == "language":
        if raw not in LANGUAGES:
            raise ValueError(f"LANGUAGE is one of {', '.join(LANGUAGES)}, got {raw!r}")
    return raw


def parseLicenceFile(lines: Iterable[str], source: str) -> list[dict[str, Any]]:
    """
    @return: one dict per licence: C{number} and the L{livechat.model.Licence}
        fields the file sets.
    @raise ConfigError: with the file and line of the first problem.
    """
    licences: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, _, raw = stripped.partition(" ")
        key = key.upper()
        raw = raw.strip()
        if key == "LICENCE":
            try:
                licence = int(raw)
            except ValueError:
                raise ConfigError(source, number, f"LICENCE needs a number, got {raw!r}") from None
            if not LICENCE_MIN <= licence <= LICENCE_MAX:
                raise ConfigError(source, number, f"licence number {licence} is out of range")
            if any(entry["number"] == licence for entry in licences):
                raise ConfigError(source, number, f"licence {licence} is listed twice")
            current = {"number": licence}
            licences.append(current)
            continue
        if key not in _FIELDS:
            raise ConfigError(source, number, f"unknown key {key}")
        if current is None:
            raise ConfigError(source, number, f"{key} before any LICENCE line")
        try:
            current[_FIELDS[key]] = _value(_FIELDS[key], raw)
        except ValueError as e:
            raise ConfigError(source, number, f"{key}: {e}") from None
    return licences


def readLicenceFile(path: str) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ConfigError(path, None, f"cannot read the licence file: {e.strerror}") from None
    return parseLicenceFile(lines, path)
