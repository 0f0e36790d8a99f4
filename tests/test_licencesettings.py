"""
livechat.licencesettings: origins, bans, office-hours schedules (with time
zones and daylight saving), every setting's check, and the per-node cache
(task.Clock; on a real store).
"""

from __future__ import annotations

import datetime
import json
import os
import zoneinfo
from typing import Any

from twisted.internet import defer, task
from twisted.trial import unittest

from livechat import licencesettings as S
from livechat.model import Licence
from tests.support.db import DialectMixin

WARSAW = zoneinfo.ZoneInfo("Europe/Warsaw")
DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


def at(*args: int) -> float:
    return datetime.datetime(*args, tzinfo=WARSAW).timestamp()  # type: ignore[misc]


class OriginTests(unittest.TestCase):
    def test_normal(self) -> None:
        """Origins are lower-cased, default ports dropped, other ports kept."""
        self.assertEqual(S.normalOrigin("HTTPS://WWW.Example.com:443"), "https://www.example.com")
        self.assertEqual(S.normalOrigin("http://shop.example:8080/"), "http://shop.example:8080")
        self.assertEqual(S.normalOrigin("https://*.example.com"), "https://*.example.com")
        self.assertEqual(S.normalOrigin("http://[::1]:13200"), "http://[::1]:13200")
        self.assertEqual(S.normalOrigin(" self "), "self")

    def test_bad(self) -> None:
        """Anything but scheme://host[:port] is refused, with why."""
        for bad in (
            "www.example.com",
            "ftp://example.com",
            "https://example.com/path",
            "https://user@example.com",
            "https://exa mple.com",
            "https://example.com:99999",
            "https://example.com?x=1",
        ):
            self.assertRaises(S.SettingError, S.normalOrigin, bad)

    def test_allowed(self) -> None:
        """
        Exact origins match exactly (scheme and port count); a wildcard admits
        subdomains but not the bare domain; self admits only the server's own.
        """
        allowed = ["https://www.example.com", "https://*.shop.example", "self"]
        own = "http://127.0.0.1:13200"
        ok = ["https://www.example.com", "https://WWW.example.com:443", "https://a.shop.example"]
        for origin in ok + ["https://b.c.shop.example", own]:
            self.assertTrue(S.originAllowed(origin, allowed, own), origin)
        for origin in (
            "http://www.example.com",
            "https://www.example.com:8443",
            "https://shop.example",
            "https://evilshop.example",
            "https://www.example.com.evil.example",
            "http://127.0.0.1:13201",
            "null",
            "",
            "self",
        ):
            self.assertFalse(S.originAllowed(origin, allowed, own), origin)
        self.assertFalse(S.originAllowed(own, allowed, None))


class BanTests(unittest.TestCase):
    def test_banned(self) -> None:
        """Addresses and networks, IPv4 and IPv6, and IPv4 seen as IPv6-mapped."""
        bans = S.Bans.of(["203.0.113.7/32", "198.51.100.0/24", "2001:db8::/32"])
        for address in ("203.0.113.7", "198.51.100.200", "2001:db8::5", "::ffff:203.0.113.7"):
            self.assertTrue(bans.banned(address), address)
        for address in ("203.0.113.8", "192.0.2.1", "2001:db9::1", "", "not an address"):
            self.assertFalse(bans.banned(address), address)


