"""
The web agent's WebSocket (/agent/ws) on real sockets with the real core:
login over HTTP, the handshake's checks (session cookie, Origin), a
conversation with a visitor on the visitors' WebSocket, resume after a
reconnect, transfer, the session ending (log out everywhere, a disabled
operator), limits and bad requests, history and search within the licence.
"""

from __future__ import annotations

import json
from typing import Any

import attr
from autobahn.twisted.websocket import WebSocketClientFactory
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.trial import unittest
from twisted.web import resource

from livechat.auth import LoginThrottle, makePortal
from livechat.model import AccountType, Operator
from livechat.protocols.agentweb import AgentFront, loadAgentFiles, mountAgent
from livechat.protocols.agentws import AgentSettings
from livechat.protocols.http import makeSite
from livechat.protocols.web import mountWeb
from livechat.websession import SessionManager, SessionSettings
from tests.support.browser import serveSite
from tests.support.core import isEvent, isType
from tests.support.http import request
from tests.support.web import WebMixin, WSClient, connectWS
from tests.support.web import sent as sentOver
from tests.test_auth import cheapHasher

SITE = "https://www.example.com"
SECRET = b"a session secret for the agent tests, long enough"


def connectAgent(
    testcase: Any, url: str, origin: str | None, cookie: str | None, **options: Any
) -> defer.Deferred[WSClient]:
    """An agent's WebSocket with a cookie; fires once open, or fails with the refusal."""
    from urllib.parse import urlsplit

    headers = {"Cookie": cookie} if cookie else {}
    factory = WebSocketClientFactory(url, origin=origin, headers=headers)
    factory.protocol = WSClient
    if options:
        factory.setProtocolOptions(**options)
    parts = urlsplit(url)

    def connected(client: WSClient) -> Any:
        from tests.support.web import _cut

        testcase.addCleanup(_cut, client)
        return client.opened

    endpoint = TCP4ClientEndpoint(reactor, parts.hostname, parts.port)
    return endpoint.connect(factory).addCallback(connected)


class AgentMixin(WebMixin):
    """The web side and the web agent of a real core on a real Site."""

    agentSettings = AgentSettings(checkInterval=60.0)

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield super().setUp()
        self.hasher = cheapHasher()
        self.throttle = LoginThrottle(self.clock)
        self.webSessions = SessionManager(
            self.store,
            self.clock,
            SessionSettings(idleTimeout=7200, maxAge=86400),
            portal=makePortal(self.store, self.hasher, self.throttle, self.clock),
            secret=SECRET,
        )
        self.agentFront = AgentFront(self.core, self.webSessions, self.agentSettings, self.clock)
        self.agentFront.files = loadAgentFiles()
        self.agentFront.calls.reception = self.front.reception
        yield self.allow(100, SITE)

    def serveAll(self) -> str:
        """The visitors' web and the agent on one Site; the base URL."""
        root = resource.Resource()
        mountWeb(root, self.front)
        mountAgent(root, self.agentFront)
        self.url = serveSite(self, makeSite(root))
        self.origin = self.url.rstrip("/")
        return self.url

    @defer.inlineCallbacks
    def agentOperator(self, nick: str, licence: int = 100, **kw: Any) -> Any:
        yield self.licence(licence)
        passwordHash = yield self.hasher.hash(f"{nick}-pw")
        op = yield self.store.createOperator(
            licence,
            Operator(
                id=0,
                licence=0,
                nick=nick,
                operator_id=f"{nick}@example.com",
                first_name=nick.capitalize(),
                account_type=AccountType.CONTACT_CENTER,
                **kw,
            ),
            passwordHash,
        )
        return op

    @defer.inlineCallbacks
    def login(self, nick: str, licence: int = 100) -> Any:
        """Log in over HTTP; fires with (cookie header value, session JSON)."""
        body = json.dumps({"licence": licence, "nick": nick, "password": f"{nick}-pw"})
        code, headers, raw = yield request(
            "POST",
            self.url + "agent/login",
            body.encode(),
            {"Content-Type": "application/json", "Origin": self.origin},
        )
        self.assertEqual(code, 200, raw)
        cookie = headers.getRawHeaders(b"set-cookie")[0].decode().split(";")[0]
        return cookie, json.loads(raw)

    @defer.inlineCallbacks
    def agent(
        self,
        nick: str,
        resume: dict[str, int] | None = None,
        cookie: str | None = None,
        licence: int = 100,
    ) -> Any:
        """A logged-in agent's socket after its welcome; fires with (client, welcome)."""
        if cookie is None:
            cookie, _ = yield self.login(nick, licence)
        client = yield connectAgent(
            self, self.url.replace("http://", "ws://") + "agent/ws", self.origin, cookie
        )
        welcome = yield client.ask("hello", resume=resume or {})
        self.assertEqual(welcome["type"], "welcome", welcome)
        client.cookie = cookie  # type: ignore[attr-defined]
        return client, welcome

    @defer.inlineCallbacks
    def visitor(self, visitorId: str = "visitor-0001") -> Any:
        yield self.core.pageView(100, visitorId, url=SITE + "/shop", title="Shop")
        client = yield connectWS(
            self, self.url.replace("http://", "ws://") + "ws?licence=100", SITE
        )
        welcome = yield client.ask("hello", token=self.front.tokens.issue(100, visitorId))
        self.assertEqual(welcome["type"], "welcome")
        return client

    @defer.inlineCallbacks
    def chatting(self, agent: WSClient, visitor: WSClient, first: str = "Hello") -> Any:
        """The visitor asks, the agent is offered the chat and accepts it; the chat id."""
        answer = yield visitor.ask("chat.request", name="Vera", message=first)
        chatId = answer["result"]["chatId"]
        offered = yield agent.next(isType("chat.offered", chatId=chatId))
        self.assertEqual(offered["firstMessage"], first)
        accepted = yield agent.ask("chat.accept", chatId=chatId)
        self.assertEqual(accepted["type"], "reply", accepted)
        yield visitor.next(isEvent("JoinEvent", chatId))
        return chatId


