"""
The webhook worker: delivers every event of the outbox to every endpoint
that wants it, at least once, in order per chat, signed, with retries.

How it works (docs/webhooks.md tells users the same):

  1. A pass over a licence (L{livechat.notify.outbox.licencePass_txn}) copies
     new rows of the event tables into C{deliveries}, one per endpoint.
     Account events (global database) are copied the same way into their
     licence's C{deliveries}.
  2. Due deliveries are claimed in the database (a lease, so several nodes
     can run this worker and no delivery is sent by two at the same moment),
     each the oldest pending one of its chat, and sent through treq with a
     timeout.  At most C{concurrency} requests are in flight, and at most
     C{perEndpoint} to one endpoint; an endpoint that fails is paused with
     backoff, so one dead receiver holds up nobody else.
  3. A 2xx answer marks the delivery delivered; anything else schedules a
     retry with exponential backoff and jitter, until C{retryFor} seconds
     have passed: then the delivery is dead, for an operator to see and
     replay (REST API, C{livechat-admin replay-deliveries}).

Nothing is kept in memory that the database does not have: a restart
resumes from the tables.  C{notify()} (the core's best-effort path) and the
stored-events hook only wake the worker early; a periodic sweep finds work
written by other nodes and processes.
"""

from __future__ import annotations

import ipaddress
import json
import random
import secrets
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import attr
from twisted.application import service
from twisted.internet import defer, protocol, threads
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from zope.interface import implementer

import livechat
from livechat.interfaces import INotifier
from livechat.notify import outbox, payloads
from livechat.storage import accounts, hooks
from livechat.storage.database import NoSuchLicenceDatabase

ACCOUNT_CURSOR = "account"
SERVER_SECRET_STATE = "webhook_secret"
USER_AGENT = f"livechat/{livechat.__version__} (webhooks)"
MAX_ERROR_BODY = 2048
PURGE_EVERY = 3600.0
"""Seconds between purges of old delivered and dead deliveries."""
IDLE_RECHECK = 1.0
"""Seconds before looking again at due work that could not be taken."""

PASS_GAP = 0.05
"""
Seconds from one pass's start to the next one's while events keep coming:
each pass takes all that came meanwhile, instead of a pass (a dozen queries)
per commit.  The first event after a quiet spell starts a pass at once; a
pass that left a full batch behind is followed at once.
"""


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class WebhookSettings:
    """The worker's knobs; C{fromConfig} reads them from lc_serv.cfg."""

    urls: dict[str, str] = attr.Factory(dict)
    """EVENT name -> URL (the EVENT_* keys)."""
    rpcServerIP: str = ""
    method: str = "POST"
    timeout: float = 10.0
    retryFor: float = 86400.0
    concurrency: int = 20
    perEndpoint: int = 4
    allowPrivate: bool = False
    secret: str = ""
    sendPassword: bool = False
    keepDays: int = 7
    sweep: float = 30.0
    firstRetry: float = 5.0
    maxRetry: float = 3600.0
    gapWait: float = 60.0
    batch: int = 500

    @property
    def lease(self) -> float:
        """Seconds a claim holds: past one request's timeout, then another node may take it."""
        return max(10.0, 2 * self.timeout + 5)

    @classmethod
    def fromConfig(cls, config: Any) -> WebhookSettings:
        return cls(
            urls=config.webhookURLs(),
            rpcServerIP=config["RPC_SERVER_IP"],
            method=config["WEBHOOK_METHOD"],
            timeout=config["WEBHOOK_TIMEOUT"],
            retryFor=config["WEBHOOK_RETRY_FOR"],
            concurrency=config["WEBHOOK_CONCURRENCY"],
            perEndpoint=config["WEBHOOK_ENDPOINT_CONCURRENCY"],
            allowPrivate=config["WEBHOOK_ALLOW_PRIVATE"],
            secret=config["WEBHOOK_SECRET"],
            sendPassword=config["WEBHOOK_SEND_PASSWORD"],
            keepDays=config["WEBHOOK_KEEP_DAYS"],
            sweep=config["WEBHOOK_SWEEP"],
        )

    def backoff(self, attempts: int) -> float:
        """Seconds before retry number C{attempts} (1-based): doubling, capped, jittered."""
        base = min(self.maxRetry, self.firstRetry * 2 ** max(0, attempts - 1))
        return base * (0.5 + random.random())


