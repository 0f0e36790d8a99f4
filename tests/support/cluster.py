"""
A livechat cluster of real processes for integration tests: a database of
its own on the real MariaDB (a unique prefix, dropped after the test), a
private Redis on a free port (the test may stop and start it), N
``twistd -n livechat`` nodes on free ports with the same lc_serv.cfg, and
haproxy in front, configured from etc/haproxy.cfg itself (its binds and
servers rewritten to this test's ports, everything else as shipped).

    cluster = Cluster(self, nodes=2)
    yield cluster.start()                  # everything up, /health 200 through haproxy
    cluster.nodes[0].url                   # http://127.0.0.1:PORT/ (one node)
    cluster.haproxy.url                    # http://127.0.0.1:PORT/ (haproxy's HTTP frontend)
    cluster.kill(1)                        # SIGKILL one node
    yield cluster.haproxy.serverDown("node2")
    cluster.redis.stop(); cluster.redis.start()   # same port, empty

Every wait has a deadline; nothing sleeps: waits are on a process's output
or on an answer, polled at most every 0.1 s until the deadline.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from typing import Any

from twisted.internet import defer, reactor, task, threads
from twisted.trial import unittest

from livechat.auth import PasswordHasher
from livechat.client import IwcsClientFactory
from livechat.model import AccountType, Licence, Operator, OperatorStatus
from livechat.storage import SqlStore
from tests.support import services
from tests.support.db import _dropDatabases
from tests.support.http import request
from tests.support.iwcs import RecordingClient
from tests.support.process import ServerProcess
from tests.support.web import WSClient, connectWS, postJSON

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ORIGIN = "https://shop.example"
LICENCE = 100
START_TIMEOUT = 90.0


def haproxyBinary() -> str | None:
    return shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None
    )


def requireHaproxy() -> str:
    """The haproxy binary, or skip (fail under LIVECHAT_REQUIRE_SERVICES=1) with the reason."""
    binary = haproxyBinary()
    if binary is None:
        reason = "haproxy is not installed (apt-get install haproxy; .ci/run installs it)"
        if services.servicesRequired():
            raise AssertionError(reason)
        raise unittest.SkipTest(reason)
    return binary


@defer.inlineCallbacks
def until(
    check: Any, what: str, timeout: float = 30.0, every: float = 0.1
) -> Any:  # pragma: no cover - trivial
    """
    Call C{check()} (may return a Deferred) until it returns something
    true, at most every C{every} s; fail naming C{what} after C{timeout}.
    """
    deadline = reactor.seconds() + timeout
    last: Any = None
    while True:
        try:
            result = yield defer.maybeDeferred(check)
        except Exception as e:
            result, last = None, e
        if result:
            return result
        if reactor.seconds() >= deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s (last error: {last!r})")
        yield task.deferLater(reactor, every, lambda: None)


class Node:
    """One ``twistd -n livechat`` of the cluster."""

    def __init__(self, name: str, httpPort: int, iwcsPort: int, dataDir: str) -> None:
        self.name = name
        self.httpPort = httpPort
        self.iwcsPort = iwcsPort
        self.dataDir = dataDir
        self.process: ServerProcess | None = None

    def __repr__(self) -> str:
        return f"<Node {self.name} :{self.httpPort}>"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpPort}/"

    @property
    def wsURL(self) -> str:
        return f"ws://127.0.0.1:{self.httpPort}/ws?licence={LICENCE}"

    def iwcsEndpoint(self) -> Any:
        from twisted.internet.endpoints import TCP4ClientEndpoint

        return TCP4ClientEndpoint(reactor, "127.0.0.1", self.iwcsPort, timeout=10)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return int(self.process.transport.pid)

    @property
    def output(self) -> str:
        return self.process.output if self.process is not None else ""


class Haproxy:
    """haproxy in front of the nodes, from etc/haproxy.cfg."""

    def __init__(self, testcase: unittest.TestCase, binary: str, directory: str) -> None:
        self.testcase = testcase
        self.binary = binary
        self.directory = directory
        self.httpPort = services.freePort()
        self.httpsPort = services.freePort()
        self.iwcsPort = services.freePort()
        self.process: ServerProcess | None = None
        self.config = os.path.join(directory, "haproxy.cfg")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpPort}/"

    @property
    def wsURL(self) -> str:
        return f"ws://127.0.0.1:{self.httpPort}/ws?licence={LICENCE}"

    def write(self, nodes: list[Node]) -> str:
        """etc/haproxy.cfg with this test's addresses; the file's path."""
        from tests.support.tls import selfSignedPEM

        pem = self.pem = os.path.join(self.directory, "haproxy.pem")
        with open(pem, "wb") as f:
            f.write(selfSignedPEM())
        with open(os.path.join(ROOT, "etc", "haproxy.cfg")) as f:
            text = f.read()
        text = rewriteHaproxy(text, self, nodes, pem)
        with open(self.config, "w") as f:
            f.write(text)
        return self.config

    def start(self) -> None:
        self.process = ServerProcess.spawn(self.testcase, [self.binary, "-db", "-f", self.config])

    def iwcsEndpoint(self) -> Any:
        """IWCS through haproxy: TLS (terminated by haproxy) to its IWCS frontend."""
        from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS
        from twisted.internet.ssl import Certificate, optionsForClientTLS

        with open(self.pem, "rb") as f:
            authority = Certificate.loadPEM(f.read())
        return wrapClientTLS(
            optionsForClientTLS("localhost", trustRoot=authority),
            TCP4ClientEndpoint(reactor, "127.0.0.1", self.iwcsPort, timeout=10),
        )

    def serverDown(self, server: str, timeout: float = 30.0) -> defer.Deferred[Any]:
        """Fires when haproxy has taken C{server} out of both backends (HTTP and IWCS)."""
        assert self.process is not None
        return until(
            lambda: all(
                f"Server {backend}/{server} is DOWN" in self.process.output  # type: ignore[union-attr]
                for backend in ("livechat_http", "livechat_iwcs")
            ),
            f"haproxy taking {server} out",
            timeout,
        )


def rewriteHaproxy(text: str, haproxy: Haproxy, nodes: list[Node], pem: str) -> str:
    """
    etc/haproxy.cfg with its binds on this test's loopback ports, its
    certificate the test's, its servers the test's nodes; the rest (modes,
    balance, timeouts, health checks) untouched.
    """
    text = text.replace("/etc/haproxy/livechat.pem", pem)
    text = re.sub(r"bind :443 ", f"bind 127.0.0.1:{haproxy.httpsPort} ", text)
    text = re.sub(r"bind :80\b", f"bind 127.0.0.1:{haproxy.httpPort}", text)
    text = re.sub(r"bind :13201 ", f"bind 127.0.0.1:{haproxy.iwcsPort} ", text)
    # The shipped maxconn wants a file-descriptor limit a test box may not grant.
    text = re.sub(r"maxconn 200000", "maxconn 2000", text)
    text = re.sub(r"maxconn 50000", "maxconn 1000", text)
    out = []
    written: set[str] = set()
    for line in text.splitlines():
        match = re.match(r"\s+server node\d+ 10\.0\.0\.\d+:(\d+) check(.*)", line)
        if match is None:
            out.append(line)
            continue
        port = int(match.group(1))
        kind = "http" if port == 13200 else "iwcs"
        if kind in written:
            continue
        written.add(kind)
        for index, node in enumerate(nodes, 1):
            if kind == "http":
                out.append(f"    server node{index} 127.0.0.1:{node.httpPort} check")
            else:
                out.append(
                    f"    server node{index} 127.0.0.1:{node.iwcsPort} check port {node.httpPort}"
                )
    if written != {"http", "iwcs"}:
        raise AssertionError("etc/haproxy.cfg no longer has node1..3 servers to rewrite")
    return "\n".join(out) + "\n"


class Cluster:
    """
    The whole set-up of docs/operations.md "Several nodes" on one machine.

    @ivar operators: nick -> (Operator, password) of the operators made.
    """

    def __init__(
        self,
        testcase: unittest.TestCase,
        nodes: int = 2,
        settings: dict[str, str] | None = None,
        haproxy: bool = True,
    ) -> None:
        self.testcase = testcase
        self.directory = os.path.abspath(testcase.mktemp())
        os.makedirs(self.directory)
        self.nodes = [
            Node(
                f"node{i}",
                services.freePort(),
                services.freePort(),
                os.path.join(self.directory, f"node{i}"),
            )
            for i in range(1, nodes + 1)
        ]
        self.settings = dict(settings or {})
        self.wantHaproxy = haproxy
        self.haproxy: Haproxy | None = None
        self.redis = services.RedisServer()
        self.databaseURL = ""
        self.operators: dict[str, tuple[Operator, str]] = {}
        self.secret = secrets.token_hex(32)

    # -- start -------------------------------------------------------------------

    @defer.inlineCallbacks
    def start(self, operators: tuple[str, ...] = ("anna",)) -> Any:
        binary = requireHaproxy() if self.wantHaproxy else None
        if not services.RedisServer.installed():
            raise unittest.SkipTest("redis-server is not installed")
        base = services.requireMysql()
        prefix = f"cl{os.getpid()}_{secrets.token_hex(3)}_"
        self.testcase.addCleanup(threads.deferToThread, _dropDatabases, base, prefix)
        self.databaseURL = base.rstrip("/") + "/?prefix=" + prefix
        self.redis.start()
        self.testcase.addCleanup(self.redis.stop)
        yield self.prepare(operators)
        config = self.writeConfig()
        for node in self.nodes:
            self.startNode(node, config)
        yield defer.gatherResults([self.ready(node) for node in self.nodes])
        if binary is not None:
            self.haproxy = Haproxy(self.testcase, binary, self.directory)
            self.haproxy.write(self.nodes)
            self.haproxy.start()
            yield until(lambda: self.healthy(self.haproxy.url), "haproxy's /health", 30)
        return self

    @defer.inlineCallbacks
    def prepare(self, nicks: tuple[str, ...]) -> Any:
        """The licence, its operators (real passwords) and its allowed origin, in the database."""
        store = SqlStore(self.databaseURL, reactor)
        yield store.open()
        try:
            yield store.createLicence(Licence(number=LICENCE))
            hasher = PasswordHasher.forReactor(reactor, timeCost=1, memoryCostKiB=8192)
            for nick in nicks:
                password = secrets.token_urlsafe(12)
                op = yield store.createOperator(
                    LICENCE,
                    Operator(
                        id=0,
                        licence=0,
                        nick=nick,
                        operator_id=f"{nick}@example.com",
                        first_name=nick.capitalize(),
                        account_type=AccountType.CONTACT_CENTER,
                    ),
                    (yield hasher.hash(password)),
                )
                self.operators[nick] = (op, password)
            yield store.forLicence(LICENCE).setSetting("web.origins", json.dumps([ORIGIN]))
        finally:
            yield store.close()

    def writeConfig(self) -> str:
        """The lc_serv.cfg every node shares (docs/operations.md "Three nodes")."""
        values = {
            "DATABASE": self.databaseURL,
            "REDIS": self.redis.url.rstrip("/") + "/0?prefix=lc:",
            "SESSION_SECRET": self.secret,
            "PANEL_LISTEN": "none",
            "DEMO_LICENCE": "0",
            "TRUSTED_PROXIES": "127.0.0.1",
        }
        values.update(self.settings)
        path = os.path.join(self.directory, "lc_serv.cfg")
        with open(path, "w") as f:
            for key, value in values.items():
                f.write(f"{key} {value}\n")
        return path

    def startNode(self, node: Node, config: str) -> None:
        os.makedirs(node.dataDir, exist_ok=True)
        node.process = ServerProcess.twistd(
            self.testcase,
            [
                "-n",
                "--pidfile=",
                "livechat",
                "--config",
                config,
                "--data-dir",
                node.dataDir,
                "--http",
                f"tcp:{node.httpPort}:interface=127.0.0.1",
                "--iwcs",
                f"tcp:{node.iwcsPort}:interface=127.0.0.1",
            ],
        )

    @defer.inlineCallbacks
    def ready(self, node: Node) -> Any:
        assert node.process is not None
        yield node.process.waitFor(r"livechat \S+ is running:", START_TIMEOUT)
        # Both Redis connections are up (they may come before or after the banner).
        yield until(
            lambda: (
                "redis: subscriber up" in node.output
                and "redis: command connection up" in node.output
            ),
            f"{node.name}'s Redis connections",
            START_TIMEOUT,
        )

    @defer.inlineCallbacks
    def healthy(self, url: str) -> Any:
        code, _, body = yield request("GET", url + "health")
        return code == 200 and json.loads(body)["status"] == "ok"

    # -- events ----------------------------------------------------------------------

    def kill(self, index: int) -> defer.Deferred[int]:
        """SIGKILL node C{index}; fires when it has ended."""
        process = self.nodes[index].process
        assert process is not None
        return process.kill()

    # -- agents (IWCS, livechat.client) ----------------------------------------------

    def agentFactory(
        self, nick: str = "anna", status: OperatorStatus | None = None
    ) -> IwcsClientFactory:
        """
        The agent's client state (credentials, last sequence per chat): a
        new connection made with it resumes where the last one stopped.
        """
        op, password = self.operators[nick]
        return IwcsClientFactory(
            LICENCE,
            nick=op.nick,
            password=password,
            protocol=RecordingClient,
            status=status,
            clock=task.Clock(),  # no keep-alive PINGs: the test is short
        )

    @defer.inlineCallbacks
    def agent(self, factory: IwcsClientFactory, endpoint: Any) -> Any:
        """Connect C{factory} once through C{endpoint}; fires with the logged-in client."""
        client = yield endpoint.connect(factory)
        self.testcase.addCleanup(_hangUp, client)
        yield client.loggedIn().addTimeout(30, reactor)
        return client

    # -- visitors -------------------------------------------------------------------

    @defer.inlineCallbacks
    def visitor(self, url: str, wsURL: str, token: str | None = None, resume: Any = None) -> Any:
        """
        A visitor's tab: a page view at C{url} (unless C{token} is given),
        then the WebSocket at C{wsURL} and its hello.  Fires with
        C{(client, welcome)}.
        """
        if token is None:
            code, _, body = yield postJSON(
                url + "livesupport/monitor",
                {"licence": LICENCE, "url": ORIGIN + "/shop", "title": "Shop"},
                {"Origin": ORIGIN},
            )
            if code != 200:
                raise AssertionError(f"page view refused: {code} {body}")
            token = body["token"]
        client: WSClient = yield connectWS(self.testcase, wsURL, ORIGIN)
        welcome = yield client.ask("hello", token=token, resume=resume)
        if welcome.get("type") != "welcome":
            raise AssertionError(f"hello refused: {welcome}")
        client.token = token  # type: ignore[attr-defined]
        client.welcome = welcome  # type: ignore[attr-defined]
        return client, welcome


def _hangUp(client: RecordingClient) -> Any:
    client.factory.stopping = True
    transport: Any = client.transport
    if not client.gone and transport is not None:
        transport.abortConnection()
        return client.lost
    return None
