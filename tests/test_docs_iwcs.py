"""
docs/iwcs.md stays true to the code: every packet class with every field,
every error code, every IWCS limit key; the README shows the example bot.
"""

from __future__ import annotations

import os

from twisted.trial import unittest

from livechat.config import KEYS
from livechat.protocols import iwcspackets as P

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(*path: str) -> str:
    with open(os.path.join(ROOT, *path), encoding="utf-8") as f:
        return f.read()


class IwcsDocTests(unittest.TestCase):
    def setUp(self) -> None:
        self.doc = read("docs", "iwcs.md")

    def test_everyPacket(self) -> None:
        """Each packet class has its section, listing each of its fields."""
        packets = list(P.CLIENT_PACKETS.values()) + list(P.SERVER_PACKETS.values())
        for cls in packets:
            heading = f"\n### {cls.header()} {cls.NAME}\n"
            self.assertIn(heading, self.doc, cls)
            section = self.doc.split(heading, 1)[1].split("\n### ", 1)[0]
            for _, wireName, _, required in cls.wireFields():
                if wireName == "id":
                    continue
                row = f"| `{wireName}` |"
                self.assertIn(row, section, f"{cls.header()} {wireName}")
                self.assertEqual(
                    "| required |" in section.split(row, 1)[1].split("\n", 1)[0],
                    required,
                    f"{cls.header()} {wireName}",
                )

    def test_everyErrorCode(self) -> None:
        """Each error name is in the errors table with its number."""
        for name, code in P.ERRORS.items():
            self.assertIn(f"| {code} | `{name}` |", self.doc, name)

    def test_everyByeReason(self) -> None:
        """Each reason of BYE is explained."""
        for reason in P.BYE_REASONS:
            self.assertIn(f"`{reason}`", self.doc, reason)

    def test_limits(self) -> None:
        """Every IWCS_ key is in the limits table."""
        keys = [k for k in KEYS if k.startswith("IWCS_") and k != "IWCS_LISTEN"]
        self.assertGreaterEqual(len(keys), 7)
        for key in keys:
            self.assertIn(f"`{key}`", self.doc, key)

    def test_readme(self) -> None:
        readme = read("README.md")
        self.assertIn("docs/iwcs.md", readme)
        self.assertIn("examples/echo_bot.py", readme)
        self.assertIn("bench/iwcs.py", readme)
