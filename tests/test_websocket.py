"""
The visitors' WebSocket: with Autobahn's in-memory agent (no sockets) and
with real clients on real sockets (127.0.0.1, port 0), over a real core
and store (sqlite and MariaDB): hello and resume, the requests, the
handshake's refusals, the message size limit, heartbeats, the bounded send
buffer, permessage-deflate off by default, native acceleration.
"""

from __future__ import annotations

from typing import Any

import attr
from autobahn.twisted.testing import create_memory_agent, create_pumper
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest

from livechat.model import ChatState
from livechat.protocols.websocket import (
    CLOSE_PROTOCOL,
    CLOSE_TOO_MANY_TABS,
    CLOSE_UNAUTHORIZED,
    accelerationReport,
    makeFactory,
)
from tests.support.core import isEvent, isType
from tests.support.db import bothDialects
from tests.support.web import WebMixin, WSClient, connectWS, sent

SITE = "https://shop.example"


def reply(m: dict[str, Any]) -> dict[str, Any]:
    assert m["type"] == "reply", m
    return m["result"]


class MemoryWebSocketMixin(WebMixin):
    """Through Autobahn's memory agent: the protocol, no sockets."""

    # Autobahn's heartbeat timers run on the global reactor: tested on real sockets.
    webSettings = attr.evolve(WebMixin.webSettings, pingInterval=0)

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield super().setUp()
        yield self.allow(100, SITE)
        self.pumper = create_pumper()
        self.pumper.start()
        self.addCleanup(self.pumper.stop)
        self.agent = create_memory_agent(
            MemoryReactorClock(), self.pumper, lambda: makeFactory(self.front).buildProtocol(None)
        )

    def close(self, client: WSClient) -> Any:
        if not client.closed.called:
            client.transport.loseConnection()
            return client.closed
        return None

    @defer.inlineCallbacks
    def visitorToken(self, visitorId: str = "visitor-0001") -> Any:
        """A visitor's token, as a page view would give it (and the page view)."""
        yield self.core.pageView(100, visitorId, url=SITE + "/", title="Shop")
        return self.front.tokens.issue(100, visitorId)

    @defer.inlineCallbacks
    def open(self, token: str | None, resume: Any = None, origin: str = SITE) -> Any:
        client = yield self.agent.open(
            "ws://127.0.0.1/ws?licence=100", {"origin": origin}, protocol_class=WSClient
        )
        self.addCleanup(self.close, client)
        welcome = yield client.ask("hello", token=token, resume=resume)
        return client, welcome

    @defer.inlineCallbacks
    def test_conversationAndResume(self) -> Any:
        """
        hello -> welcome; a chat requested over the socket reaches the agent;
        messages, typing and read receipts flow both ways; after a drop the
        visitor resumes from its last sequence and gets exactly the events it
        missed, once each, in order, then live ones.
        """
        op = yield self.operator(nick="anna")
        agent, achan = yield self.connectOperator(op)
        token = yield self.visitorToken()
        tab, welcome = yield self.open(token)
        self.assertEqual(welcome["type"], "welcome")
        self.assertEqual((welcome["visitorId"], welcome["chats"]), ("visitor-0001", []))
        self.assertEqual(welcome["reception"]["online"], True)
        chatId = reply((yield tab.ask("chat.request", name="Vera", message="Hello?")))["chatId"]
        yield tab.next(isType("chat.opened", chatId=chatId))
        yield achan.next(isType("chat.offered", chatId=chatId))
        yield agent.accept(chatId)
        yield tab.next(isEvent("JoinEvent", chatId))
        seq = sent((yield tab.ask("chat.send", chatId=chatId, text="My order")))
        got = yield achan.next(isEvent("ContentEvent", chatId, message="My order"))
        self.assertEqual(got["sequence"], seq)
        reply((yield tab.ask("chat.state", chatId=chatId, state="COMPOSING")))
        yield achan.next(isEvent("ChatStateEvent", chatId, chatState="COMPOSING"))
        yield agent.chatState(chatId, ChatState.COMPOSING)
        yield tab.next(isEvent("ChatStateEvent", chatId, chatState="COMPOSING"))
        answer = yield agent.send(chatId, "Let me look")
        yield tab.next(isEvent("ContentEvent", chatId, message="Let me look"))
        reply((yield tab.ask("chat.read", chatId=chatId, sequences=[answer])))
        read = yield achan.next(isEvent("AcceptStatusEvent", chatId))
        self.assertEqual(read["event"]["sequenceList"], [answer])
        yield agent.markRead(chatId, [seq])
        receipt = yield tab.next(
            lambda m: (
                isEvent("AcceptStatusEvent", chatId)(m)
                and m["originatorMetadata"]["role"] != "CONSUMER"
            )
        )
        self.assertEqual(receipt["event"]["sequenceList"], [seq])

        last = tab.inbox.sequences(chatId)[-1]
        self.assertEqual(tab.inbox.sequences(chatId), list(range(1, last + 1)))
        tab.transport.loseConnection()
        yield tab.closed
        missed = []
        for text in ("one", "two", "three"):
            missed.append((yield agent.send(chatId, text)))
        again, welcome = yield self.open(token, resume={str(chatId): last})
        self.assertEqual(welcome["chats"], [chatId])
        yield again.next(isEvent("ContentEvent", chatId, message="three"))
        self.assertEqual(again.inbox.sequences(chatId), missed)
        self.assertEqual(again.inbox.messages[0]["type"], "welcome")
        live = yield agent.send(chatId, "four")
        yield again.next(isEvent("ContentEvent", chatId, message="four"))
        self.assertEqual(again.inbox.sequences(chatId), missed + [live])

    @defer.inlineCallbacks
    def test_endAndStartFresh(self) -> Any:
        """The visitor ends the chat (CloseEvent); a new request opens a new chat."""
        op = yield self.operator()
        agent, achan = yield self.connectOperator(op)
        tab, _ = yield self.open((yield self.visitorToken()))
        first = reply((yield tab.ask("chat.request", message="a")))["chatId"]
        yield achan.next(isType("chat.offered", chatId=first))
        yield agent.accept(first)
        reply((yield tab.ask("chat.leave", chatId=first)))
        yield tab.next(isEvent("CloseEvent", first))
        second = reply((yield tab.ask("chat.request", message="b")))["chatId"]
        self.assertNotEqual(first, second)
        yield tab.next(isType("chat.opened", chatId=second))

    @defer.inlineCallbacks
    def test_invitation(self) -> Any:
        """An agent's invitation reaches the open tab; accepting it opens a chat with them."""
        op = yield self.operator(nick="anna")
        agent, achan = yield self.connectOperator(op)
        tab, welcome = yield self.open((yield self.visitorToken()))
        self.assertIsNone(welcome["invitation"])
        yield agent.inviteVisitor("visitor-0001", "Need help?")
        invitation = yield tab.next(isType("invitation"))
        self.assertEqual(invitation["message"], "Need help?")
        chatId = reply((yield tab.ask("invitation.answer", accept=True, name="Vera")))["chatId"]
        offered = yield achan.next(isType("chat.offered", chatId=chatId))
        self.assertEqual(offered["name"], "Vera")

    @defer.inlineCallbacks
    def test_invitationDeclined(self) -> Any:
        """Declining an invitation opens no chat; the agents are told."""
        op = yield self.operator(nick="anna")
        agent, achan = yield self.connectOperator(op)
        tab, _ = yield self.open((yield self.visitorToken()))
        yield agent.inviteVisitor("visitor-0001", "Need help?")
        yield tab.next(isType("invitation"))
        self.assertEqual(
            reply((yield tab.ask("invitation.answer", accept=False))), {"chatId": None}
        )
        answered = yield achan.next(isType("invitation.answered"))
        self.assertFalse(answered["accepted"])
        self.assertEqual((yield self.store.forLicence(100).chatsOfVisitor("visitor-0001")), [])

    @defer.inlineCallbacks
    def test_errors(self) -> Any:
        """
        Requests before hello, unknown types and bad fields get error
        replies with codes; a chat of another visitor is forbidden.
        """
        op = yield self.operator()
        agent, achan = yield self.connectOperator(op)
        other, ochan = yield self.connectVisitor("visitor-0002")
        otherChat = yield self.activeChat(other, ochan, agent, achan)
        client = yield self.agent.open(
            "ws://127.0.0.1/ws?licence=100", {"origin": SITE}, protocol_class=WSClient
        )
        self.addCleanup(self.close, client)
        early = yield client.ask("chat.send", chatId=1, text="x")
        self.assertEqual((early["type"], early["code"]), ("error", "bad_request"))
        yield client.ask("hello", token=(yield self.visitorToken()))
        for kind, fields, code in (
            ("nonsense", {}, "bad_request"),
            ("chat.send", {"chatId": otherChat, "text": "hi"}, "forbidden"),
            ("chat.send", {"chatId": otherChat}, "bad_request"),
            ("chat.state", {"chatId": otherChat, "state": "COMPOSING"}, "forbidden"),
            ("chat.read", {"chatId": otherChat, "sequences": [1]}, "forbidden"),
            ("chat.leave", {"chatId": otherChat}, "forbidden"),
            ("chat.request", {"group": "x"}, "bad_request"),
            ("invitation.answer", {"accept": True}, "not_found"),
            ("transcript.mail", {"chatId": otherChat, "email": "a@example.com"}, "forbidden"),
            ("message.leave", {"email": "nope", "message": "x"}, "bad_request"),
        ):
            answer = yield client.ask(kind, **fields)
            self.assertEqual((answer["type"], answer.get("code")), ("error", code), kind)
        # JSON can spell a lone surrogate, which no UTF-8 text carries: refused.
        client.send({"type": "chat.send", "id": "lone", "chatId": otherChat, "text": "a\ud800"})
        refused = yield client.next(lambda m: m.get("type") == "error" and m.get("id") is None)
        self.assertEqual(refused["code"], "bad_request")
        pong = yield client.ask("ping")
        self.assertEqual(pong["type"], "reply")

    @defer.inlineCallbacks
    def test_badToken(self) -> Any:
        """A missing or forged token: error unauthorized, closed with 4001."""
        client = yield self.agent.open(
            "ws://127.0.0.1/ws?licence=100", {"origin": SITE}, protocol_class=WSClient
        )
        answer = yield client.ask("hello", token="100.visitor-0001.9999999999.forged")
        self.assertEqual(answer["code"], "unauthorized")
        code, _ = yield client.closed
        self.assertEqual(code, CLOSE_UNAUTHORIZED)

    @defer.inlineCallbacks
    def test_helloTimeout(self) -> Any:
        """A socket that never says hello is closed after the hello timeout (task.Clock)."""
        client = yield self.agent.open(
            "ws://127.0.0.1/ws?licence=100", {"origin": SITE}, protocol_class=WSClient
        )
        self.clock.advance(self.webSettings.helloTimeout - 0.1)
        self.assertFalse(client.closed.called)
        self.clock.advance(0.1)
        code, reason = yield client.closed
        self.assertEqual((code, reason), (CLOSE_PROTOCOL, "no hello"))

    @defer.inlineCallbacks
    def test_tabsLimit(self) -> Any:
        """One visitor may hold WEB_MAX_TABS connections on a node; one more is refused."""
        self.front.settings = attr.evolve(self.front.settings, maxTabs=2)
        token = yield self.visitorToken()
        yield self.open(token)
        yield self.open(token)
        client, answer = yield self.open(token)
        self.assertEqual(answer["code"], "too_many_tabs")
        code, _ = yield client.closed
        self.assertEqual(code, CLOSE_TOO_MANY_TABS)
        self.assertEqual(self.front.tabs[(100, "visitor-0001")], 2)

    @defer.inlineCallbacks
    def test_sendAnsweredByItsEvent(self) -> Any:
        """
        chat.send is answered by the stored message itself, carrying the
        request's id, in the chat's order: the sending tab gets each of its
        messages once (no separate copy), the visitor's other tab gets it as
        an ordinary event, and both tabs see every sequence once, in order,
        with the agent's messages sent in between.
        """
        op = yield self.operator()
        agent, achan = yield self.connectOperator(op)
        token = yield self.visitorToken()
        tab, _ = yield self.open(token)
        chatId = reply((yield tab.ask("chat.request", message="hi")))["chatId"]
        yield achan.next(isType("chat.offered", chatId=chatId))
        yield agent.accept(chatId)
        other, _ = yield self.open(token, resume={str(chatId): 0})
        answers = []
        for n in range(3):
            asked = tab.ask("chat.send", chatId=chatId, text=f"mine {n}")
            yield agent.send(chatId, f"theirs {n}")
            answers.append((yield asked))
        self.assertEqual([a["id"] for a in answers], ["q3", "q4", "q5"])  # q1 hello, q2 request
        self.assertEqual([a["event"]["message"] for a in answers], ["mine 0", "mine 1", "mine 2"])
        last = yield agent.send(chatId, "the end")
        for client in (tab, other):
            yield client.next(isEvent("ContentEvent", chatId, message="the end"))
            self.assertEqual(client.inbox.sequences(chatId), list(range(1, last + 1)))
        mine = {sent(a) for a in answers}
        copies = [m for m in tab.inbox.chatEvents(chatId) if m["sequence"] in mine]
        self.assertEqual(copies, answers)
        elsewhere = [m for m in other.inbox.chatEvents(chatId) if m["sequence"] in mine]
        self.assertEqual([m.get("id") for m in elsewhere], [None, None, None])
        self.assertEqual([m["event"]["message"] for m in elsewhere], ["mine 0", "mine 1", "mine 2"])

    @defer.inlineCallbacks
    def test_messageRate(self) -> Any:
        """A visitor's messages beyond the burst are refused (rate_limited) until time passes."""
        self.front.limits.messages.configure(1 / 60.0, 2)
        op = yield self.operator()
        agent, achan = yield self.connectOperator(op)
        tab, _ = yield self.open((yield self.visitorToken()))
        chatId = reply((yield tab.ask("chat.request", message="hi")))["chatId"]
        yield achan.next(isType("chat.offered", chatId=chatId))
        yield agent.accept(chatId)
        answers = []
        for n in range(3):
            answers.append((yield tab.ask("chat.send", chatId=chatId, text=f"m{n}")))
        self.assertEqual([a["type"] for a in answers], ["chat.event", "chat.event", "error"])
        self.assertEqual(answers[2]["code"], "rate_limited")
        self.clock.advance(60)
        again = yield tab.ask("chat.send", chatId=chatId, text="m3")
        self.assertEqual(sent(again), sent(answers[1]) + 1)


