"""
The connector API over a WebSocket (L{livechat.protocols.connectorws}), on
a real node (sqlite, port 0) with real sockets: the refusals of the
upgrade, a whole conversation with an agent, the agent's events arriving
live as notifications, bad input answered, the rate limit and the size
limit at their edges.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from livechat.apikeys import createKey
from livechat.protocols.connectorws import notification
from tests.support.core import RecordingChannel, isEvent, isType
from tests.support.receiver import Receiver
from tests.support.web import WSClient, connectWS
from tests.test_api import ApiNodeMixin


class ConnectorClient(WSClient):
    """Answers are matched by C{reqId}; notifications go to the inbox."""

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        message = json.loads(payload)
        self.inbox._got(message)
        if message.get("kind") == "resp":
            waiting = self._answers.pop(str(message.get("reqId")), None)
            if waiting is not None:
                waiting.callback(message)

    def raw(self, data: bytes, isBinary: bool = False) -> Any:
        """Send C{data} as it is; fire with the answer that has no request id."""
        from twisted.internet import reactor

        d: defer.Deferred[dict[str, Any]] = defer.Deferred()
        d.addTimeout(10, reactor)
        self._answers["None"] = d
        self.sendMessage(data, isBinary=isBinary)
        return d

    def request(self, kind: str, body: dict[str, Any], consumer: str = "+48123456789") -> Any:
        self._ids += 1
        reqId = f"r{self._ids}"
        d: defer.Deferred[dict[str, Any]] = defer.Deferred()
        from twisted.internet import reactor

        d.addTimeout(10, reactor)
        self._answers[reqId] = d
        self.send({"kind": "req", "id": reqId, "type": kind, "consumer": consumer, "body": body})
        return d


def isNote(eventType: str, **fields: Any) -> Any:
    def check(m: dict[str, Any]) -> bool:
        if m.get("kind") != "notification":
            return False
        event = m["body"]["changes"][0]["event"]
        return event.get("type") == eventType and all(event.get(k) == v for k, v in fields.items())

    return check


class ConnectorWebSocketTests(ApiNodeMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield super().setUp()
        receiver = Receiver().start()
        self.addCleanup(receiver.stop)
        self.key = yield self.licenceWithKey(555555)
        code, self.app = yield self.call(
            "POST", "/apps", self.key, {"name": "Bridge", "endpoint": receiver.url("/n")}
        )
        self.assertEqual(code, 201, self.app)

    def wsURL(self, appId: int | str) -> str:
        return self.url(f"api/v1/apps/{appId}/connector/ws").replace("http://", "ws://")

    def open(self, key: str | None = None, appId: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return connectWS(
            self, self.wsURL(appId or self.app["id"]), None, ConnectorClient, headers=headers
        )

    @defer.inlineCallbacks
    def test_refusedBeforeOpening(self) -> Any:
        """
        No key, an unknown key, a key without the connector scope, another
        licence's app, a disabled app: refused with 401/401/403/404/409.
        """
        otherKey = yield self.licenceWithKey(666666)
        weakKey, _ = yield createKey(self.store, 555555, "read", {"read"})
        for headers, appId, status in (
            ({}, self.app["id"], "401"),
            ({"Authorization": "Bearer nope-" + "x" * 40}, self.app["id"], "401"),
            ({"Authorization": f"Bearer {weakKey}"}, self.app["id"], "403"),
            ({"Authorization": f"Bearer {otherKey}"}, self.app["id"], "404"),
            ({"Authorization": f"Bearer {self.key}"}, 999999, "404"),
        ):
            failure = yield self.assertFailure(
                connectWS(self, self.wsURL(appId), None, ConnectorClient, headers=headers),
                Exception,
            )
            self.assertIn(status, str(failure), (headers, appId))
        code, _ = yield self.call("PATCH", f"/apps/{self.app['id']}", self.key, {"enabled": False})
        self.assertEqual(code, 200)
        failure = yield self.assertFailure(self.open(), Exception)
        self.assertIn("409", str(failure))

    @defer.inlineCallbacks
    def test_wholeConversationLive(self) -> Any:
        """
        Open, routed to the agent who accepts and answers: the agent's join
        and message arrive on the socket as notifications with their
        sequences; the consumer writes (acked with the stored sequence),
        types (seen by the agent), reads, closes.  A second consumer on the
        same socket gets its own conversation and only its own events.
        """
        licence = yield self.store.getLicence(555555)
        agentOp = yield self.store.getOperator(555555, "admin")
        channel = RecordingChannel("agent")
        agent = self.node.parts.core.connectOperator(licence, agentOp, channel, client="test")
        self.addCleanup(agent.disconnect)
        yield defer.ensureDeferred(agent.start())
        client = yield self.open()

        opened = yield client.request(
            "cm.ConsumerRequestConversation", {"context": {"name": "Ola"}, "message": "Hi!"}
        )
        self.assertEqual(opened["code"], "OK", opened)
        dialog = opened["body"]["conversationId"]
        chatId = int(dialog)
        yield channel.next(isType("chat.offered", chatId=chatId))
        yield agent.accept(chatId)
        join = yield client.next(isNote("JoinEvent"))
        self.assertEqual(join["consumer"], "+48123456789")
        self.assertEqual(join["body"]["changes"][0]["conversationId"], dialog)
        agentSeq = yield agent.send(chatId, "Hello Ola")
        note = yield client.next(isNote("ContentEvent", message="Hello Ola"))
        change = note["body"]["changes"][0]
        self.assertEqual(change["sequence"], agentSeq)
        self.assertEqual(change["originatorMetadata"]["role"], "ASSIGNED_AGENT")
        self.assertEqual(change["dialogId"], dialog)

        yield agent.chatState(chatId, "COMPOSING")
        typing = yield client.next(isNote("ChatStateEvent", chatState="COMPOSING"))
        self.assertNotIn("sequence", typing["body"]["changes"][0])

        sent = yield client.request(
            "ms.PublishEvent",
            {"dialogId": dialog, "event": {"type": "ContentEvent", "message": "Where is it?"}},
        )
        self.assertEqual(sent["code"], "OK", sent)
        self.assertEqual(sent["body"]["sequence"], agentSeq + 1)
        got = yield channel.next(isEvent("ContentEvent", chatId, message="Where is it?"))
        self.assertEqual(got["sequence"], agentSeq + 1)
        read = yield client.request(
            "ms.PublishEvent",
            {
                "dialogId": dialog,
                "event": {
                    "type": "AcceptStatusEvent",
                    "status": "READ",
                    "sequenceList": [agentSeq],
                },
            },
        )
        self.assertEqual(read["code"], "OK", read)

        other = yield client.request(
            "cm.ConsumerRequestConversation", {"message": "Me too"}, consumer="+48999"
        )
        self.assertEqual(other["code"], "OK", other)
        self.assertNotEqual(other["body"]["conversationId"], dialog)

        closed = yield client.request(
            "cm.UpdateConversationField",
            {
                "conversationId": dialog,
                "conversationField": {
                    "field": "ConversationStateField",
                    "conversationState": "CLOSE",
                },
            },
        )
        self.assertEqual(closed["code"], "OK", closed)
        yield channel.next(isEvent("CloseEvent", chatId))
        yield client.next(isNote("CloseEvent"))
        # Every notification names its own consumer and that one's conversation.
        seen = {"+48123456789": set(), "+48999": set()}
        for m in client.inbox.messages:
            if m.get("kind") == "notification":
                seen[m["consumer"]].add(m["body"]["changes"][0]["conversationId"])
        self.assertEqual(
            seen, {"+48123456789": {dialog}, "+48999": {other["body"]["conversationId"]}}
        )

    @defer.inlineCallbacks
    def test_badInput(self) -> Any:
        """
        Not JSON, a binary frame, a request without id, an unknown type, no
        consumer: each answered BAD_REQUEST, and the socket stays open.
        """
        client = yield self.open()
        answer = yield client.raw(b"{nope")
        self.assertEqual((answer["code"], answer["reqId"]), ("BAD_REQUEST", None))
        answer = yield client.raw(b"\x00\x01", isBinary=True)
        self.assertEqual(answer["code"], "BAD_REQUEST")
        answer = yield client.raw(
            json.dumps({"kind": "req", "type": "ms.PublishEvent", "consumer": "x"}).encode()
        )
        self.assertEqual(answer["code"], "BAD_REQUEST")
        self.assertIn("id", answer["body"]["msg"])
        answer = yield client.request("ms.Nope", {})
        self.assertEqual(answer["code"], "BAD_REQUEST")
        answer = yield client.request(
            "cm.ConsumerRequestConversation",
            {},
            consumer=None,  # type: ignore[arg-type]
        )
        self.assertEqual(answer["code"], "BAD_REQUEST")
        self.assertIn("consumer", answer["body"]["msg"])
        answer = yield client.request("ms.PublishEvent", {"dialogId": "1", "event": {}})
        self.assertEqual(answer["code"], "NOT_FOUND")

        # A failure of the server's own is answered, logged, and costs the socket nothing.
        async def broken(*args: Any, **kw: Any) -> Any:
            raise RuntimeError("boom")

        api = self.node.getServiceNamed("http").factory.resource.children[b"api"].v1
        self.patch(api.services["connector"], "handle", broken)
        answer = yield client.request("ms.PublishEvent", {"dialogId": "1", "event": {}})
        self.assertEqual(answer["code"], "INTERNAL")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertFalse(client.closed.called)


class ConnectorWebSocketLimitTests(ApiNodeMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        extra = (
            "DEMO_LICENCE 0\nWEBHOOK_ALLOW_PRIVATE 1\nAPI_RATE 1\nAPI_BURST 3\nAPI_MAX_BODY 1024\n"
        )
        from tests.test_api import SERVER_KEY

        yield self.startNode(self.nodeConfig(extra + f"SERVER_API_KEY {SERVER_KEY}\n"))
        self.store = self.node.parts.store
        receiver = Receiver().start()
        self.addCleanup(receiver.stop)
        self.key = yield self.licenceWithKey(555555)
        code, self.app = yield self.call(
            "POST", "/apps", self.key, {"name": "Bridge", "endpoint": receiver.url("/n")}
        )
        self.assertEqual(code, 201, self.app)

    def open(self) -> Any:
        url = self.url(f"api/v1/apps/{self.app['id']}/connector/ws").replace("http", "ws", 1)
        return connectWS(
            self, url, None, ConnectorClient, headers={"Authorization": f"Bearer {self.key}"}
        )

    @defer.inlineCallbacks
    def test_rateLimit(self) -> Any:
        """
        The key's burst is shared with the REST calls of setUp: the requests
        beyond it are answered RATE_LIMITED, with their ids.
        """
        client = yield self.open()
        answers = []
        for _ in range(4):
            answers.append((yield client.request("ms.PublishEvent", {"dialogId": "1"})))
        codes = [a["code"] for a in answers]
        self.assertIn("RATE_LIMITED", codes)
        limited = answers[codes.index("RATE_LIMITED")]
        self.assertTrue(limited["reqId"].startswith("r"))
        self.assertIn("retry", limited["body"]["msg"])

    @defer.inlineCallbacks
    def test_sizeLimit(self) -> Any:
        """A message of exactly API_MAX_BODY bytes is read; one byte more closes with 1009."""
        client = yield self.open()
        head = b'{"kind":"req","id":"x","type":"nope","consumer":"c","pad":"'
        exact = head + b"a" * (1024 - len(head) - 2) + b'"}'
        self.assertEqual(len(exact), 1024)
        client.sendMessage(exact)
        answer = yield client.next(lambda m: m.get("reqId") == "x")
        self.assertIn(answer["code"], ("BAD_REQUEST", "RATE_LIMITED"))
        client.sendMessage(exact[:-2] + b'a"}')
        code, _ = yield client.closed
        self.assertEqual(code, 1009)


class NotificationShapeTests(unittest.TestCase):
    def test_storedAndState(self) -> None:
        """A stored event keeps its sequence; a chat state has none; others are not sent."""
        stored = {
            "type": "chat.event",
            "chatId": 7,
            "sequence": 3,
            "serverTimestamp": 1000,
            "originatorId": "op:1",
            "originatorMetadata": {"id": "op:1", "role": "ASSIGNED_AGENT", "name": "Ann"},
            "event": {"type": "ContentEvent", "message": "hi"},
        }
        note = notification("c1", stored)
        assert note is not None
        self.assertEqual(
            note,
            {
                "kind": "notification",
                "type": "ms.MessagingEventNotification",
                "consumer": "c1",
                "body": {
                    "changes": [
                        {
                            "sequence": 3,
                            "originatorId": "op:1",
                            "originatorMetadata": {"id": "op:1", "role": "ASSIGNED_AGENT"},
                            "serverTimestamp": 1000,
                            "event": {"type": "ContentEvent", "message": "hi"},
                            "conversationId": "7",
                            "dialogId": "7",
                        }
                    ]
                },
            },
        )
        state = dict(stored)
        del state["sequence"]
        note = notification("c1", state)
        assert note is not None
        self.assertNotIn("sequence", note["body"]["changes"][0])
        self.assertIsNone(notification("c1", {"type": "queue.position", "position": 1}))
