"""
Canned responses: the storage (licence delta 005) on sqlite and MariaDB,
and the agent's JSON endpoint (/agent/api/canned) with its rules: the
licence's responses are kept by administrators, an operator's own by them
alone, CSRF on every change, the per-licence cap and length limit, nothing
of another licence.
"""

from __future__ import annotations

import json
from typing import Any

import attr
from twisted.internet import defer
from twisted.trial import unittest

from livechat.storage.canned import TooMany
from livechat.storage.errors import NotFound
from tests.support.db import DialectMixin, bothDialects
from tests.support.http import request
from tests.test_agent_ws import AgentMixin


class CannedStorageMixin(DialectMixin):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        from livechat.model import Licence

        self.store = yield self.openStore()
        yield self.store.createLicence(Licence(number=100))
        yield self.store.createLicence(Licence(number=200))
        self.canned = self.store.forLicence(100)

    @defer.inlineCallbacks
    def test_ownersAndList(self) -> Any:
        """An operator lists the licence's responses and their own, by shortcut; not others'."""
        yield self.canned.createCanned(None, "hello", "Hello! How can I help?", 10)
        yield self.canned.createCanned(1, "bye", "Goodbye, Anna here", 10)
        yield self.canned.createCanned(2, "aa", "Bob's own", 10)
        mine = yield self.canned.cannedResponses(1)
        self.assertEqual([(c.shortcut, c.operator) for c in mine], [("bye", 1), ("hello", None)])
        self.assertEqual(
            [c.shortcut for c in (yield self.canned.cannedResponses(2))], ["aa", "hello"]
        )
        self.assertEqual((yield self.store.forLicence(200).cannedResponses(1)), [])

    @defer.inlineCallbacks
    def test_changeOnlyYourOwn(self) -> Any:
        """Changing or deleting needs the owner (an operator, or None for the licence's)."""
        made = yield self.canned.createCanned(1, "bye", "Goodbye", 10)
        yield self.assertFailure(self.canned.updateCanned(made.id, 2, "x", "y"), NotFound)
        yield self.assertFailure(self.canned.updateCanned(made.id, None, "x", "y"), NotFound)
        yield self.assertFailure(self.store.forLicence(200).deleteCanned(made.id, 1), NotFound)
        changed = yield self.canned.updateCanned(made.id, 1, "later", "See you later")
        self.assertEqual((changed.shortcut, changed.text), ("later", "See you later"))
        yield self.canned.deleteCanned(made.id, 1)
        self.assertEqual((yield self.canned.cannedResponses(1)), [])
        yield self.assertFailure(self.canned.deleteCanned(made.id, 1), NotFound)

    @defer.inlineCallbacks
    def test_cap(self) -> Any:
        """The licence keeps at most the cap (its own and its operators' together)."""
        yield self.canned.createCanned(None, "a", "one", 2)
        yield self.canned.createCanned(5, "b", "two", 2)
        yield self.assertFailure(self.canned.createCanned(6, "c", "three", 2), TooMany)
        yield self.store.forLicence(200).createCanned(None, "a", "other licence", 2)

    @defer.inlineCallbacks
    def test_unicodeAndLength(self) -> Any:
        """Text is kept as given (any script, long text, markup as characters)."""
        text = "Zażółć gęślą jaźń <b>😀</b>\n" * 100
        made = yield self.canned.createCanned(1, "pl", text, 10)
        found = yield self.canned.cannedResponses(1)
        self.assertEqual(found[0].text, text)
        self.assertEqual(found[0].id, made.id)


globals().update(bothDialects(CannedStorageMixin, "CannedStorageTests"))


