"""
The service tree in this process, on real sockets (port 0): start, /health,
stop, the demo licence, the licence file, SIGHUP, storage going away.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from twisted.internet import defer, error, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.logger import globalLogPublisher
from twisted.protocols import portforward
from twisted.trial import unittest

from livechat.config import loadConfig
from livechat.model import LicenceType
from livechat.service import makeService
from tests.support import services
from tests.support.db import DialectMixin
from tests.support.http import getJSON
from tests.test_auth import cheapHasher


def writeConfig(path: str, text: str) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


class NodeMixin(DialectMixin):
    """Start a node of this process on port 0 and stop it after the test."""

    def nodeConfig(self, extra: str = "", database: str | None = None) -> str:
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.dataDir = os.path.join(directory, "data")
        lines = [
            "HTTP_LISTEN tcp:0:interface=127.0.0.1",
            "PANEL_LISTEN tcp:0:interface=127.0.0.1",
            "IWCS_LISTEN tcp:0:interface=127.0.0.1",
            f"DATA_DIR {self.dataDir}",
        ]
        if database:
            lines.append(f"DATABASE {database}")
        return writeConfig(os.path.join(directory, "lc_serv.cfg"), "\n".join(lines) + "\n" + extra)

    @defer.inlineCallbacks
    def startNode(self, path: str, **kw: Any) -> Any:
        config = loadConfig(path)
        node = makeService(config, reactor, hasher=cheapHasher(), **kw)
        node.startService()
        self.addCleanup(lambda: node.running and node.stopService())
        yield node.whenStarted()
        self.node = node
        return node

    def url(self, path: str = "") -> str:
        return self.node.getServiceNamed("http").url + path


class ServiceTests(NodeMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_startHealthStop(self) -> Any:
        """
        A node with only defaults and port 0 starts, answers /health with 200
        and a JSON body saying storage is ok, and after stopService no longer
        accepts connections.
        """
        node = yield self.startNode(self.nodeConfig())
        url = self.url()
        self.assertRegex(url, r"^http://127\.0\.0\.1:\d+/$")
        code, body = yield getJSON(url + "health")
        self.assertEqual(code, 200)
        self.assertEqual(body["status"], "ok")
        self.assertEqual(body["storage"], "ok")
        code, body = yield getJSON(url + "nothing-here")
        self.assertEqual((code, body["error"]), (404, "not_found"))
        # sqlite: the write-ahead log is checkpointed in the background.
        checkpoints = node.getServiceNamed("store")._checkpoints
        self.assertTrue(checkpoints.running)
        port = node.getServiceNamed("http").port.getHost().port
        yield node.stopService()
        self.assertFalse(checkpoints.running)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        yield self.assertFailure(
            endpoint.connect(protocol.Factory.forProtocol(protocol.Protocol)),
            error.ConnectionRefusedError,
        )

    @defer.inlineCallbacks
    def test_collectorTuning(self) -> Any:
        """
        A node that owns its process sets the young generation's threshold
        (GC_THRESHOLD) at start and, once started, freezes what start made
        (GC_FREEZE); a node that does not (tests, embedding) leaves Python's
        collector alone.
        """
        import gc

        before = gc.get_threshold()
        self.addCleanup(gc.set_threshold, *before)
        self.addCleanup(gc.unfreeze)
        gc.unfreeze()
        yield self.startNode(self.nodeConfig())
        self.assertEqual((gc.get_threshold(), gc.get_freeze_count()), (before, 0))
        yield self.node.stopService()
        yield self.startNode(self.nodeConfig(extra="GC_THRESHOLD 1234\n"), ownsProcess=True)
        self.assertEqual(gc.get_threshold(), (1234, *before[1:]))
        self.assertGreater(gc.get_freeze_count(), 0)
        yield self.node.stopService()
        gc.unfreeze()
        yield self.startNode(self.nodeConfig(extra="GC_FREEZE 0\n"), ownsProcess=True)
        self.assertEqual(gc.get_freeze_count(), 0)

    @defer.inlineCallbacks
    def test_demoLicenceOnce(self) -> Any:
        """
        The very first start creates a demo licence and operator with a
        random password, printed once in the start banner; a restart on the
        same data makes no second one and prints no password.
        """
        path = self.nodeConfig()
        banners: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            if "banner" in event:
                banners.append(event["banner"])

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        node = yield self.startNode(path)
        store = node.parts.store
        licences = yield store.listLicences()
        self.assertEqual(len(licences), 1)
        self.assertEqual(licences[0].lic_type, LicenceType.ASP_DEMO)
        demo = node.getServiceNamed("store").demo
        self.assertEqual(demo[0].number, licences[0].number)
        password = demo[2]
        self.assertIn(f"password {password}", banners[-1])
        self.assertIn(f"licence  {licences[0].number}", banners[-1])
        self.assertTrue(
            (
                yield node.parts.hasher.verify(
                    (yield store.getCredentials(demo[0].number, "demo"))[2], password
                )
            )
        )
        yield node.stopService()

        again = yield self.startNode(path)
        self.assertIsNone(again.getServiceNamed("store").demo)
        self.assertEqual(len((yield again.parts.store.listLicences())), 1)
        self.assertNotIn("password", banners[-1])

    @defer.inlineCallbacks
    def test_noDemoWhenSwitchedOff(self) -> Any:
        """DEMO_LICENCE 0 creates nothing."""
        node = yield self.startNode(self.nodeConfig("DEMO_LICENCE 0\n"))
        self.assertEqual((yield node.parts.store.listLicences()), [])

    @defer.inlineCallbacks
    def test_licenceFile(self) -> Any:
        """
        Licences in lc_licence.cfg beside lc_serv.cfg are created at start;
        changing the file and restarting updates them.
        """
        path = self.nodeConfig("DEMO_LICENCE 0\n")
        licenceFile = os.path.join(os.path.dirname(path), "lc_licence.cfg")
        writeConfig(licenceFile, "LICENCE 123456\nLIC_TYPE 1\nOPERATORS_COUNT_CC 4\n")
        node = yield self.startNode(path)
        licence = yield node.parts.store.getLicence(123456)
        self.assertEqual(licence.seats_cc, 4)
        yield node.stopService()
        writeConfig(
            licenceFile, "LICENCE 123456\nEXPIRATION_DATE 2027-12-31\nOPERATORS_COUNT_CC 6\n"
        )
        node = yield self.startNode(path)
        licence = yield node.parts.store.getLicence(123456)
        self.assertEqual(licence.seats_cc, 6)
        self.assertEqual(licence.expires_at, 1830297599000)

    @defer.inlineCallbacks
    def test_badLicenceFileStopsStart(self) -> Any:
        """A wrong licence file fails the start with its line and reason."""
        path = self.nodeConfig()
        writeConfig(
            os.path.join(os.path.dirname(path), "lc_licence.cfg"), "LICENCE 1\nLIC_TYPE 7\n"
        )
        node = makeService(loadConfig(path), reactor, hasher=cheapHasher())
        node.startService()
        self.addCleanup(node.stopService)
        failure = yield self.assertFailure(node.whenStarted(), Exception)
        self.assertIn("lc_licence.cfg:2: LIC_TYPE", str(failure))
        self.flushLoggedErrors()

    @defer.inlineCallbacks
    def test_healthWhenStorageFails(self) -> Any:
        """/health answers 503 with the reason when the store's check fails."""
        node = yield self.startNode(self.nodeConfig())

        def broken() -> defer.Deferred[None]:
            return defer.fail(OSError("disk on fire"))

        node.parts.store.health = broken  # type: ignore[method-assign]
        site = node.getServiceNamed("http").factory
        site.resource.children[b"health"]._check = broken
        code, body = yield getJSON(self.url("health"))
        self.assertEqual(code, 503)
        self.assertEqual(body["status"], "unavailable")
        self.assertEqual(body["reason"], "disk on fire")


