"""
The control panel in a real browser (headless Chromium, tests.support.browser)
at 1366x768, against a real node: an administrator logs in (a wrong password
and a non-administrator are refused), creates an operator who then logs in
to the web agent; a write without the CSRF token is refused; a new widget
colour shows in the live preview before it is saved; reports draw their
charts; a transcript has its print view.  Screenshots go to the harness's
screenshot directory.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests.support.browser import Browser, waitUntil
from tests.support.http import request
from tests.test_api import SERVER_KEY
from tests.test_panel_api import insertChat_txn
from tests.test_service import NodeMixin

VIEWPORT = {"width": 1366, "height": 768}


LICENCE = 630001


class PanelBrowserTests(NodeMixin, unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        extra = f"SERVER_API_KEY {SERVER_KEY}\nDEMO_LICENCE 0\nAPI_RATE 1000\nAPI_BURST 1000\n"
        yield self.startNode(self.nodeConfig(extra))
        self.panel = self.node.getServiceNamed("panel").url
        code, _, made = yield request(
            "POST",
            self.url("api/v1/licences"),
            json.dumps(
                {
                    "number": LICENCE,
                    "name": "Shop",
                    "admin": {"nick": "anna", "email": "a@x.ex", "password": "anna-password"},
                }
            ).encode(),
            {"Authorization": f"Bearer {SERVER_KEY}", "Content-Type": "application/json"},
        )
        self.assertEqual(code, 201, made)

    @defer.inlineCallbacks
    def loggedIn(
        self, browser: Browser, nick: str = "anna", password: str = "anna-password"
    ) -> Any:
        page = yield browser.newPage(viewport=VIEWPORT)
        yield page.goto(self.panel)
        yield page.waitForSelector("#login-form")
        yield page.fill("#login-licence", str(LICENCE))
        yield page.fill("#login-nick", nick)
        yield page.fill("#login-password", password)
        yield page.click("#login-form button[type=submit]")
        return page

    @defer.inlineCallbacks
    def test_operatorMadeInThePanelLogsIn(self) -> Any:
        """
        A wrong password is refused; anna logs in, creates eve, who logs in
        to the web agent (not to the panel: she is no administrator); a
        fetch without the CSRF token is refused and creates nobody.
        """
        browser = yield Browser.launch(self)
        page = yield self.loggedIn(browser, password="wrong-password")
        yield page.waitForSelector("#login-error:has-text('password')")
        yield page.fill("#login-password", "anna-password")
        yield page.click("#login-form button[type=submit]")
        yield page.waitForSelector("#main[data-section=operators] tr[data-nick=anna]")
        self.assertIn("licence 630001", (yield page.textContent("#who")))
        yield page.screenshot("operators")

        yield page.fill("#new-operator input[name=nick]", "eve")
        yield page.fill("#new-operator input[name=email]", "eve@x.ex")
        yield page.fill("#new-operator input[name=firstName]", "Eve")
        yield page.fill("#new-operator input[name=maxChats]", "4")
        yield page.click("#new-operator button[type=submit]")
        yield page.waitForSelector("tr[data-nick=eve]")
        yield page.waitForSelector("#op-result .secret")
        password = yield page.textContent("#secret-value")
        self.assertGreaterEqual(len(password or ""), 12)
        yield page.screenshot("operator-created")
        eve = yield self.node.parts.store.getOperator(LICENCE, "eve")
        self.assertEqual((eve.first_name, eve.max_chats, eve.is_admin), ("Eve", 4, False))

        status = yield page.evaluate(
            """fetch("/api/v1/operators", {method: "POST", credentials: "same-origin",
                 headers: {"Content-Type": "application/json"},
                 body: JSON.stringify({nick: "mallory", email: "m@x.ex"})}).then(r => r.status)"""
        )
        self.assertEqual(status, 403)
        self.assertIsNone((yield self.node.parts.store.getOperator(LICENCE, "mallory")))

        agent = yield browser.newPage(viewport=VIEWPORT)
        yield agent.goto(self.url("agent/"))
        yield agent.waitForSelector("#login-form")
        yield agent.fill("#login-licence", str(LICENCE))
        yield agent.fill("#login-nick", "eve")
        yield agent.fill("#login-password", password)
        yield agent.click("#login-submit")
        yield agent.waitForSelector("#app")
        yield agent.waitForSelector("#conn:text-is('Connected')")
        yield agent.screenshot("eve-in-the-web-agent")

        other = yield self.loggedIn(browser, "eve", password)
        yield other.waitForSelector("#login-error:has-text('administrators')")
        page.assertNoErrors(console=False)

    @defer.inlineCallbacks
    def test_widgetColourInThePreview(self) -> Any:
        """
        A new main colour shows in the preview's header at once, while the
        stored look keeps the old one until Save.
        """
        browser = yield Browser.launch(self)
        page = yield self.loggedIn(browser)
        yield page.waitForSelector("#main[data-section=operators]")
        yield page.click("#nav a[href='#widget']")
        yield page.waitForSelector("#preview")
        header = "document.querySelector('#preview').contentDocument.querySelector('.ls-header')"
        yield waitUntil(
            page, f"{header} && getComputedStyle({header}).backgroundColor == 'rgb(31, 111, 235)'"
        )
        yield page.fill("#widget-color", "#d92d20")
        yield waitUntil(
            page, f"{header} && getComputedStyle({header}).backgroundColor == 'rgb(217, 45, 32)'"
        )
        focused = yield page.evaluate("document.activeElement.id")
        self.assertEqual(focused, "widget-color")
        stored = yield self.node.parts.store.forLicence(LICENCE).getSetting("widget.color")
        self.assertIsNone(stored)
        yield page.screenshot("widget-preview")
        yield page.click("#widget-form button[type=submit]")
        yield page.waitForSelector("#status:has-text('saved')")
        stored = yield self.node.parts.store.forLicence(LICENCE).getSetting("widget.color")
        self.assertEqual(stored, "#d92d20")
        page.assertNoErrors(console=False)

    @defer.inlineCallbacks
    def test_reportsAndPrintView(self) -> Any:
        """
        With chats of today, the reports page draws bars in its charts; a
        found transcript opens, and its print view shows the conversation
        without the panel around it.
        """
        now = int(self.node.parts.reactor.seconds() * 1000)
        anna = yield self.node.parts.store.getOperator(LICENCE, "anna")
        run = self.node.parts.store.db.runLicence
        chatId = yield run(
            LICENCE,
            "chat",
            insertChat_txn,
            now - 600_000,
            operator=anna.id,
            accepted=now - 590_000,
            closed=now - 60_000,
            replies=((now - 580_000, f"op:{anna.id}"),),
        )
        yield run(LICENCE, "chat", insertChat_txn, now - 300_000, closed=now - 200_000)
        browser = yield Browser.launch(self)
        page = yield self.loggedIn(browser)
        yield page.waitForSelector("#main[data-section=operators]")
        yield page.click("#nav a[href='#reports']")
        yield page.waitForSelector("figure.chart svg rect.bar.missed")
        bars = yield page.count("figure.chart svg rect.bar")
        self.assertGreaterEqual(bars, 4)
        charts = yield page.count("figure.chart svg[role=img]")
        self.assertEqual(charts, 4)
        yield page.screenshot("reports")

        yield page.click("#nav a[href='#transcripts']")
        yield page.waitForSelector(f"a[href='#transcript/{chatId}']")
        yield page.click(f"a[href='#transcript/{chatId}']")
        yield page.waitForSelector(f"#main h1:text-is('Chat {chatId}')")
        yield page.click(f"a[href='#print/{chatId}']")
        yield page.waitForSelector("#print .messages .msg")
        self.assertFalse((yield page.isVisible("#app")))
        yield page.run(lambda p: p.emulate_media(media="print"))
        yield page.screenshot("print-view")
        page.assertNoErrors(console=False)

    @defer.inlineCallbacks
    def test_groupRenamedAndDeleted(self) -> Any:
        """
        A group is renamed from its card; deleting it is refused with the
        server's reason while a chat waits in its queue, and done once the
        chat has ended.
        """
        from livechat.model import ChatKind, ChatStatus

        store = self.node.parts.store.forLicence(LICENCE)
        sales = yield store.createGroup("Sales")
        chat, _, _ = yield store.createChat(
            kind=ChatKind.VISITOR, status=ChatStatus.QUEUED, visitor_id="v-q", group_id=sales.id
        )
        browser = yield Browser.launch(self)
        page = yield self.loggedIn(browser)
        yield page.waitForSelector("#main[data-section=operators]")
        yield page.click("#nav a[href='#groups']")
        card = f"form[data-group='{sales.id}']"
        yield page.waitForSelector(card)
        yield page.fill(f"{card} input[name=name]", "Shop")
        yield page.click(f"{card} button[type=submit]")
        yield page.waitForSelector("#status:has-text('Group Shop saved')")
        self.assertEqual([g.name for g in (yield store.listGroups())], ["Shop"])

        yield page.evaluate("window.confirm = () => true")
        yield page.click(f"{card} button[name=delete]")
        yield page.waitForSelector("#status:has-text('waiting')")
        self.assertTrue((yield store.groupExists(sales.id)))
        yield store.appendEvents(chat.id, [], update={"status": ChatStatus.CLOSED})
        yield page.click(f"{card} button[name=delete]")
        yield page.waitForSelector("#status:has-text('Group Shop deleted')")
        yield page.waitForSelector("#main[data-section=groups] p.muted:has-text('No groups yet')")
        self.assertFalse((yield store.groupExists(sales.id)))
        page.assertNoErrors(console=False)

    @defer.inlineCallbacks
    def test_eventLogFiltered(self) -> Any:
        """The event log's filter keeps one event's rows, then one chat's."""
        store = self.node.parts.store.forLicence(LICENCE)
        for name, chat in (("CHAT_STARTED", 7), ("CHAT_CLOSED", 7), ("CHAT_STARTED", 8)):
            yield store.logEvent(name, {}, chat)
        browser = yield Browser.launch(self)
        page = yield self.loggedIn(browser)
        yield page.waitForSelector("#main[data-section=operators]")
        yield page.click("#nav a[href='#events']")
        rows = "#main[data-section=events] tbody tr"
        yield waitUntil(page, f"document.querySelectorAll('{rows}').length == 3")
        yield page.fill("#events-filter input[name=event]", "chat_started")
        yield page.click("#events-filter button[type=submit]")
        yield waitUntil(page, f"document.querySelectorAll('{rows}').length == 2")
        events = yield page.evaluate(
            f"[...document.querySelectorAll('{rows} td:nth-child(3)')].map(td => td.textContent)"
        )
        self.assertEqual(events, ["CHAT_STARTED", "CHAT_STARTED"])
        yield page.fill("#events-filter input[name=chat]", "8")
        yield page.click("#events-filter button[type=submit]")
        yield waitUntil(page, f"document.querySelectorAll('{rows}').length == 1")
        chats = yield page.evaluate(
            f"[...document.querySelectorAll('{rows} td:nth-child(4)')].map(td => td.textContent)"
        )
        self.assertEqual(chats, ["8"])
        self.assertEqual((yield page.evaluate("location.hash")), "#events/filter/CHAT_STARTED/8")
        page.assertNoErrors(console=False)

    @defer.inlineCallbacks
    def test_everySection(self) -> Any:
        """
        Every section opens from the menu with its heading and no script
        error; office hours, an allowed site, a webhook and an API key are
        saved through the forms (the key's secret is shown once).
        """
        browser = yield Browser.launch(self)
        page = yield self.loggedIn(browser)
        yield page.waitForSelector("#main[data-section=operators]")
        headings = {
            "groups": "Groups",
            "office": "Office hours",
            "widget": "Widget look",
            "website": "Website and embed code",
            "webhooks": "Webhooks",
            "keys": "API keys",
            "transcripts": "Transcripts",
            "events": "Event log",
            "reports": "Reports",
            "operators": "Operators",
        }
        for section, heading in headings.items():
            yield page.click(f"#nav a[href='#{section}']")
            yield page.waitForSelector(f"#main[data-section={section}] h1:text-is('{heading}')")
            current = yield page.getAttribute(f"#nav a[href='#{section}']", "aria-current")
            self.assertEqual(current, "page")
            yield page.screenshot(section)

        yield page.click("#nav a[href='#office']")
        yield page.waitForSelector("#office-form")
        yield page.click("#office-form input[name=switch][value=closed]")
        yield page.click("#use-hours")
        yield page.fill("#day-mon", "09:00-17:00, 18:00-20:00")
        yield page.click("#office-form button[type=submit]")
        yield page.waitForSelector("#office-status:has-text('Closed now')")
        office = self.node.parts.store.forLicence(LICENCE)
        self.assertEqual((yield office.getSetting("office.switch")), "closed")
        hours = json.loads((yield office.getSetting("office.hours")))
        self.assertEqual(hours["week"]["mon"], ["09:00-17:00", "18:00-20:00"])

        yield page.click("#nav a[href='#website']")
        yield page.waitForSelector("#origins")
        yield page.fill("#origins", "https://WWW.shop.example\nself")
        yield page.click("#main form button[type=submit]")
        yield page.waitForSelector("#status:has-text('saved')")
        # The form is drawn again from the server's answer (normalised).
        yield waitUntil(
            page, "document.querySelector('#origins').value === 'https://www.shop.example\\nself'"
        )
        self.assertEqual((yield page.inputValue("#origins")), "https://www.shop.example\nself")
        snippet = yield page.inputValue("#snippet")
        self.assertIn(f'data-licence="{LICENCE}"', snippet)
        self.assertIn(self.url("livechat.js"), snippet)

        yield page.click("#nav a[href='#keys']")
        yield page.fill("#key-name", "CRM")
        yield page.click("#main form.card button[type=submit]")
        yield page.waitForSelector("#key-result .secret")
        key = yield page.textContent("#secret-value")
        code, _, body = yield request(
            "GET", self.url("api/v1/licence"), None, {"Authorization": f"Bearer {key}"}
        )
        self.assertEqual((code, json.loads(body)["number"]), (200, LICENCE))
        yield page.screenshot("key-shown-once")
        yield page.reload()
        yield page.waitForSelector("#main[data-section=keys] td:text-is('CRM')")
        self.assertEqual((yield page.count("#key-result .secret")), 0)
        page.assertNoErrors(console=False)
