"""
The headless-browser harness (L{tests.support.browser}) against a real
twisted.web C{Site} on 127.0.0.1, port 0, in this process, on trial's
reactor: the browser must never block the server it is testing.
"""

from __future__ import annotations

import html
import os
import struct
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from tests.support import browser as harness
from tests.support import services
from tests.support.browser import Browser, serveSite

HEAD = '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">'

FRONT = (
    HEAD
    + """<title>front</title>
<button id="go">Go</button>
<p id="status">idle</p>
<script>
document.getElementById("go").addEventListener("click", async () => {
  const response = await fetch("/ping");
  const status = document.getElementById("status");
  status.textContent = await response.text();
  status.classList.add("done");
});
</script>"""
)

BROKEN = (
    HEAD
    + """<title>broken</title>
<button id="boom">Boom</button>
<script>
console.error("widget: cannot start");
document.getElementById("boom").addEventListener("click", () => { null.explode(); });
notDefinedAnywhere();
</script>"""
)

MAILBOX = (
    HEAD
    + """<title>mailbox</title>
<p id="log">waiting</p>
<button id="send">Send</button>
<script>
fetch("/wait").then(r => r.text()).then(text => {
  const log = document.getElementById("log");
  log.textContent = text;
  log.classList.add("done");
});
document.getElementById("send").addEventListener("click", () => {
  fetch("/send", {method: "POST", body: "hello from the other visitor"});
});
</script>"""
)


class Page(Resource):
    isLeaf = True

    def __init__(self, body: str, cookie: bytes | None = None) -> None:
        super().__init__()
        self.body = body.encode()
        self.cookie = cookie

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        if self.cookie is not None:
            request.addCookie(b"visitor", self.cookie, path=b"/", httpOnly=True)
        return self.body


class Text(Resource):
    isLeaf = True

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text.encode()

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return self.text


class WhoAmI(Resource):
    """Shows the Cookie header the browser sent."""

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        cookie = (request.getHeader(b"cookie") or b"").decode()
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return (HEAD + f'<p id="cookies">{html.escape(cookie)}</p>').encode()


class Mailbox:
    """GET /wait holds the request until POST /send brings a message (a long poll)."""

    def __init__(self) -> None:
        self.waiting: list[Any] = []
        self.messages: list[bytes] = []

    def deliver(self, request: Any, message: bytes) -> None:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.write(message)
        request.finish()


class Wait(Resource):
    isLeaf = True

    def __init__(self, mailbox: Mailbox) -> None:
        super().__init__()
        self.mailbox = mailbox

    def render_GET(self, request: Any) -> Any:
        if self.mailbox.messages:
            self.mailbox.deliver(request, self.mailbox.messages.pop(0))
            return NOT_DONE_YET
        self.mailbox.waiting.append(request)
        request.notifyFinish().addErrback(lambda _: self.mailbox.waiting.remove(request))
        return NOT_DONE_YET


class Send(Resource):
    isLeaf = True

    def __init__(self, mailbox: Mailbox) -> None:
        super().__init__()
        self.mailbox = mailbox

    def render_POST(self, request: Any) -> bytes:
        message = request.content.read()
        if self.mailbox.waiting:
            self.mailbox.deliver(self.mailbox.waiting.pop(0), message)
        else:
            self.mailbox.messages.append(message)
        return b"sent"


def makeSite() -> Site:
    root = Resource()
    mailbox = Mailbox()
    root.putChild(b"", Page(FRONT))
    root.putChild(b"ping", Text("pong from twisted"))
    root.putChild(b"set-cookie", Page(HEAD + "<p id='done'>cookie set</p>", cookie=b"alice"))
    root.putChild(b"whoami", WhoAmI())
    root.putChild(b"broken", Page(BROKEN))
    root.putChild(b"mailbox", Page(MAILBOX))
    root.putChild(b"wait", Wait(mailbox))
    root.putChild(b"send", Send(mailbox))
    return Site(root)