class ReloadTests(NodeMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_sighup(self) -> Any:
        """
        A real SIGHUP re-reads the file: live keys (webhook URLs, log flags)
        change at once and the channel log starts; a key that needs a
        restart is kept and reported; an unreadable file changes nothing.
        """
        path = self.nodeConfig("DEMO_LICENCE 0\n")
        node = yield self.startNode(path, installSignalHandlers=True)
        reloaded: list[defer.Deferred[list[str]]] = []
        original = node.reload

        def spy() -> list[str]:
            messages = original()
            reloaded.pop(0).callback(messages)
            return messages

        node.reload = spy  # type: ignore[method-assign]

        def hup() -> defer.Deferred[list[str]]:
            d: defer.Deferred[list[str]] = defer.Deferred()
            reloaded.append(d)
            os.kill(os.getpid(), signal.SIGHUP)
            return d

        logDir = os.path.join(os.path.dirname(path), "logs")
        with open(path) as f:
            text = f.read().replace("HTTP_LISTEN tcp:0:", "HTTP_LISTEN tcp:13299:")
        with open(path, "w") as f:
            f.write(
                text + "EVENT_CHAT_STARTED http://hooks.example.com/chat\n"
                f"LC_LOG_PATH {logDir}\nLOG_NAME_SHORT 1\nLOG_PACKETS 1\n"
            )
        messages = yield hup()
        self.assertIn("EVENT_CHAT_STARTED is now 'http://hooks.example.com/chat'", messages)
        self.assertIn("LOG_PACKETS is now True", messages)
        self.assertIn(
            "HTTP_LISTEN changed in the file but needs a restart; "
            "keeping 'tcp:0:interface=127.0.0.1'",
            messages,
        )
        self.assertEqual(node.config["EVENT_CHAT_STARTED"], "http://hooks.example.com/chat")
        self.assertEqual(node.config["HTTP_LISTEN"], "tcp:0:interface=127.0.0.1")
        self.assertTrue(node.parts.logs.enabled("packets"))
        node.parts.logs.write("packets", "hello {who}", who="world")
        with open(os.path.join(logDir, "packets.log")) as f:
            self.assertIn("hello world", f.read())

        # logrotate moves the file away; SIGHUP makes the next line open a new one.
        os.rename(os.path.join(logDir, "packets.log"), os.path.join(logDir, "packets.log.1"))
        yield hup()
        node.parts.logs.write("packets", "after rotation")
        with open(os.path.join(logDir, "packets.log")) as f:
            self.assertEqual(f.read().count("after rotation"), 1)

        with open(path, "a") as f:
            f.write("NOT_A_KEY 1\n")
        messages = yield hup()
        self.assertTrue(messages[0].startswith("reload refused, configuration unchanged:"))
        self.assertIn("unknown key NOT_A_KEY", messages[0])
        self.assertTrue(node.parts.logs.enabled("packets"))

        yield node.stopService()
        self.assertIs(signal.getsignal(signal.SIGHUP), signal.SIG_DFL)


class _CutProxy(portforward.ProxyFactory):
    """A TCP proxy to MariaDB whose connections a test can cut."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.live: list[Any] = []

    def buildProtocol(self, addr: Any) -> Any:
        proto = super().buildProtocol(addr)
        self.live.append(proto)
        return proto

    def cut(self) -> None:
        for proto in self.live:
            if proto.transport is not None:
                proto.transport.abortConnection()
        self.live = []


class MysqlHealthTests(NodeMixin, unittest.TestCase):
    dialect = "mysql"

    @defer.inlineCallbacks
    def test_healthFollowsDatabase(self) -> Any:
        """
        With MariaDB reached through a proxy: /health is 200, then 503 once
        the proxy drops every connection and refuses new ones, then 200 again
        once the proxy is back (the pool reconnects by itself).
        """
        from urllib.parse import urlsplit

        real = urlsplit(services.requireMysql())
        proxy = _CutProxy(real.hostname, real.port or 3306)
        listening = reactor.listenTCP(0, proxy, interface="127.0.0.1")
        proxyPort = listening.getHost().port
        url = (
            self.databaseURL().replace(
                f"{real.hostname}:{real.port or 3306}", f"127.0.0.1:{proxyPort}"
            )
            + "&pool_min=1&pool_max=2"
        )
        yield self.startNode(self.nodeConfig(database=url))
        code, _ = yield getJSON(self.url("health"))
        self.assertEqual(code, 200)

        yield listening.stopListening()
        proxy.cut()
        code, body = yield getJSON(self.url("health"))
        self.assertEqual(code, 503)
        self.assertEqual(body["storage"], "unavailable")

        listening = reactor.listenTCP(proxyPort, proxy, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        code, _ = yield getJSON(self.url("health"))
        self.assertEqual(code, 200)
        self.flushLoggedErrors()

    @defer.inlineCallbacks
    def test_waitsForDatabaseAtStart(self) -> Any:
        """
        When MariaDB cannot be reached at start, the node logs it, retries,
        and finishes starting as soon as the database is there.
        """
        from urllib.parse import urlsplit

        real = urlsplit(services.requireMysql())
        proxy = _CutProxy(real.hostname, real.port or 3306)
        probe = reactor.listenTCP(0, proxy, interface="127.0.0.1")
        proxyPort = probe.getHost().port
        yield probe.stopListening()
        url = self.databaseURL().replace(
            f"{real.hostname}:{real.port or 3306}", f"127.0.0.1:{proxyPort}"
        )
        unavailable: defer.Deferred[None] = defer.Deferred()

        def observe(event: dict[str, Any]) -> None:
            if "database unavailable" in event.get("log_format", "") and not unavailable.called:
                unavailable.callback(None)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        config = loadConfig(self.nodeConfig(database=url))
        node = makeService(config, reactor, hasher=cheapHasher())
        node.getServiceNamed("store")._retryFirst = 0.05
        node.startService()
        self.addCleanup(lambda: node.running and node.stopService())
        yield unavailable
        self.assertFalse(node.whenStarted().called)
        listening = reactor.listenTCP(proxyPort, proxy, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        yield node.whenStarted()
        self.node = node
        code, _ = yield getJSON(self.url("health"))
        self.assertEqual(code, 200)


class RedisNodeTests(NodeMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_startsWithRedis(self) -> Any:
        """
        With REDIS set the node runs the Redis bus, presence and router: it
        starts, its bus connects, an operator's presence lands in Redis, and
        it stops cleanly.
        """
        import secrets

        from livechat.cluster import RedisPresence, RedisRouter
        from livechat.model import Licence, Operator

        prefix = f"t{secrets.token_hex(4)}:"
        url = services.requireRedis().rstrip("/") + f"/0?prefix={prefix}"
        node = yield self.startNode(self.nodeConfig(f"REDIS {url}\nDEMO_LICENCE 0\n"))
        core = node.parts.core
        self.assertIsInstance(core.presence, RedisPresence)
        self.assertIsInstance(core.router, RedisRouter)
        yield core.bus.whenConnected()
        store = node.parts.store
        licence = yield store.createLicence(Licence(number=321))
        op = yield store.createOperator(
            321, Operator(id=0, licence=0, nick="ann", operator_id="ann@example.com"), "x"
        )
        from tests.support.core import RecordingChannel

        session = core.connectOperator(licence, op, RecordingChannel(), "test")
        yield defer.ensureDeferred(session.start())
        keys = yield core.bus._commands.execute_command("KEYS", prefix + "lc:321:*")
        self.assertIn(prefix + f"lc:321:op:{op.id}", keys)
        session.disconnect()
        yield node.stopService()