class ScheduleTests(unittest.TestCase):
    def schedule(self, **data: Any) -> S.Schedule:
        return S.parseSchedule(json.dumps(data))

    def test_openAndNext(self) -> None:
        """Open within the ranges of the local weekday; closed dates close a whole day."""
        s = self.schedule(
            timezone="Europe/Warsaw",
            week={"mon": ["09:00-12:00", "13:00-17:00"], "tue": "08:00-24:00"},
            closed=["2027-03-08"],
        )
        self.assertFalse(s.isOpen(at(2027, 3, 1, 8, 59)))
        self.assertTrue(s.isOpen(at(2027, 3, 1, 9, 0)))
        self.assertFalse(s.isOpen(at(2027, 3, 1, 12, 30)))
        self.assertTrue(s.isOpen(at(2027, 3, 2, 23, 59)))
        self.assertFalse(s.isOpen(at(2027, 3, 3, 0, 0)))
        self.assertFalse(s.isOpen(at(2027, 3, 8, 10, 0)))  # a closed Monday
        self.assertEqual(s.nextChange(at(2027, 3, 1, 12, 30)), at(2027, 3, 1, 13, 0))
        self.assertEqual(s.nextChange(at(2027, 3, 2, 20, 0)), at(2027, 3, 3, 0, 0))
        # after Tuesday the 2nd, next Monday (the 8th) is closed: Tuesday the 9th
        self.assertEqual(s.nextChange(at(2027, 3, 3, 1, 0)), at(2027, 3, 9, 8, 0))

    def test_daylightSaving(self) -> None:
        """
        Local hours hold across the change to summer time: 09:00 Warsaw is
        08:00 UTC in March and 07:00 UTC in April.
        """
        s = self.schedule(timezone="Europe/Warsaw", week={"mon": ["09:00-17:00"]})
        utc = datetime.UTC
        march = datetime.datetime(2027, 3, 22, 8, 0, tzinfo=utc).timestamp()
        april = datetime.datetime(2027, 4, 5, 7, 0, tzinfo=utc).timestamp()
        self.assertTrue(s.isOpen(march))
        self.assertFalse(s.isOpen(march - 1))
        self.assertTrue(s.isOpen(april))
        self.assertFalse(s.isOpen(april - 1))
        self.assertEqual(s.nextChange(march - 3600 * 24 * 3), march)

    def test_never(self) -> None:
        """A schedule with no hours is always closed and never changes."""
        s = self.schedule(timezone="UTC", week={})
        self.assertFalse(s.isOpen(at(2027, 3, 1, 12)))
        self.assertIsNone(s.nextChange(at(2027, 3, 1, 12)))

    def test_bad(self) -> None:
        """Bad schedules are refused with the reason."""
        for data, fragment in (
            ("not json", "JSON"),
            ("[]", "JSON object"),
            ('{"timezone": "Mars/Olympus"}', "unknown time zone"),
            ('{"week": {"monday": []}}', "week maps days"),
            ('{"week": {"mon": ["9-17"]}}', "HH:MM-HH:MM"),
            ('{"week": {"mon": ["17:00-09:00"]}}', "within one day"),
            ('{"week": {"mon": ["09:00-25:00"]}}', "within one day"),
            ('{"week": {"mon": ["09:00-12:00", "11:00-13:00"]}}', "overlap"),
            ('{"closed": ["2027-02-30"]}', "YYYY-MM-DD"),
            ('{"hours": 1}', "unknown office-hours field"),
        ):
            e = self.assertRaises(S.SettingError, S.parseSchedule, data)
            self.assertIn(fragment, str(e), data)

    def test_roundTrip(self) -> None:
        """What validate stores parses back to the same schedule."""
        text = json.dumps({"timezone": "Europe/Warsaw", "week": {"fri": ["08:00-16:30"]}})
        stored = S.validate("office.hours.12", text)
        self.assertEqual(S.parse("office.hours", stored), S.parseSchedule(text))


