"""
The widget in a real browser (Debian's chromium, headless, through
tests.support.browser): a page of another origin (another port) embeds
the one tag; an agent (an operator session of the core) sees the visitor,
chats both ways, sees typing and read receipts; the visitor reloads and
moves to another page with the history intact; office hours closed lead to
a left message that reaches a real SMTP server; an origin not on the
allow-list gets nothing; a proxy that blocks WebSockets leaves SSE + POST.
Screenshots go to the harness's screenshot directory.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web import resource, server

from livechat.core.reception import Reception
from livechat.notify.mailer import Mailer, MailSettings, loadTemplates
from livechat.protocols.http import makeSite
from livechat.protocols.web import mountWeb
from livechat.protocols.webcalls import VisitorCalls
from tests.support.browser import Browser, serveSite
from tests.support.core import isEvent, isType
from tests.support.web import SMTPReceiver, WebMixin

PAGE = """<!doctype html><html lang="{lang}"><head><meta charset="utf-8">
<link rel="icon" href="data:,"><title>{title}</title>{style}</head>
<body><h1>{title}</h1><p>A page of the site.</p><a id="next" href="/page2">next</a>
<script src="{server}livechat.js" data-licence="100"{extra} async></script></body></html>"""


class SitePages(resource.Resource):
    """The company's website (another origin): every page has the tag."""

    isLeaf = True

    def __init__(self, server: str, extra: str = "", lang: str = "en", style: str = "") -> None:
        super().__init__()
        self.server, self.extra, self.lang, self.style = server, extra, lang, style

    def render_GET(self, request: server.Request) -> bytes:
        title = "Page " + request.path.decode().strip("/").replace("page", "") or "Home"
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return PAGE.format(
            server=self.server, title=title, extra=self.extra, lang=self.lang, style=self.style
        ).encode()


class Blocked(resource.Resource):
    """What a proxy that blocks WebSockets answers to the upgrade."""

    isLeaf = True

    def render(self, request: server.Request) -> bytes:
        request.setResponseCode(403)
        return b"WebSockets are not allowed here"


LOG = ".ls-panel .ls-log"


