"""
The web agent end to end in headless Chromium (tests.support.browser):
an agent logs in (a wrong password first), goes online, sees a visitor
whom a second browser context brings to the company's site, accepts the
visitor's chat, and they exchange messages with typing and read receipts;
the agent transfers the chat to a colleague (a third context), who invites
the first back (a conference) and closes the chat; a request without the
CSRF token is refused; canned responses are kept and inserted.
Screenshots go to the harness's screenshot directory.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial import unittest
from twisted.web import server

from tests.support.browser import Browser, serveSite, waitUntil
from tests.test_agent_ws import AgentMixin
from tests.test_web_browser import SitePages

VIEWPORT = {"width": 1366, "height": 768}
LOG = ".ls-panel .ls-log"


class AgentBrowserTests(AgentMixin, unittest.TestCase):
    timeout = 240

    @defer.inlineCallbacks
    def site(self) -> Any:
        """The server (web + agent) on one port, the company's site on another."""
        self.serveAll()
        site = serveSite(self, server.Site(SitePages(self.url)))
        yield self.allow(100, site.rstrip("/"))
        return site

    @defer.inlineCallbacks
    def loginPage(self, browser: Browser, nick: str, password: str | None = None) -> Any:
        page = yield browser.newPage(viewport=VIEWPORT)
        yield page.goto(self.url + "agent/")
        yield page.waitForSelector("#login-form")
        yield page.fill("#login-licence", "100")
        yield page.fill("#login-nick", nick)
        yield page.fill("#login-password", password or f"{nick}-pw")
        yield page.click("#login-submit")
        if password is None:
            yield page.waitForSelector("#app")
            yield page.waitForSelector("#conn:text-is('Connected')")
        return page

    def select(self, page: Any, selector: str, value: str) -> defer.Deferred[Any]:
        return page.run(lambda p: p.select_option(selector, value))

    @defer.inlineCallbacks
    def test_agentDay(self) -> Any:
        """The whole job of an agent, in a browser, with a visitor and a colleague."""
        site = yield self.site()
        yield self.agentOperator("anna", is_admin=True)
        bobOp = yield self.agentOperator("bob")
        browser = yield Browser.launch(self)

        # A wrong password is refused, with a message, and no app.
        anna = yield self.loginPage(browser, "anna", "wrong")
        yield anna.waitForSelector("#login-error:has-text('wrong licence, nick or password')")
        self.assertFalse((yield anna.isVisible("#app")))
        yield anna.screenshot("wrong password")
        yield anna.fill("#login-password", "anna-pw")
        yield anna.click("#login-submit")
        yield anna.waitForSelector("#conn:text-is('Connected')")
        self.assertEqual((yield anna.inputValue("#status")), "online")
        yield self.select(anna, "#status", "away")
        yield waitUntil(anna, "window.__agent.status === 1")
        yield self.select(anna, "#status", "online")
        yield waitUntil(anna, "window.__agent.status === 0")

        # A canned response of Anna's own.
        yield anna.fill("#canned-shortcut", "parcel")
        yield anna.fill("#canned-text", "Your parcel is on its way: https://track.example/4711")
        yield anna.click("#canned-form button[type=submit]")
        yield anna.waitForSelector("#canned .canned-item:has-text('/parcel')")

        # The visitor arrives on the site (a second context: own cookies).
        visitor = yield browser.newPage(viewport={"width": 1000, "height": 760})
        yield visitor.goto(site + "page1")
        yield visitor.waitForSelector(".ls-LiveSupportRoot .ls-launcher")
        yield anna.waitForSelector("#visitors .visitor:has-text('Page 1')")
        text = yield anna.innerText("#visitors .visitor")
        self.assertIn("new", text)
        self.assertIn("1 page", text)
        yield anna.screenshot("visitor seen")

        # The visitor asks; Anna is offered the chat and accepts it.
        yield visitor.click(".ls-launcher")
        yield visitor.waitForSelector(".ls-panel .ls-prechat")
        yield visitor.fill(".ls-prechat input[name=name]", "Vera")
        yield visitor.fill(".ls-prechat textarea", "Hello, where is my parcel?")
        yield visitor.click(".ls-prechat .ls-start")
        yield anna.waitForSelector("#offers .offer:has-text('Vera')")
        yield anna.screenshot("offered")
        yield anna.click("#offers .offer .accept")
        yield anna.waitForSelector(".chat:not([hidden]) .msg.theirs:has-text('where is my parcel')")
        yield visitor.waitForSelector(f"{LOG} .ls-event:has-text('Anna joined')")
        chatId = yield anna.evaluate("window.__agent.activeChat")
        compose = f"#compose-{chatId}"

        # Typing shows on the visitor's side; the canned response goes in with Tab.
        yield anna.click(compose)
        yield anna.run(lambda p: p.keyboard.type("Hi Vera! /parcel"))
        yield visitor.waitForSelector(".ls-typing:has-text('Anna is typing')")
        yield anna.press(compose, "Tab")
        value = yield anna.inputValue(compose)
        self.assertEqual(value, "Hi Vera! Your parcel is on its way: https://track.example/4711")
        yield anna.press(compose, "Enter")
        yield visitor.waitForSelector(f"{LOG} .ls-message:has-text('on its way')")
        href = yield visitor.getAttribute(f"{LOG} a.ls-link", "href")
        self.assertEqual(href, "https://track.example/4711")
        # The visitor has the chat open: Anna sees her message read.
        yield anna.waitForSelector(f"#chat-{chatId} .msg.mine .read")

        # The visitor types and writes (markup stays text); Anna reads it at once.
        yield visitor.fill(".ls-compose textarea", "Thanks <b>a lot</b>")
        yield anna.waitForSelector(f"#chat-{chatId} .typing:has-text('Vera is typing')")
        yield visitor.press(".ls-compose textarea", "Enter")
        yield anna.waitForSelector(f"#chat-{chatId} .msg.theirs:has-text('Thanks <b>a lot</b>')")
        self.assertEqual((yield anna.count(f"#chat-{chatId} .msg b")), 0)
        yield visitor.waitForSelector(f"{LOG} .ls-mine .ls-read")
        yield anna.screenshot("chatting")
        yield visitor.screenshot("visitor chatting")

        # A request without the CSRF token is refused.
        status = yield anna.evaluate(
            "fetch('/agent/api/canned', {method: 'POST', headers: {'Content-Type': "
            "'application/json'}, body: JSON.stringify({shortcut: 'x', text: 'y'})})"
            ".then(r => r.status)"
        )
        self.assertEqual(status, 403)

        # Bob logs in (a third context); Anna transfers the chat to him.
        bob = yield self.loginPage(browser, "bob")
        yield anna.waitForSelector("#operators .operator:has-text('Bob · online')")
        yield self.select(anna, f"#chat-{chatId} .transfer-to", f"op:{bobOp.id}")
        yield anna.click(f"#chat-{chatId} .transfer")
        yield bob.waitForSelector(f"#chat-{chatId} .msg:has-text('Thanks <b>a lot</b>')")
        yield anna.waitForSelector(f"#chat-{chatId} .ended-note:has-text('Transferred')")
        yield visitor.waitForSelector(f"{LOG} .ls-event:has-text('Bob joined')")
        yield bob.fill(f"#compose-{chatId}", "Bob here, I will take care of it")
        yield bob.press(f"#compose-{chatId}", "Enter")
        yield visitor.waitForSelector(f"{LOG} .ls-message:has-text('Bob here')")
        yield bob.screenshot("transferred")

        # Bob invites Anna back (a conference); all three talk.
        annaId = yield anna.evaluate("window.__agent.session.operator.id")
        yield self.select(bob, f"#chat-{chatId} .invite-who", f"op:{annaId}")
        yield bob.click(f"#chat-{chatId} .invite-colleague")
        yield anna.waitForSelector("#offers .conference:has-text('Bob invites you')")
        yield anna.click("#offers .conference .join")
        yield anna.waitForSelector(f"#chat-{chatId} .compose:not([hidden])")
        yield anna.fill(f"#compose-{chatId}", "Anna back in the conference")
        yield anna.press(f"#compose-{chatId}", "Enter")
        yield visitor.waitForSelector(f"{LOG} .ls-message:has-text('Anna back in the conference')")
        yield bob.waitForSelector(f"#chat-{chatId} .msg:has-text('Anna back in the conference')")
        yield anna.screenshot("conference")

        # Bob closes the chat: the visitor sees it ended, the agents too.
        yield bob.click(f"#chat-{chatId} .close-chat")
        yield visitor.waitForSelector(".ls-ended")
        yield bob.waitForSelector(f"#chat-{chatId} .ended-note:has-text('closed')")
        yield anna.waitForSelector(f"#chat-{chatId} .ended-note:has-text('closed')")

        # The transcript is found by a search.
        yield anna.fill("#search-text", "where is my parcel")
        yield anna.click("#search-form button")
        yield anna.waitForSelector(f"#search-results [data-chat='{chatId}']")
        yield anna.click(f"#search-results [data-chat='{chatId}'] button")
        yield anna.waitForSelector("#transcript .msg:has-text('Bob here')")
        yield bob.screenshot("closed")
        yield anna.screenshot("search")

        # Log out everywhere: the app goes back to the login form.
        yield anna.click("#logout-all")
        yield anna.waitForSelector("#login-form")
        for page in (anna, bob):
            page.assertNoErrors(console=False)
        visitor.assertNoErrors()

    @defer.inlineCallbacks
    def test_reconnectResumes(self) -> Any:
        """
        The agent's socket drops (the server cuts it); the app reconnects by
        itself and the messages sent meanwhile arrive once, in order.
        """
        site = yield self.site()
        yield self.agentOperator("anna")
        browser = yield Browser.launch(self)
        anna = yield self.loginPage(browser, "anna")
        visitor = yield browser.newPage()
        yield visitor.goto(site + "page1")
        yield visitor.waitForSelector(".ls-LiveSupportRoot .ls-launcher")
        yield visitor.click(".ls-launcher")
        yield visitor.fill(".ls-prechat textarea", "first")
        yield visitor.click(".ls-prechat .ls-start")
        yield anna.waitForSelector("#offers .offer .accept")
        yield anna.click("#offers .offer .accept")
        yield anna.waitForSelector(".msg.theirs:has-text('first')")
        chatId = yield anna.evaluate("window.__agent.activeChat")
        for channel in list(self.agentFront.channels):
            channel.transport.abortConnection()
        yield anna.waitForSelector("#conn:text-is('Reconnecting…')")
        for text in ("second", "third"):
            yield visitor.fill(".ls-compose textarea", text)
            yield visitor.press(".ls-compose textarea", "Enter")
            yield visitor.waitForSelector(f"{LOG} .ls-message:has-text('{text}')")
        yield anna.waitForSelector("#conn:text-is('Connected')", timeout=20)
        yield anna.waitForSelector(f"#chat-{chatId} .msg.theirs:has-text('third')")
        texts = yield anna.allTextContents(f"#chat-{chatId} .msg.theirs .text")
        self.assertEqual(texts, ["first", "second", "third"])
        yield anna.screenshot("resumed")
        anna.assertNoErrors(console=False)