def restoreEnv(name: str, value: str | None) -> None:
    """Put environment variable C{name} back to C{value} (unset if L{None})."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def processAlive(pid: int) -> bool:
    """Whether C{pid} is a live process (a zombie, waiting to be reaped, is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


class BrowserHarnessTests(unittest.TestCase):
    def setUp(self) -> None:
        harness.skipUnlessBrowser()
        self.url = serveSite(self, makeSite())

    @defer.inlineCallbacks
    def test_clickChangesText(self) -> Any:
        """
        A click runs the page's script, which fetches from the server on this
        very reactor; waitForSelector sees the result and textContent reads
        it: the browser does not block the server.  The page has no errors.
        """
        browser = yield Browser.launch(self)
        page = yield browser.newPage()
        status = yield page.goto(self.url)
        self.assertEqual(status, 200)
        self.assertEqual((yield page.textContent("#status")), "idle")
        yield page.click("#go")
        yield page.waitForSelector("#status.done")
        self.assertEqual((yield page.textContent("#status")), "pong from twisted")
        self.assertEqual((yield page.title()), "front")
        self.assertEqual((yield page.evaluate("1 + document.querySelectorAll('p').length")), 2)
        page.assertNoErrors()

    @defer.inlineCallbacks
    def test_contextsHaveSeparateCookies(self) -> Any:
        """
        Two contexts of one browser are two visitors: a cookie set by the
        server in one is sent back by that one only, and only that one's
        cookie jar holds it.
        """
        browser = yield Browser.launch(self)
        alice = yield browser.newPage()
        bob = yield browser.newPage()
        yield alice.goto(self.url + "set-cookie")
        yield alice.goto(self.url + "whoami")
        self.assertEqual((yield alice.textContent("#cookies")), "visitor=alice")
        yield bob.goto(self.url + "whoami")
        self.assertEqual((yield bob.textContent("#cookies")), "")
        aliceCookies = yield alice.context.cookies()
        self.assertEqual([(c["name"], c["value"]) for c in aliceCookies], [("visitor", "alice")])
        self.assertEqual((yield bob.context.cookies()), [])

    @defer.inlineCallbacks
    def test_pagesRunConcurrently(self) -> Any:
        """
        One page can wait (a long poll, and the test's waitForSelector on it)
        while another page acts: the second visitor's click reaches the
        server, which answers the first one's pending request.
        """
        browser = yield Browser.launch(self)
        reader = yield browser.newPage()
        writer = yield browser.newPage()
        yield reader.goto(self.url + "mailbox")
        arrived = reader.waitForSelector("#log.done")
        yield writer.goto(self.url + "mailbox")
        self.assertFalse(arrived.called)
        yield writer.click("#send")
        yield arrived
        self.assertEqual((yield reader.textContent("#log")), "hello from the other visitor")

    @defer.inlineCallbacks
    def test_jsErrorsAreReported(self) -> Any:
        """
        Uncaught exceptions (while loading and in an event handler) and
        console.error calls are recorded on the page, can be waited for, and
        make assertNoErrors fail.
        """
        browser = yield Browser.launch(self)
        page = yield browser.newPage()
        yield page.goto(self.url + "broken")
        error = yield page.waitForError("notDefinedAnywhere")
        self.assertEqual(error.name, "ReferenceError")
        message = yield page.waitForConsole("cannot start", type="error")
        self.assertEqual(message.text, "widget: cannot start")
        yield page.click("#boom")
        error = yield page.waitForError("explode")
        self.assertEqual(error.name, "TypeError")
        self.assertEqual(len(page.errors), 2)
        failure = self.assertRaises(AssertionError, page.assertNoErrors)
        self.assertIn("notDefinedAnywhere", str(failure))
        self.assertIn("widget: cannot start", str(failure))

    @defer.inlineCallbacks
    def test_screenshot(self) -> Any:
        """
        screenshot() writes a PNG named after the test into the screenshots
        directory, or into $LIVECHAT_SCREENSHOTS when that is set.
        """
        browser = yield Browser.launch(self)
        page = yield browser.newPage(viewport={"width": 640, "height": 480})
        yield page.goto(self.url)
        path = yield page.screenshot("front page")
        self.assertEqual(
            path,
            os.path.join(
                harness.screenshotDirectory(),
                "tests.test_browser_harness.BrowserHarnessTests.test_screenshot-front_page.png",
            ),
        )
        self.assertPNG(path, 640)

        elsewhere = os.path.abspath(self.mktemp())
        self.setEnv(harness.SCREENSHOTS_ENV, elsewhere)
        path = yield page.screenshot("again")
        self.assertEqual(os.path.dirname(path), elsewhere)
        self.assertPNG(path, 640)

    def assertPNG(self, path: str, width: int) -> None:
        with open(path, "rb") as f:
            data = f.read()
        self.assertEqual(data[:8], b"\x89PNG\r\n\x1a\n")
        self.assertEqual(data[12:16], b"IHDR")
        self.assertEqual(struct.unpack(">I", data[16:20])[0], width)

    def setEnv(self, name: str, value: str) -> None:
        self.addCleanup(restoreEnv, name, os.environ.get(name))
        os.environ[name] = value

    @defer.inlineCallbacks
    def test_cleanupEndsChromium(self) -> Any:
        """
        launch() registers the browser's close with the test's cleanup before
        Chromium starts, and that close leaves none of Chromium's processes
        running.
        """
        cleanups: list[Any] = []

        class FakeTest:
            def addCleanup(self, f: Any, *args: Any) -> None:
                cleanups.append((f, args))

            def id(self) -> str:
                return "fake"

        launched = Browser.launch(FakeTest())
        self.assertEqual(len(cleanups), 1)
        browser = yield launched
        pids = yield browser.processIds()
        self.assertTrue(pids)
        self.assertTrue(all(processAlive(pid) for pid in pids))
        f, args = cleanups[0]
        yield f(*args)
        self.assertEqual([pid for pid in pids if processAlive(pid)], [])


class SkipTests(unittest.TestCase):
    """skipUnlessBrowser: skip when there is no browser, fail when one is required."""

    def setUp(self) -> None:
        for name in (harness.CHROMIUM_ENV, services.REQUIRE_ENV):
            self.addCleanup(restoreEnv, name, os.environ.get(name))
        os.environ[harness.CHROMIUM_ENV] = "/nonexistent/chromium"

    def test_skips(self) -> None:
        """Without a Chromium the test is skipped, and the message says how to get one."""
        os.environ.pop(services.REQUIRE_ENV, None)
        e = self.assertRaises(unittest.SkipTest, harness.skipUnlessBrowser)
        self.assertIn("/nonexistent/chromium", str(e))
        self.assertIn(services.REQUIRE_ENV, str(e))

    def test_required(self) -> None:
        """With LIVECHAT_REQUIRE_SERVICES=1 a missing Chromium is an error, not a skip."""
        os.environ[services.REQUIRE_ENV] = "1"
        e = self.assertRaises(harness.BrowserUnavailable, harness.skipUnlessBrowser)
        self.assertIn("apt-get install chromium", str(e))

    def test_launchSkips(self) -> None:
        """Browser.launch itself skips (or fails) the same way."""
        os.environ.pop(services.REQUIRE_ENV, None)
        self.assertRaises(unittest.SkipTest, Browser.launch, self)