class SettingTests(unittest.TestCase):
    GOOD = {
        "web.origins": ('["https://A.example:443", "self"]', '["https://a.example", "self"]'),
        "web.banned": ('["203.0.113.7", "10.0.0.0/8"]', '["203.0.113.7/32", "10.0.0.0/8"]'),
        "office.switch": ("closed", "closed"),
        "mail.offline_to": ("a@example.com, b@example.com", '["a@example.com", "b@example.com"]'),
        "widget.color": ("#0A7D32", "#0a7d32"),
        "widget.text_color": ("#ffffff", "#ffffff"),
        "widget.position": ("left", "left"),
        "widget.prechat": ("0", "0"),
        "widget.texts.en": ('{"title": "Hi"}', '{"title": "Hi"}'),
        "widget.texts.pl": ('{"send": "Wyślij"}', '{"send": "Wyślij"}'),
        "widget.css": (
            "div.ls-LiveSupportRoot { color: red }",
            "div.ls-LiveSupportRoot { color: red }",
        ),
        "office.hours": ('{"timezone": "UTC"}', None),
    }
    BAD = {
        "web.origins": ('["example.com"]', "origin"),
        "web.banned": ('["300.1.1.1"]', "not an IP address"),
        "office.switch": ("maybe", "auto, open, closed"),
        "mail.offline_to": ("nobody", "e-mail"),
        "widget.color": ("red", "#rrggbb"),
        "widget.text_color": ("#fff", "#rrggbb"),
        "widget.position": ("top", "right, left"),
        "widget.prechat": ("yes", "0 or 1"),
        "widget.texts.en": ('{"nonsense": "x"}', "unknown text"),
        "widget.texts.pl": ('{"title": "' + "x" * 501 + '"}', "at most 500"),
        "widget.css": ("</style><script>", "cannot contain"),
        "office.hours": ("{", "JSON"),
    }

    def test_everySettingChecked(self) -> None:
        """Each setting has a good and a bad example here."""
        self.assertEqual(sorted(self.GOOD), sorted(S.SETTINGS))
        self.assertEqual(sorted(self.BAD), sorted(S.SETTINGS))

    def test_good(self) -> None:
        for name, (value, stored) in self.GOOD.items():
            result = S.validate(name, value)
            if stored is not None:
                self.assertEqual(result, stored, name)

    def test_bad(self) -> None:
        for name, (value, fragment) in self.BAD.items():
            e = self.assertRaises(S.SettingError, S.validate, name, value)
            self.assertIn(fragment, str(e), name)

    def test_cssBound(self) -> None:
        """Custom CSS is bounded at MAX_CSS characters, at the edge."""
        S.validate("widget.css", "a" * S.MAX_CSS)
        self.assertRaises(S.SettingError, S.validate, "widget.css", "a" * (S.MAX_CSS + 1))

    def test_unknownAndGroups(self) -> None:
        """Only office.* settings have per-group variants."""
        self.assertEqual(S.lookup("office.switch.7")[1], 7)
        for name in ("widget.color.7", "office.switch.x", "nothing"):
            self.assertRaises(S.SettingError, S.lookup, name)

    def test_brokenStoredValueFallsBack(self) -> None:
        """A broken value in the database gives the default (and a log line), not a crash."""
        self.assertEqual(S.parse("widget.color", "chartreuse"), "#1f6feb")
        self.assertEqual(S.parse("web.origins", ""), [])

    def test_documented(self) -> None:
        """docs/web.md has a row for every setting."""
        with open(os.path.join(DOCS, "web.md"), encoding="utf-8") as f:
            text = f.read()
        for name in S.SETTINGS:
            self.assertIn(f"| `{name}`", text)
        for key in S.TEXT_KEYS:
            self.assertIn(f"`{key}`", text)


class CacheTests(DialectMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.clock = task.Clock()
        self.store = yield self.openStore()
        yield self.store.createLicence(Licence(number=100))
        self.reads = 0
        licence = self.store.forLicence(100)
        real = licence.getSetting

        def counting(name: str) -> Any:
            self.reads += 1
            return real(name)

        licence.getSetting = counting  # type: ignore[method-assign]
        self.cache = S.SettingsCache(self.store, self.clock, ttl=10)

    @defer.inlineCallbacks
    def test_ttl(self) -> Any:
        """A value is read once per ttl; concurrent askers share one read."""
        yield self.store.forLicence(100).setSetting("widget.color", "#000000")
        first = self.cache.get(100, "widget.color")
        second = self.cache.get(100, "widget.color")
        self.assertEqual((yield first), "#000000")
        self.assertEqual((yield second), "#000000")
        self.assertEqual(self.reads, 1)
        yield self.store.forLicence(100).setSetting("widget.color", "#111111")
        self.clock.advance(9.9)
        self.assertEqual((yield self.cache.get(100, "widget.color")), "#000000")
        self.clock.advance(0.1)
        self.assertEqual((yield self.cache.get(100, "widget.color")), "#111111")
        self.assertEqual(self.reads, 2)

    @defer.inlineCallbacks
    def test_optionalAndForget(self) -> Any:
        """getOptional tells unset from default; forget drops a licence's values."""
        self.assertIsNone((yield self.cache.getOptional(100, "office.switch.3")))
        self.assertEqual((yield self.cache.get(100, "office.switch")), "auto")
        yield self.store.forLicence(100).setSetting("office.switch.3", "open")
        self.cache.forget(100)
        self.assertEqual((yield self.cache.getOptional(100, "office.switch.3")), "open")

    @defer.inlineCallbacks
    def test_licence(self) -> Any:
        """Licence records are cached too; an unknown licence is None."""
        self.assertEqual((yield self.cache.licence(100)).number, 100)
        self.assertIsNone((yield self.cache.licence(999)))
