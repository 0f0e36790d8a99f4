"""
The web resources on a real twisted.web Site (127.0.0.1, port 0) over a
real core and store (sqlite and MariaDB): the monitoring endpoint, the
widget's settings, the POST calls of the SSE fallback, the static files
and the test page; origins, bans, limits and cookies at their edges.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import attr
from twisted.internet import defer, task
from twisted.trial import unittest
from twisted.web import resource, server
from twisted.web.test.requesthelper import DummyRequest

from livechat.protocols.web import WebFront
from tests.support.core import isEvent, isType
from tests.support.db import bothDialects
from tests.support.http import request
from tests.support.web import WebMixin, getJSON, postJSON

SITE = "https://shop.example"


class WebResourceMixin(WebMixin):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield super().setUp()
        yield self.allow(100, SITE)
        self.url = self.serve()

    def monitor(self, body: Any, origin: str = SITE, **headers: str) -> Any:
        h = {"Origin": origin} if origin else {}
        h.update(headers)
        return postJSON(self.url + "livesupport/monitor", body, h)

    def call(self, body: Any, origin: str = SITE) -> Any:
        return postJSON(self.url + "livesupport/call", body, {"Origin": origin})

    # -- monitoring ---------------------------------------------------------------------

    @defer.inlineCallbacks
    def test_pageViews(self) -> Any:
        """
        A first page view makes a visitor and a token (also as an HttpOnly
        cookie, SameSite=Lax over plain http); the agents see the page, title,
        referrer and browser; the next view with the token is the same
        visitor.  CORS answers the site's origin with credentials.
        """
        op = yield self.operator()
        _, achan = yield self.connectOperator(op)
        code, headers, body = yield self.monitor(
            {
                "licence": 100,
                "url": "https://shop.example/cart",
                "title": "Cart",
                "referrer": "https://search.example/?q=shoes",
            },
            **{"User-Agent": "Mozilla/5.0 Test"},
        )
        self.assertEqual(code, 200)
        self.assertTrue(body["new"])
        visitorId, token = body["visitorId"], body["token"]
        self.assertEqual(self.front.tokens.check(100, token).visitorId, visitorId)
        self.assertEqual(headers.getRawHeaders("access-control-allow-origin"), [SITE])
        self.assertEqual(headers.getRawHeaders("access-control-allow-credentials"), ["true"])
        cookie = headers.getRawHeaders("set-cookie")[0]
        self.assertIn(f"lcv100={token}", cookie)
        self.assertIn("HttpOnly", cookie)
        self.assertIn("SameSite=Lax", cookie)
        self.assertNotIn("Secure", cookie)
        self.assertEqual(body["reception"]["online"], True)
        self.assertEqual(body["look"]["color"], "#1f6feb")
        seen = yield achan.next(lambda m: m.get("type") == "visitor.update")
        visitor = seen["visitor"]
        self.assertEqual(
            (visitor["id"], visitor["url"], visitor["title"], visitor["referrer"]),
            (visitorId, "https://shop.example/cart", "Cart", "https://search.example/?q=shoes"),
        )
        self.assertEqual(visitor["userAgent"], "Mozilla/5.0 Test")
        code, _, again = yield self.monitor({"licence": 100, "token": token, "url": SITE + "/b"})
        self.assertEqual((code, again["visitorId"], again["new"]), (200, visitorId, False))

    @defer.inlineCallbacks
    def test_cookieRecognisesVisitor(self) -> Any:
        """Without a token in the body, the server's own cookie names the visitor."""
        _, _, first = yield self.monitor({"licence": 100})
        code, _, second = yield self.monitor({"licence": 100}, Cookie=f"lcv100={first['token']}")
        self.assertEqual(second["visitorId"], first["visitorId"])

    @defer.inlineCallbacks
    def test_badTokenMeansNewVisitor(self) -> Any:
        """A token of another licence, or forged, is not trusted: a new visitor."""
        yield self.allow(200, SITE)
        _, _, other = yield self.monitor({"licence": 200})
        _, _, body = yield self.monitor({"licence": 100, "token": other["token"]})
        self.assertTrue(body["new"])
        self.assertNotEqual(body["visitorId"], other["visitorId"])

    @defer.inlineCallbacks
    def test_returningVisitNoWriteWithinVisit(self) -> Any:
        """
        Page views of a known visitor within a visit write nothing to the
        database (the visitor row keeps its last_seen); a view after the
        visit timeout counts a new visit and the visitor is returning.
        """
        _, _, body = yield self.monitor({"licence": 100})
        store = self.store.forLicence(100)
        before = yield store.getVisitor(body["visitorId"])
        self.clock.advance(60)
        for _ in range(3):
            yield self.monitor({"licence": 100, "token": body["token"], "url": SITE + "/x"})
        after = yield store.getVisitor(body["visitorId"])
        self.assertEqual(after, before)
        self.clock.advance(3600)
        _, _, later = yield self.monitor({"licence": 100, "token": body["token"]})
        self.assertTrue(later["returning"])
        record = yield store.getVisitor(body["visitorId"])
        self.assertEqual(record.visits, 2)

    @defer.inlineCallbacks
    def test_refusals(self) -> Any:
        """
        Another origin gets 403 and no CORS header (so the page reads
        nothing); an unknown licence 404; a bad body 400; a body one byte
        over WEB_MAX_MESSAGE_BYTES 413, at the limit it is read.
        """
        code, headers, body = yield self.monitor({"licence": 100}, origin="https://evil.example")
        self.assertEqual((code, body["code"]), (403, "origin_refused"))
        self.assertIsNone(headers.getRawHeaders("access-control-allow-origin"))
        code, _, body = yield self.monitor({"licence": 100}, origin="")
        self.assertEqual((code, body["code"]), (403, "origin_refused"))
        code, _, body = yield self.monitor({"licence": 424242})
        self.assertEqual((code, body["code"]), (404, "not_found"))
        code, _, body = yield self.monitor(b"{not json")
        self.assertEqual((code, body["code"]), (400, "bad_request"))
        code, _, body = yield self.monitor({"licence": "abc"})
        self.assertEqual(code, 400)
        limit = self.webSettings.maxMessageBytes
        padding = limit - len(json.dumps({"licence": 100, "title": ""}))
        exact = json.dumps({"licence": 100, "title": "x" * padding}).encode()
        self.assertEqual(len(exact), limit)
        code, _, body = yield self.monitor(exact)
        self.assertEqual(code, 200)
        code, _, body = yield self.monitor(exact + b" ")
        self.assertEqual((code, body["code"]), (413, "too_large"))

    @defer.inlineCallbacks
    def test_banned(self) -> Any:
        """A banned address gets 403 banned on every endpoint."""
        yield self.setting(100, "web.banned", ["127.0.0.0/8"])
        code, _, body = yield self.monitor({"licence": 100})
        self.assertEqual((code, body["code"]), (403, "banned"))
        code, _, body = yield getJSON(self.url + "livesupport/config?licence=100", {"Origin": SITE})
        self.assertEqual(code, 403)
        code, _, body = yield self.call({"licence": 100, "token": "x", "type": "reception"})
        self.assertEqual((code, body["code"]), (403, "banned"))

    @defer.inlineCallbacks
    def test_addressRate(self) -> Any:
        """Page views of one address beyond the burst get 429 until time refills it."""
        self.front.limits.addresses.configure(1.0, 2)
        for expected in (200, 200, 429):
            code, _, body = yield self.monitor({"licence": 100})
            self.assertEqual(code, expected)
        self.assertEqual(body["code"], "rate_limited")
        self.clock.advance(1)
        code, _, _ = yield self.monitor({"licence": 100})
        self.assertEqual(code, 200)

    @defer.inlineCallbacks
    def test_behindTrustedProxy(self) -> Any:
        """
        Behind a trusted proxy the visitor's address is the forwarded one (a
        ban on it applies) and over https the cookie is Secure; SameSite=None.
        An untrusted peer's forwarded headers change nothing.
        """
        proxied = WebFront(
            self.core,
            self.reception,
            self.cache,
            attr.evolve(self.webSettings, trustedProxies=("127.0.0.1/32",)),
            self.clock,
        )
        proxied.tokens, proxied.assets = self.front.tokens, self.front.assets
        self.front = proxied
        url = self.serve()
        forwarded = {"Origin": SITE, "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
        code, headers, body = yield postJSON(
            url + "livesupport/monitor", {"licence": 100}, forwarded
        )
        self.assertEqual(code, 200)
        cookie = headers.getRawHeaders("set-cookie")[0]
        self.assertIn("Secure", cookie)
        self.assertIn("SameSite=None", cookie)
        state = yield self.core.presence.visitor(100, body["visitorId"])
        self.assertEqual(state.address, "203.0.113.9")
        yield self.setting(100, "web.banned", ["203.0.113.9"])
        code, _, _ = yield postJSON(url + "livesupport/monitor", {"licence": 100}, forwarded)
        self.assertEqual(code, 403)
        code, headers, body = yield self.monitor({"licence": 100}, **forwarded)
        self.assertEqual(code, 200)
        self.assertNotIn("Secure", headers.getRawHeaders("set-cookie")[0])

    @defer.inlineCallbacks
    def test_scriptLog(self) -> Any:
        """With LOG_SCRIPT 1 each page view is a line of the seed's lc_script log."""
        import os

        from livechat.config import loadConfig
        from livechat.logs import ChannelLogs

        path = os.path.abspath(self.mktemp())
        logs = ChannelLogs(self.clock)
        logs.configure(
            loadConfig(None, {"LC_LOG_PATH": path, "LOG_SCRIPT": "1", "LOG_NAME_SHORT": "1"})
        )
        self.addCleanup(logs.closeAll)
        self.front.logs = logs
        _, _, body = yield self.monitor({"licence": 100, "url": SITE + "/x"})
        logs.closeAll()
        with open(os.path.join(path, "lc_script.log"), encoding="utf-8") as f:
            line = f.read()
        self.assertIn(f"100 {body['visitorId']} 127.0.0.1 {SITE}/x", line)

    @defer.inlineCallbacks
    def test_invitationAndOpenChatInPageView(self) -> Any:
        """A page view tells the loader of an open chat and an invitation not yet answered."""
        op = yield self.operator(nick="anna")
        agent, _ = yield self.connectOperator(op)
        _, _, body = yield self.monitor({"licence": 100})
        invitation = yield agent.inviteVisitor(body["visitorId"], "Can I help?")
        _, _, again = yield self.monitor({"licence": 100, "token": body["token"]})
        self.assertEqual(again["invitation"]["invitationId"], invitation)
        self.assertEqual(again["invitation"]["operator"]["name"], "Anna")
        self.assertIsNone(again["chatId"])

    # -- settings, assets, test page --------------------------------------------------------

    @defer.inlineCallbacks
    def test_config(self) -> Any:
        """The widget's look and the licence's texts in the asked language."""
        yield self.setting(100, "widget.color", "#0a7d32")
        yield self.setting(100, "widget.texts.pl", {"title": "Pomoc"})
        yield self.setting(100, "widget.css", "div.ls-LiveSupportRoot { font-size: 30px }")
        code, headers, body = yield getJSON(
            self.url + "livesupport/config?licence=100&lang=pl", {"Origin": SITE}
        )
        self.assertEqual(code, 200)
        self.assertEqual(body["color"], "#0a7d32")
        self.assertEqual(body["texts"], {"title": "Pomoc"})
        self.assertEqual(body["language"], "pl")
        self.assertIn("font-size: 30px", body["css"])
        code, _, _ = yield getJSON(
            self.url + "livesupport/config?licence=100", {"Origin": "https://evil.example"}
        )
        self.assertEqual(code, 403)

    @defer.inlineCallbacks
    def test_assets(self) -> Any:
        """
        The loader answers at both paths, under 10 KB, naming the widget's
        version; ETags give 304; gzip when asked; unknown paths are 404.
        """
        code, headers, loader = yield request("GET", self.url + "livechat.js")
        self.assertEqual(code, 200)
        self.assertLess(len(loader), 10 * 1024)
        self.assertNotIn(b"__WIDGET_VERSION__", loader)
        self.assertEqual(
            headers.getRawHeaders("content-type"), ["application/javascript; charset=utf-8"]
        )
        _, _, same = yield request("GET", self.url + "livesupport/lib/livesupport.js")
        self.assertEqual(same, loader)
        etag = headers.getRawHeaders("etag")[0]
        code, _, empty = yield request(
            "GET", self.url + "livechat.js", None, {"If-None-Match": etag}
        )
        self.assertEqual((code, empty), (304, b""))
        code, headers, packed = yield request(
            "GET", self.url + "livesupport/widget.js?v=1", None, {"Accept-Encoding": "gzip"}
        )
        self.assertEqual(headers.getRawHeaders("content-encoding"), ["gzip"])
        self.assertIn(b"__livechatWidget", gzip.decompress(packed))
        self.assertIn("immutable", headers.getRawHeaders("cache-control")[0])
        code, _, _ = yield request("GET", self.url + "livesupport/nothing")
        self.assertEqual(code, 404)

    @defer.inlineCallbacks
    def test_testPage(self) -> Any:
        """
        The test page shows the demo licence's tag with this server's own
        address, in English, or in Polish when asked; ?licence= picks another.
        """
        self.front.demoLicence = 100
        code, _, page = yield request("GET", self.url)
        self.assertEqual(code, 200)
        text = page.decode()
        base = self.url.rstrip("/")
        self.assertIn(f'<script src="{base}/livechat.js" data-licence="100" async></script>', text)
        self.assertIn("&lt;script src=&quot;", text)
        self.assertIn("livechat test page", text)
        _, _, page = yield request("GET", self.url + "?lang=pl")
        self.assertIn('data-lang="pl"', page.decode())
        self.assertIn("strona testowa", page.decode())
        _, _, page = yield request("GET", self.url + "?licence=777")
        self.assertIn('data-licence="777"', page.decode())

    @defer.inlineCallbacks
    def test_preflight(self) -> Any:
        """OPTIONS answers the CORS preflight for JSON bodies."""
        code, headers, _ = yield request(
            "OPTIONS", self.url + "livesupport/call", None, {"Origin": SITE}
        )
        self.assertEqual(code, 204)
        self.assertEqual(headers.getRawHeaders("access-control-allow-origin"), [SITE])
        self.assertIn("content-type", headers.getRawHeaders("access-control-allow-headers")[0])

    # -- the POST calls of the fallback ------------------------------------------------------

    @defer.inlineCallbacks
    def test_callsOverPost(self) -> Any:
        """
        With only HTTP POSTs (no stream on this node) a visitor asks for a
        chat, writes, types, reads and leaves; the agent sees all of it.
        """
        op = yield self.operator(nick="anna")
        agent, achan = yield self.connectOperator(op)
        _, _, page = yield self.monitor({"licence": 100})
        token = page["token"]
        code, _, answer = yield self.call(
            {
                "licence": 100,
                "token": token,
                "type": "chat.request",
                "id": 1,
                "name": "Vera",
                "message": "Hello?",
            }
        )
        self.assertEqual((code, answer["type"], answer["id"]), (200, "reply", 1))
        chatId = answer["result"]["chatId"]
        yield achan.next(isType("chat.offered", chatId=chatId))
        yield agent.accept(chatId)
        code, _, answer = yield self.call(
            {"licence": 100, "token": token, "type": "chat.send", "chatId": chatId, "text": "Hi!"}
        )
        seq = answer["result"]["sequence"]
        got = yield achan.next(isEvent("ContentEvent", chatId, message="Hi!"))
        self.assertEqual((got["sequence"], got["originatorMetadata"]["name"]), (seq, "Vera"))
        yield self.call(
            {
                "licence": 100,
                "token": token,
                "type": "chat.state",
                "chatId": chatId,
                "state": "COMPOSING",
            }
        )
        yield achan.next(isEvent("ChatStateEvent", chatId, chatState="COMPOSING"))
        agentSeq = yield agent.send(chatId, "How can I help?")
        code, _, answer = yield self.call(
            {
                "licence": 100,
                "token": token,
                "type": "chat.read",
                "chatId": chatId,
                "sequences": [agentSeq],
            }
        )
        self.assertEqual(code, 200)
        read = yield achan.next(isEvent("AcceptStatusEvent", chatId))
        self.assertEqual(read["event"]["sequenceList"], [agentSeq])
        code, _, answer = yield self.call(
            {
                "licence": 100,
                "token": token,
                "type": "chat.read",
                "chatId": chatId,
                "sequences": [agentSeq + 50],
            }
        )
        self.assertEqual((code, answer["code"]), (400, "bad_request"))
        yield self.call({"licence": 100, "token": token, "type": "chat.leave", "chatId": chatId})
        yield achan.next(isEvent("CloseEvent", chatId))

    @defer.inlineCallbacks
    def test_callRefusals(self) -> Any:
        """
        No or a forged token: 401; another visitor's chat: 403; an unknown
        request type or bad fields: 400 with the reason.
        """
        op = yield self.operator()
        agent, achan = yield self.connectOperator(op)
        visitor, vchan = yield self.connectVisitor()
        chatId = yield self.activeChat(visitor, vchan, agent, achan)
        code, _, answer = yield self.call({"licence": 100, "type": "reception"})
        self.assertEqual((code, answer["code"]), (401, "unauthorized"))
        forged = self.front.tokens.issue(100, "visitor-0001")[:-2] + "xx"
        code, _, answer = yield self.call({"licence": 100, "token": forged, "type": "reception"})
        self.assertEqual(code, 401)
        _, _, page = yield self.monitor({"licence": 100})
        token = page["token"]
        for body, status, code_ in (
            ({"type": "chat.send", "chatId": chatId, "text": "let me in"}, 403, "forbidden"),
            ({"type": "chat.leave", "chatId": chatId}, 403, "forbidden"),
            ({"type": "chat.state", "chatId": chatId, "state": "COMPOSING"}, 403, "forbidden"),
            ({"type": "no.such"}, 400, "bad_request"),
            ({"type": "chat.send", "chatId": "1", "text": "x"}, 400, "bad_request"),
            ({"type": "chat.send", "chatId": chatId, "text": "x" * 4001}, 413, "too_large"),
            ({"type": "chat.state", "chatId": chatId, "state": "SLEEPING"}, 400, "bad_request"),
        ):
            code, _, answer = yield self.call({"licence": 100, "token": token, **body})
            self.assertEqual((code, answer["code"]), (status, code_), body)
        stored = yield self.store.forLicence(100).eventsAfter(chatId, 0)
        self.assertNotIn("let me in", [e.event.get("message") for e in stored])

    @defer.inlineCallbacks
    def test_messageRateOverPost(self) -> Any:
        """A visitor's messages beyond WEB_MESSAGE_BURST are refused (429) until time passes."""
        self.front.limits.messages.configure(1 / 60.0, 2)
        op = yield self.operator()
        agent, achan = yield self.connectOperator(op)
        _, _, page = yield self.monitor({"licence": 100})
        token = page["token"]
        _, _, answer = yield self.call(
            {"licence": 100, "token": token, "type": "chat.request", "message": "hi"}
        )
        chatId = answer["result"]["chatId"]
        yield achan.next(isType("chat.offered", chatId=chatId))
        yield agent.accept(chatId)
        codes = []
        for n in range(3):
            code, _, answer = yield self.call(
                {
                    "licence": 100,
                    "token": token,
                    "type": "chat.send",
                    "chatId": chatId,
                    "text": f"m{n}",
                }
            )
            codes.append(code)
        self.assertEqual(codes, [200, 200, 429])
        self.clock.advance(60)
        code, _, _ = yield self.call(
            {"licence": 100, "token": token, "type": "chat.send", "chatId": chatId, "text": "m3"}
        )
        self.assertEqual(code, 200)

    @defer.inlineCallbacks
    def test_leaveMessageOverPost(self) -> Any:
        """message.leave stores the message and mails it; the reply has its id."""
        yield self.operator(nick="boss", is_admin=True)
        _, _, page = yield self.monitor({"licence": 100})
        code, _, answer = yield self.call(
            {
                "licence": 100,
                "token": page["token"],
                "type": "message.leave",
                "email": "v@example.com",
                "message": "Call me",
                "url": SITE + "/contact",
            }
        )
        self.assertEqual(code, 200)
        rows = yield self.store.forLicence(100).offlineMessages(True, 5)
        self.assertEqual(
            [(r.id, r.message, r.url) for r in rows],
            [(answer["result"]["id"], "Call me", SITE + "/contact")],
        )
        to, mail = yield self.mail.next()
        self.assertIn("Call me", mail.get_content())


globals().update(bothDialects(WebResourceMixin, "WebResourceTests"))


class SiteTuningTests(unittest.TestCase):
    def test_quietAccessLog(self) -> None:
        """The web side's requests stay out of the access log; others are logged."""
        from livechat.protocols.web import tuneSite

        site = server.Site(resource.Resource())
        logged: list[bytes] = []
        site.log = lambda request: logged.append(request.path)  # type: ignore[method-assign]
        tuneSite(site)
        for path in (b"/livesupport/monitor", b"/livechat.js", b"/ws", b"/health", b"/api/v1/x"):
            request = DummyRequest(path.split(b"/")[1:])
            request.path = path
            site.log(request)  # type: ignore[arg-type]
        self.assertEqual(logged, [b"/health", b"/api/v1/x"])

    def test_reconfigure(self) -> None:
        """SIGHUP: the live Web keys (rates, settings cache) change at once."""
        from livechat.config import loadConfig
        from livechat.licencesettings import SettingsCache
        from livechat.protocols.web import WebService
        from livechat.protocols.webpolicy import WebSettings

        clock = task.Clock()
        cache = SettingsCache(None, clock, 10)
        front = WebFront(None, None, cache, WebSettings(), clock)  # type: ignore[arg-type]
        config = loadConfig(
            None,
            {
                "WEB_MESSAGE_RATE": "120",
                "WEB_MESSAGE_BURST": "4",
                "WEB_SETTINGS_CACHE": "3",
                "WEB_ADDRESS_RATE": "60",
                "WEB_CHAT_RATE": "3600",
            },
        )
        WebService(front, None, config).reconfigure(config)
        self.assertEqual((front.limits.messages.rate, front.limits.messages.burst), (2.0, 4))
        self.assertEqual(front.limits.addresses.rate, 1.0)
        self.assertEqual(front.limits.chats.rate, 1.0)
        self.assertEqual(cache.ttl, 3)
