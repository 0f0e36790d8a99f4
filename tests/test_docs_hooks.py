"""docs/webhooks.md and docs/api.md say what the code does."""

from __future__ import annotations

import os
import re

from twisted.trial import unittest

from livechat.api.v1 import ROUTES
from livechat.notify import payloads

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


def read(name: str) -> str:
    with open(os.path.join(DOCS, name), encoding="utf-8") as f:
        return f.read()


class DocsTests(unittest.TestCase):
    def test_rpcTable(self) -> None:
        """The table of the twelve events lists exactly the parameters sent, in order."""
        text = read("webhooks.md")
        for event, fields in payloads.RPC_FIELDS.items():
            match = re.search(rf"^\| `{event}` \| (.*) \|$", text, re.M)
            self.assertIsNotNone(match, event)
            documented = re.findall(r"\b([A-Z][A-Z_]{2,})\b", match.group(1))
            expected = [f for f in fields if f != "PASSWORD"]
            self.assertEqual([d for d in documented if d in fields], expected, event)

    def test_examplesParse(self) -> None:
        """Each example body decodes to exactly the event's parameters."""
        from urllib.parse import parse_qsl

        text = read("webhooks.md")
        bodies = re.findall(r"^(EVENT=[A-Z_]+&\S+)$", text, re.M)
        self.assertEqual(len(bodies), 12)
        for body in bodies:
            pairs = parse_qsl(body, keep_blank_values=True)
            event = pairs[0][1]
            wanted = [f for f in payloads.RPC_FIELDS[event] if f not in ("PASSWORD", "INVITING_OP")]
            self.assertEqual([k for k, _ in pairs], wanted, event)

    def test_apiPaths(self) -> None:
        """docs/api.md mentions every group of routes."""
        text = read("api.md")
        for r in ROUTES:
            first = "/" + r.path.strip("/").split("/")[0]
            self.assertIn(first, text, r.path)
