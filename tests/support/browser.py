"""
Headless Chromium for end-to-end tests, driven by Playwright, from trial
tests whose server runs on the same reactor.

    from tests.support.browser import Browser

    @defer.inlineCallbacks
    def test_widget(self):
        browser = yield Browser.launch(self)         # closed by the test's cleanup
        page = yield browser.newPage()               # a new context (own cookies) + page
        yield page.goto(url)
        yield page.click("#start")
        yield page.waitForSelector("#log .message")
        self.assertEqual((yield page.textContent("#status")), "online")
        yield page.screenshot("started")             # _trial_temp/screenshots/<test id>-started.png
        page.assertNoErrors()

Every call returns a L{Deferred}; selectors are Playwright selectors (CSS, or
C{text=...}, C{:has-text(...)}, ...).

Design
======

The server under test runs on the reactor thread, so nothing on that thread
may block while the browser talks to it.  Playwright's sync API blocks its
caller (and may only be used on the thread that made its objects), so it
would have to live on a thread of its own; and even there every wait blocks
that one thread, so a test could not wait on one page (a visitor waiting for
a message) while acting on another (the agent sending it): the second call
would queue behind the first until its timeout.  Switching trial to the
asyncio reactor would change the reactor under every other test.

So this module runs Playwright's B{async} API on one asyncio event loop in
one daemon thread per process (L{_LoopThread}), started on first use.  Each
call is a coroutine handed to that loop with
C{asyncio.run_coroutine_threadsafe}; its result comes back to the reactor
thread with C{reactor.callFromThread} and fires the L{Deferred}.  Playwright
objects are only ever touched on the loop thread; the wrappers here hold
them, and their own state (console messages, page errors) is only touched on
the reactor thread.  Calls run concurrently, like the pages of a real chat.

One Playwright driver (its bundled Node.js process) serves the process and
is stopped at exit; each L{Browser.launch} starts its own Chromium (Debian's,
C{$LIVECHAT_CHROMIUM} or C{/usr/bin/chromium}) with a fresh temporary
profile, which Playwright makes and deletes.

Timeouts and cleanup
====================

 - No sleeps: waits are Playwright's own (C{waitForSelector},
   C{waitForFunction}, actionability checks) or events (L{Page.waitForError},
   L{Page.waitForConsole}).
 - Every Playwright call has a timeout (L{ACTION_TIMEOUT}, per browser: the
   C{timeout} argument of L{Browser.launch}); every L{Deferred} has a backstop
   timeout a little longer, which cancels the coroutine, in case the driver
   itself stops answering.
 - L{Browser.launch} registers the browser's L{Browser.close} with the test's
   C{addCleanup} before it starts Chromium, so the browser is closed however
   the test ends, even when the launch itself times out.  If closing fails or
   takes longer than L{CLOSE_TIMEOUT}, the driver is stopped (killed if need
   be), which ends every browser it launched; the next launch starts a new
   one.  If the test process itself is killed, the driver sees its stdin
   close and ends its browsers.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import importlib.util
import inspect
import json
import os
import re
import shutil
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.internet import reactor as _reactor
from twisted.protocols.policies import WrappingFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest

from tests.support import services

T = TypeVar("T")
reactor: Any = _reactor

CHROMIUM_ENV = "LIVECHAT_CHROMIUM"
SCREENSHOTS_ENV = "LIVECHAT_SCREENSHOTS"
DEFAULT_CHROMIUM = "/usr/bin/chromium"

#: Chromium's flags: headless, as root, and quiet on a closed network (no
#: background, update or sync traffic).  Playwright adds its own, among them
#: a fresh C{--user-data-dir}.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

#: Seconds one browser action or wait may take (Playwright's own timeout).
ACTION_TIMEOUT = 10.0
#: Seconds Chromium may take to start.
LAUNCH_TIMEOUT = 30.0
#: Seconds closing a browser, or stopping the driver, may take.
CLOSE_TIMEOUT = 10.0
#: Seconds beyond a Playwright timeout before the Deferred gives up on it.
GRACE = 5.0


class BrowserUnavailable(services.ServiceUnavailable):
    """Playwright or Chromium is missing; the message says how to get it."""


class BrowserTimeout(AssertionError):
    """The browser (or its driver) did not answer within the backstop timeout."""


# --------------------------------------------------------------------------
# Availability


def chromiumPath() -> str:
    """The Chromium to run: C{$LIVECHAT_CHROMIUM} (a path or a name on PATH), else the default."""
    configured = os.environ.get(CHROMIUM_ENV, "").strip() or DEFAULT_CHROMIUM
    if os.sep not in configured:
        return shutil.which(configured) or configured
    return configured


def browserProblem() -> str | None:
    """Why browser tests cannot run here, or L{None} if they can."""
    if importlib.util.find_spec("playwright") is None:
        return (
            "Playwright for Python is not installed "
            "(pip install playwright, or the test extra: pip install -e '.[test]')"
        )
    try:
        from playwright._impl._driver import compute_driver_executable

        node, _ = compute_driver_executable()
        if not os.access(node, os.X_OK):
            return f"Playwright's driver {node} is not executable; reinstall playwright"
    except ImportError:
        pass  # a Playwright laid out differently: let the launch tell
    except Exception as e:
        return f"Playwright's driver is missing ({e}); install playwright from a wheel"
    path = chromiumPath()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return (
            f"no Chromium at {path} (apt-get install chromium, "
            f"or set {CHROMIUM_ENV} to a Chromium executable)"
        )
    return None


def skipUnlessBrowser() -> str:
    """
    Return the Chromium path if browser tests can run; otherwise skip the
    test (raise L{SkipTest}), or, with C{LIVECHAT_REQUIRE_SERVICES=1}, fail
    it with L{BrowserUnavailable}.
    """
    problem = browserProblem()
    if problem is None:
        return chromiumPath()
    if services.servicesRequired():
        raise BrowserUnavailable(f"browser tests cannot run: {problem}")
    raise SkipTest(
        f"browser tests cannot run: {problem}\n"
        f"(set {services.REQUIRE_ENV}=1 to fail instead of skipping)"
    )


# --------------------------------------------------------------------------
# The asyncio thread and the driver


class _LoopThread:
    """One asyncio event loop in a daemon thread; all Playwright work runs on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, name="livechat-browser-asyncio", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(
        self, what: str, coro: Coroutine[Any, Any, T], timeout: float | None
    ) -> defer.Deferred[T]:
        """
        Run C{coro} on the loop; a L{Deferred} (fired on the reactor thread)
        with its result.  After C{timeout} seconds the coroutine is cancelled
        and the Deferred fails with L{BrowserTimeout}; cancelling the Deferred
        cancels the coroutine too.
        """
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)

        def cancel(_: object) -> None:
            future.cancel()

        d: defer.Deferred[T] = defer.Deferred(cancel)

        def deliver(f: concurrent.futures.Future[T]) -> None:
            if d.called:  # cancelled or timed out already
                return
            if f.cancelled():
                d.errback(defer.CancelledError(what))
                return
            error = f.exception()
            if error is None:
                d.callback(f.result())
            else:
                d.errback(Failure(error, type(error), error.__traceback__))

        future.add_done_callback(lambda f: reactor.callFromThread(deliver, f))
        if timeout is not None:

            def timedOut(result: object, seconds: float) -> None:
                raise BrowserTimeout(f"browser: no answer to {what} within {seconds:g} s")

            d.addTimeout(timeout, reactor, onTimeoutCancel=timedOut)
        return d

    def callBlocking(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run C{coro} on the loop and wait for it here (for use off the loop, at exit)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


class _Driver:
    """The process's Playwright driver (a Node.js child), started on first use."""

    def __init__(self) -> None:
        self._manager: Any = None
        self._playwright: Any = None
        self._lock: asyncio.Lock | None = None

    async def get(self) -> tuple[Any, bool]:
        """The running Playwright, and whether it was started just now."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._playwright is not None:
                return self._playwright, False
            from playwright.async_api import async_playwright

            manager = async_playwright()
            self._playwright = await asyncio.wait_for(manager.start(), LAUNCH_TIMEOUT)
            self._manager = manager
            return self._playwright, True

    async def stop(self) -> None:
        """Stop the driver, which ends every browser it launched; kill it if it hangs."""
        manager, self._manager, self._playwright = self._manager, None, None
        if manager is None:
            return
        try:
            await asyncio.wait_for(manager.__aexit__(None, None, None), CLOSE_TIMEOUT)
        except BaseException:
            proc = getattr(
                getattr(getattr(manager, "_client", None), "_transport", None), "_proc", None
            )
            if proc is not None and proc.returncode is None:
                proc.kill()  # Chromium ends when its pipe to the driver closes
            raise


_lock = threading.Lock()
_loopThread: _LoopThread | None = None
_driver = _Driver()


def _loop() -> _LoopThread:
    global _loopThread
    with _lock:
        if _loopThread is None:
            _loopThread = _LoopThread()
            atexit.register(_stopAtExit)
        return _loopThread


def _stopAtExit() -> None:
    if _loopThread is not None:
        try:
            _loopThread.callBlocking(_driver.stop(), CLOSE_TIMEOUT + GRACE)
        except BaseException as e:  # at exit, say so and go on
            print(f"tests.support.browser: stopping the driver: {e!r}", file=sys.stderr)


async def _maybeAwait(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _safeName(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "page"


def screenshotDirectory() -> str:
    """
    Where screenshots go: C{$LIVECHAT_SCREENSHOTS}, else C{screenshots} in
    trial's temporary directory (C{_trial_temp/screenshots}, also for the
    workers of C{trial --jobs}, which run in C{_trial_temp/<n>}).
    """
    configured = os.environ.get(SCREENSHOTS_ENV, "").strip()
    if configured:
        return os.path.abspath(configured)
    here = os.getcwd()
    if os.path.basename(here).isdigit():  # a disttrial worker's directory
        here = os.path.dirname(here)
    return os.path.join(here, "screenshots")


# --------------------------------------------------------------------------
# A server for the pages


class _TrackingFactory(WrappingFactory):
    """Knows its open connections, to cut them at the end of a test."""

    def __init__(self, wrapped: Any) -> None:
        super().__init__(wrapped)
        self._allGone: list[defer.Deferred[None]] = []

    def unregisterProtocol(self, p: Any) -> None:
        super().unregisterProtocol(p)
        if not self.protocols:
            waiting, self._allGone = self._allGone, []
            for d in waiting:
                d.callback(None)

    def closeAll(self) -> defer.Deferred[None]:
        """Abort every open connection; fire when all are gone."""
        if not self.protocols:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._allGone.append(d)
        for p in list(self.protocols):
            p.transport.abortConnection()
        return d


def serveSite(testcase: Any, site: Any, interface: str = "127.0.0.1") -> str:
    """
    Listen with C{site} (a twisted.web C{Site}, or any HTTP server factory)
    on a free port of C{interface}, in this process, and return its base URL,
    C{http://127.0.0.1:<port>/}.  The test's cleanup stops listening and cuts
    the connections the browser left open (keep-alive), so the reactor is
    clean: launch the browser after this, so that it is closed first.
    """
    factory: Any = _TrackingFactory(site)
    port = reactor.listenTCP(0, factory, interface=interface)

    @defer.inlineCallbacks
    def stop() -> Any:
        yield port.stopListening()
        yield factory.closeAll()

    testcase.addCleanup(stop)
    host = port.getHost()
    return f"http://{host.host}:{host.port}/"


# --------------------------------------------------------------------------
# What tests use


@dataclass(frozen=True)
class ConsoleMessage:
    """One C{console.*} call (or a message Chromium logged, e.g. a failed load)."""

    type: str  # "log", "info", "warning", "error", "debug", ...
    text: str
    url: str = ""
    line: int = 0

    def __str__(self) -> str:
        where = f" ({self.url}:{self.line})" if self.url else ""
        return f"console.{self.type}: {self.text}{where}"


@dataclass(frozen=True)
class PageError:
    """An uncaught exception (or unhandled rejection) in the page."""

    name: str
    message: str
    stack: str = ""

    def __str__(self) -> str:
        return self.stack or f"{self.name}: {self.message}"


class _Wrapper:
    """Common to the wrappers: a Playwright object owned by the loop thread."""

    _timeout: float

    def __init__(self, impl: Any, timeout: float) -> None:
        self._impl = impl
        self._timeout = timeout

    def _call(
        self, what: str, fn: Callable[..., Awaitable[T]], timeout: float | None = None
    ) -> defer.Deferred[T]:
        """Run C{await fn(impl)} on the loop thread."""
        impl = self._impl

        async def run() -> T:
            return await fn(impl)

        seconds = self._timeout if timeout is None else timeout
        return _loop().call(what, run(), seconds + GRACE)

    def run(
        self, fn: Callable[..., Any], *args: Any, timeout: float | None = None
    ) -> defer.Deferred[Any]:
        """
        The escape hatch: call C{fn(playwrightObject, *args)} on the loop
        thread (awaiting its result if it is awaitable) and fire with what it
        returns.  C{fn} gets Playwright's B{async} object, e.g.
        C{page.run(lambda p: p.keyboard.press("Enter"))}.  Return plain data,
        not Playwright objects: those must stay on the loop thread.
        """
        return self._call(
            getattr(fn, "__name__", "run"), lambda impl: _maybeAwait(fn(impl, *args)), timeout
        )


class Browser(_Wrapper):
    """A headless Chromium; make contexts (separate visitors) and pages with it."""

    def __init__(self, testcase: Any, timeout: float) -> None:
        super().__init__(None, timeout)
        self.testcase = testcase
        self._launch: asyncio.Task[Any] | None = None
        self.closed = False

    @classmethod
    def launch(
        cls,
        testcase: Any,
        *,
        timeout: float = ACTION_TIMEOUT,
        args: tuple[str, ...] = (),
        **options: Any,
    ) -> defer.Deferred[Browser]:
        """
        Start a Chromium for C{testcase} (skipping it if there is none, see
        L{skipUnlessBrowser}); it is closed by the test's cleanup.

        @param timeout: seconds each action or wait of this browser's pages
            may take.
        @param args: more Chromium flags.
        @param options: more keyword arguments for Playwright's
            C{chromium.launch} (e.g. C{slow_mo}).
        """
        executable = skipUnlessBrowser()
        browser = cls(testcase, timeout)
        testcase.addCleanup(browser.close)
        loop = _loop()

        async def start() -> Browser:
            browser._launch = asyncio.ensure_future(
                browser._start(executable, (*CHROMIUM_FLAGS, *args), options)
            )
            # Shielded: a timed-out launch goes on, and close() waits for it.
            await asyncio.shield(browser._launch)
            return browser

        return loop.call("launching Chromium", start(), LAUNCH_TIMEOUT * 2 + GRACE)

    async def _start(
        self, executable: str, flags: tuple[str, ...], options: dict[str, Any]
    ) -> None:
        playwright, fresh = await _driver.get()
        launch = dict(
            executable_path=executable,
            args=list(flags),
            headless=True,
            timeout=LAUNCH_TIMEOUT * 1000,
        )
        launch.update(options)
        try:
            self._impl = await playwright.chromium.launch(**launch)
        except Exception:
            if fresh:
                raise
            # The driver had served before: perhaps it died since.  Once more
            # with a new one.
            await _driver.stop()
            playwright, _ = await _driver.get()
            self._impl = await playwright.chromium.launch(**launch)

    def close(self) -> defer.Deferred[None]:
        """Close the browser and everything in it (the test's cleanup does it too)."""
        if self.closed:
            return defer.succeed(None)
        self.closed = True

        async def close() -> None:
            if self._launch is not None:
                try:
                    await self._launch
                except BaseException:
                    pass  # the launch's Deferred reported it
            if self._impl is None:
                return
            impl, self._impl = self._impl, None
            try:
                await asyncio.wait_for(impl.close(), CLOSE_TIMEOUT)
            except BaseException:
                await _driver.stop()  # ends the browser for sure
                raise

        return _loop().call("closing Chromium", close(), LAUNCH_TIMEOUT + 2 * CLOSE_TIMEOUT + GRACE)

    def newContext(self, **options: Any) -> defer.Deferred[BrowserContext]:
        """
        A new incognito-like context: its own cookies, storage and cache, as
        a second visitor has.  C{options} go to Playwright's C{new_context}
        (e.g. C{viewport={"width": 400, "height": 700}}, C{locale="de-DE"},
        C{base_url=...}).
        """
        timeout = self._timeout

        async def make(impl: Any) -> BrowserContext:
            context = await impl.new_context(**options)
            context.set_default_timeout(timeout * 1000)
            context.set_default_navigation_timeout(timeout * 1000)
            return BrowserContext(context, self)

        return self._call("new context", make)

    @defer.inlineCallbacks
    def newPage(self, **options: Any) -> Any:
        """A page in a context of its own (C{options} as for L{newContext})."""
        context = yield self.newContext(**options)
        page = yield context.newPage()
        return page

    def processIds(self) -> defer.Deferred[list[int]]:
        """The process ids of this Chromium (browser process first), from DevTools."""

        async def ids(impl: Any) -> list[int]:
            session = await impl.new_browser_cdp_session()
            try:
                info = await session.send("SystemInfo.getProcessInfo")
            finally:
                await session.detach()
            found = sorted(info["processInfo"], key=lambda p: p["type"] != "browser")
            return [int(p["id"]) for p in found]

        return self._call("process ids", ids)


class BrowserContext(_Wrapper):
    """An isolated browser session (cookies, storage): one visitor or agent."""

    def __init__(self, impl: Any, browser: Browser) -> None:
        super().__init__(impl, browser._timeout)
        self.browser = browser

    def newPage(self) -> defer.Deferred[Page]:
        """A new tab in this context, recording its console and errors from the start."""

        async def make(impl: Any) -> Page:
            page = await impl.new_page()
            wrapper = Page(page, self)
            wrapper._listen(page)
            return wrapper

        return self._call("new page", make)

    def cookies(self, urls: str | list[str] | None = None) -> defer.Deferred[list[dict[str, Any]]]:
        """This context's cookies (for C{urls} only, if given), as Playwright's dicts."""
        return self._call("cookies", lambda impl: impl.cookies(urls))

    def close(self) -> defer.Deferred[None]:
        return self._call("closing a context", lambda impl: impl.close())


class Page(_Wrapper):
    """
    One tab.  C{console} and C{errors} list what the page has logged and
    thrown so far (filled on the reactor thread, in order).
    """

    def __init__(self, impl: Any, context: BrowserContext) -> None:
        super().__init__(impl, context._timeout)
        self.context = context
        self.console: list[ConsoleMessage] = []
        self.errors: list[PageError] = []
        self._waiters: list[tuple[str, Callable[[Any], bool], int, defer.Deferred[Any]]] = []
        self._marks = {"console": 0, "errors": 0}

    # -- events (loop thread -> reactor thread)

    def _listen(self, page: Any) -> None:
        def onConsole(message: Any) -> None:
            location = message.location or {}
            entry = ConsoleMessage(
                message.type,
                message.text,
                location.get("url", ""),
                int(location.get("lineNumber", location.get("line", 0)) or 0),
            )
            reactor.callFromThread(self._record, "console", entry)

        def onError(error: Any) -> None:
            entry = PageError(
                getattr(error, "name", "") or "Error",
                getattr(error, "message", "") or str(error),
                getattr(error, "stack", "") or "",
            )
            reactor.callFromThread(self._record, "errors", entry)

        page.on("console", onConsole)
        page.on("pageerror", onError)

    def _record(self, kind: str, entry: Any) -> None:
        entries = self.console if kind == "console" else self.errors
        entries.append(entry)
        waiting, self._waiters = self._waiters, []
        for waiter in waiting:
            wkind, matches, start, d = waiter
            if wkind == kind and not d.called and matches(entry):
                self._marks[kind] = max(self._marks[kind], len(entries))
                d.callback(entry)
            elif not d.called:
                self._waiters.append(waiter)

    def _waitFor(
        self, kind: str, matches: Callable[[Any], bool], what: str, timeout: float | None
    ) -> defer.Deferred[Any]:
        entries = self.console if kind == "console" else self.errors
        for index in range(self._marks[kind], len(entries)):
            if matches(entries[index]):
                self._marks[kind] = index + 1
                return defer.succeed(entries[index])
        d: defer.Deferred[Any] = defer.Deferred()
        self._waiters.append((kind, matches, len(entries), d))

        def timedOut(result: object, seconds: float) -> None:
            seen = "\n  ".join(str(e) for e in entries) or "nothing"
            raise AssertionError(f"no {what} within {seconds:g} s; the page had:\n  {seen}")

        d.addTimeout(
            self._timeout if timeout is None else timeout, reactor, onTimeoutCancel=timedOut
        )
        return d

    def waitForError(
        self, pattern: str = "", timeout: float | None = None
    ) -> defer.Deferred[PageError]:
        """
        Fire with the first uncaught page error, after the one the previous
        call returned, whose text matches the regular expression C{pattern}
        (already recorded, or still to come).
        """
        regex = re.compile(pattern)
        return self._waitFor(
            "errors",
            lambda e: regex.search(str(e)) is not None,
            f"page error matching {pattern!r}",
            timeout,
        )

    def waitForConsole(
        self, pattern: str = "", type: str | None = None, timeout: float | None = None
    ) -> defer.Deferred[ConsoleMessage]:
        """As L{waitForError}, for console messages (of C{type}, e.g. C{"error"}, if given)."""
        regex = re.compile(pattern)
        return self._waitFor(
            "console",
            lambda m: (type is None or m.type == type) and regex.search(m.text) is not None,
            f"console message matching {pattern!r}" + (f" of type {type}" if type else ""),
            timeout,
        )

    def assertNoErrors(self, console: bool = True) -> None:
        """
        Fail unless the page has thrown nothing so far (and, with
        C{console}, logged no C{console.error}, which includes resources
        that failed to load).  Call it after the page is done.
        """
        problems = [str(e) for e in self.errors]
        if console:
            problems += [str(m) for m in self.console if m.type == "error"]
        if problems:
            raise AssertionError("the page reported errors:\n  " + "\n  ".join(problems))

    # -- navigation and actions

    def goto(self, url: str, waitUntil: str = "load") -> defer.Deferred[int | None]:
        """Load C{url}, wait for its C{load} event (or C{waitUntil}); fire with the HTTP status."""

        async def go(impl: Any) -> int | None:
            response = await impl.goto(url, wait_until=waitUntil)
            return None if response is None else response.status

        return self._call(f"goto {url}", go)

    def reload(self) -> defer.Deferred[int | None]:
        async def go(impl: Any) -> int | None:
            response = await impl.reload()
            return None if response is None else response.status

        return self._call("reload", go)

    def url(self) -> defer.Deferred[str]:
        async def get(impl: Any) -> str:
            return str(impl.url)

        return self._call("url", get)

    def title(self) -> defer.Deferred[str]:
        return self._call("title", lambda impl: impl.title())

    def waitForSelector(
        self, selector: str, state: str = "visible", timeout: float | None = None
    ) -> defer.Deferred[None]:
        """
        Wait until an element matches C{selector} and is in C{state}
        (C{"visible"}, C{"attached"}, C{"hidden"}, C{"detached"}); more than
        one match is fine here.
        """
        seconds = self._timeout if timeout is None else timeout

        async def wait(impl: Any) -> None:
            await impl.wait_for_selector(selector, state=state, timeout=seconds * 1000)

        return self._call(f"waitForSelector {selector!r}", wait, seconds)

    def waitForFunction(
        self, expression: str, arg: Any = None, timeout: float | None = None
    ) -> defer.Deferred[Any]:
        """Wait until JavaScript C{expression} (or function of C{arg}) is truthy; fire with it."""
        seconds = self._timeout if timeout is None else timeout

        async def wait(impl: Any) -> Any:
            handle = await impl.wait_for_function(expression, arg=arg, timeout=seconds * 1000)
            try:
                return await handle.json_value()
            finally:
                await handle.dispose()

        return self._call(f"waitForFunction {expression!r}", wait, seconds)

    # Actions and reads on one element: strict, the selector must match
    # exactly one element (Playwright waits until it does, and until the
    # element can take the action).

    def click(self, selector: str) -> defer.Deferred[None]:
        return self._call(f"click {selector!r}", lambda impl: impl.locator(selector).click())

    def fill(self, selector: str, text: str) -> defer.Deferred[None]:
        return self._call(f"fill {selector!r}", lambda impl: impl.locator(selector).fill(text))

    def press(self, selector: str, key: str) -> defer.Deferred[None]:
        """Press C{key} (e.g. C{"Enter"}, C{"Control+A"}) in the element."""
        return self._call(
            f"press {key} in {selector!r}", lambda impl: impl.locator(selector).press(key)
        )

    def textContent(self, selector: str) -> defer.Deferred[str | None]:
        return self._call(
            f"textContent {selector!r}", lambda impl: impl.locator(selector).text_content()
        )

    def innerText(self, selector: str) -> defer.Deferred[str]:
        return self._call(
            f"innerText {selector!r}", lambda impl: impl.locator(selector).inner_text()
        )

    def inputValue(self, selector: str) -> defer.Deferred[str]:
        return self._call(
            f"inputValue {selector!r}", lambda impl: impl.locator(selector).input_value()
        )

    def getAttribute(self, selector: str, name: str) -> defer.Deferred[str | None]:
        return self._call(
            f"getAttribute {name} of {selector!r}",
            lambda impl: impl.locator(selector).get_attribute(name),
        )

    # Reads of all matches, at once (no waiting).

    def count(self, selector: str) -> defer.Deferred[int]:
        return self._call(f"count {selector!r}", lambda impl: impl.locator(selector).count())

    def allTextContents(self, selector: str) -> defer.Deferred[list[str]]:
        return self._call(
            f"allTextContents {selector!r}", lambda impl: impl.locator(selector).all_text_contents()
        )

    def isVisible(self, selector: str) -> defer.Deferred[bool]:
        return self._call(
            f"isVisible {selector!r}", lambda impl: impl.locator(selector).first.is_visible()
        )

    def evaluate(self, expression: str, arg: Any = None) -> defer.Deferred[Any]:
        """Run JavaScript (an expression, or a function of C{arg}); fire with its JSON value."""
        return self._call("evaluate", lambda impl: impl.evaluate(expression, arg))

    def screenshot(self, name: str, fullPage: bool = True) -> defer.Deferred[str]:
        """
        Save a PNG of the page as C{<test id>-<name>.png} in
        L{screenshotDirectory} and fire with its path.
        """
        directory = screenshotDirectory()
        os.makedirs(directory, exist_ok=True)
        testId = _safeName(self.context.browser.testcase.id())
        path = os.path.join(directory, f"{testId}-{_safeName(name)}.png")

        async def shoot(impl: Any) -> str:
            await impl.screenshot(path=path, full_page=fullPage)
            return path

        return self._call(f"screenshot {name!r}", shoot)

    def close(self) -> defer.Deferred[None]:
        return self._call("closing a page", lambda impl: impl.close())


def waitUntil(page: Any, condition: str, timeout: float = 20.0) -> defer.Deferred[Any]:
    """
    Wait until the JavaScript C{condition} holds, checked each frame.  (Pages with a
    strict CSP, the panel's and the agent's, forbid the eval that Playwright's
    waitForFunction needs; evaluate is not bound by it.)
    """
    return page.evaluate(
        "([timeout]) => new Promise((resolve, reject) => {"
        "  const end = Date.now() + timeout * 1000;"
        f"  const check = () => {{ let v; try {{ v = ({condition}); }} catch (e) {{ v = false; }}"
        "    if (v) resolve(v); else if (Date.now() > end) reject(new Error('timed out: ' + "
        f"{json.dumps(condition)})); else requestAnimationFrame(check); }};"
        "  check(); })",
        [timeout],
    )
