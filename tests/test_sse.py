"""
The SSE fallback on real sockets over a real core and store (sqlite and
MariaDB): the stream's welcome, events, heartbeats and resume; its
refusals; a visitor that cannot keep up; and the stream on one node with
the visitor's POSTs on another (two cores sharing the store, the bus and
presence, as two nodes share MariaDB and Redis).
"""

from __future__ import annotations

from typing import Any

import attr
from twisted.internet import defer

from livechat.core.hub import Core
from livechat.core.reception import Reception
from livechat.protocols.web import WebFront
from tests.support.core import isEvent, isType
from tests.support.db import bothDialects
from tests.support.web import WebMixin, openSSE, postJSON

SITE = "https://shop.example"


class SSEMixin(WebMixin):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield super().setUp()
        yield self.allow(100, SITE)
        self.url = self.serve()

    @defer.inlineCallbacks
    def visitor(self, url: str | None = None) -> Any:
        """A page view; fires with the visitor's token."""
        _, _, page = yield postJSON(
            (url or self.url) + "livesupport/monitor", {"licence": 100}, {"Origin": SITE}
        )
        return page["token"]

    def stream(
        self, token: str, resume: str = "", url: str | None = None, origin: str = SITE
    ) -> Any:
        return openSSE(
            self,
            (url or self.url) + f"livesupport/sse?licence=100&token={token}&resume={resume}",
            origin,
        )

    @defer.inlineCallbacks
    def call(self, token: str, url: str | None = None, **body: Any) -> Any:
        code, _, answer = yield postJSON(
            (url or self.url) + "livesupport/call",
            {"licence": 100, "token": token, **body},
            {"Origin": SITE},
        )
        return answer

    @defer.inlineCallbacks
    def test_streamAndResume(self) -> Any:
        """
        The stream opens with welcome, then carries the visitor's chat both
        ways (requests by POST); heartbeats come every WEB_PING_INTERVAL;
        after a cut, resuming from the last sequence gives exactly the
        missed events.
        """
        op = yield self.operator(nick="anna")
        agent, achan = yield self.connectOperator(op)
        token = yield self.visitor()
        stream = yield self.stream(token)
        self.assertEqual(
            stream.headers.getRawHeaders("content-type"), ["text/event-stream; charset=utf-8"]
        )
        self.assertEqual(stream.headers.getRawHeaders("access-control-allow-origin"), [SITE])
        welcome = yield stream.next(isType("welcome"))
        self.assertEqual(stream.inbox.messages[0], welcome)
        self.assertEqual(stream.fields, ["retry: 5000"])
        answer = yield self.call(token, type="chat.request", message="Hello?")
        chatId = answer["result"]["chatId"]
        yield stream.next(isType("chat.opened", chatId=chatId))
        yield achan.next(isType("chat.offered", chatId=chatId))
        yield agent.accept(chatId)
        yield stream.next(isEvent("JoinEvent", chatId))
        yield agent.send(chatId, "Hi Vera")
        yield stream.next(isEvent("ContentEvent", chatId, message="Hi Vera"))
        self.clock.advance(self.webSettings.pingInterval)
        yield stream.commented(1)
        self.assertEqual(stream.comments, ["ping"])

        last = stream.inbox.sequences(chatId)[-1]
        yield stream.cut()
        missed = []
        for text in ("one", "two"):
            missed.append((yield agent.send(chatId, text)))
        again = yield self.stream(token, f"{chatId}:{last}")
        welcome = yield again.next(isType("welcome"))
        self.assertEqual(welcome["chats"], [chatId])
        yield again.next(isEvent("ContentEvent", chatId, message="two"))
        self.assertEqual(again.inbox.sequences(chatId), missed)

    @defer.inlineCallbacks
    def test_refusals(self) -> Any:
        """Before any stream: 401 without a good token, 403 for other sites, 400 for bad resume."""
        token = yield self.visitor()
        for kwargs, code, error in (
            ({"token": "nope"}, 401, "unauthorized"),
            ({"token": token, "origin": "https://evil.example"}, 403, "origin_refused"),
            ({"token": token, "resume": "1:x"}, 400, "bad_request"),
            (
                {"token": token, "resume": ",".join(f"{n}:1" for n in range(1, 52))},
                400,
                "bad_request",
            ),
        ):
            stream = yield self.stream(**kwargs)
            self.assertEqual((stream.code, stream.refusal["code"]), (code, error), kwargs)

    @defer.inlineCallbacks
    def test_slowConsumerCutOff(self) -> Any:
        """
        A stream whose reader stops is cut once more than WEB_SEND_BUFFER
        bytes wait for it; the node keeps no more than that for it.
        """
        self.front.settings = attr.evolve(self.front.settings, sendBuffer=64 * 1024)
        op = yield self.operator()
        agent, achan = yield self.connectOperator(op)
        token = yield self.visitor()
        stream = yield self.stream(token)
        yield stream.next(isType("welcome"))
        answer = yield self.call(token, type="chat.request", message="hi")
        chatId = answer["result"]["chatId"]
        yield achan.next(isType("chat.offered", chatId=chatId))
        yield agent.accept(chatId)
        yield stream.next(isEvent("JoinEvent", chatId))
        stream.body.transport.pauseProducing()
        [server] = list(self.front.channels)
        count = 0
        while not server.gone and count < 2000:
            yield agent.send(chatId, "x" * 3000)
            count += 1
            self.assertLessEqual(server._queued, 64 * 1024 + 4096)
        self.assertTrue(server.gone)
        self.assertEqual(self.front.channels, set())

    @defer.inlineCallbacks
    def test_twoNodes(self) -> Any:
        """
        The stream is held by node A, the visitor's POSTs go to node B (no
        state of the visitor there): the chat request, messages, typing and
        the end all work, and A's stream carries what the agent does.
        """
        nodeB = Core(
            self.store,
            self.bus,
            self.router,
            self.notifier,
            self.clock,
            self.settings,
            presence=self.core.presence,
            nodeId="node-b",
        )
        nodeB.start()
        self.addCleanup(nodeB.stop)
        receptionB = Reception(nodeB, self.cache, self.mailer)
        frontB = WebFront(nodeB, receptionB, self.cache, self.webSettings, self.clock)
        frontB.tokens, frontB.assets = self.front.tokens, self.front.assets
        front, self.front = self.front, frontB
        urlB = self.serve()
        self.front = front

        op = yield self.operator(nick="anna")
        agent, achan = yield self.connectOperator(op)
        token = yield self.visitor(urlB)
        stream = yield self.stream(token)  # on node A
        yield stream.next(isType("welcome"))
        answer = yield self.call(token, urlB, type="chat.request", name="Vera", message="Hi")
        chatId = answer["result"]["chatId"]
        yield stream.next(isType("chat.opened", chatId=chatId))
        yield achan.next(isType("chat.offered", chatId=chatId))
        yield agent.accept(chatId)
        yield stream.next(isEvent("JoinEvent", chatId))
        answer = yield self.call(token, urlB, type="chat.send", chatId=chatId, text="From B")
        seq = answer["result"]["sequence"]
        got = yield stream.next(isEvent("ContentEvent", chatId, message="From B"))
        self.assertEqual(got["sequence"], seq)
        yield achan.next(isEvent("ContentEvent", chatId, message="From B"))
        yield self.call(token, urlB, type="chat.state", chatId=chatId, state="COMPOSING")
        yield achan.next(isEvent("ChatStateEvent", chatId, chatState="COMPOSING"))
        yield self.call(token, urlB, type="chat.leave", chatId=chatId)
        yield stream.next(isEvent("CloseEvent", chatId))
        self.assertEqual(stream.inbox.sequences(chatId), list(range(1, seq + 2)))
        self.assertEqual(frontB.channels, set())


globals().update(bothDialects(SSEMixin, "SSETests"))