class BrowserWidgetMixin(WebMixin):
    timeout = 180

    def serveWeb(self, blockWebSocket: bool = False) -> str:
        root = resource.Resource()
        mountWeb(root, self.front)
        if blockWebSocket:
            root.putChild(b"ws", Blocked())
        return serveSite(self, makeSite(root))

    @defer.inlineCallbacks
    def site(self, extra: str = "", allowed: bool = True, lang: str = "en", style: str = "") -> Any:
        """The web on one port, the site on another; the site's origin allowed."""
        self.server = self.serveWeb(getattr(self, "blockWebSocket", False))
        self.siteResource = SitePages(self.server, extra, lang, style)
        site = serveSite(self, server.Site(self.siteResource))
        if allowed:
            yield self.allow(100, site.rstrip("/"))
        else:
            yield self.allow(100, "https://somewhere.else.example")
        return site

    @defer.inlineCallbacks
    def messages(self, page: Any) -> Any:
        texts = yield page.allTextContents(f"{LOG} .ls-message .ls-text")
        return texts

    @defer.inlineCallbacks
    def test_chatBothWaysAndReload(self) -> Any:
        """
        The visitor is seen, chats with the agent both ways (text only, links
        clickable), typing and read receipts show on both sides; after a
        reload and on another page of the site the same conversation is
        there, nothing lost or doubled; the visitor ends the chat.
        """
        site = yield self.site()
        op = yield self.operator(nick="anna")
        agent, achan = yield self.connectOperator(op)
        browser = yield Browser.launch(self)
        page = yield browser.newPage(viewport={"width": 1000, "height": 760})
        yield page.goto(site + "page1")
        yield page.waitForSelector(".ls-LiveSupportRoot .ls-launcher")
        root = yield page.evaluate("document.querySelector('.ls-LiveSupportRoot').className")
        self.assertRegex(root, r"^ls-LiveSupportRoot ls-LiveSupport\d+$")
        seen = yield achan.next(
            lambda m: m.get("type") == "visitor.update" and m["visitor"]["url"].endswith("page1")
        )
        self.assertEqual(seen["visitor"]["title"], "Page 1")
        self.assertIn("Chrome", seen["visitor"]["userAgent"])

        yield page.click(".ls-launcher")
        yield page.waitForSelector(".ls-panel .ls-prechat")
        yield page.fill(".ls-prechat input[name=name]", "Vera")
        yield page.fill(".ls-prechat textarea", "Hello from the browser")
        yield page.click(".ls-prechat .ls-start")
        offered = yield achan.next(isType("chat.offered"))
        chatId = offered["chatId"]
        self.assertEqual(
            (offered["name"], offered["firstMessage"]), ("Vera", "Hello from the browser")
        )
        yield agent.accept(chatId)
        yield page.waitForSelector(f"{LOG} .ls-event:has-text('Anna joined')")

        yield agent.send(chatId, "Hi Vera <b>bold</b> see https://example.com/x?a=1.")
        yield page.waitForSelector(f"{LOG} .ls-theirs .ls-text:has-text('see')")
        self.assertEqual((yield page.count(f"{LOG} b")), 0)
        href = yield page.getAttribute(f"{LOG} a.ls-link", "href")
        self.assertEqual(href, "https://example.com/x?a=1")
        rel = yield page.getAttribute(f"{LOG} a.ls-link", "rel")
        self.assertIn("noopener", rel)
        read = yield achan.next(
            lambda m: (
                isEvent("AcceptStatusEvent", chatId)(m)
                and m["originatorMetadata"]["role"] == "CONSUMER"
            )
        )
        self.assertEqual(read["event"]["status"], "READ")

        from livechat.model import ChatState

        yield agent.chatState(chatId, ChatState.COMPOSING)
        yield page.waitForSelector(".ls-typing:has-text('Anna is typing')")
        yield agent.chatState(chatId, ChatState.PAUSE)
        yield page.waitForSelector(".ls-typing:text-is('')", state="attached")
        yield page.fill(".ls-compose textarea", "My parcel is late")
        yield page.press(".ls-compose textarea", "Enter")  # fill typed: COMPOSING first
        yield achan.next(isEvent("ChatStateEvent", chatId, chatState="COMPOSING"))
        mine = yield achan.next(isEvent("ContentEvent", chatId, message="My parcel is late"))
        yield agent.markRead(chatId, [mine["sequence"]])
        yield page.waitForSelector(f"{LOG} [data-seq='{mine['sequence']}'] .ls-read")
        yield page.screenshot("chatting")

        before = yield self.messages(page)
        self.assertEqual(
            before,
            [
                "Hello from the browser",
                "Hi Vera <b>bold</b> see https://example.com/x?a=1.",
                "My parcel is late",
            ],
        )
        yield page.reload()
        yield page.waitForSelector(f"{LOG} .ls-message:has-text('My parcel is late')")
        yield agent.send(chatId, "Found it")
        yield page.waitForSelector(f"{LOG} .ls-message:has-text('Found it')")
        self.assertEqual((yield self.messages(page)), before + ["Found it"])
        yield page.screenshot("after reload")

        yield page.click("#next")
        yield page.waitForSelector(f"{LOG} .ls-message:has-text('Found it')")
        yield agent.send(chatId, "Anything else?")
        yield page.waitForSelector(f"{LOG} .ls-message:has-text('Anything else?')")
        self.assertEqual((yield self.messages(page)), before + ["Found it", "Anything else?"])

        yield page.click(".ls-compose .ls-end")
        yield achan.next(isEvent("CloseEvent", chatId))
        yield page.waitForSelector(".ls-ended .ls-new")
        yield page.fill(".ls-transcript input[name=email]", "vera@example.com")
        yield page.click(".ls-transcript .ls-transcript-send")
        yield page.waitForSelector(".ls-notice:has-text('The transcript is on its way')")
        to, mail = yield self.mail.next()
        self.assertEqual(to, ["vera@example.com"])
        self.assertIn("Vera: My parcel is late", mail.get_content())
        self.assertIn("Anna: Found it", mail.get_content())
        yield page.screenshot("ended")
        yield page.click(".ls-ended .ls-new")
        yield page.waitForSelector(".ls-panel .ls-prechat")
        self.assertEqual((yield page.count(f"{LOG} .ls-message")), 0)
        page.assertNoErrors()

    @defer.inlineCallbacks
    def test_queuedWhenNobodyOnline(self) -> Any:
        """
        Within office hours with no operator online the widget says so and
        still takes the request: the chat waits first in the queue, and goes
        to the first operator who comes online.  The panel works from the
        keyboard: Escape closes it and gives the focus back to the button.
        """
        site = yield self.site()
        browser = yield Browser.launch(self)
        page = yield browser.newPage(viewport={"width": 900, "height": 700})
        yield page.goto(site)
        yield page.click(".ls-launcher")
        yield page.waitForSelector(".ls-notice:has-text('Nobody is available right now')")
        self.assertTrue((yield page.isVisible(".ls-prechat .ls-leave-link")))
        self.assertEqual((yield page.getAttribute(".ls-launcher", "aria-expanded")), "true")
        yield page.fill(".ls-prechat textarea", "Is anybody there?")
        yield page.press(".ls-prechat textarea", "Tab")
        yield page.click(".ls-prechat .ls-start")
        yield page.waitForSelector(".ls-notice:has-text('You are number 1 in the queue')")
        yield page.screenshot("queued")
        op = yield self.operator(nick="anna")
        agent, achan = yield self.connectOperator(op)
        offered = yield achan.next(isType("chat.offered"))
        self.assertEqual(offered["firstMessage"], "Is anybody there?")
        yield agent.accept(offered["chatId"])
        yield page.waitForSelector(f"{LOG} .ls-event:has-text('Anna joined')")
        yield page.press(".ls-compose textarea", "Escape")
        yield page.waitForSelector(".ls-panel", state="hidden")
        self.assertEqual((yield page.evaluate("document.activeElement.className")), "ls-launcher")
        self.assertEqual((yield page.getAttribute(".ls-launcher", "aria-expanded")), "false")
        page.assertNoErrors()

    @defer.inlineCallbacks
    def test_lookAndSiteCSS(self) -> Any:
        """
        The licence's colours, texts and custom CSS show; the site's own rules
        prefixed div.ls-LiveSupportRoot[class*=ls-LiveSupport] win over the
        widget's.
        """
        yield self.licence()
        yield self.setting(100, "widget.color", "#0a7d32")
        yield self.setting(100, "widget.texts.en", {"title": "Talk to Acme", "launcher": "Help"})
        yield self.setting(
            100, "widget.css", ".ls-LiveSupportRoot .ls-notice { color: rgb(1, 2, 3) }"
        )
        site = yield self.site(
            style="<style>div.ls-LiveSupportRoot[class*=ls-LiveSupport] .ls-title "
            "{ font-size: 30px }</style>"
        )
        browser = yield Browser.launch(self)
        page = yield browser.newPage(viewport={"width": 900, "height": 700})
        yield page.goto(site)
        yield page.click(".ls-launcher")
        yield page.waitForSelector(".ls-title:has-text('Talk to Acme')")
        yield page.waitForSelector(".ls-launcher:has-text('Help')")
        style = yield page.evaluate(
            """() => ({
              header: getComputedStyle(document.querySelector('.ls-header')).backgroundColor,
              title: getComputedStyle(document.querySelector('.ls-title')).fontSize,
              notice: getComputedStyle(document.querySelector('.ls-notice')).color,
              launcher: getComputedStyle(document.querySelector('.ls-launcher')).backgroundColor,
            })"""
        )
        self.assertEqual(
            style,
            {
                "header": "rgb(10, 125, 50)",
                "title": "30px",
                "notice": "rgb(1, 2, 3)",
                "launcher": "rgb(10, 125, 50)",
            },
        )
        yield page.screenshot("look")
        page.assertNoErrors()

    @defer.inlineCallbacks
    def test_invitation(self) -> Any:
        """An agent's invitation opens the widget; accepting starts a chat with them."""
        site = yield self.site(extra=' data-lang="pl"', lang="pl")
        op = yield self.operator(nick="anna")
        agent, achan = yield self.connectOperator(op)
        browser = yield Browser.launch(self)
        page = yield browser.newPage(viewport={"width": 900, "height": 700})
        yield page.goto(site)
        yield page.waitForSelector(".ls-launcher:has-text('Czat')")
        seen = yield achan.next(
            lambda m: m.get("type") == "visitor.update" and m["visitor"]["connected"]
        )
        yield agent.inviteVisitor(seen["visitor"]["id"], "Czy mogę pomóc?")
        yield page.waitForSelector(".ls-invitation:has-text('Anna zaprasza do rozmowy')")
        yield page.screenshot("invitation")
        yield page.click(".ls-invitation .ls-accept")
        offered = yield achan.next(isType("chat.offered"))
        yield agent.accept(offered["chatId"])
        yield page.waitForSelector(f"{LOG} .ls-event")
        page.assertNoErrors()

    @defer.inlineCallbacks
    def test_signedIdentity(self) -> Any:
        """
        The site's server signs the visitor's identity for the visitor id
        (which it reads from the loader's first-party cookie; here the test
        takes it from the agent's list) and puts it on the tag
        (data-identity, data-signature): the next page view carries it and
        the agent sees the visitor named and verified.  A forged one is not
        trusted.
        """
        import json

        from cryptography.hazmat.primitives.asymmetric import ed25519

        from livechat.identity import IdentityKeyFile, IdentityVerifier, sign

        key = ed25519.Ed25519PrivateKey.generate()
        self.front.identity = IdentityKeyFile(None, self.clock)
        self.front.identity.verifier = IdentityVerifier(key.public_key(), self.clock)
        site = yield self.site()
        pages = self.siteResource
        op = yield self.operator(nick="anna")
        agent, achan = yield self.connectOperator(op)
        browser = yield Browser.launch(self)
        page = yield browser.newPage()
        yield page.goto(site)
        seen = yield achan.next(
            lambda m: m.get("type") == "visitor.update" and m["visitor"]["connected"]
        )
        visitorId = seen["visitor"]["id"]
        self.assertFalse(seen["visitor"]["identity"]["verified"])
        claimed = {
            "name": "Vera Nowak",
            "email": "vera@example.com",
            "customer_id": "C-1001",
            "expires": int(self.clock.seconds()) + 300,
        }

        def tag(signer: Any) -> str:
            signature = sign(signer, dict(claimed, licence=100, visitor=visitorId))
            quoted = json.dumps(claimed).replace("&", "&amp;").replace("'", "&#39;")
            return f" data-identity='{quoted}' data-signature=\"{signature}\""

        pages.extra = tag(ed25519.Ed25519PrivateKey.generate())
        yield page.goto(site + "page2")
        forged = yield achan.next(
            lambda m: (
                m.get("type") == "visitor.update" and m["visitor"].get("url", "").endswith("page2")
            )
        )
        self.assertFalse(forged["visitor"]["identity"]["verified"])
        self.assertNotEqual(forged["visitor"]["identity"]["name"], "Vera Nowak")
        pages.extra = tag(key)
        yield page.goto(site + "page3")
        named = yield achan.next(
            lambda m: m.get("type") == "visitor.update" and m["visitor"]["identity"]["verified"]
        )
        identity = named["visitor"]["identity"]
        self.assertEqual(
            (named["visitor"]["id"], identity["name"], identity["customerId"]),
            (visitorId, "Vera Nowak", "C-1001"),
        )
        page.assertNoErrors()

    @defer.inlineCallbacks
    def test_closedLeaveMessageByMail(self) -> Any:
        """
        With the office closed the widget says so and offers a form; the
        message left reaches a real SMTP server (twisted.mail on port 0),
        and an operator who connects later is given it.
        """
        smtp = SMTPReceiver(self)
        mailer = Mailer(
            MailSettings(host="127.0.0.1", port=smtp.portNumber, sender="chat@example.com"),
            reactor,
            loadTemplates(),
        )
        reception = Reception(self.core, self.cache, mailer)
        self.front.reception = reception
        self.front.calls = VisitorCalls(self.core, reception, self.front.limits)
        self.addCleanup(mailer.whenIdle)
        site = yield self.site()
        yield self.operator(nick="boss", is_admin=True)
        yield self.setting(100, "office.switch", "closed")
        browser = yield Browser.launch(self)
        page = yield browser.newPage(viewport={"width": 900, "height": 700})
        yield page.goto(site)
        yield page.click(".ls-launcher")
        yield page.waitForSelector(".ls-notice:has-text('We are closed now')")
        self.assertFalse((yield page.isVisible(".ls-prechat")))
        yield page.fill(".ls-leave input[name=name]", "Vera")
        yield page.fill(".ls-leave input[name=email]", "vera@example.com")
        yield page.fill(".ls-leave textarea", "Please call me tomorrow")
        yield page.screenshot("closed")
        yield page.click(".ls-leave .ls-leave-send")
        yield page.waitForSelector(".ls-notice:has-text('Thank you')")
        mail = yield smtp.next()
        self.assertEqual(mail.recipients, ["boss@example.com"])
        self.assertEqual(mail.message["Reply-To"], "vera@example.com")
        self.assertIn("Please call me tomorrow", mail.message.get_content())
        self.assertIn("you were closed", mail.message["Subject"])
        op = yield self.operator(nick="anna")
        _, achan = yield self.connectOperator(op)
        pending = yield achan.next(isType("offline.messages"))
        self.assertEqual(pending["messages"][0]["message"], "Please call me tomorrow")
        page.assertNoErrors()

    @defer.inlineCallbacks
    def test_otherOriginGetsNothing(self) -> Any:
        """A site not on the allow-list gets no button and no connection; agents see nobody."""
        site = yield self.site(allowed=False)
        op = yield self.operator()
        _, achan = yield self.connectOperator(op)
        browser = yield Browser.launch(self)
        page = yield browser.newPage()
        yield page.goto(site)
        yield page.waitForConsole("livechat: not here")
        self.assertEqual((yield page.count(".ls-LiveSupportRoot")), 0)
        self.assertEqual(achan.ofType("visitor.update"), [])
        self.assertEqual(self.front.channels, set())

    @defer.inlineCallbacks
    def test_sseWhenWebSocketsBlocked(self) -> Any:
        """
        Behind a proxy that refuses WebSockets the widget falls back to SSE
        + POST by itself: the chat works both ways and survives a reload.
        """
        self.blockWebSocket = True
        site = yield self.site()
        op = yield self.operator(nick="anna")
        agent, achan = yield self.connectOperator(op)
        browser = yield Browser.launch(self)
        page = yield browser.newPage(viewport={"width": 900, "height": 700})
        yield page.goto(site)
        yield page.click(".ls-launcher")
        yield page.fill(".ls-prechat textarea", "Hello over SSE")
        yield page.click(".ls-prechat .ls-start")
        offered = yield achan.next(isType("chat.offered"))
        chatId = offered["chatId"]
        yield agent.accept(chatId)
        yield agent.send(chatId, "Reply over SSE")
        yield page.waitForSelector(f"{LOG} .ls-message:has-text('Reply over SSE')")
        self.assertEqual(len(self.front.channels), 1)
        [stream] = list(self.front.channels)
        self.assertEqual(type(stream).__name__, "EventStream")
        yield page.fill(".ls-compose textarea", "And back")
        yield page.press(".ls-compose textarea", "Enter")
        yield achan.next(isEvent("ContentEvent", chatId, message="And back"))
        yield page.reload()
        yield page.waitForSelector(f"{LOG} .ls-message:has-text('And back')")
        yield agent.send(chatId, "Still here")
        yield page.waitForSelector(f"{LOG} .ls-message:has-text('Still here')")
        self.assertEqual(
            (yield self.messages(page)),
            ["Hello over SSE", "Reply over SSE", "And back", "Still here"],
        )
        yield page.screenshot("sse")
        errors = [e for e in page.errors]
        self.assertEqual(errors, [])


class BrowserWidgetTests(BrowserWidgetMixin, unittest.TestCase):
    dialect = "sqlite"
