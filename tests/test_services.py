"""
Tests for L{tests.support.services}: the real MariaDB and Redis servers the
rest of the test suite relies on.

These tests block (connect, start and stop processes) rather than use the
reactor: that is what the module is for, test set-up outside the reactor.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import uuid

import pymysql
from twisted.trial.unittest import SkipTest, TestCase

from tests.support import services
from tests.support.services import (
    MariaDBServer,
    RedisServer,
    ServiceUnavailable,
    freePort,
    mysqlConnectArgs,
    pingRedis,
)


def _requireBinaries(server: type[services._ServerProcess]) -> None:
    """Skip (or fail, under LIVECHAT_REQUIRE_SERVICES=1) if C{server} cannot run here."""
    missing = server.missingBinaries()
    if missing:
        message = (
            f"{', '.join(missing)} not installed: apt-get install {server.package} "
            f"to run private {server.label} servers"
        )
        if services.servicesRequired():
            raise ServiceUnavailable(message)
        raise SkipTest(message)


def _refuses(port: int) -> bool:
    """Whether a TCP connection to 127.0.0.1:C{port} is refused."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


class RedisServerTests(TestCase):
    """A private L{RedisServer} starts, restarts on its port, and stops."""

    def setUp(self) -> None:
        _requireBinaries(RedisServer)
        self.server = RedisServer()
        self.addCleanup(self.server.stop)

    def test_startAnswersPing(self) -> None:
        """
        start() launches redis-server on a free 127.0.0.1 port (not the
        machine's 6379), and it answers PING at its url.
        """
        self.server.start()
        self.assertTrue(self.server.running)
        self.assertNotEqual(self.server.port, 6379)
        self.assertEqual(self.server.url, f"redis://127.0.0.1:{self.server.port}/")
        pingRedis(self.server.url)

    def test_restartKeepsPort(self) -> None:
        """
        restart() stops the process and starts a new one on the same port,
        so a client can reconnect to the same URL and gets answers again.
        """
        self.server.start()
        url, port, pid = self.server.url, self.server.port, self.server.pid
        self.server.restart()
        self.assertEqual((self.server.url, self.server.port), (url, port))
        self.assertNotEqual(self.server.pid, pid)
        pingRedis(url)

    def test_stopRefusesConnections(self) -> None:
        """
        stop() ends the server, so connections to its port are refused, and
        removes its private directory; stop() again is harmless.
        """
        self.server.start()
        port, directory = self.server.port, self.server.directory
        assert directory is not None
        self.server.stop()
        self.assertFalse(self.server.running)
        self.assertTrue(_refuses(port))
        self.assertFalse(os.path.exists(directory))
        self.server.stop()

    def test_killThenStartSamePort(self) -> None:
        """
        kill() (SIGKILL) makes the port refuse connections; start() brings
        the server back on the same port.
        """
        self.server.start()
        port = self.server.port
        self.server.kill()
        self.assertTrue(_refuses(port))
        self.server.start()
        self.assertEqual(self.server.port, port)
        pingRedis(self.server.url)

    def test_givenPort(self) -> None:
        """A port passed to the constructor is the one the server listens on."""
        port = freePort()
        server = RedisServer(port=port)
        self.addCleanup(server.stop)
        server.start()
        self.assertEqual(server.port, port)
        pingRedis(f"redis://127.0.0.1:{port}/")


class MariaDBServerTests(TestCase):
    """A private L{MariaDBServer} starts and answers."""

    def setUp(self) -> None:
        _requireBinaries(MariaDBServer)
        self.server = MariaDBServer()
        self.addCleanup(self.server.stop)

    def _query(self, sql: str) -> list[tuple[object, ...]]:
        conn = pymysql.connect(connect_timeout=5, **mysqlConnectArgs(self.server.url))
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                rows = list(cur.fetchall())
            conn.commit()
            return rows
        finally:
            conn.close()

    def test_startAnswers(self) -> None:
        """
        start() initialises a data directory and runs mariadbd on a free
        port; root with no password can connect over TCP, the server
        speaks utf8mb4, and CREATE/DROP DATABASE work.
        """
        self.server.start()
        self.assertNotEqual(self.server.port, 3306)
        self.assertEqual(self.server.url, f"mysql://root@127.0.0.1:{self.server.port}/")
        [(charset,)] = self._query("SELECT @@character_set_server")
        self.assertEqual(charset, "utf8mb4")
        services.checkMysql(self.server.url)

    def test_restartKeepsPortAndData(self) -> None:
        """
        restart() brings the server back on the same port with its data:
        a row (with a 4-byte character) written before is read after.
        """
        self.server.start()
        port = self.server.port
        self._query("CREATE DATABASE kept")
        self._query("CREATE TABLE kept.t (v VARCHAR(10)) CHARACTER SET utf8mb4")
        self._query("INSERT INTO kept.t VALUES ('hi \U0001f600')")
        self.server.restart()
        self.assertEqual(self.server.port, port)
        self.assertEqual(self._query("SELECT v FROM kept.t"), [("hi \U0001f600",)])