# -- where a request may go ------------------------------------------------------------


class Refused(Exception):
    """A URL a licence configured points at the server's own network."""


def addressAllowed(address: str) -> bool:
    """Whether a licence's webhook may connect to this IP: a public (global) address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(ip.is_global) and not ip.is_multicast


def checkURL(url: str, allowPrivate: bool) -> str:
    """
    Check a URL a licence gives (API): http(s), a host, at most 2000
    characters, and no literal private address or C{localhost} unless
    allowed.  Names are checked again, resolved, before each request.

    @return: the URL.
    @raise ValueError: with the reason.
    """
    if not isinstance(url, str) or not url or len(url) > 2000:
        raise ValueError("a URL of 1 to 2000 characters is required")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
    try:
        _ = parts.port
    except ValueError as e:
        raise ValueError(f"bad port in URL: {e}") from None
    if not allowPrivate:
        host = parts.hostname
        if host == "localhost" or host.endswith(".localhost"):
            raise ValueError("URLs may not point at this server's own network (localhost)")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return url
        if not addressAllowed(host):
            raise ValueError(f"URLs may not point at this server's own network ({host})")
    return url


def systemResolver(reactor: Any) -> Callable[[str, int], defer.Deferred[list[str]]]:
    """Resolve a host name to its addresses with getaddrinfo, in a thread."""

    def resolve(host: str, port: int) -> defer.Deferred[list[str]]:
        def lookup() -> list[str]:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            return list(dict.fromkeys(str(info[4][0]) for info in infos))

        return threads.deferToThreadPool(reactor, reactor.getThreadPool(), lookup)

    return resolve


class _PinnedEndpoints:
    """Connect to one chosen address whatever the URL's host (TLS still checks the host)."""

    def __init__(self, reactor: Any, address: str, timeout: float) -> None:
        self._reactor = reactor
        self._address = address
        self._timeout = timeout

    def endpointForURI(self, uri: Any) -> Any:
        endpoint = HostnameEndpoint(self._reactor, self._address, uri.port, timeout=self._timeout)
        if uri.scheme == b"https":
            return wrapClientTLS(optionsForClientTLS(uri.host.decode("idna")), endpoint)
        return endpoint