class RealSocketMixin(WebMixin):
    """Real clients on real sockets: the HTTP handshake and the transport."""

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield super().setUp()
        yield self.allow(100, SITE)

    def wsURL(self, url: str, licence: int = 100) -> str:
        return url.replace("http://", "ws://") + f"ws?licence={licence}"

    @defer.inlineCallbacks
    def hello(
        self, url: str, visitorId: str = "visitor-0001", protocol: Any = WSClient, **options: Any
    ) -> Any:
        yield self.core.pageView(100, visitorId, url=SITE)
        client = yield connectWS(self, self.wsURL(url), SITE, protocol, options)
        welcome = yield client.ask("hello", token=self.front.tokens.issue(100, visitorId))
        self.assertEqual(welcome["type"], "welcome")
        return client

    @defer.inlineCallbacks
    def test_handshakeRefused(self) -> Any:
        """
        Another origin, an unknown licence, a banned address: the upgrade is
        refused with 403/404 and no socket opens.
        """
        url = self.serve()
        for target, origin, status in (
            (self.wsURL(url), "https://evil.example", "403"),
            (self.wsURL(url), None, "403"),
            (self.wsURL(url, 424242), SITE, "404"),
        ):
            failure = yield self.assertFailure(connectWS(self, target, origin), Exception)
            self.assertIn(status, str(failure), (target, origin))
        yield self.setting(100, "web.banned", ["127.0.0.1"])
        failure = yield self.assertFailure(connectWS(self, self.wsURL(url), SITE), Exception)
        self.assertIn("403", str(failure))

    @defer.inlineCallbacks
    def test_sizeLimit(self) -> Any:
        """
        A message of exactly WEB_MAX_MESSAGE_BYTES is read (and answered); one
        byte more closes the socket with 1009 (too big).
        """
        self.front.settings = attr.evolve(self.front.settings, maxMessageBytes=2048)
        client = yield self.hello(self.serve())
        fill = 2048 - len('{"type": "ping", "id": "x", "pad": ""}')
        exact = b'{"type": "ping", "id": "x", "pad": "' + b"a" * fill + b'"}'
        self.assertEqual(len(exact), 2048)
        client.sendMessage(exact)
        answer = yield client.next(lambda m: m.get("id") == "x")
        self.assertEqual(answer["type"], "reply")
        client.sendMessage(exact[:-2] + b'a"}')
        code, _ = yield client.closed
        self.assertEqual(code, 1009)

    @defer.inlineCallbacks
    def test_sendsPastTheReadLimit(self) -> Any:
        """
        WEB_MAX_MESSAGE_BYTES bounds what a visitor sends, not what it is
        sent: an agent's message larger than that reaches the visitor, plain
        and through permessage-deflate (larger than the limit compressed).
        """
        import random

        from autobahn.websocket.compress import (
            PerMessageDeflateOffer,
            PerMessageDeflateResponseAccept,
        )

        self.front.settings = attr.evolve(self.front.settings, maxMessageBytes=1024, deflate=True)
        op = yield self.operator(nick="anna")
        agent, achan = yield self.connectOperator(op)
        url = self.serve()
        plain = yield self.hello(url)
        deflated = yield self.hello(
            url,
            "visitor-0002",
            perMessageCompressionOffers=[PerMessageDeflateOffer()],
            perMessageCompressionAccept=PerMessageDeflateResponseAccept,
        )
        self.assertIsNotNone(deflated._perMessageCompress)
        text = "".join(random.Random(7).choices("abcdefghijklmnopqrstuvwxyz0123456789", k=3000))
        for tab in (plain, deflated):
            chatId = reply((yield tab.ask("chat.request", name="Vera", message="Hi")))["chatId"]
            yield achan.next(isType("chat.offered", chatId=chatId))
            yield agent.accept(chatId)
            yield tab.next(isEvent("JoinEvent", chatId))
            before = tab.trafficStats.incomingOctetsWebSocketLevel
            yield agent.send(chatId, text)
            got = yield tab.next(isEvent("ContentEvent", chatId, message=text))
            self.assertEqual(got["event"]["message"], text)
            # On the wire (compressed, for the second) it was over the limit.
            self.assertGreater(tab.trafficStats.incomingOctetsWebSocketLevel - before, 1024)

    @defer.inlineCallbacks
    def test_heartbeat(self) -> Any:
        """
        The server pings an idle socket every WEB_PING_INTERVAL; a client
        that answers stays (three pings, each answered within the timeout); a
        client that stops answering is closed after WEB_PING_TIMEOUT.
        """
        self.front.settings = attr.evolve(self.front.settings, pingInterval=0.5, pingTimeout=1.0)
        url = self.serve()
        client = yield self.hello(url)
        yield client.pinged(3)
        self.assertFalse(client.closed.called)

        class Deaf(WSClient):
            def onPing(self, payload: bytes) -> None:
                self.pings += 1  # and no pong

        deaf = yield self.hello(url, "visitor-0002", protocol=Deaf)
        code, reason = yield deaf.closed
        self.assertGreaterEqual(deaf.pings, 1)
        self.assertEqual(code, 1006)  # dropped: no pong within the timeout
        self.assertFalse(client.closed.called)

    @defer.inlineCallbacks
    def test_slowConsumerCutOff(self) -> Any:
        """
        A visitor that stops reading is cut off once more than
        WEB_SEND_BUFFER bytes wait for it (no unbounded growth); it resumes
        on a new socket from its last sequence with nothing lost.
        """
        self.front.settings = attr.evolve(self.front.settings, sendBuffer=64 * 1024)
        op = yield self.operator()
        agent, achan = yield self.connectOperator(op)
        url = self.serve()
        client = yield self.hello(url)
        chatId = reply((yield client.ask("chat.request", message="hi")))["chatId"]
        yield achan.next(isType("chat.offered", chatId=chatId))
        yield agent.accept(chatId)
        yield client.next(isEvent("JoinEvent", chatId))
        seen = client.inbox.sequences(chatId)[-1]
        client.transport.pauseProducing()  # stop reading: the server's buffers fill
        server = list(self.front.channels)
        self.assertEqual(len(server), 1)
        sent = []
        text = "x" * 3000
        while not server[0]._gone and len(sent) < 2000:
            sent.append((yield agent.send(chatId, text)))
            self.assertLessEqual(server[0]._queued, 64 * 1024 + 4096)
        self.assertTrue(server[0]._gone, "never cut off")
        self.assertLess(len(sent), 2000)
        again = yield connectWS(self, self.wsURL(url), SITE)
        welcome = yield again.ask(
            "hello", token=self.front.tokens.issue(100, "visitor-0001"), resume={str(chatId): seen}
        )
        self.assertEqual(welcome["chats"], [chatId])
        yield again.next(lambda m: m.get("sequence") == sent[-1])
        self.assertEqual(again.inbox.sequences(chatId), sent)

    @defer.inlineCallbacks
    def test_deflateOffByDefault(self) -> Any:
        """A client's permessage-deflate offer is declined unless WEB_DEFLATE is on."""
        from autobahn.websocket.compress import (
            PerMessageDeflateOffer,
            PerMessageDeflateResponseAccept,
        )

        offers = {
            "perMessageCompressionOffers": [PerMessageDeflateOffer()],
            "perMessageCompressionAccept": PerMessageDeflateResponseAccept,
        }
        url = self.serve()
        client = yield self.hello(url, **offers)
        self.assertIsNone(client._perMessageCompress)
        self.front.settings = attr.evolve(self.front.settings, deflate=True)
        url = self.serve()
        client = yield self.hello(url, "visitor-0002", **offers)
        self.assertIsNotNone(client._perMessageCompress)

    @defer.inlineCallbacks
    def test_disconnectLetsVisitorGo(self) -> Any:
        """Closing the last tab marks the visitor not connected for the agents."""
        op = yield self.operator()
        _, achan = yield self.connectOperator(op)
        client = yield self.hello(self.serve())
        yield achan.next(lambda m: m.get("type") == "visitor.update" and m["visitor"]["connected"])
        self.assertEqual(len(self.front.channels), 1)
        client.transport.loseConnection()
        update = yield achan.next(
            lambda m: m.get("type") == "visitor.update" and not m["visitor"]["connected"]
        )
        self.assertEqual(update["visitor"]["id"], "visitor-0001")
        self.assertEqual(self.front.channels, set())
        self.assertEqual(dict(self.front.tabs), {})


class AccelerationTests(unittest.TestCase):
    def test_report(self) -> None:
        """The start-up line says whether Autobahn's native parts (NVX) are in use."""
        from autobahn.websocket import USES_NVX

        report = accelerationReport()
        if USES_NVX:
            self.assertIn("NVX) in use", report)
            self.assertIn("XOR masker autobahn.nvx", report)
            self.assertIn("integer XOR", report)
        else:
            self.assertNotIn("NVX) in use", report)
            self.assertIn("integer XOR", report)


globals().update(bothDialects(MemoryWebSocketMixin, "MemoryWebSocketTests"))
globals().update(bothDialects(RealSocketMixin, "RealWebSocketTests"))
