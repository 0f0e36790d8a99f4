"""
The control panel on PANEL_LISTEN (livechat.panel), over real HTTP on a real
node: only administrators log in; the REST API is there for the session's
licence (and no other) with every write needing the CSRF token from this
origin; resetting a password or disabling an operator ends their sessions;
an idle session ends (task.Clock); the pages come with their security
headers.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer, task
from twisted.trial import unittest

from livechat.panel import COOKIE, makePanel, panelSettings
from livechat.websession import SessionManager
from tests.support.browser import serveSite
from tests.support.http import request
from tests.test_api import SERVER_KEY
from tests.test_service import NodeMixin


class Browser:
    """One cookie jar against the panel: logs in, keeps the cookie and the CSRF token."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookie: str | None = None
        self.csrf: str | None = None
        self.setCookie: str = ""

    @defer.inlineCallbacks
    def call(
        self, method: str, path: str, body: Any = None, csrf: bool = True, **headers: str
    ) -> Any:
        h = dict(headers)
        if self.cookie:
            h["Cookie"] = f"{COOKIE}={self.cookie}"
        if csrf and self.csrf and method not in ("GET", "HEAD"):
            h["X-CSRF-Token"] = self.csrf
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        code, responseHeaders, raw = yield request(method, self.base + path.lstrip("/"), data, h)
        for value in responseHeaders.getRawHeaders(b"set-cookie") or []:
            text = value.decode()
            if text.startswith(COOKIE + "="):
                self.setCookie = text
                self.cookie = text.split(";")[0].split("=", 1)[1] or None
        try:
            parsed = json.loads(raw) if raw.strip() else None
        except ValueError:
            parsed = raw
        return code, parsed

    @defer.inlineCallbacks
    def login(self, licence: int, nick: str, password: str) -> Any:
        code, body = yield self.call(
            "POST", "auth/login", {"licence": licence, "nick": nick, "password": password}
        )
        if code == 200:
            self.csrf = body["csrfToken"]
        return code, body


class PanelMixin(NodeMixin):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        extra = f"SERVER_API_KEY {SERVER_KEY}\nDEMO_LICENCE 0\nAPI_RATE 1000\nAPI_BURST 1000\n"
        yield self.startNode(self.nodeConfig(extra, database=self.databaseURL()))
        self.panel = self.node.getServiceNamed("panel").url
        yield self.licence(610001)
        yield self.licence(610002)

    @defer.inlineCallbacks
    def licence(self, number: int) -> Any:
        """A licence with an administrator anna (pw anna-password) and an operator bob."""
        code, _, made = yield request(
            "POST",
            self.url("api/v1/licences"),
            json.dumps(
                {
                    "number": number,
                    "admin": {"nick": "anna", "email": "a@x.ex", "password": "anna-password"},
                }
            ).encode(),
            {"Authorization": f"Bearer {SERVER_KEY}", "Content-Type": "application/json"},
        )
        self.assertEqual(code, 201, made)
        admin = Browser(self.panel)
        yield admin.login(number, "anna", "anna-password")
        for nick, isAdmin in (("bob", False), ("cleo", True)):
            code, body = yield admin.call(
                "POST",
                "api/v1/operators",
                {
                    "nick": nick,
                    "email": f"{nick}@x.ex",
                    "password": f"{nick}-password",
                    "admin": isAdmin,
                },
            )
            self.assertEqual(code, 201, body)