class _BoundedBody(protocol.Protocol):
    """Reads at most C{limit} bytes of a response body, then stops the transfer."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = b""
        self.done: defer.Deferred[bytes] = defer.Deferred(lambda _: self._stop())

    def _stop(self) -> None:
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]

    def dataReceived(self, data: bytes) -> None:
        self.data += data[: self.limit - len(self.data)]
        if len(self.data) >= self.limit:
            self._stop()

    def connectionLost(self, reason: Any = None) -> None:
        if not self.done.called:
            self.done.callback(self.data)


@attr.s(frozen=True, auto_attribs=True)
class Outcome:
    """What one request came back with."""

    status: int | None
    error: str
    retryAfter: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Sender:
    """
    Sends one webhook request with treq, connecting to a checked address.

    @param resolver: C{f(host, port) -> Deferred[[address]]}; tests pass
        their own (no DNS), the default is getaddrinfo in a thread.
    """

    def __init__(self, reactor: Any, clock: Any, resolver: Any = None) -> None:
        self._reactor = reactor
        self._clock = clock
        self._resolve = resolver or systemResolver(reactor)

    async def send(
        self,
        method: str,
        url: str,
        body: bytes,
        headers: dict[str, str],
        *,
        connectTo: str = "",
        guard: bool = False,
        allowPrivate: bool = False,
        timeout: float = 10.0,
    ) -> Outcome:
        import treq.client

        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = connectTo
        if not address and guard:
            try:
                literal = ipaddress.ip_address(host)
            except ValueError:
                literal = None
            if literal is not None:
                found = [host]
            else:
                lookup = self._resolve(host, port)
                lookup.addTimeout(timeout, self._clock)
                found = await lookup
            if not found:
                raise Refused(f"{host} has no address")
            if not allowPrivate:
                bad = [a for a in found if not addressAllowed(a)]
                if bad:
                    raise Refused(f"{host} resolves to {bad[0]}, on this server's own network")
            address = found[0]
        pool = HTTPConnectionPool(self._reactor, persistent=False)
        if address:
            agent = Agent.usingEndpointFactory(
                self._reactor, _PinnedEndpoints(self._reactor, address, timeout), pool=pool
            )
        else:
            agent = Agent(self._reactor, connectTimeout=timeout, pool=pool)
        client = treq.client.HTTPClient(agent)
        target = url
        data: bytes | None = body
        if method == "GET":
            target = url + ("&" if "?" in url else "?") + body.decode("ascii") if body else url
            data = None
        h = Headers({k.encode("latin-1"): [v.encode("latin-1")] for k, v in headers.items()})
        d = client.request(method, target, headers=h, data=data, allow_redirects=False)

        def read(response: Any) -> Any:
            reader = _BoundedBody(MAX_ERROR_BODY)
            response.deliverBody(reader)
            return reader.done.addCallback(lambda text: (response, text))

        d.addCallback(read)
        timedOut: list[bool] = []

        def onTimeout(result: Any, after: float) -> Any:
            timedOut.append(True)
            return result

        d.addTimeout(timeout, self._clock, onTimeoutCancel=onTimeout)
        try:
            response, text = await d
        except Exception as e:
            if timedOut:
                return Outcome(None, f"no answer within {timeout:g} s")
            return Outcome(None, f"{type(e).__name__}: {e}"[:500])
        retryAfter = None
        value = response.headers.getRawHeaders(b"retry-after")
        if value:
            try:
                retryAfter = float(value[0])
            except ValueError:
                retryAfter = None
        if 200 <= response.code < 300:
            return Outcome(response.code, "")
        snippet = text[:200].decode("utf-8", "replace").strip()
        return Outcome(response.code, f"HTTP {response.code} {snippet}".strip(), retryAfter)


# -- the worker --------------------------------------------------------------------------


@implementer(INotifier)
class WebhookService(service.Service):
    """
    Runs the delivery worker of one node.  It is also an L{INotifier} (the
    core's after-commit path), which only wakes it up early.
    """

    name = "webhooks"  # type: ignore[assignment]
    _log = Logger()

    def __init__(
        self,
        store: Any,
        settings: WebhookSettings,
        reactor: Any,
        *,
        clock: Any = None,
        resolver: Any = None,
        node: str = "",
        sendLicenceInfo: bool = True,
    ) -> None:
        self.store = store
        self.hooks = hooks.HookStore(store.db, clock or reactor)
        self.settings = settings
        self._reactor = reactor
        self._clock = clock or reactor
        self.sender = Sender(reactor, self._clock, resolver)
        self.node = node or f"{socket.gethostname()[:40]}:{secrets.token_hex(4)}"
        self._sendLicenceInfo = sendLicenceInfo
        self._dirty: set[int] = set()
        self._due: dict[int, int] = {}
        """licence -> when its next delivery is due (ms), as last seen."""
        self._gaps: dict[Any, Any] = {}
        """licence -> {source: {first missing id: first seen}}; "account" -> {id: seen}."""
        self._paused: dict[tuple[int, str], tuple[float, int]] = {}
        """(licence, endpoint) -> (paused until, consecutive failures)."""
        self._inflight: dict[tuple[int, str], int] = {}
        self._inflightTotal = 0
        self._sending: dict[defer.Deferred[Any], str] = {}
        self._background: set[defer.Deferred[Any]] = set()
        self._passing: defer.Deferred[None] | None = None
        self._again = False
        self._more = False
        self._lastPass: float | None = None
        self._fullSweep = True
        self._timer: Any = None
        self._sweepTimer: Any = None
        self._serverSecret = ""
        self.passes = 0
        self._lastPurge = self._clock.seconds()

    # -- life --------------------------------------------------------------------------

    def startService(self) -> defer.Deferred[None]:  # type: ignore[override]
        service.Service.startService(self)
        return defer.ensureDeferred(self._start())

    async def _start(self) -> None:
        self._serverSecret = await self._loadServerSecret()
        if self._sendLicenceInfo:
            await self.store.db.runGlobal(
                "licence info at start", _licenceInfoAtStart_txn, self._nowMS()
            )
        self._scheduleSweep()
        self.kick(full=True)

    async def _loadServerSecret(self) -> str:
        if self.settings.secret:
            return self.settings.secret
        await self.store.claimState(SERVER_SECRET_STATE, secrets.token_urlsafe(32))
        return str(await self.store.getState(SERVER_SECRET_STATE))

    def stopService(self) -> defer.Deferred[Any]:  # type: ignore[override]
        service.Service.stopService(self)
        for timer in (self._timer, self._sweepTimer):
            if timer is not None and timer.active():
                timer.cancel()
        self._timer = self._sweepTimer = None
        # Work under way finishes (a pass stops at the next licence, a request
        # within WEBHOOK_TIMEOUT), so no transaction outlives the service.
        waiting = list(self._background)
        if self._passing is not None:
            waiting.append(self._passing)
        d = defer.DeferredList(waiting, consumeErrors=True)
        d.addCallback(lambda _: defer.DeferredList(list(self._sending), consumeErrors=True))
        return d

    def reconfigure(self, config: Any) -> None:
        """SIGHUP: the live keys (URLs, method, timeouts, retry window, limits)."""
        secret = self.settings.secret
        self.settings = attr.evolve(WebhookSettings.fromConfig(config), secret=secret)
        self.kick(full=True)

    # -- waking up ---------------------------------------------------------------------

    def notify(self, licence: int, event: Any) -> None:
        """INotifier: a domain event was committed; deliver soon."""
        self.kick(licence)

    def stored(self, licence: int, events: Any = ()) -> None:
        """The core stored chat events of C{licence} (apps want them)."""
        # Every message of a busy licence lands here.  A licence is in
        # _dirty only once a kick took it since the last pass began, and
        # that kick either marked the running pass to go again or set the
        # timer no later than PASS_GAP after the last pass (timers only
        # ever move earlier, but after a failed pass).  So a pass for it is
        # coming: nothing to do.
        if licence in self._dirty and (self._passing is not None or self._timer is not None):
            return
        self.kick(licence)

    def kick(self, licence: int | None = None, full: bool = False) -> None:
        """Run a pass soon: over C{licence}, or over every licence when C{full}."""
        if not self.running:
            return
        if licence is not None:
            self._dirty.add(licence)
        if full:
            self._fullSweep = True
        if self._passing is not None:
            self._again = True
            return
        self._schedule(self._sinceLast())

    def _sinceLast(self) -> float:
        """How long the next pass waits so that it starts L{PASS_GAP} after the last."""
        if self._lastPass is None:
            return 0.0
        return max(0.0, self._lastPass + PASS_GAP - self._clock.seconds())

    def _schedule(self, delay: float) -> None:
        if not self.running:
            return
        if self._timer is not None and self._timer.active():
            if self._timer.getTime() <= self._clock.seconds() + delay:
                return
            self._timer.cancel()
        self._timer = self._clock.callLater(max(0.0, delay), self._startPass)

    def _scheduleSweep(self) -> None:
        def sweep() -> None:
            self._sweepTimer = None
            self.kick(full=True)
            self._scheduleSweep()

        if self.running:
            self._sweepTimer = self._clock.callLater(self.settings.sweep, sweep)

    def _nowMS(self) -> int:
        return int(self._clock.seconds() * 1000)

    # -- a pass -----------------------------------------------------------------------

    def _startPass(self) -> None:
        self._timer = None
        if self._passing is not None or not self.running:
            self._again = True
            return
        self._again = False
        self._more = False
        self._lastPass = self._clock.seconds()
        d = defer.ensureDeferred(self._pass())
        self._passing = d

        def done(result: Any) -> None:
            self._passing = None
            if isinstance(result, Exception) or hasattr(result, "trap"):
                self._logFailure("webhook pass", result)
                self._schedule(self.settings.firstRetry)
                return
            if self._again:
                self._schedule(0 if self._more else self._sinceLast())
            else:
                self._scheduleNext()

        d.addBoth(done)

    def _logFailure(self, what: str, failure: Any) -> None:
        """A database outage is a warning (the next pass retries); anything else a failure."""
        if failure.check(defer.CancelledError):
            return
        engine = self.store.db.engine
        if engine.isConnectionError(failure.value) or engine.isRetryable(failure.value):
            self._log.warn(
                "{what}: database unavailable ({error}); retrying", what=what, error=failure.value
            )
            return
        self._log.failure("{what} failed", failure, what=what)

    def whenIdle(self, exclude: frozenset[str] = frozenset()) -> defer.Deferred[Any]:
        """Fires when the requests in flight now (but to C{exclude}d endpoints) are done."""
        waiting = [d for d, endpoint in self._sending.items() if endpoint not in exclude]
        return defer.DeferredList(waiting, consumeErrors=True)

    def inflight(self, licence: int, endpoint: str) -> int:
        return self._inflight.get((licence, endpoint), 0)

    def runPass(self) -> defer.Deferred[None]:
        """One pass now (tests): fan out and start due sends for every licence."""
        self._fullSweep = True
        return defer.ensureDeferred(self._pass())

    async def _pass(self) -> None:
        self.passes += 1
        cfgEvents = frozenset(self.settings.urls)
        more = await self._accountPass(cfgEvents)
        if self._fullSweep:
            self._fullSweep = False
            licences = [licence.number for licence in await self.store.listLicences()]
            self._due = {n: t for n, t in self._due.items() if n in set(licences)}
            self._purgeIfDue(licences)
        else:
            now = self._nowMS()
            licences = sorted(self._dirty | {n for n, t in self._due.items() if t <= now})
        self._dirty.clear()
        for licence in licences:
            if not self.running:
                return
            try:
                result = await self._licencePass(licence, cfgEvents)
            except NoSuchLicenceDatabase:
                self._due.pop(licence, None)
                continue
            more = more or result.more
        if more:
            self._again = self._more = True

    async def _licencePass(self, licence: int, cfgEvents: frozenset[str]) -> outbox.PassResult:
        result: outbox.PassResult = await self.hooks.run(
            licence,
            "webhook pass",
            outbox.licencePass_txn,
            cfgEvents,
            self._gaps.get(licence, {}),
            self._clock.seconds(),
            self._nowMS(),
            self._gapWait(),
            self.settings.batch,
        )
        gaps = {k: v for k, v in result.gaps.items() if v}
        if gaps:
            self._gaps[licence] = gaps
        else:
            self._gaps.pop(licence, None)
        if result.nextDue is None:
            self._due.pop(licence, None)
        else:
            self._due[licence] = result.nextDue
        for endpoint in result.dueEndpoints:
            await self._sendDue(licence, endpoint)
        return result

    def _gapWait(self) -> float:
        return 0.0 if self.store.db.engine.name == "sqlite" else self.settings.gapWait

    async def _accountPass(self, cfgEvents: frozenset[str]) -> bool:
        """Copy new account events (global database) into their licences' deliveries."""
        db = self.store.db
        cursor = await db.runGlobal("account cursor", hooks.getCursor_txn, ACCOUNT_CURSOR)
        rows = await db.runGlobal(
            "account events", hooks.readAccountEvents_txn, cursor, self.settings.batch
        )
        if not rows:
            return False
        byLicence: dict[int, list[Any]] = {}
        for row in rows:
            byLicence.setdefault(row[1], []).append(row)
        for licence, events in byLicence.items():
            try:
                await self.hooks.run(
                    licence,
                    "account deliveries",
                    outbox.accountDrafts_txn,
                    events,
                    cfgEvents,
                    self._nowMS(),
                )
            except NoSuchLicenceDatabase:
                continue  # the licence was removed since
            self._dirty.add(licence)
        secret = [r[0] for r in rows if "PASSWORD" in r[4]]
        if secret:
            # Copied into the deliveries: the account log keeps no password.
            await db.runGlobal("scrub passwords", hooks.scrubAccountPasswords_txn, secret)
        position, waiting = hooks.advanceCursor(
            cursor,
            [r[0] for r in rows],
            self._clock.seconds(),
            self._gaps.get("account", {}),
            self._gapWait(),
        )
        if waiting:
            self._gaps["account"] = waiting
        else:
            self._gaps.pop("account", None)
        if position != cursor:
            await db.runGlobal("account cursor", hooks.setCursor_txn, ACCOUNT_CURSOR, position)
        for licence in byLicence:
            if licence in self._dirty and self.running:
                self._dirty.discard(licence)
                try:
                    await self._licencePass(licence, cfgEvents)
                except NoSuchLicenceDatabase:
                    pass
        return len(rows) >= self.settings.batch

    def _purgeIfDue(self, licences: list[int]) -> None:
        now = self._clock.seconds()
        if now - self._lastPurge < PURGE_EVERY:
            return
        self._lastPurge = now
        before = self._nowMS() - self.settings.keepDays * 86400 * 1000
        for licence in licences:
            d = self.hooks.run(licence, "purge deliveries", hooks.purge_txn, before)
            self._background.add(d)
            d.addErrback(lambda f: None)
            d.addBoth(lambda _, d=d: self._background.discard(d))

    def _scheduleNext(self) -> None:
        """
        The next pass: now for new work; at the next retry's time; and no
        sooner than C{IDLE_RECHECK} for work that is due but could not be
        taken (its chat's earlier event is in flight, the endpoint is full,
        another node holds it): a finished request wakes the worker anyway.
        """
        if self._dirty:
            self._schedule(self._sinceLast())
            return
        if self._due:
            delay = (min(self._due.values()) - self._nowMS()) / 1000.0
            self._schedule(max(IDLE_RECHECK, delay))

    # -- sending -------------------------------------------------------------------------

    async def _sendDue(self, licence: int, endpoint: str) -> None:
        key = (licence, endpoint)
        paused = self._paused.get(key)
        now = self._clock.seconds()
        if paused is not None and paused[0] > now:
            self._due[licence] = min(self._due.get(licence, 2**62), int(paused[0] * 1000))
            return
        room = min(
            self.settings.perEndpoint - self._inflight.get(key, 0),
            self.settings.concurrency - self._inflightTotal,
        )
        if room <= 0:
            return
        claimed = await self.hooks.run(
            licence,
            "claim deliveries",
            hooks.claimDue_txn,
            endpoint,
            self._nowMS(),
            room,
            self.node,
            int(self.settings.lease * 1000),
        )
        if not self.running:
            # Stopping: give the claims back for whoever runs next.
            await self.hooks.run(licence, "release claims", hooks.releaseClaims_txn, self.node)
            return
        for delivery in claimed:
            self._inflight[key] = self._inflight.get(key, 0) + 1
            self._inflightTotal += 1
            d = defer.ensureDeferred(self._deliver(licence, delivery))
            self._sending[d] = endpoint

            def finished(result: Any, d: Any = d, key: Any = key) -> Any:
                self._sending.pop(d, None)
                self._inflightTotal -= 1
                left = self._inflight.get(key, 1) - 1
                if left > 0:
                    self._inflight[key] = left
                else:
                    self._inflight.pop(key, None)
                if hasattr(result, "check"):
                    self._logFailure("webhook delivery", result)
                self.kick(licence)
                return None

            d.addBoth(finished)

    async def _deliver(self, licence: int, delivery: hooks.Delivery) -> None:
        endpoint = delivery.endpoint
        try:
            request = await self._request(licence, delivery)
        except Refused as e:
            await self._record(licence, delivery, hooks.DEAD, None, f"refused: {e}")
            return
        if request is None:
            await self._record(licence, delivery, hooks.DEAD, None, "endpoint removed")
            return
        method, url, body, headers, connectTo, guard = request
        try:
            outcome = await self.sender.send(
                method,
                url,
                body,
                headers,
                connectTo=connectTo,
                guard=guard,
                allowPrivate=self.settings.allowPrivate,
                timeout=self.settings.timeout,
            )
        except Refused as e:
            await self._record(licence, delivery, hooks.DEAD, None, f"refused: {e}")
            return
        key = (licence, endpoint)
        if outcome.ok:
            self._paused.pop(key, None)
            await self._record(licence, delivery, hooks.DELIVERED, outcome.status, "")
            return
        failures = self._paused.get(key, (0.0, 0))[1] + 1
        self._paused[key] = (
            self._clock.seconds() + min(self.settings.maxRetry, self.settings.backoff(failures)),
            failures,
        )
        if outcome.status == 410:
            await self._record(licence, delivery, hooks.DEAD, outcome.status, outcome.error)
            return
        attempts = delivery.attempts + 1
        delay = self.settings.backoff(attempts)
        if outcome.retryAfter is not None:
            delay = max(delay, min(outcome.retryAfter, self.settings.maxRetry))
        nextAt = self._nowMS() + int(delay * 1000)
        if nextAt > delivery.retry_from + int(self.settings.retryFor * 1000):
            await self._record(licence, delivery, hooks.DEAD, outcome.status, outcome.error)
            self._log.warn(
                "webhook {event} to {endpoint} of licence {licence} is dead after "
                "{attempts} attempts: {error}",
                event=delivery.event,
                endpoint=endpoint,
                licence=licence,
                attempts=attempts,
                error=outcome.error,
            )
            return
        await self._record(licence, delivery, hooks.PENDING, outcome.status, outcome.error, nextAt)

    async def _record(
        self,
        licence: int,
        delivery: hooks.Delivery,
        state: str,
        status: int | None,
        error: str,
        nextAt: int | None = None,
    ) -> None:
        await self.hooks.run(
            licence,
            "record delivery",
            hooks.recordResult_txn,
            delivery.id,
            self.node,
            self._nowMS(),
            state=state,
            status=status,
            error=error,
            nextAt=nextAt,
        )
        if state == hooks.PENDING and nextAt is not None:
            self._due[licence] = min(self._due.get(licence, nextAt), nextAt)

    async def _request(
        self, licence: int, delivery: hooks.Delivery
    ) -> tuple[str, str, bytes, dict[str, str], str, bool] | None:
        """(method, url, body, headers, address to connect to, check the address) or None."""
        kind, _, ident = delivery.endpoint.partition(":")
        payload = delivery.payload or {}
        eventId = f"{licence}-{delivery.event_key.replace(':', '-')}"
        headers = {
            "User-Agent": USER_AGENT,
            "X-Livechat-Event": delivery.event,
            "X-Livechat-Event-Id": eventId,
            "X-Livechat-Delivery": str(delivery.id),
            "X-Livechat-Attempt": str(delivery.attempts + 1),
            "X-Livechat-Licence": str(licence),
        }
        if kind == "cfg":
            url = self.settings.urls.get(ident, "")
            if not url:
                return None
            method, secret = self.settings.method, self._serverSecret
            connectTo, guard = self.settings.rpcServerIP, False
        elif kind == "hook":
            hook = await self.hooks.getWebhook(licence, int(ident))
            if hook is None or not hook["enabled"]:
                return None
            url, method = hook["url"], hook["method"]
            secret = await self._licenceSecret(licence)
            connectTo, guard = "", True
        elif kind == "app":
            app = await self.hooks.getApp(licence, int(ident))
            if app is None or not app["enabled"]:
                return None
            url = app["endpoints"].get(delivery.event) or app["endpoint"]
            if not url:
                return None
            body = json.dumps(payloads.connectorNotification([payload]), sort_keys=True).encode(
                "utf-8"
            )
            secret = await self._licenceSecret(licence)
            for name, value in app["headers"].items():
                headers.setdefault(name, value)
            headers["Content-Type"] = "application/json"
            self._signInto(headers, secret, body)
            return "POST", url, body, headers, "", True
        else:
            return None
        if delivery.event not in payloads.RPC_FIELDS:
            raise Refused(f"no such event {delivery.event!r}")
        pairs = payloads.rpcFields(
            licence,
            delivery.event,
            payload.get("fields", {}),
            payload.get("chatId"),
            sendPassword=self.settings.sendPassword,
        )
        body = payloads.formEncode(pairs)
        if method == "POST":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            self._signInto(headers, secret, body)
        else:
            # GET: the signature covers the whole query string as sent.
            query = urlsplit(url).query
            self._signInto(headers, secret, (query.encode() + b"&" if query else b"") + body)
        return method, url, body, headers, connectTo, guard

    def _signInto(self, headers: dict[str, str], secret: str, body: bytes) -> None:
        timestamp = int(self._clock.seconds())
        headers["X-Livechat-Timestamp"] = str(timestamp)
        headers[payloads.SIGNATURE_HEADER] = payloads.sign(secret, timestamp, body)

    async def _licenceSecret(self, licence: int) -> str:
        # Not cached: a rotation through the API (on any node) applies at once.
        return str(await self.hooks.secret(licence))


def _licenceInfoAtStart_txn(txn: Any, nowMS: int) -> int:
    """The seed sends LICENCE_INFO "including server starting": one per licence."""
    count = 0
    for licence in accounts.listLicences_txn(txn):
        payload = accounts.licencePayload(licence)
        payload["EVENT"] = "LICENCE_INFO"
        accounts.logAccountEvent_txn(txn, licence.number, "LICENCE_INFO", payload, nowMS)
        count += 1
    return count
