"""
The IWCS protocol on StringTransport, with task.Clock for every timer and
the real core on sqlite: logging in, the limits at their edges (line
length, idle time, errors, flood, slow reader, followed visitors), wrong
packets, signed identity, the packet log, SIGHUP and shutdown.
"""

from __future__ import annotations

import os
from typing import Any

import attr
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.internet import defer
from twisted.trial import unittest

from livechat.config import loadConfig
from livechat.identity import IdentityVerifier, sign
from livechat.logs import ChannelLogs
from livechat.model import OperatorStatus
from livechat.protocols import iwcspackets as P
from livechat.protocols.iwcs import IwcsSettings
from tests.support.iwcs import PASSWORD, IwcsMixin

SETTINGS = IwcsSettings(
    maxLine=256, idleTimeout=30, maxErrors=3, rate=1000, burst=1000, sendBuffer=4096, maxVisitors=2
)


def line(packet: P.Packet) -> bytes:
    return packet.toLine()


class ProtocolTests(IwcsMixin, unittest.TestCase):
    iwcsSettings = SETTINGS

    def limits(self, **changes: Any) -> None:
        self.factory.settings = attr.evolve(self.factory.settings, **changes)

    @defer.inlineCallbacks
    def loggedInAgent(self, **login: Any) -> Any:
        op = yield self.agent(nick=login.pop("nick", None))
        proto, transport = self.connection()
        proto.dataReceived(
            line(
                P.Login(
                    id="L",
                    licence=op.licence,
                    kind="agent",
                    nick=op.nick,
                    password=PASSWORD,
                    **login,
                )
            )
        )
        welcome = yield transport.next(P.Welcome)
        return op, proto, transport, welcome

    @defer.inlineCallbacks
    def loggedInControl(self) -> Any:
        key = yield self.controlKey()
        proto, transport = self.connection()
        proto.dataReceived(line(P.Login(id="L", licence=100, kind="control", key=key)))
        welcome = yield transport.next(P.Welcome)
        return proto, transport, welcome

    # -- logging in ---------------------------------------------------------------------

    @defer.inlineCallbacks
    def test_loginAgent(self) -> Any:
        """An agent logs in: WELCOME says who, the limits, the team chat; the status is set."""
        op, proto, transport, welcome = yield self.loggedInAgent(
            nick="anna", status=OperatorStatus.TEXT_AVAILABLE
        )
        self.assertEqual(
            (welcome.id, welcome.licence, welcome.kind, welcome.operator, welcome.nick),
            ("L", 100, "agent", op.id, "anna"),
        )
        self.assertEqual((welcome.max_line, welcome.idle, welcome.version), (256, 30, 1))
        self.assertEqual(welcome.status, OperatorStatus.TEXT_AVAILABLE)
        self.assertIsNotNone(welcome.team)
        info = yield self.core.operatorInfo(100, op.id)
        self.assertEqual(info.status, OperatorStatus.TEXT_AVAILABLE)

    @defer.inlineCallbacks
    def test_loginControl(self) -> Any:
        """A control logs in with its API key and learns whether the licence is online."""
        proto, transport, welcome = yield self.loggedInControl()
        self.assertEqual((welcome.kind, welcome.operator), ("control", None))
        status = yield transport.next(P.LicenceStatus)
        self.assertFalse(status.online)

    @defer.inlineCallbacks
    def test_loginFailures(self) -> Any:
        """
        A wrong password is login_failed; after five, the account is
        throttled (even with the right password); a wrong key is login_failed.
        """
        self.limits(maxErrors=20)
        op = yield self.agent()
        proto, transport = self.connection()
        for attempt in range(5):
            proto.dataReceived(
                line(
                    P.Login(id=str(attempt), licence=100, kind="agent", nick=op.nick, password="no")
                )
            )
            error = yield transport.next(P.Error, id=str(attempt))
            self.assertEqual((error.code, error.name), (420, "login_failed"))
        proto.dataReceived(
            line(P.Login(id="6", licence=100, kind="agent", nick=op.nick, password=PASSWORD))
        )
        error = yield transport.next(P.Error, id="6")
        self.assertEqual(error.name, "throttled")
        yield self.controlKey()
        proto.dataReceived(
            line(P.Login(id="7", licence=100, kind="control", key="lc_000000000000_x"))
        )
        error = yield transport.next(P.Error, id="7")
        self.assertEqual(error.name, "login_failed")
        proto.dataReceived(line(P.Login(id="8", licence=100, kind="agent", nick=op.nick)))
        error = yield transport.next(P.Error, id="8")
        self.assertEqual(error.name, "missing_field")
        self.assertIsNone(proto.kind)

    @defer.inlineCallbacks
    def test_packetsBeforeLogin(self) -> Any:
        """Only LOGIN and PING are taken before WELCOME; a second LOGIN is refused."""
        proto, transport = self.connection()
        proto.dataReceived(b"IWCS0020C id=m&chat=1&text=hi\r\nIWCS0004C id=p\r\n")
        error = yield transport.next(P.Error, id="m")
        self.assertEqual((error.code, error.name, error.packet), (401, "not_logged_in", 20))
        yield transport.next(P.Pong, id="p")
        op, proto, transport, _ = yield self.loggedInAgent()
        proto.dataReceived(
            line(P.Login(id="again", licence=100, kind="agent", nick=op.nick, password=PASSWORD))
        )
        error = yield transport.next(P.Error, id="again")
        self.assertEqual(error.name, "already_logged_in")

    @defer.inlineCallbacks
    def test_wrongKind(self) -> Any:
        """An agent cannot send a control's packets, nor a control an agent's."""
        op, agent, agentT, _ = yield self.loggedInAgent()
        agent.dataReceived(line(P.ReportVisitor(id="v", visitor="visitor-0001")))
        error = yield agentT.next(P.Error, id="v")
        self.assertEqual((error.name, error.code), ("wrong_kind", 405))
        agent.dataReceived(line(P.SendMessage(id="m", chat=1, text="x", visitor="visitor-0001")))
        error = yield agentT.next(P.Error, id="m")
        self.assertEqual(error.name, "bad_field")
        control, controlT, _ = yield self.loggedInControl()
        control.dataReceived(line(P.Accept(id="a", chat=1)))
        error = yield controlT.next(P.Error, id="a")
        self.assertEqual(error.name, "wrong_kind")
        control.dataReceived(line(P.SendMessage(id="m", chat=1, text="x")))
        error = yield controlT.next(P.Error, id="m")
        self.assertEqual(error.name, "missing_field")
        control.dataReceived(line(P.SendMessage(id="n", chat=1, text="x", visitor="visitor-0001")))
        error = yield controlT.next(P.Error, id="n")
        self.assertEqual(error.name, "not_found")

    # -- limits -----------------------------------------------------------------------

    def paddedLine(self, length: int) -> bytes:
        """A MESSAGE line of exactly C{length} bytes (before CRLF)."""
        head = b"IWCS0020C id=e&chat=1&text="
        return head + b"x" * (length - len(head))

    @defer.inlineCallbacks
    def test_lineLengthEdge(self) -> Any:
        """
        A line of exactly IWCS_MAX_LINE bytes is read (here: refused as not
        logged in, so it was parsed), also when it comes in pieces; one byte
        more is line_too_long, at once, and the rest of it is skipped.
        """
        self.limits(maxErrors=10)
        proto, transport = self.connection()
        exact = self.paddedLine(256)
        proto.dataReceived(exact + b"\r\n")
        error = yield transport.next(P.Error)
        self.assertEqual(error.name, "not_logged_in")
        for byte in exact:
            proto.dataReceived(bytes([byte]))
        proto.dataReceived(b"\r")
        proto.dataReceived(b"\n")
        error = yield transport.next(P.Error)
        self.assertEqual(error.name, "not_logged_in")
        proto.dataReceived(self.paddedLine(257) + b"\r\n")
        error = yield transport.next(P.Error)
        self.assertEqual((error.name, error.code), ("line_too_long", 414))
        # Too long before its end has come: refused at once, then skipped to its end.
        proto.dataReceived(self.paddedLine(258))
        error = yield transport.next(P.Error)
        self.assertEqual(error.name, "line_too_long")
        proto.dataReceived(b"more of the same line" * 100)
        proto.dataReceived(b"\r\nIWCS0004C id=after\r\n")
        yield transport.next(P.Pong, id="after")
        self.assertEqual(len(transport.of(P.Error)), 4)

    @defer.inlineCallbacks
    def test_idleTimeout(self) -> Any:
        """No packet for IWCS_IDLE_TIMEOUT seconds ends the connection with BYE idle."""
        op, proto, transport, _ = yield self.loggedInAgent()
        self.clock.advance(29)
        proto.dataReceived(line(P.Ping(id="p")))
        yield transport.next(P.Pong)
        self.clock.advance(29)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        bye = yield transport.next(P.Bye)
        self.assertEqual(bye.reason, "idle")
        self.assertTrue(transport.disconnecting)
        proto.connectionLost()
        self.assertTrue(proto.session.closed)

    @defer.inlineCallbacks
    def test_flood(self) -> Any:
        """IWCS_BURST packets at once pass; one more (over IWCS_RATE) closes with BYE flood."""
        self.limits(rate=1, burst=5)
        proto, transport = self.connection()
        proto.dataReceived(b"".join(line(P.Ping(id=str(i))) for i in range(5)))
        self.assertEqual(len(transport.of(P.Pong)), 5)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)  # one packet's worth of rate
        proto.dataReceived(line(P.Ping(id="5")) + line(P.Ping(id="6")) + line(P.Ping(id="7")))
        self.assertEqual(len(transport.of(P.Pong)), 6)
        bye = yield transport.next(P.Bye)
        self.assertEqual(bye.reason, "flood")
        self.assertTrue(transport.disconnecting)

    @defer.inlineCallbacks
    def test_tooManyErrors(self) -> Any:
        """
        IWCS_MAX_ERRORS protocol errors close the connection; refusals of the
        core (a chat that is not yours) are answered but not counted.
        """
        op, proto, transport, _ = yield self.loggedInAgent()
        for i in range(5):
            proto.dataReceived(line(P.SendMessage(id=str(i), chat=999, text="hi")))
            error = yield transport.next(P.Error, id=str(i))
            self.assertEqual(error.name, "forbidden")
        self.assertFalse(transport.disconnecting)
        proto.dataReceived(b"garbage\r\nIWCS0999C\r\nIWCS0020C chat=x\r\nIWCS0004C id=late\r\n")
        bye = yield transport.next(P.Bye)
        self.assertEqual(bye.reason, "too_many_errors")
        self.assertEqual(
            [e.name for e in transport.of(P.Error)][-3:],
            ["malformed", "unknown_packet", "bad_field"],
        )
        self.assertEqual(transport.of(P.Pong), [])
        self.assertTrue(transport.disconnecting)

    @defer.inlineCallbacks
    def test_slowReader(self) -> Any:
        """
        While the transport is full, packets wait; beyond IWCS_SEND_BUFFER
        bytes waiting the connection is cut.  Resuming in time sends them all.
        """
        op, proto, transport, _ = yield self.loggedInAgent()
        message = {"type": "visitor.gone", "visitorId": "visitor-0001"}
        size = len(P.VisitorGone(visitor="visitor-0001").toLine())
        proto.pauseProducing()
        written = len(transport.value())
        fits = 4096 // size
        for _ in range(fits):
            proto.deliver(message)
        self.assertEqual(len(transport.value()), written)
        proto.resumeProducing()
        self.assertEqual(len(transport.value()), written + fits * size)
        proto.pauseProducing()
        for _ in range(fits + 1):
            proto.deliver(message)
        self.assertTrue(transport.disconnected)

    @defer.inlineCallbacks
    def test_followedVisitorsEdge(self) -> Any:
        """A control follows at most IWCS_MAX_VISITORS visitors; UNFOLLOW makes room."""
        proto, transport, _ = yield self.loggedInControl()
        for i, visitor in enumerate(("visitor-0001", "visitor-0002", "visitor-0003")):
            proto.dataReceived(line(P.Follow(id=str(i), visitor=visitor)))
        # The third is refused at once, before the first two have started.
        error = yield transport.next(P.Error, id="2")
        self.assertEqual((error.name, error.code), ("too_many_visitors", 424))
        yield transport.next(P.Ok, id="0")
        yield transport.next(P.Ok, id="1")
        proto.dataReceived(line(P.Unfollow(id="u", visitor="visitor-0001")))
        yield transport.next(P.Ok, id="u")
        proto.dataReceived(line(P.Follow(id="again", visitor="visitor-0003")))
        yield transport.next(P.Ok, id="again")
        self.assertEqual(sorted(proto.visitors), ["visitor-0002", "visitor-0003"])
        state = yield self.core.presence.visitor(100, "visitor-0003")
        self.assertEqual(state.sessions, 1)
        proto.connectionLost()
        self.assertEqual(proto.visitors, {})

    # -- identity -----------------------------------------------------------------------

    @defer.inlineCallbacks
    def test_signedIdentity(self) -> Any:
        """
        Identity fields are trusted only with a good signature: unsigned,
        forged or tampered ones are dropped (the page view still counts).
        """
        key = ed25519.Ed25519PrivateKey.generate()
        proto, transport, _ = yield self.loggedInControl()
        visitor = "visitor-0001"
        signed = {
            "licence": 100,
            "visitor": visitor,
            "name": "Vera",
            "email": "vera@example.com",
            "customer_id": "C-1",
            "expires": int(self.clock.seconds()) + 60,
        }
        good = sign(key, signed)
        identity = {k: v for k, v in signed.items() if k not in ("licence", "visitor")}

        def report(requestId: str, **fields: Any) -> Any:
            proto.dataReceived(line(P.ReportVisitor(id=requestId, visitor=visitor, **fields)))
            return transport.next(P.Ok, id=requestId)

        ok = yield report("nokey", signature=good, **identity)
        self.assertFalse(ok.verified)
        self.factory.verifier = IdentityVerifier(key.public_key(), self.clock)
        for requestId, fields in (
            ("unsigned", dict(identity)),
            (
                "forged",
                dict(identity, signature=sign(ed25519.Ed25519PrivateKey.generate(), signed)),
            ),
            ("tampered", dict(identity, name="Mallory", signature=good)),
        ):
            ok = yield report(requestId, url="https://shop.example/", **fields)
            self.assertFalse(ok.verified, requestId)
        state = yield self.core.presence.visitor(100, visitor)
        self.assertEqual((state.name, state.verified, state.pages), ("", False, 3))
        ok = yield report("good", signature=good, **identity)
        self.assertTrue(ok.verified)
        state = yield self.core.presence.visitor(100, visitor)
        self.assertEqual(
            (state.name, state.email, state.customer_id, state.verified),
            ("Vera", "vera@example.com", "C-1", True),
        )
        self.flushLoggedErrors()

    # -- logs, SIGHUP, shutdown ---------------------------------------------------------

    @defer.inlineCallbacks
    def test_packetLog(self) -> Any:
        """With LOG_PACKETS, packets in and out are logged with passwords masked."""
        directory = os.path.abspath(self.mktemp())
        logs = ChannelLogs(self.clock)
        logs.configure(
            loadConfig(None, {"LC_LOG_PATH": directory, "LOG_PACKETS": "1", "LOG_NAME_SHORT": "1"})
        )
        self.addCleanup(logs.closeAll)
        self.factory.logs = logs
        op, proto, transport, _ = yield self.loggedInAgent()
        proto.dataReceived(b"IWCS0001C licence=1&kind=agent&nick=x&password=another-secret\r\n")
        yield transport.next(P.Error)
        logs.closeAll()
        with open(os.path.join(directory, "packets.log"), encoding="utf-8") as f:
            text = f.read()
        self.assertNotIn(PASSWORD.replace(" ", "%20"), text)
        self.assertNotIn("another-secret", text)
        self.assertIn("password=********", text)
        self.assertIn("< 192.0.2.7 - IWCS0001C", text)
        self.assertIn("> 192.0.2.7 100 IWCS0001S", text)

    def test_reconfigure(self) -> None:
        """SIGHUP applies the live limits to open connections and re-reads the key file."""
        proto, transport = self.connection()
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        path = os.path.join(directory, "lc_verify_pub.key")
        first = ed25519.Ed25519PrivateKey.generate()
        second = ed25519.Ed25519PrivateKey.generate()

        def write(key: Any) -> None:
            with open(path, "wb") as f:
                f.write(
                    key.public_key().public_bytes(
                        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                    )
                )

        config = loadConfig(
            None, {"VERIFY_KEY_FILE": path, "IWCS_RATE": "7", "IWCS_MAX_ERRORS": "9"}
        )
        write(first)
        self.factory.reconfigure(config)
        self.assertEqual((self.factory.settings.rate, self.factory.settings.maxErrors), (7, 9))
        self.assertEqual(self.factory.settings.maxLine, 256)  # needs a restart
        self.assertEqual(proto._bucket.rate, 7)
        fields = {
            "licence": 100,
            "visitor": "visitor-0001",
            "expires": int(self.clock.seconds()) + 60,
        }
        verifier = self.factory.verifier
        assert verifier is not None
        self.assertIsNotNone(verifier.verify(fields, sign(first, fields)))
        write(second)
        self.factory.reconfigure(config)
        verifier = self.factory.verifier
        assert verifier is not None
        self.assertIsNone(verifier.verify(fields, sign(first, fields)))
        self.assertIsNotNone(verifier.verify(fields, sign(second, fields)))
        with open(path, "w") as f:
            f.write("garbage")
        self.factory.reconfigure(config)
        self.assertIs(self.factory.verifier, verifier)  # a broken file keeps the key in use
        self.assertEqual(len(self.flushLoggedErrors()), 0)
        os.remove(path)
        self.factory.reconfigure(config)
        self.assertIsNone(self.factory.verifier)  # no file: nothing is trusted

    @defer.inlineCallbacks
    def test_logoutAndShutdown(self) -> Any:
        """LOGOUT is answered by BYE; stopping the listener says BYE shutdown to everyone."""
        op, proto, transport, _ = yield self.loggedInAgent()
        proto.dataReceived(line(P.Logout(id="bye")))
        bye = yield transport.next(P.Bye, id="bye")
        self.assertEqual(bye.reason, "logout")
        self.assertTrue(transport.disconnecting)
        proto.connectionLost()
        other, otherT = self.connection()
        self.factory.stopFactory()
        bye = yield otherT.next(P.Bye)
        self.assertEqual(bye.reason, "shutdown")

    @defer.inlineCallbacks
    def test_internalError(self) -> Any:
        """A failure inside the server is ERROR internal, logged; the connection lives on."""
        op, proto, transport, _ = yield self.loggedInAgent()

        def broken(*args: Any) -> Any:
            raise RuntimeError("boom")

        proto.session.visitors = broken
        proto.dataReceived(line(P.ListVisitors(id="v")) + line(P.Ping(id="p")))
        error = yield transport.next(P.Error, id="v")
        self.assertEqual((error.name, error.code), ("internal", 500))
        yield transport.next(P.Pong, id="p")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
