"""
docs/events.md and docs/web.md stay true to the code: every message type
the core sends, every request and error code of the widget, every reason,
every web limit key, and the admin commands are documented.
"""

from __future__ import annotations

import glob
import os
import re

from twisted.trial import unittest

from livechat.config import KEYS
from livechat.core.events import STORED_TYPES
from livechat.protocols.webcalls import HTTP_STATUS
from livechat.webadmin import COMMANDS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(*path: str) -> str:
    with open(os.path.join(ROOT, *path), encoding="utf-8") as f:
        return f.read()


class EventsDocTests(unittest.TestCase):
    def setUp(self) -> None:
        self.doc = read("docs", "events.md")
        self.core = "".join(read(p) for p in glob.glob(os.path.join(ROOT, "livechat/core/*.py")))

    def test_everyCoreMessage(self) -> None:
        """Each message type the core publishes has its own section with an example."""
        types = set(re.findall(r'"type": "([a-z]+\.[a-z.]+|invitation)"', self.core))
        self.assertGreaterEqual(len(types), 15)
        for kind in sorted(types):
            self.assertIn(f"\n### {kind}\n", self.doc, kind)
            section = self.doc.split(f"\n### {kind}\n", 1)[1].split("\n### ", 1)[0]
            self.assertIn(f'"type": "{kind}"', section, kind)

    def test_everyChatEvent(self) -> None:
        """Each inner event type, and ChatStateEvent, is in the table of chat events."""
        for kind in STORED_TYPES + ("ChatStateEvent",):
            self.assertIn(f"| `{kind}` |", self.doc)

    def test_everyReason(self) -> None:
        """Close, leave and withdraw reasons the core uses are all listed."""
        reasons = set(re.findall(r'_close\(self, chatId, "([a-z_]+)"\)', self.core))
        reasons |= set(re.findall(r'E\.leave\([^)]*"([a-z_]+)"\)', self.core))
        reasons |= set(re.findall(r'_withdraw\([^)]*"([a-z_]+)"', self.core))
        reasons |= {"visitor_gone"}
        self.assertGreaterEqual(len(reasons), 8)
        for reason in sorted(reasons):
            self.assertIn(f"`{reason}`", self.doc, reason)

    def test_everyRequest(self) -> None:
        """Each request the widget may send is in the requests table."""
        from livechat.protocols.webcalls import VisitorCalls

        calls = VisitorCalls.__new__(VisitorCalls)
        VisitorCalls.__init__(calls, None, None, None)  # type: ignore[arg-type]
        for kind in calls.types + ["hello"]:
            self.assertIn(f"| `{kind}` |", self.doc, kind)

    def test_everyErrorCode(self) -> None:
        """Each error code is in the errors table, with its HTTP status."""
        for code, status in HTTP_STATUS.items():
            self.assertIn(f"| `{code}` | {status} |", self.doc, code)

    def test_limits(self) -> None:
        """Every limit key of the Web section is in the limits table."""
        for key in KEYS:
            if key.startswith("WEB_") and key not in (
                "WEB_DEFLATE",
                "WEB_TOKEN_DAYS",
                "WEB_SETTINGS_CACHE",
            ):
                self.assertIn(f"`{key}`", self.doc, key)


class WebDocTests(unittest.TestCase):
    def test_adminCommands(self) -> None:
        """Every web command of livechat-admin appears in docs/web.md."""
        doc = read("docs", "web.md")
        for command in COMMANDS:
            self.assertIn(f"livechat-admin {command}", doc, command)

    def test_readmeAndConfiguration(self) -> None:
        """The README points at docs/web.md; configuration.md lists the Web keys."""
        self.assertIn("docs/web.md", read("README.md"))
        configuration = read("docs", "configuration.md")
        for key in KEYS:
            if key.startswith("WEB_") or key == "TRUSTED_PROXIES":
                self.assertIn(f"| `{key}` |", configuration)