class DiscoveryTests(TestCase):
    """L{services.mysqlURL} / L{services.redisURL} and the require helpers."""

    def test_mysqlURLCreatesAndDropsDatabase(self) -> None:
        """
        mysqlURL() names a live MariaDB on which a uniquely named database
        can be created, seen, and dropped.
        """
        url = services.requireMysql()
        name = f"livechat_test_{uuid.uuid4().hex[:12]}"
        conn = pymysql.connect(connect_timeout=5, **mysqlConnectArgs(url))
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{name}`")
                try:
                    cur.execute("SHOW DATABASES LIKE %s", (name,))
                    self.assertEqual(cur.fetchall(), ((name,),))
                finally:
                    cur.execute(f"DROP DATABASE `{name}`")
                cur.execute("SHOW DATABASES LIKE %s", (name,))
                self.assertEqual(cur.fetchall(), ())
        finally:
            conn.close()

    def test_redisURLAnswersPing(self) -> None:
        """redisURL() names a live Redis that answers PING."""
        pingRedis(services.requireRedis())

    def test_urlsAreCached(self) -> None:
        """Asking twice gives the same URL (one discovery per process)."""
        self.assertEqual(services.requireRedis(), services.requireRedis())
        self.assertEqual(services.requireMysql(), services.requireMysql())

    def test_deadEnvURLNamed(self) -> None:
        """
        An environment URL that does not answer is an error naming that
        URL (password masked), not a silent fallback.
        """
        url = f"redis://:secret@127.0.0.1:{freePort()}/"
        self.patch(os, "environ", {**os.environ, services.REDIS_URL_ENV: url})
        found = services._discover(services._REDIS)
        self.assertIsNone(found.url)
        message = str(found.error)
        port = services.redisAddress(url).port
        self.assertIn(f"redis://:***@127.0.0.1:{port}/", message)
        self.assertNotIn("secret", message)

    def test_privateFallback(self) -> None:
        """
        With no environment URL and nothing on the standard port, discovery
        starts a private Redis, which answers.
        """
        _requireBinaries(RedisServer)
        self.patch(os, "environ", {**os.environ, services.REDIS_URL_ENV: ""})
        spec = dataclasses.replace(services._REDIS, defaultURL=f"redis://127.0.0.1:{freePort()}/")
        found = services._discover(spec)
        assert found.server is not None, found.error
        self.addCleanup(found.server.stop)
        self.assertIn("private", found.origin)
        assert found.url is not None
        pingRedis(found.url)

    def _unavailable(self) -> str:
        raise ServiceUnavailable("nothing here")

    def test_requireSkipsWhenUnavailable(self) -> None:
        """Without LIVECHAT_REQUIRE_SERVICES, a missing service skips the test."""
        self.patch(services, "redisURL", self._unavailable)
        self.patch(os, "environ", {**os.environ, services.REQUIRE_ENV: ""})
        exc = self.assertRaises(SkipTest, services.requireRedis)
        self.assertIn("nothing here", str(exc))

    def test_requireFailsWhenRequired(self) -> None:
        """With LIVECHAT_REQUIRE_SERVICES=1, a missing service fails the test."""
        self.patch(services, "mysqlURL", self._unavailable)
        self.patch(os, "environ", {**os.environ, services.REQUIRE_ENV: "1"})
        self.assertRaises(ServiceUnavailable, services.requireMysql)
