"""
The service tree of one livechat node.

L{makeService} builds it from a L{livechat.config.Config} without doing any
I/O; everything asynchronous (opening the database, migrating, listening)
happens in C{startService}, in order, and C{stopService} undoes it in reverse.
``twistd livechat`` (the plugin) and ``etc/livechat.tac`` both call
L{makeService}, so they run the same thing.
"""

from __future__ import annotations

import gc
import os
import secrets
import signal
import socket
from collections.abc import Callable
from typing import Any

import attr
from twisted.application import service
from twisted.internet import defer, task
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.python.failure import Failure

import livechat
from livechat.api import makeApiRoot
from livechat.auth import LoginThrottle, PasswordHasher, generatePassword, makePortal
from livechat.bus.memory import MemoryBus
from livechat.bus.redis import RedisBus
from livechat.cluster import RedisPresence, RedisRouter
from livechat.config import KEYS, Config, ConfigError, reloadConfig
from livechat.core.hub import Core, CoreSettings
from livechat.core.presence import MemoryPresence
from livechat.core.routing import MemoryRouter
from livechat.identity import IdentityKeyFile
from livechat.interfaces import IStore
from livechat.licencefile import readLicenceFile
from livechat.logs import ChannelLogs
from livechat.model import AccountType, Licence, LicenceType, Operator
from livechat.notify import EventsLogNotifier, FanoutNotifier
from livechat.notify.webhooks import WebhookService, WebhookSettings
from livechat.panel import makePanel, panelSettings
from livechat.protocols.agentweb import makeAgent, mountAgent
from livechat.protocols.http import makePublicRoot, makeSite
from livechat.protocols.iwcs import makeFactory as makeIwcsFactory
from livechat.protocols.web import makeWeb, mountWeb, tuneSite
from livechat.storage import SqlStore
from livechat.storage.database import CHECKPOINT_INTERVAL
from livechat.websession import SessionService, checkSessionSecret


class AsyncMultiService(service.MultiService):
    """
    A MultiService whose children may start and stop asynchronously: each
    child starts after the previous one's C{startService} Deferred fired, and
    they stop in reverse order, errors logged and consumed (as Buildbot's
    C{AsyncMultiService}).
    """

    _log = Logger()
    _starting: defer.Deferred[None] | None = None

    def startService(self) -> defer.Deferred[None]:  # type: ignore[override]
        service.Service.startService(self)

        async def start() -> None:
            for child in list(self):
                await defer.maybeDeferred(child.startService)

        self._starting = defer.ensureDeferred(start())
        return self._starting

    def stopService(self) -> defer.Deferred[None]:  # type: ignore[override]
        service.Service.stopService(self)
        starting = self._starting
        if starting is not None and not starting.called:
            starting.cancel()

        async def stop() -> None:
            for child in reversed(list(self)):
                if not child.running:
                    continue
                try:
                    await defer.maybeDeferred(child.stopService)
                except Exception:
                    self._log.failure("stopping {service}", service=child.name)

        return defer.ensureDeferred(stop())