class PanelTests(PanelMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_adminOnlyAndTheCookie(self) -> Any:
        """
        An administrator gets a session and a strict cookie scoped to the
        panel; an operator who is not one, or a wrong password, gets none.
        """
        anna = Browser(self.panel)
        code, body = yield anna.login(610001, "anna", "anna-password")
        self.assertEqual(code, 200, body)
        self.assertEqual((body["licence"], body["operator"]["isAdmin"]), (610001, True))
        flags = [f.strip().lower() for f in anna.setCookie.split(";")]
        self.assertIn("httponly", flags)
        self.assertIn("samesite=strict", flags)
        self.assertIn("path=/", flags)
        bob = Browser(self.panel)
        code, body = yield bob.login(610001, "bob", "bob-password")
        self.assertEqual((code, body["error"]), (403, "forbidden"))
        self.assertIsNone(bob.cookie)
        code, body = yield bob.login(610001, "anna", "wrong-password")
        self.assertEqual((code, body["error"]), (401, "bad_credentials"))
        code, body = yield bob.call("GET", "api/v1/licence")
        self.assertEqual((code, body["error"]), (401, "unauthorized"))
        code, body = yield anna.call("GET", "auth/session")
        self.assertEqual((code, body["operator"]["nick"]), (200, "anna"))

    @defer.inlineCallbacks
    def test_apiOfTheSessionsLicence(self) -> Any:
        """
        The session reaches its own licence's routes, gets 404 for another
        licence's ids and 403 for the server's routes; a session of the
        public site's cookie name or an API key's header opens nothing here.
        """
        anna = Browser(self.panel)
        yield anna.login(610001, "anna", "anna-password")
        code, mine = yield anna.call("GET", "api/v1/licence")
        self.assertEqual((code, mine["number"]), (200, 610001))
        other = Browser(self.panel)
        yield other.login(610002, "anna", "anna-password")
        code, ops = yield other.call("GET", "api/v1/operators")
        foreign = ops["items"][0]["id"]
        code, body = yield anna.call("GET", f"api/v1/operators/{foreign}")
        self.assertEqual(code, 404)
        code, body = yield anna.call("PATCH", f"api/v1/operators/{foreign}", {"disabled": True})
        self.assertEqual(code, 404)
        code, body = yield anna.call("GET", "api/v1/licences")
        self.assertEqual((code, body["error"]), (403, "forbidden"))
        stranger = Browser(self.panel)
        code, body = yield stranger.call(
            "GET",
            "api/v1/licence",
            Authorization=f"Bearer {SERVER_KEY}",
            Cookie=f"lcs={anna.cookie}",
        )
        self.assertEqual(code, 401)
        code, doc = yield stranger.call("GET", "api/v1/openapi.json")
        self.assertEqual((code, doc["openapi"]), (200, "3.1.0"))

    @defer.inlineCallbacks
    def test_writesNeedTheCsrfToken(self) -> Any:
        """
        A write without the X-CSRF-Token header, with a wrong one, or from
        another origin is refused 403 and changes nothing; with it, it works.
        """
        anna = Browser(self.panel)
        yield anna.login(610001, "anna", "anna-password")
        body = {"nick": "dora", "email": "d@x.ex"}
        code, answer = yield anna.call("POST", "api/v1/operators", body, csrf=False)
        self.assertEqual((code, answer["error"]), (403, "csrf"))
        code, answer = yield anna.call(
            "POST", "api/v1/operators", body, csrf=False, **{"X-CSRF-Token": "x" * 43}
        )
        self.assertEqual((code, answer["error"]), (403, "csrf"))
        code, answer = yield anna.call(
            "POST", "api/v1/operators", body, Origin="https://evil.example"
        )
        self.assertEqual((code, answer["error"]), (403, "csrf"))
        code, ops = yield anna.call("GET", "api/v1/operators")
        self.assertNotIn("dora", [o["nick"] for o in ops["items"]])
        code, answer = yield anna.call(
            "POST", "api/v1/operators", body, Origin=self.panel.rstrip("/")
        )
        self.assertEqual(code, 201, answer)
        code, answer = yield anna.call("POST", "auth/logout", {}, csrf=False)
        self.assertEqual(code, 403)

    @defer.inlineCallbacks
    def test_resetAndDisableEndSessions(self) -> Any:
        """
        Resetting cleo's password ends her panel session; disabling her
        ends the next one; the new password logs in.
        """
        anna, cleo = Browser(self.panel), Browser(self.panel)
        yield anna.login(610001, "anna", "anna-password")
        yield cleo.login(610001, "cleo", "cleo-password")
        code, _ = yield cleo.call("GET", "api/v1/licence")
        self.assertEqual(code, 200)
        code, ops = yield anna.call("GET", "api/v1/operators")
        cleoId = next(o["id"] for o in ops["items"] if o["nick"] == "cleo")
        code, answer = yield anna.call(
            "POST", f"api/v1/operators/{cleoId}/password", {"password": "cleo-new-pw"}
        )
        self.assertEqual(code, 200, answer)
        code, _ = yield cleo.call("GET", "api/v1/licence")
        self.assertEqual(code, 401)
        code, _ = yield cleo.login(610001, "cleo", "cleo-password")
        self.assertEqual(code, 401)
        code, _ = yield cleo.login(610001, "cleo", "cleo-new-pw")
        self.assertEqual(code, 200)
        code, _ = yield anna.call("PATCH", f"api/v1/operators/{cleoId}", {"disabled": True})
        self.assertEqual(code, 200)
        code, _ = yield cleo.call("GET", "api/v1/licence")
        self.assertEqual(code, 401)
        code, answer = yield anna.call("GET", "api/v1/licence")
        self.assertEqual(code, 200)

    @defer.inlineCallbacks
    def test_pagesAndHeaders(self) -> Any:
        """
        The page, its files and the preview are served with their types and
        security headers; unknown paths are JSON 404s.
        """
        b = Browser(self.panel)
        code, headers, page = yield request("GET", self.panel)
        self.assertEqual(code, 200)
        self.assertIn(b'src="/static/panel.js"', page)
        policy = headers.getRawHeaders(b"content-security-policy")[0]
        self.assertIn(b"script-src 'self'", policy)
        self.assertIn(b"frame-ancestors 'none'", policy)
        self.assertEqual(headers.getRawHeaders(b"x-frame-options"), [b"DENY"])
        self.assertEqual(headers.getRawHeaders(b"x-content-type-options"), [b"nosniff"])
        code, headers, _ = yield request("GET", self.panel + "preview/")
        self.assertEqual((code, headers.getRawHeaders(b"x-frame-options")), (200, [b"SAMEORIGIN"]))
        for path, kind in (
            ("static/panel.js", b"application/javascript"),
            ("static/panel.css", b"text/css"),
            ("static/print.css", b"text/css"),
            ("preview/widget.js", b"application/javascript"),
        ):
            code, headers, body = yield request("GET", self.panel + path)
            self.assertEqual(code, 200, path)
            self.assertTrue(headers.getRawHeaders(b"content-type")[0].startswith(kind), path)
            etag = headers.getRawHeaders(b"etag")[0].decode()
            code, _, _ = yield request("GET", self.panel + path, None, {"If-None-Match": etag})
            self.assertEqual(code, 304)
        for path in ("nothing", "static/none.js", "static/panel.js/x", "preview/x", "api/v2/x"):
            code, body = yield b.call("GET", path)
            self.assertEqual((code, body["error"]), (404, "not_found"), path)

    @defer.inlineCallbacks
    def test_idleSessionEnds(self) -> Any:
        """
        On a panel whose sessions run on a task.Clock: a session used within
        SESSION_IDLE_TIMEOUT lives on, one idle for longer gets 401 and
        the page is asked to log in again.
        """
        clock = task.Clock()
        clock.advance(self.node.parts.reactor.seconds())
        settings = panelSettings(self.node.config)
        manager = SessionManager(
            self.node.parts.store,
            clock,
            settings,
            portal=self.node.parts.portal,
            secret=b"s" * 16 + b"e" * 16,
        )
        panel = makePanel(self.node.parts, manager)
        yield panel.service.startService()
        base = serveSite(self, panel.site)
        anna = Browser(base)
        code, _ = yield anna.login(610001, "anna", "anna-password")
        self.assertEqual(code, 200)
        clock.advance(settings.idleTimeout - 5)
        code, _ = yield anna.call("GET", "api/v1/licence")
        self.assertEqual(code, 200)
        clock.advance(settings.idleTimeout - 5)
        code, _ = yield anna.call("GET", "api/v1/licence")
        self.assertEqual(code, 200)
        clock.advance(settings.idleTimeout + 1)
        code, body = yield anna.call("GET", "api/v1/licence")
        self.assertEqual((code, body["error"]), (401, "unauthorized"))
        code, _ = yield anna.call("GET", "auth/session")
        self.assertEqual(code, 401)


class PanelOffTests(NodeMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_none(self) -> Any:
        """PANEL_LISTEN none: no panel listener at all."""
        path = self.nodeConfig("DEMO_LICENCE 0\n")
        with open(path) as f:
            text = f.read().replace("PANEL_LISTEN tcp:0:interface=127.0.0.1", "PANEL_LISTEN none")
        with open(path, "w") as f:
            f.write(text)
        node = yield self.startNode(path)
        self.assertNotIn("panel", [s.name for s in node])
