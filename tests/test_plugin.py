"""
``twistd livechat`` for real: the plugin is found, options override the file,
and a child process starts, answers /health, reloads on SIGHUP and stops on
SIGTERM.  The .tac file runs the same service.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.application.service import IServiceMaker
from twisted.internet import defer
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial import unittest

from livechat.tap import Options
from tests.support.http import getJSON
from tests.support.process import ServerProcess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class PluginTests(unittest.TestCase):
    def test_found(self) -> None:
        """twistd's plugin system finds the livechat service maker."""
        makers = {m.tapname: m for m in getPlugins(IServiceMaker)}
        self.assertIn("livechat", makers)
        self.assertIs(makers["livechat"].options, Options)

    def test_optionsOverrideFile(self) -> None:
        """Command-line options win over lc_serv.cfg; --set reaches any key."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("HTTP_LISTEN tcp:1000\nSMTP_PORT 25\nDATA_DIR /tmp/a\n")
        options = Options()
        options.parseOptions(
            [
                "--config",
                path,
                "--http",
                "tcp:0:interface=127.0.0.1",
                "--data-dir",
                "/tmp/b",
                "--set",
                "SMTP_PORT=2525",
                "--iwcs",
                "none",
            ]
        )
        config = options.config
        self.assertEqual(config["HTTP_LISTEN"], "tcp:0:interface=127.0.0.1")
        self.assertEqual(config["DATA_DIR"], "/tmp/b")
        self.assertEqual(config["SMTP_PORT"], 2525)
        self.assertEqual(config["IWCS_LISTEN"], "")

    def test_badOptions(self) -> None:
        """Config errors and bad --set become usage errors that say where."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("\nSMTP_PORT many\n")
        for argv, expected in [
            (["--config", path], f"{path}:2: SMTP_PORT: expected a whole number"),
            (["--set", "NOPE=1"], "--set: unknown key NOPE"),
            (["--set", "SMTP_PORT"], "--set wants KEY=VALUE"),
            (["--http", "tcp:http"], "command line: HTTP_LISTEN: port 'http' is not a number"),
        ]:
            with self.assertRaises(usage.UsageError, msg=argv) as caught:
                Options().parseOptions(argv)
            self.assertIn(expected, str(caught.exception))


class TwistdTests(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.config = os.path.join(self.dir, "lc_serv.cfg")
        with open(self.config, "w") as f:
            f.write(
                "HTTP_LISTEN tcp:0:interface=127.0.0.1\nPANEL_LISTEN tcp:0:interface=127.0.0.1\n"
                "IWCS_LISTEN tcp:0:interface=127.0.0.1\n"
            )

    @defer.inlineCallbacks
    def test_runs(self) -> Any:
        """
        `twistd -n livechat` starts, prints where it listens and the demo
        credentials, answers /health, logs a SIGHUP reload and shuts down
        cleanly on SIGTERM.
        """
        node = ServerProcess.twistd(
            self,
            [
                "-n",
                "--pidfile=",
                "livechat",
                "--config",
                self.config,
                "--data-dir",
                os.path.join(self.dir, "data"),
            ],
            path=self.dir,
        )
        match = yield node.waitFor(r"listening on (http://127\.0\.0\.1:\d+/)")
        url = match.group(1)
        yield node.waitFor(r"password (\S+)")
        code, body = yield getJSON(url + "health")
        self.assertEqual((code, body["status"]), (200, "ok"))
        node.signal("HUP")
        yield node.waitFor(r"SIGHUP: configuration unchanged")
        code = yield node.stop()
        # twistd shuts down cleanly, then re-raises SIGTERM so the parent
        # sees how it ended.
        self.assertEqual(code, -15, node.output)
        self.assertIn("Server Shut Down", node.output)

    @defer.inlineCallbacks
    def test_badConfig(self) -> Any:
        """A bad key stops twistd before it starts, naming the file and line."""
        with open(self.config, "a") as f:
            f.write("LOG_PACKETS sometimes\n")
        node = ServerProcess.twistd(
            self, ["-n", "--pidfile=", "livechat", "--config", self.config], path=self.dir
        )
        code = yield node.ended()
        self.assertNotEqual(code, 0)
        self.assertIn(f"{self.config}:4: LOG_PACKETS: expected 0 or 1", node.output)

    @defer.inlineCallbacks
    def test_fatalStartExits(self) -> Any:
        """When storage cannot be set up at all, the process says why and exits 1."""
        blocker = os.path.join(self.dir, "not-a-dir")
        with open(blocker, "w") as f:
            f.write("x")
        node = ServerProcess.twistd(
            self,
            [
                "-n",
                "--pidfile=",
                "livechat",
                "--config",
                self.config,
                "--data-dir",
                os.path.join(blocker, "data"),
            ],
            path=self.dir,
        )
        yield node.waitFor(r"livechat could not start")
        code = yield node.ended()
        self.assertEqual(code, 1)

    @defer.inlineCallbacks
    def test_tac(self) -> Any:
        """etc/livechat.tac runs the same service, configured by $LIVECHAT_CONFIG."""
        with open(self.config, "a") as f:
            f.write(f"DATA_DIR {os.path.join(self.dir, 'data')}\nDEMO_LICENCE 0\n")
        node = ServerProcess.twistd(
            self,
            ["-n", "--pidfile=", "-y", os.path.join(ROOT, "etc", "livechat.tac")],
            env={"LIVECHAT_CONFIG": self.config},
            path=self.dir,
        )
        match = yield node.waitFor(r"listening on (http://127\.0\.0\.1:\d+/)")
        code, body = yield getJSON(match.group(1) + "health")
        self.assertEqual(code, 200)
        self.assertEqual((yield node.stop()), -15)
        self.assertIn("Server Shut Down", node.output)
        self.assertNotIn("password", node.output)