class ListenerService(service.Service):
    """Listens on a Twisted endpoint description and logs where."""

    _log = Logger()

    def __init__(
        self,
        name: str,
        description: str,
        factory: Any,
        reactor: Any,
        label: str,
    ) -> None:
        self.setName(name)
        self.description = description
        self.factory = factory
        self.label = label
        self._reactor = reactor
        self.port: Any = None

    def startService(self) -> defer.Deferred[None]:  # type: ignore[override]
        service.Service.startService(self)
        endpoint = serverFromString(self._reactor, self.description)

        def listening(port: Any) -> None:
            self.port = port
            self._log.info("{label} listening on {url}", label=self.label, url=self.url)

        return endpoint.listen(self.factory).addCallback(listening)

    def stopService(self) -> defer.Deferred[None] | None:  # type: ignore[override]
        service.Service.stopService(self)
        port, self.port = self.port, None
        if port is not None:
            return defer.maybeDeferred(port.stopListening)
        return None

    def reconfigure(self, config: Config) -> None:
        """SIGHUP: hand the configuration to the factory, if it takes it."""
        reconfigure = getattr(self.factory, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(config)

    @property
    def url(self) -> str:
        """Where to reach this listener, e.g. C{http://127.0.0.1:13200/}."""
        if self.port is None:
            return ""
        host = self.port.getHost()
        address = getattr(host, "host", None)
        if address is None:
            return f"unix:{getattr(host, 'name', '?')}"
        if address in ("0.0.0.0", "::", ""):
            address = "127.0.0.1"
        if ":" in address:
            address = f"[{address}]"
        if self.name in ("http", "panel"):
            scheme = "https" if self.description.startswith("ssl:") else "http"
            return f"{scheme}://{address}:{host.port}/"
        return f"{address}:{host.port}"


class StoreService(service.Service):
    """
    Opens the store, retrying while the database server cannot be reached;
    applies the licence file; on the very first start creates the demo
    licence.
    """

    name = "store"  # type: ignore[assignment]
    _log = Logger()

    def __init__(
        self,
        config: Config,
        store: IStore,
        hasher: PasswordHasher,
        reactor: Any,
        *,
        retryFirst: float = 0.5,
        retryCap: float = 30.0,
    ) -> None:
        self.config = config
        self.store = store
        self.hasher = hasher
        self._reactor = reactor
        self._retryFirst = retryFirst
        self._retryCap = retryCap
        self.demo: tuple[Licence, str, str] | None = None
        """(licence, nick, password) of a demo licence made by this start."""
        self._checkpoints: task.LoopingCall | None = None

    def _checkpoint(self, db: Any) -> defer.Deferred[None]:
        d: defer.Deferred[None] = db.checkpoint()
        d.addErrback(lambda f: self._log.failure("sqlite checkpoint", f))
        return d

    def startService(self) -> defer.Deferred[None]:  # type: ignore[override]
        service.Service.startService(self)
        return defer.ensureDeferred(self._start())

    async def _start(self) -> None:
        delay = self._retryFirst
        while True:
            try:
                await self.store.open()
                break
            except Exception as e:
                engine = getattr(getattr(self.store, "db", None), "engine", None)
                if engine is None or not engine.isConnectionError(e):
                    raise
                self._log.error(
                    "database unavailable ({error}); retrying in {delay:.0f} s",
                    error=e,
                    delay=delay,
                )
                await task.deferLater(self._reactor, delay)
                delay = min(delay * 2, self._retryCap)
        describe = getattr(self.store, "describe", lambda: self.store.dialect)
        self._log.info("storage ready: {where}", where=describe())
        db = getattr(self.store, "db", None)
        if db is not None and db.engine.name == "sqlite" and self.running:
            self._checkpoints = task.LoopingCall(self._checkpoint, db)
            self._checkpoints.clock = self._reactor
            self._checkpoints.start(CHECKPOINT_INTERVAL, now=False)
        await self._applyLicenceFile()
        await self._createDemoLicence()

    async def _applyLicenceFile(self) -> None:
        path = self.config.licenceFile
        if path is None:
            return
        for entry in readLicenceFile(path):
            entry = dict(entry)
            number = entry.pop("number")
            existing = await self.store.getLicence(number)
            if existing is None:
                await self.store.createLicence(Licence(number=number, **entry))
                self._log.info("licence {licence} created from {path}", licence=number, path=path)
            else:
                changes = {k: v for k, v in entry.items() if getattr(existing, k) != v}
                if changes:
                    await self.store.updateLicence(number, **changes)
                    self._log.info(
                        "licence {licence} updated from {path}: {fields}",
                        licence=number,
                        path=path,
                        fields=", ".join(sorted(changes)),
                    )

    async def _createDemoLicence(self) -> None:
        if not self.config["DEMO_LICENCE"]:
            return
        if await self.store.getState("demo_licence") is not None:
            return
        if await self.store.listLicences():
            await self.store.setState("demo_licence", "none: licences existed")
            return
        if not await self.store.claimState("demo_licence", "creating"):
            return  # another node is making it
        password = generatePassword()
        passwordHash = await self.hasher.hash(password)
        licence = await self.store.createLicence(
            Licence(number=0, lic_type=LicenceType.ASP_DEMO, name="Demo licence"),
            Operator(
                id=0,
                licence=0,
                nick="demo",
                operator_id="demo@example.com",
                first_name="Demo",
                last_name="Operator",
                account_type=AccountType.CONTACT_CENTER,
                is_admin=True,
            ),
            passwordHash,
        )
        await self.store.setState("demo_licence", str(licence.number))
        self.demo = (licence, "demo", password)

    def stopService(self) -> defer.Deferred[None]:  # type: ignore[override]
        service.Service.stopService(self)
        if self._checkpoints is not None and self._checkpoints.running:
            self._checkpoints.stop()
        self._checkpoints = None
        return self.store.close()


class CoreService(service.Service):
    """Runs the chat core: recovers routing state at start, stops its timers."""

    name = "core"  # type: ignore[assignment]

    def __init__(self, core: Core) -> None:
        self.core = core

    def startService(self) -> defer.Deferred[None]:  # type: ignore[override]
        service.Service.startService(self)

        async def start() -> None:
            for part in (self.core.presence, self.core.router):
                starter = getattr(part, "start", None)
                if starter is not None:
                    starter()
            await self.core.recover()
            self.core.start()

        return defer.ensureDeferred(start())

    def stopService(self) -> defer.Deferred[Any]:  # type: ignore[override]
        service.Service.stopService(self)
        for part in (self.core.presence, self.core.router):
            stopper = getattr(part, "stop", None)
            if stopper is not None:
                stopper()
        return self.core.stop()

    def reconfigure(self, config: Config) -> None:
        self.core.reconfigure(config)


@attr.s(auto_attribs=True)
class Parts:
    """The pieces of a node that its services share (no global registry)."""

    config: Config
    reactor: Any
    store: IStore
    hasher: PasswordHasher
    throttle: LoginThrottle
    logs: ChannelLogs
    portal: Any
    core: Core
    webhooks: WebhookService | None = None
    sessions: SessionService | None = None


class LivechatService(AsyncMultiService):
    """
    The root service of a node.  C{whenStarted()} fires once every listener
    is up; C{reload()} is what SIGHUP does.
    """

    _log = Logger()

    def __init__(
        self,
        parts: Parts,
        *,
        installSignalHandlers: bool = False,
        exitOnFatal: bool = False,
        ownsProcess: bool = False,
    ) -> None:
        super().__init__()
        self.setName("livechat")
        self.parts = parts
        self._installSignals = installSignalHandlers
        self._exitOnFatal = exitOnFatal
        self._ownsProcess = ownsProcess
        self._previousHUP: Any = None
        self._waiting: list[defer.Deferred[None]] = []
        self._outcome: Failure | None | bool = False
        self.reloads: list[list[str]] = []

    @property
    def config(self) -> Config:
        return self.parts.config

    def whenStarted(self) -> defer.Deferred[None]:
        """A Deferred that fires when the node is fully started (or fails to)."""
        if self._outcome is None:
            return defer.succeed(None)
        if isinstance(self._outcome, Failure):
            return defer.fail(self._outcome)
        d: defer.Deferred[None] = defer.Deferred()
        self._waiting.append(d)
        return d

    def _settle(self, outcome: Failure | None) -> None:
        self._outcome = outcome
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            if outcome is None:
                d.callback(None)
            else:
                d.errback(outcome)

    def startService(self) -> defer.Deferred[None]:  # type: ignore[override]
        self.parts.logs.configure(self.config)
        if self._ownsProcess:
            gc.set_threshold(self.config["GC_THRESHOLD"], *gc.get_threshold()[1:])
        self._log.info(
            "livechat {version} starting (config: {path})",
            version=livechat.__version__,
            path=self.config.path or "defaults",
        )
        d = super().startService()
        d.addCallbacks(self._ready, self._failed)
        return d

    def _ready(self, _: Any) -> None:
        if self._installSignals:
            self._previousHUP = signal.signal(signal.SIGHUP, self._onSIGHUP)
        lines = [f"livechat {livechat.__version__} is running:"]
        for child in self:
            if isinstance(child, ListenerService):
                lines.append(f"  {child.label:<40} {child.url}")
        store = self.getServiceNamed("store")
        assert isinstance(store, StoreService)
        if store.demo is not None:
            licence, nick, password = store.demo
            lines += [
                "",
                "  First start: a demo licence was created. Its credentials are",
                "  shown this once; change the password with",
                f"  `livechat-admin set-password {licence.number} {nick}`.",
                f"    licence  {licence.number}",
                f"    nick     {nick}",
                f"    password {password}",
            ]
        self._log.info("{banner}", banner="\n".join(lines))
        if self._ownsProcess and self.config["GC_FREEZE"]:
            # What start made (modules, the service tree, settings) lives as
            # long as the process: the collector need not walk it again.
            gc.collect()
            gc.freeze()
        self._settle(None)

    def _failed(self, failure: Failure) -> None:
        if failure.check(defer.CancelledError):
            return
        self._log.failure("livechat could not start", failure)
        self._settle(failure)
        if self._exitOnFatal:
            reactor = self.parts.reactor
            reactor.addSystemEventTrigger("after", "shutdown", _exitWithError)
            reactor.stop()

    def stopService(self) -> defer.Deferred[None]:  # type: ignore[override]
        if self._previousHUP is not None:
            signal.signal(signal.SIGHUP, self._previousHUP)
            self._previousHUP = None
        d = super().stopService()

        def closeLogs(result: Any) -> Any:
            self.parts.logs.closeAll()
            return result

        return d.addBoth(closeLogs)

    # -- SIGHUP --------------------------------------------------------------------

    def _onSIGHUP(self, signum: int, frame: Any) -> None:
        self.parts.reactor.callFromThread(self.reload)

    def reload(self) -> list[str]:
        """
        Re-read the configuration file; apply the keys that can change live,
        keep (and report) the others, reopen the log files.

        @return: the messages logged, also kept in C{self.reloads}.
        """
        messages: list[str] = []
        old = self.parts.config
        try:
            new = reloadConfig(old)
        except ConfigError as e:
            messages.append(f"reload refused, configuration unchanged: {e}")
        else:
            changed = old.changes(new)
            values = dict(old.values)
            origins = dict(old.origins)
            applied = []
            for key in changed:
                if KEYS[key].live:
                    values[key] = new.values[key]
                    origins[key] = new.origins[key]
                    applied.append(key)
                else:
                    messages.append(
                        f"{key} changed in the file but needs a restart; "
                        f"keeping {old.describe(key)}"
                    )
            merged = attr.evolve(old, values=values, origins=origins)
            self.parts.config = merged
            for key in applied:
                messages.append(f"{key} is now {merged.describe(key)}")
            self.parts.throttle.configure(
                merged["LOGIN_MAX_FAILURES"],
                merged["LOGIN_MAX_FAILURES_PER_ADDRESS"],
                merged["LOGIN_FAILURE_WINDOW"],
            )
            for child in self:
                reconfigure: Callable[[Config], None] | None = getattr(child, "reconfigure", None)
                if reconfigure is not None:
                    reconfigure(merged)
            if not changed:
                messages.append("configuration unchanged")
        self.parts.logs.configure(self.parts.config)
        messages.append("log files reopened")
        for message in messages:
            self._log.info("SIGHUP: {message}", message=message)
        self.reloads.append(messages)
        return messages


def redisSettings(url: str) -> tuple[str, str]:
    """The REDIS URL without its C{?prefix=} option, and that prefix."""
    from urllib.parse import parse_qsl, urlsplit, urlunsplit

    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
    prefix = options.pop("prefix", "")
    return urlunsplit(parts._replace(query="")), prefix


def _exitWithError() -> None:
    import os

    os._exit(1)


def makeParts(
    config: Config,
    reactor: Any,
    *,
    store: IStore | None = None,
    hasher: PasswordHasher | None = None,
) -> Parts:
    """Build the shared pieces of a node (no I/O)."""
    if store is None:
        store = SqlStore(config.databaseURL, reactor)
    if hasher is None:
        hasher = PasswordHasher.forReactor(reactor)
    logs = ChannelLogs(reactor)
    settings = CoreSettings.fromConfig(config)
    bus: Any
    if config["REDIS"]:
        url, prefix = redisSettings(config["REDIS"])
        nodeId = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
        bus = RedisBus(url, reactor, prefix=prefix, nodeId=nodeId)
        ttl = config["PRESENCE_TTL"]
        presence: Any = RedisPresence(
            bus, reactor, nodeId, settings.visitorIdle, settings.maxVisitorsPerLicence, ttl=ttl
        )
        router: Any = RedisRouter(bus, reactor, ttl=ttl)
    else:
        nodeId = "local"
        bus = MemoryBus()
        presence = MemoryPresence(reactor, settings.visitorIdle, settings.maxVisitorsPerLicence)
        router = MemoryRouter(reactor)
    webhooks = WebhookService(store, WebhookSettings.fromConfig(config), reactor)
    core = Core(
        store,
        bus,
        router,
        FanoutNotifier([EventsLogNotifier(logs), webhooks]),
        reactor,
        settings,
        presence=presence,
        nodeId=nodeId,
    )
    core.storedListeners.append(webhooks.stored)
    throttle = LoginThrottle(
        reactor,
        maxPerAccount=config["LOGIN_MAX_FAILURES"],
        maxPerAddress=config["LOGIN_MAX_FAILURES_PER_ADDRESS"],
        window=config["LOGIN_FAILURE_WINDOW"],
    )
    return Parts(
        config=config,
        reactor=reactor,
        store=store,
        hasher=hasher,
        throttle=throttle,
        logs=logs,
        portal=makePortal(store, hasher, throttle, reactor),
        core=core,
        webhooks=webhooks,
    )


def makeService(
    config: Config,
    reactor: Any = None,
    *,
    store: IStore | None = None,
    hasher: PasswordHasher | None = None,
    installSignalHandlers: bool = False,
    exitOnFatal: bool = False,
    ownsProcess: bool = False,
) -> LivechatService:
    """
    The MultiService of one node.  No I/O happens here.

    @param reactor: the reactor to use; the composition roots (the plugin,
        the .tac files) pass the global one.
    @param ownsProcess: the node is the process (the plugin, the .tac
        files), so it may tune Python's garbage collector (C{GC_THRESHOLD},
        C{GC_FREEZE}); tests that start many nodes in one process do not.
    """
    if reactor is None:
        raise TypeError("makeService needs the reactor (the plugin and .tac pass it)")
    checkSessionSecret(config)
    parts = makeParts(config, reactor, store=store, hasher=hasher)
    root = LivechatService(
        parts,
        installSignalHandlers=installSignalHandlers,
        exitOnFatal=exitOnFatal,
        ownsProcess=ownsProcess,
    )
    StoreService(config, parts.store, parts.hasher, reactor).setServiceParent(root)
    parts.sessions = SessionService(parts.store, config, reactor, parts.portal)
    parts.sessions.setServiceParent(root)
    if isinstance(parts.core.bus, service.Service):
        parts.core.bus.setServiceParent(root)
    CoreService(parts.core).setServiceParent(root)
    assert parts.webhooks is not None
    parts.webhooks.setServiceParent(root)
    publicRoot = makePublicRoot(parts.store.health, reactor)
    apiRoot = makeApiRoot(parts)
    publicRoot.putChild(b"api", apiRoot)
    identity = IdentityKeyFile(config.verifyKeyFile, reactor)
    identity.setServiceParent(root)
    web, webService = makeWeb(parts, reactor)
    web.identity = identity
    webService.setServiceParent(root)
    mountWeb(publicRoot, web)
    assert parts.sessions is not None
    panelSessions = parts.sessions.manager(panelSettings(config))
    apiRoot.v1.services.update(sessions=panelSessions, settingsCache=web.cache)
    agent, agentService = makeAgent(parts, reactor)
    agent.calls.reception = web.reception
    agentService.setServiceParent(root)
    mountAgent(publicRoot, agent)
    site = tuneSite(makeSite(publicRoot))
    public = ListenerService(
        "http",
        config["HTTP_LISTEN"],
        site,
        reactor,
        "public web (widget, API, /health)",
    )
    public.setServiceParent(root)
    if config["PANEL_LISTEN"]:
        panel = makePanel(parts, panelSessions)
        panel.api.services.update(settingsCache=web.cache, publicUrl=lambda: public.url)
        panel.service.setServiceParent(root)
        ListenerService(
            "panel", config["PANEL_LISTEN"], panel.site, reactor, "control panel (administrators)"
        ).setServiceParent(root)
    if config["IWCS_LISTEN"]:
        ListenerService(
            "iwcs",
            config["IWCS_LISTEN"],
            makeIwcsFactory(parts, reactor, web.reception, identity),
            reactor,
            "IWCS (agent applications, controls)",
        ).setServiceParent(root)
    return root
