"""
A real `twistd -n livechat` answers IWCS: the demo operator logs in with
the client library over TCP, a SIGHUP re-reads the identity key beside
lc_serv.cfg; and the example bot (examples/echo_bot.py) answers a visitor.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.trial import unittest

from livechat.client import IwcsClientFactory
from livechat.model import OperatorStatus
from livechat.protocols import iwcspackets as P
from tests.support.iwcs import PASSWORD, IwcsMixin, RecordingClient
from tests.support.process import ServerProcess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def loadExample(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(ROOT, "examples", f"{name}.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TwistdTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_twistdAnswersIwcs(self) -> Any:
        """The node's IWCS listener logs the demo operator in; SIGHUP loads the key file."""
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        config = os.path.join(directory, "lc_serv.cfg")
        with open(config, "w") as f:
            f.write(
                "HTTP_LISTEN tcp:0:interface=127.0.0.1\n"
                "IWCS_LISTEN tcp:0:interface=127.0.0.1\n"
                "PANEL_LISTEN none\n"
                f"DATA_DIR {os.path.join(directory, 'data')}\n"
            )
        node = ServerProcess.twistd(
            self, ["-n", "--pidfile=", "livechat", "--config", config], path=directory
        )
        port = yield node.waitFor(
            r"IWCS \(agent applications, controls\) listening on 127\.0\.0\.1:(\d+)"
        )
        licence = yield node.waitFor(r"licence  (\d+)")
        nick = yield node.waitFor(r"nick     (\S+)")
        password = yield node.waitFor(r"password (\S+)")
        factory = IwcsClientFactory(
            int(licence.group(1)),
            nick=nick.group(1),
            password=password.group(1),
            protocol=RecordingClient,
            clock=reactor,
        )
        client = yield TCP4ClientEndpoint(reactor, "127.0.0.1", int(port.group(1))).connect(factory)
        self.addCleanup(client.transport.loseConnection)
        yield client.loggedIn().addTimeout(30, reactor)
        self.assertEqual((client.welcome.nick, client.welcome.kind), ("demo", "agent"))
        operators = yield client.operators()
        self.assertEqual([o.nick for o in operators], ["demo"])

        key = ed25519.Ed25519PrivateKey.generate().public_key()
        with open(os.path.join(directory, "lc_verify_pub.key"), "wb") as f:
            f.write(
                key.public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
        node.signal("HUP")
        yield node.waitFor(r"identity key \S+lc_verify_pub\.key loaded \(Ed25519\)")
        yield client.logout()
        code = yield node.stop()
        self.assertEqual(code, -15, node.output)


class EchoBotTests(IwcsMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_botAnswersVisitors(self) -> Any:
        """The example bot accepts an offered chat, greets and echoes the visitor."""
        bot = loadExample("echo_bot")
        self.serveIwcs()
        op = yield self.agent(nick="bot")
        factory = self.clientFactory(
            op.licence,
            nick="bot",
            password=PASSWORD,
            status=OperatorStatus.ONLINE,
            protocol=bot.EchoBot,
        )
        yield self.connectClient(factory)
        control = yield self.controlClient()
        chat = yield control.requestChat("visitor-0001", text="hello bot")
        yield control.next(P.MessageEvent, chat=chat, text=bot.EchoBot.greeting)
        yield control.send(chat, "is anyone there?", visitor="visitor-0001")
        echo = yield control.next(P.MessageEvent, chat=chat, text="You said: is anyone there?")
        self.assertEqual(echo.role, P.Role.ASSIGNED_AGENT)
        self.assertEqual(len(control.of(P.MessageEvent, text="You said: hello bot")), 1)
        self.assertTrue(control.of(P.ReadEvent, chat=chat))