class AgentWebSocketTests(AgentMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_conversation(self) -> Any:
        """
        A logged-in agent sees the visitor, is offered their chat, accepts
        it; messages, typing and read receipts go both ways; the agent
        closes the chat.
        """
        self.serveAll()
        yield self.agentOperator("anna")
        agent, welcome = yield self.agent("anna")
        self.assertEqual(welcome["session"]["operator"]["nick"], "anna")
        self.assertEqual(welcome["status"], 0)
        self.assertIsNotNone(welcome["teamChatId"])
        self.assertNotIn("csrfToken", json.dumps(welcome["operators"]))
        visitor = yield self.visitor()
        seen = yield agent.next(
            lambda m: m.get("type") == "visitor.update" and m["visitor"]["id"] == "visitor-0001"
        )
        self.assertEqual(seen["visitor"]["title"], "Shop")
        chatId = yield self.chatting(agent, visitor, "Where is my parcel?")

        sent = yield agent.ask("chat.send", chatId=chatId, text="Let me look <b>now</b>")
        got = yield visitor.next(isEvent("ContentEvent", chatId, message="Let me look <b>now</b>"))
        self.assertEqual(got["sequence"], sent["result"]["sequence"])
        self.assertEqual(got["originatorMetadata"]["role"], "ASSIGNED_AGENT")
        yield agent.ask("chat.state", chatId=chatId, state="COMPOSING")
        yield visitor.next(isEvent("ChatStateEvent", chatId, chatState="COMPOSING"))
        yield visitor.ask("chat.state", chatId=chatId, state="COMPOSING")
        yield agent.next(isEvent("ChatStateEvent", chatId, chatState="COMPOSING"))
        seq = sentOver((yield visitor.ask("chat.send", chatId=chatId, text="Thanks")))
        yield agent.next(isEvent("ContentEvent", chatId, message="Thanks"))
        read = yield agent.ask("chat.read", chatId=chatId, sequences=[seq])
        self.assertEqual(read["type"], "reply")
        receipt = yield visitor.next(isEvent("AcceptStatusEvent", chatId))
        self.assertEqual(receipt["event"]["sequenceList"], [seq])
        yield visitor.ask("chat.read", chatId=chatId, sequences=[sent["result"]["sequence"]])
        yield agent.next(
            lambda m: (
                isEvent("AcceptStatusEvent", chatId)(m)
                and m["originatorMetadata"]["role"] == "CONSUMER"
            )
        )
        closed = yield agent.ask("chat.close", chatId=chatId)
        self.assertEqual(closed["type"], "reply")
        yield visitor.next(isEvent("CloseEvent", chatId, reason="operator_closed"))

    @defer.inlineCallbacks
    def test_handshakeRefused(self) -> Any:
        """
        Without a session cookie, with a bad one, from another origin or none:
        the upgrade is refused (401/403) and no session starts.
        """
        self.serveAll()
        yield self.agentOperator("anna")
        cookie, _ = yield self.login("anna")
        ws = self.url.replace("http://", "ws://") + "agent/ws"
        for origin, cookieValue, status in (
            (self.origin, None, "401"),
            (self.origin, "lcs=" + "A" * 43, "401"),
            (self.origin, "lcs=garbage", "401"),
            ("https://evil.example", cookie, "403"),
            (None, cookie, "403"),
            (SITE, cookie, "403"),
        ):
            failure = yield self.assertFailure(
                connectAgent(self, ws, origin, cookieValue), Exception
            )
            self.assertIn(status, str(failure), (origin, cookieValue))
        self.assertEqual(self.agentFront.channels, set())

    @defer.inlineCallbacks
    def test_resumeAfterReconnect(self) -> Any:
        """
        The agent's connection drops; the visitor writes meanwhile; the agent
        reconnects with its last sequence and receives exactly what it missed,
        once, in order, and the chat goes on.
        """
        self.serveAll()
        yield self.agentOperator("anna")
        agent, _ = yield self.agent("anna")
        visitor = yield self.visitor()
        chatId = yield self.chatting(agent, visitor)
        yield agent.ask("chat.send", chatId=chatId, text="one")
        yield agent.next(isEvent("ContentEvent", chatId, message="one"))
        last = max(agent.inbox.sequences(chatId))
        agent.transport.abortConnection()
        yield agent.closed
        for text in ("two", "three"):
            yield visitor.ask("chat.send", chatId=chatId, text=text)
        again, welcome = yield self.agent("anna", {str(chatId): last}, cookie=agent.cookie)
        self.assertIn(chatId, [c["chatId"] for c in welcome["chats"]])
        yield again.next(isEvent("ContentEvent", chatId, message="three"))
        self.assertEqual(again.inbox.sequences(chatId), [last + 1, last + 2])
        yield again.ask("chat.send", chatId=chatId, text="four")
        yield visitor.next(isEvent("ContentEvent", chatId, message="four"))

    @defer.inlineCallbacks
    def test_transferAndConference(self) -> Any:
        """
        Anna invites Bob into the chat (a conference), Bob joins and writes;
        then Anna transfers the chat to Bob, who keeps it.
        """
        self.serveAll()
        anna = yield self.agentOperator("anna")
        bob = yield self.agentOperator("bob")
        a, welcome = yield self.agent("anna")
        self.assertIn("bob", [o["nick"] for o in welcome["operators"]])
        b, _ = yield self.agent("bob")
        visitor = yield self.visitor()
        chatId = yield self.chatting(a, visitor)
        invited = yield a.ask("chat.invite", chatId=chatId, operatorId=bob.id)
        self.assertEqual(invited["type"], "reply", invited)
        yield b.next(isType("conference.invited", chatId=chatId))
        joined = yield b.ask("chat.join", chatId=chatId)
        self.assertEqual(joined["type"], "reply", joined)
        yield b.ask("chat.send", chatId=chatId, text="Bob here")
        yield visitor.next(isEvent("ContentEvent", chatId, message="Bob here"))
        yield b.ask("chat.leave", chatId=chatId)
        moved = yield a.ask("chat.transfer", chatId=chatId, operatorId=bob.id)
        self.assertEqual(moved["type"], "reply", moved)
        yield b.next(lambda m: m.get("type") == "chat.opened" and m["chatId"] == chatId)
        yield a.next(isEvent("LeaveEvent", chatId, reason="transfer"))
        mine = yield b.ask("chat.send", chatId=chatId, text="I have it now")
        self.assertEqual(mine["type"], "reply", mine)
        yield visitor.next(isEvent("ContentEvent", chatId, message="I have it now"))
        refused = yield a.ask("chat.send", chatId=chatId, text="still here?")
        self.assertEqual((refused["type"], refused["code"]), ("error", "forbidden"))
        info = yield b.ask("chat.info", chatId=chatId)
        self.assertEqual(info["result"]["operatorId"], bob.id)
        self.assertNotEqual(anna.id, bob.id)

    @defer.inlineCallbacks
    def test_sessionEnds(self) -> Any:
        """
        "Log out everywhere" closes the agent's socket at once (4001); a
        disabled operator's socket closes at the next session check.
        """
        self.serveAll()
        yield self.agentOperator("anna")
        yield self.agentOperator("bob")
        a, welcome = yield self.agent("anna")
        code, _, raw = yield request(
            "POST",
            self.url + "agent/logout-everywhere",
            b"",
            {"Cookie": a.cookie, "X-CSRF-Token": welcome["session"]["csrfToken"]},
        )
        self.assertEqual(code, 200, raw)
        yield a.next(isType("session.ended"))
        closed, _ = yield a.closed
        self.assertEqual(closed, 4001)

        b, _ = yield self.agent("bob")
        yield self.store.updateOperator(100, "bob", disabled=True)
        self.clock.advance(self.agentSettings.checkInterval)
        closed, _ = yield b.closed
        self.assertEqual(closed, 4001)

    @defer.inlineCallbacks
    def test_limitsAndBadRequests(self) -> Any:
        """
        Requests before hello, unknown types, bad fields and chats not one's
        own get clear errors; a message over AGENT_MAX_MESSAGE_BYTES closes
        the socket (1009), one of exactly that size is served.
        """
        self.agentFront.settings = attr.evolve(self.agentSettings, maxMessageBytes=2048)
        self.serveAll()
        yield self.agentOperator("anna")
        cookie, _ = yield self.login("anna")
        ws = self.url.replace("http://", "ws://") + "agent/ws"
        early = yield connectAgent(self, ws, self.origin, cookie)
        answer = yield early.ask("chat.send", chatId=1, text="x")
        self.assertEqual((answer["code"], answer["message"]), ("bad_request", "say hello first"))
        agent, _ = yield self.agent("anna", cookie=cookie)
        for fields, code in (
            ({"type": "nonsense"}, "bad_request"),
            ({"type": "status.set", "status": "sleeping"}, "bad_request"),
            ({"type": "chat.send", "chatId": "1", "text": "x"}, "bad_request"),
            ({"type": "chat.send", "chatId": 999, "text": "x"}, "forbidden"),
            ({"type": "chat.transfer", "chatId": 1}, "bad_request"),
            ({"type": "transcripts.search", "text": "a"}, "bad_request"),
            ({"type": "transcript", "chatId": 424242}, "not_found"),
        ):
            kind = fields.pop("type")
            answer = yield agent.ask(kind, **fields)
            self.assertEqual((answer["type"], answer["code"]), ("error", code), (kind, answer))
        status = yield agent.ask("status.set", status="away")
        self.assertEqual(status["result"], {"status": 1})
        fill = 2048 - len('{"type": "ping", "id": "x", "pad": ""}')
        exact = b'{"type": "ping", "id": "x", "pad": "' + b"a" * fill + b'"}'
        agent.sendMessage(exact)
        answer = yield agent.next(lambda m: m.get("id") == "x")
        self.assertEqual(answer["type"], "reply")
        agent.sendMessage(exact[:-2] + b'a"}')
        code, _ = yield agent.closed
        self.assertEqual(code, 1009)

    @defer.inlineCallbacks
    def test_sendsPastTheReadLimit(self) -> Any:
        """
        AGENT_MAX_MESSAGE_BYTES bounds what the agent sends, not what it is
        sent: a welcome listing more visitors than that many bytes hold, and
        a history answer as long, arrive whole.
        """
        self.agentFront.settings = attr.evolve(self.agentSettings, maxMessageBytes=1024)
        self.serveAll()
        yield self.agentOperator("anna")
        for i in range(12):
            yield self.core.pageView(
                100, f"visitor-{i:04d}", url=SITE + "/shop/" + "p" * 100, title="Shop"
            )
        agent, welcome = yield self.agent("anna")
        self.assertEqual(len(welcome["visitors"]), 12)
        self.assertGreater(len(json.dumps(welcome)), 1024 * 2)
        visitor = yield self.visitor("visitor-0000")
        chatId = yield self.chatting(agent, visitor, "x" * 400)
        for _ in range(4):
            yield visitor.ask("chat.send", chatId=chatId, text="y" * 400)
        answer = yield agent.ask("transcript", chatId=chatId)
        self.assertEqual(answer["type"], "reply", answer)
        self.assertGreater(len(json.dumps(answer)), 1024 * 2)

    @defer.inlineCallbacks
    def test_rateLimit(self) -> Any:
        """
        One operator's requests over all their sockets: AGENT_BURST at once
        are served, the next is refused rate_limited; after 1/AGENT_RATE s
        one more is served.
        """
        self.agentFront.settings = attr.evolve(self.agentSettings, rate=2.0, burst=5.0)
        self.serveAll()
        yield self.agentOperator("anna")
        cookie, _ = yield self.login("anna")
        first, _ = yield self.agent("anna", cookie=cookie)
        second, _ = yield self.agent("anna", cookie=cookie)
        answers = []
        for client in (first, second, first, second, first):
            answers.append((yield client.ask("ping"))["type"])
        self.assertEqual(answers, ["reply"] * 5)
        refused = yield second.ask("ping")
        self.assertEqual((refused["type"], refused["code"]), ("error", "rate_limited"))
        self.clock.advance(0.5)
        answer = yield first.ask("ping")
        self.assertEqual(answer["type"], "reply")
        refused = yield first.ask("ping")
        self.assertEqual(refused["code"], "rate_limited")

    @defer.inlineCallbacks
    def test_offlineHandled(self) -> Any:
        """
        A message left while nobody was online is shown at the agent's hello;
        marking it handled tells every agent, and only once.
        """
        self.serveAll()
        yield self.agentOperator("anna")
        yield self.agentOperator("bob")
        left = yield self.front.reception.leaveMessage(
            100, "visitor-0009", name="Vera", email="vera@example.com", message="Call me"
        )
        anna, _ = yield self.agent("anna")
        shown = yield anna.next(isType("offline.messages"))
        self.assertEqual([m["id"] for m in shown["messages"]], [left["id"]])
        bob, _ = yield self.agent("bob")
        answer = yield anna.ask("offline.handle", ids=[left["id"]])
        self.assertEqual(answer["result"], {"ids": [left["id"]]}, answer)
        told = yield bob.next(isType("offline.handled"))
        self.assertEqual(told["ids"], [left["id"]])
        again = yield bob.ask("offline.handle", ids=[left["id"]])
        self.assertEqual(again["result"], {"ids": []})
        bad = yield bob.ask("offline.handle", ids=["x"])
        self.assertEqual(bad["code"], "bad_request")

    @defer.inlineCallbacks
    def test_historyAndSearch(self) -> Any:
        """
        History of the visitor and a search across transcripts find the
        licence's chats; another licence's chat and colleagues' private chats
        stay out of reach.
        """
        self.serveAll()
        yield self.agentOperator("anna")
        bob = yield self.agentOperator("bob")
        carl = yield self.agentOperator("carl")
        yield self.agentOperator("zed", licence=200)
        a, _ = yield self.agent("anna")
        visitor = yield self.visitor()
        chatId = yield self.chatting(a, visitor, "My parcel 4711 is late")
        yield a.ask("chat.close", chatId=chatId)
        found = yield a.ask("transcripts.search", text="parcel 4711")
        self.assertEqual([c["chatId"] for c in found["result"]["chats"]], [chatId])
        history = yield a.ask("history", visitorId="visitor-0001")
        self.assertEqual(history["result"]["chats"][0]["chatId"], chatId)
        transcript = yield a.ask("transcript", chatId=chatId)
        self.assertEqual(
            [m["event"]["message"] for m in transcript["result"]["messages"]],
            ["My parcel 4711 is late"],
        )
        # Zed (licence 200) finds nothing of licence 100, even by id.
        z, _ = yield self.agent("zed", licence=200)
        found = yield z.ask("transcripts.search", text="parcel 4711")
        self.assertEqual(found["result"]["chats"], [])
        other = yield z.ask("transcript", chatId=chatId)
        self.assertEqual(other["type"], "error")
        # A private chat between Bob and Carl is theirs alone.
        b, _ = yield self.agent("bob")
        private = yield b.ask("private.open", operatorId=carl.id)
        privateId = private["result"]["chatId"]
        yield b.ask("chat.send", chatId=privateId, text="just between us")
        refused = yield a.ask("transcript", chatId=privateId)
        self.assertEqual((refused["type"], refused["code"]), ("error", "not_found"))
        mine = yield b.ask("transcript", chatId=privateId)
        self.assertEqual(mine["result"]["messages"][0]["event"]["message"], "just between us")
        self.assertNotEqual(bob.id, carl.id)

    @defer.inlineCallbacks
    def test_teamChat(self) -> Any:
        """The team chat reaches every agent of the licence, and no other licence."""
        self.serveAll()
        yield self.agentOperator("anna")
        yield self.agentOperator("bob")
        yield self.agentOperator("zed", licence=200)
        a, welcome = yield self.agent("anna")
        b, _ = yield self.agent("bob")
        z, zWelcome = yield self.agent("zed", licence=200)
        team = welcome["teamChatId"]
        sent = yield a.ask("chat.send", chatId=team, text="Morning all")
        self.assertEqual(sent["type"], "reply", sent)
        yield b.next(isEvent("ContentEvent", team, message="Morning all"))
        # Zed's team chat is licence 200's own (chat ids are per licence).
        yield z.ask("chat.send", chatId=zWelcome["teamChatId"], text="hi from 200")
        yield z.next(isEvent("ContentEvent", zWelcome["teamChatId"], message="hi from 200"))
        yield a.ask("chat.send", chatId=team, text="Second")
        yield b.next(isEvent("ContentEvent", team, message="Second"))
        self.assertFalse([m for m in z.inbox.messages if "Morning" in json.dumps(m)])
        self.assertFalse([m for m in b.inbox.messages if "from 200" in json.dumps(m)])

    @defer.inlineCallbacks
    def test_pages(self) -> Any:
        """/agent redirects to /agent/; the app's page has a strict CSP; unknown paths 404."""
        self.serveAll()
        code, headers, _ = yield request("GET", self.url + "agent")
        self.assertEqual(code, 302)
        code, headers, body = yield request("GET", self.url + "agent/")
        self.assertEqual(code, 200)
        self.assertIn(b'id="login-form"', body)
        csp = headers.getRawHeaders(b"content-security-policy")[0]
        self.assertIn(b"script-src 'self'", csp)
        self.assertIn(b"frame-ancestors 'none'", csp)
        code, headers, _ = yield request("GET", self.url + "agent/agent.js")
        self.assertEqual(code, 200)
        self.assertIn(b"javascript", headers.getRawHeaders(b"content-type")[0])
        code, _, _ = yield request("GET", self.url + "agent/nothing")
        self.assertEqual(code, 404)


class AgentDocTests(unittest.TestCase):
    def read(self, *path: str) -> str:
        import os

        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with open(os.path.join(root, *path), encoding="utf-8") as f:
            return f.read()

    def test_everyRequestAndLimit(self) -> None:
        """docs/agent.md lists every request of the agent and every limit key it uses."""
        from livechat.protocols.agentws import AgentCalls

        doc = self.read("docs", "agent.md")
        for kind in AgentCalls(None).types + ["hello"]:  # type: ignore[arg-type]
            self.assertIn(f"| `{kind}` |", doc, kind)
        for key in (
            "AGENT_MAX_MESSAGE_BYTES",
            "AGENT_SEND_BUFFER",
            "AGENT_RATE",
            "AGENT_BURST",
            "SESSION_CHECK_INTERVAL",
            "SESSION_IDLE_TIMEOUT",
            "SESSION_MAX_AGE",
            "SESSION_MAX_PER_OPERATOR",
            "CANNED_MAX_PER_LICENCE",
            "CANNED_MAX_LENGTH",
        ):
            self.assertIn(f"`{key}`", doc, key)

    def test_linked(self) -> None:
        """The README and events.md point at docs/agent.md."""
        self.assertIn("docs/agent.md", self.read("README.md"))
        self.assertIn("(agent.md)", self.read("docs", "events.md"))
