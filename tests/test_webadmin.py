"""livechat-admin's web commands on a real store (sqlite and MariaDB): output, errors, effect."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer

from livechat.model import Licence
from tests.support.db import DialectMixin, bothDialects
from tests.test_admin import AdminMixin


class WebAdminMixin(DialectMixin):
    admin = AdminMixin.admin
    store = AdminMixin.store

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        AdminMixin.setUp(self)  # type: ignore[arg-type]
        store = yield self.store()
        yield store.createLicence(Licence(number=123456))
        self.licence = store.forLicence(123456)

    @defer.inlineCallbacks
    def ok(self, *argv: str) -> Any:
        code, out, err = yield self.admin(*argv)
        self.assertEqual((code, err), (0, ""), argv)
        return out

    @defer.inlineCallbacks
    def fails(self, *argv: str) -> Any:
        code, out, err = yield self.admin(*argv)
        self.assertEqual(code, 1, argv)
        return err

    @defer.inlineCallbacks
    def test_origins(self) -> Any:
        """allow-origin normalises and adds; list-origins shows; disallow-origin removes."""
        out = yield self.ok(
            "allow-origin", "123456", "https://WWW.Example.com:443", "https://*.shop.example"
        )
        self.assertIn("https://www.example.com\n", out)
        yield self.ok("allow-origin", "123456", "https://www.example.com")
        stored = json.loads((yield self.licence.getSetting("web.origins")))
        self.assertEqual(stored, ["https://www.example.com", "https://*.shop.example"])
        out = yield self.ok("list-origins", "123456")
        self.assertEqual(
            out,
            "licence 123456 allowed origins:\n  https://www.example.com\n  https://*.shop.example\n",
        )
        yield self.ok("disallow-origin", "123456", "https://www.example.com")
        err = yield self.fails("disallow-origin", "123456", "https://www.example.com")
        self.assertIn("not on the list", err)
        err = yield self.fails("allow-origin", "123456", "www.example.com")
        self.assertIn("an origin is http:// or https://", err)
        err = yield self.fails("allow-origin", "999999", "https://x.example")
        self.assertIn("licence 999999 does not exist", err)

    @defer.inlineCallbacks
    def test_bans(self) -> Any:
        """ban and unban addresses and networks; list-bans; bad addresses refused."""
        yield self.ok("ban", "123456", "203.0.113.7", "198.51.100.0/24")
        out = yield self.ok("list-bans", "123456")
        self.assertIn("203.0.113.7/32", out)
        self.assertIn("198.51.100.0/24", out)
        yield self.ok("unban", "123456", "203.0.113.7")
        stored = json.loads((yield self.licence.getSetting("web.banned")))
        self.assertEqual(stored, ["198.51.100.0/24"])
        err = yield self.fails("ban", "123456", "999.1.1.1")
        self.assertIn("not an IP address", err)

    @defer.inlineCallbacks
    def test_hoursAndSwitch(self) -> Any:
        """set-hours stores a checked schedule (of a group too); office sets the switch."""
        out = yield self.ok(
            "set-hours",
            "123456",
            "--timezone",
            "Europe/Warsaw",
            "--mon",
            "09:00-17:00",
            "--fri",
            "09:00-12:00",
            "--fri",
            "13:00-15:00",
            "--closed",
            "2027-12-24",
        )
        self.assertIn("office.hours of licence 123456", out)
        stored = json.loads((yield self.licence.getSetting("office.hours")))
        self.assertEqual(stored["week"]["fri"], ["09:00-12:00", "13:00-15:00"])
        self.assertEqual(stored["closed"], ["2027-12-24"])
        yield self.ok("set-hours", "123456", "--group", "4", "--tue", "10:00-11:00")
        self.assertIsNotNone((yield self.licence.getSetting("office.hours.4")))
        err = yield self.fails("set-hours", "123456", "--mon", "17:00-09:00")
        self.assertIn("within one day", err)
        err = yield self.fails("set-hours", "123456", "--timezone", "Nowhere/City")
        self.assertIn("unknown time zone", err)
        yield self.ok("set-hours", "123456", "--clear")
        self.assertEqual((yield self.licence.getSetting("office.hours")), "")
        yield self.ok("office", "123456", "closed", "--group", "4")
        self.assertEqual((yield self.licence.getSetting("office.switch.4")), "closed")
        code, _, _ = yield self.admin("office", "123456", "maybe")
        self.assertEqual(code, 2)

    @defer.inlineCallbacks
    def test_webSetting(self) -> Any:
        """web-setting shows all, one, sets with checks, and clears with ''."""
        out = yield self.ok("web-setting", "123456")
        self.assertIn("widget.color (default)\n", out)
        yield self.ok("web-setting", "123456", "widget.color", "#0A7D32")
        out = yield self.ok("web-setting", "123456", "widget.color")
        self.assertEqual(out, "widget.color #0a7d32\n")
        err = yield self.fails("web-setting", "123456", "widget.color", "green")
        self.assertIn("#rrggbb", err)
        err = yield self.fails("web-setting", "123456", "widget.nonsense", "1")
        self.assertIn("unknown setting", err)
        yield self.ok("web-setting", "123456", "widget.color", "")
        out = yield self.ok("web-setting", "123456", "widget.color")
        self.assertEqual(out, "widget.color (default)\n")


globals().update(bothDialects(WebAdminMixin, "WebAdminTests"))