class CannedEndpointTests(AgentMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def call(self, method: str, path: str, cookie: str, csrf: str | None, body: Any = None) -> Any:
        headers = {"Cookie": cookie, "Content-Type": "application/json"}
        if csrf:
            headers["X-CSRF-Token"] = csrf
        data = None if body is None else json.dumps(body).encode()
        code, _, raw = yield request(method, self.url + "agent/api/" + path, data, headers)
        return code, json.loads(raw) if raw else None

    @defer.inlineCallbacks
    def test_rules(self) -> Any:
        """
        CSRF-less changes are refused; an operator keeps their own, only an
        administrator the licence's; bad fields are 400 with a reason; the
        cap is 409; another licence sees nothing.
        """
        self.agentFront.settings = attr.evolve(self.agentSettings, cannedMax=3, cannedMaxLength=50)
        self.serveAll()
        yield self.agentOperator("anna", is_admin=True)
        yield self.agentOperator("bob")
        yield self.agentOperator("zed", licence=200)
        anna, annaSession = yield self.login("anna")
        bob, bobSession = yield self.login("bob")
        zed, zedSession = yield self.login("zed", 200)
        a, b, z = annaSession["csrfToken"], bobSession["csrfToken"], zedSession["csrfToken"]
        good = {"shortcut": "hello", "text": "Hello!", "scope": "licence"}

        code, body = yield self.call("POST", "canned", anna, None, good)
        self.assertEqual((code, body["error"]), (403, "csrf"))
        code, body = yield self.call("GET", "canned", "lcs=nothing", None)
        self.assertEqual(code, 401)
        code, body = yield self.call("POST", "canned", bob, b, good)
        self.assertEqual((code, body["error"]), (403, "forbidden"))
        code, shared = yield self.call("POST", "canned", anna, a, good)
        self.assertEqual((code, shared["scope"]), (201, "licence"))
        code, own = yield self.call("POST", "canned", bob, b, {"shortcut": "bye", "text": "Bye"})
        self.assertEqual(
            (code, own["scope"], own["operatorId"] is not None), (201, "operator", True)
        )

        for bad, reason in (
            ({"shortcut": "two words", "text": "x"}, "shortcut"),
            ({"shortcut": "x", "text": "   "}, "text"),
            ({"shortcut": "x", "text": "y" * 51}, "at most 50"),
            ({"shortcut": "x", "text": "y", "scope": "world"}, "scope"),
        ):
            code, body = yield self.call("POST", "canned", bob, b, bad)
            self.assertEqual(code, 400, bad)
            self.assertIn(reason, body["message"])

        code, body = yield self.call("GET", "canned", bob, None)
        self.assertEqual([c["shortcut"] for c in body["canned"]], ["bye", "hello"])
        code, body = yield self.call("GET", "canned", anna, None)
        self.assertEqual([c["shortcut"] for c in body["canned"]], ["hello"])
        code, body = yield self.call("GET", "canned", zed, None)
        self.assertEqual(body["canned"], [])

        # Bob cannot change the licence's nor Anna Bob's; Zed nothing of licence 100.
        code, _ = yield self.call("DELETE", f"canned/{shared['id']}", bob, b, {"scope": "licence"})
        self.assertEqual(code, 403)
        code, _ = yield self.call("DELETE", f"canned/{own['id']}", anna, a, {"scope": "operator"})
        self.assertEqual(code, 404)
        code, _ = yield self.call("DELETE", f"canned/{own['id']}", zed, z, {})
        self.assertEqual(code, 404)
        code, body = yield self.call(
            "PUT", f"canned/{own['id']}", bob, b, {"shortcut": "later", "text": "See you"}
        )
        self.assertEqual((code, body["shortcut"]), (200, "later"))

        code, _ = yield self.call("POST", "canned", bob, b, {"shortcut": "c", "text": "three"})
        self.assertEqual(code, 201)
        code, body = yield self.call("POST", "canned", bob, b, {"shortcut": "d", "text": "four"})
        self.assertEqual((code, body["error"]), (409, "too_many"))
        code, body = yield self.call("DELETE", f"canned/{own['id']}", bob, b, {})
        self.assertEqual((code, body), (200, {"deleted": own["id"]}))
